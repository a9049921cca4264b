//! `fedgate run`: build the gateway from a configuration, bind, start the
//! background services, and serve until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::problem::Problems;
use crate::server::{Runtime, Shared, notify};
use crate::services::ServiceSet;
use crate::shutdown::Shutdown;

/// `preloaded`: the configuration at `path`, when the caller already read
/// it (to size the runtime).
pub(super) async fn run(path: PathBuf, preloaded: Option<Config>) -> ExitCode {
    let loaded = match preloaded {
        Some(c) => Ok(c),
        None => Config::load(&path),
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(p) => {
            p.report();
            return ExitCode::from(2);
        }
    };
    let _log = crate::logging::init(&cfg.logging);
    match Box::pin(serve_config(cfg, None)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e {
                ServeError::Config(p) => p.report(),
                ServeError::Bind(e) => eprintln!("error: {e}"),
                ServeError::Threads(e) => eprintln!("error: {e}"),
            }
            ExitCode::from(2)
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(Problems),
    #[error(transparent)]
    Bind(std::io::Error),
    #[error("cannot start the serving threads: {0}")]
    Threads(std::io::Error),
}

/// Addresses actually bound, reported once serving starts.
#[derive(Clone)]
pub struct Bound {
    pub listen: Vec<std::net::SocketAddr>,
    pub admin: Vec<std::net::SocketAddr>,
    pub shared: Arc<Shared>,
    pub shutdown: Shutdown,
}

/// Builds the runtime, binds, and serves until SIGTERM/SIGINT.
pub async fn serve_config(
    cfg: Config,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> Result<(), ServeError> {
    let listen = cfg.server.listen_addrs();
    let admin = cfg.admin.listen_addrs();
    let rt = Runtime::build(cfg).await.map_err(ServeError::Config)?;
    let listeners = crate::server::bind_all(&listen)
        .await
        .map_err(ServeError::Bind)?;
    let admin_listeners = crate::server::bind_all(&admin)
        .await
        .map_err(ServeError::Bind)?;
    let mut services = ServiceSet::new(rt.config.server.shutdown_timeout());
    if let Some(e) = services
        .apply_all(&rt.config.plugins)
        .await
        .into_iter()
        .next()
    {
        return Err(ServeError::Config(Problems::one(
            rt.config.source.file_problem(e.to_string()),
        )));
    }
    if !services.names().is_empty() {
        tracing::info!(services = ?services.names(), "background services running");
    }
    let shared = Shared::new(rt);
    #[cfg(feature = "accounting")]
    apply_identities(&shared);
    let shutdown = Shutdown::new();
    let bound = Bound {
        listen: listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect(),
        admin: admin_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect(),
        shared: shared.clone(),
        shutdown: shutdown.clone(),
    };
    // The serving threads start accepting now; the listeners were bound
    // above, so nothing that connected meanwhile is lost.
    let workers = crate::server::Workers::start(shared.clone(), listeners, shutdown.clone())
        .map_err(ServeError::Threads)?;
    {
        let rt = shared.runtime.load();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = ?bound.listen, admin = ?bound.admin,
            upstream = %rt.upstream.target().authority(), cas = rt.trust.len(), routes = rt.config.routes.len(),
            workers = workers.count(),
            "fedgate serving"
        );
    }
    super::admin::serve(shared.clone(), admin_listeners, shutdown.clone()).await;
    tokio::spawn(crate::server::handle_signals(
        shared.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::server::watch_files(shared.clone(), shutdown.clone()));
    tokio::spawn(crate::memory::release_loop({
        let s = shutdown.clone();
        async move { s.wait().await }
    }));
    let services = tokio::spawn(run_services(shared.clone(), services, shutdown.clone()));
    // Every listener is bound (the kernel already queues connections) and
    // the first configuration is built: tell systemd (Type=notify).
    notify::ready(&ready_status(&bound, &shared));
    let watchdog = tokio::spawn(notify::watchdog());
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }
    workers.run().await;
    let _ = services.await;
    watchdog.abort();
    Ok(())
}

/// The `STATUS=` line sent with the first `READY=1` (`systemctl status`
/// shows it).
fn ready_status(bound: &Bound, shared: &Shared) -> String {
    let list = |a: &[std::net::SocketAddr]| {
        a.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rt = shared.runtime.load();
    format!(
        "serving on {} (admin: {}), {} routes, upstream {}",
        list(&bound.listen),
        if bound.admin.is_empty() {
            "off".to_string()
        } else {
            list(&bound.admin)
        },
        rt.config.routes.len(),
        rt.upstream.target().authority()
    )
}

/// Keeps the background services in line with the configuration: after
/// each reload, a service whose section changed is restarted; on shutdown
/// every service is stopped.
async fn run_services(shared: Arc<Shared>, mut services: ServiceSet, shutdown: Shutdown) {
    let mut reloads = shared.reloads();
    loop {
        tokio::select! {
            changed = reloads.changed() => {
                if changed.is_err() {
                    break;
                }
                #[cfg(feature = "accounting")]
                apply_identities(&shared);
                let plugins = shared.runtime.load().config.plugins.clone();
                for e in services.apply_all(&plugins).await {
                    tracing::error!(error = %e, "service section refused; the running service is kept");
                }
            }
            _ = shutdown.wait() => break,
        }
    }
    services.stop_all().await;
}

/// Starts, restarts or stops the identities recorder so that it matches
/// `[plugins.identities]`. A recorder replaced by a reload writes what it
/// has queued, then ends.
#[cfg(feature = "accounting")]
fn apply_identities(shared: &Shared) {
    use crate::services::accounting::identities::recorder::Recorder;
    let want = shared.runtime.load().config.plugins.identities.clone();
    let current = shared.identities.load();
    if current.as_deref().map(Recorder::config) == want.as_ref() {
        return;
    }
    let next = want.as_ref().map(|c| {
        Arc::new(Recorder::start(
            c,
            shared.metrics.identity_records_dropped.clone(),
        ))
    });
    match &want {
        Some(c) => tracing::info!(path = %c.path().display(), "recording federated identities"),
        None => tracing::info!("no longer recording federated identities"),
    }
    shared.identities.store(next);
}
