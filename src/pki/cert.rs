//! One certificate, parsed once into the owned facts path validation and
//! the gridsite values need, including its GSI proxy classification.

use thiserror::Error;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::*;

use super::tlv;
use super::verify::PublicKey;

pub const OID_PROXY_RFC: &str = "1.3.6.1.5.5.7.1.14";
pub const OID_PROXY_GT3: &str = "1.3.6.1.4.1.3536.1.222";
pub const OID_VOMS_AC: &str = "1.3.6.1.4.1.8005.100.100.5";
const PPL_INHERIT_ALL: &str = "1.3.6.1.5.5.7.21.1";
const PPL_INDEPENDENT: &str = "1.3.6.1.5.5.7.21.2";
const PPL_LIMITED: &str = "1.3.6.1.4.1.3536.1.1.1.9";
const ROBOT_POLICY: &str = "1.2.840.113612.5.2.3.3.1";
/// DER of the commonName attribute type OID (2.5.4.3).
const CN_OID_DER: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// Critical extensions fedgate understands on CA and end-entity certs.
const KNOWN_CRITICAL: &[&str] = &[
    "2.5.29.15",             // keyUsage
    "2.5.29.19",             // basicConstraints
    "2.5.29.37",             // extKeyUsage
    "2.5.29.17",             // subjectAltName
    "2.5.29.18",             // issuerAltName
    "2.5.29.14",             // subjectKeyIdentifier
    "2.5.29.35",             // authorityKeyIdentifier
    "2.5.29.32",             // certificatePolicies
    "2.5.29.31",             // cRLDistributionPoints
    "2.16.840.1.113730.1.1", // nsCertType
    OID_PROXY_RFC,
    OID_PROXY_GT3,
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertError {
    #[error("certificate is not valid DER: {0}")]
    Parse(String),
    #[error("certificate has a malformed {0} extension")]
    BadExtension(&'static str),
}

/// How a proxy came to be one: RFC 3820 (its ProxyCertInfo OID), the
/// GT3 draft (the older OID), or a legacy GT2 proxy (a `CN=proxy` or
/// `CN=limited proxy` appended to its issuer's DN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Rfc,
    Gt3,
    Legacy,
}

impl ProxyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Rfc => "RFC 3820",
            ProxyKind::Gt3 => "GT3 draft",
            ProxyKind::Legacy => "legacy Globus",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyPolicy {
    InheritAll,
    Limited,
    Independent,
    /// Any other policy language: a restricted proxy.
    Restricted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInfo {
    pub kind: ProxyKind,
    pub policy: ProxyPolicy,
    /// pCPathLenConstraint; `None` = unlimited (always for legacy).
    pub path_len: Option<u32>,
    /// Whether the proxy extension was marked critical (RFC 3820 requires it).
    pub critical: bool,
}

impl ProxyInfo {
    pub fn limited(&self) -> bool {
        self.policy == ProxyPolicy::Limited
    }
}

/// Owned facts about one certificate.
#[derive(Debug, Clone, Default)]
pub struct Cert {
    pub der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// Canonical names (OpenSSL's comparison form) for X.500 name matching.
    pub subject_key: Vec<u8>,
    pub issuer_key: Vec<u8>,
    /// RDN SETs of the subject in canonical form (strings as lower-cased
    /// UTF8String, as OpenSSL compares names), root-most first.
    pub subject_rdns: Vec<Vec<u8>>,
    pub issuer_rdns: Vec<Vec<u8>>,
    pub subject: String,
    pub issuer: String,
    pub subject_rfc2253: String,
    pub issuer_rfc2253: String,
    /// mod_ssl's per-field values of subject and issuer (`CN`, `CN_1`, ...).
    pub subject_fields: Vec<(String, String)>,
    pub issuer_fields: Vec<(String, String)>,
    /// X.509 version as written in the certificate (1 to 3).
    pub version: u32,
    /// subjectAltName rfc822Name and dNSName entries, in certificate order.
    pub san_email: Vec<String>,
    pub san_dns: Vec<String>,
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub ca: bool,
    pub ca_path_len: Option<u32>,
    /// keyUsage bit flags as x509-parser numbers them, if present.
    pub key_usage: Option<u16>,
    /// subjectKeyIdentifier, if present.
    pub ski: Option<Vec<u8>>,
    /// extendedKeyUsage, if present.
    pub ext_key_usage: Option<ExtKeyUsage>,
    pub proxy: Option<ProxyInfo>,
    /// Critical extensions fedgate does not understand.
    pub unknown_critical: Vec<String>,
    /// OIDs of every critical extension.
    pub critical: Vec<String>,
    pub has_alt_names: bool,
    pub robot: bool,
    pub has_voms_ext: bool,
    pub tbs: Vec<u8>,
    pub sig_alg: String,
    pub signature: Vec<u8>,
    pub key: PublicKey,
}

/// The purposes an extendedKeyUsage extension lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtKeyUsage {
    pub client_auth: bool,
    /// anyExtendedKeyUsage (RFC 5280 §4.2.1.12).
    pub any: bool,
    /// Every purpose, by name (dotted OID when unnamed), for messages.
    pub names: Vec<String>,
}

fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let flags = [
        (e.any, "anyExtendedKeyUsage"),
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ];
    let mut out: Vec<String> = flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| n.to_string())
        .collect();
    out.extend(e.other.iter().map(|o| o.to_id_string()));
    out
}

/// keyUsage bits by name, in RFC 5280 §4.2.1.3 order, for messages.
pub fn key_usage_names(flags: u16) -> Vec<&'static str> {
    const NAMES: [&str; 9] = [
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

pub const KU_DIGITAL_SIGNATURE: u16 = 1;
pub const KU_KEY_CERT_SIGN: u16 = 1 << 5;
pub const KU_CRL_SIGN: u16 = 1 << 6;

impl Cert {
    pub fn parse(der: &[u8]) -> Result<Cert, CertError> {
        let (rest, c) =
            X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::Parse(
                "trailing bytes after the certificate".into(),
            ));
        }
        let subject_key = super::hash::canonical_name(c.subject());
        let issuer_key = super::hash::canonical_name(c.issuer());
        let subject_rdns = rdn_sets(&subject_key).ok_or(CertError::Parse("bad subject".into()))?;
        let issuer_rdns = rdn_sets(&issuer_key).ok_or(CertError::Parse("bad issuer".into()))?;
        let mut cert = Cert {
            der: der.to_vec(),
            subject_der: c.subject().as_raw().to_vec(),
            issuer_der: c.issuer().as_raw().to_vec(),
            subject_key,
            issuer_key,
            subject_rdns,
            issuer_rdns,
            subject: super::dn::oneline(c.subject()),
            issuer: super::dn::oneline(c.issuer()),
            subject_rfc2253: super::dn::rfc2253(c.subject()),
            issuer_rfc2253: super::dn::rfc2253(c.issuer()),
            subject_fields: super::dn::fields(c.subject()),
            issuer_fields: super::dn::fields(c.issuer()),
            version: c.version().0.saturating_add(1),
            san_email: Vec::new(),
            san_dns: Vec::new(),
            serial: c.raw_serial().to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            ca: false,
            ca_path_len: None,
            key_usage: None,
            ski: None,
            ext_key_usage: None,
            proxy: None,
            unknown_critical: Vec::new(),
            critical: Vec::new(),
            has_alt_names: false,
            robot: false,
            has_voms_ext: false,
            tbs: c.tbs_certificate.as_ref().to_vec(),
            sig_alg: c.signature_algorithm.algorithm.to_id_string(),
            signature: c.signature_value.data.to_vec(),
            key: PublicKey::from_spki(c.public_key()),
        };
        let mut robot_policy = false;
        let mut proxy_ext: Option<(ProxyKind, bool, &[u8])> = None;
        for ext in c.extensions() {
            let oid = ext.oid.to_id_string();
            if ext.critical {
                cert.critical.push(oid.clone());
                if !KNOWN_CRITICAL.contains(&oid.as_str()) {
                    cert.unknown_critical.push(oid.clone());
                }
            }
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    cert.ca = bc.ca;
                    cert.ca_path_len = bc.path_len_constraint;
                }
                ParsedExtension::KeyUsage(ku) => cert.key_usage = Some(ku.flags),
                ParsedExtension::SubjectKeyIdentifier(k) => cert.ski = Some(k.0.to_vec()),
                ParsedExtension::ExtendedKeyUsage(e) => {
                    cert.ext_key_usage = Some(ExtKeyUsage {
                        client_auth: e.client_auth,
                        any: e.any,
                        names: eku_names(e),
                    })
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    cert.has_alt_names = true;
                    for n in &san.general_names {
                        match n {
                            GeneralName::RFC822Name(e) => cert.san_email.push(e.to_string()),
                            GeneralName::DNSName(d) => cert.san_dns.push(d.to_string()),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::IssuerAlternativeName(_) => cert.has_alt_names = true,
                ParsedExtension::CertificatePolicies(p) => {
                    robot_policy |= p.iter().any(|p| p.policy_id.to_id_string() == ROBOT_POLICY)
                }
                ParsedExtension::ParseError { .. } if oid == "2.5.29.19" => {
                    return Err(CertError::BadExtension("basicConstraints"));
                }
                ParsedExtension::ParseError { .. } if oid == "2.5.29.15" => {
                    return Err(CertError::BadExtension("keyUsage"));
                }
                ParsedExtension::ParseError { .. } if oid == "2.5.29.37" => {
                    return Err(CertError::BadExtension("extendedKeyUsage"));
                }
                _ => {}
            }
            match oid.as_str() {
                OID_PROXY_RFC => proxy_ext = Some((ProxyKind::Rfc, ext.critical, ext.value)),
                OID_PROXY_GT3 if proxy_ext.is_none() => {
                    proxy_ext = Some((ProxyKind::Gt3, ext.critical, ext.value))
                }
                OID_VOMS_AC => cert.has_voms_ext = true,
                "2.5.29.17" | "2.5.29.18" => cert.has_alt_names = true,
                _ => {}
            }
        }
        cert.proxy = match proxy_ext {
            Some((kind, critical, value)) => Some(parse_proxy_cert_info(kind, critical, value)?),
            None if !cert.ca => legacy_proxy(&cert.subject_rdns).map(|limited| ProxyInfo {
                kind: ProxyKind::Legacy,
                policy: if limited {
                    ProxyPolicy::Limited
                } else {
                    ProxyPolicy::InheritAll
                },
                path_len: None,
                critical: false,
            }),
            None => None,
        };
        cert.robot = robot_policy && cert.proxy.is_none() && is_robot_name(&cert.subject);
        Ok(cert)
    }

    pub fn self_issued(&self) -> bool {
        self.subject_key == self.issuer_key
    }

    pub fn is_proxy(&self) -> bool {
        self.proxy.is_some()
    }

    /// Whether an authorityKeyIdentifier `key_id` names this certificate's
    /// key: `Some(true)` when it equals the subjectKeyIdentifier or the
    /// SHA-1 of the public key (RFC 5280 §4.2.1.2, method 1), `Some(false)`
    /// when the certificate has a subjectKeyIdentifier that differs, and
    /// `None` when nothing can be said (no SKI, another derivation).
    pub fn key_id_matches(&self, key_id: &[u8]) -> Option<bool> {
        if self.ski.as_deref() == Some(key_id) {
            return Some(true);
        }
        let sha1 =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.key.bits);
        if sha1.as_ref() == key_id {
            return Some(true);
        }
        self.ski.is_some().then_some(false)
    }

    /// mod_ssl's PEM rendering (`SSL_CLIENT_CERT`).
    pub fn pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// Serial as upper-case hex with an even number of digits (OpenSSL).
    pub fn serial_hex(&self) -> String {
        let s: &[u8] = match self.serial.iter().position(|&b| b != 0) {
            Some(i) => &self.serial[i..],
            None => &[0],
        };
        s.iter().map(|b| format!("{b:02X}")).collect()
    }
}

/// The RDN SETs of a canonical name (concatenated SETs, no outer SEQUENCE).
fn rdn_sets(canonical: &[u8]) -> Option<Vec<Vec<u8>>> {
    Some(
        tlv::children(canonical)?
            .into_iter()
            .map(|t| t.raw.to_vec())
            .collect(),
    )
}

/// The value of an RDN SET if it is exactly one commonName.
pub fn single_cn(rdn: &[u8]) -> Option<Vec<u8>> {
    let (set, _) = tlv::read(rdn)?;
    let items = tlv::children(set.content)?;
    let [atv] = items.as_slice() else {
        return None;
    };
    let parts = tlv::children(atv.content)?;
    let [oid, value] = parts.as_slice() else {
        return None;
    };
    (oid.raw == CN_OID_DER).then(|| value.content.to_vec())
}

/// `Some(limited)` when the last RDN is CN=proxy / CN=limited proxy.
fn legacy_proxy(rdns: &[Vec<u8>]) -> Option<bool> {
    let cn = single_cn(rdns.last()?)?;
    if cn.eq_ignore_ascii_case(b"proxy") {
        Some(false)
    } else if cn.eq_ignore_ascii_case(b"limited proxy") {
        Some(true)
    } else {
        None
    }
}

fn policy_of(lang: &str) -> ProxyPolicy {
    match lang {
        PPL_INHERIT_ALL => ProxyPolicy::InheritAll,
        PPL_LIMITED => ProxyPolicy::Limited,
        PPL_INDEPENDENT => ProxyPolicy::Independent,
        _ => ProxyPolicy::Restricted,
    }
}

/// Decodes ProxyCertInfo. RFC: `SEQ { INTEGER OPTIONAL, ProxyPolicy }`;
/// GT3 draft: `SEQ { ProxyPolicy, [1] EXPLICIT INTEGER OPTIONAL }`.
pub fn parse_proxy_cert_info(
    kind: ProxyKind,
    critical: bool,
    value: &[u8],
) -> Result<ProxyInfo, CertError> {
    let bad = || CertError::BadExtension("proxyCertInfo");
    let (seq, rest) = tlv::read(value).ok_or_else(bad)?;
    if seq.tag != 0x30 || !rest.is_empty() {
        return Err(bad());
    }
    let items = tlv::children(seq.content).ok_or_else(bad)?;
    let (policy_tlv, len) = match (kind, items.as_slice()) {
        (ProxyKind::Rfc, [p]) => (*p, None),
        (ProxyKind::Rfc, [i, p]) if i.tag == 0x02 => (*p, Some(*i)),
        (ProxyKind::Gt3, [p]) => (*p, None),
        (ProxyKind::Gt3, [p, i]) if i.tag == 0xa1 => {
            let (inner, r) = tlv::read(i.content).ok_or_else(bad)?;
            if inner.tag != 0x02 || !r.is_empty() {
                return Err(bad());
            }
            (*p, Some(inner))
        }
        _ => return Err(bad()),
    };
    let path_len = match len {
        Some(i) => Some(tlv::small_uint(i.content).ok_or_else(bad)?),
        None => None,
    };
    if policy_tlv.tag != 0x30 {
        return Err(bad());
    }
    let pol = tlv::children(policy_tlv.content).ok_or_else(bad)?;
    let lang = match pol.as_slice() {
        [oid] | [oid, _] if oid.tag == 0x06 => oid_string(oid.content).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(ProxyInfo {
        kind,
        policy: policy_of(&lang),
        path_len,
        critical,
    })
}

fn oid_string(content: &[u8]) -> Option<String> {
    if content.last().is_none_or(|b| b & 0x80 != 0) {
        return None;
    }
    Some(asn1_rs::Oid::new(std::borrow::Cow::Borrowed(content)).to_id_string())
}

/// gridsite's robot test: some CN starts with `Robot` followed by a
/// non-alphanumeric character, and the CN is longer than six bytes.
fn is_robot_name(oneline: &str) -> bool {
    oneline.split('/').any(|rdn| {
        rdn.strip_prefix("CN=").is_some_and(|v| {
            v.len() > 6 && v.starts_with("Robot") && !v.as_bytes()[5].is_ascii_alphanumeric()
        })
    })
}

/// Reads every certificate of a PEM file (proxy file layout: leaf, key,
/// chain); private keys and other blocks are skipped. DER input is
/// accepted as a single certificate.
pub fn certs_from_pem(data: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    if data.first() == Some(&0x30) {
        return Ok(vec![data.to_vec()]);
    }
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
        let (kind, der) = item.map_err(|e| CertError::Parse(format!("PEM: {e}")))?;
        if kind == SectionKind::Certificate {
            out.push(der);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_cert_info_both_layouts() {
        // RFC, pathlen 1, inheritAll.
        let rfc = [
            0x30, 0x0f, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05,
            0x07, 0x15, 0x01,
        ];
        let p = parse_proxy_cert_info(ProxyKind::Rfc, true, &rfc).unwrap();
        assert_eq!((p.policy, p.path_len), (ProxyPolicy::InheritAll, Some(1)));
        // Draft, limited, [1] pathlen 3.
        let mut gt3 = vec![0x30, 0x14, 0x30, 0x0d, 0x06, 0x0b];
        gt3.extend([
            0x2b, 0x06, 0x01, 0x04, 0x01, 0x9b, 0x50, 0x01, 0x01, 0x01, 0x09,
        ]);
        gt3.extend([0xa1, 0x03, 0x02, 0x01, 0x03]);
        let p = parse_proxy_cert_info(ProxyKind::Gt3, true, &gt3).unwrap();
        assert_eq!((p.policy, p.path_len), (ProxyPolicy::Limited, Some(3)));
        assert!(parse_proxy_cert_info(ProxyKind::Rfc, true, &gt3).is_err());
        assert!(parse_proxy_cert_info(ProxyKind::Rfc, true, &[0x30, 0x00]).is_err());
    }

    #[test]
    fn robot_names() {
        assert!(is_robot_name("/DC=org/CN=Robot: Monitoring"));
        assert!(is_robot_name("/DC=org/CN=Robot - x"));
        assert!(!is_robot_name("/DC=org/CN=Robotics Lab"));
        assert!(!is_robot_name("/DC=org/CN=Robot:"));
    }
}
