//! `fedgate accounting import-caso`: a `caso.conf` (oslo.config INI) and
//! its optional `voms.json`, translated into `[plugins.accounting]`.
//!
//! Every option is either translated or reported with its line and the
//! reason, so nothing a site set is silently dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::config::{DEFAULT_OUTPUT_PATH, parse_voms_json};

/// One `key = value` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniValue {
    pub line: usize,
    pub value: String,
}

/// Sections by name, keys by name (the last one wins, as in oslo.config).
pub type Ini = BTreeMap<String, BTreeMap<String, IniValue>>;

/// An option that could not be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub option: String,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.option, self.reason)
    }
}

/// Why the file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("voms.json: {0}")]
    Mapping(String),
    #[error("[DEFAULT] site_name is not set: the records need it")]
    NoSiteName,
    #[error("[keystone_auth] auth_url is not set")]
    NoAuthUrl,
}

/// Parses oslo.config INI: `[section]`, `key = value` (or `key: value`),
/// `#`/`;` comments, indented continuation lines.
pub fn parse_ini(text: &str) -> Result<Ini, ImportError> {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    let mut last: Option<(String, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t'])
            && let (Some(s), Some((sec, key))) = (&section, &last)
            && s == sec
        {
            if let Some(v) = ini.get_mut(sec).and_then(|m| m.get_mut(key)) {
                v.value.push('\n');
                v.value.push_str(t);
            }
            continue;
        }
        if let Some(name) = t.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| ImportError::Syntax {
                line,
                reason: format!("{t:?} is not a [section] line"),
            })?;
            section = Some(name.trim().to_string());
            ini.entry(name.trim().to_string()).or_default();
            last = None;
            continue;
        }
        let Some(sec) = &section else {
            return Err(ImportError::Syntax {
                line,
                reason: "an option before any [section]".into(),
            });
        };
        let Some(i) = t.find(['=', ':']) else {
            return Err(ImportError::Syntax {
                line,
                reason: format!("{t:?} is not `key = value`"),
            });
        };
        let key = t[..i].trim().to_string();
        let value = t[i + 1..].trim().to_string();
        ini.entry(sec.clone())
            .or_default()
            .insert(key.clone(), IniValue { line, value });
        last = Some((sec.clone(), key));
    }
    Ok(ini)
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", v.join(", "))
}

fn split_list(v: &str) -> Vec<String> {
    v.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Keystone's default domain has id `default` and name `Default`; any
/// other domain id cannot be turned into the name fedgate sends.
fn domain_name(id: &str) -> Option<&'static str> {
    (id == "default").then_some("Default")
}

fn skip(out: &mut Vec<Skipped>, v: &IniValue, section: &str, key: &str, reason: &str) {
    out.push(Skipped {
        line: v.line,
        option: format!("[{section}] {key}"),
        reason: reason.into(),
    })
}

/// The translation: the TOML text and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub skipped: Vec<Skipped>,
}

/// Translates a parsed `caso.conf` and, if given, its `voms.json` text
/// (which is then inlined as `vo_mapping`).
pub fn translate(ini: &Ini, voms_json: Option<&str>) -> Result<Imported, ImportError> {
    let empty = BTreeMap::new();
    let sec = |name: &str| ini.get(name).unwrap_or(&empty);
    let mut skipped = Vec::new();
    let mut top: Vec<String> = Vec::new();
    let mut keystone: Vec<String> = Vec::new();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    let mut site = None;
    let mut output_path: Option<String> = None;
    let mut mapping_file: Option<(String, IniValue)> = None;
    let mut messengers: Option<(Vec<String>, usize)> = None;
    let mut region: Option<String> = None;

    for (key, v) in sec("DEFAULT") {
        let val = v.value.as_str();
        match key.as_str() {
            "site_name" => {
                site = Some(val.to_string());
                top.push(format!("site_name = {}", q(val)));
            }
            "service_name" if val != "$site_name" => top.push(format!("service_name = {}", q(val))),
            "service_name" => {}
            "projects" => top.push(format!("projects = {}", list(&split_list(val)))),
            "caso_tag" => top.push(format!("project_tag = {}", q(val))),
            "vo_property" => top.push(format!("vo_property = {}", q(val))),
            "mapping_file" => mapping_file = Some((val.to_string(), v.clone())),
            "extractor" => {
                let mut ok = Vec::new();
                for e in split_list(val) {
                    if matches!(e.as_str(), "nova" | "cinder" | "neutron") {
                        ok.push(e);
                    } else {
                        skip(
                            &mut skipped,
                            v,
                            "DEFAULT",
                            "extractor",
                            &format!(
                                "extractor {e:?} has no fedgate equivalent (nova, cinder, neutron); left out"
                            ),
                        );
                    }
                }
                top.push(format!("extractors = {}", list(&ok)));
            }
            "messengers" => messengers = Some((split_list(val), v.line)),
            "spooldir" => top.push(format!("spooldir = {}", q(val))),
            "lock_path" if val != "$spooldir" => top.push(format!("lock_path = {}", q(val))),
            "lock_path" => {}
            "region_name" => region = Some(val.to_string()),
            "dry_run" => skip(
                &mut skipped,
                v,
                "DEFAULT",
                key,
                "a run option: use `fedgate accounting extract --dry-run`",
            ),
            "extract_from" | "extract_to" => skip(
                &mut skipped,
                v,
                "DEFAULT",
                key,
                "a run option: use `fedgate accounting extract --from/--to`; scheduled runs start at lastrun",
            ),
            "debug"
            | "verbose"
            | "log_file"
            | "log_dir"
            | "log_config_append"
            | "use_stderr"
            | "use_syslog"
            | "syslog_log_facility"
            | "log_date_format"
            | "use_json"
            | "use_journal"
            | "watch_log_file"
            | "default_log_levels"
            | "logging_context_format_string"
            | "logging_default_format_string"
            | "publish_errors"
            | "instance_format" => skip(
                &mut skipped,
                v,
                "DEFAULT",
                key,
                "logging is fedgate's own ([logging], RUST_LOG); not translated",
            ),
            _ => skip(
                &mut skipped,
                v,
                "DEFAULT",
                key,
                "unknown to fedgate's accounting plugin",
            ),
        }
    }
    if site.is_none() {
        return Err(ImportError::NoSiteName);
    }

    // [keystone_auth]
    let ka = sec("keystone_auth");
    let mut have_url = false;
    let mut user_domain: Option<String> = None;
    let mut project_domain: Option<String> = None;
    for (key, v) in ka {
        let val = v.value.as_str();
        match key.as_str() {
            "auth_type" | "auth_plugin" => {
                if !matches!(
                    val,
                    "password" | "v3password" | "v3applicationcredential" | "applicationcredential"
                ) {
                    skip(
                        &mut skipped,
                        v,
                        "keystone_auth",
                        key,
                        &format!(
                            "auth type {val:?}: fedgate authenticates with a password or an application credential"
                        ),
                    );
                }
            }
            "auth_url" => {
                have_url = true;
                keystone.push(format!("auth_url = {}", q(val)));
            }
            "username"
            | "password"
            | "project_id"
            | "project_name"
            | "system_scope"
            | "application_credential_id"
            | "application_credential_secret" => keystone.push(format!("{key} = {}", q(val))),
            "user_domain_name" => user_domain = Some(val.to_string()),
            "project_domain_name" => project_domain = Some(val.to_string()),
            "user_domain_id" | "project_domain_id" => match domain_name(val) {
                Some(n) => {
                    let slot = if key == "user_domain_id" {
                        &mut user_domain
                    } else {
                        &mut project_domain
                    };
                    slot.get_or_insert_with(|| n.to_string());
                }
                None => skip(
                    &mut skipped,
                    v,
                    "keystone_auth",
                    key,
                    &format!(
                        "domain id {val:?}: fedgate names domains; set user_domain/project_domain to its name"
                    ),
                ),
            },
            "cafile" => keystone.push(format!("ca_file = {}", q(val))),
            "interface" | "valid_interfaces" => {
                let i = split_list(val)
                    .first()
                    .map(|s| s.trim_end_matches("URL").to_string())
                    .unwrap_or_default();
                keystone.push(format!("interface = {}", q(&i)));
            }
            "timeout" => match val.parse::<f64>() {
                Ok(t) if t >= 1.0 => keystone.push(format!("timeout_secs = {}", t.ceil() as u64)),
                _ => skip(
                    &mut skipped,
                    v,
                    "keystone_auth",
                    key,
                    "not a number of seconds ≥ 1",
                ),
            },
            "region_name" => {
                region.get_or_insert_with(|| val.to_string());
            }
            "insecure" if truthy(val) == Some(false) => {}
            "insecure" => skip(
                &mut skipped,
                v,
                "keystone_auth",
                key,
                "fedgate always verifies TLS; give the CA with ca_file",
            ),
            "user_id"
            | "application_credential_name"
            | "domain_id"
            | "domain_name"
            | "trust_id"
            | "certfile"
            | "keyfile"
            | "project_domain"
            | "user_domain"
            | "default_domain_id"
            | "default_domain_name"
            | "collect_timing"
            | "split_loggers" => skip(
                &mut skipped,
                v,
                "keystone_auth",
                key,
                "not supported by fedgate's Keystone client",
            ),
            _ => skip(
                &mut skipped,
                v,
                "keystone_auth",
                key,
                "unknown keystoneauth option",
            ),
        }
    }
    if let Some(r) = &region {
        top.push(format!("region = {}", q(r)));
    }
    if !have_url {
        return Err(ImportError::NoAuthUrl);
    }
    if let Some(d) = user_domain.filter(|d| d != "Default") {
        keystone.push(format!("user_domain = {}", q(&d)));
    }
    if let Some(d) = project_domain.filter(|d| d != "Default")
        && ka.contains_key("project_name")
    {
        keystone.push(format!("project_domain = {}", q(&d)));
    }

    for (section, keys) in [
        ("benchmark", &["name_key", "value_key"][..]),
        (
            "accelerator",
            &["type_key", "vendor_key", "model_key", "number_key"][..],
        ),
    ] {
        let mut lines = Vec::new();
        for (key, v) in sec(section) {
            if keys.contains(&key.as_str()) {
                lines.push(format!("{key} = {}", q(&v.value)));
            } else {
                skip(&mut skipped, v, section, key, "unknown option");
            }
        }
        if !lines.is_empty() {
            tables.push((section.to_string(), lines));
        }
    }

    for (key, v) in sec("ssm") {
        match key.as_str() {
            "output_path" => output_path = Some(v.value.clone()),
            "max_size" => match v.value.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => top.push(format!("max_size = {n}")),
                _ => skip(&mut skipped, v, "ssm", key, "max_size must be 1 to 1000"),
            },
            _ => skip(&mut skipped, v, "ssm", key, "unknown option"),
        }
    }

    // Messengers: only ssm (the dirq queue) has an equivalent.
    let mut record_types: Option<Vec<String>> = None;
    let uses_ssm = match &messengers {
        Some((m, line)) => {
            for other in m.iter().filter(|m| !matches!(m.as_str(), "ssm" | "noop")) {
                skipped.push(Skipped {
                    line: *line,
                    option: "[DEFAULT] messengers".into(),
                    reason: format!("messenger {other:?} has no fedgate equivalent (records go to the dirq queue)"),
                });
            }
            m.iter().any(|m| m == "ssm")
        }
        None => false,
    };
    if messengers.is_some() && !uses_ssm {
        skipped.push(Skipped {
            line: messengers.as_ref().map_or(0, |m| m.1),
            option: "[DEFAULT] messengers".into(),
            reason: "no ssm messenger: fedgate still writes the queue at output_path".into(),
        });
    }
    for (name, keys) in ini.iter().filter(|(n, _)| n.starts_with("messenger_")) {
        for (key, v) in keys {
            if name == "messenger_ssm" && key == "record_types" {
                record_types = Some(split_list(&v.value));
            } else {
                skip(
                    &mut skipped,
                    v,
                    name,
                    key,
                    "not translated (only [messenger_ssm] record_types is)",
                );
            }
        }
    }
    for (name, keys) in ini.iter().filter(|(n, _)| {
        !matches!(
            n.as_str(),
            "DEFAULT" | "keystone_auth" | "benchmark" | "accelerator" | "ssm"
        ) && !n.starts_with("messenger_")
    }) {
        for (key, v) in keys {
            skip(&mut skipped, v, name, key, "section not translated");
        }
    }

    // caso writes every record type into output_path: keep it so.
    let out = output_path.unwrap_or_else(|| DEFAULT_OUTPUT_PATH.to_string());
    top.push(format!("output_path = {}", q(&out)));
    let mut queue = vec![format!("storage = {}", q(&out))];
    queue.sort();
    tables.insert(0, ("queue_path".into(), queue));
    if let Some(rt) = record_types {
        top.push(format!("record_types = {}", list(&rt)));
    }

    match voms_json {
        Some(text) => {
            let m = parse_voms_json(text).map_err(ImportError::Mapping)?;
            let lines = m
                .iter()
                .map(|(p, vo)| format!("{} = {}", q(p), q(vo)))
                .collect();
            tables.push(("vo_mapping".into(), lines));
        }
        None => {
            // caso reads its default mapping file when it exists.
            match mapping_file {
                Some((f, _)) if std::path::Path::new(&f).is_file() => {
                    top.push(format!("mapping_file = {}", q(&f)))
                }
                Some((f, v)) => skip(
                    &mut skipped,
                    &v,
                    "DEFAULT",
                    "mapping_file",
                    &format!("{f} does not exist here; give it as the voms.json argument"),
                ),
                None if std::path::Path::new("/etc/caso/voms.json").is_file() => {
                    top.push("mapping_file = \"/etc/caso/voms.json\"".into())
                }
                None => {}
            }
        }
    }

    let mut toml = String::from(
        "# Translated from caso.conf by `fedgate accounting import-caso`.\n\
         [plugins.accounting]\n",
    );
    for l in &top {
        toml.push_str(l);
        toml.push('\n');
    }
    toml.push_str("\n[plugins.accounting.keystone]\n");
    for l in &keystone {
        toml.push_str(l);
        toml.push('\n');
    }
    for (name, lines) in tables {
        let _ = writeln!(toml, "\n[plugins.accounting.{name}]");
        for l in lines {
            toml.push_str(&l);
            toml.push('\n');
        }
    }
    skipped.sort_by_key(|s| s.line);
    Ok(Imported { toml, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_forms() {
        let ini =
            parse_ini("# c\n[DEFAULT]\na = 1\nb: two words\n; c\nc = x,\n  y\n[s]\na=\n").unwrap();
        assert_eq!(ini["DEFAULT"]["a"].value, "1");
        assert_eq!(ini["DEFAULT"]["b"].value, "two words");
        assert_eq!(ini["DEFAULT"]["c"].value, "x,\ny");
        assert_eq!(ini["DEFAULT"]["c"].line, 6);
        assert_eq!(ini["s"]["a"].value, "");
        assert!(parse_ini("a = 1\n").is_err());
        assert!(parse_ini("[DEFAULT\n").is_err());
        assert!(parse_ini("[DEFAULT]\nnovalue\n").is_err());
    }

    #[test]
    fn translation_and_leftovers() {
        let ini = parse_ini(
            "[DEFAULT]\nsite_name = S\nextractor = nova,prometheus\nmessengers = ssm,logstash\n\
             debug = true\nfoo = bar\n[keystone_auth]\nauth_url = http://k/v3\nusername = u\n\
             password = p\"w\nuser_domain_id = other\n[prometheus]\nprometheus_endpoint = x\n",
        )
        .unwrap();
        let r = translate(&ini, Some(r#"{"vo.a": {"projects": ["p1"]}}"#)).unwrap();
        assert!(r.toml.contains("extractors = [\"nova\"]"), "{}", r.toml);
        assert!(r.toml.contains("password = \"p\\\"w\""), "{}", r.toml);
        assert!(r.toml.contains("\"p1\" = \"vo.a\""), "{}", r.toml);
        let reasons: Vec<String> = r.skipped.iter().map(|s| s.to_string()).collect();
        let want = [
            "line 3: [DEFAULT] extractor",
            "line 4: [DEFAULT] messengers",
            "line 5: [DEFAULT] debug",
            "line 6: [DEFAULT] foo",
            "line 11: [keystone_auth] user_domain_id",
            "line 13: [prometheus] prometheus_endpoint",
        ];
        assert_eq!(reasons.len(), want.len(), "{reasons:#?}");
        for (r, w) in reasons.iter().zip(want) {
            assert!(r.starts_with(w), "{r} / {w}");
        }
        assert!(matches!(
            translate(&parse_ini("[keystone_auth]\nauth_url = x\n").unwrap(), None),
            Err(ImportError::NoSiteName)
        ));
    }
}
