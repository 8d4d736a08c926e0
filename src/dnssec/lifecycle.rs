//! Key lifecycles and rollovers: key states, their timings, and the next step.
//!
//! Every key of a zone has a state (RFC 7583 §3.1: generated, published,
//! ready, active, retired, removed; plus, as Knot DNS does, *pre-active* and
//! *post-active* for the algorithm rollover of RFC 6781 §4.1.4: signing while
//! its DNSKEY is not, or no longer, published) and, for a KSK, the state of its
//! DS record at the parent. The states say which DNSKEYs are served and which
//! keys sign what ([`KeyRecord::published`], [`KeyRecord::signs_zone`],
//! [`KeyRecord::signs_dnskey`]).
//!
//! [`plan`] looks at the states, the time and a few facts about the served
//! zone and returns the next step of the rollovers under way, with the
//! earliest time of every step still to come:
//! - ZSK pre-publish (RFC 6781 §4.1.1.1, RFC 7583 §3.2.1), started by the
//!   key's lifetime or the operator;
//! - KSK double-signature ("double-KSK", RFC 6781 §4.1.2, RFC 7583 §3.3.2)
//!   or double-DS (RFC 7583 §3.3.1), started by the operator, with the parent's
//!   DS change confirmed by the operator ([`ds_seen`]);
//! - algorithm rollover (RFC 6781 §4.1.4, the conservative order): new
//!   signatures first, then the new DNSKEYs, the DS, and the reverse on the way out.
//!
//! Waits follow RFC 7583: a new DNSKEY is trusted once it reached every
//! secondary and every cached copy of the old RRset expired (propagation delay
//! plus DNSKEY TTL); a retired ZSK goes once no served RRset carries its
//! signature and cached copies expired (plus the zone's largest TTL, or once
//! every signature it made has expired); a parent DS change is trusted after
//! the parent's propagation delay and DS TTL.
//!
//! Pure functions of their inputs: no clock, no files, no zone. The key
//! manager (`crate::keys::manager`) feeds them and carries the steps out.

use super::key::KeyRole;
use serde::{Deserialize, Serialize};

/// The state of a key (RFC 7583 §3.1, with pre-/post-active for algorithm rollovers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Made, not used.
    Generated,
    /// Signing, DNSKEY not published yet (algorithm rollover: new signatures first).
    PreActive,
    /// DNSKEY published, not yet known to every cache (a KSK signs DNSKEY from here on).
    Published,
    /// DNSKEY published and known everywhere.
    Ready,
    /// Published and signing.
    Active,
    /// Published, no longer signing; its signatures may still be cached.
    Retired,
    /// Signing, DNSKEY no longer published (algorithm rollover: signatures go last).
    PostActive,
    /// Neither published nor signing.
    Removed,
}

impl KeyState {
    /// Every state, in lifecycle order.
    pub const ALL: [KeyState; 8] = [
        KeyState::Generated,
        KeyState::PreActive,
        KeyState::Published,
        KeyState::Ready,
        KeyState::Active,
        KeyState::Retired,
        KeyState::PostActive,
        KeyState::Removed,
    ];

    /// The name in files and the API.
    pub fn name(self) -> &'static str {
        match self {
            KeyState::Generated => "generated",
            KeyState::PreActive => "pre-active",
            KeyState::Published => "published",
            KeyState::Ready => "ready",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::PostActive => "post-active",
            KeyState::Removed => "removed",
        }
    }

    /// From [`KeyState::name`].
    pub fn from_name(s: &str) -> Option<KeyState> {
        KeyState::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether the key's DNSKEY is in the served DNSKEY RRset.
    pub fn published(self) -> bool {
        matches!(
            self,
            KeyState::Published | KeyState::Ready | KeyState::Active | KeyState::Retired
        )
    }
}

/// Where a KSK's DS record stands at the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DsState {
    /// Not at the parent, and not wanted there.
    None,
    /// The parent must publish it (the operator confirms with `ds-seen`).
    Submit,
    /// The parent publishes it (confirmed).
    Seen,
    /// The parent must remove it (the operator confirms with `ds-seen`).
    Withdraw,
    /// Removed from the parent (confirmed).
    Withdrawn,
}

impl DsState {
    /// The name in files and the API.
    pub fn name(self) -> &'static str {
        match self {
            DsState::None => "none",
            DsState::Submit => "submit",
            DsState::Seen => "seen",
            DsState::Withdraw => "withdraw",
            DsState::Withdrawn => "withdrawn",
        }
    }

    /// From [`DsState::name`].
    pub fn from_name(s: &str) -> Option<DsState> {
        [
            DsState::None,
            DsState::Submit,
            DsState::Seen,
            DsState::Withdraw,
            DsState::Withdrawn,
        ]
        .into_iter()
        .find(|d| d.name() == s)
    }

    /// Whether the parent is known to publish it (so validators may use it).
    pub fn trusted(self) -> bool {
        matches!(self, DsState::Seen | DsState::Withdraw)
    }

    /// Whether the parent should publish it (what `belfry ds` and CDS list).
    pub fn wanted(self) -> bool {
        matches!(self, DsState::Submit | DsState::Seen)
    }
}

/// When a key went through its states (seconds since the epoch, DNSSEC clock).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTimes {
    /// Made.
    pub created: Option<u64>,
    /// DNSKEY first published.
    pub published: Option<u64>,
    /// DNSKEY known to every cache.
    pub ready: Option<u64>,
    /// Started signing (or, before, pre-active from).
    pub active: Option<u64>,
    /// Stopped being active (retired, post-active).
    pub retired: Option<u64>,
    /// Removed.
    pub removed: Option<u64>,
    /// Since when every served RRset carries a signature by it (a signing key).
    pub covered: Option<u64>,
    /// Since when no served RRset carries a signature by it (a key that stopped signing).
    pub unused: Option<u64>,
    /// The parent was asked to publish its DS.
    pub ds_submit: Option<u64>,
    /// The parent's publication of its DS was confirmed.
    pub ds_seen: Option<u64>,
    /// The parent was asked to remove its DS.
    pub ds_withdraw: Option<u64>,
    /// The parent's removal of its DS was confirmed.
    pub ds_withdrawn: Option<u64>,
}

/// One key of a zone as the lifecycle sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// `K<zone>+<alg>+<tag>`: the base name of its files.
    pub base: String,
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// KSK, ZSK or CSK.
    pub role: KeyRole,
    /// DNSKEY RDATA.
    pub dnskey: Vec<u8>,
    /// The state.
    pub state: KeyState,
    /// Its DS at the parent (KSKs and CSKs).
    pub ds: DsState,
    /// When it went through its states.
    pub times: KeyTimes,
}

impl KeyRecord {
    /// A KSK or CSK (signs the DNSKEY RRset when in use).
    pub fn is_ksk(&self) -> bool {
        self.role != KeyRole::Zsk
    }

    /// A ZSK or CSK (signs the other RRsets when in use).
    pub fn is_zsk(&self) -> bool {
        self.role != KeyRole::Ksk
    }

    /// Whether its DNSKEY is served.
    pub fn published(&self) -> bool {
        self.state.published()
    }

    /// Whether it signs the DNSKEY RRset (and CDS/CDNSKEY).
    pub fn signs_dnskey(&self) -> bool {
        self.is_ksk()
            && matches!(
                self.state,
                KeyState::PreActive
                    | KeyState::Published
                    | KeyState::Ready
                    | KeyState::Active
                    | KeyState::PostActive
            )
    }

    /// Whether it signs the zone's other RRsets.
    pub fn signs_zone(&self) -> bool {
        self.is_zsk()
            && matches!(
                self.state,
                KeyState::PreActive | KeyState::Active | KeyState::PostActive
            )
    }

    /// Whether it signs anything.
    pub fn signs(&self) -> bool {
        self.signs_dnskey() || self.signs_zone()
    }

    /// What the served zone depends on: (published, signs DNSKEY, signs zone).
    pub fn zone_view(&self) -> (bool, bool, bool) {
        (self.published(), self.signs_dnskey(), self.signs_zone())
    }

    /// A short description: `ZSK 12345 (ECDSAP256SHA256)`.
    pub fn label(&self) -> String {
        let alg = super::key::Algorithm::from_number(self.algorithm)
            .map(|a| a.name().to_string())
            .unwrap_or_else(|| self.algorithm.to_string());
        format!(
            "{} {} ({alg})",
            self.role.name().to_ascii_uppercase(),
            self.tag
        )
    }
}

/// A whole key set: what a key change publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// Every key of the zone with its state.
    pub records: Vec<KeyRecord>,
    /// TTL of the CDS and CDNSKEY RRsets (RFC 7344), when they are published.
    pub cds_ttl: Option<u32>,
}

impl KeySet {
    /// The KSKs whose DS the parent should publish (CDS/CDNSKEY content, `belfry ds`).
    pub fn cds_keys(&self) -> impl Iterator<Item = &KeyRecord> {
        self.records
            .iter()
            .filter(|k| k.is_ksk() && k.ds.wanted() && k.state != KeyState::Generated)
            .chain(
                // Double-DS: a new KSK's DS is published before its DNSKEY.
                self.records
                    .iter()
                    .filter(|k| k.is_ksk() && k.ds.wanted() && k.state == KeyState::Generated),
            )
    }

    /// Whether two key sets serve the same zone (same DNSKEYs, same signers, same CDS).
    pub fn same_zone(&self, other: &KeySet) -> bool {
        let view = |s: &KeySet| {
            let mut v: Vec<(u16, u8, (bool, bool, bool))> = s
                .records
                .iter()
                .map(|k| (k.tag, k.algorithm, k.zone_view()))
                .filter(|(_, _, z)| *z != (false, false, false))
                .collect();
            v.sort();
            let mut c: Vec<u16> = s.cds_keys().map(|k| k.tag).collect();
            c.sort();
            (v, if s.cds_ttl.is_some() { Some(c) } else { None })
        };
        view(self) == view(other)
    }
}

/// How a KSK is rolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KskMethod {
    /// New KSK published and signing DNSKEY first, then the DS is replaced (RFC 6781 §4.1.2).
    DoubleKsk,
    /// New DS published first, then the KSKs are swapped, then the old DS goes (RFC 7583 §3.3.1).
    DoubleDs,
}

/// The delays a rollover waits for (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Until a change reached every secondary (Dprp, RFC 7583 §3.2.1).
    pub propagation: u64,
    /// The DNSKEY TTL.
    pub dnskey_ttl: u64,
    /// The largest TTL of any signed RRset of the zone (NSEC3 included).
    pub zone_max_ttl: u64,
    /// Signature validity (plus its jitter): no signature outlives it.
    pub validity: u64,
    /// The parent's DS TTL.
    pub parent_ds_ttl: u64,
    /// Until a change at the parent reached all its servers.
    pub parent_propagation: u64,
    /// A ZSK's active life before it is rolled (0: never automatically).
    pub zsk_lifetime: u64,
    /// How KSKs are rolled.
    pub ksk_method: KskMethod,
}

impl Timing {
    /// From publication until the new DNSKEY RRset is in every cache.
    pub fn dnskey_wait(&self) -> u64 {
        self.propagation + self.dnskey_ttl
    }

    /// From a change of the zone's signatures until no cache holds the old ones.
    pub fn zone_wait(&self) -> u64 {
        self.propagation + self.zone_max_ttl
    }

    /// From a confirmed change of the parent's DS until no cache holds the old DS RRset.
    pub fn ds_wait(&self) -> u64 {
        self.parent_propagation + self.parent_ds_ttl
    }
}

/// Facts about the served zone the plan needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The time now.
    pub now: u64,
    /// RRsets still waiting to be signed (or cleaned) for the current key set.
    pub resign_left: u64,
}

/// A rollover under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Roll {
    /// ZSK pre-publish.
    Zsk,
    /// KSK rollover.
    Ksk,
    /// Algorithm rollover.
    Algorithm,
}

/// What the manager should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due.
    Wait,
    /// Make a new key of this role and algorithm first (then plan again).
    Generate {
        /// The role.
        role: KeyRole,
        /// The algorithm number.
        algorithm: u8,
    },
    /// Move the keys to these states.
    Step(Step),
}

/// One step of a rollover: the key states after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Every key with its new state.
    pub records: Vec<KeyRecord>,
    /// What the step does, for logs and the audit.
    pub what: String,
}

/// A step still to come, for `belfry key status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upcoming {
    /// The rollover it belongs to.
    pub roll: Roll,
    /// What it will do.
    pub what: String,
    /// The earliest time it can happen, if known now.
    pub earliest: Option<u64>,
    /// What it waits for besides time (the operator, the parent, re-signing).
    pub waits_for: Option<String>,
}

/// The plan: the action due now and everything known to come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// What to do now.
    pub action: Action,
    /// Rollovers under way.
    pub rolls: Vec<Roll>,
    /// Steps to come (the first of each rollover).
    pub upcoming: Vec<Upcoming>,
}

fn update(keys: &[KeyRecord], tag: u16, f: impl Fn(&mut KeyRecord)) -> Vec<KeyRecord> {
    let mut v = keys.to_vec();
    for k in v.iter_mut().filter(|k| k.tag == tag) {
        f(k);
    }
    v
}

fn later(a: Option<u64>, wait: u64) -> Option<u64> {
    a.map(|t| t.saturating_add(wait))
}

/// The rollovers under way.
pub fn rolls(keys: &[KeyRecord]) -> Vec<Roll> {
    let mut out = Vec::new();
    let active_algs: std::collections::BTreeSet<u8> = keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .map(|k| k.algorithm)
        .collect();
    let alg = keys
        .iter()
        .any(|k| matches!(k.state, KeyState::PreActive | KeyState::PostActive))
        || active_algs.len() > 1;
    if alg {
        return vec![Roll::Algorithm];
    }
    let ksk = keys.iter().any(|k| {
        k.is_ksk()
            && (matches!(k.state, KeyState::Published | KeyState::Ready)
                || (k.state == KeyState::Generated && k.ds.wanted())
                || k.ds == DsState::Withdraw
                || (k.state == KeyState::Removed && k.ds == DsState::Seen))
    });
    if ksk {
        out.push(Roll::Ksk);
    }
    let zsk = keys.iter().any(|k| {
        k.role == KeyRole::Zsk
            && matches!(
                k.state,
                KeyState::Published | KeyState::Ready | KeyState::Retired
            )
    });
    if zsk {
        out.push(Roll::Zsk);
    }
    out
}

/// The next step of the rollovers under way (and the automatic ZSK rollover).
pub fn plan(keys: &[KeyRecord], t: &Timing, f: &Facts) -> Plan {
    let rolls = rolls(keys);
    let mut upcoming = Vec::new();
    let mut due: Option<Action> = None;
    let mut offer = |u: Upcoming, step: Option<Action>, due: &mut Option<Action>| {
        let ready = u.waits_for.is_none() && u.earliest.is_some_and(|e| e <= f.now);
        if ready && due.is_none() {
            *due = step;
        }
        upcoming.push(u);
    };
    if rolls.contains(&Roll::Algorithm) {
        let (u, s) = algorithm_step(keys, t, f);
        offer(u, s, &mut due);
    } else {
        if rolls.contains(&Roll::Ksk) {
            let (u, s) = ksk_step(keys, t, f);
            offer(u, s, &mut due);
        }
        let (u, s) = zsk_step(keys, t, f, rolls.contains(&Roll::Zsk));
        if let Some(u) = u {
            offer(u, s, &mut due);
        }
    }
    Plan {
        action: due.unwrap_or(Action::Wait),
        rolls,
        upcoming,
    }
}

fn resign_wait(f: &Facts) -> Option<String> {
    (f.resign_left > 0).then(|| format!("re-signing ({} RRsets left)", f.resign_left))
}

/// The ZSK pre-publish rollover (RFC 7583 §3.2.1); `None` when nothing is planned.
fn zsk_step(
    keys: &[KeyRecord],
    t: &Timing,
    f: &Facts,
    under_way: bool,
) -> (Option<Upcoming>, Option<Action>) {
    let zsks = |s: KeyState| {
        keys.iter()
            .filter(move |k| k.role == KeyRole::Zsk && k.state == s)
    };
    let now = f.now;
    if let Some(old) = zsks(KeyState::Retired).next() {
        // Removal: no served RRset carries its signature any more, and no cache can.
        let earliest = old.times.unused.map(|u| {
            let by_ttl = u + t.zone_wait();
            let by_expiry = old.times.retired.unwrap_or(u) + t.validity + t.propagation;
            by_ttl.min(by_expiry.max(u))
        });
        let waits_for = if old.times.unused.is_none() {
            Some(resign_wait(f).unwrap_or_else(|| "re-signing".into()))
        } else {
            None
        };
        let step = Step {
            records: update(keys, old.tag, |k| {
                k.state = KeyState::Removed;
                k.times.removed = Some(now);
            }),
            what: format!(
                "remove {}: no cache can hold its signatures any more",
                old.label()
            ),
        };
        return (
            Some(Upcoming {
                roll: Roll::Zsk,
                what: format!("remove {} from the DNSKEY RRset", old.label()),
                earliest,
                waits_for,
            }),
            Some(Action::Step(step)),
        );
    }
    let incoming = zsks(KeyState::Published)
        .chain(zsks(KeyState::Ready))
        .next()
        .cloned();
    if let Some(new) = incoming {
        let ready = later(new.times.published, t.dnskey_wait());
        let old: Vec<u16> = zsks(KeyState::Active).map(|k| k.tag).collect();
        let mut records = keys.to_vec();
        for k in records.iter_mut() {
            if k.tag == new.tag {
                k.state = KeyState::Active;
                k.times.ready = ready;
                k.times.active = Some(now);
                k.times.covered = None;
            } else if old.contains(&k.tag) {
                k.state = KeyState::Retired;
                k.times.retired = Some(now);
                k.times.unused = None;
            }
        }
        return (
            Some(Upcoming {
                roll: Roll::Zsk,
                what: format!("sign with {} (its DNSKEY is in every cache)", new.label()),
                earliest: ready,
                waits_for: None,
            }),
            Some(Action::Step(Step {
                records,
                what: format!("{} signs from now on; the old ZSK retires", new.label()),
            })),
        );
    }
    if under_way || t.zsk_lifetime == 0 {
        return (None, None);
    }
    // The automatic start: one active ZSK whose lifetime is ending.
    let mut active = zsks(KeyState::Active);
    let (Some(cur), None) = (active.next(), active.next()) else {
        return (None, None);
    };
    let start = cur
        .times
        .active
        .map(|a| (a + t.zsk_lifetime).saturating_sub(t.dnskey_wait()));
    let spare = keys.iter().find(|k| {
        k.role == KeyRole::Zsk
            && k.algorithm == cur.algorithm
            && k.state == KeyState::Generated
            && k.times.published.is_none()
    });
    let action = match spare {
        None => Action::Generate {
            role: KeyRole::Zsk,
            algorithm: cur.algorithm,
        },
        Some(s) => Action::Step(Step {
            records: update(keys, s.tag, |k| {
                k.state = KeyState::Published;
                k.times.published = Some(now);
            }),
            what: format!(
                "publish {} ahead of the rollover of ZSK {}",
                s.label(),
                cur.tag
            ),
        }),
    };
    (
        Some(Upcoming {
            roll: Roll::Zsk,
            what: format!("start the rollover of {} (lifetime)", cur.label()),
            earliest: start,
            waits_for: None,
        }),
        Some(action),
    )
}

/// The KSK rollover under way (double-KSK or double-DS, by the keys' states).
fn ksk_step(keys: &[KeyRecord], t: &Timing, f: &Facts) -> (Upcoming, Option<Action>) {
    let now = f.now;
    let ksk = |p: &dyn Fn(&KeyRecord) -> bool| -> std::vec::IntoIter<KeyRecord> {
        keys.iter()
            .filter(|k| k.is_ksk() && p(k))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
    };
    let current: Vec<KeyRecord> = ksk(&|k| k.state == KeyState::Active).collect();
    let operator = |what: &str| Some(format!("the operator: {what}, then `belfry key ds-seen`"));
    // Double-KSK: a new KSK published and signing DNSKEY.
    if let Some(new) = ksk(&|k| k.state == KeyState::Published).next() {
        let earliest = later(new.times.published, t.dnskey_wait());
        let records = keys
            .iter()
            .cloned()
            .map(|mut k| {
                if k.tag == new.tag {
                    k.state = KeyState::Ready;
                    k.times.ready = Some(now);
                    k.ds = DsState::Submit;
                    k.times.ds_submit = Some(now);
                } else if current.iter().any(|c| c.tag == k.tag) {
                    k.ds = DsState::Withdraw;
                    k.times.ds_withdraw = Some(now);
                }
                k
            })
            .collect();
        return (
            Upcoming {
                roll: Roll::Ksk,
                what: format!(
                    "ask the parent to replace the DS by one for {}",
                    new.label()
                ),
                earliest,
                waits_for: None,
            },
            Some(Action::Step(Step {
                records,
                what: format!(
                    "{} is in every cache: the parent may now publish its DS",
                    new.label()
                ),
            })),
        );
    }
    if let Some(new) = ksk(&|k| k.state == KeyState::Ready).next() {
        if new.ds == DsState::Submit {
            return (
                Upcoming {
                    roll: Roll::Ksk,
                    what: format!("the parent publishes the DS of {}", new.label()),
                    earliest: new.times.ds_submit,
                    waits_for: operator("publish the DS at the parent (`belfry key status`)"),
                },
                None,
            );
        }
        let earliest = later(new.times.ds_seen, t.ds_wait());
        let records = keys
            .iter()
            .cloned()
            .map(|mut k| {
                if k.tag == new.tag {
                    k.state = KeyState::Active;
                    k.times.active = Some(now);
                } else if current.iter().any(|c| c.tag == k.tag) {
                    k.state = KeyState::Removed;
                    k.times.retired = Some(now);
                    k.times.removed = Some(now);
                }
                k
            })
            .collect();
        return (
            Upcoming {
                roll: Roll::Ksk,
                what: format!(
                    "remove the old KSK: {} alone signs the DNSKEY RRset",
                    new.label()
                ),
                earliest,
                waits_for: None,
            },
            Some(Action::Step(Step {
                records,
                what: format!(
                    "the old DS is in no cache any more: {} alone signs DNSKEY",
                    new.label()
                ),
            })),
        );
    }
    // Double-DS: the new DS first, the keys swapped, the old DS last.
    if let Some(new) = ksk(&|k| k.state == KeyState::Generated && k.ds.wanted()).next() {
        if new.ds == DsState::Submit {
            return (
                Upcoming {
                    roll: Roll::Ksk,
                    what: format!("the parent adds the DS of {}", new.label()),
                    earliest: new.times.ds_submit,
                    waits_for: operator("add the DS at the parent, keeping the old one"),
                },
                None,
            );
        }
        let earliest = later(new.times.ds_seen, t.ds_wait());
        let records = keys
            .iter()
            .cloned()
            .map(|mut k| {
                if k.tag == new.tag {
                    k.state = KeyState::Active;
                    k.times.published = Some(now);
                    k.times.ready = Some(now);
                    k.times.active = Some(now);
                    k.times.covered = None;
                } else if current.iter().any(|c| c.tag == k.tag) {
                    k.state = KeyState::Removed;
                    k.times.retired = Some(now);
                    k.times.removed = Some(now);
                }
                k
            })
            .collect();
        return (
            Upcoming {
                roll: Roll::Ksk,
                what: format!("swap the KSKs: {} signs DNSKEY", new.label()),
                earliest,
                waits_for: None,
            },
            Some(Action::Step(Step {
                records,
                what: format!(
                    "both DS are in every cache: swap the KSKs to {}",
                    new.label()
                ),
            })),
        );
    }
    if let Some(old) = ksk(&|k| k.state == KeyState::Removed && k.ds == DsState::Seen).next() {
        let earliest = later(old.times.removed, t.dnskey_wait());
        return (
            Upcoming {
                roll: Roll::Ksk,
                what: format!("ask the parent to remove the DS of {}", old.label()),
                earliest,
                waits_for: None,
            },
            Some(Action::Step(Step {
                records: update(keys, old.tag, |k| {
                    k.ds = DsState::Withdraw;
                    k.times.ds_withdraw = Some(now);
                }),
                what: format!(
                    "the old DNSKEY RRset is in no cache: the parent may remove the DS of {}",
                    old.label()
                ),
            })),
        );
    }
    let old = ksk(&|k| k.ds == DsState::Withdraw).next();
    (
        Upcoming {
            roll: Roll::Ksk,
            what: match &old {
                Some(o) => format!("the parent removes the DS of {}", o.label()),
                None => "finish the KSK rollover".into(),
            },
            earliest: old.as_ref().and_then(|o| o.times.ds_withdraw),
            waits_for: operator("remove the old DS at the parent"),
        },
        None,
    )
}

/// The algorithm rollover under way (RFC 6781 §4.1.4).
fn algorithm_step(keys: &[KeyRecord], t: &Timing, f: &Facts) -> (Upcoming, Option<Action>) {
    let now = f.now;
    let pre: Vec<KeyRecord> = keys
        .iter()
        .filter(|k| k.state == KeyState::PreActive)
        .cloned()
        .collect();
    let post: Vec<KeyRecord> = keys
        .iter()
        .filter(|k| k.state == KeyState::PostActive)
        .cloned()
        .collect();
    let set = |tags: &[u16], f: &dyn Fn(&mut KeyRecord)| -> Vec<KeyRecord> {
        keys.iter()
            .cloned()
            .map(|mut k| {
                if tags.contains(&k.tag) {
                    f(&mut k);
                }
                k
            })
            .collect()
    };
    let up = |what: String, earliest: Option<u64>, waits_for: Option<String>| Upcoming {
        roll: Roll::Algorithm,
        what,
        earliest,
        waits_for,
    };
    // 1. New signatures everywhere, then (after the zone's TTL) the new DNSKEYs.
    if !pre.is_empty() {
        let covered = pre
            .iter()
            .map(|k| k.times.covered)
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().max());
        let waits_for = if covered.is_none() || f.resign_left > 0 {
            Some(resign_wait(f).unwrap_or_else(|| "re-signing".into()))
        } else {
            None
        };
        let tags: Vec<u16> = pre.iter().map(|k| k.tag).collect();
        let step = Step {
            records: set(&tags, &|k| {
                k.state = KeyState::Active;
                k.times.published = Some(now);
            }),
            what: "every cached RRset carries signatures of the new algorithm: publish its DNSKEYs"
                .into(),
        };
        return (
            up(
                "publish the DNSKEYs of the new algorithm".into(),
                later(covered, t.zone_wait()),
                waits_for,
            ),
            Some(Action::Step(step)),
        );
    }
    // 4. The old keys stop signing once the old DNSKEY RRset left every cache.
    if !post.is_empty() {
        let since = post.iter().filter_map(|k| k.times.retired).max();
        let tags: Vec<u16> = post.iter().map(|k| k.tag).collect();
        return (
            up(
                "stop signing with the old algorithm".into(),
                later(since, t.dnskey_wait()),
                None,
            ),
            Some(Action::Step(Step {
                records: set(&tags, &|k| {
                    k.state = KeyState::Removed;
                    k.times.removed = Some(now);
                    k.times.unused = None;
                }),
                what: "the old DNSKEYs are in no cache: stop signing with the old algorithm".into(),
            })),
        );
    }
    // Both algorithms active: which is new? The one whose KSK's DS is not trusted yet,
    // or, once it is, the one that was published last.
    let active: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .collect();
    let newest_alg = active
        .iter()
        .max_by_key(|k| k.times.published.unwrap_or(0))
        .map(|k| k.algorithm);
    let Some(new_alg) = newest_alg else {
        return (up("finish the algorithm rollover".into(), None, None), None);
    };
    let new_ksks: Vec<&&KeyRecord> = active
        .iter()
        .filter(|k| k.algorithm == new_alg && k.is_ksk())
        .collect();
    let old: Vec<u16> = active
        .iter()
        .filter(|k| k.algorithm != new_alg)
        .map(|k| k.tag)
        .collect();
    let old_ksks: Vec<u16> = active
        .iter()
        .filter(|k| k.algorithm != new_alg && k.is_ksk())
        .map(|k| k.tag)
        .collect();
    // 2. The new DNSKEYs in every cache: the parent replaces the DS.
    if new_ksks.iter().all(|k| k.ds == DsState::None) {
        let published = new_ksks.iter().filter_map(|k| k.times.published).max();
        let new_tags: Vec<u16> = new_ksks.iter().map(|k| k.tag).collect();
        let records = keys
            .iter()
            .cloned()
            .map(|mut k| {
                if new_tags.contains(&k.tag) {
                    k.ds = DsState::Submit;
                    k.times.ds_submit = Some(now);
                    k.times.ready = Some(now);
                } else if old_ksks.contains(&k.tag) {
                    k.ds = DsState::Withdraw;
                    k.times.ds_withdraw = Some(now);
                }
                if k.algorithm == new_alg && k.state == KeyState::Active && k.is_zsk() {
                    k.times.ready = Some(now);
                }
                k
            })
            .collect();
        return (
            up(
                "ask the parent to replace the DS by the new algorithm's".into(),
                later(published, t.dnskey_wait()),
                None,
            ),
            Some(Action::Step(Step {
                records,
                what: "the new DNSKEYs are in every cache: the parent may replace the DS".into(),
            })),
        );
    }
    if new_ksks.iter().any(|k| k.ds == DsState::Submit) {
        return (
            up(
                "the parent replaces the DS by the new algorithm's".into(),
                new_ksks.iter().filter_map(|k| k.times.ds_submit).max(),
                Some(
                    "the operator: replace the DS at the parent (`belfry key status`), then \
                     `belfry key ds-seen`"
                        .into(),
                ),
            ),
            None,
        );
    }
    // 3. The new DS in every cache: the old DNSKEYs go (their signatures stay a while).
    let seen = new_ksks.iter().filter_map(|k| k.times.ds_seen).max();
    (
        up(
            "remove the old algorithm's DNSKEYs".into(),
            later(seen, t.ds_wait()),
            None,
        ),
        Some(Action::Step(Step {
            records: set(&old, &|k| {
                k.state = KeyState::PostActive;
                k.times.retired = Some(now);
                k.times.unused = None;
            }),
            what: "the old DS is in no cache: remove the old algorithm's DNSKEYs".into(),
        })),
    )
}

/// What an operator may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollRequest {
    /// Roll the ZSK now.
    Zsk,
    /// Roll the KSK (with the configured method).
    Ksk,
    /// Roll every key to another algorithm (number).
    Algorithm(u8),
}

/// What starting a rollover needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// A new key of this role and algorithm (then ask again).
    Need(KeyRole, u8),
    /// The first step.
    Step(Step),
}

fn spare(keys: &[KeyRecord], role: KeyRole, alg: u8) -> Option<&KeyRecord> {
    keys.iter().find(|k| {
        k.role == role
            && k.algorithm == alg
            && k.state == KeyState::Generated
            && k.ds == DsState::None
            && k.times.published.is_none()
    })
}

/// Start a rollover the operator asked for; refused with the reason when it cannot start.
pub fn start(keys: &[KeyRecord], req: RollRequest, t: &Timing, now: u64) -> Result<Start, String> {
    let under_way = rolls(keys);
    let active = |p: &dyn Fn(&KeyRecord) -> bool| -> std::vec::IntoIter<&KeyRecord> {
        keys.iter()
            .filter(|k| k.state == KeyState::Active && p(k))
            .collect::<Vec<_>>()
            .into_iter()
    };
    if active(&|k| k.role == KeyRole::Csk).next().is_some() {
        return Err(
            "the zone is signed with a combined signing key (CSK); rolling a CSK is \
                    not supported: roll to a KSK and a ZSK with an algorithm rollover first"
                .into(),
        );
    }
    if under_way.contains(&Roll::Algorithm) {
        return Err(
            "an algorithm rollover is under way; `belfry key status` shows its next step".into(),
        );
    }
    match req {
        RollRequest::Zsk => {
            if under_way.contains(&Roll::Zsk) {
                return Err("a ZSK rollover is already under way".into());
            }
            let cur: Vec<&KeyRecord> = active(&|k| k.role == KeyRole::Zsk).collect();
            let [cur] = cur.as_slice() else {
                return Err(format!(
                    "a ZSK rollover needs exactly one active ZSK, not {}",
                    cur.len()
                ));
            };
            match spare(keys, KeyRole::Zsk, cur.algorithm) {
                None => Ok(Start::Need(KeyRole::Zsk, cur.algorithm)),
                Some(s) => Ok(Start::Step(Step {
                    records: update(keys, s.tag, |k| {
                        k.state = KeyState::Published;
                        k.times.published = Some(now);
                    }),
                    what: format!("publish {} (ZSK rollover asked by the operator)", s.label()),
                })),
            }
        }
        RollRequest::Ksk => {
            if under_way.contains(&Roll::Ksk) {
                return Err("a KSK rollover is already under way".into());
            }
            let cur: Vec<&KeyRecord> = active(&|k| k.role == KeyRole::Ksk).collect();
            let [cur] = cur.as_slice() else {
                return Err(format!(
                    "a KSK rollover needs exactly one active KSK, not {}",
                    cur.len()
                ));
            };
            if !cur.ds.trusted() {
                return Err(format!(
                    "the parent is not known to publish the DS of {} (DS state {}): confirm it first",
                    cur.label(),
                    cur.ds.name()
                ));
            }
            let Some(s) = spare(keys, KeyRole::Ksk, cur.algorithm) else {
                return Ok(Start::Need(KeyRole::Ksk, cur.algorithm));
            };
            let step = match t.ksk_method {
                KskMethod::DoubleKsk => Step {
                    records: update(keys, s.tag, |k| {
                        k.state = KeyState::Published;
                        k.times.published = Some(now);
                    }),
                    what: format!(
                        "publish {}: it signs the DNSKEY RRset beside the old KSK (double-KSK)",
                        s.label()
                    ),
                },
                KskMethod::DoubleDs => Step {
                    records: update(keys, s.tag, |k| {
                        k.ds = DsState::Submit;
                        k.times.ds_submit = Some(now);
                    }),
                    what: format!("ask the parent to add the DS of {} (double-DS)", s.label()),
                },
            };
            Ok(Start::Step(step))
        }
        RollRequest::Algorithm(alg) => {
            if !under_way.is_empty() {
                return Err("finish the rollover under way first (`belfry key status`)".into());
            }
            let ksks: Vec<&KeyRecord> = active(&|k| k.role == KeyRole::Ksk).collect();
            let zsks: Vec<&KeyRecord> = active(&|k| k.role == KeyRole::Zsk).collect();
            let (Some(k), Some(z)) = (ksks.first(), zsks.first()) else {
                return Err("an algorithm rollover needs an active KSK and an active ZSK".into());
            };
            if ksks.len() != 1 || zsks.len() != 1 {
                return Err(
                    "an algorithm rollover needs exactly one active KSK and one active ZSK".into(),
                );
            }
            if k.algorithm == alg || z.algorithm == alg {
                return Err(format!("the keys already use algorithm {alg}"));
            }
            if !k.ds.trusted() {
                return Err(format!(
                    "the parent is not known to publish the DS of {}: confirm it first",
                    k.label()
                ));
            }
            let Some(nk) = spare(keys, KeyRole::Ksk, alg) else {
                return Ok(Start::Need(KeyRole::Ksk, alg));
            };
            let Some(nz) = spare(keys, KeyRole::Zsk, alg) else {
                return Ok(Start::Need(KeyRole::Zsk, alg));
            };
            let tags = [nk.tag, nz.tag];
            let records = keys
                .iter()
                .cloned()
                .map(|mut k| {
                    if tags.contains(&k.tag) {
                        k.state = KeyState::PreActive;
                        k.times.active = Some(now);
                        k.times.covered = None;
                    }
                    k
                })
                .collect();
            Ok(Start::Step(Step {
                records,
                what: format!(
                    "sign with {} and {} beside the old keys, DNSKEYs not yet published (algorithm rollover)",
                    nk.label(),
                    nz.label()
                ),
            }))
        }
    }
}

/// The operator confirms that the parent now publishes the DS set asked for.
pub fn ds_seen(keys: &[KeyRecord], now: u64) -> Result<Step, String> {
    let pending: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| matches!(k.ds, DsState::Submit | DsState::Withdraw))
        .collect();
    if pending.is_empty() {
        return Err("no DS change is pending at the parent (`belfry key status`)".into());
    }
    let mut what = Vec::new();
    let records = keys
        .iter()
        .cloned()
        .map(|mut k| {
            match k.ds {
                DsState::Submit => {
                    k.ds = DsState::Seen;
                    k.times.ds_seen = Some(now);
                    what.push(format!("DS of {} published", k.label()));
                }
                DsState::Withdraw => {
                    k.ds = DsState::Withdrawn;
                    k.times.ds_withdrawn = Some(now);
                    what.push(format!("DS of {} removed", k.label()));
                }
                _ => {}
            }
            k
        })
        .collect();
    Ok(Step {
        records,
        what: format!("the parent changed its DS RRset: {}", what.join(", ")),
    })
}

/// What the parent must change: (DS to publish, DS to remove), by key tag.
pub fn parent_actions(keys: &[KeyRecord]) -> (Vec<&KeyRecord>, Vec<&KeyRecord>) {
    (
        keys.iter().filter(|k| k.ds == DsState::Submit).collect(),
        keys.iter().filter(|k| k.ds == DsState::Withdraw).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: u16, role: KeyRole, alg: u8, state: KeyState) -> KeyRecord {
        KeyRecord {
            base: format!("Kbe.+{alg:03}+{tag:05}"),
            tag,
            algorithm: alg,
            role,
            dnskey: vec![
                1,
                if role == KeyRole::Zsk { 0 } else { 1 },
                3,
                alg,
                tag as u8,
            ],
            state,
            ds: if role == KeyRole::Ksk && state == KeyState::Active {
                DsState::Seen
            } else {
                DsState::None
            },
            times: KeyTimes {
                created: Some(0),
                published: Some(0),
                active: Some(0),
                ds_seen: Some(0),
                ..Default::default()
            },
        }
    }

    fn timing() -> Timing {
        Timing {
            propagation: 100,
            dnskey_ttl: 1000,
            zone_max_ttl: 5000,
            validity: 100_000,
            parent_ds_ttl: 2000,
            parent_propagation: 50,
            zsk_lifetime: 50_000,
            ksk_method: KskMethod::DoubleKsk,
        }
    }

    fn steady() -> Vec<KeyRecord> {
        vec![
            key(1, KeyRole::Ksk, 13, KeyState::Active),
            key(2, KeyRole::Zsk, 13, KeyState::Active),
        ]
    }

    fn step(p: &Plan) -> Vec<KeyRecord> {
        match &p.action {
            Action::Step(s) => s.records.clone(),
            other => panic!("expected a step, got {other:?}"),
        }
    }

    fn state(keys: &[KeyRecord], tag: u16) -> KeyState {
        keys.iter().find(|k| k.tag == tag).unwrap().state
    }

    fn with_spare(mut keys: Vec<KeyRecord>, tag: u16, role: KeyRole, alg: u8) -> Vec<KeyRecord> {
        let mut k = key(tag, role, alg, KeyState::Generated);
        k.times = KeyTimes {
            created: Some(0),
            ..Default::default()
        };
        keys.push(k);
        keys
    }

    #[test]
    fn zsk_prepublish_rollover_waits_for_every_cache() {
        let t = timing();
        let keys = steady();
        // Before the lifetime minus the DNSKEY wait: nothing.
        let p = plan(
            &keys,
            &t,
            &Facts {
                now: 48_000,
                resign_left: 0,
            },
        );
        assert_eq!(p.action, Action::Wait);
        assert_eq!(p.upcoming[0].earliest, Some(50_000 - 1100));
        // Then a new ZSK is needed, and published once it exists.
        let p = plan(
            &keys,
            &t,
            &Facts {
                now: 48_900,
                resign_left: 0,
            },
        );
        assert_eq!(
            p.action,
            Action::Generate {
                role: KeyRole::Zsk,
                algorithm: 13
            }
        );
        let keys = with_spare(keys, 3, KeyRole::Zsk, 13);
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 48_900,
                resign_left: 0,
            },
        ));
        assert_eq!(state(&keys, 3), KeyState::Published);
        assert_eq!(rolls(&keys), vec![Roll::Zsk]);
        // Signing switches when the new DNSKEY is in every cache.
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 49_999,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 50_000,
                resign_left: 0,
            },
        ));
        assert_eq!(
            (state(&keys, 2), state(&keys, 3)),
            (KeyState::Retired, KeyState::Active)
        );
        // The old key stays until no served RRset needs it, then the zone's TTL.
        let p = plan(
            &keys,
            &t,
            &Facts {
                now: 90_000,
                resign_left: 7,
            },
        );
        assert_eq!(p.action, Action::Wait);
        assert!(p.upcoming[0]
            .waits_for
            .as_deref()
            .unwrap()
            .contains("7 RRsets"));
        let mut keys = keys;
        keys.iter_mut().find(|k| k.tag == 2).unwrap().times.unused = Some(51_000);
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 56_099,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 56_100,
                resign_left: 0,
            },
        ));
        assert_eq!(state(&keys, 2), KeyState::Removed);
        assert!(rolls(&keys).is_empty());
    }

    #[test]
    fn double_ksk_rollover_waits_for_the_operator_and_the_ds_ttl() {
        let t = Timing {
            zsk_lifetime: 0,
            ..timing()
        };
        let keys = with_spare(steady(), 3, KeyRole::Ksk, 13);
        let Start::Step(s) = start(&keys, RollRequest::Ksk, &t, 10).unwrap() else {
            panic!()
        };
        let keys = s.records;
        assert_eq!(state(&keys, 3), KeyState::Published);
        let k3 = keys.iter().find(|k| k.tag == 3).unwrap();
        assert!(k3.signs_dnskey() && k3.published() && !k3.signs_zone());
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 1109,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 1110,
                resign_left: 0,
            },
        ));
        let (add, del) = parent_actions(&keys);
        assert_eq!((add[0].tag, del[0].tag), (3, 1));
        // Nothing moves until the operator confirms the parent's change.
        let p = plan(
            &keys,
            &t,
            &Facts {
                now: 99_999,
                resign_left: 0,
            },
        );
        assert_eq!(p.action, Action::Wait);
        assert!(p.upcoming[0]
            .waits_for
            .as_deref()
            .unwrap()
            .contains("ds-seen"));
        let keys = ds_seen(&keys, 5000).unwrap().records;
        assert!(ds_seen(&keys, 5001).is_err(), "nothing pending any more");
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 7049,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 7050,
                resign_left: 0,
            },
        ));
        assert_eq!(
            (state(&keys, 1), state(&keys, 3)),
            (KeyState::Removed, KeyState::Active)
        );
        assert!(rolls(&keys).is_empty(), "{:?}", rolls(&keys));
    }

    #[test]
    fn double_ds_rollover_publishes_the_ds_first_and_withdraws_it_last() {
        let t = Timing {
            ksk_method: KskMethod::DoubleDs,
            zsk_lifetime: 0,
            ..timing()
        };
        let keys = with_spare(steady(), 3, KeyRole::Ksk, 13);
        let Start::Step(s) = start(&keys, RollRequest::Ksk, &t, 10).unwrap() else {
            panic!()
        };
        let keys = s.records;
        assert_eq!(state(&keys, 3), KeyState::Generated);
        assert_eq!(parent_actions(&keys).0[0].tag, 3);
        assert!(parent_actions(&keys).1.is_empty(), "the old DS stays");
        let keys = ds_seen(&keys, 100).unwrap().records;
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 2149,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 2150,
                resign_left: 0,
            },
        ));
        assert_eq!(
            (state(&keys, 1), state(&keys, 3)),
            (KeyState::Removed, KeyState::Active)
        );
        assert_eq!(
            rolls(&keys),
            vec![Roll::Ksk],
            "the old DS is still at the parent"
        );
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 3249,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 3250,
                resign_left: 0,
            },
        ));
        assert_eq!(parent_actions(&keys).1[0].tag, 1);
        let keys = ds_seen(&keys, 4000).unwrap().records;
        assert!(rolls(&keys).is_empty());
    }

    #[test]
    fn algorithm_rollover_signs_first_and_unsigns_last() {
        let t = timing();
        let keys = steady();
        assert_eq!(
            start(&keys, RollRequest::Algorithm(8), &t, 10).unwrap(),
            Start::Need(KeyRole::Ksk, 8)
        );
        let keys = with_spare(keys, 3, KeyRole::Ksk, 8);
        assert_eq!(
            start(&keys, RollRequest::Algorithm(8), &t, 10).unwrap(),
            Start::Need(KeyRole::Zsk, 8)
        );
        let keys = with_spare(keys, 4, KeyRole::Zsk, 8);
        let Start::Step(s) = start(&keys, RollRequest::Algorithm(8), &t, 10).unwrap() else {
            panic!()
        };
        let mut keys = s.records;
        for tag in [3, 4] {
            let k = keys.iter().find(|k| k.tag == tag).unwrap();
            assert!(k.signs() && !k.published(), "signs before it is published");
        }
        assert!(start(&keys, RollRequest::Zsk, &t, 11).is_err());
        // Publication waits for the re-signing and then the zone's largest TTL.
        let p = plan(
            &keys,
            &t,
            &Facts {
                now: 99_999,
                resign_left: 3,
            },
        );
        assert_eq!(p.action, Action::Wait);
        for k in keys.iter_mut().filter(|k| k.state == KeyState::PreActive) {
            k.times.covered = Some(1000);
        }
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 6099,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 6100,
                resign_left: 0,
            },
        ));
        assert_eq!(keys.iter().filter(|k| k.published()).count(), 4);
        // Then the DS change, confirmed by the operator.
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 7199,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 7200,
                resign_left: 0,
            },
        ));
        let (add, del) = parent_actions(&keys);
        assert_eq!((add[0].tag, del[0].tag), (3, 1));
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 9_999_999,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = ds_seen(&keys, 8000).unwrap().records;
        // The old DNSKEYs go first, their signatures last.
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 10_050,
                resign_left: 0,
            },
        ));
        for tag in [1, 2] {
            let k = keys.iter().find(|k| k.tag == tag).unwrap();
            assert!(k.signs() && !k.published(), "{k:?}");
        }
        assert_eq!(
            plan(
                &keys,
                &t,
                &Facts {
                    now: 11_149,
                    resign_left: 0
                }
            )
            .action,
            Action::Wait
        );
        let keys = step(&plan(
            &keys,
            &t,
            &Facts {
                now: 11_150,
                resign_left: 0,
            },
        ));
        assert!(keys
            .iter()
            .filter(|k| k.algorithm == 13)
            .all(|k| !k.signs() && !k.published()));
        assert!(rolls(&keys).is_empty());
    }

    #[test]
    fn one_rollover_of_a_kind_at_a_time() {
        let t = timing();
        let keys = with_spare(steady(), 3, KeyRole::Zsk, 13);
        let Start::Step(s) = start(&keys, RollRequest::Zsk, &t, 5).unwrap() else {
            panic!()
        };
        assert!(start(&s.records, RollRequest::Zsk, &t, 6).is_err());
        assert!(start(&s.records, RollRequest::Algorithm(8), &t, 6).is_err());
        // A KSK roll may go on beside a ZSK roll.
        assert_eq!(
            start(&s.records, RollRequest::Ksk, &t, 6).unwrap(),
            Start::Need(KeyRole::Ksk, 13)
        );
        let mut csk = steady();
        csk[0].role = KeyRole::Csk;
        assert!(start(&csk, RollRequest::Ksk, &t, 6)
            .unwrap_err()
            .contains("CSK"));
    }
}
