//! VOMS proxy extension (acseq) and `.lsc` parsers on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the parser so one corpus covers all three.
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            if let Ok(acs) = fedgate::internal::voms::asn1::split_acseq(rest) {
                for der in acs {
                    if let Ok(ac) = fedgate::internal::voms::asn1::parse_ac(der) {
                        let _ = fedgate::internal::voms::profile::profile(&ac);
                    }
                }
            }
        }
        1 => {
            if let Ok(ac) = fedgate::internal::voms::asn1::parse_ac(rest) {
                let _ = fedgate::internal::voms::profile::profile(&ac);
            }
            let _ = fedgate::internal::voms::asn1::parse_targets(rest);
            let _ = fedgate::internal::voms::asn1::parse_generic(rest);
            let _ = fedgate::internal::voms::asn1::parse_ac_certs(rest);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(lsc) = fedgate::internal::voms::lsc::parse(text) {
                    // The chain's own DNs as (subject, issuer) pairs.
                    let first: Vec<(String, String)> = lsc.chains[0]
                        .windows(2)
                        .map(|w| (w[0].clone(), w[1].clone()))
                        .collect();
                    let _ = lsc.matches(&first);
                }
            }
        }
    }
});
