//! The text format's fields, written as tracing-subscriber writes them, at
//! a fraction of the cost.
//!
//! tracing-subscriber's default field formatter paints every field name
//! and `=` through `nu_ansi_term`, even with colours off, where each paint
//! is three dynamic `Display` calls that write nothing. On the no-auth
//! keep-alive profile, the access line's nine fields spent about 5,000
//! instructions a request there (callgrind), half of the line's cost.
//! [`PlainFields`] writes `name=value` directly when the writer has no
//! colours, and hands anything unusual (colours, errors with sources, the
//! message with its escaping, raw identifiers) to the default formatter,
//! so the text stays byte for byte the same.
//!
//! [`Addr`] and [`Ip`] write an address without the standard library's
//! formatting machinery, which takes each octet through `fmt`: the access
//! line has the peer's, and every forwarded request its X-Forwarded-For.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

/// The text format's field formatter (see the module's documentation).
#[derive(Debug, Default)]
pub struct PlainFields {
    default: DefaultFields,
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return self.default.format_fields(writer, fields);
        }
        let mut v = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet: the next field gets no leading space.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether this field is one the default formatter treats specially,
    /// and so is left to it.
    fn special(name: &str) -> bool {
        name == "message" || name.starts_with("r#") || name.starts_with("log.")
    }

    /// Lets the default visitor write one field, continuing the line.
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut d = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut d);
        self.result = d.finish();
        // The default visitor writes every field but `log.` metadata.
        self.is_empty = false;
    }

    /// Writes `name=` after a separating space, then the value.
    fn field(&mut self, name: &str, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let w = &mut self.writer;
        self.result = (|| {
            if !self.is_empty {
                w.write_str(" ")?;
            }
            w.write_str(name)?;
            w.write_str("=")?;
            value(w)
        })();
        self.is_empty = false;
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if Self::special(field.name()) {
            return self.delegate(|d| d.record_debug(field, value));
        }
        self.field(field.name(), |w| write!(w, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if Self::special(field.name()) {
            return self.delegate(|d| d.record_str(field, value));
        }
        self.field(field.name(), |w| write!(w, "{value:?}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if Self::special(field.name()) {
            return self.delegate(|d| d.record_u64(field, value));
        }
        self.field(field.name(), |w| {
            w.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if Self::special(field.name()) {
            return self.delegate(|d| d.record_i64(field, value));
        }
        self.field(field.name(), |w| {
            w.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if Self::special(field.name()) {
            return self.delegate(|d| d.record_f64(field, value));
        }
        self.field(field.name(), |w| write_f64(value, w));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if Self::special(field.name()) {
            return self.delegate(|d| d.record_bool(field, value));
        }
        self.field(field.name(), |w| {
            w.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(|d| d.record_error(field, value));
    }
}

/// `{:?}` of an `f64`, through ryu. Both print the shortest digits that
/// read back as the same number, and lay them out alike (plain decimal, at
/// least one fractional digit) from 1e-4 up to 1e16. They may pick
/// different digits only where two shortest candidates tie, which needs a
/// double whose exact value has at most 17 significant digits: none below
/// about 1e12. So ryu writes values from 1e-4 to 1e9, which covers the
/// durations in milliseconds that the access line carries (up to 11
/// days), and the standard formatter the rest.
fn write_f64(v: f64, w: &mut Writer<'_>) -> fmt::Result {
    let a = v.abs();
    if v == 0.0 || (1e-4..1e9).contains(&a) {
        w.write_str(ryu::Buffer::new().format_finite(v))
    } else {
        write!(w, "{v:?}")
    }
}

/// A socket address as its `Display` writes it, built in a stack buffer.
pub struct Addr(pub SocketAddr);

/// An IP address as its `Display` writes it, built in a stack buffer.
pub struct Ip(pub IpAddr);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SocketAddr::V4(a) = self.0 else {
            return fmt::Display::fmt(&self.0, f);
        };
        if f.width().is_some() || f.precision().is_some() {
            return fmt::Display::fmt(&self.0, f);
        }
        // "255.255.255.255:65535" is 21 bytes.
        let mut buf = Text::<21>::default();
        buf.ipv4(*a.ip());
        buf.put(b":");
        buf.put(itoa::Buffer::new().format(a.port()).as_bytes());
        f.write_str(buf.as_str())
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IpAddr::V4(a) = self.0 else {
            return fmt::Display::fmt(&self.0, f);
        };
        if f.width().is_some() || f.precision().is_some() {
            return fmt::Display::fmt(&self.0, f);
        }
        let mut buf = Text::<15>::default();
        buf.ipv4(a);
        f.write_str(buf.as_str())
    }
}

/// A short ASCII text on the stack.
struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Text<N> {
    fn put(&mut self, s: &[u8]) {
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn ipv4(&mut self, ip: Ipv4Addr) {
        for (i, o) in ip.octets().iter().enumerate() {
            if i > 0 {
                self.put(b".");
            }
            self.put(itoa::Buffer::new().format(*o).as_bytes());
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, dots and colons are ever put.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// The lines `emit` logs, formatted by tracing-subscriber's default
    /// fields and by [`PlainFields`], without time or colours.
    fn both(emit: impl Fn()) -> (String, String) {
        let theirs = Buf::default();
        let ours = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(theirs.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(sub, &emit);
        let sub = tracing_subscriber::fmt()
            .fmt_fields(PlainFields::default())
            .with_writer(ours.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(sub, &emit);
        let text = |b: Buf| String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        (text(ours), text(theirs))
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer failure")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn lines_are_the_same_as_the_default_formatters() {
        let (ours, theirs) = both(|| {
            let peer: SocketAddr = "192.0.2.17:40522".parse().unwrap();
            let id = "9f5728f14583bd50";
            // The access line, as the pipeline writes it.
            tracing::info!(
                id = %id, method = %http::Method::GET, path = %"/v3/auth/tokens", status = 200u16,
                route = %"keystone", user = "-", peer = %Addr(peer), ms = 0.374f64,
                "request"
            );
            tracing::info!(user = "a \"quoted\"\nname\u{1b}[31m", "odd user");
            tracing::warn!(headers = ?["x-a", "oidc_sub"], n = -3i64, ok = true, "dropped");
            tracing::error!(
                error = &Outer(std::io::Error::other("inner")) as &dyn std::error::Error,
                "failed"
            );
            tracing::info!(
                ms = 0.0f64,
                big = 1e300f64,
                small = 1.5e-7f64,
                neg = -2.25f64
            );
            tracing::info!(r#type = "x", "message with \u{1b} escape");
            tracing::info!("only a message");
            tracing::info!(a = 1u64, message = "message last");
            let span = tracing::info_span!("request", id = %id);
            let _g = span.enter();
            tracing::info!(auth = "x509", "inside a span");
        });
        assert!(theirs.lines().count() >= 9, "{theirs}");
        assert_eq!(ours, theirs);
        assert!(ours.contains("peer=192.0.2.17:40522 ms=0.374\n"), "{ours}");
    }

    #[test]
    fn floats_are_written_as_their_debug_form() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let check = |v: f64| {
            let mut ours = String::new();
            write_f64(v, &mut Writer::new(&mut ours)).unwrap();
            assert_eq!(ours, format!("{v:?}"), "{v:e}");
        };
        for v in [
            0.0,
            -0.0,
            1e-4,
            0.001,
            0.374,
            1.0,
            100.0,
            1e15,
            9.99e14,
            1e16,
            f64::NAN,
            f64::INFINITY,
            5e-5,
        ] {
            check(v);
        }
        for _ in 0..200_000 {
            // Microsecond durations in milliseconds, as the access line
            // has them; any double of the range ryu writes; any double.
            check((next() % 1_000_000_000_000) as f64 / 1e3);
            let exp = (next() % 44) as i32 - 14; // 2^-14 < 1e-4, 2^30 > 1e9
            let mantissa = 1.0 + (next() >> 11) as f64 / (1u64 << 53) as f64;
            check(mantissa * 2f64.powi(exp));
            check(f64::from_bits(next()));
        }
        for v in [1e9, 999_999_999.999_999_9, 1e-4, 0.000_099_999_999] {
            check(v);
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:5000",
            "255.255.255.255:65535",
            "10.20.30.40:443",
            "[::1]:443",
            "[2001:db8::5]:1",
        ] {
            let s: SocketAddr = a.parse().unwrap();
            assert_eq!(Addr(s).to_string(), s.to_string());
            assert_eq!(format!("{:>25}", Addr(s)), format!("{s:>25}"));
            assert_eq!(Ip(s.ip()).to_string(), s.ip().to_string());
            assert_eq!(format!("{:<20}|", Ip(s.ip())), format!("{:<20}|", s.ip()));
        }
    }
}
