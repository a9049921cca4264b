//! Bearer tokens end to end: real oidc-provider IdPs, fedgate in process,
//! the uwsgi echo upstream standing in for Keystone.
//!
//! Ports: IdPs 18760-18768, 18775 and 18776 (18769 stays closed: a dead IdP),
//! Redis 18790; fedgate binds ephemeral ports.

mod common;

use std::time::Duration;

use common::idp::*;
use serde_json::Value;

fn env_str<'a>(e: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    e.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{k} missing from environ"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_idps_opaque_and_jwt_tokens_reach_keystone_identity() {
    let _idps = start_idps(&[("a", 18760, "a"), ("b", 18761, "b")]);
    let gate = Gate::start(&format!(
        "{}{}{ROUTE}[route.bearer]\nrequire_claims = [{{ claim = \"eduperson_entitlement\", regex = \"^urn:mace:egi.eu:group:fedcloud.egi.eu:\" }}]\n\
         [[route]]\nname = \"ops\"\npath = \"^/ops\"\nauth = \"bearer\"\n[route.bearer]\nidps = [\"a\"]\n\
         require_claims = [{{ claim = \"eduperson_entitlement\", value = \"urn:mace:egi.eu:group:fedcloud.egi.eu:role=vm_operator#aai.egi.eu\" }}]\n\
         [[route]]\nname = \"esaco\"\npath = \"^/introspect$\"\nauth = \"introspect\"\n[route.bearer]\nclients = [{{ id = \"svc\", secret = \"svc-pw\" }}]\n",
        idp_toml("a", 18760, ""),
        idp_toml("b", 18761, "")
    ))
    .await;

    for (port, sub) in [
        (18760, "a11ce0000000000000000000000000001@egi.test"),
        (18761, "idpb-alice-7d3f9c1e"),
    ] {
        for kind in [Kind::Userinfo, Kind::Opaque, Kind::Jwt] {
            let t = mint(port, "alice", kind, None).await;
            let e = gate.environ(AUTH_PATH, &t).await;
            assert_eq!(env_str(&e, "HTTP_OIDC_ISS"), issuer(port), "{kind:?}");
            assert_eq!(env_str(&e, "HTTP_OIDC_SUB"), sub, "{kind:?}");
            assert_eq!(env_str(&e, "REMOTE_USER"), sub);
            assert!(
                env_str(&e, "OIDC-eduperson_entitlement")
                    .contains("fedcloud.egi.eu:role=vm_operator#aai.egi.eu")
            );
            assert_eq!(env_str(&e, "OIDC-email_verified"), "1");
            assert!(
                !e.values().any(|v| v.as_str() == Some(t.as_str())),
                "the token itself must not be forwarded as identity"
            );
        }
    }

    // dave: a 9.6 KB JWT with 101 entitlements passes, joined with ';'.
    let dave = mint(18760, "dave", Kind::Jwt, None).await;
    assert!(dave.len() > 9000, "{}", dave.len());
    let e = gate.environ(AUTH_PATH, &dave).await;
    let ents = env_str(&e, "OIDC-eduperson_entitlement");
    assert_eq!(ents.split(';').count(), 101);

    // carol: empty entitlement list -> empty value, refused by the route's rule (403).
    let carol = mint(18760, "carol", Kind::Userinfo, None).await;
    let a = gate.get(AUTH_PATH, Some(&carol)).await;
    assert_eq!(a.status, 403, "{}", reason(&a));
    assert!(
        reason(&a).contains("eduperson_entitlement"),
        "{}",
        reason(&a)
    );

    // /ops: only IdP a, and only vm_operators.
    let bob = mint(18760, "bob", Kind::Opaque, None).await;
    assert_eq!(gate.get("/ops", Some(&bob)).await.status, 403);
    let alice_a = mint(18760, "alice", Kind::Jwt, None).await;
    assert_eq!(gate.get("/ops", Some(&alice_a)).await.status, 200);
    let alice_b = mint(18761, "alice", Kind::Jwt, None).await;
    let a = gate.get("/ops", Some(&alice_b)).await;
    assert_eq!(a.status, 401);
    assert!(
        reason(&a).contains("identity provider `b`"),
        "{}",
        reason(&a)
    );

    // ESACO-compatible /introspect.
    let c = &gate.client;
    let u = gate.url("/introspect");
    let a = c
        .post_form(&u, Some(("svc", "svc-pw")), &[("token", &bob)])
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], "b0b000000000000000000000000000002@egi.test");
    assert_eq!(v["aud"], "urn:fedgate:opaque");
    let a = c
        .post_form(&u, Some(("svc", "svc-pw")), &[("token", "nope")])
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&a.body).unwrap(),
        serde_json::json!({"active": false})
    );
    let a = c
        .post_form(&u, Some(("svc", "wrong")), &[("token", &bob)])
        .await
        .unwrap();
    assert_eq!(a.status, 401);
    let a = c.post_form(&u, None, &[("token", &bob)]).await.unwrap();
    assert_eq!(a.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_get_401_with_a_reason() {
    let _idps = start_idps(&[("a", 18763, "a"), ("c", 18764, "a")]);
    let gate = Gate::start(&format!(
        "{}{ROUTE}",
        idp_toml("a", 18763, "leeway_secs = 0")
    ))
    .await;

    let check = |a: fedgate::internal::http_client::Answer, want: &str| {
        assert_eq!(
            a.status,
            401,
            "{want}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            reason(&a).contains(want),
            "want `{want}`, got `{}`",
            reason(&a)
        );
        let ch = challenge(&a);
        assert!(ch.starts_with("Bearer ") && ch.contains(want), "{ch}");
    };

    // no token at all
    let a = gate.get(AUTH_PATH, None).await;
    check(a, "no bearer token");
    // revoked
    let t = mint(18763, "alice", Kind::Userinfo, None).await;
    revoke(18763, &t).await;
    check(gate.get(AUTH_PATH, Some(&t)).await, "not active");
    // expired: opaque (the IdP says inactive) and JWT (checked here)
    let t = mint(18763, "alice", Kind::Opaque, Some(1)).await;
    let j = mint(18763, "alice", Kind::Jwt, Some(1)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    check(gate.get(AUTH_PATH, Some(&t)).await, "not active");
    check(gate.get(AUTH_PATH, Some(&j)).await, "expired");
    // foreign issuer: a real IdP fedgate does not trust
    let f = mint(18764, "alice", Kind::Jwt, None).await;
    check(
        gate.get(AUTH_PATH, Some(&f)).await,
        "issuer is not a configured",
    );
    // a trusted issuer's JWT with its payload changed
    let good = mint(18763, "bob", Kind::Jwt, None).await;
    let parts: Vec<&str> = good.split('.').collect();
    let other = mint(18763, "alice", Kind::Jwt, None).await;
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    check(
        gate.get(AUTH_PATH, Some(&forged)).await,
        "signature is not valid",
    );
    // alg none
    let none = format!("eyJhbGciOiJub25lIn0.{}.", parts[1]);
    check(
        gate.get(AUTH_PATH, Some(&none)).await,
        "algorithm is not accepted",
    );
    // malformed: characters outside RFC 6750, and a JWT-looking token whose payload is junk
    check(gate.get(AUTH_PATH, Some("abc%def")).await, "malformed");
    check(
        gate.get(AUTH_PATH, Some(&format!("{}.bm90IGpzb24.c2ln", parts[0])))
            .await,
        "malformed",
    );
    // random opaque junk
    check(
        gate.get(
            AUTH_PATH,
            Some("thisIsNotAValidTokenAtAll0123456789abcdefgh"),
        )
        .await,
        "not active",
    );
    // oversized (default limit 16 KiB)
    let big = "A".repeat(20_000);
    check(
        gate.get(AUTH_PATH, Some(&big)).await,
        "larger than 16384 bytes",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_requests_with_a_new_token_cause_one_introspection() {
    let _idps = start_idps(&[("a", 18765, "a")]);
    let gate =
        std::sync::Arc::new(Gate::start(&format!("{}{ROUTE}", idp_toml("a", 18765, ""))).await);
    // warm discovery and the TLS pool, with another token
    let warm = mint(18765, "bob", Kind::Userinfo, None).await;
    gate.environ(AUTH_PATH, &warm).await;
    let t = mint(18765, "alice", Kind::Userinfo, None).await;
    let before = introspections(18765).await;
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let g = gate.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            g.get(AUTH_PATH, Some(&t)).await.status.as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000);
    assert_eq!(
        introspections(18765).await - before,
        1,
        "one introspection for 1000 concurrent requests"
    );
    // junk tokens: a flood of the same junk costs the IdP one call (negative cache)
    let before = introspections(18765).await;
    for _ in 0..50 {
        assert_eq!(
            gate.get(AUTH_PATH, Some("junkjunkjunkjunk")).await.status,
            401
        );
    }
    assert_eq!(introspections(18765).await - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idp_down_cached_token_works_until_it_expires() {
    let _idps = start_idps(&[("a", 18766, "a")]);
    let gate = Gate::start(&format!(
        "{}{ROUTE}",
        idp_toml("a", 18766, "leeway_secs = 0")
    ))
    .await;
    let t = mint(18766, "alice", Kind::Userinfo, Some(5)).await;
    let jwt_before = mint(18766, "bob", Kind::Jwt, None).await;
    gate.environ(AUTH_PATH, &t).await;
    gate.environ(AUTH_PATH, &jwt_before).await; // loads the JWKS
    let fresh = mint(18766, "bob", Kind::Userinfo, None).await;
    let fresh_jwt = mint(18766, "carol", Kind::Jwt, None).await;
    set_down(18766, true).await;
    // cached opaque token: still accepted
    for _ in 0..3 {
        gate.environ(AUTH_PATH, &t).await;
    }
    // a new JWT still verifies with the last good JWKS
    let e = gate.environ(AUTH_PATH, &fresh_jwt).await;
    assert_eq!(
        e["HTTP_OIDC_SUB"],
        "ca401000000000000000000000000003@egi.test"
    );
    // a new opaque token cannot be checked: 503, not 401
    let a = gate.get(AUTH_PATH, Some(&fresh)).await;
    assert_eq!(a.status, 503, "{}", reason(&a));
    assert!(reason(&a).contains("unavailable"));
    // once the cached token expires it is no longer accepted
    tokio::time::sleep(Duration::from_secs(6)).await;
    let a = gate.get(AUTH_PATH, Some(&t)).await;
    assert_eq!(a.status, 503, "{}", reason(&a));
    set_down(18766, false).await;
    let a = gate.get(AUTH_PATH, Some(&t)).await;
    assert_eq!(
        a.status,
        401,
        "expired token once the IdP is back: {}",
        reason(&a)
    );
    gate.environ(AUTH_PATH, &fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_the_cache_through_redis() {
    let _idps = start_idps(&[("a", 18768, "a")]);
    let _redis = start_redis(18790);
    let conf = format!(
        "{}[cache]\nredis_url = \"redis://127.0.0.1:18790/0\"\nredis_prefix = \"fgtest:\"\n\
         [state]\nkeys = [\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]\n{ROUTE}",
        idp_toml("a", 18768, "")
    );
    let one = Gate::start(&conf).await;
    let two = Gate::start(&conf).await;
    for kind in [Kind::Userinfo, Kind::Opaque] {
        let t = mint(18768, "bob", kind, None).await;
        let before = introspections(18768).await;
        let e1 = one.environ(AUTH_PATH, &t).await;
        assert_eq!(introspections(18768).await - before, 1);
        let e2 = two.environ(AUTH_PATH, &t).await;
        assert_eq!(
            introspections(18768).await - before,
            1,
            "instance two must use the Redis entry"
        );
        for k in [
            "HTTP_OIDC_ISS",
            "HTTP_OIDC_SUB",
            "OIDC-eduperson_entitlement",
            "REMOTE_USER",
        ] {
            assert_eq!(e1[k], e2[k]);
        }
    }
    // keys are hashes with a TTL, values are sealed and never contain the
    // token (the legacy keys still work as a shorthand for [state])
    let client = redis::Client::open("redis://127.0.0.1:18790/0").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("fgtest:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        assert_eq!(k.len(), "fgtest:token:".len() + 64, "{k}");
        let ttl: i64 = redis::cmd("TTL").arg(k).query_async(&mut c).await.unwrap();
        assert!(ttl > 0 && ttl <= 300, "{ttl}");
    }
}

/// `fedgate check-config` fetches each IdP's discovery document and key
/// set: a live IdP is reported with its keys, a dead one is a failed probe
/// on its `issuer` line (not a configuration problem).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_config_probes_each_idp() {
    let _idps = start_idps(&[("a", 18767, "a")]);
    let gate = Gate::start(&format!(
        "{}{}{ROUTE}",
        idp_toml("live", 18767, ""),
        idp_toml("gone", 18769, "timeout_secs = 2"),
    ))
    .await;
    let text = std::fs::read_to_string(gate.config_path()).unwrap();
    let cfg = gate.bound.shared.runtime.load_full().config.clone();
    let report = fedgate::internal::check(&cfg, fedgate::internal::Probes::Run).await;
    let (problems, notes) = (report.probes, report.notes);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        notes.iter().any(|n| n.contains("idp `live`")
            && n.contains("discovery OK")
            && n.contains("signing key")),
        "{notes:?}"
    );
    let gone_line = text
        .lines()
        .position(|l| l.contains(&issuer(18769)))
        .unwrap()
        + 1;
    let about_gone: Vec<_> = problems
        .0
        .iter()
        .filter(|p| p.message.contains("idp `gone`"))
        .collect();
    assert_eq!(about_gone.len(), 1, "{problems:?}");
    assert_eq!(about_gone[0].line, Some(gone_line), "{problems:?}");
    assert!(
        !problems.0.iter().any(|p| p.message.contains("idp `live`")),
        "{problems:?}"
    );
}

/// A reload that leaves the IdPs and the cache settings alone keeps the
/// validated tokens (no burst of introspections after every SIGHUP); one
/// that changes them starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_keeps_cached_tokens_unless_the_idps_change() {
    let _idps = start_idps(&[("a", 18762, "a")]);
    let gate = Gate::start(&format!("{}{ROUTE}", idp_toml("a", 18762, ""))).await;
    let t = mint(18762, "alice", Kind::Opaque, None).await;
    assert_eq!(gate.get(AUTH_PATH, Some(&t)).await.status, 200);
    let asked = introspections(18762).await;
    assert!(asked >= 1);

    gate.bound
        .shared
        .reload()
        .await
        .expect("same config reloads");
    assert_eq!(gate.get(AUTH_PATH, Some(&t)).await.status, 200);
    assert_eq!(
        introspections(18762).await,
        asked,
        "unchanged IdPs: the cached token answers"
    );

    let path = gate.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n[cache]\nmax_ttl_secs = 120\n")).unwrap();
    gate.bound
        .shared
        .reload()
        .await
        .expect("new cache settings reload");
    assert_eq!(gate.get(AUTH_PATH, Some(&t)).await.status, 200);
    assert_eq!(
        introspections(18762).await,
        asked + 1,
        "new cache settings: a new cache asks the IdP again"
    );
}

/// An ID token is not an access token. The real IdP issues alice an ID
/// token (to another client, with nonce and at_hash, as a login would);
/// with no audience configured, which is what EGI needs, it used to log
/// her in. `require_at_jwt` accepts RFC 9068 access tokens only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn id_tokens_are_refused_as_bearer_tokens() {
    let _idps = start_idps(&[("a", 18775, "a")]);
    let gate = Gate::start(&format!(
        "{}{ROUTE}\n[[route]]\nname = \"strict\"\npath = \"^/strict\"\nauth = \"bearer\"\n",
        idp_toml("a", 18775, "")
    ))
    .await;
    let id_token = mint_id_token(18775, "alice").await;
    let a = gate.get(AUTH_PATH, Some(&id_token)).await;
    assert_eq!(a.status, 401, "{}", reason(&a));
    assert!(
        reason(&a).contains("an ID token is not an access token"),
        "{}",
        reason(&a)
    );
    assert!(challenge(&a).contains("invalid_token"), "{}", challenge(&a));
    // Her access tokens still work, opaque and RFC 9068 JWT alike.
    for kind in [Kind::Opaque, Kind::Jwt] {
        let t = mint(18775, "alice", kind, None).await;
        assert_eq!(gate.get(AUTH_PATH, Some(&t)).await.status, 200, "{kind:?}");
    }
    drop(gate);

    // require_at_jwt: the IdP's RFC 9068 tokens pass, other JWTs do not.
    let gate = Gate::start(&format!(
        "{}{ROUTE}",
        idp_toml("a", 18775, "require_at_jwt = true")
    ))
    .await;
    let jwt = mint(18775, "alice", Kind::Jwt, None).await;
    assert_eq!(gate.get(AUTH_PATH, Some(&jwt)).await.status, 200);
    let a = gate.get(AUTH_PATH, Some(&id_token)).await;
    assert_eq!(a.status, 401);
    assert!(reason(&a).contains("at+jwt"), "{}", reason(&a));
}

/// Control characters in a claim value (NUL, SOH, VT, FF, DEL) cannot
/// travel in an HTTP header. They used to make the HTTP upstream answer 400
/// and lock the user out; they now become spaces, as line breaks do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_characters_in_claims_do_not_lock_users_out() {
    let _idps = start_idps(&[("a", 18776, "a")]);
    let up = common::upstream::http_echo();
    let gate = Gate::start_with_upstream(
        &format!("http://{}", up.addr),
        &format!("{}{ROUTE}", idp_toml("a", 18776, "userinfo = true")),
    )
    .await;
    let t = mint(18776, "erin", Kind::Opaque, None).await;
    let a = gate.get(AUTH_PATH, Some(&t)).await;
    assert_eq!(a.status, 200, "{}", reason(&a));
    let raw = String::from_utf8_lossy(&up.record.last().raw).into_owned();
    let line = raw
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("oidc-name:"))
        .unwrap_or_else(|| panic!("no OIDC-name header: {raw}"));
    assert_eq!(
        line.split_once(':').unwrap().1.trim(),
        "Erin Null Soh Vt Ff Del"
    );
}
