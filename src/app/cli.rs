//! The `fedgate` command line: its commands and their arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Files `fedgate` reads or writes: `--help` lists them, the man page has
/// them as its FILES section.
pub const FILES: &[(&str, &str)] = &[
    (
        "/etc/fedgate/fedgate.toml",
        "the configuration (every key: /usr/share/doc/fedgate/fedgate.example.toml)",
    ),
    (
        "/etc/grid-security/certificates",
        "the IGTF CA directory (CRLs kept fresh by fetch-crl)",
    ),
    (
        "/var/lib/fedgate",
        "plugin state (identities store, image staging)",
    ),
];

/// How `fedgate run` answers signals (`--help`; SIGNALS in the man page).
pub const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGHUP",
        "reload the configuration, certificates and CA directory; a bad one is refused and the running one kept",
    ),
    (
        "SIGTERM, SIGINT",
        "stop accepting connections and drain in-flight requests",
    ),
];

/// Under systemd: the notifications `fedgate run` sends.
pub const SYSTEMD: &str = "Under systemd (Type=notify) fedgate reports READY, RELOADING and STOPPING \
and, with WatchdogSec=, pings the watchdog.";

fn after_help() -> String {
    let list = |rows: &[(&str, &str)]| {
        rows.iter()
            .map(|(k, v)| format!("  {k:<34} {v}\n"))
            .collect::<String>()
    };
    format!(
        "Files:\n{}\nSignals (fedgate run):\n{}\n{SYSTEMD}",
        list(FILES),
        list(SIGNALS)
    )
}

#[derive(Parser)]
#[command(
    name = "fedgate",
    version,
    about = "Authentication gateway for OpenStack Keystone in research federations",
    after_long_help = after_help()
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
    /// regexes, and (probes) whether the upstream and each IdP answer.
    /// Prints each finding with file and line. Exit 1: the configuration
    /// has problems; 2: a probe failed and --strict was given; 0 otherwise
    /// (a failed probe alone is a warning).
    CheckConfig {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
        /// Do not reach the upstream or the IdPs (for ExecReload and
        /// configuration management while Keystone may be down).
        #[arg(long)]
        offline: bool,
        /// Fail (exit 2) when a probe fails, instead of warning.
        #[arg(long)]
        strict: bool,
    },
    /// Translate the Apache vhost that serves Keystone (mod_ssl,
    /// mod_auth_openidc, gridsite, mod_wsgi / mod_proxy_uwsgi) into a
    /// fedgate configuration on stdout; what cannot be translated is listed
    /// on stderr as file:line: Directive: reason. Exits 0 when translated,
    /// 1 when no vhost serves Keystone, 2 on unreadable files or syntax errors.
    ImportApache {
        /// Apache configuration files, read in order as one configuration
        /// (their Include / IncludeOptional are followed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Use this directory instead of the one OIDCMetadataDir names.
        #[arg(long, value_name = "DIR")]
        metadata_dir: Option<PathBuf>,
        /// Keystone's [federation] trusted_dashboard value (repeatable),
        /// for [oidc] trusted_dashboards; a placeholder is written without it.
        #[arg(long = "trusted-dashboard", value_name = "URL")]
        trusted_dashboards: Vec<String>,
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
    /// Before replacing Apache: which Keystone user, groups and projects
    /// the site's mapping gives each recorded credential under the old
    /// stack (mod_gridsite, mod_auth_openidc) and under fedgate; flags every
    /// user whose result changes, with why. Exits 0 when nobody changes, 1
    /// when someone does, 2 on bad input.
    MigrateCheck(super::migrate_check::Args),
    /// Accounting: APEL usage records.
    #[cfg(feature = "accounting")]
    Accounting {
        #[command(subcommand)]
        command: AccountingCommand,
    },
    /// Run a self-contained demo: throwaway PKI, an in-process upstream that
    /// echoes the environ it receives, and fedgate in front of it.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: String,
    },
    /// The image plugin: signed HEPiX image lists.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Print a shell completion script on stdout, e.g.
    /// `fedgate completions bash > /etc/bash_completion.d/fedgate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages: fedgate.1 and one page per subcommand
    /// (fedgate-run.1, fedgate-check-config.1, ...).
    Man {
        /// Directory to write them into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Verify a signed HEPiX image list offline (signature, signer chain
    /// with CRLs, endorser, dates, version) and print what would be
    /// accepted and why. Exits 0 if the list is acceptable, 1 if not.
    Verify {
        /// Print JSON (fields: accepted, reasons, list, images, ...).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "/etc/grid-security/certificates")]
        ca_dir: PathBuf,
        /// Subject DN (OpenSSL one-line form) of an endorser trusted for
        /// this list; repeatable. Without one, every list is refused.
        #[arg(long = "trusted-endorser", value_name = "DN")]
        trusted_endorser: Vec<String>,
        /// The list accepted before for this subscription: pins its
        /// dc:identifier and the lowest acceptable hv:version.
        #[arg(long, value_name = "FILE")]
        previous: Option<PathBuf>,
        /// A list of another subscription whose image identifiers are
        /// taken; repeatable.
        #[arg(long = "other", value_name = "FILE")]
        other: Vec<PathBuf>,
        list: PathBuf,
    },
    /// Sync the subscribed images into Glance once, as the
    /// `[plugins.images]` plugin does on its schedule. Exits 0 when every
    /// step succeeded, 1 when one failed, 2 on a configuration error.
    #[cfg(feature = "accounting")]
    Sync {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the outcome as JSON (fields: plan, counts, errors).
        #[arg(long)]
        json: bool,
    },
    /// Show the images the sync manages in Glance: identifier, version,
    /// Glance id, state, members; and the plugin's last run.
    #[cfg(feature = "accounting")]
    Status {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The admin listener of a running fedgate, for the plugin's last
        /// run (`/plugins/images`), e.g. http://127.0.0.1:9090.
        #[arg(long)]
        admin_url: Option<String>,
    },
    /// Download one image into the staging directory as the image plugin
    /// would (resume, size cap, disk budget, sha512, format detection,
    /// conversion) and print the staged file as JSON. Exits 0 when
    /// staged, 1 when refused, 2 on a usage error.
    Fetch {
        /// A TOML file with the fetch keys of [plugins.images]
        /// (staging_dir, max_image_size, disk_budget, convert_to, ...).
        #[arg(long)]
        config: PathBuf,
        /// The image URL (hv:uri).
        #[arg(long)]
        url: String,
        /// The expected SHA-512, hex (sl:checksum:sha512).
        #[arg(long)]
        sha512: String,
        /// The expected size in bytes (hv:size).
        #[arg(long)]
        size: u64,
        /// The published format (hv:format), compared with the content.
        #[arg(long)]
        format: Option<String>,
        /// The image identifier (names the staged files); default: the URL.
        #[arg(long)]
        id: Option<String>,
    },
}

#[cfg(feature = "accounting")]
#[derive(Subcommand)]
pub enum AccountingCommand {
    /// Check APEL messages (cloud v0.4, public IP v0.2, accelerator v0.1,
    /// StAR) with the APEL loader's rules. Exits 0 when every record of
    /// every file is acceptable, 1 otherwise.
    Validate {
        /// Print one JSON object per file: {"file", "valid", "records",
        /// "errors": [{"record", "field", "reason"}]}; record numbers start
        /// at 1, null for the message as a whole.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the federated identities recorded by the gateway
    /// (`[plugins.identities]`): Keystone user id, kind (x509 or oidc),
    /// GlobalUserName, FQAN, first and last seen (ISO 8601, UTC), and the
    /// FQANs or entitlements. Most recently seen first.
    Identities {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
        /// Print one JSON object per entry: {"keystone_user_id", "kind",
        /// "global_user_name", "fqan", "attributes", "first_seen",
        /// "last_seen"}.
        #[arg(long)]
        json: bool,
        /// Only this Keystone user id; exits 1 if it has no entry.
        #[arg(long, value_name = "ID")]
        user: Option<String>,
    },
    /// Publish the queued APEL messages to AMS as `ssmsend` does: sign
    /// each with the host certificate, publish it (StAR to the storage
    /// topic, the rest to the cloud topic), remove it once AMS took it.
    /// Exits 0 when every element was sent, 1 otherwise (one line per
    /// element says why).
    Send {
        /// A TOML file with a `[plugins.accounting.ams]` table (host,
        /// project, topics, token, cert, key, ...; defaults are EGI's).
        #[arg(long, value_name = "FILE")]
        ams_config: PathBuf,
        /// A dirq queue directory to send; repeatable (e.g. one per
        /// record type).
        #[arg(long = "queue", value_name = "DIR", required = true)]
        queues: Vec<PathBuf>,
    },
    /// One run now, like caso-extract: extract each project's window,
    /// queue the messages and advance lastrun (with --dry-run: print the
    /// messages only). Exits 0 when every project succeeded, 1 when one
    /// failed, 2 when nothing could run.
    Extract {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
        /// Window start (`2024-05-01`, `2024-05-01 00:00:00`, RFC 3339;
        /// naive = UTC). Default: each project's lastrun.
        #[arg(long)]
        from: Option<String>,
        /// Window end; default now; later values are clamped to now.
        #[arg(long)]
        to: Option<String>,
        /// Only this project (id or name); repeatable. Replaces the
        /// configured projects and tag.
        #[arg(long = "project", value_name = "P")]
        projects: Vec<String>,
        /// Print the messages; queue nothing, keep lastrun.
        #[arg(long)]
        dry_run: bool,
        /// Print the records as JSON lines instead of APEL messages.
        #[arg(long)]
        json: bool,
    },
    /// Per project: lastrun and VO; per queue: pending messages.
    Status {
        #[arg(short, long, default_value = "/etc/fedgate/fedgate.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the `[plugins.accounting]` section equivalent to a caso.conf
    /// (and its voms.json); options that cannot be translated are listed
    /// on stderr with their line.
    ImportCaso {
        caso_conf: PathBuf,
        voms_json: Option<PathBuf>,
    },
}
