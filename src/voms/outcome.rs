//! What VOMS evaluation yields: the accepted ACs with their FQANs, and the
//! reasons others were refused.

/// A generic attribute (`-ga name=value (qualifier)`), as nginx-voms exports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericAttribute {
    pub name: String,
    pub value: String,
    pub qualifier: String,
}

/// One attribute certificate that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAc {
    /// VO name, from the policyAuthority URI scheme part.
    pub vo: String,
    /// `host:port` of the VOMS server, from the policyAuthority URI.
    pub uri: String,
    /// One-line subject and issuer of the AA (VOMS server) certificate.
    pub server: String,
    pub server_ca: String,
    /// FQANs exactly as in the AC, in AC order (first = primary).
    pub fqans: Vec<String>,
    /// AC validity as Unix times, and as the raw GeneralizedTime text.
    pub not_before: i64,
    pub not_after: i64,
    pub not_before_raw: String,
    pub not_after_raw: String,
    /// AC serial as upper-case hex with an even number of digits.
    pub serial_hex: String,
    pub generic: Vec<GenericAttribute>,
}

/// What the VOMS module concluded about a validated client chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VomsOutcome {
    /// Index (leaf first) of the leaf-most proxy carrying a VOMS extension.
    pub carrier: Option<usize>,
    /// Valid ACs in extension order.
    pub acs: Vec<ValidAc>,
    /// One human-readable reason per refused AC (the AC is dropped, the
    /// connection is not failed, as gridsite does).
    pub refused: Vec<String>,
}

/// Validation of a VOMS server (AA) certificate chain, provided by the PKI
/// module: full path validation against the trust store, CRLs included.
/// `helpers` are the other certificates embedded in the AC, usable as
/// untrusted intermediates only.
pub trait AaVerifier {
    fn verify_aa(&self, aa_der: &[u8], helpers: &[&[u8]], now: i64) -> Result<(), String>;
}

/// The trust store's validator is the AA verifier the gateway uses.
impl AaVerifier for crate::pki::Validator {
    fn verify_aa(&self, aa_der: &[u8], helpers: &[&[u8]], now: i64) -> Result<(), String> {
        self.validate_aa(aa_der, helpers, now)
    }
}
