//! Writing a response into a reused buffer, with name compression (RFC 1035 §4.1.4).
//!
//! [`Writer`] appends sections to a `Vec<u8>` whose capacity is kept between
//! queries, so steady-state answers do not allocate. Names are compressed
//! against names already in the message through a small fixed table of label
//! offsets keyed by a hash of the lowercased suffix; a hash hit is checked
//! byte for byte before a pointer is written. Only names in the owner field and
//! in the RDATA of types RFC 3597 §4 lists are compressed.

use super::types::Rtype;
use crate::name::{MAX_LABELS, MAX_NAME_LEN};

const TABLE: usize = 48;
const HEADER_LEN: usize = 12;

/// Remembers where suffixes of names already written start.
pub struct Compressor {
    hashes: [u32; TABLE],
    offsets: [u16; TABLE],
    len: usize,
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

fn mix(mut h: u32, label: &[u8]) -> u32 {
    h = (h ^ label.len() as u32).wrapping_mul(0x0100_0193);
    for &b in label {
        h = (h ^ b.to_ascii_lowercase() as u32).wrapping_mul(0x0100_0193);
    }
    h
}

impl Compressor {
    /// An empty table.
    pub const fn new() -> Self {
        Compressor {
            hashes: [0; TABLE],
            offsets: [0; TABLE],
            len: 0,
        }
    }

    /// Forget all entries (start of a new message).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    fn add(&mut self, hash: u32, offset: usize) {
        if self.len < TABLE && offset < 0x3FFF {
            self.hashes[self.len] = hash;
            self.offsets[self.len] = offset as u16;
            self.len += 1;
        }
    }

    fn find(&self, hash: u32, msg: &[u8], suffix: &[u8]) -> Option<u16> {
        for i in 0..self.len {
            if self.hashes[i] == hash && same_name(msg, self.offsets[i] as usize, suffix) {
                return Some(self.offsets[i]);
            }
        }
        None
    }
}

/// Whether the (possibly compressed) name at `at` in `msg` equals `wire`, ignoring case.
fn same_name(msg: &[u8], mut at: usize, wire: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut hops = 0;
    loop {
        let Some(&len) = msg.get(at) else {
            return false;
        };
        if len & 0xC0 == 0xC0 {
            let Some(&lo) = msg.get(at + 1) else {
                return false;
            };
            at = (((len & 0x3F) as usize) << 8) | lo as usize;
            hops += 1;
            if hops > 64 {
                return false;
            }
            continue;
        }
        let l = len as usize;
        let (Some(a), Some(b)) = (msg.get(at..at + 1 + l), wire.get(pos..pos + 1 + l)) else {
            return false;
        };
        if !a.eq_ignore_ascii_case(b) {
            return false;
        }
        if l == 0 {
            return true;
        }
        at += 1 + l;
        pos += 1 + l;
    }
}

/// The EDNS options a response's OPT record carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct OptOptions<'a> {
    /// Name server identifier (RFC 5001).
    pub nsid: Option<&'a [u8]>,
    /// DNS cookie: the client cookie and our server cookie (RFC 7873 §4).
    pub cookie: Option<&'a [u8]>,
    /// Extended DNS Error: info code and text (RFC 8914).
    pub ede: Option<(u16, &'a [u8])>,
}

impl OptOptions<'_> {
    /// Size of the whole OPT record with these options.
    pub fn wire_len(&self) -> usize {
        11 + self.nsid.map_or(0, |n| 4 + n.len())
            + self.cookie.map_or(0, |c| 4 + c.len())
            + self.ede.map_or(0, |(_, t)| 6 + t.len())
    }
}

/// Appends a DNS message to a buffer.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    comp: Compressor,
    counts: [u16; 4],
    section: usize,
}

/// The sections of a message after the question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer section.
    Answer = 0,
    /// Authority section.
    Authority = 1,
    /// Additional section.
    Additional = 2,
}

/// A saved position, to undo what was written after it.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    len: usize,
    count: u16,
    comp_len: usize,
}

impl<'a> Writer<'a> {
    /// Start a message in `buf` (cleared) with the given id and flags word.
    pub fn new(buf: &'a mut Vec<u8>, id: u16, flags: u16) -> Self {
        buf.clear();
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0; 8]);
        Writer {
            buf,
            comp: Compressor::new(),
            counts: [0; 4],
            section: 0,
        }
    }

    /// Current message length.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing beyond the header was written.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= HEADER_LEN
    }

    /// The flags word written so far.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// Replace the flags word.
    pub fn set_flags(&mut self, flags: u16) {
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
    }

    /// Echo the question (name as sent, type, class) and make its name a compression target.
    pub fn question(&mut self, question: &[u8], qname_len: usize) {
        let start = self.buf.len();
        self.buf.extend_from_slice(question);
        self.counts[0] = 1;
        self.register(start, &question[..qname_len]);
    }

    fn register(&mut self, start: usize, wire: &[u8]) {
        let mut starts = [0u8; MAX_LABELS + 1];
        let n = crate::name::label_starts(wire, &mut starts);
        let mut h = 0x811C_9DC5u32;
        for i in (0..n).rev() {
            let s = starts[i] as usize;
            h = mix(h, &wire[s + 1..s + 1 + wire[s] as usize]);
            self.comp.add(h, start + s);
        }
    }

    /// Write a name, compressed against names already in the message.
    pub fn name(&mut self, wire: &[u8]) {
        let mut starts = [0u8; MAX_LABELS + 1];
        let n = crate::name::label_starts(wire, &mut starts);
        let mut hashes = [0u32; MAX_LABELS + 1];
        let mut h = 0x811C_9DC5u32;
        for i in (0..n).rev() {
            let s = starts[i] as usize;
            h = mix(h, &wire[s + 1..s + 1 + wire[s] as usize]);
            hashes[i] = h;
        }
        for i in 0..n {
            let s = starts[i] as usize;
            if let Some(off) = self.comp.find(hashes[i], self.buf, &wire[s..]) {
                let base = self.buf.len();
                self.buf.extend_from_slice(&wire[..s]);
                self.buf.extend_from_slice(&(0xC000 | off).to_be_bytes());
                for (j, &h) in hashes.iter().enumerate().take(i) {
                    self.comp.add(h, base + starts[j] as usize);
                }
                return;
            }
        }
        let base = self.buf.len();
        let end = crate::name::wire_len(wire)
            .unwrap_or(wire.len())
            .min(MAX_NAME_LEN);
        self.buf.extend_from_slice(&wire[..end]);
        for (j, &h) in hashes.iter().enumerate().take(n) {
            self.comp.add(h, base + starts[j] as usize);
        }
    }

    /// Move on to a later section; records are counted in the current one.
    pub fn section(&mut self, s: Section) {
        self.section = s as usize + 1;
    }

    /// Save the current position.
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            count: self.counts[self.section],
            comp_len: self.comp.len,
        }
    }

    /// Undo everything written in the current section since `m`.
    pub fn rollback(&mut self, m: Mark) {
        self.buf.truncate(m.len);
        self.counts[self.section] = m.count;
        self.comp.len = m.comp_len;
    }

    /// Write one resource record whose RDATA is given in uncompressed wire form.
    pub fn record(&mut self, owner: &[u8], rtype: Rtype, class: u16, ttl: u32, rdata: &[u8]) {
        self.name(owner);
        self.record_tail(rtype, class, ttl, rdata);
    }

    /// Write one resource record whose owner is a pointer to an earlier offset.
    pub fn record_at(
        &mut self,
        owner_offset: u16,
        rtype: Rtype,
        class: u16,
        ttl: u32,
        rdata: &[u8],
    ) {
        self.buf
            .extend_from_slice(&(0xC000 | owner_offset).to_be_bytes());
        self.record_tail(rtype, class, ttl, rdata);
    }

    /// Write a compression pointer to an earlier name (an owner written by reference).
    pub fn pointer(&mut self, at: u16) {
        self.buf.extend_from_slice(&(0xC000 | at).to_be_bytes());
    }

    /// Write the fields after the owner name of a record (the owner was just written).
    pub fn record_tail(&mut self, rtype: Rtype, class: u16, ttl: u32, rdata: &[u8]) {
        self.buf.extend_from_slice(&rtype.0.to_be_bytes());
        self.buf.extend_from_slice(&class.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        if rtype.compressible_names() {
            self.compressed_rdata(rtype, rdata);
        } else {
            self.buf.extend_from_slice(rdata);
        }
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[self.section] += 1;
    }

    fn compressed_rdata(&mut self, rtype: Rtype, rdata: &[u8]) {
        let name_at = |at: usize| -> Option<usize> {
            crate::name::wire_len(rdata.get(at..)?).ok().map(|l| at + l)
        };
        match rtype {
            Rtype::NS | Rtype::CNAME | Rtype::PTR => match name_at(0) {
                Some(end) if end == rdata.len() => self.name(rdata),
                _ => self.buf.extend_from_slice(rdata),
            },
            Rtype::MX => match name_at(2) {
                Some(end) if end == rdata.len() => {
                    self.buf.extend_from_slice(&rdata[..2]);
                    self.name(&rdata[2..]);
                }
                _ => self.buf.extend_from_slice(rdata),
            },
            Rtype::SOA => {
                let m = name_at(0);
                let r = m.and_then(name_at);
                match (m, r) {
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

    /// Write raw bytes of an already complete record and count it in the current section.
    pub fn raw_record(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.counts[self.section] += 1;
    }

    /// Write an OPT record (RFC 6891 §6.1.2) with an optional Extended DNS Error.
    pub fn opt(
        &mut self,
        udp_size: u16,
        ext_rcode: u8,
        dnssec_ok: bool,
        ede: Option<(u16, &[u8])>,
    ) {
        let o = OptOptions {
            ede,
            ..OptOptions::default()
        };
        self.opt_with(udp_size, ext_rcode, dnssec_ok, &o);
    }

    /// Write an OPT record (RFC 6891 §6.1.2) with the given options, in the order
    /// NSID, COOKIE, Extended DNS Error.
    pub fn opt_with(&mut self, udp_size: u16, ext_rcode: u8, dnssec_ok: bool, o: &OptOptions<'_>) {
        self.buf.push(0);
        self.buf.extend_from_slice(&Rtype::OPT.0.to_be_bytes());
        self.buf.extend_from_slice(&udp_size.to_be_bytes());
        self.buf.push(ext_rcode);
        self.buf.push(0);
        self.buf.push(if dnssec_ok { 0x80 } else { 0 });
        self.buf.push(0);
        let rdlen = o.wire_len() - 11;
        self.buf.extend_from_slice(&(rdlen as u16).to_be_bytes());
        if let Some(n) = o.nsid {
            self.option(super::types::option::NSID, &[n]);
        }
        if let Some(c) = o.cookie {
            self.option(super::types::option::COOKIE, &[c]);
        }
        if let Some((code, text)) = o.ede {
            self.option(super::types::option::EDE, &[&code.to_be_bytes(), text]);
        }
        self.counts[3] += 1;
    }

    /// One EDNS option whose data is the concatenation of `parts`.
    fn option(&mut self, code: u16, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        for p in parts {
            self.buf.extend_from_slice(p);
        }
    }

    /// Size an OPT record takes with an EDE text of `ede_text` bytes (if any).
    pub fn opt_len(ede_text: Option<usize>) -> usize {
        11 + ede_text.map_or(0, |t| 6 + t)
    }

    /// Write the section counts into the header; the message is complete.
    pub fn finish(self) {
        let c = self.counts;
        self.buf[4..6].copy_from_slice(&c[0].to_be_bytes());
        self.buf[6..8].copy_from_slice(&c[1].to_be_bytes());
        self.buf[8..10].copy_from_slice(&c[2].to_be_bytes());
        self.buf[10..12].copy_from_slice(&c[3].to_be_bytes());
    }

    /// Remove every record after the question (used when truncating).
    pub fn clear_records(&mut self, question_end: usize) {
        self.buf.truncate(question_end);
        self.counts[1] = 0;
        self.counts[2] = 0;
        self.counts[3] = 0;
        self.section = 0;
        self.comp.len = self.comp.len.min(MAX_LABELS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_against_question_and_earlier_names() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, 1, 0x8400);
        let q = b"\x03www\x07Example\x02be\x00\x00\x02\x00\x01";
        w.question(q, 16);
        w.section(Section::Authority);
        w.record(
            b"\x07example\x02BE\x00",
            Rtype::NS,
            1,
            60,
            b"\x03ns1\x07example\x02be\x00",
        );
        w.record(
            b"\x07example\x02be\x00",
            Rtype::NS,
            1,
            60,
            b"\x03ns2\x03net\x00",
        );
        w.section(Section::Additional);
        w.record(
            b"\x03ns1\x07example\x02be\x00",
            Rtype::A,
            1,
            60,
            &[192, 0, 2, 1],
        );
        w.finish();
        // Owner "example.be" points at offset 16 (after "www" label).
        assert_eq!(&buf[32..34], &[0xC0, 16]);
        // NS rdata: "ns1" + pointer to 16.
        assert_eq!(&buf[44..50], b"\x03ns1\xC0\x10");
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 0);
        assert_eq!(u16::from_be_bytes([buf[8], buf[9]]), 2);
        assert_eq!(u16::from_be_bytes([buf[10], buf[11]]), 1);
        // The glue owner is a pointer to the first NS target.
        let tail = &buf[buf.len() - 16..];
        assert_eq!(&tail[..2], &[0xC0, 44]);
    }

    #[test]
    fn same_name_follows_pointers() {
        let msg = b"\x00\x00\x03foo\x02be\x00\x03bar\xC0\x06";
        assert!(same_name(msg, 10, b"\x03BAR\x02be\x00"));
        assert!(!same_name(msg, 10, b"\x03bar\x02bx\x00"));
        // A pointer loop ends.
        let msg = b"\xC0\x00";
        assert!(!same_name(msg, 0, b"\x00"));
    }
}
