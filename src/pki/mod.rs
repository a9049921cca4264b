//! Grid PKI primitives: the IGTF trust store, X.509/GSI proxy chain
//! validation, DNs and hashes as OpenSSL writes them. The x509
//! authenticator ([`crate::auth::x509`]) turns a verdict into gridsite's
//! values; VOMS ([`crate::voms`]) builds on these primitives.
//!
//! Deliberate choices, and where fedgate differs from Apache + gridsite
//! (each covered by tests/x509_gridsite_interop.rs on the same credentials):
//! - Revocation: `x509.crl = "require"` by default: every CA-issued
//!   certificate of the base chain (and of VOMS server chains) needs a
//!   current CRL from its issuer that does not list it: a CA without a CRL
//!   cannot prove its users unrevoked (canl's `if_valid` is available as
//!   `x509.crl = "if_valid"`). Apache's default (`SSLCARevocationCheck none`) accepts
//!   revoked users. Proxies are never CRL-checked (no proxy CA exists).
//! - `.namespaces` / `.signing_policy` are enforced (`globus_eugridpma`);
//!   gridsite parses but never enforces them. `ignore` logs would-be denials.
//! - A CA re-keyed under the same DN (`<hash>.0`/`.1`, CRLs `.r0`/`.r1`)
//!   works for both keys: an issuer is the CA whose key verifies the
//!   signature, and its CRLs are those its own key signed (by
//!   authorityKeyIdentifier, else by signature). gridsite only consults
//!   `<hash>.0`, so the second key's users lose their identity there.
//! - Key usage (RFC 5280 §4.2.1.3, §4.2.1.12): keyUsage on the end-entity
//!   certificate or a proxy must allow digitalSignature; extendedKeyUsage
//!   on the end-entity certificate must list clientAuth or
//!   anyExtendedKeyUsage. gridsite (OpenSSL's sslclient purpose) agrees but
//!   refuses anyExtendedKeyUsage alone.
//! - Proxies follow canl-java: a full proxy under a limited one, mixed proxy
//!   types, independent/restricted policies and GT3 drafts are refused
//!   (switches exist for the last two). gridsite accepts all but GT3.
//! - SHA-1 RSA signatures are accepted (IGTF CAs still issue them); gridsite
//!   refuses them at OpenSSL's default security level. RSA keys must have
//!   at least 2048 bits; ECDSA P-256/P-384 is supported.
//! - Values: no `dns:` credential (no reverse DNS on the request path), real
//!   UTF-8 bytes in FQANs, depth-limit refusals instead of silently dropped
//!   `GRST_CRED_*`; see [`gridsite`].

pub mod cert;
pub mod config;
pub mod crl;
pub mod dn;
pub mod hash;
pub mod modssl;
pub mod namespaces;
pub mod paths;
pub mod policy;
pub mod store;
pub mod tlv;
pub mod validate;
pub mod verify;

pub use config::X509Config;
pub use store::TrustStore;
pub use validate::{FailKind, Failure, Validator, Verdict};

/// Seconds since the Unix epoch: the clock every validity check uses.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
