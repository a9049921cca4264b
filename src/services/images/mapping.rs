//! VO → member projects: which projects an image of a VO is shared with.
//!
//! Two sources, merged: the `[plugins.images.projects]` table and a JSON
//! file in any of the shapes the tools it replaces read:
//! * cloudkeeper-os `mapping.json` / cASO's old `voms.json`:
//!   `{"<vo>": {"tenant": "<project>"}}`, `{"<vo>": {"project": "<p>", "domain": "<d>"}}`;
//! * cASO's `voms.json` list form: `{"<vo>": {"projects": ["<p1>", "<p2>"]}}`;
//! * atrope's: `{"<vo>": {"project_id": "<id>"}}`;
//!
//! and any of these keys holding a list. A project is named by id or name;
//! names are resolved with the projects the sync user has roles on.

use std::collections::BTreeMap;

use serde_json::Value;

/// A project reference: id or name, and an optional domain (name or id)
/// for names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProjectRef {
    pub name_or_id: String,
    pub domain: Option<String>,
}

/// Why a mapping file is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("the top level must be an object of VOs")]
    NotObject,
    #[error("VO {vo:?}: {reason}")]
    Vo { vo: String, reason: String },
}

const KEYS: &[&str] = &["tenant", "project", "project_id", "projects", "tenants"];

/// Parses a mapping file's text.
pub fn parse_json(text: &str) -> Result<BTreeMap<String, Vec<ProjectRef>>, MappingError> {
    let v: Value = serde_json::from_str(text).map_err(|e| MappingError::Json(e.to_string()))?;
    let obj = v.as_object().ok_or(MappingError::NotObject)?;
    let mut out = BTreeMap::new();
    for (vo, entry) in obj {
        let err = |reason: &str| MappingError::Vo {
            vo: vo.clone(),
            reason: reason.into(),
        };
        let e = entry
            .as_object()
            .ok_or_else(|| err("expected an object such as {\"tenant\": \"<project>\"}"))?;
        let domain = match e.get("domain") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => return Err(err("domain must be a string")),
        };
        let mut refs = Vec::new();
        for k in KEYS {
            match e.get(*k) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if !s.is_empty() => refs.push(s.clone()),
                Some(Value::Array(a)) => {
                    for x in a {
                        match x.as_str() {
                            Some(s) if !s.is_empty() => refs.push(s.to_string()),
                            _ => return Err(err(&format!("{k} must list project names or ids"))),
                        }
                    }
                }
                Some(_) => {
                    return Err(err(&format!("{k} must be a project name or id, or a list")));
                }
            }
        }
        if refs.is_empty() {
            return Err(err(
                "names no project (keys: tenant, project, project_id, projects)",
            ));
        }
        let list: &mut Vec<ProjectRef> = out.entry(vo.clone()).or_default();
        for r in refs {
            let p = ProjectRef {
                name_or_id: r,
                domain: domain.clone(),
            };
            if !list.contains(&p) {
                list.push(p);
            }
        }
    }
    Ok(out)
}

/// A project the sync user can scope to, as `GET /v3/auth/projects` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownProject {
    pub id: String,
    pub name: String,
    pub domain_id: String,
}

/// Resolves references to project ids. A reference matches a project's
/// id, or its name (in the given domain, by id, when one is given; domain
/// names other than `Default` cannot be checked without more rights, so
/// they match any domain id equal to the name lower-cased too).
pub fn resolve(
    map: &BTreeMap<String, Vec<ProjectRef>>,
    known: &[KnownProject],
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for (vo, refs) in map {
        let mut ids: Vec<String> = Vec::new();
        for r in refs {
            let by_id = known.iter().find(|k| k.id == r.name_or_id);
            let by_name: Vec<&KnownProject> = known
                .iter()
                .filter(|k| k.name == r.name_or_id)
                .filter(|k| {
                    r.domain
                        .as_deref()
                        .is_none_or(|d| k.domain_id == d || k.domain_id == d.to_lowercase())
                })
                .collect();
            match (by_id, by_name.as_slice()) {
                (Some(k), _) | (None, &[k]) => {
                    if !ids.contains(&k.id) {
                        ids.push(k.id.clone());
                    }
                }
                (None, []) => missing.push(format!("{vo}: {}", r.name_or_id)),
                (None, _) => missing.push(format!(
                    "{vo}: {} is ambiguous (several domains; give its id)",
                    r.name_or_id
                )),
            }
        }
        out.insert(vo.clone(), ids);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "project(s) not found among those the sync user has a role on: {}",
            missing.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ProjectRef {
        ProjectRef {
            name_or_id: s.into(),
            domain: None,
        }
    }

    #[test]
    fn every_known_shape_parses() {
        let m = parse_json(
            r#"{"vo.a": {"tenant": "a1"},
                "vo.b": {"projects": ["b1", "b2"]},
                "vo.c": {"project": "c1", "domain": "Default"},
                "vo.d": {"project_id": "0123abcd"},
                "vo.e": {"tenant": ["e1", "e2"], "projects": ["e2"]}}"#,
        )
        .unwrap();
        assert_eq!(m["vo.a"], vec![r("a1")]);
        assert_eq!(m["vo.b"], vec![r("b1"), r("b2")]);
        assert_eq!(m["vo.c"][0].domain.as_deref(), Some("Default"));
        assert_eq!(m["vo.d"], vec![r("0123abcd")]);
        assert_eq!(m["vo.e"], vec![r("e1"), r("e2")]);
    }

    #[test]
    fn bad_files_are_refused_with_the_vo() {
        assert!(matches!(parse_json("[1]"), Err(MappingError::NotObject)));
        assert!(matches!(parse_json("{"), Err(MappingError::Json(_))));
        for bad in [
            r#"{"vo": "p"}"#,
            r#"{"vo": {}}"#,
            r#"{"vo": {"tenant": 3}}"#,
            r#"{"vo": {"projects": [1]}}"#,
            r#"{"vo": {"tenant": "p", "domain": 1}}"#,
        ] {
            let e = parse_json(bad).unwrap_err();
            assert!(
                matches!(e, MappingError::Vo { ref vo, .. } if vo == "vo"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn references_resolve_by_id_or_name() {
        let known = vec![
            KnownProject {
                id: "id-a1".into(),
                name: "a1".into(),
                domain_id: "default".into(),
            },
            KnownProject {
                id: "id-b1".into(),
                name: "b1".into(),
                domain_id: "default".into(),
            },
        ];
        let map: BTreeMap<String, Vec<ProjectRef>> = [
            ("vo.a".to_string(), vec![r("a1"), r("id-a1")]),
            (
                "vo.b".to_string(),
                vec![ProjectRef {
                    name_or_id: "b1".into(),
                    domain: Some("Default".into()),
                }],
            ),
        ]
        .into();
        let ids = resolve(&map, &known).unwrap();
        assert_eq!(ids["vo.a"], vec!["id-a1"]);
        assert_eq!(ids["vo.b"], vec!["id-b1"]);
        let bad: BTreeMap<String, Vec<ProjectRef>> = [("vo.x".to_string(), vec![r("nope")])].into();
        assert!(resolve(&bad, &known).unwrap_err().contains("vo.x: nope"));
    }
}
