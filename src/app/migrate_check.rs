//! `fedgate migrate-check`: before a site replaces Apache (mod_gridsite,
//! mod_auth_openidc) with fedgate, shows for recorded credentials which
//! Keystone user, groups and projects the site's mapping gives under both,
//! and flags every user whose result would change. Exit 0: nobody
//! changes; 1: someone does (or cannot be told); 2: bad input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::x509::X509Authenticator;
use crate::config::Config;
use crate::migrate::check::{self, ClaimEncoding, Credential, OldOidc, Settings};
use crate::migrate::mapping;
use crate::oidc::claims::Export;
use crate::oidc::idp::RemoteUser;
use crate::pki::{TrustStore, Validator, X509Config, unix_now};

/// The command's arguments (see `Command::MigrateCheck`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The mapping, as `openstack mapping show -f json` prints it (or a
    /// bare rules list).
    #[arg(long, value_name = "FILE")]
    pub mapping: PathBuf,
    /// fedgate's configuration: CA directory, vomsdir, [x509] checks,
    /// the [[idp]] claim exports.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Default: the configuration's tls.ca_dir, else
    /// /etc/grid-security/certificates.
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
    /// Default: the configuration's voms.dir.
    #[arg(long)]
    pub voms_dir: Option<PathBuf>,
    /// The Keystone identity provider and protocol of the login URL
    /// whose environ is built.
    #[arg(long, default_value = "egi.eu")]
    pub idp: String,
    #[arg(long, default_value = "mapped")]
    pub protocol: String,
    /// The replaced mod_auth_openidc's OIDCClaimPrefix.
    #[arg(long, default_value = "OIDC-")]
    pub old_claim_prefix: String,
    /// Its OIDCClaimDelimiter.
    #[arg(long, default_value = ";")]
    pub old_claim_delimiter: String,
    /// Its OIDCPassClaimsAs: both, environment or headers.
    #[arg(long, default_value = "both")]
    pub old_pass_claims_as: String,
    /// Its claim value encoding: none (2.4.12), latin1 (2.4.15+
    /// default) or base64url.
    #[arg(long, default_value = "none")]
    pub old_claim_encoding: String,
    /// Its REMOTE_USER claim: sub, sub@ (sub@issuer-host) or none.
    #[arg(long, default_value = "sub")]
    pub old_remote_user_claim: String,
    /// Print JSON (fields: credentials[{credential, kind, identity,
    /// fedgate, old_stack, changed, why}], changed, total).
    #[arg(long)]
    pub json: bool,
    /// PEM proxies or chains (leaf first), JSON claim sets
    /// (userinfo/introspection), or JWTs (payload only, not verified).
    #[arg(required = true)]
    pub credentials: Vec<PathBuf>,
}

const DEFAULT_CA_DIR: &str = "/etc/grid-security/certificates";

fn usage(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

fn old_oidc(a: &Args) -> Result<OldOidc, String> {
    let (env, headers) = match a.old_pass_claims_as.as_str() {
        "both" => (true, true),
        "environment" => (true, false),
        "headers" => (false, true),
        other => {
            return Err(format!(
                "--old-pass-claims-as {other:?}: expected both, environment or headers"
            ));
        }
    };
    let encoding = match a.old_claim_encoding.as_str() {
        "none" => ClaimEncoding::None,
        "latin1" => ClaimEncoding::Latin1,
        "base64url" => ClaimEncoding::Base64url,
        other => {
            return Err(format!(
                "--old-claim-encoding {other:?}: expected none, latin1 or base64url"
            ));
        }
    };
    let remote_user = match a.old_remote_user_claim.as_str() {
        "sub" => RemoteUser::Sub,
        "sub@" => RemoteUser::SubAtIssuer,
        "none" => RemoteUser::None,
        other => {
            return Err(format!(
                "--old-remote-user-claim {other:?}: expected sub, sub@ or none"
            ));
        }
    };
    if a.old_claim_delimiter.is_empty() {
        return Err("--old-claim-delimiter must not be empty".into());
    }
    Ok(OldOidc {
        prefix: a.old_claim_prefix.clone(),
        delimiter: a.old_claim_delimiter.clone(),
        env,
        headers,
        encoding,
        remote_user,
    })
}

/// Runs the command; returns the exit code.
pub fn run(a: &Args) -> u8 {
    let text = match std::fs::read_to_string(&a.mapping) {
        Ok(t) => t,
        Err(e) => return usage(format_args!("cannot read {}: {e}", a.mapping.display())),
    };
    let mapping = match mapping::parse(&text) {
        Ok(m) => m,
        Err(e) => return usage(format_args!("{}: {e}", a.mapping.display())),
    };
    let config = match &a.config {
        Some(p) => match Config::load(p) {
            Ok(c) => Some(c),
            Err(e) => return usage(e),
        },
        None => None,
    };
    let old = match old_oidc(a) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let mut creds = Vec::new();
    for p in &a.credentials {
        match check::load_credential(p) {
            Ok(c) => creds.push((p.clone(), c)),
            Err(e) => return usage(e),
        }
    }
    let needs_x509 = creds
        .iter()
        .any(|(_, c)| matches!(c, Credential::X509 { .. }));
    let voms_dir = a
        .voms_dir
        .clone()
        .or_else(|| config.as_ref().map(|c| c.voms.dir.get_ref().clone()));
    let auth = if needs_x509 {
        match x509(a, config.as_ref(), voms_dir.as_deref()) {
            Ok(auth) => Some(auth),
            Err(e) => return usage(e),
        }
    } else {
        None
    };
    let exports = config
        .as_ref()
        .map(|c| {
            c.idps
                .iter()
                .map(|i| {
                    (
                        i.issuer.get_ref().clone(),
                        Export {
                            claims: i.claims.clone(),
                            remote_user: i.remote_user,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let settings = Settings {
        mapping: &mapping,
        x509: auth.as_ref(),
        voms_dir: voms_dir.clone(),
        old_oidc: old,
        exports,
        path: format!(
            "/v3/OS-FEDERATION/identity_providers/{}/protocols/{}/auth",
            a.idp, a.protocol
        ),
        now: unix_now(),
    };
    let reports: Vec<check::Report> = creds
        .iter()
        .map(|(p, c)| check::check(&settings, &p.display().to_string(), c))
        .collect();
    let changed = reports.iter().filter(|r| r.changed).count();
    let undetermined = reports
        .iter()
        .any(|r| r.fedgate.undetermined || r.old_stack.undetermined);
    if a.json {
        let doc = serde_json::json!({
            "credentials": reports,
            "changed": changed,
            "total": reports.len(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        for r in &reports {
            print!("{}", check::render(r));
        }
        println!(
            "{changed} of {} credentials would map differently under fedgate",
            reports.len()
        );
    }
    if changed > 0 || undetermined { 1 } else { 0 }
}

fn x509(
    a: &Args,
    config: Option<&Config>,
    voms_dir: Option<&Path>,
) -> Result<X509Authenticator, String> {
    let ca_dir = a
        .ca_dir
        .clone()
        .or_else(|| config.map(|c| c.tls.ca_dir.get_ref().clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_DIR));
    let (store, problems) = TrustStore::load(&ca_dir)
        .map_err(|e| format!("cannot read CA directory {}: {e}", ca_dir.display()))?;
    for p in &problems {
        eprintln!("warning: skipped {p}");
    }
    let mut vc = config.map(|c| c.voms.clone()).unwrap_or_default();
    if let Some(d) = voms_dir {
        vc.dir = toml::Spanned::new(0..0, d.to_path_buf());
    }
    let mut voms = crate::voms::VomsSettings::from_config(&vc);
    if let Some(c) = config {
        if let Ok(names) = crate::tls::host_names(c.tls.certificate.get_ref()) {
            voms.add_targets(names);
        }
    }
    let cfg: X509Config = config.map(|c| c.x509.clone()).unwrap_or_default();
    Ok(X509Authenticator::new(
        Arc::new(Validator::new(Arc::new(store), cfg)),
        Arc::new(voms),
    ))
}
