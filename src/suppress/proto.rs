//! The admin API's requests and answers: one set of serde types for server and client.
//!
//! The server ([`super::api`]) and the CLI ([`super::cli`]) both use these, so
//! the JSON on the wire has one definition. Domains travel as text and are
//! parsed by the server ([`super::domain`]); times travel as RFC 3339 text
//! ([`super::time`]). Nothing here does I/O.

use super::EdeKind;
use crate::publish::change::{Outcome, Suppression};
use serde::{Deserialize, Serialize};

/// Header carrying a client's own id for a request, to ask for its outcome later.
pub const REQUEST_ID_HEADER: &str = "belfry-request-id";
/// Longest request id accepted.
pub const REQUEST_ID_MAX: usize = 64;

/// Whether a client request id is acceptable: 1–64 of `[A-Za-z0-9._-]`.
pub fn request_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= REQUEST_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A suppression as the API shows it (and as `edit` compares it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryView {
    /// The domain (A-labels, absolute).
    pub domain: String,
    /// The domain in Unicode, when it is an IDN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicode: Option<String>,
    /// Why.
    pub reason: String,
    /// The registry's case id.
    pub case: String,
    /// Who added it.
    pub added_by: String,
    /// When (RFC 3339, UTC).
    pub added_at: String,
    /// When it lifts by itself (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Extended DNS Error kind.
    pub ede: EdeKind,
}

impl EntryView {
    /// The view of a suppression.
    pub fn of(s: &Suppression) -> EntryView {
        EntryView {
            domain: crate::name::to_text(&s.name),
            unicode: super::domain::unicode(&s.name),
            reason: s.reason.clone(),
            case: s.case.clone(),
            added_by: s.added_by.clone(),
            added_at: super::time::format(s.added_at),
            expires: s.expires.map(super::time::format),
            ede: s.ede,
        }
    }

    /// The suppression a view describes (domain and times parsed and checked).
    pub fn to_suppression(&self) -> Result<Suppression, String> {
        let name = super::domain::parse(&self.domain)
            .map_err(|e| format!("domain '{}': {e}", super::domain::quote(&self.domain)))?;
        let added_at = super::time::parse(&self.added_at).map_err(|e| {
            format!(
                "{}: added_at '{}': {e}",
                crate::name::to_text(&name),
                super::domain::quote(&self.added_at)
            )
        })?;
        let expires = match &self.expires {
            Some(x) => Some(super::time::parse(x).map_err(|e| {
                format!(
                    "{}: expires '{}': {e}",
                    crate::name::to_text(&name),
                    super::domain::quote(x)
                )
            })?),
            None => None,
        };
        Ok(Suppression {
            name,
            reason: self.reason.clone(),
            case: self.case.clone(),
            added_by: self.added_by.clone(),
            added_at,
            expires,
            ede: self.ede,
        })
    }
}

/// A new suppression in an add request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// Domain to suppress (text; an IDN in Unicode or as A-label).
    pub domain: String,
    /// Why.
    pub reason: String,
    /// Case id.
    pub case: String,
    /// `blocked` (default) or `censored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ede: Option<EdeKind>,
    /// When it lifts by itself (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// `POST /v1/suppressions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Who asks.
    pub actor: String,
    /// The new entries (all or nothing).
    pub entries: Vec<NewEntry>,
}

/// `POST /v1/suppressions/remove`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// Who asks.
    pub actor: String,
    /// Why (audited).
    pub reason: String,
    /// The domains to lift.
    pub domains: Vec<String>,
}

/// One step of an edit: the entry as it was when the edit started, and as it should be.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditStep {
    /// The domain.
    pub domain: String,
    /// The entry the edit started from (none: it was not listed).
    #[serde(default)]
    pub before: Option<EntryView>,
    /// The entry wanted (none: lift it).
    #[serde(default)]
    pub after: Option<EntryView>,
}

/// `POST /v1/suppressions/edit`: a delta against the list at `based_on`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// Who asks.
    pub actor: String,
    /// The serial the edit was made from (for the audit log).
    pub based_on: u32,
    /// Lifting more than the configured share of the list is intended.
    #[serde(default)]
    pub allow_mass_removal: bool,
    /// Why entries are lifted (audited).
    #[serde(default)]
    pub reason: String,
    /// The changes.
    pub steps: Vec<EditStep>,
}

/// `GET /v1/suppressions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListResponse {
    /// The serial served.
    pub serial: u32,
    /// Every entry.
    pub entries: Vec<EntryView>,
}

/// A refusal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong.
    pub error: String,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The zone.
    pub zone: String,
    /// The serial served.
    pub serial: u32,
    /// Names in the suppression set in force.
    pub suppressed: usize,
    /// Whether the zone is signed.
    pub signed: bool,
    /// Whether every RRset has its signature.
    pub fully_signed: bool,
    /// Signatures made so far.
    pub signatures_made: u64,
    /// Signing failures so far.
    pub signing_failures: u64,
    /// Delegations in the zone.
    pub delegations: usize,
    /// The id the next change will get.
    pub next_change: u64,
    /// Long work under way (`task`, `done`, `total`, `percent`, `elapsed_seconds`, `eta_seconds`).
    #[serde(default)]
    pub progress: Vec<crate::ops::progress::Report>,
    /// Zone transfers out: counters and every secondary's progress.
    #[serde(default)]
    pub transfers: crate::control::progress::TransferStatus,
    /// The serial the list file was last written at (by the background writer).
    #[serde(default)]
    pub list_file_serial: Option<u32>,
    /// Why the list file could not be written, while that lasts (it is retried
    /// every second; the journal holds the list meanwhile).
    #[serde(default)]
    pub list_file_error: Option<String>,
    /// The heap: bytes the server holds and bytes resident (absent when the
    /// allocator cannot tell).
    #[serde(default)]
    pub heap: Option<crate::ops::heap::Heap>,
}

/// What became of a change (`GET /v1/changes/<id>`, `GET /v1/requests/<request id>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeStatus {
    /// `applied`, `refused`, `pending` (still being worked on) or `unknown`.
    pub state: String,
    /// The change id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// What it did, when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Longest reason accepted, bytes.
pub const REASON_MAX: usize = 512;
/// Longest case id or actor accepted, bytes.
pub const CASE_MAX: usize = 128;

/// Check a free-text field: at most `max` bytes, no control characters.
pub fn check_field(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field}: at most {max} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field}: no control characters"));
    }
    Ok(())
}

/// `POST /v1/reload`: take the zone file again.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// Who asks (audited).
    pub actor: String,
    /// Apply even when more delegations are removed than `[zone] reload_max_removed_share` allows.
    #[serde(default)]
    pub force: bool,
}

/// One key as `GET /v1/keys` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyView {
    /// Base name of its files.
    pub base: String,
    /// Key tag.
    pub tag: u16,
    /// `ksk`, `zsk` or `csk`.
    pub role: String,
    /// Algorithm mnemonic.
    pub algorithm: String,
    /// Lifecycle state (RFC 7583; `pre-active`/`post-active` in algorithm rollovers).
    pub state: String,
    /// Its DS at the parent: `none`, `submit`, `seen`, `withdraw`, `withdrawn`.
    pub ds: String,
    /// Whether its DNSKEY is in the DNSKEY RRset being served.
    pub served: bool,
    /// What it signs now: `dnskey`, `zone`, `both` or `-`.
    pub signs: String,
    /// When it went through its states (RFC 3339, DNSSEC clock).
    pub times: std::collections::BTreeMap<String, String>,
}

/// A step to come, as `GET /v1/keys` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NextStep {
    /// `zsk`, `ksk` or `algorithm`.
    pub roll: String,
    /// What it will do.
    pub what: String,
    /// The earliest time (RFC 3339, DNSSEC clock), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<String>,
    /// What it waits for besides time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waits_for: Option<String>,
}

/// `GET /v1/keys`: the keys, the rollovers under way, what the parent must do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyStatus {
    /// The zone.
    pub zone: String,
    /// The time now on the DNSSEC clock (RFC 3339).
    pub now: String,
    /// Every key with its state.
    pub keys: Vec<KeyView>,
    /// Rollovers under way.
    pub rolls: Vec<String>,
    /// The next step of each.
    pub next: Vec<NextStep>,
    /// DS records the parent must add now (zone-file text).
    pub parent_publish: Vec<String>,
    /// DS records the parent must remove now.
    pub parent_remove: Vec<String>,
    /// The DS RRset the parent should have once it did both.
    pub parent_ds: Vec<String>,
    /// RRsets still to re-sign for the current key set.
    pub resign_left: u64,
    /// The last step refused, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `POST /v1/keys/roll`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollRequest {
    /// Who asks.
    pub actor: String,
    /// `zsk`, `ksk` or `algorithm`.
    pub kind: String,
    /// For `algorithm`: the new algorithm (`ecdsap256sha256`, `ed25519`, `rsasha256` or a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

/// `POST /v1/keys/ds-seen`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsSeenRequest {
    /// Who confirms that the parent publishes the DS RRset asked for.
    pub actor: String,
}

/// The answer to a key request: what was done, and the status after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyActionResponse {
    /// What was done.
    pub done: String,
    /// The keys after it.
    pub status: KeyStatus,
}
