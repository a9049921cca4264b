//! Everything built from one configuration, swapped as a whole on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::admission::Admission;
use super::scrub::Scrubber;
use crate::auth::bearer::{BearerAuthenticator, BearerError};
use crate::auth::websso::WebSso;
use crate::auth::x509::X509Authenticator;
use crate::auth::{AuthKind, Authenticators, Policy};
use crate::config::Config;
use crate::http::forwarded::Cidr;
use crate::http::host::PublicNames;
use crate::metrics::Metrics;
use crate::pki::{TrustStore, Validator};
use crate::problem::{Problem, Problems};
use crate::route::RouteTable;
use crate::upstream::Upstream;
use crate::voms::VomsSettings;

/// One configuration's worth of state. Requests take a snapshot at their
/// start, so a reload never changes the rules under a running request.
pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable,
    pub upstream: Upstream,
    pub scrubber: Scrubber,
    pub trusted_proxies: Vec<Cidr>,
    /// `server.public_names`; empty: any valid Host.
    pub public_names: PublicNames,
    pub auth: Authenticators,
    pub tls: Arc<rustls::ServerConfig>,
    /// mod_ssl's `SSL_SERVER_*` values of the host certificate.
    pub server_modssl: Arc<[(String, String)]>,
    pub trust: Arc<TrustStore>,
    /// Judges client chains against `trust`, in the handshake, for
    /// resumed sessions and for `auth = "x509"`: one validated-path cache
    /// per trust store, emptied by every reload.
    pub validator: Arc<Validator>,
    /// End dates of the host certificate, CAs and CRLs, for the metric.
    pub expiries: Vec<crate::metrics::Expiry>,
    /// The shared-state store of the token cache and the sessions, with
    /// the `[state]` it was built from: a reload with equal settings keeps
    /// it (the memory backend's sessions live in it).
    pub state: (crate::config::StateResolved, crate::kv::Store),
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
        // A broken file that was good in the running store keeps its last
        // good content (see `TrustStore::load_after`).
        let (trust, bad) =
            TrustStore::load_after(config.tls.ca_dir.get_ref(), previous.map(|p| &*p.trust))
                .map_err(|e| {
                    Problems::one(src.problem(
                        &config.tls.ca_dir,
                        format!(
                            "tls.ca_dir {} cannot be read: {e}",
                            config.tls.ca_dir.get_ref().display()
                        ),
                    ))
                })?;
        for b in &bad {
            if b.reason.ends_with(crate::pki::store::KEPT) {
                tracing::warn!(file = %b.file.display(), reason = %b.reason, "broken CA directory entry: its last good version stays in use");
            } else {
                tracing::warn!(file = %b.file.display(), reason = %b.reason, "skipped a CA directory entry");
            }
        }
        if let Some(p) = config.check_ca_count(trust.len()) {
            return Err(Problems::one(p));
        }
        let trust = Arc::new(trust);
        let validator = Arc::new(Validator::new(trust.clone(), config.x509.clone()));
        // TLS sessions outlive a reload: a resumed session's chain is
        // judged again against the new trust store (see
        // `crate::tls::judge_resumed` and the x509 authenticator).
        let sessions = previous.map(|p| p.tls.session_storage.clone());
        let tls =
            crate::tls::server_config_with(&config.tls, &trust, Some(validator.clone()), sessions)
                .map_err(|e| {
                    Problems::one(src.problem(e.config_key(&config.tls), e.to_string()))
                })?;
        let server_modssl = crate::tls::server_modssl(config.tls.certificate.get_ref())
            .map_err(|e| Problems::one(src.problem(&config.tls.certificate, e.to_string())))?
            .into();
        let routes = RouteTable::build(&config.routes, &config.source)?;
        let upstream = Upstream::new(&config.upstream, config.server.max_body_bytes)
            .map_err(|e| Problems::one(src.problem(&config.upstream.url, e.to_string())))?;
        let scrubber = Scrubber::for_config(&config);
        let trusted_proxies = config
            .server
            .trusted_proxies
            .iter()
            .filter_map(|t| Cidr::parse(t.get_ref()))
            .collect();
        let public_names = config.server.public_names();
        let resolved = config.state()?;
        let store = match previous.filter(|p| p.state.0 == resolved) {
            Some(p) => p.state.1.clone(),
            None => resolved
                .store()
                .map_err(|e| Problems::one(Problem::file(&src.path, format!("[state]: {e}"))))?,
        };
        let auth = build_authenticators(&config, &routes, &validator, &store, previous).await?;
        let host = crate::tls::host_leaf(config.tls.certificate.get_ref()).ok();
        let expiries = super::expiry::collect(host.as_ref(), &trust);
        super::expiry::warn(
            &expiries,
            crate::pki::unix_now(),
            config.tls.expiry_warning_secs(),
        );
        Ok(Runtime {
            config,
            routes,
            upstream,
            scrubber,
            trusted_proxies,
            public_names,
            auth,
            tls,
            server_modssl,
            trust,
            validator,
            expiries,
            state: (resolved, store),
        })
    }
}

/// Builds the authenticators the routes use, each from its own sections.
/// Problems name the line of the section at fault.
async fn build_authenticators(
    config: &Config,
    routes: &RouteTable,
    validator: &Arc<Validator>,
    store: &crate::kv::Store,
    previous: Option<&Runtime>,
) -> Result<Authenticators, Problems> {
    let src = &config.source;
    let uses = |k: AuthKind| routes.iter().any(|r| r.auth() == k);
    let mut a = Authenticators::default();
    if uses(AuthKind::X509) {
        let mut voms = VomsSettings::from_config(&config.voms);
        // An AC targeted at this host names it as its certificate does.
        let names = crate::tls::host_names(config.tls.certificate.get_ref())
            .map_err(|e| Problems::one(src.problem(&config.tls.certificate, e.to_string())))?;
        voms.add_targets(names);
        a.x509 = Some(Arc::new(X509Authenticator::new(
            validator.clone(),
            Arc::new(voms),
        )));
    }
    if uses(AuthKind::Bearer) || uses(AuthKind::Introspect) {
        let kept = previous.and_then(|p| {
            p.auth
                .bearer
                .as_ref()
                .filter(|_| bearer_survives(&p.config, config))
                .filter(|_| p.state.1.same(store))
        });
        let bearer = match kept {
            Some(b) => {
                tracing::info!("IdPs and token cache unchanged: cached tokens and keys kept");
                b.clone()
            }
            None => Arc::new(
                BearerAuthenticator::build(
                    &config.idps,
                    config.metadata_dir.as_ref().map(|d| d.get_ref().as_path()),
                    &config.cache,
                    Some(store),
                )
                .map_err(|e| bearer_problem(config, e))?,
            ),
        };
        let mut problems = Problems::default();
        for (r, c) in routes.iter().zip(&config.routes) {
            if let Policy::Bearer(opts) | Policy::Introspect(opts) = &r.policy
                && let Err(e) = bearer.check_options(opts)
            {
                problems.push(src.problem(&c.path, e.to_string()));
            }
        }
        problems.into_result()?;
        a.bearer = Some(bearer);
    }
    if uses(AuthKind::Oidc) {
        let registry = match &a.bearer {
            Some(b) => b.registry.clone(),
            None => Arc::new(
                crate::oidc::registry(
                    &config.idps,
                    config.metadata_dir.as_ref().map(|d| d.get_ref().as_path()),
                )
                .map_err(|e| bearer_problem(config, e.into()))?,
            ),
        };
        let running = previous.and_then(|p| p.auth.websso.as_deref());
        let w = WebSso::build(
            config.oidc.clone(),
            config.server.public_names(),
            registry,
            store.clone(),
            running,
        )
        .await
        .map_err(|e| Problems::one(Problem::file(&src.path, e.to_string())))?;
        a.websso = Some(Arc::new(w));
    }
    Ok(a)
}

/// Whether the bearer authenticator built for `old` still fits `new`: same
/// IdP tables and cache settings. A metadata directory is re-read on every
/// reload, so it always builds afresh. Keeping it spares a reload a burst
/// of introspections and discovery/JWKS fetches.
fn bearer_survives(old: &Config, new: &Config) -> bool {
    old.idps == new.idps
        && old.cache == new.cache
        && old.metadata_dir.is_none()
        && new.metadata_dir.is_none()
}

/// Locates a bearer set-up error: the `[[idp]]` at fault, the metadata
/// directory, or the file.
fn bearer_problem(config: &Config, e: BearerError) -> Problems {
    let src = &config.source;
    let at = match &e {
        BearerError::Idp(crate::oidc::IdpError::MetadataDir(_)) => config
            .metadata_dir
            .as_ref()
            .map(|d| src.problem(d, e.to_string())),
        BearerError::Idp(i) => i
            .issuer(&config.idps)
            .map(|iss| src.problem(&iss, e.to_string())),
        _ => None,
    };
    Problems::one(at.unwrap_or_else(|| Problem::file(&src.path, e.to_string())))
}

/// State shared by every connection for the life of the process.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Metrics,
    /// Open client connections, counted against the running
    /// configuration's limits at each accept.
    pub admission: Arc<Admission>,
    /// Counts successful reloads; the application watches it to bring the
    /// background services in line with the new configuration.
    reloaded: tokio::sync::watch::Sender<u64>,
    /// The identities recorder of `[plugins.identities]`, set by the
    /// application; `None`: logins are not recorded.
    #[cfg(feature = "accounting")]
    pub identities:
        arc_swap::ArcSwapOption<crate::services::accounting::identities::recorder::Recorder>,
}

impl Shared {
    pub fn new(rt: Runtime) -> Arc<Shared> {
        Arc::new(Shared {
            runtime: ArcSwap::from_pointee(rt),
            metrics: Metrics::new(),
            admission: Arc::default(),
            reloaded: tokio::sync::watch::channel(0).0,
            #[cfg(feature = "accounting")]
            identities: Default::default(),
        })
    }

    /// A receiver that sees each successful reload.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloaded.subscribe()
    }

    /// Re-reads the configuration file and swaps the state in one step. A
    /// configuration that fails to build is refused and the running one kept.
    /// Both callers (SIGHUP and the file watch) come through here, so the
    /// service manager hears `RELOADING=1` and then `READY=1` for each.
    pub async fn reload(&self) -> Result<(), Problems> {
        super::notify::reloading("reloading configuration");
        let result = Box::pin(self.swap_in()).await;
        super::notify::ready(&match &result {
            Ok(()) => "serving; configuration reloaded".to_string(),
            Err(p) => format!(
                "serving; reload refused, running configuration kept: {}",
                p.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid configuration")
            ),
        });
        result
    }

    async fn swap_in(&self) -> Result<(), Problems> {
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
                if old.config.server.worker_threads() != rt.config.server.worker_threads() {
                    tracing::warn!(
                        "server.worker_threads changed; the running threads are kept until restart"
                    );
                }
                self.runtime.store(Arc::new(rt));
                self.reloaded.send_modify(|n| *n += 1);
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
