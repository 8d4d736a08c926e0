//! Packing a long run of records into answer messages, for zone transfers.
//!
//! A [`Packer`] fills one message after another up to a size limit, the
//! question echoed in the first message only (RFC 5936 §2.2), and compresses
//! names (RFC 1035 §4.1.4): every name suffix written out in a message is
//! remembered (a hash of its bytes and its offset), and a later name ending in a
//! remembered suffix points at it. Names in the RDATA of the RFC 1035 types that
//! allow it (NS, CNAME, PTR, MX, SOA) are compressed too; every other RDATA is
//! copied as it is (RRSIG signer names must not be compressed, RFC 4034 §3.1.7).
//! A hash match is checked byte for byte, so no name changes its letter case.
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
    /// Suffixes written out in the current message: hash → offset.
    table: hashbrown::HashMap<u32, u16, foldhash::fast::FixedState>,
    started: bool,
}

/// Whether the (possibly compressed) name at `at` in `msg` is `wire`, byte for byte.
fn same_name(msg: &[u8], mut at: usize, wire: &[u8]) -> bool {
    let mut pos = 0usize;
    for _ in 0..128 {
        let Some(&len) = msg.get(at) else {
            return false;
        };
        if len & 0xC0 == 0xC0 {
            let Some(&lo) = msg.get(at + 1) else {
                return false;
            };
            at = (((len & 0x3F) as usize) << 8) | lo as usize;
            continue;
        }
        let l = len as usize;
        match (msg.get(at..at + 1 + l), wire.get(pos..pos + 1 + l)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
        if l == 0 {
            return true;
        }
        at += 1 + l;
        pos += 1 + l;
    }
    false
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
    pub fn new(id: u16, flags: u16, question: &[u8], limit: usize) -> Packer {
        Packer {
            buf: Vec::with_capacity(limit + 512),
            id,
            flags,
            question: question.to_vec(),
            first: true,
            count: 0,
            limit,
            table: hashbrown::HashMap::with_capacity_and_hasher(
                4096,
                foldhash::fast::FixedState::with_seed(0x5eed),
            ),
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
        self.table.clear();
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

    /// Write a name, pointing at the longest suffix already in the message.
    fn name(&mut self, name: &[u8]) {
        let mut starts = [0usize; 128];
        let n = label_starts(name, &mut starts);
        // Hashes of every suffix, the shortest first.
        let mut hashes = [0u32; 128];
        let mut h = 0x811C_9DC5u32;
        for i in (0..n).rev() {
            for &b in &name[starts[i]..starts[i] + 1 + name[starts[i]] as usize] {
                h = (h ^ b as u32).wrapping_mul(0x0100_0193);
            }
            hashes[i] = h;
        }
        let base = self.buf.len();
        let mut cut = n;
        for i in 0..n {
            if let Some(&at) = self.table.get(&hashes[i]) {
                if same_name(&self.buf, at as usize, &name[starts[i]..]) {
                    cut = i;
                    break;
                }
            }
        }
        let literal = if cut < n { starts[cut] } else { name.len() };
        self.buf.extend_from_slice(&name[..literal]);
        if cut < n {
            let at = self.table[&hashes[cut]];
            self.pointer(at);
        }
        for i in 0..cut {
            let off = base + starts[i];
            if off < 0x3FFF {
                self.table.insert(hashes[i], off as u16);
            }
        }
    }

    fn rdata(&mut self, rtype: Rtype, rdata: &[u8]) {
        let name_end = |at: usize| -> Option<usize> {
            crate::name::wire_len(rdata.get(at..)?).ok().map(|l| at + l)
        };
        match rtype {
            Rtype::NS | Rtype::CNAME | Rtype::PTR if name_end(0) == Some(rdata.len()) => {
                self.name(rdata)
            }
            Rtype::MX if name_end(2) == Some(rdata.len()) => {
                self.buf.extend_from_slice(&rdata[..2]);
                self.name(&rdata[2..]);
            }
            Rtype::SOA => {
                let m = name_end(0);
                match (m, m.and_then(name_end)) {
                    (Some(m), Some(r)) if r + 20 == rdata.len() => {
                        self.name(&rdata[..m]);
                        self.name(&rdata[m..r]);
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
        self.name(owner);
        self.buf.extend_from_slice(&rtype.0.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.rdata(rtype, rdata);
        let rdlen = self.buf.len() - len_at - 2;
        if (self.buf.len() > self.limit && self.count > 0) || self.buf.len() > 65535 {
            // The message is full and gets finished: no later name may point into
            // what is cut off, so drop the targets that lie there.
            self.buf.truncate(mark);
            self.table.retain(|_, at| (*at as usize) < mark);
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
    fn compresses_repeated_suffixes_exactly_and_decodes_back() {
        let q = crate::wire::message::question_bytes(&n("be."), Rtype::AXFR, 1);
        let mut p = Packer::new(7, 0x8400, &q, DEFAULT_LIMIT);
        let recs = vec![
            (n("be."), Rtype::NS, n("a.nsset.be.")),
            (n("example.be."), Rtype::NS, n("ns1.example.be.")),
            (n("example.be."), Rtype::NS, n("ns.other.net.")),
            (n("example.be."), Rtype::NS, n("ns2.other.net.")),
            (n("Example.be."), Rtype::NS, n("NS2.other.net.")),
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
        let mut p = Packer::new(1, 0x8400, &[], 200);
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
