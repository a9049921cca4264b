//! Which VOMS server certificates a VO trusts: the vomsdir's
//! `<vo>/<host>.lsc` files (the DNs of a certificate chain, one chain per
//! block).
//!
//! `<dir>/<vo>/<host>.lsc` lists, per accepted chain, one DN per line: the
//! AA certificate's subject first, then its issuer, then that CA's issuer
//! and so on, as many lines as the chain has (an AA under an intermediate
//! CA takes three); the certificates themselves travel inside the AC. Without an LSC file an AA certificate may be
//! installed as a `.pem` (fallback, config switch). Either way the AA
//! certificate is then path-validated by the PKI module: an LSC match only
//! pins names, it never makes an embedded certificate a trust anchor.

use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::dn::{normalize_labels, oneline};
use crate::pki::hash::canonical_name;

/// Separator between alternative chains (VOMS C++ spelling; the Java
/// spelling without inner blanks is accepted too).
const NEXT_CHAIN: &str = "NEXT CHAIN";

/// A parsed `.lsc` file: alternative chains, each a list of DNs where
/// every DN is the issuer of the one before it (the AA's subject first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lsc {
    pub chains: Vec<Vec<String>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LscError {
    #[error("line {0}: a chain needs at least the VOMS server's DN and its issuer's")]
    ShortChain(usize),
    #[error("line {0}: DN must start with `/`")]
    NotADn(usize),
    #[error("no DN in file")]
    Empty,
}

/// Parses an `.lsc` file: blank lines and `#` comments skipped, DNs may be
/// double-quoted, chains separated by `------ NEXT CHAIN ------`.
pub fn parse(text: &str) -> Result<Lsc, LscError> {
    let mut lsc = Lsc::default();
    let mut dns: Vec<String> = Vec::new();
    let close = |dns: &mut Vec<String>, line: usize, lsc: &mut Lsc| {
        match dns.len() {
            0 => {}
            1 => return Err(LscError::ShortChain(line)),
            _ => lsc.chains.push(std::mem::take(dns)),
        }
        Ok(())
    };
    let mut last = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        last = n + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') && line.trim_matches('-').trim() == NEXT_CHAIN {
            close(&mut dns, n + 1, &mut lsc)?;
            continue;
        }
        let dn = line
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or(line);
        if !dn.starts_with('/') {
            return Err(LscError::NotADn(n + 1));
        }
        dns.push(dn.to_string());
    }
    close(&mut dns, last, &mut lsc)?;
    if lsc.chains.is_empty() {
        return Err(LscError::Empty);
    }
    Ok(lsc)
}

impl Lsc {
    /// True when some chain describes `certs` (subject, issuer one-line
    /// DNs, the AA first, each certificate the issuer of the one before):
    /// certificate `i` has the chain's DN `i` as subject and DN `i + 1` as
    /// issuer. Lines beyond the embedded certificates are ignored, as VOMS
    /// C++ does; the AA's path to a trust anchor is validated separately.
    pub fn matches(&self, certs: &[(String, String)]) -> bool {
        let same = |a: &str, b: &str| normalize_labels(a) == normalize_labels(b);
        !certs.is_empty()
            && self.chains.iter().any(|chain| {
                chain.len() > certs.len()
                    && certs
                        .iter()
                        .enumerate()
                        .all(|(i, (cs, ci))| same(&chain[i], cs) && same(&chain[i + 1], ci))
            })
    }
}

/// The AA certificate an AC is checked against, with the other
/// certificates usable as untrusted intermediates.
#[derive(Debug, Clone)]
pub struct TrustedAa {
    pub cert: Vec<u8>,
    pub helpers: Vec<Vec<u8>>,
    /// Where the trust came from, for messages.
    pub source: PathBuf,
}

/// VO and host come from the (not yet verified) AC and become path
/// components: anything but a plain name would walk out of the vomsdir.
fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Finds the AA certificate for an AC through the vomsdir. `issuer` is the DER of
/// the AC issuer name; `sig_ok` tells whether a certificate's key verifies
/// the AC signature (used to pick among `.pem` candidates).
pub fn find_aa(
    dir: &Path,
    vo: &str,
    host: &str,
    issuer: &[u8],
    embedded: &[Vec<u8>],
    pem_fallback: bool,
    sig_ok: &dyn Fn(&X509Certificate<'_>) -> bool,
) -> Result<TrustedAa, String> {
    if !safe_component(vo) || !safe_component(host) {
        return Err(format!("VO `{vo}` or host `{host}` is not a plain name"));
    }
    let issuer_canon = name_canon(issuer).ok_or("AC issuer name is malformed")?;
    let lsc_path = dir.join(vo).join(format!("{host}.lsc"));
    match std::fs::read_to_string(&lsc_path) {
        Ok(text) => from_lsc(&lsc_path, &text, &issuer_canon, embedded),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !pem_fallback {
                return Err(format!(
                    "no {} (and .pem fallback is off)",
                    lsc_path.display()
                ));
            }
            from_pem(dir, vo, &issuer_canon, embedded, sig_ok).ok_or_else(|| {
                format!(
                    "unknown VOMS server: no {} and no .pem in the vomsdir verifies the AC",
                    lsc_path.display()
                )
            })
        }
        Err(e) => Err(format!("cannot read {}: {e}", lsc_path.display())),
    }
}

fn from_lsc(
    path: &Path,
    text: &str,
    issuer_canon: &[u8],
    embedded: &[Vec<u8>],
) -> Result<TrustedAa, String> {
    let lsc = parse(text).map_err(|e| format!("{}: {e}", path.display()))?;
    if embedded.is_empty() {
        return Err(format!(
            "AC carries no VOMS server certificate to match {}",
            path.display()
        ));
    }
    let mut parsed = Vec::with_capacity(embedded.len());
    for der in embedded {
        let (_, c) =
            X509Certificate::from_der(der).map_err(|_| "AC embeds a malformed certificate")?;
        parsed.push(c);
    }
    let aa = parsed
        .iter()
        .position(|c| canonical_name(c.subject()) == issuer_canon)
        .ok_or("no certificate in the AC is the AC issuer")?;
    // The AA first, then each certificate's issuer among the others, then
    // whatever does not link up, in the order sent (it then has to match
    // the LSC lines after the chain, which it cannot: the file is refused).
    let mut order: Vec<usize> = vec![aa];
    while let Some(&last) = order.last() {
        let c = &parsed[last];
        if c.subject().as_raw() == c.issuer().as_raw() {
            break;
        }
        let issuer = canonical_name(c.issuer());
        let Some(next) = (0..parsed.len())
            .find(|i| !order.contains(i) && canonical_name(parsed[*i].subject()) == issuer)
        else {
            break;
        };
        order.push(next);
    }
    let rest: Vec<usize> = (0..parsed.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    let names: Vec<(String, String)> = order
        .iter()
        .map(|&i| (oneline(parsed[i].subject()), oneline(parsed[i].issuer())))
        .collect();
    if !lsc.matches(&names) {
        return Err(format!(
            "VOMS server {} (issuer {}) matches no chain of {}",
            names[0].0,
            names[0].1,
            path.display()
        ));
    }
    Ok(TrustedAa {
        cert: embedded[aa].clone(),
        helpers: order[1..].iter().map(|&i| embedded[i].clone()).collect(),
        source: path.to_path_buf(),
    })
}

/// `.pem` fallback: `<dir>/<vo>/*.pem`, then `<dir>/*.pem`; the first
/// certificate named like the AC issuer whose key verifies the AC.
fn from_pem(
    dir: &Path,
    vo: &str,
    issuer_canon: &[u8],
    embedded: &[Vec<u8>],
    sig_ok: &dyn Fn(&X509Certificate<'_>) -> bool,
) -> Option<TrustedAa> {
    for d in [dir.join(vo), dir.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem") && p.is_file())
            .collect();
        files.sort();
        for file in files {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let ders: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(&bytes)
                .filter_map(Result::ok)
                .filter(|p| p.label == "CERTIFICATE")
                .map(|p| p.contents)
                .collect();
            for der in &ders {
                let Ok((_, cert)) = X509Certificate::from_der(der) else {
                    continue;
                };
                if canonical_name(cert.subject()) == issuer_canon && sig_ok(&cert) {
                    let mut helpers: Vec<Vec<u8>> =
                        ders.iter().filter(|d| *d != der).cloned().collect();
                    helpers.extend(embedded.iter().cloned());
                    return Some(TrustedAa {
                        cert: der.clone(),
                        helpers,
                        source: file,
                    });
                }
            }
        }
    }
    None
}

/// RFC 5280 comparison form of a DER Name (case and blank folding), so
/// `O=Test` in the AC and `O=test` in a certificate are the same issuer.
pub fn name_canon(der: &[u8]) -> Option<Vec<u8>> {
    let (rest, name) = x509_parser::x509::X509Name::from_der(der).ok()?;
    rest.is_empty().then(|| canonical_name(&name))
}

/// One-line form of a DER Name, for messages and exports.
pub fn name_oneline(der: &[u8]) -> String {
    x509_parser::x509::X509Name::from_der(der)
        .map(|(_, n)| oneline(&n))
        .unwrap_or_else(|_| "<malformed name>".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_quotes_and_chains() {
        let text = "# c\n\n\"/O=a/CN=old\"\n\"/O=a/CN=CA\"\n------ NEXT CHAIN ------\n  /O=a/CN=new  \n/O=a/CN=CA\n";
        let l = parse(text).unwrap();
        assert_eq!(l.chains.len(), 2);
        assert_eq!(l.chains[1][0], "/O=a/CN=new");
        assert!(l.matches(&[("/O=a/CN=new".into(), "/O=a/CN=CA".into())]));
        assert!(!l.matches(&[("/O=a/CN=other".into(), "/O=a/CN=CA".into())]));
        assert!(!l.matches(&[]));
    }

    #[test]
    fn java_separator_and_label_normalisation() {
        let l = parse("/O=a/Email=x@y\n/O=a/CN=CA\n------NEXT CHAIN------\n/O=b\n/O=c\n").unwrap();
        assert_eq!(l.chains.len(), 2);
        assert!(l.matches(&[("/O=a/emailAddress=x@y".into(), "/O=a/CN=CA".into())]));
    }

    #[test]
    fn rejects_bad_files() {
        assert_eq!(parse("/O=a\n"), Err(LscError::ShortChain(1)));
        assert_eq!(
            parse("/O=a\n/O=b\n------ NEXT CHAIN ------\n/O=c\n"),
            Err(LscError::ShortChain(4))
        );
        assert_eq!(parse("# only\n\n"), Err(LscError::Empty));
        assert_eq!(parse("O=a\n/O=b\n"), Err(LscError::NotADn(1)));
    }

    /// An AA under an intermediate CA: three DNs, each the issuer of the
    /// one before, whether the AC embeds the AA alone or with the
    /// intermediate (issue 11, class 2).
    #[test]
    fn chains_of_any_length() {
        let l = parse("/O=g/CN=voms\n/O=g/CN=Sub CA\n/O=g/CN=Root CA\n").unwrap();
        assert_eq!(
            l.chains,
            vec![vec!["/O=g/CN=voms", "/O=g/CN=Sub CA", "/O=g/CN=Root CA"]]
        );
        let aa = ("/O=g/CN=voms".to_string(), "/O=g/CN=Sub CA".to_string());
        let sub = ("/O=g/CN=Sub CA".to_string(), "/O=g/CN=Root CA".to_string());
        assert!(l.matches(std::slice::from_ref(&aa)));
        assert!(l.matches(&[aa.clone(), sub.clone()]));
        // Out of order, or an AA whose issuer is not the second line.
        assert!(!l.matches(&[sub.clone(), aa.clone()]));
        assert!(!l.matches(&[("/O=g/CN=voms".into(), "/O=g/CN=Root CA".into())]));
        let four = parse("/O=g/CN=voms\n/O=g/CN=A\n/O=g/CN=B\n/O=g/CN=Root\n").unwrap();
        assert!(four.matches(&[
            ("/O=g/CN=voms".into(), "/O=g/CN=A".into()),
            ("/O=g/CN=A".into(), "/O=g/CN=B".into()),
            ("/O=g/CN=B".into(), "/O=g/CN=Root".into()),
        ]));
    }

    #[test]
    fn longer_embedded_chain_than_lsc_fails() {
        let l = parse("/O=a\n/O=b\n").unwrap();
        let two = [
            ("/O=a".into(), "/O=b".into()),
            ("/O=b".into(), "/O=b".into()),
        ];
        assert!(!l.matches(&two));
    }

    #[test]
    fn path_components_are_plain() {
        assert!(safe_component("fedcloud.egi.eu"));
        assert!(!safe_component(".."));
        assert!(!safe_component("a/b"));
        assert!(!safe_component(""));
    }
}
