use super::*;
use serde_json::json;

fn export_all() -> Export {
    Export {
        claims: vec!["*".into()],
        remote_user: RemoteUser::Sub,
    }
}

/// The same introspection answer must give the same values mod_auth_openidc
/// 2.4.12 gave (recorded from a live Apache, see the fixture).
#[test]
fn matches_recorded_mod_auth_openidc_headers() {
    let rec: Value = serde_json::from_str(include_str!("mao-headers.json")).unwrap();
    let claims = rec["introspection_response"].as_object().unwrap();
    let iss = claims["iss"].as_str().unwrap();
    let id = to_identity(AuthMethod::Bearer, iss, claims, &export_all()).unwrap();
    let mut compared = 0;
    for pair in rec["oidc_headers"].as_array().unwrap() {
        let (name, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        if name == "OIDC_access_token" {
            continue; // the raw token is deliberately not forwarded
        }
        assert_eq!(id.get(name), Some(want.as_bytes()), "{name}");
        compared += 1;
    }
    assert_eq!(compared, 15);
    let oidc = id
        .attributes
        .iter()
        .filter(|a| a.name.starts_with("OIDC-"))
        .count();
    assert_eq!(oidc, compared, "no extra OIDC- variables");
    assert_eq!(id.get("HTTP_OIDC_ISS"), Some(iss.as_bytes()));
    assert_eq!(
        id.get("HTTP_OIDC_SUB"),
        Some(&b"a11ce0000000000000000000000000001@egi.test"[..])
    );
    assert_eq!(
        id.remote_user.as_deref(),
        Some("a11ce0000000000000000000000000001@egi.test")
    );
}

#[test]
fn value_formats() {
    let f = |v: Value| format_value(&v).map(|b| String::from_utf8(b).unwrap());
    assert_eq!(f(json!("x;y")), Some("x;y".into()));
    assert_eq!(f(json!(true)), Some("1".into()));
    assert_eq!(f(json!(false)), Some("0".into()));
    assert_eq!(f(json!(-42)), Some("-42".into()));
    assert_eq!(f(json!(1.5)), Some("1.500000".into()));
    assert_eq!(f(json!([])), Some("".into()));
    assert_eq!(
        f(json!(["a", true, 3, {"x": 1}, ["n"], null, "b"])),
        Some("a;1;b".into())
    );
    assert_eq!(f(json!(null)), None);
    assert_eq!(
        f(json!({"a": [1, "é/"], "b": null})),
        Some(r#"{"a": [1, "é/"], "b": null}"#.into())
    );
    assert_eq!(f(json!("two\nlines\r")), Some("two lines\r".into()));
    // raw UTF-8, not latin-1 or escaped
    assert_eq!(format_value(&json!("josé")).unwrap(), "josé".as_bytes());
}

#[test]
fn selected_claims_only_and_empty_arrays() {
    let claims = json!({"sub": "s", "iss": "https://i", "email": "e", "eduperson_entitlement": []});
    let ex = Export {
        claims: vec!["eduperson_entitlement".into()],
        remote_user: RemoteUser::SubAtIssuer,
    };
    let id = to_identity(
        AuthMethod::Bearer,
        "https://i",
        claims.as_object().unwrap(),
        &ex,
    )
    .unwrap();
    assert_eq!(id.get("OIDC-eduperson_entitlement"), Some(&b""[..]));
    assert_eq!(id.get("OIDC-email"), None);
    assert_eq!(id.remote_user.as_deref(), Some("s@i"));
}

#[test]
fn subject_is_required() {
    for c in [json!({}), json!({"sub": ""}), json!({"sub": 5})] {
        let e = to_identity(
            AuthMethod::Bearer,
            "https://i",
            c.as_object().unwrap(),
            &export_all(),
        );
        assert_eq!(e.err(), Some(ClaimsError::NoSubject));
    }
}

#[test]
fn header_names_are_normalised_like_mao() {
    assert_eq!(
        header_name("eduperson_entitlement"),
        "eduperson_entitlement"
    );
    assert_eq!(header_name("a b:c/d"), "a-b-c-d");
    assert_eq!(header_name("é"), "--");
}
