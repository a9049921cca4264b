//! Everything built from one configuration, swapped as a whole on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::forwarded::Cidr;
use super::scrub::Scrubber;
use crate::auth::Authenticators;
use crate::config::{Config, Problem, Problems};
use crate::metrics::Metrics;
use crate::pki::TrustStore;
use crate::route::RouteTable;
use crate::upstream::Upstream;

/// One configuration's worth of state. Requests take a snapshot at their
/// start, so a reload never changes the rules under a running request.
pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable,
    pub upstream: Upstream,
    pub scrubber: Scrubber,
    pub trusted_proxies: Vec<Cidr>,
    pub auth: Authenticators,
    pub tls: Arc<rustls::ServerConfig>,
    pub trust: Arc<TrustStore>,
}

impl Runtime {
    /// Builds the state, reading certificates, keys and the CA directory.
    /// Problems name the configuration line whose value is at fault.
    pub async fn build(config: Config) -> Result<Runtime, Problems> {
        Self::build_after(config, None).await
    }

    /// Same, for a reload: state that the change leaves valid (token
    /// caches, IdP documents and keys) is carried over from `previous`.
    pub async fn build_after(
        config: Config,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, Problems> {
        config.validate().into_result()?;
        let src = &config.source;
        let (trust, bad) = TrustStore::load(config.tls.ca_dir.get_ref()).map_err(|e| {
            Problems::one(src.problem(
                &config.tls.ca_dir,
                format!(
                    "tls.ca_dir {} cannot be read: {e}",
                    config.tls.ca_dir.get_ref().display()
                ),
            ))
        })?;
        for b in &bad {
            tracing::warn!(file = %b.file.display(), reason = %b.reason, "skipped a CA directory entry");
        }
        let trust = Arc::new(trust);
        let validator = Arc::new(crate::pki::Validator::new(
            trust.clone(),
            config.x509.clone(),
        ));
        let tls = crate::tls::server_config_with(&config.tls, &trust, Some(validator))
            .map_err(|e| Problems::one(src.problem(e.config_key(&config.tls), e.to_string())))?;
        let routes = RouteTable::build(&config)?;
        let upstream = Upstream::new(&config.upstream, config.server.max_body_bytes)
            .map_err(|e| Problems::one(src.problem(&config.upstream.url, e.to_string())))?;
        let mut extra: Vec<String> = config.scrub.prefixes.clone();
        if let Upstream::Http(_) = &upstream {
            if !config.upstream.identity_header_prefix.is_empty() {
                extra.push(config.upstream.identity_header_prefix.clone());
            }
            extra.extend(config.upstream.identity_headers.values().cloned());
        }
        let scrubber = Scrubber::new(extra.iter().map(String::as_str));
        let trusted_proxies = config
            .server
            .trusted_proxies
            .iter()
            .filter_map(|t| Cidr::parse(t.get_ref()))
            .collect();
        let carried = previous.map(|p| (&p.config, &p.auth));
        let auth = Authenticators::build(&config, &trust, carried)
            .await
            .map_err(|e| Problems::one(Problem::file(&src.path, e)))?;
        Ok(Runtime {
            config,
            routes,
            upstream,
            scrubber,
            trusted_proxies,
            auth,
            tls,
            trust,
        })
    }
}

/// State shared by every connection for the life of the process.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(rt: Runtime) -> Arc<Shared> {
        Arc::new(Shared {
            runtime: ArcSwap::from_pointee(rt),
            metrics: Metrics::new(),
        })
    }

    /// Re-reads the configuration file and swaps the state in one step. A
    /// configuration that fails to build is refused and the running one kept.
    pub async fn reload(&self) -> Result<(), Problems> {
        let path = self.runtime.load().config.source.path.clone();
        let result = match Config::load(&path) {
            Ok(c) => Runtime::build_after(c, Some(&self.runtime.load_full())).await,
            Err(p) => Err(p),
        };
        match result {
            Ok(rt) => {
                let old = self.runtime.load();
                let old_listen: Vec<_> = old
                    .config
                    .server
                    .listen
                    .iter()
                    .map(|l| l.get_ref().clone())
                    .collect();
                let new_listen: Vec<_> = rt
                    .config
                    .server
                    .listen
                    .iter()
                    .map(|l| l.get_ref().clone())
                    .collect();
                if old_listen != new_listen {
                    tracing::warn!("server.listen changed; listeners are kept until restart");
                }
                self.runtime.store(Arc::new(rt));
                self.metrics
                    .reloads
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: "ok".into(),
                    })
                    .inc();
                tracing::info!(config = %path.display(), "configuration reloaded");
                Ok(())
            }
            Err(p) => {
                self.metrics
                    .reloads
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: "failed".into(),
                    })
                    .inc();
                tracing::error!(config = %path.display(), problems = %p.to_string().replace('\n', "; "), "reload refused, keeping the running configuration");
                Err(p)
            }
        }
    }
}
