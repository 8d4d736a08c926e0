//! The audit log: append-only JSON lines, one per change to the suppression list.
//!
//! Each line says who, when, what (add, remove, expire, edit, a rejected edit,
//! a refused API call), which domain, why, the case id and the SOA serial that
//! carried the change. Lines are written with `O_APPEND` and fsynced before the
//! change is reported as done; a failed write is cut back off (no torn line).
//! Every field is cut to [`FIELD_MAX`] characters, so no request can grow the
//! log by more than a bounded line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    path: PathBuf,
    file: Mutex<File>,
}

impl Audit {
    /// Open (or create) the log for appending.
    pub fn open(path: &Path) -> Result<Audit, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: cannot open the audit log: {e}", path.display()))?;
        Ok(Audit {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
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
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let start = f.metadata().map(|m| m.len()).ok();
        let r = f.write_all(text.as_bytes()).and_then(|_| f.sync_data());
        if r.is_err() {
            // No torn line: cut what part of the batch was written.
            if let Some(len) = start {
                let _ = f.set_len(len);
            }
        }
        r.map_err(|e| format!("{}: cannot write the audit log: {e}", self.path.display()))
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
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let start = f.metadata().map(|m| m.len()).ok();
        let r = writeln!(f, "{line}").and_then(|_| f.sync_data());
        if r.is_err() {
            if let Some(len) = start {
                let _ = f.set_len(len);
            }
        }
        if let Err(e) = r {
            crate::log(&format!("{}: audit write failed: {e}", self.path.display()));
        }
    }
}
