//! The `fedgate` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, Problems};
use crate::server::{Runtime, Shared, Shutdown};

#[derive(Parser)]
#[command(
    name = "fedgate",
    version,
    about = "Authentication gateway for OpenStack Keystone in research federations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve with a configuration file.
    Run {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
    },
    /// Check a configuration without serving: files, key and certificate,
    /// regexes, upstream. Prints each problem with file and line.
    CheckConfig {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
    },
    /// Show what fedgate concludes about a PEM proxy or certificate chain
    /// (leaf first, as grid tools write it) and the values Keystone would see.
    X509Info {
        /// Print JSON (fields: valid, reasons, env, certificates, ...).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "/etc/grid-security/certificates")]
        ca_dir: PathBuf,
        #[arg(long)]
        voms_dir: Option<PathBuf>,
        file: PathBuf,
    },
    /// Run a self-contained demo: throwaway PKI, an in-process upstream that
    /// echoes the environ it receives, and fedgate in front of it.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fedgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    crate::tls::provider();
    if let Command::X509Info {
        json,
        ca_dir,
        voms_dir,
        file,
    } = &cli.command
    {
        let code =
            crate::pki::info::run(file, ca_dir, voms_dir.as_deref(), Default::default(), *json);
        return ExitCode::from(code);
    }
    match cli.command {
        Command::X509Info { .. } => ExitCode::SUCCESS,
        Command::Run { config } => rt.block_on(run(config)),
        Command::CheckConfig { config } => rt.block_on(crate::check::check_config(&config)),
        Command::Demo {
            listen,
            admin_listen,
        } => rt.block_on(crate::demo::run(&listen, &admin_listen)),
    }
}

/// Prints configuration problems the way editors and humans read them.
pub fn report(p: &Problems) {
    for problem in &p.0 {
        eprintln!("error: {problem}");
    }
}

async fn run(path: PathBuf) -> ExitCode {
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(p) => {
            report(&p);
            return ExitCode::from(2);
        }
    };
    let _log = crate::logging::init(&cfg.logging);
    match serve_config(cfg, None).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e {
                ServeError::Config(p) => report(&p),
                ServeError::Bind(e) => eprintln!("error: {e}"),
            }
            ExitCode::from(2)
        }
    }
}

#[derive(Debug)]
pub enum ServeError {
    Config(Problems),
    Bind(std::io::Error),
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
    let shared = Shared::new(rt);
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
    {
        let rt = shared.runtime.load();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = ?bound.listen, admin = ?bound.admin,
            upstream = %rt.upstream.target().authority(), cas = rt.trust.len(), routes = rt.config.routes.len(),
            "fedgate serving"
        );
    }
    crate::admin::serve(shared.clone(), admin_listeners, shutdown.clone()).await;
    tokio::spawn(crate::server::handle_signals(
        shared.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::server::watch::watch_files(
        shared.clone(),
        Duration::from_secs(30),
    ));
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }
    crate::server::serve(shared, listeners, shutdown).await;
    Ok(())
}
