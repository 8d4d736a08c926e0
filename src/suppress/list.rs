//! The suppression list file: its format, its checks, and atomic persistence.
//!
//! The file is TOML: the `serial` the server last published it at, an optional
//! one-shot `allow_mass_removal = true`, one `[[suppression]]` table per entry,
//! and a last line `# end of list`. The server writes it atomically (temporary
//! file in the same directory, fsync, rename, fsync of the directory; a failed
//! write removes its temporary file), so after a crash it holds the old or the
//! new list, never a mix. Before the rename, the file being replaced is kept
//! as `.<name>.prev` (a hard link), so that an editor still writing into it
//! writes into a file the watcher ([`super::watch`]) reads, not into a lost one.
//!
//! A hand edit is taken only when it is complete: it must end with the end
//! line and carry the serial it was edited from (see [`super::watch`]).
//!
//! Errors name the file and line and what is wrong; they never quote values
//! from the file (a symlink to another TOML file must not leak it into logs).

use super::EdeKind;
use crate::publish::change::Suppression;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The last line of a complete list file.
pub const END_LINE: &str = "# end of list";

/// One suppressed domain as the file holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The domain, absolute (e.g. `phish-example.be.`); an IDN as its A-label or in Unicode.
    pub domain: String,
    /// Why (free text).
    pub reason: String,
    /// The registry's case id.
    pub case: String,
    /// Who added it (a hand edit may leave it out: the editor is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_by: Option<String>,
    /// When, RFC 3339 (a hand edit may leave it out: the time it is applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<String>,
    /// When the suppression lifts by itself, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Extended DNS Error kind: `blocked` (15) or `censored` (16).
    #[serde(default = "default_ede")]
    pub ede: EdeKind,
}

impl Entry {
    /// The file form of a suppression: what [`render_list`] writes for it
    /// (kept as the reference its test compares against).
    #[cfg(test)]
    pub fn from_suppression(s: &Suppression) -> Entry {
        Entry {
            domain: crate::name::to_text(&s.name),
            reason: s.reason.clone(),
            case: s.case.clone(),
            added_by: Some(s.added_by.clone()),
            added_at: Some(super::time::format(s.added_at)),
            expires: s.expires.map(super::time::format),
            ede: s.ede,
        }
    }

    /// The suppression an entry describes; a missing author or time is `actor` and `now`.
    pub fn to_suppression_by(&self, actor: &str, now: u64) -> Result<Suppression, String> {
        let name = super::domain::parse(&self.domain).map_err(|e| format!("domain: {e}"))?;
        use super::proto::{check_field, CASE_MAX, REASON_MAX};
        check_field("reason", &self.reason, REASON_MAX)?;
        check_field("case", &self.case, CASE_MAX)?;
        if let Some(a) = &self.added_by {
            check_field("added_by", a, CASE_MAX)?;
        }
        let added_at = match &self.added_at {
            Some(t) => super::time::parse(t).map_err(|e| format!("added_at: {e}"))?,
            None => now,
        };
        let expires = match &self.expires {
            Some(t) => Some(super::time::parse(t).map_err(|e| format!("expires: {e}"))?),
            None => None,
        };
        Ok(Suppression {
            name,
            reason: self.reason.clone(),
            case: self.case.clone(),
            added_by: self.added_by.clone().unwrap_or_else(|| actor.to_string()),
            added_at,
            expires,
            ede: self.ede,
        })
    }

    /// The suppression an entry describes (as read at start-up).
    pub fn to_suppression(&self) -> Result<Suppression, String> {
        self.to_suppression_by("file", super::time::now())
    }
}

fn default_ede() -> EdeKind {
    EdeKind::Blocked
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFile {
    /// The SOA serial the list was published at (a hand edit keeps the one it was made from).
    #[serde(default)]
    pub serial: u32,
    /// Set by an operator to lift more than the configured share of the list in one edit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_mass_removal: bool,
    /// The entries.
    #[serde(default, rename = "suppression")]
    pub entries: Vec<Entry>,
}

/// A checked list: every entry parsed into a suppression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The serial the file carries (0: none).
    pub serial: u32,
    /// Whether a mass removal is marked as intended.
    pub allow_mass_removal: bool,
    /// Whether the file ends with [`END_LINE`].
    pub complete: bool,
    /// The entries, checked (names parsed, no name twice).
    pub entries: Vec<Suppression>,
}

/// A TOML or JSON error message without the values it may quote (field names,
/// quoted in backticks by "unknown field" and "missing field", are kept).
pub fn scrub(msg: &str) -> String {
    let names_only = ["unknown field", "missing field", "duplicate"]
        .iter()
        .any(|p| msg.trim_start().starts_with(p));
    let mut out = String::new();
    let mut in_quote: Option<char> = None;
    for c in msg.trim().chars() {
        let quote = c == '"' || (c == '`' && !names_only);
        if quote && (in_quote.is_none() || in_quote == Some(c)) {
            if in_quote.is_none() {
                out.push(c);
                out.push('…');
                out.push(c);
                in_quote = Some(c);
            } else {
                in_quote = None;
            }
            continue;
        }
        if in_quote.is_some() {
            continue;
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    if out.len() > 200 {
        let mut end = 200;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// Parse list text; errors are `file:line: message`. Entries without author or time get `actor` and `now`.
pub fn parse_checked(path: &Path, text: &str, actor: &str, now: u64) -> Result<Parsed, String> {
    let list = parse(path, text)?;
    let entry_lines = entry_lines(text);
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::with_capacity(list.entries.len());
    for (i, e) in list.entries.iter().enumerate() {
        let line = entry_lines.get(i).copied().unwrap_or(0);
        let s = e
            .to_suppression_by(actor, now)
            .map_err(|m| format!("{}:{line}: {m}", path.display()))?;
        if !seen.insert(crate::name::key_of(&s.name)) {
            return Err(format!(
                "{}:{line}: {} is listed twice (one name, one entry, whatever its spelling)",
                path.display(),
                crate::name::to_text(&s.name)
            ));
        }
        entries.push(s);
    }
    Ok(Parsed {
        serial: list.serial,
        allow_mass_removal: list.allow_mass_removal,
        complete: ends_complete(text),
        entries,
    })
}

/// Whether the last non-blank line is [`END_LINE`].
pub fn ends_complete(text: &str) -> bool {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        == Some(END_LINE)
}

fn entry_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[suppression]]"))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Parse list text (syntax and field types; names and times are checked by [`parse_checked`]).
pub fn parse(path: &Path, text: &str) -> Result<ListFile, String> {
    let list: ListFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => format!("{}:{l}: {}", path.display(), scrub(e.message())),
            None => format!("{}: {}", path.display(), scrub(e.message())),
        }
    })?;
    // Entry-level checks point at the entry's line.
    let lines = entry_lines(text);
    let mut seen = std::collections::HashSet::new();
    for (i, e) in list.entries.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(0);
        let s = e
            .to_suppression_by("file", 0)
            .map_err(|m| format!("{}:{line}: {m}", path.display()))?;
        if !seen.insert(crate::name::key_of(&s.name)) {
            return Err(format!(
                "{}:{line}: {} is listed twice (one name, one entry, whatever its spelling)",
                path.display(),
                crate::name::to_text(&s.name)
            ));
        }
    }
    Ok(list)
}

/// Read the list file at start-up; a missing file is an empty list.
pub fn load(path: &Path) -> Result<ListFile, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse(path, &t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ListFile::default()),
        Err(e) => Err(format!("{}: cannot read: {}", path.display(), e.kind())),
    }
}

/// Render the list as the file's text.
pub fn render(list: &ListFile) -> String {
    let mut s = head(list.serial, list.allow_mass_removal);
    for e in &list.entries {
        entry_text(
            &mut s,
            &Fields {
                domain: &e.domain,
                reason: &e.reason,
                case: &e.case,
                added_by: e.added_by.as_deref(),
                added_at: e.added_at.as_deref(),
                expires: e.expires.as_deref(),
                ede: e.ede,
            },
        );
    }
    s.push_str(END_LINE);
    s.push('\n');
    s
}

/// The publisher's list as the file's text: what `render` makes of
/// `Entry::from_suppression` of every entry, without the five strings per entry
/// that form allocates, and with each distinct time formatted once (a bulk add
/// gives many entries the same `added_at`). For 100,000 entries this is the
/// list file writer's whole CPU time: it took 40-60 ms through `Entry`.
pub fn render_list(serial: u32, list: &crate::publish::change::List) -> String {
    let mut s = head(serial, false);
    s.reserve(list.len() * 160);
    let mut added_at = LastTime::default();
    let mut expires = LastTime::default();
    let mut domain = String::new();
    for e in list.values() {
        domain.clear();
        crate::name::push_text(&mut domain, &e.name);
        entry_text(
            &mut s,
            &Fields {
                domain: &domain,
                reason: &e.reason,
                case: &e.case,
                added_by: Some(&e.added_by),
                added_at: Some(added_at.format(e.added_at)),
                expires: e.expires.map(|t| expires.format(t)),
                ede: e.ede,
            },
        );
    }
    s.push_str(END_LINE);
    s.push('\n');
    s
}

/// The last time formatted, kept for the next entry.
#[derive(Default)]
struct LastTime(Option<(u64, String)>);

impl LastTime {
    fn format(&mut self, t: u64) -> &str {
        if self.0.as_ref().is_none_or(|(last, _)| *last != t) {
            self.0 = Some((t, super::time::format(t)));
        }
        self.0.as_ref().map_or("", |(_, text)| text)
    }
}

/// The file's comment and its top-level keys.
fn head(serial: u32, allow_mass_removal: bool) -> String {
    let mut s = String::from(
        "# belfry suppression list. The safe way to change it is `belfry suppress edit`\n\
         # (or export/import). A hand edit of this file is applied by the running server\n\
         # when it is complete (it keeps the `serial` below and ends with the end line)\n\
         # and has not changed for a moment; it is merged with changes made since that\n\
         # serial, or refused with a log and audit line. Lifting more than a share of the\n\
         # list needs `allow_mass_removal = true` at the top.\n",
    );
    // Written directly rather than through the `toml` serializer: the file is
    // rewritten after changes, and for a 100,000-entry list the serializer took
    // about half a second. `render_matches_the_toml_crate` checks that both read
    // back the same.
    use std::fmt::Write;
    let _ = writeln!(s, "serial = {serial}");
    if allow_mass_removal {
        s.push_str("allow_mass_removal = true\n");
    }
    s
}

/// One entry's fields as the file shows them.
struct Fields<'a> {
    domain: &'a str,
    reason: &'a str,
    case: &'a str,
    added_by: Option<&'a str>,
    added_at: Option<&'a str>,
    expires: Option<&'a str>,
    ede: EdeKind,
}

/// One `[[suppression]]` table.
fn entry_text(s: &mut String, e: &Fields<'_>) {
    s.push_str("\n[[suppression]]\n");
    toml_field(s, "domain", e.domain);
    toml_field(s, "reason", e.reason);
    toml_field(s, "case", e.case);
    if let Some(v) = e.added_by {
        toml_field(s, "added_by", v);
    }
    if let Some(v) = e.added_at {
        toml_field(s, "added_at", v);
    }
    if let Some(v) = e.expires {
        toml_field(s, "expires", v);
    }
    toml_field(
        s,
        "ede",
        match e.ede {
            EdeKind::Blocked => "blocked",
            EdeKind::Censored => "censored",
        },
    );
}

/// `key = "value"` with the value as a TOML basic string.
fn toml_field(s: &mut String, key: &str, value: &str) {
    s.push_str(key);
    s.push_str(" = \"");
    if !value
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == b'"' || b == b'\\')
    {
        s.push_str(value);
        s.push_str("\"\n");
        return;
    }
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                use std::fmt::Write;
                let _ = write!(s, "\\u{:04X}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push_str("\"\n");
}

/// The name the replaced file is kept under (see the module documentation).
pub fn prev_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("suppressions");
    path.with_file_name(format!(".{name}.prev"))
}

/// Removes a temporary file unless disarmed.
struct TempGuard<'a>(Option<&'a Path>);

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write the list atomically: temp file, fsync, keep the old file as `.prev`,
/// rename, fsync the directory. On failure nothing is left behind.
pub fn persist(path: &Path, list: &ListFile) -> Result<String, String> {
    let text = render(list);
    write_atomic(path, text.as_bytes())?;
    Ok(text)
}

/// What identifies one version of a file: device, inode, size, modification
/// time (ns). A file the server wrote keeps it until someone writes into it or
/// replaces it (a hard link, such as the `.prev` one, changes only the ctime).
pub type FileId = (u64, u64, u64, i128);

/// The [`FileId`] of an open file or of file metadata.
pub fn file_id(m: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    )
}

/// One version of the list the server wrote to a watched path.
pub struct Written {
    /// The serial written in the file.
    pub serial: u32,
    /// The list it holds (a persistent map: kept at O(1) cost).
    pub list: crate::publish::change::List,
    /// The file as written.
    pub id: FileId,
}

/// Lists written to watched paths, not yet taken by their watcher.
type WrittenMap = Vec<(PathBuf, Option<Vec<Written>>)>;

/// Versions written, per watched path (see [`watch_writes`]).
static WRITTEN: std::sync::Mutex<WrittenMap> = std::sync::Mutex::new(Vec::new());

/// Most written versions kept for a watcher between two looks.
const WRITTEN_KEPT: usize = 4;

/// Ask [`persist_owned`] to keep what it writes to `path` for its watcher, so
/// that the watcher knows every version the server wrote even if the file is
/// changed (or truncated) before it looked.
pub fn watch_writes(path: &Path) {
    let mut w = WRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    if !w.iter().any(|(p, _)| p == path) {
        w.push((path.to_path_buf(), Some(Vec::new())));
    }
}

/// Versions written to `path` since the last call (oldest first).
pub fn take_written(path: &Path) -> Vec<Written> {
    let mut w = WRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    w.iter_mut()
        .find(|(p, _)| p == path)
        .and_then(|(_, v)| v.as_mut().map(std::mem::take))
        .unwrap_or_default()
}

/// Write the publisher's list under `serial` (see [`persist`]), keeping the
/// version and the file's identity for the path's watcher when there is one,
/// so that the watcher knows the file is the server's own without reading it.
pub fn persist_list(
    path: &Path,
    serial: u32,
    list: &crate::publish::change::List,
) -> Result<(), String> {
    let text = render_list(serial, list);
    let id = write_atomic(path, text.as_bytes())?;
    let mut w = WRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, Some(v))) = w.iter_mut().find(|(p, _)| p == path) {
        v.push(Written {
            serial,
            list: list.clone(),
            id,
        });
        if v.len() > WRITTEN_KEPT {
            v.remove(0);
        }
    }
    Ok(())
}

/// What the list file writer has to do and has done.
#[derive(Default)]
struct WriterState {
    /// The newest version not yet written (older ones are skipped).
    pending: Option<(u32, crate::publish::change::List)>,
    /// A write is under way.
    busy: bool,
    /// The serial of the last version written.
    written: Option<u32>,
    /// The last write's error, while it lasts.
    error: Option<String>,
    /// Someone waits for the file: no pause before the next write.
    hurry: bool,
    stop: bool,
    /// When the oldest version not yet written, and the newest, were handed over.
    first_pending: Option<std::time::Instant>,
    last_pending: Option<std::time::Instant>,
}

/// After a write that took `d`, the writer pauses `PAUSE_FACTOR × d` (at most
/// [`PAUSE_MAX`]) before the next one: a 100,000-entry file takes a few hundred
/// milliseconds to render, write and fsync, and on ext4 an fsync of the journal
/// waits for the data of the file being written, so writing back to back under
/// a stream of changes would slow every change down. Versions handed over
/// meanwhile are coalesced into one write.
const PAUSE_FACTOR: u32 = 10;
const PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// A version is written once no other has been handed over for `QUIET`, or once
/// the oldest unwritten one has waited `MAX_LAG`: a burst of takedowns (a script
/// adding names one by one) is not slowed by rendering and writing a large file
/// between its changes, and the file is never more than `MAX_LAG` (plus a
/// write) behind the journal.
const QUIET: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_LAG: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes the list file off the change path: a change hands its version over
/// and returns; the writer renders and writes the newest version handed over
/// (a burst of changes costs one write). Used when the publisher has a journal:
/// the journal is the record of the list, the file its readable copy, rewritten
/// at start if it is behind (see `Publisher::write_list_file_if_behind`). A
/// failed write is retried every second and logged once per error.
pub struct FileWriter {
    shared: Arc<(std::sync::Mutex<WriterState>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileWriter {
    /// A writer of `path` (already resolved, see [`resolve`]).
    pub fn new(path: PathBuf) -> std::io::Result<FileWriter> {
        let shared: Arc<(std::sync::Mutex<WriterState>, std::sync::Condvar)> = Arc::default();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("belfry-listfile".into())
            .spawn(move || writer_loop(&path, &s))?;
        Ok(FileWriter {
            shared,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand a version over (it replaces one not yet written).
    pub fn submit(&self, serial: u32, list: crate::publish::change::List) {
        let now = std::time::Instant::now();
        let mut st = self.lock();
        st.pending = Some((serial, list));
        st.first_pending.get_or_insert(now);
        st.last_pending = Some(now);
        drop(st);
        self.shared.1.notify_all();
    }

    /// Wait until every version handed over is written (or `timeout` passes);
    /// the error of the last write if it failed.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), String> {
        let end = std::time::Instant::now() + timeout;
        let mut st = self.lock();
        st.hurry = true;
        self.shared.1.notify_all();
        while st.pending.is_some() || st.busy {
            if st.error.is_some() && !st.busy {
                break;
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err("the list file writer did not finish in time".into());
            }
            st = self
                .shared
                .1
                .wait_timeout(st, left.min(std::time::Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        match &st.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The serial last written, and the error of the last write if it failed.
    pub fn status(&self) -> (Option<u32>, Option<String>) {
        let st = self.lock();
        (st.written, st.error.clone())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush(std::time::Duration::from_secs(30)) {
            tracing::error!("suppression list file not brought up to date: {e}");
        }
        self.lock().stop = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long the pending version still waits before it is written (none: now).
fn settle_left(st: &WriterState, now: std::time::Instant) -> Option<std::time::Duration> {
    if st.hurry || st.stop {
        return None;
    }
    let quiet = (st.last_pending? + QUIET).saturating_duration_since(now);
    let lag = (st.first_pending? + MAX_LAG).saturating_duration_since(now);
    let left = quiet.min(lag);
    (!left.is_zero()).then_some(left)
}

fn writer_loop(path: &Path, shared: &(std::sync::Mutex<WriterState>, std::sync::Condvar)) {
    let (lock, cv) = shared;
    let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if st.stop {
            return;
        }
        if st.pending.is_none() {
            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        if let Some(left) = settle_left(&st, std::time::Instant::now()) {
            st = cv
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        let Some((serial, list)) = st.pending.take() else {
            continue;
        };
        st.first_pending = None;
        st.busy = true;
        drop(st);
        let t = std::time::Instant::now();
        let r = persist_list(path, serial, &list);
        let took = t.elapsed();
        st = lock.lock().unwrap_or_else(|p| p.into_inner());
        st.busy = false;
        match r {
            Ok(()) => {
                if st.error.take().is_some() {
                    tracing::info!("suppression list file written again (serial {serial})");
                }
                st.written = Some(serial);
                if st.pending.is_none() {
                    st.hurry = false;
                }
                cv.notify_all();
                st = cv
                    .wait_timeout_while(st, (took * PAUSE_FACTOR).min(PAUSE_MAX), |s| {
                        !s.stop && !s.hurry
                    })
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            Err(e) => {
                if st.error.as_deref() != Some(e.as_str()) {
                    tracing::error!(
                        "suppression list file not written (retried every second; \
                         the journal holds the list): {e}"
                    );
                }
                st.error = Some(e);
                if st.pending.is_none() {
                    st.pending = Some((serial, list));
                }
                cv.notify_all();
                st = cv
                    .wait_timeout_while(st, std::time::Duration::from_secs(1), |s| !s.stop)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
}

/// Write bytes atomically to `path` (see [`persist`]); returns the identity of
/// the file written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<FileId, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("suppressions");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", path.display());
    let mut guard = TempGuard(Some(&tmp));
    let meta = {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| fail("cannot create temporary file", e))?;
        write_out(&mut f, bytes).map_err(|e| fail("cannot write", e))?;
        f.sync_all().map_err(|e| fail("cannot fsync", e))?;
        f.metadata().map_err(|e| fail("cannot stat", e))?
    };
    // Keep the file being replaced reachable: an editor may still be writing into it.
    if path.exists() {
        let prev = prev_path(path);
        let link_tmp = dir.join(format!(".{name}.prevtmp.{}", std::process::id()));
        let _ = std::fs::remove_file(&link_tmp);
        if std::fs::hard_link(path, &link_tmp).is_ok() && std::fs::rename(&link_tmp, &prev).is_err()
        {
            let _ = std::fs::remove_file(&link_tmp);
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| fail("cannot rename into place", e))?;
    guard.0 = None;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file_id(&meta))
}

/// Write `bytes` to a new file, sending them to the disk 1 MiB at a time.
///
/// On ext4 (data=ordered) an fsync commits the file system's journal, and the
/// commit waits for the data of every file whose blocks it allocated. Written
/// whole and then fsynced, a 14 MB list file made the audit log's and the
/// publisher journal's fsyncs of a takedown made meanwhile wait for all of it:
/// a 100-byte append's fsync beside it took p99 5.5-9.8 ms (max 10-12 ms),
/// against p99 3.1-3.3 ms when written this way (`examples/fsync_beside.rs`,
/// three rounds each). At most two chunks are in flight.
fn write_out(f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 20;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let fd = f.as_raw_fd();
        // Only a pacing hint: where it fails (a file system without it), the
        // fsync that follows still makes the file durable.
        let range = |off: usize, len: usize, flags: libc::c_uint| {
            // SAFETY: a plain system call on a file descriptor borrowed for this
            // function's duration; it reads no memory of ours.
            unsafe { libc::sync_file_range(fd, off as i64, len as i64, flags) };
        };
        let mut off = 0usize;
        let mut prev: Option<(usize, usize)> = None;
        for c in bytes.chunks(CHUNK) {
            f.write_all(c)?;
            // Start this chunk's writeback, then wait for the one before.
            range(off, c.len(), libc::SYNC_FILE_RANGE_WRITE);
            if let Some((o, l)) = prev {
                range(
                    o,
                    l,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
            prev = Some((off, c.len()));
            off += c.len();
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = CHUNK;
        f.write_all(bytes)
    }
}

/// Where a configured list path really is: a symlink is followed (once, at
/// start), so reads, the watcher and atomic writes all use its target and the
/// link stays a link.
pub fn resolve(path: &Path) -> Result<PathBuf, String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            format!(
                "{}: a symlink whose target cannot be resolved: {}",
                path.display(),
                e.kind()
            )
        }),
        Ok(m) if !m.is_file() => Err(format!("{}: not a regular file", path.display())),
        _ => Ok(path.to_path_buf()),
    }
}

/// Format seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: u64) -> String {
    super::time::format(t)
}

/// Parse an RFC 3339 time (offsets and fractions allowed) into seconds since the epoch.
pub fn parse_time(s: &str) -> Option<u64> {
    super::time::parse(s).ok()
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    super::time::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version waits for a quiet moment, but never longer than `MAX_LAG`
    /// under a stream of changes, and not at all when the file is waited for.
    #[test]
    fn the_writer_waits_for_quiet_but_not_forever() {
        let t0 = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let mut st = WriterState {
            pending: Some((1, crate::publish::change::List::new())),
            first_pending: Some(t0),
            last_pending: Some(t0),
            ..Default::default()
        };
        assert_eq!(settle_left(&st, t0), Some(QUIET));
        assert_eq!(settle_left(&st, t0 + QUIET), None);
        // A change every 10 ms: written when the first has waited MAX_LAG.
        let mut now = t0;
        while now < t0 + MAX_LAG {
            assert!(settle_left(&st, now).is_some(), "{:?}", now - t0);
            now += ms(10);
            st.last_pending = Some(now);
        }
        assert_eq!(settle_left(&st, now), None);
        st.first_pending = Some(now);
        st.hurry = true;
        assert_eq!(settle_left(&st, now), None);
    }

    /// The writer's direct rendering is the same text as the file form's.
    #[test]
    fn render_list_is_render_of_the_file_form() {
        let mut list = crate::publish::change::List::new();
        let texts = ["a.be.", "b\\.c.be.", "x\\032y.be.", "\\\"q.be."];
        for (i, t) in texts.iter().enumerate() {
            let name = crate::name::from_text(t, &[0]).unwrap();
            list.insert(
                crate::name::key_of(&name),
                Suppression {
                    name,
                    reason: ["plain", "a \"quote\"\nand a line", "tab\there", "\u{7f}"][i].into(),
                    case: format!("C-{i}"),
                    added_by: ["op", "watch:x", "", "z"][i].into(),
                    // Two entries with one time, then other times.
                    added_at: [1_780_000_000, 1_780_000_000, 0, 4_102_444_800][i],
                    expires: (i % 2 == 1).then_some(1_790_000_000 + i as u64),
                    ede: if i == 2 {
                        EdeKind::Censored
                    } else {
                        EdeKind::Blocked
                    },
                },
            );
        }
        for l in [list, crate::publish::change::List::new()] {
            let file = ListFile {
                serial: 2026120601,
                entries: l.values().map(Entry::from_suppression).collect(),
                ..Default::default()
            };
            let direct = render_list(2026120601, &l);
            // (Names that are not host names are refused by `parse`, but
            // rendering must escape them the same way.)
            assert_eq!(direct, render(&file));
        }
    }

    #[test]
    fn render_matches_the_toml_crate() {
        let texts = [
            "plain",
            "quote \" and backslash \\ and 'single'",
            "tab\tnewline\ncr\r nul\u{0} esc\u{1b} del\u{7f}",
            "unicode café ünïcödé 漢字 and an emoji \u{1F600}",
            "",
            "# not a comment = [x]",
        ];
        for allow in [false, true] {
            let entries: Vec<Entry> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| Entry {
                    domain: format!("d{i}.be."),
                    reason: t.to_string(),
                    case: t.chars().rev().collect(),
                    added_by: (i % 2 == 0).then(|| t.to_string()),
                    added_at: (i % 3 != 0).then(|| "2026-11-24T13:00:00Z".to_string()),
                    expires: (i % 2 == 1).then(|| "2027-01-01T00:00:00Z".to_string()),
                    ede: if i % 2 == 0 {
                        EdeKind::Blocked
                    } else {
                        EdeKind::Censored
                    },
                })
                .collect();
            for list in [
                ListFile {
                    serial: 2026112401,
                    allow_mass_removal: allow,
                    entries: entries.clone(),
                },
                ListFile {
                    serial: 7,
                    allow_mass_removal: allow,
                    entries: Vec::new(),
                },
            ] {
                let ours = render(&list);
                assert!(ours.ends_with(&format!("\n{END_LINE}\n")), "{ours}");
                let back: ListFile = toml::from_str(&ours).expect(&ours);
                assert_eq!(back, list, "{ours}");
                let theirs: ListFile = toml::from_str(&toml::to_string(&list).unwrap()).unwrap();
                assert_eq!(back, theirs);
            }
        }
    }

    const OK: &str = "serial = 5\n[[suppression]]\ndomain = \"a.be.\"\nreason = \"r\"\ncase = \"C1\"\nadded_by = \"x\"\nadded_at = \"2026-11-24T13:00:00Z\"\n";

    #[test]
    fn parse_errors_name_line() {
        let p = Path::new("s.toml");
        let l = parse(p, OK).unwrap();
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].ede, EdeKind::Blocked);
        let e = parse(p, &OK.replace("case =", "kase =")).unwrap_err();
        assert!(e.starts_with("s.toml:"), "{e}");
        let e = parse(p, &format!("{OK}{}", &OK[11..])).unwrap_err();
        assert!(e.contains("twice") && e.starts_with("s.toml:8:"), "{e}");
        let e = parse(p, &OK.replace("2026-11-24T13:00:00Z", "yesterday")).unwrap_err();
        assert!(e.starts_with("s.toml:2:") && e.contains("added_at"), "{e}");
        let e = parse(
            p,
            &OK.replace("2026-11-24T13:00:00Z", "2027-02-30T00:00:00Z"),
        )
        .unwrap_err();
        assert!(e.contains("added_at"), "{e}");
        let e = parse(p, &OK.replace("a.be.", "a..be.")).unwrap_err();
        assert!(e.contains("empty label"), "{e}");
    }

    #[test]
    fn two_spellings_are_one_entry() {
        let p = Path::new("s.toml");
        let two = format!("{OK}{}", OK[11..].replace("a.be.", "\\\\097.BE"));
        let e = parse(p, &two).unwrap_err();
        assert!(e.contains("a.be. is listed twice"), "{e}");
    }

    #[test]
    fn errors_never_quote_values() {
        let p = Path::new("s.toml");
        let e = parse(p, "serial = \"hunter2-secret\"\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse(p, &OK.replace("a.be.", "secret*value.be.")).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = parse(p, "serial = 123456789123\n").unwrap_err();
        assert!(!e.contains("123456789123"), "{e}");
        let e = parse(p, "password = \"hunter2\"\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn rendered_file_is_complete_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let list = ListFile {
            serial: 7,
            allow_mass_removal: false,
            entries: vec![Entry {
                domain: "a.be.".into(),
                reason: "phishing \"bank\"".into(),
                case: "C-1".into(),
                added_by: Some("op".into()),
                added_at: Some(format_time(now_secs())),
                expires: None,
                ede: EdeKind::Censored,
            }],
        };
        persist(&p, &list).unwrap();
        assert_eq!(load(&p).unwrap(), list);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(ends_complete(&text));
        assert!(!ends_complete(&text[..text.len() - 5]));
        let parsed = parse_checked(&p, &text, "x", 0).unwrap();
        assert!(parsed.complete && parsed.serial == 7 && parsed.entries.len() == 1);
        // A second write keeps the first as .prev.
        persist(&p, &ListFile::default()).unwrap();
        assert_eq!(load(&prev_path(&p)).unwrap(), list);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temp file was written.
        let p = dir.path().join("list");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("x"), "x").unwrap();
        assert!(persist(&p, &ListFile::default()).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
