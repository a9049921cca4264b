//! Untrusted input on the bearer path: the token (header routing, JWT
//! splitting, signature check against an arbitrary JWKS) and the IdP's
//! introspection answer (checks, then claim encoding). Nothing may panic.
#![no_main]
use fedgate::AuthMethod;
use fedgate::internal::oidc::claims::{Export, to_identity};
use fedgate::internal::oidc::idp::RemoteUser;
use fedgate::internal::oidc::jwks::KeySet;
use fedgate::internal::bearer::extract;
use fedgate::internal::oidc::{introspect, jws as jwt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // token \0 document (used both as JWKS and as introspection answer)
    let (tok, doc) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let token = String::from_utf8_lossy(tok);
    let _ = extract::check_chars(&token);
    if jwt::looks_like_jwt(&token)
        && let Ok(u) = jwt::peek(&token)
    {
        let _ = jwt::issuer(&u);
        let algs = [jsonwebtoken::Algorithm::RS256, jsonwebtoken::Algorithm::ES256, jsonwebtoken::Algorithm::EdDSA];
        if let (Ok(alg), Ok(keys)) = (jwt::allowed_alg(&u.alg, &algs), KeySet::parse(doc)) {
            let _ = jwt::check_with(&token, alg, u.kid.as_deref(), &keys, "https://i", &[], 60);
        }
    }
    let aud = vec!["ks".to_string()];
    for a in [&[][..], &aud[..]] {
        if let Ok(claims) = introspect::check_response(doc, "https://i", a, 1_800_000_000, 60) {
            let ex = Export { claims: vec!["*".into()], remote_user: RemoteUser::SubAtIssuer };
            if let Ok(id) = to_identity(AuthMethod::Bearer, "https://i", &claims, &ex) {
                assert!(id.get("HTTP_OIDC_ISS").is_some());
                assert!(!id.attributes.iter().any(|x| x.value.contains(&b'\n')));
            }
        }
    }
});
