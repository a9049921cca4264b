//! A throwaway PKI for the demo: a CA, a host certificate for localhost
//! and a user certificate, written in IGTF layout with an empty CRL.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

pub struct DemoPki {
    pub ca_file: PathBuf,
    pub ca_dir: PathBuf,
    pub host_cert: PathBuf,
    pub host_key: PathBuf,
    pub user_cert: PathBuf,
    pub user_key: PathBuf,
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    for (t, v) in parts {
        d.push(t.clone(), *v);
    }
    d
}

pub fn create(dir: &Path) -> Result<DemoPki, Box<dyn std::error::Error>> {
    let ca_dir = dir.join("certificates");
    std::fs::create_dir_all(&ca_dir)?;

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn(&[
        (DnType::OrganizationName, "fedgate demo"),
        (DnType::CommonName, "fedgate demo CA"),
    ]);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let now = time::OffsetDateTime::now_utc();
    let host_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut host = CertificateParams::default();
    host.distinguished_name = dn(&[
        (DnType::OrganizationName, "fedgate demo"),
        (DnType::CommonName, "localhost"),
    ]);
    host.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ];
    host.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    host.not_before = now - time::Duration::hours(1);
    host.not_after = now + time::Duration::days(30);
    let host_cert = host.signed_by(&host_key, &issuer)?;

    let user_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut user = CertificateParams::default();
    user.distinguished_name = dn(&[
        (DnType::OrganizationName, "fedgate demo"),
        (DnType::CommonName, "Demo User"),
    ]);
    user.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    user.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    user.not_before = now - time::Duration::hours(1);
    user.not_after = now + time::Duration::days(30);
    let user_cert = user.signed_by(&user_key, &issuer)?;

    // An empty CRL, as fetch-crl would install: fedgate requires one for
    // every CA by default.
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(5),
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)?;

    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem())?;
    let hash = crate::pki::hash::subject_hash(ca_cert.der())?;
    std::fs::write(ca_dir.join(format!("{hash:08x}.0")), ca_cert.pem())?;
    std::fs::write(ca_dir.join(format!("{hash:08x}.r0")), crl.pem()?)?;
    let p = DemoPki {
        ca_file,
        ca_dir,
        host_cert: dir.join("hostcert.pem"),
        host_key: dir.join("hostkey.pem"),
        user_cert: dir.join("usercert.pem"),
        user_key: dir.join("userkey.pem"),
    };
    std::fs::write(&p.host_cert, host_cert.pem())?;
    std::fs::write(&p.host_key, host_key.serialize_pem())?;
    std::fs::write(&p.user_cert, user_cert.pem())?;
    std::fs::write(&p.user_key, user_key.serialize_pem())?;
    Ok(p)
}
