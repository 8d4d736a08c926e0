//! Re-signing before expiry, as changes of their own (journaled, so IXFR carries them).

use super::*;

impl Publisher {
    /// Re-sign what is due for refresh, as a change of its own (new serial).
    pub(super) fn resign(
        &self,
        st: &mut State,
        cur: &Snapshot,
        actor: &str,
    ) -> Result<Outcome, ChangeError> {
        let Some(d) = cur.dnssec.as_deref() else {
            return Err(ChangeError::Unchanged);
        };
        let due_at = crate::dnssec::now().saturating_add(d.signer.policy().refresh);
        let due_slot = |slot: &crate::dnssec::Slot| {
            slot.load().as_ref().is_some_and(|s| s.expiration <= due_at)
        };
        // What is due (slots still empty belong to the start-up pass).
        let mut zone_due: Vec<(ShardId, Vec<u32>)> = Vec::new();
        let mut count = 0usize;
        for id in std::iter::once(None).chain((0..zone::SHARDS).map(Some)) {
            if count >= MAX_RESIGN {
                break;
            }
            let sh = match id {
                None => cur.zone.apex_shard(),
                Some(i) => cur.zone.shard(i),
            };
            let Some(sigs) = sh.sigs.as_ref() else {
                continue;
            };
            let sets: Vec<u32> = sh
                .data
                .node_rrsets()
                .filter(|&(n, set)| {
                    crate::dnssec::sigs::signable(sh.data.node(n).flags, sh.data.rrset(set).rtype)
                })
                .map(|(_, set)| set)
                .filter(|&set| due_slot(sigs.slot(set)))
                .collect();
            if !sets.is_empty() {
                count += sets.len();
                zone_due.push((id, sets));
            }
        }
        let chain_due: Vec<crate::dnssec::chain::ChainPos> = d
            .chain
            .positions()
            .filter(|&p| due_slot(d.chain.slot(p)))
            .take(MAX_RESIGN.saturating_sub(count))
            .collect();
        let dnskey_due = due_slot(&d.apex.dnskey);
        let param_due = due_slot(&d.apex.nsec3param);
        if zone_due.is_empty() && chain_due.is_empty() && !dnskey_due && !param_due {
            return Err(ChangeError::Unchanged);
        }
        let now = now_secs();
        let serial = st.settings.serial_policy.next(cur.serial, now);
        let (snap0, _, made0) =
            build_apex(st, &cur.zone, Some(d), &cur.suppressions, &[], serial, None)?;
        let d0 = snap0.dnssec.as_deref().ok_or(ChangeError::Unchanged)?;
        let sign_err = |e: crate::dnssec::SignError| ChangeError::Sign(e.to_string());
        let mut signed = made0;
        let mut shards = Vec::new();
        for (id, sets) in zone_due {
            let sh = match id {
                None => snap0.zone.apex_shard(),
                Some(i) => snap0.zone.shard(i),
            };
            let Some(old) = sh.sigs.as_ref() else {
                continue;
            };
            let copy = old.copy();
            let new = Arc::new(zone::ZShard {
                data: sh.data.clone(),
                sigs: Some(copy),
            });
            for set in sets {
                if set as usize >= new.data.rrset_count() {
                    continue;
                }
                let node = (0..new.data.node_count() as u32)
                    .find(|&n| {
                        let start = new.data.rrset_start(n);
                        set >= start && set < start + new.data.rrsets(n).len() as u32
                    })
                    .unwrap_or(0);
                let nr = zone::NodeRef {
                    sh: &new,
                    shard_no: id.map(|i| i as u32).unwrap_or(zone::APEX_SHARD),
                    idx: node,
                };
                let sig = d0
                    .signer
                    .sign_set(nr, zone::SetRef { sh: &new, idx: set })
                    .map_err(sign_err)?;
                if let Some(s) = new.sigs.as_ref() {
                    s.slot(set).store(Some(Arc::new(sig)));
                }
                signed += 1;
            }
            shards.push((id, new));
        }
        let mut chain_sigs = Vec::new();
        for pos in chain_due {
            let sig = d0
                .signer
                .sign_nsec3(&d0.chain, pos, d0.nsec3_ttl)
                .map_err(sign_err)?;
            chain_sigs.push((pos, Arc::new(sig)));
            signed += 1;
        }
        let apex = Arc::new(crate::dnssec::ApexSigs {
            dnskey: if dnskey_due {
                signed += 1;
                crate::dnssec::Slot::from(Some(Arc::new(
                    d0.signer.sign_dnskey().map_err(sign_err)?,
                )))
            } else {
                crate::dnssec::Slot::from(d0.apex.dnskey.load_full())
            },
            nsec3param: if param_due {
                signed += 1;
                crate::dnssec::Slot::from(Some(Arc::new(
                    d0.signer.sign_nsec3param().map_err(sign_err)?,
                )))
            } else {
                crate::dnssec::Slot::from(d0.apex.nsec3param.load_full())
            },
        });
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
                apex,
                nsec3_ttl: d0.nsec3_ttl,
            })),
            suppressions: snap0.suppressions.clone(),
        };
        let id = st.next_id;
        if let Some(a) = &st.sinks.audit {
            let line = crate::suppress::audit::Line {
                actor: actor.to_string(),
                action: "resign".into(),
                reason: format!("{signed} signatures due for refresh"),
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
            to: next.serial,
            change: Change::Resign,
            diff: resign_diff(cur, &next),
        };
        record_journal(st, &entry)?;
        st.next_id += 1;
        self.publish(next);
        Ok(Outcome {
            id,
            serial,
            signatures: signed,
            ..Default::default()
        })
    }
}
