//! Server logging with `tracing`: levels, RFC 3339 UTC timestamps, a filter, text, JSON or journald lines.
//!
//! [`init`] installs the global subscriber once, from the `[log]` section:
//! - the filter is an `EnvFilter` directive (`info`, `warn,belfry::query=info`);
//!   `BELFRY_LOG`, else `RUST_LOG`, replaces the configured one when set;
//! - `text`: `2026-11-24T10:00:00.123456Z  INFO belfry::cli: message`;
//! - `json`: one JSON object per line (`timestamp`, `level`, `target`, `message`, fields);
//! - `journal`: no timestamp, each line starts with its syslog priority `<N>`
//!   (sd-daemon(3)), so journald stores the level; `auto` picks it when
//!   standard error is the stream named by `JOURNAL_STREAM` (systemd sets it),
//!   text otherwise;
//! - `file`: lines go to that file instead of standard error, reopened after
//!   rotation (see [`super::reopen`]).
//!
//! What a user reads from a command (`check`, `ds`, …) is not logging and stays
//! on stdout/stderr. It must not be called on the query path more than the
//! disabled-query-log branch costs.

use super::reopen::{Appender, ReopenFile};
use crate::config::{LogFormat, LogSection};
use std::fmt;
use std::time::Duration;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The target of query log lines (`[log] queries = true`).
pub const QUERY_TARGET: &str = "belfry::query";

/// Environment variables that replace the configured filter, first found wins.
pub const FILTER_ENV: [&str; 2] = ["BELFRY_LOG", "RUST_LOG"];

/// The syslog priority of a level, as sd-daemon(3) prefixes expect.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Whether standard error is the journal stream systemd passed in `JOURNAL_STREAM` ("dev:inode").
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}

/// journald lines: `<priority>target: message fields`.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let m = event.metadata();
        write!(w, "<{}>{}: ", priority(m.level()), m.target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The filter in force: `BELFRY_LOG` or `RUST_LOG` when set, else the configured one.
pub fn filter(cfg: &LogSection) -> Result<EnvFilter, String> {
    for var in FILTER_ENV {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return EnvFilter::try_new(&v).map_err(|e| format!("{var}={v:?}: {e}"));
            }
        }
    }
    EnvFilter::try_new(&cfg.filter).map_err(|e| format!("[log] filter {:?}: {e}", cfg.filter))
}

/// The format actually used: `auto` resolved against the environment.
pub fn effective_format(cfg: &LogSection) -> LogFormat {
    match cfg.format {
        LogFormat::Auto if cfg.file.is_none() && stderr_is_journal() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    }
}

/// Install the global subscriber for the server; a second call does nothing.
pub fn init(cfg: &LogSection) -> Result<(), String> {
    let filter = filter(cfg)?;
    let writer = match &cfg.file {
        Some(p) => {
            let f = ReopenFile::open(p, Duration::from_secs(1))
                .map_err(|e| format!("[log] file {}: cannot open: {e}", p.display()))?;
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || Appender(f.clone()))
        }
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let r = match effective_format(cfg) {
        LogFormat::Json => b.json().flatten_event(true).try_init(),
        LogFormat::Journal => b.event_format(JournalFormat).try_init(),
        LogFormat::Text | LogFormat::Auto => b.try_init(),
    };
    // Already installed (a second server in one process, a test): keep the first.
    let _ = r;
    Ok(())
}

/// Logging for the one-shot commands: warnings and errors as text on standard error.
pub fn init_for_command() {
    let filter = FILTER_ENV
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn bad_filter_is_named() {
        let cfg = LogSection {
            filter: "info,belfry=loud".into(),
            ..LogSection::default()
        };
        if FILTER_ENV.iter().all(|v| std::env::var(v).is_err()) {
            let e = filter(&cfg).unwrap_err();
            assert!(e.starts_with("[log] filter"), "{e}");
        }
    }
}
