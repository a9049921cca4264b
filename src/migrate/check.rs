//! `migrate-check`: for each recorded credential, the environ Keystone
//! receives from fedgate and the one it received from Apache
//! (mod_gridsite or mod_auth_openidc), both run through the site's mapping
//! with [`super::mapping`], and every user whose Keystone identity would
//! change is flagged with why.
//!
//! The fedgate side is fedgate's own code: the X.509 authenticator
//! (chain, VOMS, gridsite values), the claims encoder, and the upstream
//! environ builder. The old side starts from the same values and applies
//! what the replaced modules did differently, as documented in
//! docs/migrate-check.md:
//! - gridsite writes every FQAN byte >= 0x80 as `%FF` (signed `char`);
//! - gridsite reads only the first two lines of a `.lsc` file (no
//!   `------ NEXT CHAIN ------`), then falls back to any `.pem` in the
//!   vomsdir: an AC whose server is found neither way loses its FQANs;
//! - mod_auth_openidc's claim prefix, delimiter and value encoding are
//!   the site's settings (defaults: `OIDC-`, `;`, raw UTF-8 as 2.4.12); it
//!   passes each claim both as an environment variable and as a request
//!   header, which mod_wsgi exposes as `HTTP_<NAME>` unless the name has a
//!   `_`; fedgate passes claims as `OIDC-<claim>` and only `iss`/`sub` as
//!   `HTTP_OIDC_ISS`/`HTTP_OIDC_SUB`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::mapping::{self, EvalError, Mapped, Mapping};
use crate::auth::x509::{X509Authenticator, gridsite};
use crate::conn::ConnInfo;
use crate::identity::{AuthMethod, Identity};
use crate::oidc::claims::{self, Export};
use crate::oidc::idp::RemoteUser;
use crate::pki::dn::normalize_labels;
use crate::upstream::environ;
use crate::voms::VomsOutcome;

/// A credential file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {message}")]
    Bad { path: String, message: String },
}

/// What a credential file holds.
#[derive(Debug, Clone)]
pub enum Credential {
    /// PEM certificates, leaf first (a proxy file, or a certificate chain).
    X509 { chain: Vec<Vec<u8>> },
    /// A claim set: a JSON object from userinfo or introspection, or the
    /// payload of a JWT (read, not verified: see `notes`).
    Claims {
        claims: Map<String, Value>,
        notes: Vec<String>,
    },
}

fn bad(path: &Path, message: impl Into<String>) -> CredentialError {
    CredentialError::Bad {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a credential file: PEM certificates, a JSON claim set, or a JWT.
/// An opaque token is refused with the way to obtain its claims.
pub fn load_credential(path: &Path) -> Result<Credential, CredentialError> {
    let data = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    if data.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs =
            crate::pki::cert::certs_from_pem(&data).map_err(|e| bad(path, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(path, "no certificate in the PEM file"));
        }
        return Ok(Credential::X509 { chain: certs });
    }
    let text = String::from_utf8_lossy(&data);
    let t = text.trim();
    if t.starts_with('{') {
        let v: Value = serde_json::from_str(t).map_err(|e| {
            bad(
                path,
                format!("line {}, column {}: {e}", e.line(), e.column()),
            )
        })?;
        let Value::Object(claims) = v else {
            return Err(bad(path, "not a JSON object"));
        };
        if claims.get("active") == Some(&Value::Bool(false)) {
            return Err(bad(
                path,
                "an introspection answer with \"active\": false (an expired or revoked token has no claims)",
            ));
        }
        return Ok(Credential::Claims {
            claims,
            notes: vec![],
        });
    }
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() == 3 && !t.contains(char::is_whitespace) {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|e| bad(path, format!("JWT payload is not base64url: {e}")))?;
        let v: Value = serde_json::from_slice(&payload)
            .map_err(|e| bad(path, format!("JWT payload is not JSON: {e}")))?;
        let Value::Object(claims) = v else {
            return Err(bad(path, "JWT payload is not a JSON object"));
        };
        return Ok(Credential::Claims {
            claims,
            notes: vec!["JWT payload read without checking its signature, audience or expiry: only the claims are compared".into()],
        });
    }
    Err(bad(
        path,
        "neither PEM certificates, a JSON claim set nor a JWT; for an opaque token, save its introspection answer (curl -u CLIENT:SECRET -d token=... INTROSPECTION_URL > claims.json) and pass that file",
    ))
}

/// How the replaced mod_auth_openidc was configured.
#[derive(Debug, Clone)]
pub struct OldOidc {
    /// `OIDCClaimPrefix` (Keystone's documentation: `OIDC-`).
    pub prefix: String,
    /// `OIDCClaimDelimiter` (Keystone needs `;`; the module's default is `,`).
    pub delimiter: String,
    /// `OIDCPassClaimsAs`: environment variables and/or headers.
    pub env: bool,
    pub headers: bool,
    /// `OIDCPassClaimsAs ... latin1|base64url` (2.4.15 and later default to latin1).
    pub encoding: ClaimEncoding,
    /// `OIDCOAuthRemoteUserClaim` / `OIDCRemoteUserClaim`.
    pub remote_user: RemoteUser,
}

impl Default for OldOidc {
    fn default() -> Self {
        OldOidc {
            prefix: claims::PREFIX.into(),
            delimiter: claims::DELIMITER.into(),
            env: true,
            headers: true,
            encoding: ClaimEncoding::None,
            remote_user: RemoteUser::Sub,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimEncoding {
    None,
    Latin1,
    Base64url,
}

/// Everything a check needs besides the credentials.
pub struct Settings<'a> {
    pub mapping: &'a Mapping,
    /// The X.509 authenticator built from the trust store and vomsdir.
    pub x509: Option<&'a X509Authenticator>,
    /// The vomsdir, for gridsite's LSC reading.
    pub voms_dir: Option<PathBuf>,
    pub old_oidc: OldOidc,
    /// Claim export per issuer (`[[idp]]`): claims and `REMOTE_USER` style.
    pub exports: Vec<(String, Export)>,
    /// The request path whose environ is built (the federation auth URL).
    pub path: String,
    pub now: i64,
}

/// Keystone's verdict on one side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// fedgate itself refuses the credential (Keystone sees nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Keystone's error (401, 500) or why the engine cannot tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSummary>,
    pub groups: Vec<String>,
    pub projects: Vec<String>,
    #[serde(skip)]
    pub undetermined: bool,
}

/// The federated user as the mapped plugin settles it
/// (`validate_and_prepare_federated_user`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSummary {
    pub name: String,
    pub id: String,
    /// `None`: the identity provider's domain.
    pub domain: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
}

/// One credential's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub credential: String,
    pub kind: &'static str,
    pub identity: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub fedgate: Outcome,
    pub old_stack: Outcome,
    pub changed: bool,
    pub why: Vec<String>,
    /// The assertions Keystone builds from each side's environ (JSON
    /// output only): what the mapping was evaluated on.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub assertions: Value,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn domain_text(d: &Value) -> Option<String> {
    let m = d.as_object()?;
    if let Some(n) = m.get("name").filter(|v| !v.is_null()) {
        return Some(format!("name={}", text(n)));
    }
    m.get("id")
        .filter(|v| !v.is_null())
        .map(|i| format!("id={}", text(i)))
}

/// `urllib.parse.quote` with its default safe set (`/`).
fn py_quote(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn outcome(result: Result<Mapped, EvalError>, remote_user: Option<&str>) -> Outcome {
    let mut o = Outcome {
        refused: None,
        error: None,
        status: None,
        user: None,
        groups: vec![],
        projects: vec![],
        undetermined: false,
    };
    let m = match result {
        Ok(m) => m,
        Err(e) => {
            o.status = e.status();
            o.undetermined = o.status.is_none();
            o.error = Some(e.to_string());
            return o;
        }
    };
    let get = |k: &str| m.user.get(k).filter(|v| !v.is_null() && *v != "").map(text);
    let name = get("name").or_else(|| remote_user.map(str::to_string));
    let id = get("id");
    match (name, id) {
        (None, None) => {
            o.status = Some(401);
            o.error = Some(
                "the mapping gives no user name or id and there is no REMOTE_USER (Keystone: 401)"
                    .into(),
            );
        }
        (name, id) => {
            let name = name.or(id.clone()).unwrap_or_default();
            let id = py_quote(&id.unwrap_or_else(|| name.clone()));
            o.user = Some(UserSummary {
                name,
                id,
                domain: m.user.get("domain").and_then(domain_text),
                type_: get("type").unwrap_or_else(|| "ephemeral".into()),
            });
        }
    }
    let mut groups: BTreeSet<String> = m
        .group_ids
        .iter()
        .map(|g| format!("id={}", text(g)))
        .collect();
    for g in &m.group_names {
        let s = match g {
            Value::Object(gm) => {
                let n = gm.get("name").map(text).unwrap_or_default();
                match gm.get("domain").and_then(domain_text) {
                    Some(d) => format!("{n} (domain {d})"),
                    None => n,
                }
            }
            other => text(other),
        };
        groups.insert(s);
    }
    o.groups = groups.into_iter().collect();
    let mut projects: Vec<String> = m
        .projects
        .iter()
        .map(|p| {
            let n = p.get("name").map(text).unwrap_or_default();
            let roles: Vec<String> = p
                .get("roles")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(|x| x.get("name").map(text)).collect())
                .unwrap_or_default();
            let d = p
                .get("domain")
                .and_then(domain_text)
                .map(|d| format!(" (domain {d})"))
                .unwrap_or_default();
            format!("{n} [{}]{d}", roles.join(", "))
        })
        .collect();
    projects.sort();
    projects.dedup();
    o.projects = projects;
    o
}

fn refused_outcome(reason: String) -> Outcome {
    Outcome {
        refused: Some(reason),
        error: None,
        status: Some(401),
        user: None,
        groups: vec![],
        projects: vec![],
        undetermined: false,
    }
}

/// The environ of a federation login carrying `vars` (fedgate's encoder).
fn environ_with(path: &str, id: Option<&Identity>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (parts, _) = ::http::Request::post(path)
        .header("host", "keystone.invalid")
        .header("accept", "application/json")
        .body(())
        .map(|r| r.into_parts())
        .unwrap_or_else(|_| ::http::Request::new(()).into_parts());
    let conn = ConnInfo {
        peer: ([192, 0, 2, 1], 40000).into(),
        local: ([192, 0, 2, 2], 443).into(),
        tls: None,
    };
    environ::build(&parts, &conn, id, None)
}

/// The old stack's environ: the same request, these identity values.
fn old_environ(
    path: &str,
    vars: &[(String, Vec<u8>)],
    remote_user: Option<String>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut env = environ_with(path, None);
    for (k, v) in vars {
        env.retain(|(ek, _)| ek.as_slice() != k.as_bytes());
        env.push((k.as_bytes().to_vec(), v.clone()));
    }
    if let Some(u) = remote_user {
        env.retain(|(ek, _)| ek.as_slice() != b"REMOTE_USER");
        env.push((b"REMOTE_USER".to_vec(), u.into_bytes()));
    }
    env
}

fn evaluate(mapping: &Mapping, env: &[(Vec<u8>, Vec<u8>)]) -> (mapping::Assertion, Outcome) {
    let a = mapping::assertion_from_environ(env.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    let ru = a.get("REMOTE_USER").cloned();
    let o = outcome(mapping.evaluate(&a), ru.as_deref());
    (a, o)
}

/// The attributes the mapping's rules read.
fn referenced(mapping: &Mapping) -> BTreeSet<String> {
    mapping
        .rules
        .iter()
        .flat_map(|r| r.remote.iter().map(|x| x.attr.clone()))
        .collect()
}

/// gridsite's `%FF`: every byte >= 0x80 of an FQAN, once mild-encoded.
fn gridsite_garble(encoded: &str) -> String {
    let b = encoded.as_bytes();
    let mut out = String::with_capacity(encoded.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if u8::from_str_radix(hex, 16).is_ok_and(|v| v >= 0x80) {
                out.push_str("%FF");
                i += 3;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// DN equality as gridsite compares LSC lines: case-insensitive, with
/// `Email`/`E` ≡ `emailAddress`.
fn dn_eq(a: &str, b: &str) -> bool {
    normalize_labels(a.trim()).eq_ignore_ascii_case(&normalize_labels(b.trim()))
}

/// Whether gridsite finds the AC's VOMS server: the first two lines of
/// some `.lsc` in `vomsdir/<vo>/`, else a `.pem` of that subject in the
/// vomsdir or one level below. `Err` says why not.
fn gridsite_finds_server(
    voms_dir: &Path,
    vo: &str,
    server: &str,
    server_ca: &str,
) -> Result<(), String> {
    let vo_dir = voms_dir.join(vo);
    let mut lsc_files = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&vo_dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "lsc") {
                lsc_files.push(p);
            }
        }
    }
    lsc_files.sort();
    for p in &lsc_files {
        let Ok(t) = std::fs::read_to_string(p) else {
            continue;
        };
        let mut lines = t.lines();
        let (l1, l2) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        if dn_eq(l1, server) && dn_eq(l2, server_ca) {
            return Ok(());
        }
    }
    let mut dirs = vec![voms_dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(voms_dir) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "pem") {
                continue;
            }
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            let Ok(certs) = crate::pki::cert::certs_from_pem(&data) else {
                continue;
            };
            for c in certs {
                if let Ok(c) = crate::pki::cert::Cert::parse(c.as_ref()) {
                    if dn_eq(&c.subject, server) {
                        return Ok(());
                    }
                }
            }
        }
    }
    let files: Vec<String> = lsc_files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    Err(if files.is_empty() {
        format!(
            "no .lsc file in {} and no .pem certificate of {server}",
            vo_dir.display()
        )
    } else {
        format!(
            "gridsite reads only the first two lines of {} (no `------ NEXT CHAIN ------` support) and they do not name {server}, and no .pem certificate of it is in the vomsdir",
            files.join(", ")
        )
    })
}

struct Sides {
    identity: Value,
    new_env: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    refused: Option<String>,
    old_env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Differences of the old stack's handling, known from the model.
    model: Vec<String>,
    notes: Vec<String>,
}

fn x509_sides(s: &Settings<'_>, auth: &X509Authenticator, chain: &[Vec<u8>]) -> Sides {
    let cv = auth.evaluate(chain, s.now);
    let v = &cv.verdict;
    let mut model = Vec::new();
    let mut notes = Vec::new();
    let fqans: Vec<String> = cv
        .voms
        .iter()
        .flat_map(|o| o.acs.iter().flat_map(|a| a.fqans.iter().cloned()))
        .collect();
    let identity = serde_json::json!({
        "dn": v.eec().map(|c| c.subject.clone()),
        "fqans": fqans,
        "refused_acs": cv.voms.as_ref().map(|o| o.refused.clone()).unwrap_or_default(),
    });
    let (new_env, refused) = if v.valid() {
        let mut id = Identity::new(
            AuthMethod::X509,
            v.eec().map(|c| c.subject.clone()).unwrap_or_default(),
        );
        for (k, val) in auth.env(&cv, None) {
            id.set(k, val);
        }
        (Some(environ_with(&s.path, Some(&id))), None)
    } else {
        let r = v.reasons().join("; ");
        model.push(format!(
            "fedgate refuses this chain ({r}); Apache with mod_ssl and gridsite may have accepted it (CRLs optional, namespaces and signing policies not enforced)"
        ));
        (None, Some(r))
    };
    // The old stack: the ACs gridsite would have found a server for.
    let mut old_voms: Option<VomsOutcome> = cv.voms.clone();
    if let (Some(o), Some(dir)) = (old_voms.as_mut(), s.voms_dir.as_deref()) {
        o.acs.retain(|ac| {
            let vo = ac
                .fqans
                .first()
                .and_then(|f| f.split('/').nth(1))
                .unwrap_or(&ac.vo);
            match gridsite_finds_server(dir, vo, &ac.server, &ac.server_ca) {
                Ok(()) => true,
                Err(why) => {
                    for f in &ac.fqans {
                        model.push(format!(
                            "FQAN {f} now accepted: gridsite dropped it because {why}"
                        ));
                    }
                    false
                }
            }
        });
    }
    if let Some(o) = &cv.voms {
        for r in &o.refused {
            let l = r.to_ascii_lowercase();
            if l.contains("target") || l.contains("critical") {
                notes.push(format!(
                    "fedgate dropped an AC that gridsite would have accepted (gridsite ignores AC targets and unknown critical extensions): {r}; its FQANs are not in the old stack's values either"
                ));
            }
        }
    }
    let mut old_vars: Vec<(String, Vec<u8>)> = if v.eec().is_some() {
        gridsite::env(v, None, old_voms.as_ref(), s.now)
    } else {
        Vec::new()
    };
    for (k, val) in old_vars.iter_mut() {
        let t = String::from_utf8_lossy(val).into_owned();
        if k == "GRST_VOMS_FQANS"
            || ((k.starts_with("GRST_CONN_AURI_") || k.starts_with("GRST_CRED_AURI_"))
                && t.starts_with("fqan:"))
        {
            *val = gridsite_garble(&t).into_bytes();
        } else if k.starts_with("GRST_CRED_") && t.starts_with("VOMS ") {
            *val = val
                .iter()
                .map(|&b| if b >= 0x80 { 0xFF } else { b })
                .collect();
        }
    }
    for f in old_voms
        .iter()
        .flat_map(|o| o.acs.iter().flat_map(|a| a.fqans.iter()))
    {
        if !f.is_ascii() {
            let good = crate::pki::dn::mild_encode(f.as_bytes());
            model.push(format!(
                "FQAN {f} has non-ASCII bytes: gridsite %FF-garbled it as {}, fedgate encodes it correctly as {good}",
                gridsite_garble(&good)
            ));
        }
    }
    Sides {
        identity,
        new_env,
        refused,
        old_env: old_environ(&s.path, &old_vars, None),
        model,
        notes,
    }
}

/// A claim value as the old mod_auth_openidc wrote it.
fn old_claim_value(v: &Value, old: &OldOidc) -> Option<Vec<u8>> {
    let raw = match v {
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
                    _ => None,
                })
                .collect();
            parts.join(&old.delimiter).replace('\n', " ").into_bytes()
        }
        other => claims::format_value(other)?,
    };
    Some(match old.encoding {
        ClaimEncoding::None => raw,
        ClaimEncoding::Latin1 => String::from_utf8_lossy(&raw)
            .chars()
            .map(|c| {
                if (c as u32) < 0x100 {
                    c as u32 as u8
                } else {
                    b'?'
                }
            })
            .collect(),
        ClaimEncoding::Base64url => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(&raw)
            .into_bytes(),
    })
}

fn oidc_sides(s: &Settings<'_>, claims_map: &Map<String, Value>, notes: Vec<String>) -> Sides {
    let iss = claims_map
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let sub = claims_map
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string);
    let identity = serde_json::json!({
        "issuer": iss,
        "sub": sub,
        "entitlements": claims_map.get("eduperson_entitlement").cloned().unwrap_or(Value::Null),
    });
    let export = s
        .exports
        .iter()
        .find(|(i, _)| *i == iss)
        .map(|(_, e)| e.clone())
        .unwrap_or(Export {
            claims: vec!["*".into()],
            remote_user: RemoteUser::Sub,
        });
    let (new_env, refused) =
        match claims::to_identity(AuthMethod::Bearer, &iss, claims_map, &export) {
            Ok(id) => (Some(environ_with(&s.path, Some(&id))), None),
            Err(e) => (None, Some(e.to_string())),
        };
    let old = &s.old_oidc;
    let mut vars = Vec::new();
    for (name, v) in claims_map {
        let Some(val) = old_claim_value(v, old) else {
            continue;
        };
        let hname = format!("{}{}", old.prefix, claims::header_name(name));
        if old.env {
            vars.push((hname.clone(), val.clone()));
        }
        // mod_wsgi exposes a header as HTTP_<NAME>, and drops names with `_`.
        if old.headers && !hname.contains('_') {
            vars.push((
                format!("HTTP_{}", hname.to_ascii_uppercase().replace('-', "_")),
                val,
            ));
        }
    }
    let ru = sub
        .as_deref()
        .and_then(|sub| claims::remote_user(old.remote_user, sub, &iss));
    Sides {
        identity,
        new_env,
        refused,
        old_env: old_environ(&s.path, &vars, ru),
        model: vec![],
        notes,
    }
}

fn show(v: Option<&String>) -> String {
    match v {
        Some(s) => format!("`{s}`"),
        None => "unset".into(),
    }
}

/// Why an attribute the mapping reads differs, in words.
fn explain(
    attr: &str,
    old: Option<&String>,
    new: Option<&String>,
    s: &Settings<'_>,
    oidc: bool,
) -> String {
    let o = &s.old_oidc;
    if oidc {
        match (old, new) {
            (Some(_), None) if attr.starts_with("HTTP_") => {
                return format!(
                    "{attr} is not set under fedgate: mod_auth_openidc also passed this claim as a request header ({} …), fedgate passes claims as `OIDC-<claim>` and only iss and sub as HTTP_OIDC_ISS/HTTP_OIDC_SUB",
                    show(old)
                );
            }
            (Some(_), None) => {
                return format!(
                    "{attr} is not set under fedgate (fedgate names claims `OIDC-<claim>`; the old prefix was `{}`)",
                    o.prefix
                );
            }
            (None, Some(_)) => {
                return format!(
                    "{attr} is new under fedgate ({}); the old stack did not set it (prefix `{}`)",
                    show(new),
                    o.prefix
                );
            }
            (Some(a), Some(b)) if o.delimiter != ";" && a.replace(&o.delimiter, ";") == *b => {
                return format!(
                    "claim {attr} now delimited with `;` where mod_auth_openidc used `{}` (Keystone splits on `;`): {} → {}",
                    o.delimiter,
                    show(old),
                    show(new)
                );
            }
            (Some(_), Some(b)) if o.encoding != ClaimEncoding::None && !b.is_ascii() => {
                return format!(
                    "{attr}: mod_auth_openidc encoded values ({:?}), fedgate passes raw UTF-8 as 2.4.12 did: {} → {}",
                    o.encoding,
                    show(old),
                    show(new)
                );
            }
            _ => {}
        }
    }
    format!(
        "{attr}: {} under the old stack, {} under fedgate",
        show(old),
        show(new)
    )
}

/// Compares one credential.
pub fn check(s: &Settings<'_>, name: &str, cred: &Credential) -> Report {
    let (kind, sides) = match cred {
        Credential::X509 { chain } => match s.x509 {
            Some(auth) => ("x509", x509_sides(s, auth, chain)),
            None => {
                return Report {
                    credential: name.into(),
                    kind: "x509",
                    identity: Value::Null,
                    notes: vec![],
                    fedgate: refused_outcome("no trust store".into()),
                    old_stack: refused_outcome("no trust store".into()),
                    changed: false,
                    why: vec!["cannot check a certificate without a CA directory".into()],
                    assertions: Value::Null,
                };
            }
        },
        Credential::Claims { claims: c, notes } => ("oidc", oidc_sides(s, c, notes.clone())),
    };
    let (old_a, old_o) = evaluate(s.mapping, &sides.old_env);
    let (new_a, new_o) = match (&sides.new_env, &sides.refused) {
        (Some(env), _) => {
            let (a, o) = evaluate(s.mapping, env);
            (Some(a), o)
        }
        (None, r) => (None, refused_outcome(r.clone().unwrap_or_default())),
    };
    let changed = old_o != new_o;
    let mut why = Vec::new();
    if changed {
        why.extend(sides.model.iter().cloned());
        if let Some(new_a) = &new_a {
            let is_grst = |a: &str| a.starts_with("GRST_") && !sides.model.is_empty();
            for attr in referenced(s.mapping) {
                let (o, n) = (old_a.get(&attr), new_a.get(&attr));
                if o != n && !is_grst(&attr) {
                    why.push(explain(&attr, o, n, s, kind == "oidc"));
                }
            }
        }
        match (&old_o.error, &new_o.error, &new_o.refused) {
            (_, _, Some(r)) => why.push(format!("refused by fedgate: {r}")),
            (None, Some(e), _) => why.push(format!("under fedgate: {e}")),
            (Some(e), None, _) => why.push(format!(
                "under the old stack: {e}; under fedgate the mapping now applies"
            )),
            _ => {}
        }
        if old_o.user != new_o.user && old_o.user.is_some() && new_o.user.is_some() {
            why.push(format!(
                "Keystone user changes: {} → {}",
                old_o
                    .user
                    .as_ref()
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                new_o
                    .user
                    .as_ref()
                    .map(|u| u.name.clone())
                    .unwrap_or_default()
            ));
        }
        if old_o.groups != new_o.groups {
            why.push(format!(
                "groups: [{}] → [{}]",
                old_o.groups.join(", "),
                new_o.groups.join(", ")
            ));
        }
        if old_o.projects != new_o.projects {
            why.push(format!(
                "projects: [{}] → [{}]",
                old_o.projects.join(", "),
                new_o.projects.join(", ")
            ));
        }
    }
    let assertions = serde_json::json!({"old_stack": old_a, "fedgate": new_a});
    Report {
        credential: name.into(),
        kind,
        identity: sides.identity,
        notes: sides.notes,
        fedgate: new_o,
        old_stack: old_o,
        changed,
        why,
        assertions,
    }
}

/// Plain-text rendering of one report.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<10}: {v}\n"));
    out.push_str(&format!("== {} ({}) ==\n", r.credential, r.kind));
    match r.kind {
        "x509" => {
            line(&mut out, "dn", text(&r.identity["dn"]));
            let f: Vec<String> = r.identity["fqans"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            line(
                &mut out,
                "fqans",
                if f.is_empty() {
                    "-".into()
                } else {
                    f.join(", ")
                },
            );
        }
        _ => {
            line(&mut out, "issuer", text(&r.identity["issuer"]));
            line(&mut out, "sub", text(&r.identity["sub"]));
            if !r.identity["entitlements"].is_null() {
                line(&mut out, "entitle.", text(&r.identity["entitlements"]));
            }
        }
    }
    for n in &r.notes {
        line(&mut out, "note", n.clone());
    }
    for (label, o) in [("old stack", &r.old_stack), ("fedgate", &r.fedgate)] {
        let v = if let Some(reason) = &o.refused {
            format!("refused by fedgate ({reason})")
        } else if let Some(e) = &o.error {
            e.clone()
        } else {
            let u = o
                .user
                .as_ref()
                .map(|u| {
                    format!(
                        "user {} (id {}, domain {}, {})",
                        u.name,
                        u.id,
                        u.domain.as_deref().unwrap_or("of the IdP"),
                        u.type_
                    )
                })
                .unwrap_or_default();
            format!(
                "{u}; groups [{}]; projects [{}]",
                o.groups.join(", "),
                o.projects.join(", ")
            )
        };
        line(&mut out, label, v);
    }
    if r.changed {
        out.push_str("  CHANGED\n");
        for w in &r.why {
            out.push_str(&format!("    - {w}\n"));
        }
    } else {
        out.push_str("  unchanged\n");
    }
    out
}
