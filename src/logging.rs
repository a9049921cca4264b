//! Structured logs through tracing, as text or JSON lines.
//!
//! Lines go to stderr through [`sink::LogSink`]: request handlers append to
//! a shared buffer and a writer thread empties it, so a slow log consumer
//! (a full pipe to journald) never stalls a worker that is serving
//! requests, and a burst of lines costs one `write(2)` rather than one each.

mod clock;
mod fields;
mod sink;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use serde::Deserialize;

pub use clock::seconds_text;
pub use fields::{Addr, Ip};
pub use sink::LogGuard;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// tracing filter directive, e.g. "info" or "fedgate=debug".
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the
/// configured level. Safe to call twice (the second call does nothing and
/// returns an inert guard).
pub fn init(cfg: &LoggingConfig) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    // Colour codes belong on a terminal, not in a log file or journald.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = sink::LogSink::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_timer(clock::UtcMicros)
        .with_target(false);
    let installed = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .fmt_fields(fields::PlainFields::default())
            .try_init(),
    };
    if installed.is_ok() {
        guard
    } else {
        LogGuard::inert()
    }
}
