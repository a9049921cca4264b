//! The application: the command line and what each command runs.
//!
//! `app` sits at the top of the layering. It alone knows every part: it
//! builds the gateway ([`serve`]), owns the background services, answers
//! the admin listener, and runs the one-shot commands (`check-config`,
//! `x509-info`, `import-apache`, `accounting`, `demo`).

#[cfg(feature = "accounting")]
mod accounting;
pub mod admin;
pub mod check;
mod cli;
pub mod demo;
mod generate;
mod images;
mod import_apache;
mod migrate_check;
mod serve;
pub mod x509_info;

use std::process::ExitCode;

use clap::Parser;

#[cfg(feature = "accounting")]
pub use cli::AccountingCommand;
pub use cli::{Cli, Command, ImagesCommand};
pub use serve::{Bound, ServeError, serve_config};

/// The `fedgate` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::crypto::provider();
    // `run` reads its configuration once, here. Its connections are served
    // by their own threads (`server.worker_threads`, see
    // `crate::server::Workers`); this runtime keeps the background work:
    // reloads, plugins, the admin listener, signals. Two threads are
    // plenty for that on any host.
    let run_config = match &cli.command {
        Command::Run { config } => match crate::config::Config::load(config) {
            Ok(c) => Some(c),
            Err(p) => {
                p.report();
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if run_config.is_some() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores.min(2));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fedgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::X509Info {
            json,
            ca_dir,
            voms_dir,
            host_cert,
            targets,
            file,
        } => ExitCode::from(x509_info::run(
            &file,
            &x509_info::Options {
                ca_dir,
                voms_dir,
                host_cert,
                targets,
                json,
            },
            Default::default(),
        )),
        Command::MigrateCheck(args) => ExitCode::from(migrate_check::run(&args)),
        Command::ImportApache {
            files,
            metadata_dir,
            trusted_dashboards,
        } => ExitCode::from(import_apache::run(
            &files,
            &crate::migrate::apache::Options {
                metadata_dir,
                trusted_dashboards,
            },
        )),
        Command::Run { config } => rt.block_on(serve::run(config, run_config)),
        Command::CheckConfig {
            config,
            offline,
            strict,
        } => rt.block_on(check::check_config(
            &config,
            if offline {
                check::Probes::Skip
            } else {
                check::Probes::Run
            },
            strict,
        )),
        #[cfg(feature = "accounting")]
        Command::Accounting { command } => match command {
            AccountingCommand::Validate { json, files } => {
                ExitCode::from(accounting::validate(&files, json))
            }
            AccountingCommand::Extract {
                config,
                from,
                to,
                projects,
                dry_run,
                json,
            } => ExitCode::from(rt.block_on(accounting::extract(&accounting::ExtractArgs {
                config,
                from,
                to,
                projects,
                dry_run,
                json,
            }))),
            AccountingCommand::Identities { config, json, user } => {
                ExitCode::from(accounting::identities(&config, json, user.as_deref()))
            }
            AccountingCommand::Send { ams_config, queues } => {
                ExitCode::from(rt.block_on(accounting::send(&ams_config, &queues)))
            }
            AccountingCommand::Status { config, json } => {
                ExitCode::from(accounting::status(&config, json))
            }
            AccountingCommand::ImportCaso {
                caso_conf,
                voms_json,
            } => ExitCode::from(accounting::import_caso(&caso_conf, voms_json.as_deref())),
        },
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { out } => generate::man(&out),
        Command::Demo {
            listen,
            admin_listen,
        } => rt.block_on(demo::run(&listen, &admin_listen)),
        #[cfg(feature = "accounting")]
        Command::Images(ImagesCommand::Sync {
            config,
            dry_run,
            json,
        }) => ExitCode::from(rt.block_on(images::sync(&config, dry_run, json))),
        #[cfg(feature = "accounting")]
        Command::Images(ImagesCommand::Status {
            config,
            json,
            admin_url,
        }) => ExitCode::from(rt.block_on(images::status(&config, json, admin_url.as_deref()))),
        Command::Images(ImagesCommand::Verify {
            json,
            ca_dir,
            trusted_endorser,
            previous,
            other,
            list,
        }) => ExitCode::from(images::verify(&images::VerifyArgs {
            list,
            ca_dir,
            trusted: trusted_endorser,
            previous,
            others: other,
            json,
        })),
        Command::Images(ImagesCommand::Fetch {
            config,
            url,
            sha512,
            size,
            format,
            id,
        }) => ExitCode::from(rt.block_on(images::fetch(images::FetchArgs {
            config,
            url,
            sha512,
            size,
            format,
            id,
        }))),
    }
}
