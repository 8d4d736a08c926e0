//! What can be asked of the publisher, what it answers, and how it refuses.
//!
//! Every feed (admin API, list file, expiry, zone reload, dynamic update,
//! inbound transfer, re-signing, key events) turns its input into one typed
//! [`Change`], checked at the edge: names are names, times are timestamps.
//! Only the admin API maps [`ChangeError`] to HTTP status codes.

use super::edit::RecSet;
use crate::suppress::EdeKind;
use serde::{Deserialize, Serialize};

/// The suppression list: entries by the key of their domain, in a persistent
/// map (copies share structure; see [`imbl::OrdMap`]).
pub type List = imbl::OrdMap<Vec<u8>, Suppression>;

/// One suppression (Revoke+ / serverHold) as the publisher keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The domain, lowercase uncompressed wire form.
    pub name: Vec<u8>,
    /// Why (free text).
    pub reason: String,
    /// The registry's case id.
    pub case: String,
    /// Who added it.
    pub added_by: String,
    /// When, seconds since the epoch.
    pub added_at: u64,
    /// When it lifts by itself, seconds since the epoch.
    pub expires: Option<u64>,
    /// Extended DNS Error kind.
    pub ede: EdeKind,
}

impl Suppression {
    /// Whether it is in force at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.expires.is_none_or(|t| t > now)
    }

    /// A fingerprint of every field (SHA-256 of its JSON form, first 8 bytes), to
    /// check that an entry is still what an edit started from.
    pub fn fingerprint(&self) -> u64 {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let d = ring::digest::digest(&ring::digest::SHA256, &json);
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        u64::from_be_bytes(b)
    }
}

/// One step of a list edit (a hand edit or `belfry suppress edit`): the entry the
/// editor started from and the entry wanted. Applied only if the list still holds
/// `before` (or already holds `after`); otherwise the whole edit is a conflict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStep {
    /// The domain (lowercase wire form).
    pub name: Vec<u8>,
    /// Fingerprint ([`Suppression::fingerprint`]) of the entry the edit started
    /// from; `None`: the domain was not listed.
    pub before: Option<u64>,
    /// The entry wanted; `None`: lift it.
    pub after: Option<Suppression>,
}

/// Edits of one name: each listed type's RRset is replaced (or removed when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameEdit {
    /// Lowercase uncompressed wire name.
    pub name: Vec<u8>,
    /// New RRsets by type; an RRset with no records removes that type.
    pub sets: Vec<RecSet>,
    /// Remove every RRset of the name not listed in `sets`.
    pub replace_all: bool,
}

/// Where a zone edit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EditSource {
    /// A reload of the zone file.
    Reload,
    /// An RFC 2136 dynamic update.
    Update,
    /// An inbound zone transfer.
    Transfer,
}

/// A change to the next zone version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Suppress domains (all or nothing).
    Suppress {
        /// The new entries.
        entries: Vec<Suppression>,
    },
    /// Lift suppressions (all or nothing).
    Lift {
        /// The domains (wire form).
        names: Vec<Vec<u8>>,
        /// Why (audited).
        reason: String,
    },
    /// Lift suppressions whose time has come (the scheduler asks).
    Expire {
        /// The domains (wire form).
        names: Vec<Vec<u8>>,
    },
    /// Apply an edit of the list made from an earlier version (all or nothing).
    EditList {
        /// The changed entries.
        steps: Vec<ListStep>,
        /// The serial the edit was made from (for the record).
        based_on: u32,
        /// Why entries are lifted (audited).
        reason: String,
    },
    /// Replace the whole list (a hand edit of the list file).
    ReplaceList {
        /// The list as it should be.
        entries: Vec<Suppression>,
    },
    /// Change zone data.
    Edit {
        /// What is changed.
        edits: Vec<NameEdit>,
        /// Where it comes from.
        source: EditSource,
        /// The serial the source gave (a reloaded file's, a primary's), if any.
        source_serial: Option<u32>,
        /// Apply even above the safety threshold.
        force: bool,
        /// The zone file the new source data is (for a reload).
        fingerprint: Option<super::checkpoint::Fingerprint>,
    },
    /// Re-sign RRsets whose signatures are due (the scheduler asks).
    Resign,
    /// A key event: a new key set, or re-signing for one (the key manager asks).
    Keys(super::keys::KeyChange),
    /// A zone edit ([`Change::Edit`]) together with the suppressions watch lists
    /// added to it (as journaled: a restart applies both again, the same way).
    Watched {
        /// The zone edit.
        edit: Box<Change>,
        /// Entries added to the suppression list in the same change.
        suppress: Vec<Suppression>,
    },
}

impl Change {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Suppress { .. } => "add",
            Change::Lift { .. } => "remove",
            Change::Expire { .. } => "expire",
            Change::ReplaceList { .. } | Change::EditList { .. } => "edit",
            Change::Edit { source, .. } => match source {
                EditSource::Reload => "reload",
                EditSource::Update => "update",
                EditSource::Transfer => "transfer",
            },
            Change::Resign => "resign",
            Change::Keys(_) => "keys",
            Change::Watched { edit, .. } => edit.action(),
        }
    }
}

/// What a change did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// The change's id (also in the audit log and the journal).
    pub id: u64,
    /// The serial now served.
    pub serial: u32,
    /// Domains newly suppressed (text).
    pub added: Vec<String>,
    /// Domains no longer suppressed (text).
    pub removed: Vec<String>,
    /// Names whose data changed.
    pub names_changed: usize,
    /// Signatures made for the change.
    pub signatures: usize,
    /// Notes for the operator (e.g. a suppressed domain that the new zone no longer delegates).
    pub notes: Vec<String>,
}

/// Why a change was refused. Nothing of it is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// The input is wrong (a bad name, a missing reason, ...).
    BadInput(String),
    /// A domain to lift or show is not on the list.
    NotListed(String),
    /// A domain to add is already on the list.
    AlreadyListed(String),
    /// The resulting zone would break a rule (with what and where).
    Check(String),
    /// Refused by a safety rule unless forced (e.g. too many delegations removed).
    Unsafe(String),
    /// A signature could not be made.
    Sign(String),
    /// The audit log or journal could not be written: the change is not in force.
    Storage(String),
    /// The caller's deadline passed before the change could be applied.
    TimedOut,
    /// Nothing to do (e.g. a reload of an unchanged file).
    Unchanged,
    /// An edit made from an older version meets entries changed since (which ones).
    Conflict(String),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::BadInput(m)
            | ChangeError::NotListed(m)
            | ChangeError::AlreadyListed(m)
            | ChangeError::Check(m)
            | ChangeError::Unsafe(m)
            | ChangeError::Conflict(m) => f.write_str(m),
            ChangeError::Sign(m) => write!(f, "signing failed: {m}"),
            ChangeError::Storage(m) => write!(f, "not applied: {m}"),
            ChangeError::TimedOut => f.write_str("not applied: the deadline passed first"),
            ChangeError::Unchanged => f.write_str("nothing to change"),
        }
    }
}

impl std::error::Error for ChangeError {}
