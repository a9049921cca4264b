//! Reading a mapping as `openstack mapping show -f json` prints it (an
//! object with `rules`, maybe `id` and `schema_version`), or a bare rules
//! list, into typed rules. Schema violations are reported with the JSON
//! path of the offending value, in the spirit of Keystone's jsonschema
//! (`IDP_ATTRIBUTE_MAPPING_SCHEMA_1_0`/`_2_0` in keystone/federation/utils.py).

use serde_json::{Map, Value};

use super::model::{
    Domain, GroupTpl, Local, Mapping, MappingError, ProjectTpl, Remote, Rule, SchemaVersion, Test,
    UserTpl,
};

fn err(path: &str, msg: impl Into<String>) -> MappingError {
    MappingError::Schema {
        path: path.to_string(),
        message: msg.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, MappingError> {
    v.as_object()
        .ok_or_else(|| err(path, format!("{} is not of type 'object'", kind(v))))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, MappingError> {
    v.as_array()
        .ok_or_else(|| err(path, format!("{} is not of type 'array'", kind(v))))
}

fn string(v: &Value, path: &str) -> Result<String, MappingError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| err(path, format!("{} is not of type 'string'", kind(v))))
}

/// Fails on a key outside `allowed` (`additionalProperties: false`).
fn only(m: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), MappingError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(
                &format!("{path}.{k}"),
                format!(
                    "additional property '{k}' is not allowed (allowed: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn opt_string(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<String>, MappingError> {
    m.get(k)
        .map(|v| string(v, &format!("{path}.{k}")))
        .transpose()
}

fn domain(v: &Value, path: &str) -> Result<Domain, MappingError> {
    let m = object(v, path)?;
    only(m, &["id", "name"], path)?;
    Ok(Domain {
        id: opt_string(m, "id", path)?,
        name: opt_string(m, "name", path)?,
    })
}

/// Parses the mapping text; `Err` carries the line and column of a JSON
/// syntax error or the JSON path of a schema violation.
pub fn parse(text: &str) -> Result<Mapping, MappingError> {
    let v: Value = serde_json::from_str(text).map_err(|e| MappingError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    from_value(&v)
}

/// Typed rules from an already-parsed JSON document.
pub fn from_value(v: &Value) -> Result<Mapping, MappingError> {
    let (rules_v, version, path) = match v {
        Value::Array(_) => (v, SchemaVersion::V1, "$".to_string()),
        Value::Object(m) => {
            let version = match m.get("schema_version") {
                None | Some(Value::Null) => SchemaVersion::V1,
                Some(Value::String(s)) => match s.as_str() {
                    "1.0" => SchemaVersion::V1,
                    "2.0" => SchemaVersion::V2,
                    "3.0" => {
                        return Err(err(
                            "$.schema_version",
                            "schema_version 3.0 (projects_json) is not supported by migrate-check",
                        ));
                    }
                    other => {
                        return Err(err(
                            "$.schema_version",
                            format!(
                                "'{other}' is not a Keystone mapping schema version (1.0, 2.0, 3.0)"
                            ),
                        ));
                    }
                },
                Some(other) => {
                    return Err(err(
                        "$.schema_version",
                        format!("{} is not of type 'string'", kind(other)),
                    ));
                }
            };
            let r = m
                .get("rules")
                .ok_or_else(|| err("$", "'rules' is a required property"))?;
            (r, version, "$.rules".to_string())
        }
        other => {
            return Err(err(
                "$",
                format!(
                    "{} is neither a mapping object nor a rules list",
                    kind(other)
                ),
            ));
        }
    };
    let items = array(rules_v, &path)?;
    if items.is_empty() {
        return Err(err(&path, "[] is too short (minItems 1)"));
    }
    let mut rules = Vec::with_capacity(items.len());
    for (i, r) in items.iter().enumerate() {
        rules.push(rule(r, &format!("{path}[{i}]"), version)?);
    }
    Ok(Mapping { version, rules })
}

fn rule(v: &Value, path: &str, version: SchemaVersion) -> Result<Rule, MappingError> {
    let m = object(v, path)?;
    for k in ["local", "remote"] {
        if !m.contains_key(k) {
            return Err(err(path, format!("'{k}' is a required property")));
        }
    }
    only(m, &["local", "remote"], path)?;
    let lpath = format!("{path}.local");
    let locals = array(&m["local"], &lpath)?
        .iter()
        .enumerate()
        .map(|(i, l)| local(l, &format!("{lpath}[{i}]"), version))
        .collect::<Result<Vec<_>, _>>()?;
    let rpath = format!("{path}.remote");
    let ritems = array(&m["remote"], &rpath)?;
    if ritems.is_empty() {
        return Err(err(&rpath, "[] is too short (minItems 1)"));
    }
    let remote = ritems
        .iter()
        .enumerate()
        .map(|(i, r)| remote(r, &format!("{rpath}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        local: locals,
        remote,
    })
}

fn remote(v: &Value, path: &str) -> Result<Remote, MappingError> {
    let m = object(v, path)?;
    let attr = match m.get("type") {
        Some(t) => string(t, &format!("{path}.type"))?,
        None => return Err(err(path, "'type' is a required property")),
    };
    let tests: Vec<&str> = ["any_one_of", "not_any_of", "blacklist", "whitelist"]
        .into_iter()
        .filter(|k| m.contains_key(*k))
        .collect();
    if tests.len() > 1 {
        return Err(err(
            path,
            format!(
                "is not valid under any of the given schemas: {} cannot be combined",
                tests.join(" and ")
            ),
        ));
    }
    let regex = match m.get("regex") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(err(
                &format!("{path}.regex"),
                format!("{} is not of type 'boolean'", kind(other)),
            ));
        }
    };
    let Some(name) = tests.first().copied() else {
        only(m, &["type"], path).map_err(|_| {
            err(path, "is not valid under any of the given schemas: a remote with only 'type' takes no other key")
        })?;
        return Ok(Remote {
            attr,
            test: Test::Present,
            regex: false,
        });
    };
    only(m, &["type", name, "regex"], path)?;
    let vpath = format!("{path}.{name}");
    let values = array(&m[name], &vpath)?.clone();
    let test = match name {
        "any_one_of" => Test::AnyOneOf(values),
        "not_any_of" => Test::NotAnyOf(values),
        "blacklist" => Test::Blacklist(values),
        _ => Test::Whitelist(values),
    };
    Ok(Remote { attr, test, regex })
}

fn local(v: &Value, path: &str, version: SchemaVersion) -> Result<Local, MappingError> {
    let m = object(v, path)?;
    only(
        m,
        &["user", "projects", "group", "groups", "group_ids", "domain"],
        path,
    )?;
    let user = m
        .get("user")
        .map(|u| {
            let p = format!("{path}.user");
            let um = object(u, &p)?;
            only(um, &["id", "name", "email", "domain", "type"], &p)?;
            let type_ = opt_string(um, "type", &p)?;
            if let Some(t) = &type_ {
                if t != "ephemeral" && t != "local" {
                    return Err(err(
                        &format!("{p}.type"),
                        format!("'{t}' is not one of ['ephemeral', 'local']"),
                    ));
                }
            }
            Ok(UserTpl {
                id: opt_string(um, "id", &p)?,
                name: opt_string(um, "name", &p)?,
                email: opt_string(um, "email", &p)?,
                domain: um
                    .get("domain")
                    .map(|d| domain(d, &format!("{p}.domain")))
                    .transpose()?,
                type_,
            })
        })
        .transpose()?;
    let group = m
        .get("group")
        .map(|g| {
            let p = format!("{path}.group");
            let gm = object(g, &p)?;
            if gm.contains_key("id") && gm.len() == 1 {
                Ok(GroupTpl::ById(string(&gm["id"], &format!("{p}.id"))?))
            } else if gm.contains_key("name") && gm.contains_key("domain") && gm.len() == 2 {
                Ok(GroupTpl::ByName {
                    name: string(&gm["name"], &format!("{p}.name"))?,
                    domain: domain(&gm["domain"], &format!("{p}.domain"))?,
                })
            } else {
                Err(err(&p, "is not valid under any of the given schemas: a group is {\"id\"} or {\"name\", \"domain\"}"))
            }
        })
        .transpose()?;
    let projects = m
        .get("projects")
        .map(|ps| {
            let p = format!("{path}.projects");
            array(ps, &p)?
                .iter()
                .enumerate()
                .map(|(i, pr)| {
                    let pp = format!("{p}[{i}]");
                    let pm = object(pr, &pp)?;
                    for k in ["name", "roles"] {
                        if !pm.contains_key(k) {
                            return Err(err(&pp, format!("'{k}' is a required property")));
                        }
                    }
                    let allowed: &[&str] = match version {
                        SchemaVersion::V1 => &["name", "roles"],
                        SchemaVersion::V2 => &["name", "roles", "domain"],
                    };
                    only(pm, allowed, &pp)?;
                    let rp = format!("{pp}.roles");
                    let roles = array(&pm["roles"], &rp)?
                        .iter()
                        .enumerate()
                        .map(|(j, r)| {
                            let rpp = format!("{rp}[{j}]");
                            let rm = object(r, &rpp)?;
                            if !rm.contains_key("name") {
                                return Err(err(&rpp, "'name' is a required property"));
                            }
                            only(rm, &["name"], &rpp)?;
                            string(&rm["name"], &format!("{rpp}.name"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(ProjectTpl {
                        name: string(&pm["name"], &format!("{pp}.name"))?,
                        roles,
                        domain: pm
                            .get("domain")
                            .map(|d| domain(d, &format!("{pp}.domain")))
                            .transpose()?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Local {
        user,
        group,
        groups: opt_string(m, "groups", path)?,
        group_ids: opt_string(m, "group_ids", path)?,
        domain: m
            .get("domain")
            .map(|d| domain(d, &format!("{path}.domain")))
            .transpose()?,
        projects,
    })
}
