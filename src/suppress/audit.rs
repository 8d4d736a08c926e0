//! The audit log: append-only JSON lines, one per change to the suppression list.
//!
//! Each line says who, when, what (add, remove, expire, edit, a rejected edit,
//! a refused API call), which domain, why, the case id and the SOA serial that
//! carried the change. Lines are written with `O_APPEND` and fsynced before the
//! change is reported as done; a failed write is cut back off (no torn line).
//! Every field is cut to [`FIELD_MAX`] characters, so no request can grow the
//! log by more than a bounded line. The file is reopened on SIGHUP and, before
//! each write, when it was renamed or deleted (logrotate), see [`crate::ops::reopen`].

use crate::ops::reopen::ReopenFile;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Most characters of one field of an audit line.
pub const FIELD_MAX: usize = 1024;

/// A field cut to [`FIELD_MAX`] characters (marked with `…` when cut).
fn bound(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(FIELD_MAX) {
        None => std::borrow::Cow::Borrowed(s),
        Some((i, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// One audit line of a change.
#[derive(Clone, Debug, Default)]
pub struct Line {
    /// Who asked.
    pub actor: String,
    /// What was done (`add`, `remove`, `expire`, `edit-add`, `reload`, ...).
    pub action: String,
    /// Which domain (empty when the change is not about one).
    pub domain: String,
    /// Why.
    pub reason: String,
    /// The case id.
    pub case: String,
}

/// An open audit log.
pub struct Audit {
    file: Arc<ReopenFile>,
}

impl Audit {
    /// Open (or create) the log for appending.
    pub fn open(path: &Path) -> Result<Audit, String> {
        // Audit lines are rare: look for a rotation before every one.
        let file = ReopenFile::open(path, Duration::ZERO)
            .map_err(|e| format!("{}: cannot open the audit log: {e}", path.display()))?;
        Ok(Audit { file })
    }

    /// Append the lines of one change in one write and fsync them; an error means
    /// the change must not be made.
    pub fn record_batch(&self, change_id: u64, lines: &[Line], serial: u32) -> Result<(), String> {
        let time = super::list::format_time(super::list::now_secs());
        let mut text = String::new();
        for l in lines {
            let v = serde_json::json!({
                "time": time,
                "change": change_id,
                "actor": bound(&l.actor),
                "action": bound(&l.action),
                "domain": bound(&l.domain),
                "reason": bound(&l.reason),
                "case": bound(&l.case),
                "serial": serial,
            });
            text.push_str(&v.to_string());
            text.push('\n');
        }
        self.file.append(text.as_bytes(), true).map_err(|e| {
            format!(
                "{}: cannot write the audit log: {e}",
                self.file.path().display()
            )
        })
    }

    /// Append one event; a write failure is logged (the change itself already happened).
    pub fn record(
        &self,
        actor: &str,
        action: &str,
        domain: &str,
        reason: &str,
        case: &str,
        serial: u32,
    ) {
        let line = serde_json::json!({
            "time": super::list::format_time(super::list::now_secs()),
            "actor": bound(actor),
            "action": bound(action),
            "domain": bound(domain),
            "reason": bound(reason),
            "case": bound(case),
            "serial": serial,
        });
        let text = format!("{line}\n");
        if let Err(e) = self.file.append(text.as_bytes(), true) {
            tracing::error!("{}: audit write failed: {e}", self.file.path().display());
        }
    }
}
