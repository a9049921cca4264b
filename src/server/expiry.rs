//! End dates of what the gateway's TLS depends on: the host certificate,
//! the CA certificates and the CRLs of the trust store. Each start and
//! reload logs those within `[tls] expiry_warning_days` of their end, and
//! the admin listener exports all of them as
//! `fedgate_certificate_expiry_seconds`: an expired host certificate stops
//! every client, an expired CA its users, and a CRL past its nextUpdate
//! (fetch-crl not running) every user of its CA under `crl = "require"`.

use std::collections::BTreeMap;

use crate::metrics::Expiry;
use crate::pki::TrustStore;

/// One entry per (kind, subject): a CA installed twice, or re-keyed under
/// the same name, counts with its earliest end, the first thing to break.
pub fn collect(host: Option<&crate::pki::cert::Cert>, trust: &TrustStore) -> Vec<Expiry> {
    let mut by: BTreeMap<(&'static str, String), i64> = BTreeMap::new();
    let mut put = |kind: &'static str, subject: &str, at: i64| {
        by.entry((kind, subject.to_string()))
            .and_modify(|a| *a = (*a).min(at))
            .or_insert(at);
    };
    if let Some(h) = host {
        put("host", &h.subject, h.not_after);
    }
    for ca in trust.cas() {
        put("ca", &ca.subject, ca.cert.not_after);
    }
    for crl in trust.all_crls() {
        // A CRL without nextUpdate never falls due.
        if let Some(n) = crl.next_update {
            put("crl", &crl.issuer, n);
        }
    }
    by.into_iter()
        .map(|((kind, subject), at)| Expiry { kind, subject, at })
        .collect()
}

/// Logs every entry within `window` seconds of its end at `now`, one line
/// each.
pub fn warn(list: &[Expiry], now: i64, window: i64) {
    for e in list {
        let left = e.at - now;
        if left > window {
            continue;
        }
        let what = match e.kind {
            "host" => "host certificate",
            "ca" => "CA certificate",
            _ => "CRL (nextUpdate; is fetch-crl running?)",
        };
        let when = time::OffsetDateTime::from_unix_timestamp(e.at)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| e.at.to_string());
        if left < 0 {
            tracing::warn!(kind = e.kind, subject = %e.subject, expired_at = %when, "{what} has expired");
        } else {
            tracing::warn!(kind = e.kind, subject = %e.subject, expires_at = %when, days_left = left / 86_400, "{what} expires soon");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_end_of_a_name_counts() {
        let t = tempfile::tempdir().unwrap();
        let (store, _) = TrustStore::load(t.path()).unwrap();
        let list = collect(None, &store);
        assert!(list.is_empty());
        let reg = crate::metrics::expiry_registry(
            &[Expiry {
                kind: "crl",
                subject: "/CN=x".into(),
                at: 100,
            }],
            250,
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("fedgate_certificate_expiry_seconds{kind=\"crl\",subject=\"/CN=x\"} -150"),
            "{out}"
        );
    }
}
