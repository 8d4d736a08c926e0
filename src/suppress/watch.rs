//! Hand edits of the list file: taken only when complete, merged, never lost.
//!
//! Owns the watcher of the list file (and of `.<name>.prev`, the file the
//! server's last write replaced, see [`super::list`]). A version of a file is
//! looked at only once it is *stable*: its size, mtime, ctime and inode have
//! not changed for the settle interval. Then, in order:
//!
//! - deleted, unreadable, empty, not valid, or without the end line
//!   (`# end of list`: a write caught half-way) → an error; the list in force
//!   stays; it is logged and audited once per state, not at every look;
//! - a version the server wrote itself (its serial and entries are a version
//!   the watcher has seen) → nothing to do;
//! - otherwise a hand edit: it must carry the serial it was edited from, and
//!   that version must be one the watcher has seen (it keeps the last few as
//!   fingerprints). The edit becomes a delta against that version — entries
//!   added, changed, removed — submitted as one [`Change::EditList`]: the
//!   publisher applies it only where the list still holds what the editor
//!   started from, so changes made meanwhile (an API bulk add) are kept, and a
//!   conflicting edit is refused whole, with a log and audit line;
//! - a delta that lifts more than `max_removal_share` of the list (or all of
//!   it) is refused unless the file says `allow_mass_removal = true`.
//!
//! Nothing here is on the query path, and nothing here swaps snapshots.

use super::audit::Audit;
use super::list::{self, Parsed};
use crate::publish::change::{Change, ChangeError, List, ListStep, Outcome};
use crate::publish::Publisher;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many list versions are remembered for merging edits made from them.
const HISTORY: usize = 4;

/// Settings of the watcher.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// How long a file must stay unchanged before it is read.
    pub settle: Duration,
    /// Largest share of the list a hand edit may lift without `allow_mass_removal`.
    pub max_removal_share: f64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            settle: Duration::from_millis(1000),
            max_removal_share: 0.1,
        }
    }
}

/// What identifies one version of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    /// Device, inode, size, modification time (see [`list::FileId`]).
    id: list::FileId,
    ctime_ns: i128,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        id: list::file_id(&m),
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    })
}

/// What a file looked like at the last look.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    Unreadable(String),
    Present(Stamp),
}

/// One watched file.
struct Watched {
    path: PathBuf,
    /// Whether a missing file is an error (the list file) or normal (`.prev`).
    required: bool,
    /// What it looked like, and since when.
    seen: Option<(Seen, Instant)>,
    /// The last state that was acted on (so each is acted on once).
    done: Option<Seen>,
}

/// A list version: entry fingerprints by key.
type Version = HashMap<Vec<u8>, u64>;

/// The watcher of one list file.
pub struct ListWatch {
    files: Vec<Watched>,
    settings: WatchSettings,
    /// Versions seen, by serial (oldest first).
    history: Vec<(u32, Known)>,
    /// Files the server wrote (the list file, later its `.prev`): never an edit.
    own: std::collections::VecDeque<list::FileId>,
    /// The last problem logged, so a state is reported once.
    last_problem: Option<String>,
}

/// What one look at the files found.
#[derive(Debug)]
pub enum Event {
    /// A hand edit was applied.
    Applied(Outcome),
    /// A problem (reported once per state): the list in force stays.
    Problem(String),
}

fn version_of<'a>(
    entries: impl IntoIterator<Item = &'a crate::publish::change::Suppression>,
) -> Version {
    entries
        .into_iter()
        .map(|s| (crate::name::key_of(&s.name), s.fingerprint()))
        .collect()
}

/// A version the server knows: the list itself (kept at O(1) cost, as the
/// publisher shares it), its fingerprints made only when a hand edit needs them.
enum Known {
    List(List),
    Prints(Version),
}

impl Known {
    fn prints(&mut self) -> &Version {
        if let Known::List(l) = self {
            *self = Known::Prints(version_of(l.values()));
        }
        match self {
            Known::Prints(v) => v,
            Known::List(_) => unreachable!("made fingerprints above"),
        }
    }
}

/// Files the server wrote that are remembered, so they are not read back.
const OWN_KEPT: usize = 8;

impl ListWatch {
    /// Watch `path` (already resolved, see [`list::resolve`]); the publisher's
    /// list at start is the first known version, under the serial the file carries.
    pub fn new(path: PathBuf, settings: WatchSettings, publisher: &Publisher) -> ListWatch {
        let mut w = ListWatch {
            files: vec![
                Watched {
                    path: path.clone(),
                    required: true,
                    seen: None,
                    done: None,
                },
                Watched {
                    path: list::prev_path(&path),
                    required: false,
                    seen: None,
                    done: None,
                },
            ],
            settings,
            history: Vec::new(),
            own: Default::default(),
            last_problem: None,
        };
        list::watch_writes(&path);
        let (_, entries) = publisher.list();
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(p) = list::parse(&path, &text) {
                w.remember(p.serial, Known::List(entries));
            }
        }
        // Whatever is on disk now is the starting point, not an edit.
        for f in &mut w.files {
            let s = match stamp(&f.path) {
                Ok(s) => Seen::Present(s),
                Err(_) => Seen::Missing,
            };
            f.done = Some(s);
        }
        w
    }

    fn remember(&mut self, serial: u32, v: Known) {
        if let Some(i) = self.history.iter().position(|(s, _)| *s == serial) {
            self.history.remove(i);
        }
        self.history.push((serial, v));
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
    }

    /// Look at the files once; act on a stable new version of either.
    pub fn check(&mut self, publisher: &Publisher, audit: Option<&Audit>) -> Vec<Event> {
        let mut events = Vec::new();
        // Every version the server wrote is a version an edit may be made from.
        for w in list::take_written(&self.files[0].path) {
            self.remember(w.serial, Known::List(w.list));
            self.own.push_back(w.id);
            if self.own.len() > OWN_KEPT {
                self.own.pop_front();
            }
        }
        for i in 0..self.files.len() {
            let now = Instant::now();
            let f = &mut self.files[i];
            let cur = match stamp(&f.path) {
                Ok(s) => Seen::Present(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Missing,
                Err(e) => Seen::Unreadable(format!("{}", e.kind())),
            };
            match &f.seen {
                Some((s, _)) if *s == cur => {}
                _ => f.seen = Some((cur.clone(), now)),
            }
            let since = f.seen.as_ref().map(|(_, t)| *t).unwrap_or(now);
            if now.duration_since(since) < self.settings.settle || f.done.as_ref() == Some(&cur) {
                continue;
            }
            f.done = Some(cur.clone());
            if let Seen::Present(s) = &cur {
                if self.own.contains(&s.id) {
                    // A file the server wrote: not an edit, not read back.
                    continue;
                }
            }
            let (path, required) = (f.path.clone(), f.required);
            let r = match cur {
                Seen::Missing if required => Err(format!(
                    "{}: the list file is missing; the list in force stays ({} entries). \
                     `belfry suppress export --output FILE` writes it out",
                    path.display(),
                    publisher.list_len()
                )),
                Seen::Missing => Ok(None),
                Seen::Unreadable(kind) => Err(format!(
                    "{}: cannot read ({kind}); the list in force stays",
                    path.display()
                )),
                Seen::Present(_) => self.look(&path, publisher, audit),
            };
            match r {
                Ok(Some(o)) => {
                    self.last_problem = None;
                    events.push(Event::Applied(o));
                }
                Ok(None) => {
                    if required {
                        self.last_problem = None;
                    }
                }
                Err(m) => {
                    if self.last_problem.as_deref() != Some(m.as_str()) {
                        if let Some(a) = audit {
                            a.record(
                                "file-edit",
                                "edit-refused",
                                "",
                                &m,
                                "",
                                publisher.snapshot().serial,
                            );
                        }
                        self.last_problem = Some(m.clone());
                        events.push(Event::Problem(m));
                    }
                }
            }
        }
        events
    }

    /// Read a stable version of a file and act on it.
    fn look(
        &mut self,
        path: &Path,
        publisher: &Publisher,
        audit: Option<&Audit>,
    ) -> Result<Option<Outcome>, String> {
        let _ = audit;
        let keep = "the list in force stays";
        let before = stamp(path).ok();
        let bytes = std::fs::read(path)
            .map_err(|e| format!("{}: cannot read ({}); {keep}", path.display(), e.kind()))?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(format!(
                "{}: the file is empty; {keep} (an empty list is never taken from a file: \
                 lift entries with `belfry suppress remove`)",
                path.display()
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{}: not UTF-8 text; {keep}", path.display()))?;
        let now = list::now_secs();
        let parsed: Parsed = list::parse_checked(path, &text, "file-edit", now)
            .map_err(|m| format!("edit refused: {m}; {keep}"))?;
        if !parsed.complete {
            return Err(format!(
                "{}: incomplete (the last line is not `{}`: a write caught half-way?); \
                 not applied, {keep}",
                path.display(),
                list::END_LINE
            ));
        }
        let v = version_of(&parsed.entries);
        // A version the server wrote (or one already merged).
        if self
            .history
            .iter_mut()
            .any(|(s, h)| *s == parsed.serial && *h.prints() == v)
        {
            return Ok(None);
        }
        let (_, current) = publisher.list();
        let cur_v = version_of(current.values());
        if cur_v == v {
            self.remember(parsed.serial, Known::Prints(v));
            return Ok(None);
        }
        if parsed.serial == 0 {
            return Err(format!(
                "{}: edit refused: the file carries no `serial` (the serial it was edited \
                 from); {keep}. Use `belfry suppress edit`",
                path.display()
            ));
        }
        let Some(base) = self
            .history
            .iter_mut()
            .rev()
            .find(|(s, _)| *s == parsed.serial)
            .map(|(_, h)| h.prints().clone())
        else {
            if stamp(path).ok() != before {
                // The server replaced the file while it was read: look again.
                return Ok(None);
            }
            return Err(format!(
                "{}: edit refused: made from serial {}, a version this server does not \
                 know (it remembers the last {HISTORY}); {keep}. Use `belfry suppress edit`",
                path.display(),
                parsed.serial
            ));
        };
        // The delta against the version the edit was made from.
        let mut steps = Vec::new();
        let mut wanted = std::collections::HashSet::new();
        for e in &parsed.entries {
            let key = crate::name::key_of(&e.name);
            let before = base.get(&key).copied();
            wanted.insert(key);
            if before == Some(e.fingerprint()) {
                continue;
            }
            steps.push(ListStep {
                name: e.name.clone(),
                before,
                after: Some(e.clone()),
            });
        }
        let mut removals = 0usize;
        for (key, fp) in &base {
            if wanted.contains(key) {
                continue;
            }
            removals += 1;
            steps.push(ListStep {
                name: crate::zone::key_to_wire(key),
                before: Some(*fp),
                after: None,
            });
        }
        if steps.is_empty() {
            self.remember(parsed.serial, Known::Prints(v));
            return Ok(None);
        }
        if let Err(m) = mass_removal_ok(
            removals,
            current.len(),
            self.settings.max_removal_share,
            parsed.allow_mass_removal,
        ) {
            return Err(format!("{}: edit refused: {m}; {keep}", path.display()));
        }
        let change = Change::EditList {
            steps,
            based_on: parsed.serial,
            reason: format!("hand edit of {}", path.display()),
        };
        match publisher.apply(change, "file-edit", None) {
            Ok(o) => {
                // The file the server now writes is the next known version.
                let (_, after) = publisher.list();
                self.remember(o.serial, Known::List(after));
                Ok(Some(o))
            }
            Err(ChangeError::Unchanged) => Ok(None),
            Err(e) => Err(format!("{}: edit refused: {e}; {keep}", path.display())),
        }
    }
}

/// Whether a delta lifting `removals` of `len` entries may go ahead.
pub fn mass_removal_ok(
    removals: usize,
    len: usize,
    share: f64,
    allowed: bool,
) -> Result<(), String> {
    if allowed || removals == 0 {
        return Ok(());
    }
    let limit = ((len as f64) * share).floor().max(1.0) as usize;
    if removals >= len || removals > limit {
        return Err(format!(
            "it lifts {removals} of {len} suppressions, more than the {:.0} % allowed \
             at once; mark the file `allow_mass_removal = true` if that is intended",
            share * 100.0
        ));
    }
    Ok(())
}

/// Start the watcher thread.
pub fn spawn(
    path: PathBuf,
    settings: WatchSettings,
    publisher: std::sync::Arc<Publisher>,
    audit: Option<std::sync::Arc<Audit>>,
) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("belfry-watch".into())
        .spawn(move || {
            let mut w = ListWatch::new(path, settings, &publisher);
            while !publisher.stopping() {
                for ev in w.check(&publisher, audit.as_deref()) {
                    match ev {
                        Event::Applied(o) => tracing::info!(
                            "suppression list edited by hand: change {}, serial {}, added {}, lifted {}",
                            o.id,
                            o.serial,
                            o.added.len(),
                            o.removed.len()
                        ),
                        Event::Problem(m) => tracing::info!("{}", &m),
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .map_err(|e| format!("watch thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_removal_needs_the_marker() {
        assert!(mass_removal_ok(1, 100, 0.1, false).is_ok());
        assert!(mass_removal_ok(10, 100, 0.1, false).is_ok());
        assert!(mass_removal_ok(11, 100, 0.1, false).is_err());
        assert!(mass_removal_ok(11, 100, 0.1, true).is_ok());
        // Emptying the list always needs it; one of a few is fine.
        assert!(mass_removal_ok(1, 1, 0.1, false).is_err());
        assert!(mass_removal_ok(1, 3, 0.1, false).is_ok());
        assert!(mass_removal_ok(2, 3, 0.1, false).is_err());
    }
}
