use serde_json::{Value, json};

use super::*;

fn assertion(pairs: &[(&str, &str)]) -> Assertion {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn map(rules: Value) -> Mapping {
    from_value(&rules).unwrap()
}

#[test]
fn egi_voms_mapping() {
    let m = map(json!([{
        "local": [{"user": {"name": "{0}"}}, {"group": {"id": "g-fedcloud"}}],
        "remote": [{"type": "GRST_CONN_AURI_0"},
                   {"type": "GRST_VOMS_FQANS", "any_one_of": ["^/fedcloud.egi.eu/.*"], "regex": true}]
    }]));
    let ok = m
        .evaluate(&assertion(&[
            ("GRST_CONN_AURI_0", "dn:/CN=A+B"),
            ("GRST_VOMS_FQANS", "/ops;/fedcloud.egi.eu/Role=NULL"),
        ]))
        .unwrap();
    assert_eq!(ok.user["name"], "dn:/CN=A+B");
    assert_eq!(ok.user["type"], "ephemeral");
    assert_eq!(ok.group_ids, vec![json!("g-fedcloud")]);
    let none = m.evaluate(&assertion(&[
        ("GRST_CONN_AURI_0", "dn:/CN=A"),
        ("GRST_VOMS_FQANS", "/ops"),
    ]));
    assert_eq!(none.unwrap_err(), EvalError::NoRuleMatched);
}

#[test]
fn multi_valued_direct_map_is_a_python_list() {
    let m = map(json!([{
        "local": [{"user": {"name": "u"}}, {"groups": "{0}", "domain": {"name": "d"}}],
        "remote": [{"type": "G", "whitelist": ["b", "a"]}]
    }]));
    let r = m.evaluate(&assertion(&[("G", "a;b;c")])).unwrap();
    assert_eq!(
        r.group_names,
        vec![
            json!({"name": "a", "domain": {"name": "d"}}),
            json!({"name": "b", "domain": {"name": "d"}})
        ]
    );
}

#[test]
fn a_test_only_rule_still_formats_its_locals() {
    // DirectMaps has no __len__: `not direct_maps` is never true, so
    // `{0}` with no direct map is a DirectMappingError even here.
    let m = map(json!([{
        "local": [{"user": {"name": "{0}"}}],
        "remote": [{"type": "A", "any_one_of": ["x"]}]
    }]));
    let e = m.evaluate(&assertion(&[("A", "x")])).unwrap_err();
    assert!(matches!(e, EvalError::DirectMapping(_)), "{e:?}");
    assert_eq!(e.status(), Some(500));
}

#[test]
fn empty_value_is_present() {
    let m = map(json!([{"local": [{"user": {"name": "[{0}]"}}], "remote": [{"type": "A"}]}]));
    assert_eq!(
        m.evaluate(&assertion(&[("A", "")])).unwrap().user["name"],
        "[]"
    );
}

#[test]
fn schema_errors_name_the_path() {
    let bad = [
        (json!({"rules": []}), "$.rules"),
        (
            json!([{"local": [], "remote": [{"type": "A", "any_one_of": [], "blacklist": []}]}]),
            "$[0].remote[0]",
        ),
        (
            json!([{"local": [{"user": {"nam": "x"}}], "remote": [{"type": "A"}]}]),
            "$[0].local[0].user.nam",
        ),
        (
            json!([{"local": [{"group": {"name": "x"}}], "remote": [{"type": "A"}]}]),
            "$[0].local[0].group",
        ),
        (
            json!([{"local": [], "remote": [{"type": "A", "regex": true}]}]),
            "$[0].remote[0]",
        ),
        (
            json!([{"local": [], "remote": [{"type": 3}]}]),
            "$[0].remote[0].type",
        ),
    ];
    for (v, path) in bad {
        match from_value(&v) {
            Err(MappingError::Schema { path: p, .. }) => assert_eq!(p, path, "{v}"),
            other => panic!("{v}: {other:?}"),
        }
    }
    match parse("{\n \"rules\": [\n}") {
        Err(MappingError::Json { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn environ_values_are_utf8_or_latin1() {
    let a = assertion_from_environ([(&b"A"[..], "é".as_bytes()), (&b"B"[..], &b"\xe9"[..])]);
    assert_eq!(a["A"], "é");
    assert_eq!(a["B"], "é");
}
