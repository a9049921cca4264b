//! Acceptance of a signed list for one subscription: signature and chain
//! ([`super::signature`]), JSON ([`super::list`]), then the rules that tie
//! the list to its subscription (endorser, identifier, dates, version) and
//! image identifiers to one list. Every refusal carries a named [`Code`];
//! a refused list changes nothing downstream.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Value, json};

use super::list::{self, Image, ImageList};
use super::signature::{self, SignatureError};
use super::smime;
use crate::pki::store::dn_key;
use crate::pki::{FailKind, Validator};

/// Tolerance for the endorser's clock on `dc:date:created`.
pub const CREATED_SKEW_SECS: i64 = 300;

/// Named refusal reasons, for lists and for images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Not S/MIME, unusable CMS, or the digest or signature does not match.
    SignatureInvalid,
    /// The signer certificate is outside its validity period.
    SignerExpired,
    /// The signer certificate is revoked by its CA's CRL.
    SignerRevoked,
    /// The signer certificate does not chain to a trusted CA (or a CRL is
    /// missing, or an IGTF policy refuses it).
    SignerUntrusted,
    /// The JSON is not a HEPiX image list.
    Malformed,
    /// `hv:dn` / `hv:ca` differ from the signer's subject / issuer.
    EndorserMismatch,
    /// The signer is not an endorser this site trusts for the list.
    EndorserUntrusted,
    /// `dc:identifier` differs from the one pinned for the subscription.
    ListIdChanged,
    CreatedInFuture,
    /// `dc:date:expires` has passed: every image counts as expired.
    Expired,
    /// `hv:version` is lower than the version accepted before.
    VersionRollback,
    /// Image level: the identifier is already used earlier in this list or
    /// by another subscribed list.
    DuplicateImageId,
    /// Image level: the image's own `dc:date:expires` has passed.
    ImageExpired,
    /// Image level: the list expired.
    ListExpired,
    /// Image level: the list was refused.
    ListRefused,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::SignatureInvalid => "SignatureInvalid",
            Code::SignerExpired => "SignerExpired",
            Code::SignerRevoked => "SignerRevoked",
            Code::SignerUntrusted => "SignerUntrusted",
            Code::Malformed => "Malformed",
            Code::EndorserMismatch => "EndorserMismatch",
            Code::EndorserUntrusted => "EndorserUntrusted",
            Code::ListIdChanged => "ListIdChanged",
            Code::CreatedInFuture => "CreatedInFuture",
            Code::Expired => "Expired",
            Code::VersionRollback => "VersionRollback",
            Code::DuplicateImageId => "DuplicateImageId",
            Code::ImageExpired => "ImageExpired",
            Code::ListExpired => "ListExpired",
            Code::ListRefused => "ListRefused",
        }
    }
}

/// A refusal: its code and the facts behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: Code,
    pub detail: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

fn reason(code: Code, detail: impl Into<String>) -> Reason {
    Reason {
        code,
        detail: detail.into(),
    }
}

/// An endorser the site trusts for a subscription: the signer's subject
/// and, optionally, its issuer (OpenSSL one-line DNs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedEndorser {
    pub dn: String,
    pub ca: Option<String>,
}

/// What the subscription remembers from the last accepted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub identifier: String,
    pub version: String,
}

/// The context a list is judged in.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    pub trusted: Vec<TrustedEndorser>,
    /// `None` on the first fetch, which pins the identifier.
    pub previous: Option<Pinned>,
    /// Image identifiers held by the other subscribed lists, with the
    /// identifier of the list holding each.
    pub taken: HashMap<String, String>,
}

/// One image and whether it would be accepted.
#[derive(Debug, Clone)]
pub struct ImageVerdict {
    pub image: Image,
    pub refused: Option<Reason>,
}

/// The outcome for one signed list.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Empty when the list is accepted.
    pub reasons: Vec<Reason>,
    /// Facts worth a log line that refuse nothing.
    pub notes: Vec<String>,
    /// Signer subject and issuer, once the signature verified.
    pub signer: Option<(String, String)>,
    /// The list, once its signature verified and its JSON parsed.
    pub list: Option<ImageList>,
    pub images: Vec<ImageVerdict>,
}

impl Decision {
    pub fn accepted(&self) -> bool {
        self.reasons.is_empty()
    }

    pub fn has(&self, code: Code) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }

    /// The report `fedgate images verify --json` prints.
    pub fn to_json(&self) -> Value {
        json!({
            "accepted": self.accepted(),
            "reasons": self.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "notes": self.notes,
            "signer": self.signer.as_ref().map(|(s, i)| json!({"subject": s, "issuer": i})),
            "list": self.list.as_ref().map(|l| json!({
                "identifier": l.identifier,
                "version": l.version,
                "expires": l.expires_text,
                "title": l.title,
                "uri": l.uri,
                "vo": l.vo,
                "endorser": {"dn": l.endorser.dn, "ca": l.endorser.ca},
            })),
            "images": self.images.iter().map(|v| json!({
                "identifier": v.image.identifier,
                "title": v.image.title,
                "version": v.image.version,
                "sha512": v.image.sha512,
                "uri": v.image.uri,
                "size": v.image.size,
                "accepted": v.refused.is_none(),
                "reason": v.refused.as_ref().map(ToString::to_string),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Compares `hv:version` values segment by segment: runs of digits
/// numerically, other runs as text, separators ignored; a version that is
/// a prefix of another is lower (`1.2` < `1.2.1`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn segments(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if !c.is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let digit = c.is_ascii_digit();
            let start = i;
            while i < bytes.len()
                && bytes[i].is_ascii_alphanumeric()
                && bytes[i].is_ascii_digit() == digit
            {
                i += 1;
            }
            out.push(&s[start..i]);
        }
        out
    }
    let (sa, sb) = (segments(a), segments(b));
    for (x, y) in sa.iter().zip(sb.iter()) {
        let xd = x.as_bytes()[0].is_ascii_digit();
        let yd = y.as_bytes()[0].is_ascii_digit();
        let ord = match (xd, yd) {
            (true, true) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            // A number ranks above a word (`1.0` > `1.rc`).
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    sa.len().cmp(&sb.len())
}

fn same_dn(a: &str, b: &str) -> bool {
    dn_key(a) == dn_key(b)
}

fn signature_reason(e: SignatureError) -> Reason {
    let code = match &e {
        SignatureError::Envelope(_) | SignatureError::Cms(_) | SignatureError::Mismatch(_) => {
            Code::SignatureInvalid
        }
        SignatureError::Signer { kind, .. } => match kind {
            FailKind::Expired | FailKind::NotYetValid => Code::SignerExpired,
            FailKind::Revoked => Code::SignerRevoked,
            _ => Code::SignerUntrusted,
        },
    };
    reason(code, e.to_string())
}

/// Judges a signed list (the S/MIME message as fetched) at `now`.
pub fn evaluate(msg: &[u8], validator: &Validator, sub: &Subscription, now: i64) -> Decision {
    let mut d = Decision::default();
    let signed = match signature::verify(msg, validator, now) {
        Ok(s) => s,
        Err(e) => {
            d.reasons.push(signature_reason(e));
            return d;
        }
    };
    let (subject, issuer) = (signed.signer.subject.clone(), signed.signer.issuer.clone());
    d.signer = Some((subject.clone(), issuer.clone()));
    let l = match list::parse(smime::json_body(&signed.content)) {
        Ok(l) => l,
        Err(e) => {
            d.reasons.push(reason(Code::Malformed, e.to_string()));
            return d;
        }
    };
    judge_list(&mut d, &l, &subject, &issuer, sub, now);
    judge_images(&mut d, &l, sub, now);
    d.list = Some(l);
    d
}

fn judge_list(
    d: &mut Decision,
    l: &ImageList,
    subject: &str,
    issuer: &str,
    sub: &Subscription,
    now: i64,
) {
    if !same_dn(&l.endorser.dn, subject) || !same_dn(&l.endorser.ca, issuer) {
        d.reasons.push(reason(
            Code::EndorserMismatch,
            format!(
                "the list names endorser {} of {}, but {} of {} signed it",
                l.endorser.dn, l.endorser.ca, subject, issuer
            ),
        ));
    }
    let trusted = sub
        .trusted
        .iter()
        .any(|t| same_dn(&t.dn, subject) && t.ca.as_deref().is_none_or(|ca| same_dn(ca, issuer)));
    if !trusted {
        let detail = if sub.trusted.is_empty() {
            format!("{subject} signed the list, and no endorser is trusted for it")
        } else {
            format!("{subject} of {issuer} is not a trusted endorser of this list")
        };
        d.reasons.push(reason(Code::EndorserUntrusted, detail));
    }
    if let Some(p) = &sub.previous {
        if p.identifier != l.identifier {
            d.reasons.push(reason(
                Code::ListIdChanged,
                format!(
                    "dc:identifier {} differs from {} accepted before",
                    l.identifier, p.identifier
                ),
            ));
        }
        match compare_versions(&l.version, &p.version) {
            Ordering::Less => d.reasons.push(reason(
                Code::VersionRollback,
                format!(
                    "hv:version {} is lower than {} accepted before",
                    l.version, p.version
                ),
            )),
            Ordering::Equal => d.notes.push(format!(
                "hv:version {} is the version accepted before",
                l.version
            )),
            Ordering::Greater => {}
        }
    }
    if l.created > now + CREATED_SKEW_SECS {
        d.reasons.push(reason(
            Code::CreatedInFuture,
            format!("dc:date:created is {}s in the future", l.created - now),
        ));
    }
    if l.expires <= now {
        d.reasons.push(reason(
            Code::Expired,
            format!("the list expired at {}", l.expires_text),
        ));
    }
}

fn judge_images(d: &mut Decision, l: &ImageList, sub: &Subscription, now: i64) {
    let list_refusal = if d.has(Code::Expired) {
        Some(reason(
            Code::ListExpired,
            format!("the list expired at {}", l.expires_text),
        ))
    } else if !d.reasons.is_empty() {
        Some(reason(Code::ListRefused, "the list was refused"))
    } else {
        None
    };
    let mut seen = HashSet::new();
    for image in &l.images {
        let refused = if let Some(r) = &list_refusal {
            Some(r.clone())
        } else if !seen.insert(image.identifier.as_str()) {
            Some(reason(
                Code::DuplicateImageId,
                format!("{} appears earlier in this list", image.identifier),
            ))
        } else if let Some(other) = sub
            .taken
            .get(&image.identifier)
            .filter(|o| **o != l.identifier)
        {
            Some(reason(
                Code::DuplicateImageId,
                format!("{} is already published by list {other}", image.identifier),
            ))
        } else if image.expires.is_some_and(|t| t <= now) {
            Some(reason(
                Code::ImageExpired,
                "the image's dc:date:expires passed",
            ))
        } else {
            None
        };
        d.images.push(ImageVerdict {
            image: image.clone(),
            refused,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_segment_by_segment() {
        use Ordering::*;
        let cases = [
            ("1.10", "1.9", Greater),
            ("2025.01.10", "2025.1.10", Equal),
            ("20250110120000", "20250109000000", Greater),
            ("1.2", "1.2.1", Less),
            ("1.0", "1.rc", Greater),
            ("1.0-beta", "1.0-alpha", Greater),
            ("99999999999999999999999", "1", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn signature_failures_map_to_named_codes() {
        let signer = |kind| SignatureError::Signer {
            kind,
            reason: "x".into(),
        };
        assert_eq!(
            signature_reason(signer(FailKind::Revoked)).code,
            Code::SignerRevoked
        );
        assert_eq!(
            signature_reason(signer(FailKind::Expired)).code,
            Code::SignerExpired
        );
        assert_eq!(
            signature_reason(signer(FailKind::UnknownCa)).code,
            Code::SignerUntrusted
        );
        assert_eq!(
            signature_reason(SignatureError::Mismatch("m".into())).to_string(),
            "SignatureInvalid: m"
        );
    }
}
