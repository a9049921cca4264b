//! The certificate values mod_ssl's `SSLOptions +StdEnvVars` exports, with
//! its names and formats: `SSL_CLIENT_*` for the client's leaf certificate,
//! `SSL_SERVER_*` for the host certificate. A site's mapping or policy may
//! read any of them, so each is compared byte for byte with a live Apache
//! in tests/x509_gridsite_interop.rs.

use super::cert::Cert;

/// Which certificate the values describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client's leaf certificate (`SSL_CLIENT_*`, with `V_REMAIN`).
    Client,
    /// The host certificate (`SSL_SERVER_*`).
    Server,
}

/// `SSL_CLIENT_V_REMAIN` of a certificate ending at `not_after`, at `now`
/// (Unix times): the whole days left, never negative, as current mod_ssl
/// exports it (Apache 2.4.71 here, and the reference goldens). Older
/// mod_ssl (Debian's 2.4.67) adds one to the day of the month of
/// `notAfter` before converting it, and so reads one more, on every
/// certificate; tests/x509_gridsite_interop.rs accepts exactly that
/// difference and no other.
pub fn v_remain(not_after: i64, now: i64) -> i64 {
    not_after.saturating_sub(now).max(0) / 86_400
}

/// The last second (Unix time) at which `c`'s `SSL_CLIENT_V_REMAIN` still
/// reads what it reads at `now`: values built at `now` may be reused until
/// then (the whole-day count is the only value that moves with the clock).
pub fn v_remain_stable_until(c: &Cert, now: i64) -> i64 {
    let left = c.not_after.saturating_sub(now);
    if left < 86_400 {
        return i64::MAX; // 0 from now on
    }
    now + left % 86_400
}

/// The values of `c`, at `now` (Unix time) for `SSL_CLIENT_V_REMAIN`.
pub fn cert_vars(c: &Cert, side: Side, now: i64) -> Vec<(String, String)> {
    let prefix = match side {
        Side::Client => "SSL_CLIENT",
        Side::Server => "SSL_SERVER",
    };
    let mut out: Vec<(String, String)> = Vec::with_capacity(16);
    let mut put = |k: &str, v: String| out.push((format!("{prefix}_{k}"), v));
    put("M_VERSION", c.version.to_string());
    put("M_SERIAL", c.serial_hex());
    put("V_START", asn1_time(c.not_before));
    put("V_END", asn1_time(c.not_after));
    if side == Side::Client {
        put("V_REMAIN", v_remain(c.not_after, now).to_string());
    }
    put("S_DN", c.subject_rfc2253.clone());
    put("I_DN", c.issuer_rfc2253.clone());
    put("A_KEY", key_alg_name(&c.key.alg).to_string());
    put("A_SIG", sig_alg_name(&c.sig_alg).to_string());
    for (k, v) in &c.subject_fields {
        put(&format!("S_DN_{k}"), v.clone());
    }
    for (k, v) in &c.issuer_fields {
        put(&format!("I_DN_{k}"), v.clone());
    }
    for (i, e) in c.san_email.iter().enumerate() {
        put(&format!("SAN_Email_{i}"), e.clone());
    }
    for (i, d) in c.san_dns.iter().enumerate() {
        put(&format!("SAN_DNS_{i}"), d.clone());
    }
    if side == Side::Client {
        // An RFC 4523 §2.1 CertificateExactAssertion in the generic string
        // encoding of RFC 3641: serial in decimal, the issuer's DN string in
        // quotes, where (unlike `I_DN`) every byte above 0x7F is escaped.
        let mut issuer = String::with_capacity(c.issuer_rfc2253.len());
        for ch in c.issuer_rfc2253.chars() {
            if ch.is_ascii() {
                issuer.push(ch);
            } else {
                for b in ch.encode_utf8(&mut [0; 4]).bytes() {
                    issuer.push_str(&format!("\\{b:02X}"));
                }
            }
        }
        put(
            "CERT_RFC4523_CEA",
            format!(
                "{{ serialNumber {}, issuer rdnSequence:\"{issuer}\" }}",
                decimal(&c.serial)
            ),
        );
    }
    out
}

/// A big-endian unsigned integer in decimal.
fn decimal(be: &[u8]) -> String {
    // Little-endian base-10^9 limbs, multiplied by 256 per input byte.
    let mut limbs: Vec<u64> = vec![0];
    for &b in be {
        let mut carry = u64::from(b);
        for l in limbs.iter_mut() {
            let v = *l * 256 + carry;
            *l = v % 1_000_000_000;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    }
    let mut out = limbs.last().copied().unwrap_or(0).to_string();
    for l in limbs.iter().rev().skip(1) {
        out.push_str(&format!("{l:09}"));
    }
    out
}

/// OpenSSL's long name of a public key algorithm, `UNKNOWN` otherwise.
fn key_alg_name(oid: &str) -> &'static str {
    match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10040.4.1" => "dsaEncryption",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        _ => "UNKNOWN",
    }
}

/// OpenSSL's long name of a signature algorithm, `UNKNOWN` otherwise.
fn sig_alg_name(oid: &str) -> &'static str {
    match oid {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        _ => "UNKNOWN",
    }
}

/// A time as OpenSSL's `ASN1_TIME_print` writes it: `Dec  3 21:10:34 2026 GMT`
/// (the day padded with a space).
pub fn asn1_time(t: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {d:>2} {:02}:{:02}:{:02} {y} GMT",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a day count since
/// 1970-01-01, counted in 400-year eras of 146097 days with years starting
/// on 1 March (so the leap day ends a year).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole days left, never negative.
    #[test]
    fn days_remaining_are_whole_days_left() {
        let day = 86_400;
        let na = 1_800_000_000;
        for (left, want) in [
            (365 * day + 60, 365),
            (365 * day - 60, 364),
            (12 * 3600, 0),
            (day, 1),
            (day - 1, 0),
            (1, 0),
            (0, 0),
            (-1, 0),
            (-day, 0),
            (-400 * day, 0),
        ] {
            assert_eq!(v_remain(na, na - left), want, "{left} s left");
        }
        assert_eq!(v_remain(i64::MAX, 0), i64::MAX / 86_400);
    }

    #[test]
    fn serials_in_decimal() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[0x10, 0x02]), "4098");
        assert_eq!(decimal(&[0x45, 0xcf, 0x0b, 0xd4]), "1171196884");
        assert_eq!(
            decimal(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
            "18446744073709551616"
        );
    }

    #[test]
    fn times_as_openssl_prints_them() {
        assert_eq!(asn1_time(0), "Jan  1 00:00:00 1970 GMT");
        assert_eq!(asn1_time(1_796_332_234), "Dec  3 21:10:34 2026 GMT");
        assert_eq!(asn1_time(951_782_400), "Feb 29 00:00:00 2000 GMT");
        assert_eq!(asn1_time(2_147_483_647), "Jan 19 03:14:07 2038 GMT");
    }
}
