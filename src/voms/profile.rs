//! The first check of an AC (see `validate.rs`): a decoded AC is reduced to the VOMS profile, and
//! everything VOMS does not emit is refused here so later steps can rely
//! on one shape.

use der::asn1::Int;
use der::{Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;

use super::GenericAttribute;
use super::asn1::{
    self, OID_AC_CERTS, OID_AKI, OID_FQAN, OID_GENERIC, OID_TARGETS, ParsedAc, TargetName,
};

/// One AC in VOMS terms. Names are kept as DER so they can be compared
/// per RFC 5280 rather than as printed strings.
#[derive(Debug, Clone)]
pub struct VomsAc {
    pub acinfo_der: Vec<u8>,
    /// Dotted OIDs of `signatureAlgorithm` (outer) and `acinfo.signature`.
    pub sig_alg: String,
    pub inner_sig_alg: String,
    pub signature: Vec<u8>,
    pub holder_issuer: Vec<u8>,
    pub holder_serial: Vec<u8>,
    pub holder_issuer_uid: Option<Vec<u8>>,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub not_before_raw: String,
    pub not_after_raw: String,
    pub vo: String,
    /// `host:port` after `://`.
    pub uri: String,
    pub host: String,
    pub fqans: Vec<String>,
    pub certs: Vec<Vec<u8>>,
    pub generic: Vec<GenericAttribute>,
    /// `None` when the AC has no targetInformation extension.
    pub targets: Option<Vec<TargetName>>,
    pub aki: Option<Vec<u8>>,
    pub has_no_rev_avail: bool,
    /// `(dotted OID, critical)` of every extension, in order.
    pub extensions: Vec<(String, bool)>,
}

/// Reduces a decoded AC to the VOMS profile (step 1).
pub fn profile(ac: &ParsedAc) -> Result<VomsAc, String> {
    let info = &ac.info;
    if int_bytes(&info.version) != [1] {
        return Err("AC version is not v2".into());
    }
    let base = info
        .holder
        .base_certificate_id
        .as_ref()
        .ok_or("AC holder has no baseCertificateID")?;
    let holder_issuer =
        one_directory_name(&base.issuer).ok_or("AC holder issuer is not one directoryName")?;
    if info.issuer.base_certificate_id.is_some() || info.issuer.object_digest_info.is_some() {
        return Err("AC issuer must name the server only (v2Form issuerName)".into());
    }
    let issuer = info
        .issuer
        .issuer_name
        .as_ref()
        .and_then(one_directory_name)
        .ok_or("AC issuer is not exactly one directoryName")?;
    let serial = int_bytes(&info.serial).to_vec();
    if serial.len() > 20 {
        return Err("AC serial is longer than 20 octets".into());
    }
    let (vo, uri, host, fqans) = fqan_attribute(info)?;

    let mut out = VomsAc {
        acinfo_der: ac.acinfo_der.clone(),
        sig_alg: ac.signature_algorithm.oid.to_string(),
        inner_sig_alg: info.signature.oid.to_string(),
        signature: ac.signature.clone(),
        holder_issuer,
        holder_serial: int_bytes(&base.serial).to_vec(),
        holder_issuer_uid: base.issuer_uid.as_ref().map(|b| b.raw_bytes().to_vec()),
        issuer,
        serial,
        not_before: unix(&info.validity.not_before),
        not_after: unix(&info.validity.not_after),
        not_before_raw: raw_time(&info.validity.not_before),
        not_after_raw: raw_time(&info.validity.not_after),
        vo,
        uri,
        host,
        fqans,
        certs: Vec::new(),
        generic: Vec::new(),
        targets: None,
        aki: None,
        has_no_rev_avail: false,
        extensions: Vec::new(),
    };
    for ext in info.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        let oid = ext.extn_id.to_string();
        // A second copy could disagree with the first (two AKIs, two
        // target lists); RFC 5280 forbids it, so refuse rather than pick.
        if out.extensions.iter().any(|(o, _)| *o == oid) {
            return Err(format!("AC has extension {oid} twice"));
        }
        out.extensions.push((oid, ext.critical));
        match ext.extn_id {
            OID_AC_CERTS => {
                out.certs = asn1::parse_ac_certs(value)
                    .map_err(|e| format!("AC certificates extension: {e}"))?
            }
            OID_GENERIC => {
                out.generic =
                    generic(value).map_err(|e| format!("generic attributes extension: {e}"))?
            }
            OID_TARGETS => {
                out.targets = Some(
                    asn1::parse_targets(value).map_err(|e| format!("targets extension: {e}"))?,
                )
            }
            OID_AKI => {
                let aki =
                    <x509_cert::ext::pkix::AuthorityKeyIdentifier as der::Decode>::from_der(value)
                        .map_err(|e| format!("authority key identifier: {e}"))?;
                out.aki = aki.key_identifier.map(|k| k.as_bytes().to_vec());
            }
            asn1::OID_NO_REV_AVAIL => out.has_no_rev_avail = true,
            _ => {}
        }
    }
    Ok(out)
}

/// The FQAN attribute: one IetfAttrSyntax, one `vo://host:port` URI,
/// FQANs as OCTET STRINGs.
fn fqan_attribute(info: &asn1::AcInfo) -> Result<(String, String, String, Vec<String>), String> {
    let mut attrs = info.attributes.iter().filter(|a| a.oid == OID_FQAN);
    let attr = attrs.next().ok_or("AC has no FQAN attribute")?;
    if attrs.next().is_some() {
        return Err("AC has more than one FQAN attribute".into());
    }
    let [value] = attr.values.as_slice() else {
        return Err("FQAN attribute must hold exactly one value".into());
    };
    let syntax: asn1::IetfAttrSyntax = value
        .decode_as()
        .map_err(|e| format!("FQAN attribute is not IetfAttrSyntax: {e}"))?;
    let pa = match syntax.policy_authority.as_deref() {
        Some([GeneralName::UniformResourceIdentifier(u)]) => u.as_str().to_string(),
        _ => return Err("FQAN attribute needs exactly one URI policyAuthority".into()),
    };
    let (vo, uri) = pa
        .split_once("://")
        .ok_or_else(|| format!("policyAuthority `{pa}` is not vo://host:port"))?;
    let host = uri.rsplit_once(':').map_or(uri, |(h, _)| h);
    let mut fqans = Vec::with_capacity(syntax.values.len());
    for v in &syntax.values {
        if v.tag() != Tag::OctetString {
            return Err("FQAN value is not an OCTET STRING".into());
        }
        let s = std::str::from_utf8(v.value()).map_err(|_| "FQAN is not UTF-8")?;
        fqans.push(s.to_string());
    }
    if fqans.is_empty() {
        return Err("AC carries no FQAN".into());
    }
    Ok((vo.to_string(), uri.to_string(), host.to_string(), fqans))
}

fn generic(value: &[u8]) -> Result<Vec<GenericAttribute>, asn1::AsnError> {
    let text = |o: &der::asn1::OctetString| String::from_utf8_lossy(o.as_bytes()).into_owned();
    Ok(asn1::parse_generic(value)?
        .iter()
        .flat_map(|h| h.attributes.iter())
        .map(|t| GenericAttribute {
            name: text(&t.name),
            value: text(&t.value),
            qualifier: text(&t.qualifier),
        })
        .collect())
}

fn one_directory_name(names: &x509_cert::ext::pkix::name::GeneralNames) -> Option<Vec<u8>> {
    if names.len() != 1 {
        return None;
    }
    asn1::directory_names(names).pop()
}

/// Magnitude bytes of an INTEGER without DER's sign-padding zero, so that
/// serials compare as numbers.
pub fn int_bytes(i: &Int) -> &[u8] {
    let b = i.as_bytes();
    let skip = b
        .iter()
        .take(b.len().saturating_sub(1))
        .take_while(|&&x| x == 0)
        .count();
    &b[skip..]
}

fn unix(t: &der::asn1::GeneralizedTime) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The GeneralizedTime text as received; DER allows only one spelling,
/// so printing the decoded value reproduces it.
fn raw_time(t: &der::asn1::GeneralizedTime) -> String {
    let d = t.to_date_time();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds()
    )
}
