//! The real `openstack` CLI gets a Keystone token through fedgate with
//! bearer tokens from two IdPs (opaque and JWT), against a real Keystone
//! with the EGI OIDC mapping.
//!
//! Needs a running Keystone; skipped unless FEDGATE_E2E_KEYSTONE_UWSGI
//! (host:port of its uwsgi-socket) is set. Its IdP `egi.eu` must list
//! http://127.0.0.1:18760 and http://127.0.0.1:18761 as remote ids, as
//! scripts/test.sh arranges (tests/harness/keystone/setup.sh with
//! KEYSTONE_OIDC_ISSUERS). The CLI is
//! FEDGATE_E2E_OPENSTACK or ~/.cache/fedgate/keystone-venv/bin/openstack.

mod common;

use common::idp::*;
use serde_json::Value;

fn openstack() -> String {
    std::env::var("FEDGATE_E2E_OPENSTACK").unwrap_or_else(|_| {
        format!(
            "{}/.cache/fedgate/keystone-venv/bin/openstack",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

async fn token_issue(gate: &Gate, ca: &std::path::Path, token: &str) -> Result<Value, String> {
    let mut cmd = tokio::process::Command::new(openstack());
    // The admin credentials of the Keystone harness (OS_USERNAME,
    // OS_USER_DOMAIN_ID, ...) must not leak into a federated login.
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["--os-auth-url", &gate.url("/v3")])
        .args([
            "--os-auth-type",
            "v3oidcaccesstoken",
            "--os-protocol",
            "openid",
        ])
        .args(["--os-identity-provider", "egi.eu"])
        // From the environment, as EGI's docs have users do: an opaque
        // token may begin with '-', which argparse reads as an option.
        .env("OS_ACCESS_TOKEN", token)
        .args([
            "--os-project-name",
            "fedcloud.egi.eu",
            "--os-project-domain-id",
            "default",
        ])
        .args([
            "--os-cacert",
            ca.to_str().unwrap(),
            "token",
            "issue",
            "-f",
            "json",
        ])
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", openstack()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openstack_cli_logs_in_through_fedgate_for_both_idps() {
    let Ok(uwsgi) = std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI") else {
        eprintln!(
            "SKIPPED: set FEDGATE_E2E_KEYSTONE_UWSGI (and start a Keystone) to run the Keystone end-to-end test"
        );
        return;
    };
    let _idps = start_idps(&[("a", 18760, "a"), ("b", 18761, "b")]);
    let gate = Gate::start_with_upstream(
        &format!("uwsgi://{uwsgi}"),
        &format!(
            "{}{}[[route]]\nname = \"openid\"\npath = \"^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/openid/auth$\"\nauth = \"bearer\"\n\
             [[route]]\nname = \"keystone\"\npath = \"^/\"\nauth = \"none\"\n",
            idp_toml("a", 18760, "claims = [\"eduperson_entitlement\"]"),
            idp_toml("b", 18761, "claims = [\"eduperson_entitlement\"]")
        ),
    )
    .await;
    let ca = gate.ca_file.clone();
    let mut users = Vec::new();
    for (port, user) in [(18760, "alice"), (18761, "alice"), (18760, "dave")] {
        for kind in [Kind::Userinfo, Kind::Opaque, Kind::Jwt] {
            let t = mint(port, user, kind, None).await;
            let v = token_issue(&gate, &ca, &t).await.unwrap_or_else(|e| {
                panic!("{user}@{port} {kind:?}: openstack token issue failed: {e}")
            });
            assert!(v["id"].as_str().is_some_and(|s| s.len() > 20), "{v}");
            assert!(v["project_id"].as_str().is_some(), "{v}");
            users.push((port, user, v["user_id"].as_str().unwrap().to_string()));
        }
    }
    // The same user name at two IdPs is two Keystone users; one user per IdP
    // whatever the token kind.
    let id = |p: u16, u: &str| {
        users
            .iter()
            .filter(|x| x.0 == p && x.1 == u)
            .map(|x| x.2.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (id(18760, "alice"), id(18761, "alice"));
    assert!(a.iter().all(|x| *x == a[0]) && b.iter().all(|x| *x == b[0]));
    assert_ne!(a[0], b[0]);
    // bob has no vm_operator entitlement: fedgate forwards him, Keystone's mapping refuses.
    let bob = mint(18760, "bob", Kind::Jwt, None).await;
    assert!(token_issue(&gate, &ca, &bob).await.is_err());
    // a junk token never reaches Keystone
    let e = token_issue(&gate, &ca, "not-a-token").await.unwrap_err();
    assert!(e.contains("401"), "{e}");
}
