//! Key events as publisher changes: a new key set, and the re-signing it needs.
//!
//! A rollover step is a [`KeyChange::SetKeys`]: the next version gets a new
//! [`Signer`] (its DNSKEY RRset, its signing keys), a DNSKEY RRset signed by the
//! new KSKs, and — when CDS publication is on — the CDS and CDNSKEY RRsets
//! (RFC 7344, RFC 8078) at the apex, signed by the KSKs. Every other signature
//! is carried over; the RRsets whose signatures no longer match the signing
//! keys are then re-signed (or, when only a signature too many remains,
//! cleaned) by [`KeyChange::Resign`] changes of a bounded size, one after
//! another, so the work is spread over time and the query path never waits.
//!
//! Both are journaled like every change (the diff carries the new DNSKEYs and
//! signatures, so IXFR carries them; the change carries the whole key set, so a
//! restart applies it again to the same result, taking the signatures from the
//! journal). A key set is refused, with what would break and where, when it
//! would leave any served RRset without a valid chain: validators fetching the
//! new DNSKEY RRset must find, for each of its algorithms, a signature by one of
//! its keys on every RRset ([`coverage`]), and the DNSKEY RRset must be signed
//! by a KSK whose DS the parent publishes.
//!
//! Keys are loaded from the directory the current signer's keys came from.

use super::change::{Change, ChangeError, NameEdit, Outcome};
use super::edit::{RecSet, ShardId};
use super::{build_apex, diff, journal, now_secs, record_journal, Mode, Publisher, State};
use crate::dnssec::lifecycle::KeySet;
use crate::dnssec::{ApexSigs, Dnssec, SigSet, Signer, Signers, Slot};
use crate::handler::Snapshot;
use crate::name;
use crate::wire::Rtype;
use crate::zone;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A key event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyChange {
    /// Serve the next version with this key set.
    SetKeys {
        /// Every key with its state (and whether CDS/CDNSKEY are published).
        set: KeySet,
        /// What the step does (audited).
        what: String,
    },
    /// Re-sign (or clean) up to `limit` RRsets whose signatures do not match the signing keys.
    Resign {
        /// Most RRsets handled by this change.
        limit: u32,
    },
}

/// The (key tag, algorithm) of each signature of a set.
pub fn signers_of(s: &SigSet) -> impl Iterator<Item = (u16, u8)> + '_ {
    s.rdatas()
        .filter(|r| r.len() >= 18)
        .map(|r| (u16::from_be_bytes([r[16], r[17]]), r[2]))
}

/// What the served signatures look like against a signer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Signed RRsets (and NSEC3 records) looked at; per role: (signed by KSKs, by ZSKs).
    pub signed: (u64, u64),
    /// RRsets whose signatures are not exactly those of the signing keys.
    pub mismatched: u64,
    /// Per (key tag, algorithm, KSK role): RRsets of that role carrying a signature by
    /// it. Counted per role so that a CSK, which signs both, can cover both.
    pub by_key: BTreeMap<(u16, u8, bool), u64>,
    /// RRsets a validator with the signer's DNSKEY RRset could not validate, with examples.
    pub broken: u64,
    /// Up to three of them, as `name type`.
    pub broken_examples: Vec<String>,
}

impl Coverage {
    /// Whether every RRset of a role carries a signature by this key.
    pub fn covers(&self, tag: u16, alg: u8, ksk_role: bool) -> bool {
        let n = self.by_key.get(&(tag, alg, ksk_role)).copied().unwrap_or(0);
        n == if ksk_role {
            self.signed.0
        } else {
            self.signed.1
        }
    }

    /// Whether any RRset carries a signature by this key.
    pub fn uses(&self, tag: u16, alg: u8) -> bool {
        [false, true]
            .iter()
            .any(|&role| self.by_key.get(&(tag, alg, role)).is_some_and(|&n| n > 0))
    }
}

/// A zone RRset to re-sign: (node, RRset, signatures to keep instead).
type ZoneWork = (u32, u32, Option<Arc<SigSet>>);

/// One RRset to re-sign or clean.
enum Work {
    Zone {
        id: ShardId,
        node: u32,
        set: u32,
        keep: Option<Arc<SigSet>>,
    },
    Nsec3 {
        pos: crate::dnssec::chain::ChainPos,
        keep: Option<Arc<SigSet>>,
    },
    Dnskey,
    Nsec3Param(Option<Arc<SigSet>>),
}

/// Walk every signature of a version against `signer` (the one it would be served
/// with): count, check the chain validators need, and collect up to `limit`
/// RRsets whose signatures must change.
fn walk(snap: &Snapshot, signer: &Signer, limit: usize) -> (Coverage, Vec<Work>) {
    let mut c = Coverage::default();
    let mut work = Vec::new();
    let Some(d) = snap.dnssec.as_deref() else {
        return (c, work);
    };
    let published: BTreeSet<(u16, u8)> = signer
        .dnskeys()
        .iter()
        .map(|k| {
            (
                crate::dnssec::key::key_tag(k),
                k.get(3).copied().unwrap_or(0),
            )
        })
        .collect();
    let algs: BTreeSet<u8> = published.iter().map(|(_, a)| *a).collect();
    let want = |rtype: Rtype| -> BTreeSet<(u16, u8)> {
        signer
            .keys_for(rtype)
            .iter()
            .map(|k| (k.key_tag(), k.algorithm().number()))
            .collect()
    };
    let (want_k, want_c, want_z) = (want(Rtype::DNSKEY), want(Rtype::CDS), want(Rtype::SOA));
    // What to do with one signature set: None when it is right, else what to keep.
    let mut look =
        |s: &SigSet, rtype: Rtype, what: &dyn Fn() -> String| -> Option<Option<Arc<SigSet>>> {
            let ksk = Signer::signed_by_ksk(rtype);
            if ksk {
                c.signed.0 += 1;
            } else {
                c.signed.1 += 1;
            }
            let have: BTreeSet<(u16, u8)> = signers_of(s).collect();
            for &(tag, alg) in &have {
                *c.by_key.entry((tag, alg, ksk)).or_default() += 1;
            }
            let valid: BTreeSet<u8> = have
                .iter()
                .filter(|k| published.contains(k))
                .map(|(_, a)| *a)
                .collect();
            // DNSKEY, CDS and CDNSKEY are signed again by every key step.
            if !ksk && !algs.is_subset(&valid) {
                c.broken += 1;
                if c.broken_examples.len() < 3 {
                    c.broken_examples.push(what());
                }
            }
            let want = match Signers::of(rtype) {
                Signers::Ksk => &want_k,
                Signers::Both => &want_c,
                Signers::Zsk => &want_z,
            };
            if have == *want {
                return None;
            }
            c.mismatched += 1;
            if want.is_subset(&have) {
                // Only signatures too many: keep the others, sign nothing.
                let kept = SigSet::from_rdatas(s.rdatas().filter(|r| {
                    r.len() >= 18 && want.contains(&(u16::from_be_bytes([r[16], r[17]]), r[2]))
                }));
                Some(Some(Arc::new(kept)))
            } else {
                Some(None)
            }
        };
    if let Some(s) = d.apex.dnskey.load_full() {
        if look(&s, Rtype::DNSKEY, &|| "DNSKEY".into()).is_some() && work.len() < limit {
            work.push(Work::Dnskey);
        }
    }
    if let Some(s) = d.apex.nsec3param.load_full() {
        if let Some(keep) = look(&s, Rtype::NSEC3PARAM, &|| "NSEC3PARAM".into()) {
            if work.len() < limit {
                work.push(Work::Nsec3Param(keep));
            }
        }
    }
    let zone = &*snap.zone;
    for id in std::iter::once(None).chain((0..zone::SHARDS).map(Some)) {
        let zs = match id {
            None => zone.apex_shard(),
            Some(i) => zone.shard(i),
        };
        let Some(sigs) = zs.sigs.as_ref() else {
            continue;
        };
        let sh = &*zs.data;
        for (node, set) in sh.node_rrsets() {
            let rtype = sh.rrset(set).rtype;
            if !crate::dnssec::sigs::signable(sh.node(node).flags, rtype) {
                continue;
            }
            let Some(s) = sigs.slot(set).load_full() else {
                continue;
            };
            let what = || {
                format!(
                    "{} {}",
                    name::to_text(&zone::key_to_wire(sh.node_key(node))),
                    crate::zone::master::rtype_to_string(rtype.0)
                )
            };
            if let Some(keep) = look(&s, rtype, &what) {
                if work.len() < limit {
                    work.push(Work::Zone {
                        id,
                        node,
                        set,
                        keep,
                    });
                }
            }
        }
    }
    for pos in d.chain.positions() {
        let Some(s) = d.chain.slot(pos).load_full() else {
            continue;
        };
        let what = || {
            let mut o = [0u8; 300];
            let n = Signer::nsec3_owner(signer.origin(), d.chain.hash(pos), &mut o);
            format!("{} NSEC3", name::to_text(&o[..n]))
        };
        if let Some(keep) = look(&s, Rtype::NSEC3, &what) {
            if work.len() < limit {
                work.push(Work::Nsec3 { pos, keep });
            }
        }
    }
    (c, work)
}

/// The served signatures of a version against its own signer.
pub fn coverage(snap: &Snapshot) -> Coverage {
    match snap.dnssec.as_deref() {
        Some(d) => walk(snap, &d.signer, 0).0,
        None => Coverage::default(),
    }
}

/// The CDS and CDNSKEY RRsets a key set asks for at the apex (empty: none).
fn cds_sets(set: &KeySet, origin: &[u8]) -> Vec<RecSet> {
    let ttl = set.cds_ttl.unwrap_or(0);
    let mut cds = Vec::new();
    let mut cdnskey = Vec::new();
    if set.cds_ttl.is_some() {
        for k in set.cds_keys().filter(|k| !k.dnskey.is_empty()) {
            if let Ok(ds) = crate::dnssec::key::ds_rdata(origin, &k.dnskey, 2) {
                cds.push(ds);
            }
            cdnskey.push(k.dnskey.clone());
        }
    }
    vec![
        RecSet {
            rtype: Rtype::CDS.0,
            ttl,
            rdatas: cds,
        },
        RecSet {
            rtype: Rtype::CDNSKEY.0,
            ttl,
            rdatas: cdnskey,
        },
    ]
}

/// Whether the apex CDS/CDNSKEY RRsets differ from what a key set asks for
/// (always `false` when the key set does not publish them).
pub fn cds_differs(snap: &Snapshot, set: &KeySet) -> bool {
    if set.cds_ttl.is_none() {
        return false;
    }
    let origin = snap.zone.origin();
    let sh = &snap.zone.apex_shard().data;
    let node = sh.find(&name::key_of(&name::to_lowercase(origin)));
    cds_sets(set, &name::to_lowercase(origin)).iter().any(|w| {
        let mut want = w.rdatas.clone();
        want.sort();
        let mut have: Vec<Vec<u8>> = node
            .and_then(|n| sh.rrset_index(n, Rtype(w.rtype)))
            .map(|i| {
                let s = sh.rrset(i);
                if s.ttl != w.ttl {
                    return Vec::new();
                }
                sh.rdatas(s).map(|r| r.to_vec()).collect()
            })
            .unwrap_or_default();
        have.sort();
        want != have
            || (want.is_empty()
                && node
                    .and_then(|n| sh.rrset_index(n, Rtype(w.rtype)))
                    .is_some())
    })
}

/// Apply a key event (live or from the journal).
pub(super) fn apply(
    p: &Publisher,
    st: &mut State,
    cur: &Snapshot,
    k: &KeyChange,
    actor: &str,
    mode: Mode<'_>,
) -> Result<Outcome, ChangeError> {
    match (k, mode) {
        (KeyChange::SetKeys { set, what }, _) => set_keys(p, st, cur, set, what, actor, mode),
        (KeyChange::Resign { limit }, Mode::Live) => resign(p, st, cur, *limit as usize, actor),
        (KeyChange::Resign { .. }, Mode::Replay { serial, hints, .. }) => {
            p.resign_replay(st, cur, serial, hints)
        }
    }
}

/// The signer of a key set, with the keys from the current signer's directory.
fn signer_of(d: &Dnssec, origin: &[u8], set: &KeySet) -> Result<Signer, ChangeError> {
    let (dir, zone_text) = d.signer.key_dir().ok_or_else(|| {
        ChangeError::BadInput(
            "the keys in use did not come from a key directory (`--key` or `[dnssec] keys`): \
             rollovers need the key directory"
                .into(),
        )
    })?;
    let mut s = crate::keys::signer_for(origin, set, dir, zone_text, d.signer.policy().clone())
        .map_err(ChangeError::Check)?;
    s.inject_sign_fault(d.signer.fault());
    Ok(s.with_key_dir(dir, zone_text).with_keyset(set.clone()))
}

fn set_keys(
    p: &Publisher,
    st: &mut State,
    cur: &Snapshot,
    set: &KeySet,
    what: &str,
    actor: &str,
    mode: Mode<'_>,
) -> Result<Outcome, ChangeError> {
    let d = cur
        .dnssec
        .as_deref()
        .ok_or_else(|| ChangeError::BadInput("the zone is not signed".into()))?;
    let live = matches!(mode, Mode::Live);
    let signer = signer_of(d, &st.origin, set)?;
    if live {
        if d.signer.keyset().is_some_and(|old| old.same_zone(set)) && !cds_differs(cur, set) {
            return Err(ChangeError::Unchanged);
        }
        // The DNSKEY RRset must be signed by a KSK whose DS the parent publishes.
        let anchored = set
            .records
            .iter()
            .any(|k| k.signs_dnskey() && k.published() && k.ds.trusted());
        if !anchored {
            return Err(ChangeError::Check(
                "refused: no key whose DS the parent publishes would sign the DNSKEY RRset, \
                 so validators could not trust it (confirm the parent's DS with \
                 `belfry key ds-seen` first)"
                    .into(),
            ));
        }
        // Every served RRset must stay valid for validators that fetch the new DNSKEY RRset.
        let (c, _) = walk(cur, &signer, 0);
        if c.broken > 0 {
            let algs: Vec<String> = signer
                .dnskeys()
                .iter()
                .map(|k| {
                    format!(
                        "{} ({})",
                        crate::dnssec::key::key_tag(k),
                        crate::keys::state::algorithm_name(k.get(3).copied().unwrap_or(0))
                    )
                })
                .collect();
            return Err(ChangeError::Check(format!(
                "refused: {} RRsets (e.g. {}) carry no signature that validators could check \
                 against the DNSKEY RRset of this step ({}); they must be re-signed first",
                c.broken,
                c.broken_examples.join(", "),
                algs.join(", ")
            )));
        }
    }
    let signer = Arc::new(signer);
    let edits = if cds_differs(cur, set) {
        vec![NameEdit {
            name: st.origin.clone(),
            sets: cds_sets(set, &st.origin),
            replace_all: false,
        }]
    } else {
        Vec::new()
    };
    let now = match mode {
        Mode::Live => now_secs(),
        Mode::Replay { time, .. } => time,
    };
    let serial = match mode {
        Mode::Live => st.settings.serial_policy.next(cur.serial, now),
        Mode::Replay { serial, .. } => serial,
    };
    let hints = match mode {
        Mode::Live => None,
        Mode::Replay { hints, .. } => Some(hints),
    };
    let next_d = Dnssec {
        signer: signer.clone(),
        chain: d.chain.clone(),
        apex: Arc::new(ApexSigs {
            dnskey: Slot::empty(),
            nsec3param: Slot::from(d.apex.nsec3param.load_full()),
        }),
        nsec3_ttl: d.nsec3_ttl,
    };
    let (snap, withheld, _) = build_apex(
        st,
        &cur.zone,
        Some(&next_d),
        &cur.suppressions,
        &edits,
        serial,
        hints,
    )?;
    let nd = snap
        .dnssec
        .as_deref()
        .ok_or_else(|| ChangeError::Check("the next version is not signed".into()))?;
    let apex_key = name::key_of(&st.origin);
    let hinted = hints.and_then(|h| h.rrsets.get(&(apex_key.clone(), Rtype::DNSKEY.0)).cloned());
    let dnskey_sig = match hinted {
        Some(s) => s,
        None => Arc::new(
            nd.signer
                .sign_dnskey()
                .map_err(|e| ChangeError::Sign(e.to_string()))?,
        ),
    };
    nd.apex.dnskey.store(Some(dnskey_sig));
    // CDS and CDNSKEY are signed by the KSKs and ZSKs: again whenever those change.
    let apex = snap.zone.apex_shard();
    if let (Some(sigs), Some(node)) = (apex.sigs.as_ref(), apex.data.find(&apex_key)) {
        for t in [Rtype::CDS, Rtype::CDNSKEY] {
            let Some(i) = apex.data.rrset_index(node, t) else {
                continue;
            };
            let want: BTreeSet<(u16, u8)> = nd
                .signer
                .keys_for(t)
                .iter()
                .map(|k| (k.key_tag(), k.algorithm().number()))
                .collect();
            let have: Option<BTreeSet<(u16, u8)>> =
                sigs.slot(i).load_full().map(|s| signers_of(&s).collect());
            if have.as_ref() == Some(&want) {
                continue;
            }
            let hinted = hints.and_then(|h| h.rrsets.get(&(apex_key.clone(), t.0)).cloned());
            let sig = match hinted {
                Some(s) => s,
                None => {
                    let nr = zone::NodeRef {
                        sh: apex,
                        shard_no: zone::APEX_SHARD,
                        idx: node,
                    };
                    Arc::new(
                        nd.signer
                            .sign_set(nr, zone::SetRef { sh: apex, idx: i })
                            .map_err(|e| ChangeError::Sign(e.to_string()))?,
                    )
                }
            };
            sigs.slot(i).store(Some(sig));
        }
    }
    let change = Change::Keys(KeyChange::SetKeys {
        set: set.clone(),
        what: what.to_string(),
    });
    let published = set.records.iter().filter(|k| k.published()).count();
    let reason = format!(
        "{what} (DNSKEY RRset: {published} keys; {} keys sign)",
        set.records.iter().filter(|k| k.signs()).count()
    );
    commit(
        p, st, cur, snap, withheld, change, actor, live, now, "keys", &reason,
    )
}

/// Re-sign (or clean) up to `limit` RRsets whose signatures do not match the signing keys.
fn resign(
    p: &Publisher,
    st: &mut State,
    cur: &Snapshot,
    limit: usize,
    actor: &str,
) -> Result<Outcome, ChangeError> {
    let d = cur.dnssec.as_deref().ok_or(ChangeError::Unchanged)?;
    let (_, work) = walk(cur, &d.signer, limit.max(1));
    if work.is_empty() {
        return Err(ChangeError::Unchanged);
    }
    let now = now_secs();
    let serial = st.settings.serial_policy.next(cur.serial, now);
    let (snap0, _, _) = build_apex(st, &cur.zone, Some(d), &cur.suppressions, &[], serial, None)?;
    let d0 = snap0.dnssec.as_deref().ok_or(ChangeError::Unchanged)?;
    let sign_err = |e: crate::dnssec::SignError| ChangeError::Sign(e.to_string());
    let mut made = 0usize;
    let mut by_shard: BTreeMap<ShardId, Vec<ZoneWork>> = BTreeMap::new();
    let mut chain_sigs = Vec::new();
    let mut dnskey = d0.apex.dnskey.load_full();
    let mut param = d0.apex.nsec3param.load_full();
    for w in work {
        match w {
            Work::Zone {
                id,
                node,
                set,
                keep,
            } => by_shard.entry(id).or_default().push((node, set, keep)),
            Work::Nsec3 { pos, keep } => {
                let s = match keep {
                    Some(k) => k,
                    None => {
                        made += 1;
                        Arc::new(
                            d0.signer
                                .sign_nsec3(&d0.chain, pos, d0.nsec3_ttl)
                                .map_err(sign_err)?,
                        )
                    }
                };
                chain_sigs.push((pos, s));
            }
            Work::Dnskey => {
                made += 1;
                dnskey = Some(Arc::new(d0.signer.sign_dnskey().map_err(sign_err)?));
            }
            Work::Nsec3Param(keep) => {
                param = Some(match keep {
                    Some(k) => k,
                    None => {
                        made += 1;
                        Arc::new(d0.signer.sign_nsec3param().map_err(sign_err)?)
                    }
                });
            }
        }
    }
    let mut shards = Vec::new();
    for (id, list) in by_shard {
        let sh = match id {
            None => snap0.zone.apex_shard(),
            Some(i) => snap0.zone.shard(i),
        };
        let Some(old) = sh.sigs.as_ref() else {
            continue;
        };
        let new = Arc::new(zone::ZShard {
            data: sh.data.clone(),
            sigs: Some(old.copy()),
        });
        for (node, set, keep) in list {
            // The apex shard was rebuilt for the new SOA: find the RRset again by name and type.
            let (node, set) = if id.is_none() {
                let key = cur.zone.apex_shard().data.node_key(node).to_vec();
                let rtype = cur.zone.apex_shard().data.rrset(set).rtype;
                match new
                    .data
                    .find(&key)
                    .and_then(|n| new.data.rrset_index(n, rtype).map(|i| (n, i)))
                {
                    Some(x) => x,
                    None => continue,
                }
            } else {
                (node, set)
            };
            let s = match keep {
                Some(k) => k,
                None => {
                    made += 1;
                    let nr = zone::NodeRef {
                        sh: &new,
                        shard_no: id.map(|i| i as u32).unwrap_or(zone::APEX_SHARD),
                        idx: node,
                    };
                    Arc::new(
                        d0.signer
                            .sign_set(nr, zone::SetRef { sh: &new, idx: set })
                            .map_err(sign_err)?,
                    )
                }
            };
            if let Some(sigs) = new.sigs.as_ref() {
                sigs.slot(set).store(Some(s));
            }
        }
        shards.push((id, new));
    }
    let chain = if chain_sigs.is_empty() {
        d0.chain.clone()
    } else {
        Arc::new(d0.chain.with_signatures(&st.origin, &chain_sigs))
    };
    let zone2 = snap0.zone.with_shards(shards);
    let next = Snapshot {
        serial: zone2.serial(),
        zone: Arc::new(zone2),
        dnssec: Some(Arc::new(Dnssec {
            signer: d0.signer.clone(),
            chain,
            apex: Arc::new(ApexSigs {
                dnskey: Slot::from(dnskey),
                nsec3param: Slot::from(param),
            }),
            nsec3_ttl: d0.nsec3_ttl,
        })),
        suppressions: snap0.suppressions.clone(),
    };
    let reason = format!("{made} signatures made for the key set");
    let mut o = commit(
        p,
        st,
        cur,
        next,
        Default::default(),
        Change::Keys(KeyChange::Resign {
            limit: limit as u32,
        }),
        actor,
        true,
        now,
        "key-resign",
        &reason,
    )?;
    o.signatures = made;
    Ok(o)
}

/// Audit, journal and serve a version made by a key event.
#[allow(clippy::too_many_arguments)]
fn commit(
    p: &Publisher,
    st: &mut State,
    cur: &Snapshot,
    next: Snapshot,
    withheld: std::collections::HashMap<Vec<u8>, super::edit::Content>,
    change: Change,
    actor: &str,
    live: bool,
    now: u64,
    action: &str,
    reason: &str,
) -> Result<Outcome, ChangeError> {
    let id = st.next_id;
    let serial = next.serial;
    if live {
        if let Some(a) = &st.sinks.audit {
            let line = crate::suppress::audit::Line {
                actor: actor.to_string(),
                action: action.into(),
                reason: reason.to_string(),
                ..Default::default()
            };
            a.record_batch(id, &[line], serial)
                .map_err(ChangeError::Storage)?;
        }
        let entry = journal::Entry {
            id,
            time: now,
            actor: actor.to_string(),
            from: cur.serial,
            to: serial,
            change,
            diff: diff::diff(cur, &next),
        };
        record_journal(st, &entry)?;
        st.next_id += 1;
    }
    st.withheld.replace([None].iter(), withheld);
    st.refresh_remote(&next.zone, &[None]);
    p.publish(next);
    Ok(Outcome {
        id,
        serial,
        notes: vec![reason.to_string()],
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::key::{Algorithm, KeyRole};
    use crate::dnssec::lifecycle::{KeyRecord, KeyState};
    use crate::publish::{checkpoint, initial_dnssec, journal::Journal, Settings, Sinks};

    struct Lab {
        dir: std::path::PathBuf,
        p: Publisher,
        set: KeySet,
    }

    fn lab(tag: &str, cds: bool) -> Lab {
        let dir = std::env::temp_dir().join(format!("belfry-pubkeys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kd = dir.join("keys");
        for role in [KeyRole::Ksk, KeyRole::Zsk] {
            crate::keys::generate_unique(&kd, "be.", Algorithm::EcdsaP256Sha256, role, 0).unwrap();
        }
        let keys = crate::keys::state::load(&kd, "be.").unwrap();
        let set = KeySet {
            records: keys.records,
            cds_ttl: cds.then_some(600),
        };
        let mut zone = crate::handler::tests::test_zone();
        let signer = crate::keys::signer_for(zone.origin(), &set, &kd, "be.", Default::default())
            .unwrap()
            .with_key_dir(&kd, "be.")
            .with_keyset(set.clone());
        let d = initial_dnssec(&mut zone, Arc::new(signer)).unwrap();
        let serial = zone.serial();
        let p = Publisher::new(
            zone,
            Some(d),
            Vec::new(),
            serial,
            Settings::default(),
            Sinks::default(),
        )
        .unwrap();
        crate::service::sign_missing(&p.snapshot_full(), 1, &|| false).unwrap();
        let (j, _) = Journal::open(&dir.join("journal"), 1 << 30).unwrap();
        p.set_journal(j);
        p.checkpoint(&dir.join("checkpoint"), 0).unwrap();
        Lab { dir, p, set }
    }

    fn step(l: &mut Lab, f: impl Fn(&mut Vec<KeyRecord>)) -> Result<Outcome, ChangeError> {
        let mut set = l.set.clone();
        f(&mut set.records);
        let r = l.p.apply(
            Change::Keys(KeyChange::SetKeys {
                set: set.clone(),
                what: "test".into(),
            }),
            "t",
            None,
        );
        if r.is_ok() {
            l.set = set;
        }
        r
    }

    /// The tag of the lab's first key of a role.
    fn tag_of(l: &Lab, role: KeyRole) -> u16 {
        l.set.records.iter().find(|r| r.role == role).unwrap().tag
    }

    fn new_zsk(l: &mut Lab) -> KeyRecord {
        new_key(l, KeyRole::Zsk)
    }

    fn new_key(l: &mut Lab, role: KeyRole) -> KeyRecord {
        let kd = l.dir.join("keys");
        let (k, files, _) =
            crate::keys::generate_unique(&kd, "be.", Algorithm::EcdsaP256Sha256, role, 0).unwrap();
        KeyRecord {
            base: files.base,
            tag: k.key_tag(),
            algorithm: 13,
            role,
            dnskey: k.dnskey_rdata().to_vec(),
            state: KeyState::Generated,
            ds: crate::dnssec::lifecycle::DsState::None,
            times: Default::default(),
        }
    }

    fn ask(snap: &Snapshot, qname: &str, t: Rtype) -> crate::wire::decode::Message {
        let mut out = Vec::new();
        let q = crate::wire::decode::build_query(
            1,
            &name::from_text(qname, &[0]).unwrap(),
            t,
            Some((4096, true)),
        );
        assert!(crate::handler::handle(
            snap,
            &crate::handler::HandlerConfig::default(),
            &q,
            true,
            &mut out
        ));
        crate::wire::decode::decode(&out).unwrap()
    }

    /// The key tags of the RRSIGs in an answer.
    fn signers(m: &crate::wire::decode::Message) -> BTreeSet<u16> {
        crate::wire::decode::Message::of(&m.answer, Rtype::RRSIG)
            .iter()
            .map(|r| u16::from_be_bytes([r.rdata[16], r.rdata[17]]))
            .collect()
    }

    fn served_tags(p: &Publisher) -> Vec<u16> {
        let snap = p.snapshot();
        let mut v: Vec<u16> = snap
            .dnssec
            .as_ref()
            .unwrap()
            .signer
            .dnskeys()
            .iter()
            .map(|d| crate::dnssec::key::key_tag(d))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_csk_covers_both_roles_once_everything_is_signed() {
        // The key manager waits for this to record a key's `covered` time; until then
        // it walks every signature of the zone after every change.
        let snap = crate::control::tests::snapshot(true);
        let d = snap.dnssec.as_deref().unwrap();
        let k = &d.signer.zsks()[0];
        assert_eq!(k.role(), crate::dnssec::key::KeyRole::Csk);
        let (tag, alg) = (k.key_tag(), k.algorithm().number());
        let c = coverage(&snap);
        assert!(c.signed.0 > 0 && c.signed.1 > 0, "{c:?}");
        assert_eq!(c.mismatched, 0);
        assert!(c.covers(tag, alg, true), "the DNSKEY RRset: {c:?}");
        assert!(c.covers(tag, alg, false), "the zone: {c:?}");
        assert!(c.uses(tag, alg) && !c.uses(tag.wrapping_add(1), alg));
    }

    #[test]
    fn a_zsk_rollover_is_refused_until_resigned_and_replays_to_the_same_version() {
        zsk_rollover(false);
    }

    #[test]
    fn a_zsk_rollover_with_cds_moves_the_cds_signature_to_the_new_zsk() {
        zsk_rollover(true);
    }

    fn zsk_rollover(cds: bool) {
        let mut l = lab(if cds { "zsk-cds" } else { "zsk" }, cds);
        let old = tag_of(&l, KeyRole::Zsk);
        let ksk = tag_of(&l, KeyRole::Ksk);
        let new = new_zsk(&mut l);
        let nt = new.tag;
        step(&mut l, |r| {
            let mut n = new.clone();
            n.state = KeyState::Published;
            r.push(n);
        })
        .unwrap();
        assert_eq!(served_tags(&l.p).len(), 3);
        step(&mut l, |r| {
            for k in r.iter_mut() {
                if k.tag == nt {
                    k.state = KeyState::Active;
                } else if k.tag == old {
                    k.state = KeyState::Retired;
                }
            }
        })
        .unwrap();
        if cds {
            // CDS and CDNSKEY are signed again in the same step, by the new ZSK.
            let snap = l.p.snapshot_full();
            for t in [Rtype::CDS, Rtype::CDNSKEY] {
                let m = ask(&snap, "be.", t);
                assert_eq!(signers(&m), BTreeSet::from([ksk, nt]), "{t:?}");
            }
        }
        let c = coverage(&l.p.snapshot_full());
        assert!(c.mismatched > 0 && c.uses(old, 13) && !c.covers(nt, 13, false));
        // Removing the old ZSK now would leave RRsets without a valid chain.
        let e = step(&mut l, |r| {
            r.iter_mut().find(|k| k.tag == old).unwrap().state = KeyState::Removed;
        })
        .unwrap_err();
        assert!(
            matches!(&e, ChangeError::Check(m) if m.contains("carry no signature")),
            "{e}"
        );
        assert_eq!(served_tags(&l.p).len(), 3, "a refused step changes nothing");
        // Re-signing in bounded batches, then the removal goes through.
        let mut batches = 0;
        loop {
            match l
                .p
                .apply(Change::Keys(KeyChange::Resign { limit: 10 }), "t", None)
            {
                Ok(o) => {
                    assert!(o.signatures <= 10);
                    batches += 1;
                }
                Err(ChangeError::Unchanged) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(batches > 1, "spread over several changes");
        let c = coverage(&l.p.snapshot_full());
        assert_eq!(c.mismatched, 0);
        assert!(!c.uses(old, 13) && c.covers(nt, 13, false));
        step(&mut l, |r| {
            r.iter_mut().find(|k| k.tag == old).unwrap().state = KeyState::Removed;
        })
        .unwrap();
        assert!(!served_tags(&l.p).contains(&old));
        // A restart from the checkpoint and the journal gives the same version back,
        // keys and signatures included, without making a signature.
        let before = l.p.snapshot_full();
        let first = crate::keys::signer_for(
            b"\x02be\x00",
            &checkpoint::read_keyset(&l.dir.join("checkpoint")).unwrap(),
            &l.dir.join("keys"),
            "be.",
            Default::default(),
        )
        .unwrap()
        .with_key_dir(&l.dir.join("keys"), "be.");
        let r = checkpoint::read(
            &l.dir.join("checkpoint"),
            b"\x02be\x00",
            Some(Arc::new(first)),
        )
        .unwrap();
        assert!(r.signatures_kept);
        let cserial = r.header.serial;
        let q = Publisher::from_checkpoint(r, Settings::default(), Sinks::default()).unwrap();
        let (j, _) = Journal::open(&l.dir.join("journal"), 1 << 30).unwrap();
        q.replay(j.entries_from(cserial).unwrap().unwrap()).unwrap();
        let after = q.snapshot_full();
        assert_eq!(after.serial, before.serial);
        let a: BTreeSet<_> = diff::all_records(&before).into_iter().collect();
        let b: BTreeSet<_> = diff::all_records(&after).into_iter().collect();
        assert!(a == b, "restored version differs");
        assert_eq!(after.dnssec.as_ref().unwrap().signer.keyset(), Some(&l.set));
        assert_eq!(
            after
                .dnssec
                .as_ref()
                .unwrap()
                .signer
                .made
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "replay makes no signature"
        );
        std::fs::remove_dir_all(&l.dir).unwrap();
    }

    #[test]
    fn cds_and_cdnskey_follow_the_ds_the_parent_should_hold() {
        let mut l = lab("cds", true);
        let ksk = l
            .set
            .records
            .iter()
            .find(|r| r.role == KeyRole::Ksk)
            .unwrap()
            .clone();
        // Same keys, CDS wanted: a change of its own.
        step(&mut l, |_| {}).unwrap();
        let snap = l.p.snapshot_full();
        assert!(!cds_differs(&snap, &l.set));
        let m = ask(&snap, "be.", Rtype::CDS);
        let cds = crate::wire::decode::Message::of(&m.answer, Rtype::CDS);
        assert_eq!(cds.len(), 1);
        assert_eq!(
            cds[0].rdata,
            crate::dnssec::key::ds_rdata(b"\x02be\x00", &ksk.dnskey, 2).unwrap()
        );
        let zsk = tag_of(&l, KeyRole::Zsk);
        assert_eq!(
            signers(&m),
            BTreeSet::from([ksk.tag, zsk]),
            "signed by the KSK and the ZSK"
        );
        // Nothing changes: refused as unchanged.
        assert_eq!(step(&mut l, |_| {}).unwrap_err(), ChangeError::Unchanged);
        // A KSK swap (double-DS: both DS at the parent) signs CDS and CDNSKEY again
        // with the new KSK, in the same step. A resolver still holding the DNSKEY
        // RRset from before the swap knows the ZSK and not the new KSK: the ZSK's
        // signature keeps CDS and CDNSKEY valid for it (DNSKEY itself comes with
        // its own new signature).
        let before: BTreeSet<u16> = l
            .set
            .records
            .iter()
            .filter(|r| r.published())
            .map(|r| r.tag)
            .collect();
        let mut new = new_key(&mut l, KeyRole::Ksk);
        new.ds = crate::dnssec::lifecycle::DsState::Seen;
        let nt = new.tag;
        step(&mut l, |r| r.push(new.clone())).unwrap();
        step(&mut l, |r| {
            for k in r.iter_mut() {
                if k.tag == nt {
                    k.state = KeyState::Active;
                } else if k.tag == ksk.tag {
                    k.state = KeyState::Removed;
                }
            }
        })
        .unwrap();
        let snap = l.p.snapshot_full();
        for t in [Rtype::CDS, Rtype::CDNSKEY, Rtype::DNSKEY] {
            let m = ask(&snap, "be.", t);
            assert_eq!(crate::wire::decode::Message::of(&m.answer, t).len(), 2);
            let want = if t == Rtype::DNSKEY {
                BTreeSet::from([nt])
            } else {
                BTreeSet::from([nt, zsk])
            };
            assert_eq!(signers(&m), want, "{t:?}");
            if t != Rtype::DNSKEY {
                assert!(
                    !signers(&m).is_disjoint(&before),
                    "{t:?} is signed by a key of the DNSKEY RRset before the swap"
                );
            }
        }
        std::fs::remove_dir_all(&l.dir).unwrap();
    }
}
