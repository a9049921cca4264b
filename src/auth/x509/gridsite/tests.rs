//! gridsite values from hand-built chains and VOMS outcomes; the expected
//! strings follow mod_gridsite's output, as tests/x509_gridsite_interop.rs
//! compares it live.

use std::sync::Arc;

use super::*;
use crate::pki::cert::Cert;
use crate::voms::{ValidAc, VomsOutcome};

const ALICE: &str = "/DC=org/DC=example-grid/O=People/CN=Alice Normal";

fn cert(subject: &str, issuer: &str, nb: i64, na: i64) -> Arc<Cert> {
    Arc::new(Cert {
        subject: subject.into(),
        issuer: issuer.into(),
        not_before: nb,
        not_after: na,
        subject_rfc2253: format!("rfc2253({subject})"),
        issuer_rfc2253: format!("rfc2253({issuer})"),
        der: vec![0x30, 0x00],
        serial: vec![0x5b, 0x38],
        subject_key: subject.as_bytes().to_vec(),
        issuer_key: issuer.as_bytes().to_vec(),
        ..Cert::default()
    })
}

fn ac(fqans: &[&str], nb: i64, na: i64) -> ValidAc {
    ValidAc {
        vo: "fedcloud.egi.eu".into(),
        uri: "voms1.fedcloud.example.org:15000".into(),
        server: "/DC=org/CN=voms".into(),
        server_ca: "/DC=org/CN=CA".into(),
        fqans: fqans.iter().map(|s| s.to_string()).collect(),
        not_before: nb,
        not_after: na,
        not_before_raw: String::new(),
        not_after_raw: String::new(),
        serial_hex: "01".into(),
        generic: Vec::new(),
    }
}

fn get<'a>(env: &'a [Var], k: &str) -> Option<&'a str> {
    env.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
}

fn eec() -> Arc<Cert> {
    cert(
        ALICE,
        "/DC=org/DC=example-grid/CN=Root",
        1795348908,
        1829563308,
    )
}

fn proxy1() -> Arc<Cert> {
    cert(
        &format!("{ALICE}/CN=1530409847"),
        ALICE,
        1795435013,
        1795478513,
    )
}

#[test]
fn rfc_voms_matches_the_golden_layout() {
    let v = Verdict {
        certs: vec![proxy1(), eec()],
        eec: 1,
        ..Verdict::default()
    };
    let voms = VomsOutcome {
        carrier: Some(0),
        acs: vec![ac(
            &[
                "/fedcloud.egi.eu/Role=NULL/Capability=NULL",
                "/fedcloud.egi.eu/group1/Role=VMManager",
            ],
            1795435313,
            1795478813,
        )],
        refused: vec![],
    };
    let e = env(&v, Some("127.0.0.1".parse().unwrap()), Some(&voms), 0);
    let want = [
        (
            "GRST_CONN_AURI_0",
            "dn:/DC=org/DC=example-grid/O=People/CN=Alice+Normal",
        ),
        (
            "GRST_CONN_AURI_1",
            "dn:/DC=org/DC=example-grid/O=People/CN=Alice+Normal/CN=1530409847",
        ),
        (
            "GRST_CONN_AURI_2",
            "fqan:/fedcloud.egi.eu/Role=NULL/Capability=NULL",
        ),
        (
            "GRST_CONN_AURI_3",
            "fqan:/fedcloud.egi.eu/group1/Role=VMManager",
        ),
        (
            "GRST_CONN_VALID_0",
            "notbefore=1795348908 notafter=1829563308 delegation=1 nist-loa=0",
        ),
        (
            "GRST_CONN_VALID_1",
            "notbefore=1795435013 notafter=1795478513 delegation=0 nist-loa=0",
        ),
        (
            "GRST_CONN_VALID_2",
            "notbefore=1795435313 notafter=1795478513 delegation=0 nist-loa=0",
        ),
        (
            "GRST_CRED_0",
            "X509USER 1795348908 1829563308 1 /DC=org/DC=example-grid/O=People/CN=Alice Normal",
        ),
        (
            "GRST_CRED_1",
            "GSIPROXY 1795435013 1795478513 1 /DC=org/DC=example-grid/O=People/CN=Alice Normal/CN=1530409847",
        ),
        (
            "GRST_CRED_2",
            "VOMS 1795435313 1795478513 0 /fedcloud.egi.eu/Role=NULL/Capability=NULL",
        ),
        (
            "GRST_CRED_3",
            "VOMS 1795435313 1795478513 0 /fedcloud.egi.eu/group1/Role=VMManager",
        ),
        (
            "GRST_CRED_AURI_3",
            "fqan:/fedcloud.egi.eu/group1/Role=VMManager",
        ),
        ("GRST_CRED_AURI_4", "ip:127.0.0.1"),
        (
            "GRST_CRED_VALID_0",
            "notbefore=1795348908 notafter=1829563308 delegation=1 nist-loa=2",
        ),
        (
            "GRST_CRED_VALID_1",
            "notbefore=1795435013 notafter=1795478513 delegation=0 nist-loa=0",
        ),
        (
            "GRST_CRED_VALID_4",
            "notbefore=0 notafter=2147483647 delegation=0 nist-loa=0",
        ),
        (
            "GRST_VOMS_FQANS",
            "/fedcloud.egi.eu/group1/Role=VMManager;/fedcloud.egi.eu/Role=NULL/Capability=NULL",
        ),
        ("SSL_CLIENT_VERIFY", "SUCCESS"),
        (
            "SSL_CLIENT_S_DN",
            "rfc2253(/DC=org/DC=example-grid/O=People/CN=Alice Normal/CN=1530409847)",
        ),
        (
            "SSL_CLIENT_I_DN",
            "rfc2253(/DC=org/DC=example-grid/O=People/CN=Alice Normal)",
        ),
        ("SSL_CLIENT_M_SERIAL", "5B38"),
    ];
    for (k, val) in want {
        assert_eq!(get(&e, k), Some(val), "{k}");
    }
    assert_eq!(get(&e, "GRST_CRED_4"), None, "ip: has no decoded GRST_CRED");
    assert_eq!(get(&e, "GRST_CRED_AURI_5"), None, "no dns: credential");
    assert!(
        get(&e, "SSL_CLIENT_CERT")
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\nMAA=")
    );
    assert!(get(&e, "SSL_CLIENT_CERT_CHAIN_0").is_some());
    assert!(get(&e, "SSL_CLIENT_CERT_CHAIN_1").is_none());
}

#[test]
fn plain_eec_has_loa3_and_no_fqans() {
    let v = Verdict {
        certs: vec![eec()],
        eec: 0,
        ..Verdict::default()
    };
    let e = env(&v, Some("::1".parse().unwrap()), None, 0);
    assert_eq!(
        get(&e, "GRST_CRED_0"),
        Some("X509USER 1795348908 1829563308 0 /DC=org/DC=example-grid/O=People/CN=Alice Normal")
    );
    assert_eq!(
        get(&e, "GRST_CRED_VALID_0"),
        Some("notbefore=1795348908 notafter=1829563308 delegation=0 nist-loa=3")
    );
    assert_eq!(get(&e, "GRST_CRED_AURI_1"), Some("ip:::1"));
    assert_eq!(get(&e, "GRST_CONN_AURI_1"), None);
    assert_eq!(get(&e, "GRST_VOMS_FQANS"), None);
}

#[test]
fn two_acs_in_level_one_of_a_two_level_chain() {
    let p2 = cert(
        &format!("{ALICE}/CN=1530409847/CN=1171196884"),
        &format!("{ALICE}/CN=1530409847"),
        1795435017,
        1795474917,
    );
    let v = Verdict {
        certs: vec![p2, proxy1(), eec()],
        eec: 2,
        ..Verdict::default()
    };
    let voms = VomsOutcome {
        carrier: Some(1),
        acs: vec![
            ac(
                &["/fedcloud.egi.eu", "/fedcloud.egi.eu/g r%p;x:y"],
                1795435313,
                1795470000,
            ),
            ac(
                &["/ops/Role=NULL/Capability=NULL", "/ops/caf\u{e9}"],
                1795435400,
                1795499999,
            ),
        ],
        refused: vec!["an AC was refused".into()],
    };
    let e = env(&v, None, Some(&voms), 0);
    assert_eq!(
        get(&e, "GRST_VOMS_FQANS"),
        Some(
            "/ops/caf%C3%A9;/ops/Role=NULL/Capability=NULL;/fedcloud.egi.eu/g+r%25p%3Bx%3Ay;/fedcloud.egi.eu"
        )
    );
    // EEC, P1, P2, then FQANs at the carrier's delegation level.
    assert_eq!(
        get(&e, "GRST_CONN_AURI_2").map(|s| s.ends_with("/CN=1171196884")),
        Some(true)
    );
    assert_eq!(
        get(&e, "GRST_CONN_VALID_0"),
        Some("notbefore=1795348908 notafter=1829563308 delegation=2 nist-loa=0")
    );
    assert_eq!(
        get(&e, "GRST_CONN_VALID_2"),
        Some("notbefore=1795435017 notafter=1795474917 delegation=0 nist-loa=0")
    );
    assert_eq!(
        get(&e, "GRST_CONN_VALID_3"),
        Some("notbefore=1795435313 notafter=1795470000 delegation=1 nist-loa=0")
    );
    // The second AC is intersected with the first (gridsite).
    assert_eq!(
        get(&e, "GRST_CONN_VALID_5"),
        Some("notbefore=1795435400 notafter=1795470000 delegation=1 nist-loa=0")
    );
    assert_eq!(get(&e, "GRST_CONN_AURI_6"), Some("fqan:/ops/caf%C3%A9"));
    // Every VOMS GRST_CRED shows the last entry's times and delegation 0.
    assert_eq!(
        get(&e, "GRST_CRED_3"),
        Some("VOMS 1795435400 1795470000 0 /fedcloud.egi.eu")
    );
    assert_eq!(
        get(&e, "GRST_CRED_4"),
        Some("VOMS 1795435400 1795470000 0 /fedcloud.egi.eu/g r%p;x:y")
    );
    assert_eq!(
        get(&e, "GRST_CRED_1").map(|s| s.starts_with("GSIPROXY 1795435013 1795478513 2 ")),
        Some(true)
    );
    assert_eq!(
        get(&e, "GRST_CRED_VALID_0"),
        Some("notbefore=1795348908 notafter=1829563308 delegation=2 nist-loa=2")
    );
    assert_eq!(
        get(&e, "GRST_CRED_VALID_3"),
        Some("notbefore=1795435313 notafter=1795470000 delegation=0 nist-loa=0")
    );
}

#[test]
fn carrier_outside_the_proxies_exports_no_fqans() {
    let v = Verdict {
        certs: vec![proxy1(), eec()],
        eec: 1,
        ..Verdict::default()
    };
    let voms = VomsOutcome {
        carrier: Some(1),
        acs: vec![ac(&["/x"], 0, i64::MAX)],
        refused: vec![],
    };
    let e = env(&v, None, Some(&voms), 0);
    assert_eq!(get(&e, "GRST_VOMS_FQANS"), None);
    assert_eq!(get(&e, "GRST_CONN_AURI_2"), None);
}

#[test]
fn values_hold_until_the_leaf_loses_a_whole_day() {
    let v = Verdict {
        certs: vec![eec()],
        eec: 0,
        ..Verdict::default()
    };
    let na = eec().not_after;
    let ip = Some("::1".parse().unwrap());
    for now in [
        1795348908,
        na - 3 * 86_400 - 1,
        na - 86_400,
        na - 5,
        na,
        na + 9,
    ] {
        let until = env_stable_until(&v, now);
        assert!(until >= now);
        assert_eq!(env(&v, ip, None, now), env(&v, ip, None, until), "at {now}");
        if until < i64::MAX {
            let later = env(&v, ip, None, until + 1);
            assert_ne!(
                get(&env(&v, ip, None, now), "SSL_CLIENT_V_REMAIN"),
                get(&later, "SSL_CLIENT_V_REMAIN"),
                "the values change the second after {until} (built at {now})"
            );
        }
    }
}
