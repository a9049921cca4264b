//! The values gridsite (`GridSiteEnvs on`) and mod_ssl (`+StdEnvVars
//! +ExportCertData`) hand to Keystone, byte for byte, from a validated chain:
//! the client certificate's mod_ssl values (per-field DN values, validity,
//! algorithms) come from [`crate::pki::modssl`].
//!
//! Keystone's `mapped` plugin keys existing users on `GRST_CONN_AURI_0`, so
//! its bytes must not change. Where gridsite is wrong, fedgate differs on
//! purpose and says so here:
//! - no `dns:` credential. gridsite does a double reverse DNS lookup per
//!   request to build `GRST_CRED_AURI_n=dns:<host>`; fedgate never does DNS
//!   on the request path (latency, and an attacker-controlled PTR record is
//!   not an identity). The `ip:` credential takes the index `dns:` had, so
//!   `GRST_CRED_AURI_*` has one entry fewer. No known mapping reads it.
//! - FQAN bytes >= 0x80 are encoded as the real byte (`%C3%A9`), not as
//!   gridsite's sign-extension artefact `%FF`.
//! - A chain beyond the proxy depth limit is refused (403) instead of
//!   silently losing `GRST_CRED_*` while keeping `GRST_CONN_*`.
//!
//! gridsite quirks reproduced because mappings may depend on them:
//! `GRST_CRED_VALID_i` prints delegation=0 for i >= 1; `GRST_CRED_i` of
//! every `VOMS` entry shows the times of the last one and delegation 0;
//! `GRST_VOMS_FQANS` lists FQANs in reverse order.

use std::net::IpAddr;

use crate::pki::Verdict;
use crate::pki::cert::Cert;
use crate::pki::dn::mild_encode;
use crate::pki::modssl::{self, Side};
use crate::voms::VomsOutcome;

/// One environ entry.
pub type Var = (String, Vec<u8>);

struct Cred {
    auri: String,
    not_before: i64,
    not_after: i64,
    delegation: usize,
}

fn valid_text(nb: i64, na: i64, delegation: usize, loa: u8) -> String {
    format!("notbefore={nb} notafter={na} delegation={delegation} nist-loa={loa}")
}

/// Connection-level credentials: EEC, proxies from EEC to leaf, then the
/// FQANs of the leaf-most proxy carrying ACs. Also returns the raw FQANs
/// (AC order) and the validity printed in the `VOMS` `GRST_CRED_i`.
fn conn_creds(
    v: &Verdict,
    voms: Option<&VomsOutcome>,
) -> (Vec<Cred>, Vec<String>, Option<(i64, i64)>) {
    let mut creds = Vec::new();
    let Some(eec) = v.eec() else {
        return (creds, Vec::new(), None);
    };
    let depth = v.eec;
    creds.push(Cred {
        auri: format!("dn:{}", mild_encode(eec.subject.as_bytes())),
        not_before: eec.not_before,
        not_after: eec.not_after,
        delegation: depth,
    });
    for k in (0..depth).rev() {
        let p = &v.certs[k];
        creds.push(Cred {
            auri: format!("dn:{}", mild_encode(p.subject.as_bytes())),
            not_before: p.not_before,
            not_after: p.not_after,
            delegation: k,
        });
    }
    let mut fqans = Vec::new();
    let mut last = None;
    if let Some(o) = voms {
        if let Some(carrier) = o
            .carrier
            .and_then(|c| (c < depth).then(|| (c, &v.certs[c])))
        {
            let (level, proxy): (usize, &Cert) = (carrier.0, carrier.1);
            // gridsite intersects each AC with the carrier and with the
            // ACs before it.
            let (mut nb, mut na) = (proxy.not_before, proxy.not_after);
            for ac in &o.acs {
                nb = nb.max(ac.not_before);
                na = na.min(ac.not_after);
                for f in &ac.fqans {
                    creds.push(Cred {
                        auri: format!("fqan:{}", mild_encode(f.as_bytes())),
                        not_before: nb,
                        not_after: na,
                        delegation: level,
                    });
                    fqans.push(f.clone());
                    last = Some((nb, na));
                }
            }
        }
    }
    (creds, fqans, last)
}

/// Until when (Unix time) the values [`env`] gives at `now` stay the same:
/// only `SSL_CLIENT_V_REMAIN`, the leaf's whole days left, moves with the
/// clock.
pub fn env_stable_until(v: &Verdict, now: i64) -> i64 {
    v.certs
        .first()
        .map_or(i64::MAX, |leaf| modssl::v_remain_stable_until(leaf, now))
}

/// Every value for a valid chain. `peer` is the client address, `now` the
/// time `SSL_CLIENT_V_REMAIN` counts from.
pub fn env(v: &Verdict, peer: Option<IpAddr>, voms: Option<&VomsOutcome>, now: i64) -> Vec<Var> {
    let mut out: Vec<Var> = Vec::new();
    let mut put = |k: String, val: String| out.push((k, val.into_bytes()));
    let Some(eec) = v.eec() else {
        return Vec::new();
    };
    let depth = v.eec;
    let (creds, fqans, voms_times) = conn_creds(v, voms);
    for (i, c) in creds.iter().enumerate() {
        put(format!("GRST_CONN_AURI_{i}"), c.auri.clone());
        put(
            format!("GRST_CONN_VALID_{i}"),
            valid_text(c.not_before, c.not_after, c.delegation, 0),
        );
    }
    // Request-level creds, gridsite's "compact" conventions.
    for (i, c) in creds.iter().enumerate() {
        put(format!("GRST_CRED_AURI_{i}"), c.auri.clone());
        let (d, loa) = match i {
            0 => (depth, if depth == 0 { 3 } else { 2 }),
            _ => (0, 0),
        };
        put(
            format!("GRST_CRED_VALID_{i}"),
            valid_text(c.not_before, c.not_after, d, loa),
        );
    }
    let mut i = 0;
    put(
        format!("GRST_CRED_{i}"),
        format!(
            "X509USER {} {} {depth} {}",
            eec.not_before, eec.not_after, eec.subject
        ),
    );
    for k in (0..depth).rev() {
        i += 1;
        let p = &v.certs[k];
        put(
            format!("GRST_CRED_{i}"),
            format!(
                "GSIPROXY {} {} {depth} {}",
                p.not_before, p.not_after, p.subject
            ),
        );
    }
    if let Some((nb, na)) = voms_times {
        for f in &fqans {
            i += 1;
            put(format!("GRST_CRED_{i}"), format!("VOMS {nb} {na} 0 {f}"));
        }
    }
    if let Some(ip) = peer {
        let n = creds.len();
        put(format!("GRST_CRED_AURI_{n}"), format!("ip:{ip}"));
        put(
            format!("GRST_CRED_VALID_{n}"),
            valid_text(0, 2147483647, 0, 0),
        );
    }
    if !fqans.is_empty() {
        let joined: Vec<String> = fqans
            .iter()
            .rev()
            .map(|f| mild_encode(f.as_bytes()))
            .collect();
        put("GRST_VOMS_FQANS".into(), joined.join(";"));
    }
    if eec.robot {
        put("GRST_ROBOT_DN".into(), eec.subject.clone());
    }
    let leaf = &v.certs[0];
    put("SSL_CLIENT_VERIFY".into(), "SUCCESS".into());
    for (k, val) in modssl::cert_vars(leaf, Side::Client, now) {
        put(k, val);
    }
    put("SSL_CLIENT_CERT".into(), leaf.pem());
    // Everything the client sent after its leaf, as mod_ssl lists it
    // (OpenSSL clients append their own root when the file holds one cert).
    for (n, c) in v.certs.iter().skip(1).enumerate() {
        put(format!("SSL_CLIENT_CERT_CHAIN_{n}"), c.pem());
    }
    out
}

#[cfg(test)]
mod tests;
