//! Applying suppression changes: one code path for the API, file edits and expiry.
//!
//! Every change is turned into "the list as it should be", checked whole
//! against the zone, and then: the next snapshot is built (suppression set,
//! NSEC3 chain splice with the re-signed predecessors, new SOA serial signed),
//! the list is persisted atomically, the change is audited, and only then is
//! the snapshot swapped in and success reported. A failure at any step leaves
//! the served state and the file as they were.

use super::audit::Audit;
use super::list::{self, Entry, ListFile};
use super::{Effect, Suppressions};
use crate::config::Config;
use crate::dnssec::chain::Splice;
use crate::dnssec::Signer;
use crate::name;
use crate::service::{self, Loaded, Service};
use crate::zone::{Zone, DELEGATION, SECURE};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A rejected change: an HTTP-like status and a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeError {
    /// 400 bad input, 404 not listed, 409 already listed, 500 internal.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl ChangeError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        ChangeError {
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a successful change did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The new SOA serial.
    pub serial: u32,
    /// Domains newly suppressed.
    pub added: Vec<String>,
    /// Domains no longer suppressed.
    pub removed: Vec<String>,
}

struct State {
    list: ListFile,
    serial: u32,
    splice: Splice,
    /// Entries (by wire name) whose suppression is in the served snapshot.
    in_force: HashMap<Vec<u8>, Entry>,
    /// Text of the file as last read or written by us (to tell our writes from edits).
    last_text: Option<String>,
}

/// The suppression list of a running server.
pub struct Runtime {
    pub(crate) list_path: Option<PathBuf>,
    pub(crate) ede_text: Arc<str>,
    pub(crate) audit: Option<Audit>,
    pub(crate) admin_listen: std::net::SocketAddr,
    pub(crate) token_file: Option<PathBuf>,
    state: Mutex<State>,
}

/// Serial arithmetic (RFC 1982): the next serial.
fn next_serial(s: u32) -> u32 {
    match s.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// Check that a domain may be suppressed in this zone; returns its lowercase wire form.
pub fn check_domain(zone: &Zone, domain: &str) -> Result<Vec<u8>, String> {
    let wire = name::from_text(domain, &[0]).map_err(|e| format!("'{domain}': {e}"))?;
    if !domain.trim().ends_with('.') {
        return Err(format!("'{domain}' must be absolute (end with a dot)"));
    }
    let wire = name::to_lowercase(&wire);
    if !name::is_at_or_below(&wire, zone.origin()) {
        return Err(format!(
            "{} is outside the zone {}",
            name::to_text(&wire),
            name::to_text(zone.origin())
        ));
    }
    if wire.len() == zone.origin().len() {
        return Err("the zone apex cannot be suppressed".into());
    }
    let mut key = name::Key::new();
    key.set(&wire);
    for labels in zone.origin_labels() + 1..key.labels() {
        if let Some(n) = zone.find(key.prefix(labels)) {
            if zone.node(n).flags & DELEGATION != 0 {
                return Err(format!(
                    "{} is below the delegation {}; suppress that domain instead",
                    name::to_text(&wire),
                    name::to_text(&zone.node_name(n))
                ));
            }
        }
    }
    if let Some(n) = zone.find(key.as_bytes()) {
        if zone.node(n).flags & DELEGATION == 0 {
            return Err(format!(
                "{} is not a delegation but holds zone data of the registry; it cannot be suppressed",
                name::to_text(&wire)
            ));
        }
    }
    Ok(wire)
}

/// Remove chain entry `idx` from a splice and re-sign its live predecessor.
fn splice_out(signer: &Signer, sp: &mut Splice, idx: u32) -> Result<(), String> {
    let chain = &signer.chain;
    sp.removed.insert(idx);
    sp.patched.remove(&idx);
    let p = sp.live_at_or_before(chain, idx);
    let next = sp.live_after(chain, p);
    let patch = signer.patch(p, next).map_err(|e| e.to_string())?;
    sp.patched.insert(p, Arc::new(patch));
    Ok(())
}

/// Put chain entry `idx` back, re-signing its predecessor (and itself if its successor is gone).
fn splice_in(signer: &Signer, sp: &mut Splice, idx: u32) -> Result<(), String> {
    let chain = &signer.chain;
    let n = chain.len() as u32;
    sp.removed.remove(&idx);
    let prev = if idx == 0 { n - 1 } else { idx - 1 };
    let p = sp.live_at_or_before(chain, prev);
    for i in [p, idx] {
        let next = sp.live_after(chain, i);
        if next == (i + 1) % n {
            sp.patched.remove(&i);
        } else {
            let patch = signer.patch(i, next).map_err(|e| e.to_string())?;
            sp.patched.insert(i, Arc::new(patch));
        }
    }
    Ok(())
}

/// Chain index of a suppressed domain when it is a secure delegation (its hash is in the chain).
fn chain_index(zone: &Zone, signer: &Signer, wire: &[u8]) -> Option<u32> {
    let node = zone.find(&name::key_of(wire))?;
    let f = zone.node(node).flags;
    if f & DELEGATION == 0 || (f & SECURE == 0 && signer.chain.params.opt_out) {
        return None;
    }
    signer.chain.find(&signer.hash_name(wire))
}

fn is_active(e: &Entry, now: u64) -> bool {
    match e.expires.as_deref().and_then(list::parse_time) {
        Some(t) => t > now,
        None => true,
    }
}

impl Runtime {
    /// Read the list named by the configuration and check it against the zone.
    pub fn open(cfg: &Config, zone: &Zone) -> Result<Runtime, String> {
        let s = &cfg.suppress;
        let list = match &s.file {
            Some(p) => list::load(p)?,
            None => ListFile::default(),
        };
        if let Some(p) = &s.file {
            for e in &list.entries {
                check_domain(zone, &e.domain).map_err(|m| format!("{}: {m}", p.display()))?;
            }
        }
        let last_text = s
            .file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        let audit = match &s.audit_log {
            Some(p) => Some(Audit::open(p)?),
            None => None,
        };
        let serial = list.serial.max(zone.serial());
        Ok(Runtime {
            list_path: s.file.clone(),
            ede_text: Arc::from(s.ede_text.as_str()),
            audit,
            admin_listen: s.admin_listen,
            token_file: s.admin_token_file.clone(),
            state: Mutex::new(State {
                list,
                serial,
                splice: Splice::default(),
                in_force: HashMap::new(),
                last_text,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of entries in the list (active or not).
    pub fn len(&self) -> usize {
        self.lock().list.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the list.
    pub fn list(&self) -> ListFile {
        let st = self.lock();
        let mut l = st.list.clone();
        l.serial = st.serial;
        l
    }

    fn set_for(&self, zone: &Zone, entries: &[Entry], now: u64) -> Suppressions {
        let mut set = Suppressions::new();
        for e in entries.iter().filter(|e| is_active(e, now)) {
            if let Ok(w) = check_domain(zone, &e.domain) {
                set.insert(
                    &name::key_of(&w),
                    Effect {
                        code: e.ede.code(),
                        text: self.ede_text.clone(),
                    },
                );
            }
        }
        set
    }

    /// The suppression set, chain splice and serial for the list as loaded (at start).
    pub fn effective(&self, loaded: &Loaded) -> Result<(Suppressions, Splice, u32), String> {
        let mut st = self.lock();
        let now = list::now_secs();
        let set = self.set_for(&loaded.zone, &st.list.entries, now);
        let mut splice = Splice::default();
        if let Some(signer) = &loaded.signer {
            for e in st.list.entries.iter().filter(|e| is_active(e, now)) {
                if let Ok(w) = check_domain(&loaded.zone, &e.domain) {
                    if let Some(i) = chain_index(&loaded.zone, signer, &w) {
                        splice_out(signer, &mut splice, i)?;
                    }
                }
            }
        }
        st.splice = splice.clone();
        st.in_force = st
            .list
            .entries
            .iter()
            .filter(|e| is_active(e, now))
            .filter_map(|e| {
                check_domain(&loaded.zone, &e.domain)
                    .ok()
                    .map(|w| (w, e.clone()))
            })
            .collect();
        Ok((set, splice, st.serial))
    }

    /// Replace the list by `desired` (already built by the caller from the old list), as `actor`.
    ///
    /// The single path every change takes; see the module documentation.
    pub fn apply(
        &self,
        svc: &Service,
        loaded: &Loaded,
        desired: Vec<Entry>,
        actor: &str,
        action: &str,
        removal_reason: Option<&str>,
    ) -> Result<Outcome, ChangeError> {
        let _w = svc.writer();
        self.apply_locked(svc, loaded, desired, actor, action, removal_reason)
    }

    /// [`Runtime::apply`] for a caller that holds the service's writer lock.
    fn apply_locked(
        &self,
        svc: &Service,
        loaded: &Loaded,
        desired: Vec<Entry>,
        actor: &str,
        action: &str,
        removal_reason: Option<&str>,
    ) -> Result<Outcome, ChangeError> {
        let mut st = self.lock();
        let zone = &loaded.zone;
        let now = list::now_secs();
        // Check the whole desired list first.
        let mut seen = HashMap::new();
        for e in &desired {
            let w = check_domain(zone, &e.domain).map_err(|m| ChangeError::new(400, m))?;
            if seen.insert(w, ()).is_some() {
                return Err(ChangeError::new(
                    409,
                    format!("{} is listed twice", e.domain),
                ));
            }
            if list::parse_time(&e.added_at).is_none() {
                return Err(ChangeError::new(
                    400,
                    format!("{}: bad added_at '{}'", e.domain, e.added_at),
                ));
            }
            if let Some(x) = &e.expires {
                if list::parse_time(x).is_none() {
                    return Err(ChangeError::new(
                        400,
                        format!("{}: bad expires '{x}'", e.domain),
                    ));
                }
            }
        }
        let active = |entries: &[Entry]| -> HashMap<Vec<u8>, Entry> {
            entries
                .iter()
                .filter(|e| is_active(e, now))
                .filter_map(|e| check_domain(zone, &e.domain).ok().map(|w| (w, e.clone())))
                .collect()
        };
        let before = st.in_force.clone();
        let after = active(&desired);
        let mut added: Vec<(Vec<u8>, Entry)> = after
            .iter()
            .filter(|(k, _)| !before.contains_key(*k))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        let mut removed: Vec<(Vec<u8>, Entry)> = before
            .iter()
            .filter(|(k, _)| !after.contains_key(*k))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        added.sort_by(|a, b| a.0.cmp(&b.0));
        removed.sort_by(|a, b| a.0.cmp(&b.0));
        let list_changed = desired != st.list.entries || !added.is_empty() || !removed.is_empty();
        if !list_changed {
            return Ok(Outcome {
                serial: st.serial,
                added: vec![],
                removed: vec![],
            });
        }
        // Next snapshot: set, splice, serial.
        let serial = next_serial(st.serial);
        let mut splice = st.splice.clone();
        if let Some(signer) = &loaded.signer {
            for (w, _) in &added {
                if let Some(i) = chain_index(zone, signer, w) {
                    splice_out(signer, &mut splice, i).map_err(|m| ChangeError::new(500, m))?;
                }
            }
            for (w, _) in &removed {
                if let Some(i) = chain_index(zone, signer, w) {
                    splice_in(signer, &mut splice, i).map_err(|m| ChangeError::new(500, m))?;
                }
            }
        }
        let set = self.set_for(zone, &desired, now);
        let snap = service::make_snapshot(
            zone.clone(),
            loaded.signer.clone(),
            set,
            splice.clone(),
            serial,
        )
        .map_err(|m| ChangeError::new(500, m))?;
        // Persist, then audit, then swap.
        let new_list = ListFile {
            serial,
            entries: desired,
        };
        let text = match &self.list_path {
            Some(p) => Some(list::persist(p, &new_list).map_err(|m| ChangeError::new(500, m))?),
            None => None,
        };
        if let Some(a) = &self.audit {
            for (_, e) in &added {
                a.record(
                    actor,
                    action_name(action, true),
                    &e.domain,
                    &e.reason,
                    &e.case,
                    serial,
                );
            }
            for (_, e) in &removed {
                let why = removal_reason.unwrap_or(&e.reason);
                a.record(
                    actor,
                    action_name(action, false),
                    &e.domain,
                    why,
                    &e.case,
                    serial,
                );
            }
        }
        svc.swap(snap);
        st.list = new_list;
        st.serial = serial;
        st.splice = splice;
        st.in_force = after;
        if text.is_some() {
            st.last_text = text;
        }
        let txt = |v: &[(Vec<u8>, Entry)]| v.iter().map(|(w, _)| name::to_text(w)).collect();
        Ok(Outcome {
            serial,
            added: txt(&added),
            removed: txt(&removed),
        })
    }

    /// Add entries (all or nothing).
    pub fn add(
        &self,
        svc: &Service,
        loaded: &Loaded,
        new: Vec<Entry>,
        actor: &str,
    ) -> Result<Outcome, ChangeError> {
        // The writer lock is held from reading the list to swapping the snapshot, so a
        // concurrent hand-edit check or expiry cannot work from a list this change replaces.
        let _w = svc.writer();
        let mut desired = self.lock().list.entries.clone();
        for e in &new {
            let w = check_domain(&loaded.zone, &e.domain).map_err(|m| ChangeError::new(400, m))?;
            if e.reason.trim().is_empty() || e.case.trim().is_empty() {
                return Err(ChangeError::new(
                    400,
                    format!("{}: a reason and a case id are required", e.domain),
                ));
            }
            if let Some(x) = &e.expires {
                match list::parse_time(x) {
                    Some(t) if t > list::now_secs() => {}
                    Some(_) => {
                        return Err(ChangeError::new(
                            400,
                            format!("{}: expires {x} is in the past", e.domain),
                        ))
                    }
                    None => {
                        return Err(ChangeError::new(
                            400,
                            format!("{}: bad expires '{x}'", e.domain),
                        ))
                    }
                }
            }
            let text = name::to_text(&w);
            if desired.iter().any(|d| d.domain.eq_ignore_ascii_case(&text)) {
                return Err(ChangeError::new(
                    409,
                    format!("{text} is already suppressed"),
                ));
            }
            let mut e = e.clone();
            e.domain = text;
            desired.push(e);
        }
        self.apply_locked(svc, loaded, desired, actor, "add", None)
    }

    /// Remove entries (all or nothing); `reason` is audited.
    pub fn remove(
        &self,
        svc: &Service,
        loaded: &Loaded,
        domains: &[String],
        reason: &str,
        actor: &str,
    ) -> Result<Outcome, ChangeError> {
        if reason.trim().is_empty() {
            return Err(ChangeError::new(
                400,
                "a reason is required to lift a suppression",
            ));
        }
        let _w = svc.writer();
        let mut desired = self.lock().list.entries.clone();
        for d in domains {
            let w = check_domain(&loaded.zone, d).map_err(|m| ChangeError::new(400, m))?;
            let text = name::to_text(&w);
            let before = desired.len();
            desired.retain(|e| !e.domain.eq_ignore_ascii_case(&text));
            if desired.len() == before {
                return Err(ChangeError::new(
                    404,
                    format!("{text} is not on the suppression list"),
                ));
            }
        }
        self.apply_locked(svc, loaded, desired, actor, "remove", Some(reason))
    }

    /// Lift entries whose expiry has passed.
    pub fn expire(&self, svc: &Service, loaded: &Loaded) -> Result<Option<Outcome>, ChangeError> {
        let now = list::now_secs();
        if self.lock().list.entries.iter().all(|e| is_active(e, now)) {
            return Ok(None);
        }
        let _w = svc.writer();
        let entries = self.lock().list.entries.clone();
        let desired: Vec<Entry> = entries.into_iter().filter(|e| is_active(e, now)).collect();
        self.apply_locked(svc, loaded, desired, "belfry", "expire", Some("expired"))
            .map(Some)
    }

    /// Re-sign spliced NSEC3 records whose signatures are due, keeping list and serial.
    pub fn refresh_signatures(&self, svc: &Service, loaded: &Loaded) -> Result<usize, String> {
        let Some(signer) = &loaded.signer else {
            return Ok(0);
        };
        let _w = svc.writer();
        let mut st = self.lock();
        let due = crate::dnssec::now().saturating_add(signer.policy().refresh);
        let stale: Vec<u32> = st
            .splice
            .patched
            .iter()
            .filter(|(_, p)| p.sigs.expiration <= due)
            .map(|(&i, _)| i)
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let mut splice = st.splice.clone();
        for &i in &stale {
            let next = splice.live_after(&signer.chain, i);
            let p = signer.patch(i, next).map_err(|e| e.to_string())?;
            splice.patched.insert(i, Arc::new(p));
        }
        let set = self.set_for(&loaded.zone, &st.list.entries, list::now_secs());
        let snap = service::make_snapshot(
            loaded.zone.clone(),
            loaded.signer.clone(),
            set,
            splice.clone(),
            st.serial,
        )?;
        svc.swap(snap);
        st.splice = splice;
        Ok(stale.len())
    }

    /// Pick up a hand edit of the list file, if there is one. Errors leave the list in force.
    pub fn check_file(&self, svc: &Service, loaded: &Loaded) -> Result<Option<Outcome>, String> {
        let Some(path) = &self.list_path else {
            return Ok(None);
        };
        // Hold the writer lock from reading to applying, so an API change that
        // persists in between is not mistaken for (and undone by) a hand edit.
        let _w = svc.writer();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        if self.lock().last_text.as_deref() == Some(text.as_str()) {
            return Ok(None);
        }
        let parsed = list::parse(path, &text);
        let result = match parsed {
            Ok(l) => self
                .apply_locked(svc, loaded, l.entries, "file-edit", "edit", None)
                .map(Some)
                .map_err(|e| format!("{}: edit rejected: {}", path.display(), e.message)),
            Err(m) => Err(format!("edit rejected: {m}")),
        };
        // Whatever happened, do not re-read the same text again.
        let mut st = self.lock();
        if result.is_err() {
            st.last_text = Some(text);
            if let Some(a) = &self.audit {
                a.record(
                    "file-edit",
                    "edit-rejected",
                    "",
                    result.as_ref().err().map(|s| s.as_str()).unwrap_or(""),
                    "",
                    st.serial,
                );
            }
        }
        result
    }
}

fn action_name(action: &str, added: bool) -> &'static str {
    match (action, added) {
        ("expire", _) => "expire",
        ("edit", true) => "edit-add",
        ("edit", false) => "edit-remove",
        (_, true) => "add",
        (_, false) => "remove",
    }
}
