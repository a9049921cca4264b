//! ASN.1 of the VOMS proxy extension and of RFC 5755 attribute certificates
//! as VOMS profiles them (RFC 5755; OGF GFD.182, "VOMS Attribute
//! Certificate Format").
//!
//! The structures are declarative (`der` derive) so that every byte of
//! untrusted input goes through one well-tested decoder. The signed
//! `acinfo` is kept as the exact bytes received: re-encoding a decoded
//! structure could differ from what the VOMS server signed.

use der::asn1::{Any, BitString, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Reader, Sequence, SliceReader, Tag, Tagged};
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::name::GeneralNames;
use x509_cert::spki::AlgorithmIdentifierOwned;

/// The proxy extension carrying the ACs ("acseq").
pub const OID_ACSEQ: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.8005.100.100.5");
/// The AC attribute holding the FQANs.
pub const OID_FQAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.8005.100.100.4");
/// AC extension: the AA certificate (and possibly its chain).
pub const OID_AC_CERTS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.8005.100.100.10");
/// AC extension: generic attributes (`-ga`).
pub const OID_GENERIC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.8005.100.100.11");
pub const OID_TARGETS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.55");
pub const OID_NO_REV_AVAIL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.56");
pub const OID_AKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

/// Why bytes could not be read as a VOMS structure.
#[derive(Debug, thiserror::Error)]
pub enum AsnError {
    #[error("malformed DER: {0}")]
    Der(#[from] der::Error),
    #[error("{0}")]
    Shape(&'static str),
}

/// `IssuerSerial` (RFC 5755): the holder's certificate by issuer and serial.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct IssuerSerial {
    pub issuer: GeneralNames,
    pub serial: Int,
    #[asn1(optional = "true")]
    pub issuer_uid: Option<BitString>,
}

/// `ObjectDigestInfo`: never emitted by VOMS, decoded only so that such an
/// AC is refused with a clear reason rather than as garbage.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct ObjectDigestInfo {
    pub digested_object_type: Any,
    #[asn1(optional = "true")]
    pub other_object_type_id: Option<ObjectIdentifier>,
    pub digest_algorithm: AlgorithmIdentifierOwned,
    pub object_digest: BitString,
}

#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct Holder {
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub base_certificate_id: Option<IssuerSerial>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub entity_name: Option<GeneralNames>,
    #[asn1(
        context_specific = "2",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub object_digest_info: Option<ObjectDigestInfo>,
}

/// `V2Form`, the only issuer form RFC 5755 allows; VOMS fills `issuerName`.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct V2Form {
    #[asn1(optional = "true")]
    pub issuer_name: Option<GeneralNames>,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub base_certificate_id: Option<IssuerSerial>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub object_digest_info: Option<ObjectDigestInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct AcValidity {
    pub not_before: GeneralizedTime,
    pub not_after: GeneralizedTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct AcAttribute {
    pub oid: ObjectIdentifier,
    pub values: SetOfVec<Any>,
}

/// `AttributeCertificateInfo`, the signed part.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct AcInfo {
    pub version: Int,
    pub holder: Holder,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    pub issuer: V2Form,
    pub signature: AlgorithmIdentifierOwned,
    pub serial: Int,
    pub validity: AcValidity,
    pub attributes: Vec<AcAttribute>,
    #[asn1(optional = "true")]
    pub issuer_unique_id: Option<BitString>,
    #[asn1(optional = "true")]
    pub extensions: Option<Extensions>,
}

/// `IetfAttrSyntax`; `values` stay raw because only OCTET STRING is
/// acceptable for FQANs and the other CHOICE arms must be refused, not
/// silently skipped.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct IetfAttrSyntax {
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub policy_authority: Option<GeneralNames>,
    pub values: Vec<Any>,
}

/// One `name=value (qualifier)` triple of the generic attributes extension.
#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct GaTriple {
    pub name: OctetString,
    pub value: OctetString,
    pub qualifier: OctetString,
}

#[derive(Debug, Clone, PartialEq, Eq, Sequence)]
pub struct GaHolder {
    pub grantor: GeneralNames,
    pub attributes: Vec<GaTriple>,
}

/// One attribute certificate, with the signed bytes kept verbatim.
#[derive(Debug, Clone)]
pub struct ParsedAc {
    /// The `acinfo` TLV exactly as received: the signature covers these.
    pub acinfo_der: Vec<u8>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: Vec<u8>,
    pub info: AcInfo,
}

/// Splits the value of the acseq extension into the DER of each AC, so
/// that one malformed AC does not hide the others.
pub fn split_acseq(value: &[u8]) -> Result<Vec<&[u8]>, AsnError> {
    let mut reader = SliceReader::new(value)?;
    let acs = reader.sequence(|outer: &mut SliceReader<'_>| {
        let mut acs = Vec::new();
        while !outer.is_finished() {
            outer.sequence(|inner: &mut SliceReader<'_>| {
                while !inner.is_finished() {
                    acs.push(inner.tlv_bytes()?);
                }
                Ok::<_, der::Error>(())
            })?;
        }
        Ok::<_, der::Error>(acs)
    })?;
    reader.finish()?;
    if acs.is_empty() {
        return Err(AsnError::Shape(
            "VOMS extension holds no attribute certificate",
        ));
    }
    Ok(acs)
}

/// Decodes one `AttributeCertificate`.
pub fn parse_ac(der: &[u8]) -> Result<ParsedAc, AsnError> {
    let mut reader = SliceReader::new(der)?;
    let (acinfo_der, signature_algorithm, signature) =
        reader.sequence(|r: &mut SliceReader<'_>| {
            let acinfo = r.tlv_bytes()?;
            let alg = AlgorithmIdentifierOwned::decode(r)?;
            let sig = BitString::decode(r)?;
            Ok::<_, der::Error>((acinfo, alg, sig))
        })?;
    reader.finish()?;
    let signature = signature
        .as_bytes()
        .ok_or(AsnError::Shape("signature BIT STRING has unused bits"))?
        .to_vec();
    let info = AcInfo::from_der(acinfo_der)?;
    Ok(ParsedAc {
        acinfo_der: acinfo_der.to_vec(),
        signature_algorithm,
        signature,
        info,
    })
}

/// The AC-certs extension value: `SEQUENCE { SEQUENCE OF Certificate }`,
/// returned as the DER of each certificate (x509-parser reads them later).
pub fn parse_ac_certs(value: &[u8]) -> Result<Vec<Vec<u8>>, AsnError> {
    let lists = Vec::<Vec<Any>>::from_der(value)?;
    let mut out = Vec::new();
    for cert in lists.into_iter().flatten() {
        if cert.tag() != Tag::Sequence {
            return Err(AsnError::Shape(
                "AC certificate list holds a non-certificate",
            ));
        }
        out.push(der::Encode::to_der(&cert)?);
    }
    Ok(out)
}

/// The generic attributes extension: `SEQUENCE { SEQUENCE OF GaHolder }`.
/// gLite-era servers wrote an empty list, which decodes to nothing.
pub fn parse_generic(value: &[u8]) -> Result<Vec<GaHolder>, AsnError> {
    Ok(Vec::<Vec<GaHolder>>::from_der(value)?
        .into_iter()
        .flatten()
        .collect())
}

/// A target name: host names travel in URI (or DNS) general names; other
/// forms cannot match a configured name but still count as "has targets".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetName {
    Name(String),
    Other,
}

/// targetInformation (2.5.29.55) in both shapes seen in the wild: VOMS
/// wraps each Target in an extra SEQUENCE
/// (`SEQ { SEQ OF SEQ { [0] GeneralName } }`), RFC 5755 does not
/// (`SEQ OF SEQ OF Target`).
pub fn parse_targets(value: &[u8]) -> Result<Vec<TargetName>, AsnError> {
    let lists = Vec::<Vec<Any>>::from_der(value)?;
    let mut out = Vec::new();
    for item in lists.into_iter().flatten() {
        let target = if item.tag() == Tag::Sequence {
            let inner = Vec::<Any>::from_der(&der::Encode::to_der(&item)?)?;
            match <[Any; 1]>::try_from(inner) {
                Ok([t]) => t,
                Err(_) => return Err(AsnError::Shape("VOMS target wrapper must hold one Target")),
            }
        } else {
            item
        };
        out.push(target_name(&target)?);
    }
    Ok(out)
}

/// `Target ::= CHOICE { targetName [0] EXPLICIT GeneralName, targetGroup [1]
/// EXPLICIT GeneralName, targetCert [2] IMPLICIT TargetCert }`.
fn target_name(t: &Any) -> Result<TargetName, AsnError> {
    use x509_cert::ext::pkix::name::GeneralName;
    match t.tag() {
        Tag::ContextSpecific {
            constructed: true,
            number,
        } if number.value() <= 1 => match GeneralName::from_der(t.value())? {
            GeneralName::UniformResourceIdentifier(s) | GeneralName::DnsName(s) => {
                Ok(TargetName::Name(s.as_str().to_string()))
            }
            _ => Ok(TargetName::Other),
        },
        Tag::ContextSpecific {
            constructed: true,
            number,
        } if number.value() == 2 => Ok(TargetName::Other),
        _ => Err(AsnError::Shape("unknown Target choice")),
    }
}

/// The DER of each directoryName in `names`, other forms skipped.
pub fn directory_names(names: &GeneralNames) -> Vec<Vec<u8>> {
    use x509_cert::ext::pkix::name::GeneralName;
    names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DirectoryName(name) => der::Encode::to_der(name).ok(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, c: &[u8]) -> Vec<u8> {
        let mut v = vec![tag, c.len() as u8];
        v.extend_from_slice(c);
        v
    }

    #[test]
    fn targets_in_voms_and_rfc_shapes() {
        // The VOMS shape of a target (GFD.182 §3.4): a URI GeneralName
        let t = |n: &str| tlv(0xA0, &tlv(0x86, n.as_bytes()));
        let voms = tlv(
            0x30,
            &tlv(
                0x30,
                &[tlv(0x30, &t("keystone.example.org")), tlv(0x30, &t("vm"))].concat(),
            ),
        );
        let names = parse_targets(&voms).unwrap();
        assert_eq!(
            names,
            vec![
                TargetName::Name("keystone.example.org".into()),
                TargetName::Name("vm".into())
            ]
        );
        assert_eq!(hex::encode(&voms)[..12], *"302430223018");
        let rfc = tlv(
            0x30,
            &tlv(
                0x30,
                &[t("a.example"), tlv(0xA1, &tlv(0x82, b"b.example"))].concat(),
            ),
        );
        assert_eq!(
            parse_targets(&rfc).unwrap(),
            vec![
                TargetName::Name("a.example".into()),
                TargetName::Name("b.example".into())
            ]
        );
        assert!(
            parse_targets(&tlv(
                0x30,
                &tlv(0x30, &tlv(0x30, &[t("x"), t("y")].concat()))
            ))
            .is_err()
        );
        assert!(parse_targets(&tlv(0x30, &tlv(0x30, &tlv(0x04, b"x")))).is_err());
    }

    #[test]
    fn acseq_framing() {
        assert!(split_acseq(&tlv(0x30, &tlv(0x30, &[]))).is_err());
        let two = tlv(
            0x30,
            &tlv(
                0x30,
                &[tlv(0x30, &[]), tlv(0x30, &[0x02, 0x01, 0x01])].concat(),
            ),
        );
        assert_eq!(split_acseq(&two).unwrap().len(), 2);
        assert!(split_acseq(&[0x30, 0x05, 0x30]).is_err());
        assert!(parse_ac(&tlv(0x30, &[])).is_err());
    }
}
