//! Per-route `require_claims`: like mod_auth_openidc's `Require claim
//! name:value` (exact) and `Require claim name~regex`, where any element
//! of an array claim may match and `a.b` reaches into nested objects.

use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A regex compiled while the configuration is parsed, so a bad one is an
/// error with its line number.
#[derive(Debug, Clone)]
pub struct ClaimRegex(pub Regex);

impl<'de> Deserialize<'de> for ClaimRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s)
            .map(ClaimRegex)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex: {e}")))
    }
}

/// One rule; exactly one of `value` and `regex`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireClaim {
    /// Claim name; dots reach into objects (`realm_access.roles`).
    pub claim: String,
    #[serde(default)]
    pub value: Option<String>,
    /// Searched anywhere in the value unless anchored.
    #[serde(default)]
    pub regex: Option<ClaimRegex>,
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl RequireClaim {
    pub fn matches(&self, claims: &Map<String, Value>) -> bool {
        let values: Vec<String> = match lookup(claims, &self.claim) {
            Some(Value::Array(a)) => a.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
            None => return false,
        };
        values.iter().any(|s| {
            self.value.as_deref().is_none_or(|want| want == s)
                && self.regex.as_ref().is_none_or(|r| r.0.is_match(s))
        })
    }

    pub fn check_shape(&self) -> Result<(), String> {
        match (&self.value, &self.regex) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(format!(
                "require_claims for `{}` needs exactly one of value and regex",
                self.claim
            )),
        }
    }
}

/// The first rule that fails, if any: every rule must hold.
pub fn first_failure<'a>(
    rules: &'a [RequireClaim],
    claims: &Map<String, Value>,
) -> Option<&'a RequireClaim> {
    rules.iter().find(|r| !r.matches(claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(t: &str) -> RequireClaim {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn exact_regex_arrays_and_nesting() {
        let c = json!({
            "eduperson_entitlement": ["urn:a:vo1#x", "urn:a:vo2#x"],
            "email_verified": true,
            "realm": {"roles": ["admin"]},
            "iss": "https://i"
        });
        let c = c.as_object().unwrap();
        assert!(rule("claim = \"eduperson_entitlement\"\nvalue = \"urn:a:vo2#x\"").matches(c));
        assert!(!rule("claim = \"eduperson_entitlement\"\nvalue = \"urn:a:vo2\"").matches(c));
        assert!(rule("claim = \"eduperson_entitlement\"\nregex = \"^urn:a:vo[0-9]#\"").matches(c));
        assert!(!rule("claim = \"eduperson_entitlement\"\nregex = \"^vo\"").matches(c));
        assert!(rule("claim = \"email_verified\"\nvalue = \"true\"").matches(c));
        assert!(rule("claim = \"realm.roles\"\nvalue = \"admin\"").matches(c));
        assert!(!rule("claim = \"missing\"\nregex = \".*\"").matches(c));
        let rules = vec![
            rule("claim = \"iss\"\nvalue = \"https://i\""),
            rule("claim = \"iss\"\nvalue = \"x\""),
        ];
        assert_eq!(
            first_failure(&rules, c).unwrap().value.as_deref(),
            Some("x")
        );
    }

    #[test]
    fn bad_regex_and_shape() {
        assert!(toml::from_str::<RequireClaim>("claim = \"a\"\nregex = \"(\"").is_err());
        assert!(rule("claim = \"a\"").check_shape().is_err());
        assert!(rule("claim = \"a\"\nvalue = \"b\"").check_shape().is_ok());
    }
}
