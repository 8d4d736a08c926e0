//! Packing a long run of records into answer messages, for zone transfers.
//!
//! A [`Packer`] fills one message after another up to a size limit, the
//! question echoed in the first message only (RFC 5936 §2.2), and compresses
//! names (RFC 1035 §4.1.4) the cheap way a zone in canonical order allows: an
//! owner name equal to the previous record's owner, or a name ending in it
//! (`ns1.example.be.` after `example.be.`), points at where that owner was
//! written; any other name below the zone origin points at the origin's first
//! occurrence. Names in the RDATA of the RFC 1035 types that allow it (NS,
//! CNAME, PTR, MX, SOA) are compressed the same way; every other RDATA is copied
//! as it is (RRSIG signer names must not be compressed, RFC 4034 §3.1.7).
//! Matching is byte for byte, so no name changes its letter case.
//!
//! Limits: messages are kept below 16 KiB by default, because a compression
//! pointer reaches only the first 16383 bytes of a message.

use crate::wire::Rtype;

/// Default message size limit: every offset in it can be a compression target.
pub const DEFAULT_LIMIT: usize = 16_000;

/// Fills answer messages with records.
pub struct Packer {
    buf: Vec<u8>,
    id: u16,
    flags: u16,
    question: Vec<u8>,
    first: bool,
    count: u16,
    limit: usize,
    origin: Vec<u8>,
    origin_at: u16,
    owner: Vec<u8>,
    owner_at: u16,
    started: bool,
}

/// Offsets of the labels of a wire name (the root excluded); returns the count.
fn label_starts(name: &[u8], out: &mut [usize; 128]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < name.len() && name[i] != 0 && n < 128 {
        out[n] = i;
        n += 1;
        i += 1 + name[i] as usize;
    }
    n
}

impl Packer {
    /// A packer for answers with this id and flags word, echoing `question` (name,
    /// type, class as sent) in the first message; messages stay below `limit`
    /// bytes (one record larger than that still goes alone in a message).
    pub fn new(id: u16, flags: u16, question: &[u8], origin: &[u8], limit: usize) -> Packer {
        Packer {
            buf: Vec::with_capacity(limit + 512),
            id,
            flags,
            question: question.to_vec(),
            first: true,
            count: 0,
            limit,
            origin: origin.to_vec(),
            origin_at: 0,
            owner: Vec::with_capacity(256),
            owner_at: 0,
            started: false,
        }
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.id.to_be_bytes());
        self.buf.extend_from_slice(&self.flags.to_be_bytes());
        let qd = u16::from(self.first && !self.question.is_empty());
        self.buf.extend_from_slice(&qd.to_be_bytes());
        self.buf.extend_from_slice(&[0; 6]);
        if qd == 1 {
            self.buf.extend_from_slice(&self.question);
        }
        self.first = false;
        self.count = 0;
        self.origin_at = 0;
        self.owner_at = 0;
        self.owner.clear();
        self.started = true;
    }

    /// Records in the current message.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Bytes in the current message.
    pub fn len(&self) -> usize {
        if self.started {
            self.buf.len()
        } else {
            0
        }
    }

    /// Whether the current message holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn pointer(&mut self, at: u16) {
        self.buf.extend_from_slice(&(0xC000 | at).to_be_bytes());
    }

    /// Write a name; an owner becomes the target for the names that follow.
    fn name(&mut self, name: &[u8], is_owner: bool) {
        let start = self.buf.len();
        let mut starts = [0usize; 128];
        let n = label_starts(name, &mut starts);
        let mut done = false;
        if self.owner_at != 0 {
            for &s in &starts[..n] {
                if name[s..] == self.owner[..] {
                    self.buf.extend_from_slice(&name[..s]);
                    self.pointer(self.owner_at);
                    done = true;
                    break;
                }
            }
        }
        if !done && self.origin.len() > 2 && name.ends_with(&self.origin) {
            let cut = name.len() - self.origin.len();
            if let Some(&s) = starts[..n].iter().find(|&&s| s == cut) {
                if self.origin_at != 0 {
                    self.buf.extend_from_slice(&name[..s]);
                    let at = self.origin_at;
                    self.pointer(at);
                } else {
                    self.buf.extend_from_slice(name);
                    if start + s < 0x3FFF {
                        self.origin_at = (start + s) as u16;
                    }
                }
                done = true;
            }
        }
        if !done {
            self.buf.extend_from_slice(name);
        }
        if is_owner && name != self.owner.as_slice() {
            self.owner.clear();
            self.owner.extend_from_slice(name);
            self.owner_at = if start < 0x3FFF { start as u16 } else { 0 };
        }
    }

    fn rdata(&mut self, rtype: Rtype, rdata: &[u8]) {
        let name_end = |at: usize| -> Option<usize> {
            crate::name::wire_len(rdata.get(at..)?).ok().map(|l| at + l)
        };
        match rtype {
            Rtype::NS | Rtype::CNAME | Rtype::PTR if name_end(0) == Some(rdata.len()) => {
                self.name(rdata, false)
            }
            Rtype::MX if name_end(2) == Some(rdata.len()) => {
                self.buf.extend_from_slice(&rdata[..2]);
                self.name(&rdata[2..], false);
            }
            Rtype::SOA => {
                let m = name_end(0);
                match (m, m.and_then(name_end)) {
                    (Some(m), Some(r)) if r + 20 == rdata.len() => {
                        self.name(&rdata[..m], false);
                        self.name(&rdata[m..r], false);
                        self.buf.extend_from_slice(&rdata[r..]);
                    }
                    _ => self.buf.extend_from_slice(rdata),
                }
            }
            _ => self.buf.extend_from_slice(rdata),
        }
    }

    /// Add a record (class IN) to the current message; false (and nothing
    /// written) when it does not fit: finish the message and push it again.
    pub fn push(&mut self, owner: &[u8], rtype: Rtype, ttl: u32, rdata: &[u8]) -> bool {
        if !self.started {
            self.begin();
        }
        let mark = self.buf.len();
        self.name(owner, true);
        self.buf.extend_from_slice(&rtype.0.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.rdata(rtype, rdata);
        let rdlen = self.buf.len() - len_at - 2;
        if (self.buf.len() > self.limit && self.count > 0) || self.buf.len() > 65535 {
            // The message is full and gets finished: no later name may point into
            // what is cut off, so drop the targets that may lie there.
            self.buf.truncate(mark);
            if self.origin_at as usize >= mark {
                self.origin_at = 0;
            }
            self.owner_at = 0;
            self.owner.clear();
            return false;
        }
        self.buf[len_at..len_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
        self.count += 1;
        true
    }

    /// Complete the current message (its counts written) and hand it out; the
    /// next [`Packer::push`] starts a new message.
    pub fn finish(&mut self) -> &mut Vec<u8> {
        if !self.started {
            self.begin();
        }
        self.buf[6..8].copy_from_slice(&self.count.to_be_bytes());
        self.started = false;
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::from_text;

    fn n(s: &str) -> Vec<u8> {
        from_text(s, &[0]).unwrap()
    }

    #[test]
    fn compresses_against_owner_and_origin_and_decodes_back() {
        let q = crate::wire::message::question_bytes(&n("be."), Rtype::AXFR, 1);
        let mut p = Packer::new(7, 0x8400, &q, &n("be."), DEFAULT_LIMIT);
        let recs = vec![
            (n("be."), Rtype::NS, n("a.nsset.be.")),
            (n("example.be."), Rtype::NS, n("ns1.example.be.")),
            (n("example.be."), Rtype::NS, n("ns.other.net.")),
            (n("ns1.example.be."), Rtype::A, vec![192, 0, 2, 1]),
            (n("other.be."), Rtype::DS, vec![1, 2, 13, 2, 9, 9]),
        ];
        for (o, t, r) in &recs {
            assert!(p.push(o, *t, 60, r));
        }
        let msg = p.finish().clone();
        let m = crate::wire::message::parse(&msg).unwrap();
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.answer.len(), recs.len());
        for (r, (o, t, d)) in m.answer.iter().zip(&recs) {
            assert_eq!((&r.owner, r.rtype, &r.rdata), (o, *t, d));
        }
        // Shorter than the names written out in full.
        let plain: usize = recs.iter().map(|(o, _, r)| o.len() + 10 + r.len()).sum();
        assert!(msg.len() < 12 + q.len() + plain - 20, "{}", msg.len());
        // The next message has no question.
        assert!(p.push(&n("x.be."), Rtype::A, 1, &[1, 2, 3, 4]));
        let m = crate::wire::message::parse(p.finish()).unwrap();
        assert!(m.questions.is_empty());
        assert_eq!(m.answer[0].owner, n("x.be."));
    }

    #[test]
    fn a_full_message_refuses_the_record_unchanged() {
        let mut p = Packer::new(1, 0x8400, &[], &n("be."), 200);
        let mut pushed = 0;
        let owner = n("some-long-owner-name.be.");
        while p.push(&owner, Rtype::TXT, 1, &[20; 21]) {
            pushed += 1;
        }
        assert!(pushed > 1);
        let m = crate::wire::message::parse(p.finish()).unwrap();
        assert_eq!(m.answer.len(), pushed);
        // The refused record goes whole into the next message.
        assert!(p.push(&owner, Rtype::TXT, 1, &[20; 21]));
        let m = crate::wire::message::parse(p.finish()).unwrap();
        assert_eq!(m.answer[0].owner, owner);
    }
}
