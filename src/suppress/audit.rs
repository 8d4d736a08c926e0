//! The audit log: append-only JSON lines, one per change to the suppression list.
//!
//! Each line says who, when, what (add, remove, expire, edit, a rejected edit,
//! a refused API call), which domain, why, the case id and the SOA serial that
//! carried the change. Lines are written with `O_APPEND` and fsynced before the
//! change is reported as done. The file is reopened on SIGHUP and, before each
//! line, when it was renamed or deleted (logrotate), see [`crate::ops::reopen`].

use crate::ops::reopen::ReopenFile;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
            "actor": actor,
            "action": action,
            "domain": domain,
            "reason": reason,
            "case": case,
            "serial": serial,
        });
        let text = format!("{line}\n");
        if let Err(e) = self.file.append(text.as_bytes(), true) {
            tracing::error!("{}: audit write failed: {e}", self.file.path().display());
        }
    }
}
