//! Human-readable AC report for `fedgate x509-info`, laid out like
//! `voms-proxy-info --all`, plus why each refused AC was dropped (which
//! voms-proxy-info, not verifying anything, cannot say).

use std::fmt::Write;

use super::VomsOutcome;

/// One block per valid AC, then one `refused` line per dropped AC.
pub fn describe(outcome: &VomsOutcome, user: &str, now: i64) -> String {
    let mut out = String::new();
    let Some(carrier) = outcome.carrier else {
        out.push_str("no VOMS attribute certificates\n");
        return out;
    };
    let _ = writeln!(
        out,
        "VOMS attribute certificates in chain certificate {carrier} (leaf = 0)"
    );
    for ac in &outcome.acs {
        let _ = writeln!(out, "=== VO {} extension information ===", ac.vo);
        let _ = writeln!(out, "VO        : {}", ac.vo);
        let _ = writeln!(out, "subject   : {user}");
        let _ = writeln!(out, "issuer    : {}", ac.server);
        let _ = writeln!(out, "issuer CA : {}", ac.server_ca);
        for f in &ac.fqans {
            let _ = writeln!(out, "attribute : {f}");
        }
        for g in &ac.generic {
            let _ = writeln!(
                out,
                "attribute : {} = {} ({})",
                g.name, g.value, g.qualifier
            );
        }
        let left = (ac.not_after - now).max(0);
        let _ = writeln!(
            out,
            "timeleft  : {}:{:02}:{:02}",
            left / 3600,
            left % 3600 / 60,
            left % 60
        );
        let _ = writeln!(
            out,
            "validity  : {} - {}",
            ac.not_before_raw, ac.not_after_raw
        );
        let _ = writeln!(out, "serial    : {}", ac.serial_hex);
        let _ = writeln!(out, "uri       : {}", ac.uri);
    }
    for r in &outcome.refused {
        let _ = writeln!(out, "refused   : {r}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voms::ValidAc;

    #[test]
    fn layout() {
        let o = VomsOutcome {
            carrier: Some(0),
            acs: vec![ValidAc {
                vo: "vo".into(),
                uri: "h:1".into(),
                server: "/CN=s".into(),
                server_ca: "/CN=ca".into(),
                fqans: vec!["/vo".into()],
                not_before: 0,
                not_after: 3723,
                not_before_raw: "a".into(),
                not_after_raw: "b".into(),
                serial_hex: "01".into(),
                generic: vec![],
            }],
            refused: vec!["AC 2/2: expired".into()],
        };
        let d = describe(&o, "/CN=u", 0);
        assert!(d.contains("=== VO vo extension information ===\n"));
        assert!(d.contains("attribute : /vo\n"));
        assert!(d.contains("timeleft  : 1:02:03\n"));
        assert!(d.ends_with("refused   : AC 2/2: expired\n"));
        assert_eq!(
            describe(&VomsOutcome::default(), "", 0),
            "no VOMS attribute certificates\n"
        );
    }
}
