//! JWT checks against keys generated here: algorithm confusion, time
//! windows with leeway, issuer and audience.

use super::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const ISS: &str = "https://idp.test";

struct Signer {
    enc: EncodingKey,
    jwk: Value,
    pem_public: Vec<u8>,
}

fn rsa(kid: Option<&str>) -> Signer {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let enc = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap()).unwrap();
    let o = jwk.as_object_mut().unwrap();
    o.remove("alg");
    o.remove("kid");
    if let Some(k) = kid {
        o.insert("kid".into(), json!(k));
    }
    Signer {
        enc,
        jwk,
        pem_public: kp.public_key_pem().into_bytes(),
    }
}

fn ec() -> Signer {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let jwk =
        serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap()).unwrap();
    Signer {
        enc,
        jwk,
        pem_public: kp.public_key_pem().into_bytes(),
    }
}

fn set(keys: &[&Value]) -> KeySet {
    KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims(extra: Value) -> Value {
    let mut c =
        json!({"iss": ISS, "sub": "alice", "aud": "keystone", "exp": now() + 600, "iat": now()});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(s: &Signer, alg: Algorithm, kid: Option<&str>, c: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, c, &s.enc).unwrap()
}

fn check(
    token: &str,
    keys: &KeySet,
    aud: &[&str],
    leeway: u64,
) -> Result<Map<String, Value>, TokenError> {
    let u = peek(token)?;
    let alg = allowed_alg(
        &u.alg,
        &[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
    )?;
    let aud: Vec<String> = aud.iter().map(|s| s.to_string()).collect();
    check_with(token, alg, u.kid.as_deref(), keys, ISS, &aud, leeway)
}

#[test]
fn valid_token_and_kid_routing() {
    let a = rsa(Some("a"));
    let b = rsa(Some("b"));
    let keys = set(&[&a.jwk, &b.jwk]);
    let t = sign(&b, Algorithm::RS256, Some("b"), &claims(json!({})));
    let c = check(&t, &keys, &["keystone"], 0).unwrap();
    assert_eq!(c["sub"], "alice");
    // the right key under the wrong kid is refused
    let t = sign(&b, Algorithm::RS256, Some("a"), &claims(json!({})));
    assert_eq!(
        check(&t, &keys, &["keystone"], 0),
        Err(TokenError::BadSignature)
    );
    // unknown kid
    let t = sign(&b, Algorithm::RS256, Some("zz"), &claims(json!({})));
    assert_eq!(
        check(&t, &keys, &["keystone"], 0),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn jwks_without_kid_tries_each_key() {
    let a = rsa(None);
    let b = rsa(None);
    let keys = set(&[&a.jwk, &b.jwk]);
    let t = sign(&b, Algorithm::PS256, None, &claims(json!({})));
    assert!(check(&t, &keys, &["keystone"], 0).is_ok());
    let other = rsa(None);
    let t = sign(&other, Algorithm::RS256, None, &claims(json!({})));
    assert_eq!(
        check(&t, &keys, &["keystone"], 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn alg_none_is_refused() {
    let a = rsa(Some("a"));
    let keys = set(&[&a.jwk]);
    let h = B64.encode(br#"{"alg":"none","kid":"a"}"#);
    let p = B64.encode(claims(json!({})).to_string());
    for t in [format!("{h}.{p}."), format!("{h}.{p}.AAAA")] {
        assert_eq!(
            check(&t, &keys, &[], 0),
            Err(TokenError::AlgorithmNotAllowed)
        );
    }
}

#[test]
fn hs256_with_the_rsa_public_key_as_secret_is_refused() {
    let a = rsa(Some("a"));
    let keys = set(&[&a.jwk]);
    let forged = Signer {
        enc: EncodingKey::from_secret(&a.pem_public),
        jwk: json!({}),
        pem_public: vec![],
    };
    let t = sign(&forged, Algorithm::HS256, Some("a"), &claims(json!({})));
    assert_eq!(
        check(&t, &keys, &[], 0),
        Err(TokenError::AlgorithmNotAllowed)
    );
    // Even if an allow-list were misconfigured, no RSA key accepts HS256.
    assert_eq!(
        check_with(&t, Algorithm::HS256, Some("a"), &keys, ISS, &[], 0),
        Err(TokenError::UnknownKey)
    );
    // An `oct` key in the JWKS is never loaded.
    let oct = json!({"kty": "oct", "kid": "h", "k": B64.encode(b"secret")});
    assert!(set(&[&oct]).keys.is_empty());
}

#[test]
fn ec_token_against_rsa_keys_and_back() {
    let r = rsa(Some("r"));
    let e = ec();
    let keys = set(&[&r.jwk]);
    let t = sign(&e, Algorithm::ES256, Some("r"), &claims(json!({})));
    assert_eq!(check(&t, &keys, &[], 0), Err(TokenError::UnknownKey));
    let keys = set(&[&e.jwk]);
    let t = sign(&e, Algorithm::ES256, None, &claims(json!({})));
    assert!(check(&t, &keys, &[], 0).is_ok());
    let _ = e.pem_public;
}

#[test]
fn expiry_and_not_before_with_leeway() {
    let a = rsa(Some("a"));
    let keys = set(&[&a.jwk]);
    let t = |c: Value| sign(&a, Algorithm::RS256, Some("a"), &claims(c));
    assert_eq!(
        check(&t(json!({"exp": now() - 30})), &keys, &[], 0),
        Err(TokenError::Expired)
    );
    assert!(check(&t(json!({"exp": now() - 30})), &keys, &[], 60).is_ok());
    assert_eq!(
        check(&t(json!({"exp": now() - 90})), &keys, &[], 60),
        Err(TokenError::Expired)
    );
    assert_eq!(
        check(&t(json!({"nbf": now() + 30})), &keys, &[], 0),
        Err(TokenError::NotYetValid)
    );
    assert!(check(&t(json!({"nbf": now() + 30})), &keys, &[], 60).is_ok());
    assert!(matches!(
        check(&t(json!({"exp": null})), &keys, &[], 60),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn issuer_and_audience() {
    let a = rsa(Some("a"));
    let keys = set(&[&a.jwk]);
    let t = |c: Value| sign(&a, Algorithm::RS256, Some("a"), &claims(c));
    assert_eq!(
        check(&t(json!({"iss": "https://idp.test/"})), &keys, &[], 0),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        check(&t(json!({"aud": "other"})), &keys, &["keystone"], 0),
        Err(TokenError::WrongAudience)
    );
    assert!(
        check(
            &t(json!({"aud": ["other", "keystone"]})),
            &keys,
            &["keystone"],
            0
        )
        .is_ok()
    );
    assert!(matches!(
        check(&t(json!({"aud": null})), &keys, &["keystone"], 0),
        Err(TokenError::Malformed(_))
    ));
    // no audience configured: aud is not checked
    assert!(check(&t(json!({"aud": "other"})), &keys, &[], 0).is_ok());
}

#[test]
fn routing_helpers() {
    assert!(!looks_like_jwt("opaque-token_43chars"));
    assert!(!looks_like_jwt("a.b"));
    assert!(!looks_like_jwt("a.b.c"));
    let a = rsa(Some("a"));
    let t = sign(&a, Algorithm::RS256, Some("a"), &claims(json!({})));
    assert!(looks_like_jwt(&t));
    assert_eq!(issuer(&peek(&t).unwrap()).unwrap(), ISS);
}

/// An ID token is not an access token: each sign of one refuses it on the
/// bearer path, and an RFC 9068 access token passes.
#[test]
fn id_tokens_are_not_access_tokens() {
    let ok = |typ: Option<&str>, extra: Value, require: bool| {
        let c = claims(extra);
        access_token_rule(typ, c.as_object().unwrap(), require)
    };
    // Plain access tokens, with or without a header typ.
    assert_eq!(ok(None, json!({}), false), Ok(()));
    assert_eq!(ok(Some("JWT"), json!({}), false), Ok(()));
    assert_eq!(ok(Some("at+jwt"), json!({}), false), Ok(()));
    assert_eq!(ok(Some("application/AT+JWT"), json!({}), true), Ok(()));
    // Signs of an ID token.
    for extra in [
        json!({"nonce": "n-1"}),
        json!({"at_hash": "x"}),
        json!({"c_hash": "y"}),
        json!({"typ": "ID"}),
    ] {
        assert_eq!(
            ok(Some("JWT"), extra.clone(), false),
            Err(TokenError::IdToken),
            "{extra}"
        );
        assert_eq!(
            ok(None, extra.clone(), false),
            Err(TokenError::IdToken),
            "{extra}"
        );
    }
    assert_eq!(
        ok(Some("id_token"), json!({}), false),
        Err(TokenError::IdToken)
    );
    // Keycloak's access tokens say so in their typ claim.
    assert_eq!(
        ok(Some("JWT"), json!({"typ": "Bearer", "nonce": "n"}), false),
        Ok(())
    );
    // require_at_jwt: only RFC 9068 tokens.
    assert_eq!(
        ok(Some("JWT"), json!({}), true),
        Err(TokenError::NotAccessToken)
    );
    assert_eq!(ok(None, json!({}), true), Err(TokenError::NotAccessToken));
}

#[test]
fn crit_headers_and_future_iat_are_refused() {
    let s = rsa(Some("k1"));
    let keys = set(&[&s.jwk]);
    // crit names an extension nobody here implements (RFC 7515 §4.1.11).
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("k1".into());
    h.crit = Some(vec!["exp-ext".into()]);
    let t = jsonwebtoken::encode(&h, &claims(json!({})), &s.enc).unwrap();
    assert_eq!(
        check(&t, &keys, &["keystone"], 60).err(),
        Some(TokenError::CriticalExtension)
    );
    // iat beyond the leeway is refused; within it, accepted.
    let t = sign(
        &s,
        Algorithm::RS256,
        Some("k1"),
        &claims(json!({"iat": now() + 600})),
    );
    assert_eq!(
        check(&t, &keys, &["keystone"], 60).err(),
        Some(TokenError::IssuedInFuture)
    );
    let t = sign(
        &s,
        Algorithm::RS256,
        Some("k1"),
        &claims(json!({"iat": now() + 30})),
    );
    assert!(check(&t, &keys, &["keystone"], 60).is_ok());
}
