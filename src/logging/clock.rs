//! The log lines' timestamp, formatted as tracing-subscriber's default
//! (`2026-12-06T02:04:47.824673Z`, UTC to the microsecond), at a fraction
//! of its cost.
//!
//! The default formatter turns the whole time into a calendar date for
//! every line; on the no-auth keep-alive profile that was a few per cent of
//! fedgate's user time, for a date that changes once a second. Here each
//! thread keeps the text of the current second and writes only the
//! microseconds.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// UTC with microseconds, the second's text cached per thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtcMicros;

thread_local! {
    /// The last second formatted on this thread, and its text up to the
    /// seconds (`2026-12-06T02:04:47`).
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write_utc(now.as_secs(), now.subsec_micros(), w)
    }
}

/// Writes `secs` (since the Unix epoch) and `micros` as RFC 3339 UTC.
fn write_utc(secs: u64, micros: u32, w: &mut impl std::fmt::Write) -> std::fmt::Result {
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = &mut cached.1;
            text.clear();
            seconds_text(i64::try_from(secs).unwrap_or(0), text)?;
            cached.0 = secs;
        }
        w.write_str(&cached.1)?;
        write!(w, ".{micros:06}Z")
    })
}

/// The calendar text of a second since the Unix epoch, in UTC:
/// `YYYY-MM-DDTHH:MM:SS` (also what accounting records and reports use).
pub fn seconds_text(secs: i64, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64, micros: u32) -> String {
        let mut s = String::new();
        write_utc(secs, micros, &mut s).unwrap();
        s
    }

    #[test]
    fn the_same_text_as_tracing_subscribers_default() {
        assert_eq!(text(1764988087, 824673), "2025-12-06T02:28:07.824673Z");
        assert_eq!(text(0, 5), "1970-01-01T00:00:00.000005Z");
        // A leap day, and the cache moving on to the next second.
        assert_eq!(text(1709164799, 999999), "2024-02-28T23:59:59.999999Z");
        assert_eq!(text(1709164800, 0), "2024-02-29T00:00:00.000000Z");
        assert_eq!(text(1709164800, 1), "2024-02-29T00:00:00.000001Z");
    }

    #[test]
    fn formats_now_as_tracing_subscriber_does() {
        use tracing_subscriber::fmt::time::SystemTime as Default;
        let (mut ours, mut theirs) = (String::new(), String::new());
        UtcMicros.format_time(&mut Writer::new(&mut ours)).unwrap();
        Default.format_time(&mut Writer::new(&mut theirs)).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
        // Same up to the second (both read the clock; a second may turn).
        assert!(ours[..17] == theirs[..17], "{ours} / {theirs}");
    }
}
