//! The live suppression list (Revoke+ / EPP serverHold): names that must not resolve.
//!
//! Owns the list as operators keep it ([`list`]: entries with reason, case id,
//! author, times; the TOML file and its watcher [`watch`]; the audit log), the
//! edge where operator input becomes typed values ([`domain`], [`time`]), the
//! admin API and its client ([`api`], [`cli`], sharing [`proto`]), and the form
//! the query path reads ([`Suppressions`]: a hash set of canonical keys). A suppressed domain
//! and every name below it answer NXDOMAIN with an Extended DNS Error
//! (RFC 8914: 15 Blocked, or 16 Censored).
//!
//! The query path only does hash lookups of the query name's ancestors; the
//! set is rebuilt off the hot path and swapped in with the snapshot.

pub mod api;
pub mod audit;
pub mod cli;
pub mod domain;
pub mod ede;
pub mod list;
pub mod proto;
pub mod time;
pub mod watch;

use crate::name::Key;
use std::collections::HashMap;

/// How a suppression is reported in the Extended DNS Error (RFC 8914 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdeKind {
    /// Registry policy: info code 15 (Blocked).
    Blocked,
    /// External order: info code 16 (Censored).
    Censored,
}

impl EdeKind {
    /// The RFC 8914 info code.
    pub fn code(self) -> u16 {
        match self {
            EdeKind::Blocked => crate::wire::types::ede::BLOCKED,
            EdeKind::Censored => crate::wire::types::ede::CENSORED,
        }
    }
}

/// What the query path needs to know of one suppressed name.
#[derive(Clone, Debug)]
pub struct Effect {
    /// EDE info code.
    pub code: u16,
    /// EDE extra text.
    pub text: std::sync::Arc<str>,
}

/// A suppression that applies to a query name.
#[derive(Clone, Copy, Debug)]
pub struct Hit<'a> {
    /// EDE info code.
    pub code: u16,
    /// EDE extra text.
    pub text: &'a str,
    /// Labels of the suppressed name (its parent is the closest encloser).
    pub labels: usize,
}

/// The set of suppressed names the query path consults.
#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    by_key: HashMap<Box<[u8]>, Effect>,
}

impl Suppressions {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a name, given its canonical key.
    pub fn insert(&mut self, key: &[u8], effect: Effect) {
        self.by_key.insert(key.into(), effect);
    }

    /// Number of suppressed names.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is suppressed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether a name (by key) is itself on the list.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.by_key.contains_key(key)
    }

    /// The suppression covering a query name, if the name or an ancestor below the origin is listed.
    pub fn find(&self, key: &Key, origin_labels: usize) -> Option<Hit<'_>> {
        if self.by_key.is_empty() {
            return None;
        }
        for labels in origin_labels + 1..=key.labels() {
            if let Some(e) = self.by_key.get(key.prefix(labels)) {
                return Some(Hit {
                    code: e.code,
                    text: &e.text,
                    labels,
                });
            }
        }
        None
    }
}
