//! The `fedgate` command line: its commands and their arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        /// The server certificate whose subjectAltName names this service
        /// (VOMS AC targets), as `fedgate run` uses `tls.certificate`.
        #[arg(long)]
        host_cert: Option<PathBuf>,
        /// A further name this service answers to (`voms.targets`); repeatable.
        #[arg(long = "target")]
        targets: Vec<String>,
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
