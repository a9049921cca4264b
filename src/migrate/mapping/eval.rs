//! `RuleProcessor.process`: requirements, direct maps, local templates and
//! `_transform`, in Keystone's order.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::model::{
    Assertion, Domain, EvalError, GroupTpl, Local, Mapped, Mapping, Remote, SchemaVersion, Test,
};
use super::py::{self, Arg, FormatError};
use super::pyre;

/// Regexes compiled once per evaluation (Python's `re` caches them too).
#[derive(Default)]
struct Patterns(BTreeMap<String, Regex>);

impl Patterns {
    fn search(&mut self, pattern: &Value, text: &str) -> Result<bool, EvalError> {
        let Value::String(p) = pattern else {
            return Err(EvalError::Python(
                "TypeError: first argument must be string or compiled pattern".into(),
            ));
        };
        if !self.0.contains_key(p) {
            let re = pyre::compile(p).map_err(|e| match e {
                pyre::PatternError::Unsupported { .. } => EvalError::Unsupported(e.to_string()),
                pyre::PatternError::Invalid { .. } => EvalError::Python(format!("re.error: {e}")),
            })?;
            self.0.insert(p.clone(), re);
        }
        Ok(self.0[p].is_match(text))
    }
}

/// The assertion values matched by `values` (`_evaluate_requirement`):
/// regex: in assertion order, repeats kept; else a set (sorted here).
fn matches(
    values: &[Value],
    assertion: &[&str],
    regex: bool,
    pats: &mut Patterns,
) -> Result<Vec<String>, EvalError> {
    if regex {
        let mut out = Vec::new();
        for a in assertion {
            for v in values {
                if pats.search(v, a)? {
                    out.push((*a).to_string());
                    break;
                }
            }
        }
        return Ok(out);
    }
    if values.iter().any(|v| v.is_array() || v.is_object()) {
        return Err(EvalError::Python(format!(
            "TypeError: unhashable type: '{}'",
            if values.iter().any(Value::is_array) {
                "list"
            } else {
                "dict"
            }
        )));
    }
    let mut out: Vec<String> = assertion
        .iter()
        .filter(|a| values.iter().any(|v| v.as_str() == Some(**a)))
        .map(|a| (*a).to_string())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn arg(values: Vec<String>) -> Arg {
    if values.len() == 1 {
        Arg::Str(values.into_iter().next().unwrap_or_default())
    } else {
        Arg::List(values)
    }
}

/// `_verify_all_requirements`: `None` when the rule does not apply.
fn verify(
    remote: &[Remote],
    assertion: &BTreeMap<&str, Vec<&str>>,
    pats: &mut Patterns,
) -> Result<Option<Vec<Arg>>, EvalError> {
    let mut maps = Vec::new();
    for req in remote {
        let Some(values) = assertion.get(req.attr.as_str()) else {
            return Ok(None);
        };
        match &req.test {
            Test::Present => maps.push(arg(values.iter().map(|s| s.to_string()).collect())),
            Test::AnyOneOf(v) => {
                if matches(v, values, req.regex, pats)?.is_empty() {
                    return Ok(None);
                }
            }
            Test::NotAnyOf(v) => {
                if !matches(v, values, req.regex, pats)?.is_empty() {
                    return Ok(None);
                }
            }
            Test::Blacklist(v) => {
                let hit = matches(v, values, req.regex, pats)?;
                let mut left: Vec<String> = values
                    .iter()
                    .filter(|a| !hit.iter().any(|h| h.as_str() == **a))
                    .map(|s| s.to_string())
                    .collect();
                left.sort();
                left.dedup();
                maps.push(arg(left));
            }
            Test::Whitelist(v) => maps.push(arg(matches(v, values, req.regex, pats)?)),
        }
    }
    Ok(Some(maps))
}

fn fmt(template: &str, args: &[Arg]) -> Result<Value, EvalError> {
    py::format(template, args)
        .map(Value::String)
        .map_err(|e| match e {
            FormatError::Index(m) => EvalError::DirectMapping(format!("{template:?}: {m}")),
            FormatError::Python(m) => EvalError::Python(format!("{template:?}: {m}")),
            FormatError::Unsupported(m) => EvalError::Unsupported(m),
        })
}

fn domain(d: &Domain, args: &[Arg]) -> Result<Value, EvalError> {
    let mut m = Map::new();
    if let Some(id) = &d.id {
        m.insert("id".into(), fmt(id, args)?);
    }
    if let Some(n) = &d.name {
        m.insert("name".into(), fmt(n, args)?);
    }
    Ok(Value::Object(m))
}

/// `_update_local_mapping`: every string of the local entry formatted.
fn fill(local: &Local, args: &[Arg]) -> Result<Map<String, Value>, EvalError> {
    let mut out = Map::new();
    if let Some(u) = &local.user {
        let mut m = Map::new();
        for (k, v) in [
            ("id", &u.id),
            ("name", &u.name),
            ("email", &u.email),
            ("type", &u.type_),
        ] {
            if let Some(t) = v {
                m.insert(k.into(), fmt(t, args)?);
            }
        }
        if let Some(d) = &u.domain {
            m.insert("domain".into(), domain(d, args)?);
        }
        out.insert("user".into(), Value::Object(m));
    }
    if let Some(g) = &local.group {
        let mut m = Map::new();
        match g {
            GroupTpl::ById(id) => {
                m.insert("id".into(), fmt(id, args)?);
            }
            GroupTpl::ByName { name, domain: d } => {
                m.insert("name".into(), fmt(name, args)?);
                m.insert("domain".into(), domain(d, args)?);
            }
        }
        out.insert("group".into(), Value::Object(m));
    }
    if let Some(g) = &local.groups {
        out.insert("groups".into(), fmt(g, args)?);
    }
    if let Some(g) = &local.group_ids {
        out.insert("group_ids".into(), fmt(g, args)?);
    }
    if let Some(d) = &local.domain {
        out.insert("domain".into(), domain(d, args)?);
    }
    if let Some(ps) = &local.projects {
        let mut list = Vec::new();
        for p in ps {
            let mut m = Map::new();
            m.insert("name".into(), fmt(&p.name, args)?);
            let roles = p
                .roles
                .iter()
                .map(|r| {
                    let mut rm = Map::new();
                    rm.insert("name".into(), fmt(r, args)?);
                    Ok(Value::Object(rm))
                })
                .collect::<Result<Vec<_>, EvalError>>()?;
            m.insert("roles".into(), Value::Array(roles));
            if let Some(d) = &p.domain {
                m.insert("domain".into(), domain(d, args)?);
            }
            list.push(Value::Object(m));
        }
        out.insert("projects".into(), Value::Array(list));
    }
    Ok(out)
}

/// Python truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Python's `'domain' in x` for whatever `literal_eval` produced.
fn contains_domain(x: &Value) -> Result<bool, EvalError> {
    match x {
        Value::Object(m) => Ok(m.contains_key("domain")),
        Value::String(s) => Ok(s.contains("domain")),
        Value::Array(a) => Ok(a.iter().any(|v| v.as_str() == Some("domain"))),
        Value::Null => Err(EvalError::Python(
            "TypeError: argument of type 'NoneType' is not iterable".into(),
        )),
        Value::Bool(_) => Err(EvalError::Python(
            "TypeError: argument of type 'bool' is not iterable".into(),
        )),
        Value::Number(n) => Err(EvalError::Python(format!(
            "TypeError: argument of type '{}' is not iterable",
            if n.is_f64() { "float" } else { "int" }
        ))),
    }
}

fn invalid_groups(iv: &Map<String, Value>) -> EvalError {
    EvalError::Invalid(format!(
        "Invalid rule: {}. Both 'groups' and 'domain' keywords must be specified.",
        Value::Object(iv.clone())
    ))
}

/// `_normalize_groups`.
fn normalize_groups(iv: &Map<String, Value>) -> Result<Vec<Value>, EvalError> {
    let g = iv.get("groups").and_then(Value::as_str).unwrap_or_default();
    if g.contains("name") {
        let mut out = Vec::new();
        for item in py::literal_list(g) {
            let item = match &item {
                Value::String(s) if s.starts_with("JSON:") => {
                    let body = s.trim_start_matches(['J', 'S', 'O', 'N', ':']);
                    serde_json::from_str(body)
                        .map_err(|e| EvalError::Python(format!("JSONDecodeError: {e}")))?
                }
                _ => item,
            };
            if !contains_domain(&item)? {
                return Err(invalid_groups(iv));
            }
            out.push(item);
        }
        Ok(out)
    } else {
        let Some(d) = iv.get("domain") else {
            return Err(invalid_groups(iv));
        };
        Ok(py::literal_list(g)
            .into_iter()
            .map(|name| {
                let mut m = Map::new();
                m.insert("name".into(), name);
                m.insert("domain".into(), d.clone());
                Value::Object(m)
            })
            .collect())
    }
}

fn push_unique(set: &mut Vec<Value>, v: Value) {
    if !set.contains(&v) {
        set.push(v);
    }
}

impl Mapping {
    /// `RuleProcessor.process(assertion)`.
    pub fn evaluate(&self, assertion: &Assertion) -> Result<Mapped, EvalError> {
        process(self, assertion)
    }
}

fn process(m: &Mapping, assertion: &Assertion) -> Result<Mapped, EvalError> {
    let split: BTreeMap<&str, Vec<&str>> = assertion
        .iter()
        .map(|(k, v)| (k.as_str(), v.split(';').collect()))
        .collect();
    let mut pats = Patterns::default();
    let mut identity_values: Vec<Map<String, Value>> = Vec::new();
    for rule in &m.rules {
        let Some(args) = verify(&rule.remote, &split, &mut pats)? else {
            continue;
        };
        for local in &rule.local {
            identity_values.push(fill(local, &args)?);
        }
    }
    transform(m.version, identity_values)
}

/// `_transform` (+ `normalize_user`, `extract_projects` of the schema
/// version's processor).
fn transform(version: SchemaVersion, ivs: Vec<Map<String, Value>>) -> Result<Mapped, EvalError> {
    if ivs.is_empty() {
        return Err(EvalError::NoRuleMatched);
    }
    let mut user = Map::new();
    let mut group_ids: Vec<Value> = Vec::new();
    let mut group_names: Vec<Value> = Vec::new();
    // Domain key (name, else id) → groups, in first-seen order.
    let mut by_domain: Vec<(Value, Vec<Map<String, Value>>)> = Vec::new();
    let mut projects: Vec<Value> = Vec::new();
    for iv in &ivs {
        if let Some(Value::Object(u)) = iv.get("user") {
            if user.is_empty() {
                user = u.clone();
            }
        }
        if let Some(Value::Object(g)) = iv.get("group") {
            if let Some(id) = g.get("id") {
                push_unique(&mut group_ids, id.clone());
            } else if g.contains_key("name") {
                let d = g.get("domain").and_then(Value::as_object);
                let name = d.and_then(|d| d.get("name"));
                let key = if truthy(name) {
                    name.cloned().unwrap_or(Value::Null)
                } else {
                    d.and_then(|d| d.get("id")).cloned().unwrap_or(Value::Null)
                };
                match by_domain.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push(g.clone()),
                    None => by_domain.push((key, vec![g.clone()])),
                }
                // extract_groups: every domain's groups, unique by name
                // (first position, last value), appended again each time.
                for (_, list) in &by_domain {
                    let mut uniq: Vec<(Value, Map<String, Value>)> = Vec::new();
                    for grp in list {
                        let n = grp.get("name").cloned().unwrap_or(Value::Null);
                        match uniq.iter_mut().find(|(k, _)| *k == n) {
                            Some(slot) => slot.1 = grp.clone(),
                            None => uniq.push((n, grp.clone())),
                        }
                    }
                    group_names.extend(uniq.into_iter().map(|(_, g)| Value::Object(g)));
                }
            }
        }
        if iv.contains_key("groups") {
            group_names.extend(normalize_groups(iv)?);
        }
        if let Some(Value::String(ids)) = iv.get("group_ids") {
            for id in py::literal_list(ids) {
                if id.is_array() || id.is_object() {
                    return Err(EvalError::Python("TypeError: unhashable type".into()));
                }
                push_unique(&mut group_ids, id);
            }
        }
        if let Some(Value::Array(ps)) = iv.get("projects") {
            projects = ps.clone();
            if version == SchemaVersion::V2 {
                let default = iv.get("domain").cloned().unwrap_or(Value::Null);
                for p in projects.iter_mut() {
                    if let Value::Object(pm) = p {
                        if !truthy(pm.get("domain")) {
                            pm.insert("domain".into(), default.clone());
                        }
                    }
                }
            }
        }
    }
    if user.get("type").is_none_or(Value::is_null) {
        user.insert("type".into(), Value::String("ephemeral".into()));
    }
    if version == SchemaVersion::V2 && !truthy(user.get("domain")) {
        let last = ivs.last().and_then(|iv| iv.get("domain")).cloned();
        user.insert("domain".into(), last.unwrap_or(Value::Null));
    }
    group_ids.sort_by_key(|v| v.to_string());
    Ok(Mapped {
        user,
        group_ids,
        group_names,
        projects,
    })
}
