//! Verdicts for the generated credential zoo (tests/fixtures/pki), the
//! revocation and namespace modes, and the exported values checked
//! against the openssl CLI's view of the same certificates.

mod common;

use std::sync::Arc;

use common::gridpki::{Pki, epoch, openssl, pki, split_pems};
use fedgate::internal::pki::config::{LimitedProxies, NamespaceMode};
use fedgate::internal::pki::crl::CrlMode;
use fedgate::internal::pki::{FailKind, TrustStore, Validator, X509Config};

fn now() -> i64 {
    fedgate::internal::pki::unix_now()
}

fn validator(dir: &std::path::Path, cfg: X509Config) -> Validator {
    let (store, problems) = TrustStore::load(dir).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    Validator::new(Arc::new(store), cfg)
}

fn check(p: &Pki, v: &Validator, case: &str) -> Result<usize, (FailKind, String)> {
    let verdict = v.validate(&p.chain(case), now());
    match verdict.failure {
        None => Ok(verdict.eec),
        Some(f) => Err((f.kind, f.reason)),
    }
}

#[test]
fn credential_zoo_verdicts() {
    let Some(p) = pki() else { return };
    let v = validator(&p.certs(), X509Config::default());
    let ok: &[(&str, usize)] = &[
        ("eec_alice", 0),
        ("eec_dave", 0),
        ("eec_erin_sha1", 0),
        ("eec_frank_ec", 0),
        ("eec_robot", 0),
        ("rfc_voms", 1),
        ("rfc_noac", 1),
        ("rfc_openssl", 1),
        ("legacy_voms", 1),
        ("limited_rfc_voms", 1),
        ("limited_legacy_voms", 1),
        ("limited_rfc_child_limited", 2),
        ("depth2_voms", 2),
        ("depth2_rfc_noac", 2),
        ("depth4_voms", 4),
        ("depth5_voms", 5),
        ("intermediate_voms", 1),
        ("sha1_user_voms", 1),
        ("eec_eku_any", 0),
    ];
    for (case, depth) in ok {
        assert_eq!(check(p, &v, case), Ok(*depth), "{case}");
    }
    use FailKind::*;
    let bad: &[(&str, FailKind, &str)] = &[
        ("eec_carol_expired", Expired, "expired"),
        ("expired_user_voms", Expired, "Carol Expired expired"),
        ("expired_proxy", Expired, "proxy"),
        ("eec_bob_revoked", Revoked, "revoked"),
        ("revoked_voms", Revoked, "Bob Revoked"),
        ("eec_untrusted", UnknownCa, "not a trusted CA"),
        ("gt3_voms", UnknownCa, "GT3"),
        ("depth3_pathlen", Policy, "pCPathLenConstraint"),
        ("pathlen0_child", Policy, "allows 0 further"),
        ("limited_signs_full", Policy, "signed by a limited proxy"),
        ("depth2_limited", Policy, "mixed proxy types"),
        ("mixed_legacy_under_rfc", Policy, "mixed proxy types"),
        ("bad_proxy_name", Policy, "plus one CN"),
        ("proxy_is_ca", Policy, "cA=true"),
        ("independent", Policy, "independent"),
        ("eec_mallory_namespace", Policy, "namespace"),
        // Leaf key usage (issue 11, class 3): RFC 5280 §4.2.1.3, §4.2.1.12.
        (
            "eec_keyusage_keyenc",
            Usage,
            "keyUsage (keyEncipherment) lacks digitalSignature",
        ),
        (
            "eec_eku_serverauth",
            Usage,
            "extendedKeyUsage (serverAuth) has neither clientAuth nor anyExtendedKeyUsage",
        ),
        (
            "proxy_keyusage_keyenc",
            Usage,
            "proxy /DC=org/DC=fedgate-test/O=People/CN=Alice Normal/CN=",
        ),
    ];
    for (case, kind, text) in bad {
        match check(p, &v, case) {
            Err((k, reason)) => {
                assert_eq!(k, *kind, "{case}: {reason}");
                assert!(reason.contains(text), "{case}: {reason}");
            }
            Ok(d) => panic!("{case} accepted (depth {d})"),
        }
    }
}

#[test]
fn switches_relax_and_tighten() {
    let Some(p) = pki() else { return };
    let relaxed = validator(
        &p.certs(),
        X509Config {
            allow_gt3_proxies: true,
            allow_independent_proxies: true,
            namespaces: NamespaceMode::Ignore,
            ..X509Config::default()
        },
    );
    for case in ["gt3_voms", "independent", "eec_mallory_namespace"] {
        assert!(check(p, &relaxed, case).is_ok(), "{case}");
    }
    let v = relaxed.validate(&p.chain("eec_mallory_namespace"), now());
    assert!(
        v.notes.iter().any(|n| n.contains("would be outside")),
        "{:?}",
        v.notes
    );
    let strict = validator(
        &p.certs(),
        X509Config {
            limited_proxies: LimitedProxies::Reject,
            max_proxy_depth: Some(2),
            ..X509Config::default()
        },
    );
    assert_eq!(
        check(p, &strict, "limited_rfc_voms").unwrap_err().0,
        FailKind::Policy
    );
    assert_eq!(check(p, &strict, "depth2_voms"), Ok(2));
    let (k, reason) = check(p, &strict, "depth4_voms").unwrap_err();
    assert_eq!(k, FailKind::Depth, "{reason}");
    let none = validator(
        &p.certs(),
        X509Config {
            max_proxy_depth: Some(0),
            ..X509Config::default()
        },
    );
    assert_eq!(check(p, &none, "eec_alice"), Ok(0));
    assert_eq!(check(p, &none, "rfc_voms").unwrap_err().0, FailKind::Depth);
    // Only the signing policy, which mallory also violates.
    let globus = validator(
        &p.certs(),
        X509Config {
            namespaces: NamespaceMode::Globus,
            ..X509Config::default()
        },
    );
    assert_eq!(
        check(p, &globus, "eec_mallory_namespace").unwrap_err().0,
        FailKind::Policy
    );
    assert!(check(p, &globus, "eec_alice").is_ok());
}

/// A copy of the CA directory whose root-A CRL files are replaced (or removed).
fn ca_dir_with_crl(p: &Pki, crl: Option<&std::path::Path>) -> tempfile::TempDir {
    ca_dir_with_ca_crl(p, "rootA", 0, crl)
}

/// A copy of the CA directory whose CRL files `<hash>.r<index>` of CA
/// `ca` (a directory under `ca/`) are replaced (or removed).
fn ca_dir_with_ca_crl(
    p: &Pki,
    ca: &str,
    index: u32,
    crl: Option<&std::path::Path>,
) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let hashes: Vec<String> = ["hash", "hash_old"]
        .iter()
        .map(|h| {
            std::fs::read_to_string(p.dir.join("ca").join(ca).join(h))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    for e in std::fs::read_dir(p.certs()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let is_its_crl = hashes.iter().any(|h| name == format!("{h}.r{index}"));
        if is_its_crl {
            if let Some(c) = crl {
                std::fs::copy(c, t.path().join(&name)).unwrap();
            }
        } else {
            std::fs::copy(e.path(), t.path().join(&name)).unwrap();
        }
    }
    t
}

#[test]
fn revocation_modes() {
    let Some(p) = pki() else { return };
    let mode = |crl| X509Config {
        crl,
        ..X509Config::default()
    };
    // Expired CRL: require and if_valid refuse with the reason; ignore passes.
    let expired = ca_dir_with_crl(p, Some(&p.dir.join("ca/rootA/crl-expired.pem")));
    let (k, reason) = check(
        p,
        &validator(expired.path(), mode(CrlMode::Require)),
        "rfc_voms",
    )
    .unwrap_err();
    assert_eq!(k, FailKind::CrlExpired);
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(
        check(
            p,
            &validator(expired.path(), mode(CrlMode::IfValid)),
            "eec_alice"
        )
        .unwrap_err()
        .0,
        FailKind::CrlExpired
    );
    assert!(
        check(
            p,
            &validator(expired.path(), mode(CrlMode::Ignore)),
            "eec_bob_revoked"
        )
        .is_ok()
    );
    // No CRL: only require refuses.
    let none = ca_dir_with_crl(p, None);
    let (k, reason) = check(
        p,
        &validator(none.path(), mode(CrlMode::Require)),
        "eec_alice",
    )
    .unwrap_err();
    assert_eq!(k, FailKind::CrlUnavailable);
    assert!(reason.contains("no CRL"), "{reason}");
    assert!(
        check(
            p,
            &validator(none.path(), mode(CrlMode::IfValid)),
            "eec_alice"
        )
        .is_ok()
    );
    assert!(
        check(
            p,
            &validator(none.path(), mode(CrlMode::IfValid)),
            "eec_bob_revoked"
        )
        .is_ok()
    );
    // Good CRL under if_valid still catches bob; ignore does not.
    let good = validator(&p.certs(), mode(CrlMode::IfValid));
    assert_eq!(
        check(p, &good, "revoked_voms").unwrap_err().0,
        FailKind::Revoked
    );
    assert!(
        check(
            p,
            &validator(&p.certs(), mode(CrlMode::Ignore)),
            "revoked_voms"
        )
        .is_ok()
    );
}

/// A CA re-keyed under the same DN (issue 11, class 1): `<hash>.0/.1` and
/// `<hash>.r0/.r1` with one issuer DN and thisUpdate, only the old key's
/// CRL with an authorityKeyIdentifier, and each CRL revoking a serial the
/// other key gave to a good user. Each twin's users are judged by their own
/// CA's CRL only, in every revocation mode, and so are VOMS servers.
#[test]
fn rekeyed_twin_cas_keep_their_own_crls() {
    let Some(p) = pki() else { return };
    let mode = |crl| X509Config {
        crl,
        ..X509Config::default()
    };
    let judge = |dir: &std::path::Path, m: CrlMode, what: &str| {
        let v = validator(dir, mode(m));
        assert_eq!(check(p, &v, "eec_twin_old"), Ok(0), "{what} {m:?}");
        assert_eq!(check(p, &v, "eec_twin_new"), Ok(0), "{what} {m:?}");
        assert_eq!(check(p, &v, "twin_new_voms"), Ok(1), "{what} {m:?}");
        for (case, who) in [
            ("eec_twin_old_revoked", "Ron Revoked Old Key"),
            ("eec_twin_new_revoked", "Rita Revoked New Key"),
        ] {
            let (k, reason) = check(p, &v, case).unwrap_err();
            assert_eq!(k, FailKind::Revoked, "{what} {m:?} {case}: {reason}");
            assert!(reason.contains(who), "{reason}");
        }
    };
    for m in [CrlMode::Require, CrlMode::IfValid] {
        judge(&p.certs(), m, "same thisUpdate");
    }
    // The new key's CRL issued later than the old key's, or with an
    // authorityKeyIdentifier of its own.
    for variant in ["crl-later.pem", "crl-akid.pem"] {
        let crl = p.dir.join("ca/twinNew").join(variant);
        let dir = ca_dir_with_ca_crl(p, "twinNew", 1, Some(&crl));
        judge(dir.path(), CrlMode::Require, variant);
    }
    // Without the new key's CRL the old key's never stands in for it.
    let dir = ca_dir_with_ca_crl(p, "twinNew", 1, None);
    let v = validator(dir.path(), mode(CrlMode::Require));
    let (k, reason) = check(p, &v, "eec_twin_new").unwrap_err();
    assert_eq!(k, FailKind::CrlUnavailable, "{reason}");
    assert!(reason.contains("no CRL"), "{reason}");
    assert_eq!(check(p, &v, "eec_twin_old"), Ok(0));
    let v = validator(dir.path(), mode(CrlMode::IfValid));
    assert_eq!(check(p, &v, "eec_twin_new"), Ok(0));
    assert_eq!(
        check(p, &v, "eec_twin_new_revoked"),
        Ok(0),
        "no CRL to say so"
    );
    assert_eq!(
        check(p, &v, "eec_twin_old_revoked").unwrap_err().0,
        FailKind::Revoked
    );
    // A CRL no key of the DN verifies is broken, not absent: it could be
    // either key's newest, so `require` refuses both keys' users, and
    // `if_valid` those of a key without another usable CRL.
    let forged = tempfile::tempdir().unwrap();
    let mut crl = pem_der(&std::fs::read(p.dir.join("ca/twinNew/crl.pem")).unwrap());
    let n = crl.len();
    crl[n - 5] ^= 1; // inside the signature
    let forged_file = forged.path().join("forged.r0");
    std::fs::write(&forged_file, &crl).unwrap();
    let dir = ca_dir_with_ca_crl(p, "twinNew", 1, Some(&forged_file));
    for m in [CrlMode::Require, CrlMode::IfValid] {
        let v = validator(dir.path(), mode(m));
        let (k, reason) = check(p, &v, "eec_twin_new").unwrap_err();
        assert_eq!(k, FailKind::CrlUnavailable, "{m:?} {reason}");
        assert!(reason.contains("invalid signature"), "{reason}");
    }
    let v = validator(dir.path(), mode(CrlMode::Require));
    assert_eq!(
        check(p, &v, "eec_twin_old").unwrap_err().0,
        FailKind::CrlUnavailable
    );
    let v = validator(dir.path(), mode(CrlMode::IfValid));
    assert_eq!(check(p, &v, "eec_twin_old"), Ok(0));
    // VOMS servers certified by either key: the AA chain and the AC.
    use fedgate::internal::voms::{AaVerifier, VomsConfig, VomsSettings, evaluate};
    let v = validator(&p.certs(), X509Config::default());
    let aa = std::fs::read(p.dir.join("users/voms2.pem")).unwrap();
    let aa = fedgate::internal::pki::cert::certs_from_pem(&aa)
        .unwrap()
        .remove(0);
    assert_eq!(v.verify_aa(&aa, &[], now()), Ok(()));
    let settings = VomsSettings::from_config(&VomsConfig {
        dir: toml::Spanned::new(0..0, p.vomsdir()),
        ..VomsConfig::default()
    });
    for case in ["twin_new_voms", "voms_aa_twin_new"] {
        let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
            p.chain(case).into_iter().map(Into::into).collect();
        let o = evaluate(&chain, 1, &v, &settings, now());
        assert_eq!(
            o.acs.first().map(|a| a.fqans.clone()),
            Some(vec!["/rekey.example/Role=NULL/Capability=NULL".to_string()]),
            "{case}: {:?}",
            o.refused
        );
    }
}

/// A VOMS server certified by an intermediate CA, named by a three-line
/// `.lsc` (AA, intermediate, root); the AC embeds the AA alone, as
/// voms-proxy-fake and VOMS servers write it, and the intermediate comes
/// from the trust store (issue 11, class 2).
#[test]
fn voms_server_under_an_intermediate_ca() {
    use fedgate::internal::voms::{VomsConfig, VomsSettings, evaluate};
    let Some(p) = pki() else { return };
    let lsc = std::fs::read_to_string(p.vomsdir().join("deep.example/voms3.fedgate-test.org.lsc"))
        .unwrap();
    assert_eq!(lsc.lines().count(), 3, "{lsc}");
    let v = validator(&p.certs(), X509Config::default());
    let settings = VomsSettings::from_config(&VomsConfig {
        dir: toml::Spanned::new(0..0, p.vomsdir()),
        ..VomsConfig::default()
    });
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> = p
        .chain("voms_aa_intermediate")
        .into_iter()
        .map(Into::into)
        .collect();
    assert_eq!(embedded_in_ac(&chain[0]), 1);
    let o = evaluate(&chain, 1, &v, &settings, now());
    assert_eq!(
        o.acs.first().map(|a| a.fqans.clone()),
        Some(vec!["/deep.example/Role=NULL/Capability=NULL".to_string()]),
        "{:?}",
        o.refused
    );
    assert_eq!(
        o.acs[0].server_ca,
        "/DC=org/DC=fedgate-test/CN=Fedgate Test Intermediate CA"
    );
}

/// How many certificates the (single) AC of a proxy embeds.
fn embedded_in_ac(proxy: &[u8]) -> usize {
    use fedgate::internal::voms::{asn1, profile};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(proxy).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == asn1::OID_ACSEQ.to_string())
        .expect("VOMS extension");
    let acs = asn1::split_acseq(ext.value).unwrap();
    let ac = asn1::parse_ac(acs[0]).unwrap();
    profile::profile(&ac).unwrap().certs.len()
}

/// The DER of the first PEM block of a file.
fn pem_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn broken_store_files_are_skipped_not_fatal() {
    let Some(p) = pki() else { return };
    let t = ca_dir_with_crl(p, None);
    std::fs::write(
        t.path().join("deadbeef.0"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(t.path().join("deadbeef.r0"), "garbage").unwrap();
    std::fs::write(
        t.path().join("deadbeef.namespaces"),
        "TO Issuer SELF PERMIT Subject \"(\"\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("deadbeef.signing_policy"),
        "cond_subjects globus '\"*\"'\n",
    )
    .unwrap();
    let (store, problems) = TrustStore::load(t.path()).unwrap();
    let names: Vec<String> = problems
        .iter()
        .map(|p| p.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{problems:?}");
    for n in [
        "deadbeef.0",
        "deadbeef.r0",
        "deadbeef.namespaces",
        "deadbeef.signing_policy",
    ] {
        assert!(
            names.contains(&n.to_string()),
            "{n} not reported: {problems:?}"
        );
    }
    assert_eq!(store.len(), 6, "the six real CAs still load");
    let v = Validator::new(
        Arc::new(store),
        X509Config {
            crl: CrlMode::IfValid,
            ..X509Config::default()
        },
    );
    assert_eq!(check(p, &v, "rfc_voms"), Ok(1));
}

#[test]
fn exported_values_match_openssl() {
    let Some(p) = pki() else { return };
    let v = validator(&p.certs(), X509Config::default());
    let t = tempfile::tempdir().unwrap();
    for case in [
        "eec_alice",
        "rfc_voms",
        "depth2_voms",
        "legacy_voms",
        "eec_dave",
        "intermediate_voms",
        "eec_robot",
        "eec_jurgen_fields",
        "jurgen_proxy",
        "eec_frank_ec",
    ] {
        let verdict = v.validate(&p.chain(case), now());
        assert!(verdict.valid(), "{case}");
        let env: std::collections::HashMap<String, String> = fedgate::internal::pki::gridsite::env(
            &verdict,
            Some("127.0.0.1".parse().unwrap()),
            None,
            now(),
        )
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect();
        let dir = t.path().join(case);
        std::fs::create_dir_all(&dir).unwrap();
        let pems = split_pems(&p.cred(case), &dir);
        let info = |i: usize, what: &str, opt: &str| {
            let f = pems[i].to_str().unwrap().to_string();
            let out = openssl(&["x509", "-in", &f, "-noout", what, "-nameopt", opt]);
            out.split_once('=')
                .map(|(_, v)| v.trim().to_string())
                .unwrap()
        };
        let date = |i: usize, what: &str| epoch(&info(i, what, "compat"));
        let depth = verdict.eec;
        let mild = |s: &str| fedgate::internal::pki::dn::mild_encode(s.as_bytes());
        // EEC first, then each proxy from the EEC towards the leaf.
        for (n, idx) in (0..=depth).rev().enumerate() {
            let dn = info(idx, "-subject", "compat");
            assert_eq!(
                env[&format!("GRST_CONN_AURI_{n}")],
                format!("dn:{}", mild(&dn)),
                "{case} #{n}"
            );
            assert_eq!(
                env[&format!("GRST_CRED_AURI_{n}")],
                format!("dn:{}", mild(&dn)),
                "{case} #{n}"
            );
            let (nb, na) = (date(idx, "-startdate"), date(idx, "-enddate"));
            assert_eq!(
                env[&format!("GRST_CONN_VALID_{n}")],
                format!("notbefore={nb} notafter={na} delegation={idx} nist-loa=0"),
                "{case} #{n}"
            );
            let kind = if n == 0 { "X509USER" } else { "GSIPROXY" };
            assert_eq!(
                env[&format!("GRST_CRED_{n}")],
                format!("{kind} {nb} {na} {depth} {dn}"),
                "{case} #{n}"
            );
        }
        let loa = if depth == 0 { 3 } else { 2 };
        assert!(
            env["GRST_CRED_VALID_0"].ends_with(&format!("delegation={depth} nist-loa={loa}")),
            "{case}"
        );
        assert_eq!(
            env[&format!("GRST_CRED_AURI_{}", depth + 1)],
            "ip:127.0.0.1"
        );
        assert_eq!(
            env["SSL_CLIENT_S_DN"],
            info(0, "-subject", "RFC2253,-esc_msb"),
            "{case}"
        );
        assert_eq!(
            env["SSL_CLIENT_I_DN"],
            info(0, "-issuer", "RFC2253,-esc_msb"),
            "{case}"
        );
        assert_eq!(
            env["SSL_CLIENT_M_SERIAL"],
            info(0, "-serial", "compat"),
            "{case}"
        );
        assert_eq!(
            env["SSL_CLIENT_CERT"],
            std::fs::read_to_string(&pems[0]).unwrap(),
            "{case}"
        );
        // mod_ssl's validity and algorithm values, as openssl prints them.
        let leaf = pems[0].to_str().unwrap();
        for (var, what) in [
            ("SSL_CLIENT_V_START", "-startdate"),
            ("SSL_CLIENT_V_END", "-enddate"),
        ] {
            assert_eq!(env[var], info(0, what, "compat"), "{case} {var}");
        }
        let text = openssl(&["x509", "-in", leaf, "-noout", "-text"]);
        let line = |label: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(
            env["SSL_CLIENT_A_SIG"],
            line("Signature Algorithm:"),
            "{case}"
        );
        assert_eq!(
            env["SSL_CLIENT_A_KEY"],
            line("Public Key Algorithm:"),
            "{case}"
        );
        assert_eq!(env["SSL_CLIENT_M_VERSION"], "3", "{case}");
        for (i, pem) in pems.iter().enumerate().skip(1) {
            assert_eq!(
                env[&format!("SSL_CLIENT_CERT_CHAIN_{}", i - 1)],
                std::fs::read_to_string(pem).unwrap(),
                "{case}"
            );
        }
        assert!(!env.contains_key(&format!("SSL_CLIENT_CERT_CHAIN_{}", pems.len() - 1)));
        assert_eq!(
            env.contains_key("GRST_ROBOT_DN"),
            case == "eec_robot",
            "{case}"
        );
        assert!(
            !env.values().any(|v| v.starts_with("dns:")),
            "no reverse DNS"
        );
    }
}

/// mod_ssl's per-field values (issue 11, class 5) of a DN with a
/// multi-valued RDN, UTF-8, a comma and subjectAltName entries, for the
/// certificate and for a proxy below it (whose issuer is that DN).
#[test]
fn mod_ssl_per_field_values() {
    let Some(p) = pki() else { return };
    let v = validator(&p.certs(), X509Config::default());
    let env = |case: &str| -> std::collections::BTreeMap<String, String> {
        let verdict = v.validate(&p.chain(case), now());
        assert!(verdict.valid(), "{case}: {:?}", verdict.failure);
        fedgate::internal::pki::gridsite::env(&verdict, None, None, now())
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .filter(|(k, _)| k.starts_with("SSL_CLIENT_") && !k.starts_with("SSL_CLIENT_CERT"))
            .collect()
    };
    let e = env("eec_jurgen_fields");
    let want = [
        (
            "SSL_CLIENT_S_DN",
            "emailAddress=jd@example.org,CN=Jürgen O'Neil,UID=jdoe+OU=A,O=Test\\, Inc.,\
             L=Frankfurt am Main,ST=Hessen,C=DE,DC=fedgate-test,DC=org",
        ),
        ("SSL_CLIENT_S_DN_C", "DE"),
        ("SSL_CLIENT_S_DN_ST", "Hessen"),
        ("SSL_CLIENT_S_DN_L", "Frankfurt am Main"),
        ("SSL_CLIENT_S_DN_O", "Test, Inc."),
        ("SSL_CLIENT_S_DN_OU", "A"),
        ("SSL_CLIENT_S_DN_UID", "jdoe"),
        ("SSL_CLIENT_S_DN_CN", "Jürgen O'Neil"),
        ("SSL_CLIENT_S_DN_Email", "jd@example.org"),
        ("SSL_CLIENT_SAN_Email_0", "jd@example.org"),
        ("SSL_CLIENT_SAN_DNS_0", "jd.example.org"),
        ("SSL_CLIENT_I_DN_CN", "Fedgate Test Root CA"),
        ("SSL_CLIENT_M_SERIAL", "2A01"),
        ("SSL_CLIENT_VERIFY", "SUCCESS"),
    ];
    for (k, val) in want {
        assert_eq!(e.get(k).map(String::as_str), Some(val), "{k}: {e:#?}");
    }
    assert!(
        !e.keys().any(|k| k.contains("_DC")),
        "mod_ssl has no DC field: {e:#?}"
    );
    let days: i64 = e["SSL_CLIENT_V_REMAIN"].parse().unwrap();
    assert!((298..=300).contains(&days), "{days}");
    let e = env("jurgen_proxy");
    assert_eq!(e["SSL_CLIENT_S_DN_CN"], "Jürgen O'Neil");
    assert!(
        e["SSL_CLIENT_S_DN_CN_1"]
            .bytes()
            .all(|b| b.is_ascii_digit()),
        "{e:#?}"
    );
    assert_eq!(e["SSL_CLIENT_I_DN_UID"], "jdoe");
    assert_eq!(e["SSL_CLIENT_I_DN_Email"], "jd@example.org");
    assert_eq!(e["SSL_CLIENT_V_REMAIN"], "0", "a 12-hour proxy");
    assert!(
        !e.contains_key("SSL_CLIENT_SAN_Email_0"),
        "the proxy has no SAN"
    );
}

#[test]
fn x509_info_cli_reports_verdict_and_env() {
    let Some(p) = pki() else { return };
    let bin = env!("CARGO_BIN_EXE_fedgate");
    let run = |case: &str| {
        let out = std::process::Command::new(bin)
            .args(["x509-info", "--json", "--ca-dir"])
            .arg(p.certs())
            .arg("--voms-dir")
            .arg(p.vomsdir())
            .arg(p.cred(case))
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), json)
    };
    let (code, j) = run("depth2_voms");
    assert_eq!(code, Some(0));
    assert_eq!(j["valid"], true);
    assert_eq!(j["reasons"], serde_json::json!([]));
    assert_eq!(j["proxies"], 2);
    let dn = openssl(&[
        "x509",
        "-in",
        p.dir.join("users/alice.pem").to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "compat",
    ]);
    let dn = dn.trim_start_matches("subject=");
    assert_eq!(
        j["env"]["GRST_CONN_AURI_0"],
        format!(
            "dn:{}",
            fedgate::internal::pki::dn::mild_encode(dn.as_bytes())
        )
    );
    // The level-1 AC is validated against the fixture's vomsdir and exported.
    assert!(
        j["env"]["GRST_VOMS_FQANS"]
            .as_str()
            .is_some_and(|f| f.starts_with("/fedcloud.egi.eu")),
        "{j}"
    );
    assert_eq!(j["voms"]["acs"][0]["vo"], "fedcloud.egi.eu", "{j}");
    let (code, j) = run("eec_bob_revoked");
    assert_eq!(code, Some(1));
    assert_eq!(j["valid"], false);
    assert!(j["reasons"][0].as_str().unwrap().contains("revoked"), "{j}");
    assert_eq!(j["env"], serde_json::json!({}));
    // Text mode names the verdict too.
    let out = std::process::Command::new(bin)
        .args(["x509-info", "--ca-dir"])
        .arg(p.certs())
        .arg(p.cred("gt3_voms"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INVALID") && text.contains("GT3"), "{text}");
    // AC targets: the names of --host-cert's subjectAltName and --target.
    let fqans = |extra: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(["x509-info", "--json", "--ca-dir"])
            .arg(p.certs())
            .arg("--voms-dir")
            .arg(p.vomsdir())
            .args(extra)
            .arg(p.cred("voms_targeted_here"))
            .output()
            .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            j["env"]["GRST_VOMS_FQANS"].is_string(),
            j["reasons"].to_string(),
        )
    };
    let (ok, reasons) = fqans(&[]);
    assert!(
        !ok && reasons.contains("targeted at [localhost]"),
        "{reasons}"
    );
    let host = p.dir.join("host.pem");
    assert!(fqans(&["--host-cert", host.to_str().unwrap()]).0);
    assert!(fqans(&["--target", "LOCALHOST"]).0);
    // A refused key usage names the extension and what it lacks.
    let out = std::process::Command::new(bin)
        .args(["x509-info", "--ca-dir"])
        .arg(p.certs())
        .arg(p.cred("eec_eku_serverauth"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reason    : end-entity certificate")
            && text.contains("extendedKeyUsage (serverAuth) has neither clientAuth"),
        "{text}"
    );
    assert!(
        text.contains("key usage : digitalSignature, keyEncipherment; serverAuth"),
        "{text}"
    );
}

/// The Debian igtf-policy-* bundle, when installed, loads without a
/// single skipped file, policies included.
#[test]
fn installed_igtf_bundle_loads_cleanly() {
    let dir = std::path::Path::new("/etc/grid-security/certificates");
    let Ok((store, problems)) = TrustStore::load(dir) else {
        eprintln!("SKIP: no /etc/grid-security/certificates");
        return;
    };
    if store.len() < 20 {
        eprintln!("SKIP: no IGTF bundle installed (apt-get install igtf-policy-classic)");
        return;
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let (sp, ns) = store.policy_counts();
    assert!(
        sp >= store.len() / 4 && ns >= store.len() / 4,
        "{sp} signing policies, {ns} namespace rules for {} CAs",
        store.len()
    );
}

/// The contract the VOMS module uses for AA (VOMS server) certificates:
/// full path validation, CRLs included.
#[test]
fn aa_verifier_validates_voms_server_chains() {
    use fedgate::internal::voms::AaVerifier;
    let Some(p) = pki() else { return };
    let v = validator(&p.certs(), X509Config::default());
    let der = |f: &str| {
        let data = std::fs::read(p.dir.join(f)).unwrap();
        fedgate::internal::pki::cert::certs_from_pem(&data)
            .unwrap()
            .remove(0)
    };
    assert_eq!(v.verify_aa(&der("users/voms.pem"), &[], now()), Ok(()));
    let e = v.verify_aa(&der("users/bob.pem"), &[], now()).unwrap_err();
    assert!(e.contains("revoked"), "{e}");
    let e = v
        .verify_aa(&der("users/trudy.pem"), &[], now())
        .unwrap_err();
    assert!(e.contains("not a trusted CA"), "{e}");
    let e = v
        .verify_aa(&der("users/carol.pem"), &[], now())
        .unwrap_err();
    assert!(e.contains("expired"), "{e}");
    // Dave's intermediate may come along as a helper, or from the store.
    let inter = der("ca/inter/ca.pem");
    assert_eq!(
        v.verify_aa(&der("users/dave.pem"), &[&inter], now()),
        Ok(())
    );
    assert!(v.verify_aa(&der("ca/rootA/ca.pem"), &[], now()).is_err());
    assert!(v.verify_aa(b"not a certificate", &[], now()).is_err());
}

/// Issue 16: the validated-path cache answers a chain seen before, but
/// never past what the clock allows: each certificate's validity window
/// (the proxies' included) and the CRLs' nextUpdate are judged again on
/// every use, as a full validation would.
#[test]
fn the_validated_path_cache_still_judges_the_clock() {
    let Some(p) = pki() else { return };
    let cfg = X509Config {
        clock_skew_secs: 300,
        crl_grace_secs: 3600,
        ..X509Config::default()
    };
    let v = validator(&p.certs(), cfg);
    let t0 = now();
    let chain = p.chain("depth2_voms");
    let first = v.validate(&chain, t0);
    assert!(first.valid(), "{:?}", first.failure);
    assert_eq!(v.cached_paths(), 1);
    let again = v.validate(&chain, t0 + 1);
    assert!(again.valid());
    assert_eq!(v.cached_paths(), 1, "the same chain is one entry");

    let leaf_expiry = first.certs[0].not_after;
    assert!(
        v.validate(&chain, leaf_expiry + 300).valid(),
        "within the skew"
    );
    let late = v.validate(&chain, leaf_expiry + 301);
    let f = late.failure.expect("the proxy expired since it was cached");
    assert_eq!(f.kind, FailKind::Expired, "{}", f.reason);
    assert!(f.reason.contains("proxy"), "{}", f.reason);
    // A clock set back before the proxy began (it is valid from t0-ish).
    let proxy_start = first.certs[0].not_before;
    let early = v.validate(&chain, proxy_start - 301);
    assert_eq!(
        early.failure.expect("not yet valid").kind,
        FailKind::NotYetValid
    );
    assert!(v.validate(&chain, t0).valid(), "and valid again now");

    // Alice alone outlives rootA's CRL (30 days): past its nextUpdate plus
    // the grace, her cached path needs that CRL again, and it is stale.
    let alice = p.chain("eec_alice");
    assert!(v.validate(&alice, t0).valid());
    let crl_due = v
        .store()
        .all_crls()
        .filter(|c| c.issuer.contains("Fedgate Test Root CA"))
        .filter_map(|c| c.next_update)
        .min()
        .expect("rootA CRL");
    assert!(
        v.validate(&alice, crl_due + 3600).valid(),
        "within the grace"
    );
    let stale = v.validate(&alice, crl_due + 3601);
    assert_eq!(
        stale.failure.expect("CRL past nextUpdate").kind,
        FailKind::CrlExpired
    );
}
