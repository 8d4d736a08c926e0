//! Whole DNS messages as owned values, for the control side: UPDATE, NOTIFY, transfers, TSIG.
//!
//! Owns the strict parser of complete messages (RFC 1035 §4.1) into owned
//! [`Record`]s with names decompressed, and small helpers to build messages
//! with the compressing [`Writer`]. It is not for the query path (that is
//! [`super::query`], which does not allocate), and it knows nothing about zones.
//!
//! What the parser enforces, so callers can rely on it:
//! - every name is well formed; compression pointers only point backwards
//!   (RFC 1035 §4.1.4), so a hostile message cannot loop;
//! - names inside RDATA are decompressed for the types RFC 3597 §4 lists
//!   (RFC 1035 types, plus RP, AFSDB, RT, PX, SRV, NAPTR, KX), and for the
//!   algorithm name of TSIG; the RDATA of those types must be well formed
//!   (or empty, as UPDATE deletes and prerequisites send it);
//! - at most one OPT record (RFC 6891 §6.1.1), owned by the root, in the
//!   additional section;
//! - a TSIG record only as the very last record (RFC 8945 §5.1), and at most one;
//! - no bytes after the last record.
//!
//! Memory is bounded by the message: a record takes at least 11 bytes of input
//! and each name expands to at most 255 bytes.

use super::decode::Record;
use super::types::{Opcode, Rtype};
use super::writer::{Section, Writer};
use crate::name::MAX_NAME_LEN;

/// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.1).
pub mod flag {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;
    /// Authentic data.
    pub const AD: u16 = 0x0020;
    /// Checking disabled.
    pub const CD: u16 = 0x0010;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Largest DNS message (a TCP frame, RFC 1035 §4.2.2).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Why a message could not be parsed; every case is answered with FORMERR (or dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Shorter than a header.
    #[error("message shorter than a header")]
    ShortHeader,
    /// A section count runs past the end of the message.
    #[error("message ends inside a record")]
    Truncated,
    /// A malformed or over-long name, or a bad compression pointer.
    #[error("malformed name")]
    BadName,
    /// RDATA whose names or fields do not fit its declared length.
    #[error("malformed RDATA")]
    BadRdata,
    /// Bytes after the last record.
    #[error("bytes after the last record")]
    TrailingData,
    /// An OPT record outside the additional section, not owned by the root, or twice.
    #[error("misplaced or repeated OPT record")]
    BadOpt,
    /// A TSIG record that is not the last record of the additional section (RFC 8945 §5.1).
    #[error("TSIG record not last in the message")]
    TsigNotLast,
}

/// The fixed header of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Message id.
    pub id: u16,
    /// Flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE).
    pub flags: u16,
    /// QDCOUNT (ZOCOUNT in UPDATE).
    pub qdcount: u16,
    /// ANCOUNT (PRCOUNT in UPDATE).
    pub ancount: u16,
    /// NSCOUNT (UPCOUNT in UPDATE).
    pub nscount: u16,
    /// ARCOUNT (ADCOUNT in UPDATE).
    pub arcount: u16,
}

impl Header {
    /// Read the header of a message.
    pub fn parse(msg: &[u8]) -> Result<Header, MessageError> {
        if msg.len() < HEADER_LEN {
            return Err(MessageError::ShortHeader);
        }
        let w = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
        Ok(Header {
            id: w(0),
            flags: w(2),
            qdcount: w(4),
            ancount: w(6),
            nscount: w(8),
            arcount: w(10),
        })
    }

    /// Whether QR (response) is set.
    pub fn is_response(&self) -> bool {
        self.flags & flag::QR != 0
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        Opcode(((self.flags >> 11) & 0x0F) as u8)
    }

    /// The 4-bit header RCODE.
    pub fn rcode(&self) -> u16 {
        self.flags & 0x000F
    }
}

/// One question (or the zone of an UPDATE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Name, uncompressed wire form, case as received.
    pub name: Vec<u8>,
    /// Type.
    pub qtype: Rtype,
    /// Class.
    pub qclass: u16,
}

/// The OPT pseudo-record (RFC 6891 §6.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// Upper 8 bits of the extended RCODE.
    pub ext_rcode: u8,
    /// EDNS version.
    pub version: u8,
    /// Flags (DO is 0x8000).
    pub flags: u16,
    /// Options, raw.
    pub options: Vec<u8>,
}

/// Where the TSIG record sits in a message, and the record itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigAt {
    /// Offset of the first byte of the TSIG record (its owner name).
    pub start: usize,
    /// The record, with the algorithm name in its RDATA decompressed.
    pub record: Record,
}

/// A parsed message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The header as received.
    pub header: Header,
    /// Question section (zone section in UPDATE).
    pub questions: Vec<Question>,
    /// Answer section (prerequisites in UPDATE).
    pub answer: Vec<Record>,
    /// Authority section (updates in UPDATE).
    pub authority: Vec<Record>,
    /// Additional section without OPT and TSIG.
    pub additional: Vec<Record>,
    /// The OPT record, if any.
    pub opt: Option<Opt>,
    /// The TSIG record, if any.
    pub tsig: Option<TsigAt>,
}

impl Message {
    /// Full RCODE: the header's 4 bits plus OPT's upper 8 bits (RFC 6891 §6.1.3).
    pub fn rcode(&self) -> u16 {
        self.header.rcode() | self.opt.as_ref().map_or(0, |o| (o.ext_rcode as u16) << 4)
    }
}

fn be16(msg: &[u8], at: usize) -> Result<u16, MessageError> {
    match msg.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(MessageError::Truncated),
    }
}

/// Read a possibly compressed name at `pos`; returns it and the offset after it.
///
/// Pointers must point before the pointer itself, which bounds the work.
pub fn read_name(msg: &[u8], pos: usize) -> Result<(Vec<u8>, usize), MessageError> {
    let mut out = Vec::with_capacity(32);
    let mut at = pos;
    let mut end = None;
    loop {
        let len = *msg.get(at).ok_or(MessageError::BadName)? as usize;
        match len & 0xC0 {
            0x00 => {
                let label = msg.get(at..at + 1 + len).ok_or(MessageError::BadName)?;
                out.extend_from_slice(label);
                if out.len() > MAX_NAME_LEN {
                    return Err(MessageError::BadName);
                }
                at += 1 + len;
                if len == 0 {
                    return Ok((out, end.unwrap_or(at)));
                }
            }
            0xC0 => {
                let lo = *msg.get(at + 1).ok_or(MessageError::BadName)? as usize;
                let target = ((len & 0x3F) << 8) | lo;
                if target >= at {
                    return Err(MessageError::BadName);
                }
                if end.is_none() {
                    end = Some(at + 2);
                }
                at = target;
            }
            _ => return Err(MessageError::BadName),
        }
    }
}

/// How the names sit in the RDATA of a type whose names are decompressed on receipt.
#[derive(Clone, Copy)]
enum Layout {
    /// Not decompressed: RDATA copied as is.
    Opaque,
    /// `fixed` bytes, then `names` names, then `tail` bytes (`None`: the rest).
    Names {
        fixed: usize,
        names: usize,
        tail: Option<usize>,
    },
    /// NAPTR: 4 bytes, three character strings, one name.
    Naptr,
}

fn layout(rtype: Rtype) -> Layout {
    let names = |fixed, names, tail| Layout::Names {
        fixed,
        names,
        tail: Some(tail),
    };
    match rtype {
        Rtype::NS
        | Rtype::MD
        | Rtype::MF
        | Rtype::CNAME
        | Rtype::MB
        | Rtype::MG
        | Rtype::MR
        | Rtype::PTR => names(0, 1, 0),
        Rtype::SOA => names(0, 2, 20),
        Rtype::MINFO | Rtype::RP => names(0, 2, 0),
        Rtype::MX | Rtype::AFSDB | Rtype::RT | Rtype::KX => names(2, 1, 0),
        Rtype::PX => names(2, 2, 0),
        Rtype::SRV => names(6, 1, 0),
        Rtype::NAPTR => Layout::Naptr,
        Rtype::TSIG => Layout::Names {
            fixed: 0,
            names: 1,
            tail: None,
        },
        _ => Layout::Opaque,
    }
}

/// RDATA of `rtype` at `start..start + len` of `msg`, with names decompressed.
fn expand_rdata(
    msg: &[u8],
    rtype: Rtype,
    start: usize,
    len: usize,
) -> Result<Vec<u8>, MessageError> {
    let end = start + len;
    let raw = msg.get(start..end).ok_or(MessageError::Truncated)?;
    let bad = MessageError::BadRdata;
    if len == 0 {
        // Empty RDATA is legal on the wire for every type (UPDATE deletes and
        // prerequisites use it); whether a type may be empty is `rdata_is_valid`'s call.
        return Ok(Vec::new());
    }
    match layout(rtype) {
        Layout::Opaque => Ok(raw.to_vec()),
        Layout::Names { fixed, names, tail } => {
            let mut out = Vec::with_capacity(len + 16);
            out.extend_from_slice(raw.get(..fixed).ok_or(bad)?);
            let mut pos = start + fixed;
            for _ in 0..names {
                if pos >= end {
                    return Err(bad);
                }
                let (n, p) = read_name(msg, pos).map_err(|_| bad)?;
                if p > end {
                    return Err(bad);
                }
                out.extend_from_slice(&n);
                pos = p;
            }
            if let Some(t) = tail {
                if pos + t != end {
                    return Err(bad);
                }
            }
            out.extend_from_slice(msg.get(pos..end).ok_or(bad)?);
            Ok(out)
        }
        Layout::Naptr => {
            let mut pos = 4usize;
            for _ in 0..3 {
                let l = *raw.get(pos).ok_or(bad)? as usize;
                pos += 1 + l;
            }
            if pos >= len {
                return Err(bad);
            }
            let mut out = raw[..pos].to_vec();
            let (n, p) = read_name(msg, start + pos).map_err(|_| bad)?;
            if p != end {
                return Err(bad);
            }
            out.extend_from_slice(&n);
            Ok(out)
        }
    }
}

/// Parse a complete message (see the module documentation for what is enforced).
pub fn parse(msg: &[u8]) -> Result<Message, MessageError> {
    let header = Header::parse(msg)?;
    let mut m = Message {
        header,
        ..Default::default()
    };
    let mut pos = HEADER_LEN;
    for _ in 0..header.qdcount {
        let (name, p) = read_name(msg, pos)?;
        let qtype = Rtype(be16(msg, p)?);
        let qclass = be16(msg, p + 2)?;
        m.questions.push(Question {
            name,
            qtype,
            qclass,
        });
        pos = p + 4;
    }
    let counts = [header.ancount, header.nscount, header.arcount];
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let mut seen = 0usize;
    for (section, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            let start = pos;
            let (owner, p) = read_name(msg, pos)?;
            let rtype = Rtype(be16(msg, p)?);
            let class = be16(msg, p + 2)?;
            let ttl_hi = be16(msg, p + 4)?;
            let ttl_lo = be16(msg, p + 6)?;
            let ttl = ((ttl_hi as u32) << 16) | ttl_lo as u32;
            let rdlen = be16(msg, p + 8)? as usize;
            let rstart = p + 10;
            if rstart + rdlen > msg.len() {
                return Err(MessageError::Truncated);
            }
            pos = rstart + rdlen;
            seen += 1;
            if rtype == Rtype::OPT {
                if section != 2 || m.opt.is_some() || owner != [0] {
                    return Err(MessageError::BadOpt);
                }
                m.opt = Some(Opt {
                    udp_size: class,
                    ext_rcode: (ttl >> 24) as u8,
                    version: (ttl >> 16) as u8,
                    flags: ttl as u16,
                    options: msg[rstart..pos].to_vec(),
                });
                continue;
            }
            let rdata = expand_rdata(msg, rtype, rstart, rdlen)?;
            let r = Record {
                owner,
                rtype,
                class,
                ttl,
                rdata,
            };
            if rtype == Rtype::TSIG {
                if section != 2 || seen != total {
                    return Err(MessageError::TsigNotLast);
                }
                m.tsig = Some(TsigAt { start, record: r });
                continue;
            }
            match section {
                0 => m.answer.push(r),
                1 => m.authority.push(r),
                _ => m.additional.push(r),
            }
        }
    }
    if pos != msg.len() {
        return Err(MessageError::TrailingData);
    }
    Ok(m)
}

/// Whether RDATA in uncompressed wire form is well formed for its type.
///
/// Checks the types whose layout is fixed or name-bearing (A, AAAA, the name
/// types, SOA, MX, SRV, TXT, DS, DNSKEY and the like); other types pass.
pub fn rdata_is_valid(rtype: Rtype, rdata: &[u8]) -> bool {
    let name_at = |at: usize| -> Option<usize> {
        crate::name::wire_len(rdata.get(at..)?).ok().map(|l| at + l)
    };
    let strings_ok = |mut at: usize| -> bool {
        while at < rdata.len() {
            at += 1 + rdata[at] as usize;
        }
        at == rdata.len()
    };
    match rtype {
        Rtype::A => rdata.len() == 4,
        Rtype::AAAA => rdata.len() == 16,
        Rtype::DNAME => name_at(0) == Some(rdata.len()),
        Rtype::TXT => !rdata.is_empty() && strings_ok(0),
        Rtype::DS | Rtype::CDS => rdata.len() > 4,
        Rtype::DNSKEY | Rtype::CDNSKEY => rdata.len() > 4,
        Rtype::NSEC3PARAM => rdata.len() >= 5 && rdata.len() == 5 + rdata[4] as usize,
        t => match layout(t) {
            Layout::Opaque => true,
            Layout::Names { fixed, names, tail } => {
                if rdata.len() < fixed {
                    return false;
                }
                let mut at = Some(fixed);
                for _ in 0..names {
                    at = at.and_then(name_at);
                }
                match (at, tail) {
                    (Some(at), Some(t)) => at + t == rdata.len(),
                    (Some(at), None) => at <= rdata.len(),
                    (None, _) => false,
                }
            }
            Layout::Naptr => {
                let mut at = 4usize;
                for _ in 0..3 {
                    match rdata.get(at) {
                        Some(&l) => at += 1 + l as usize,
                        None => return false,
                    }
                }
                name_at(at) == Some(rdata.len())
            }
        },
    }
}

/// RDATA in canonical form for comparison (RFC 4034 §6.2 as updated by RFC 6840 §5.1):
/// names inside the RDATA of the types listed there lowercased.
pub fn canonical_rdata(rtype: Rtype, rdata: &[u8]) -> Vec<u8> {
    let mut out = rdata.to_vec();
    let lower_name_at = |out: &mut Vec<u8>, at: usize| -> Option<usize> {
        let l = crate::name::wire_len(out.get(at..)?).ok()?;
        crate::name::lowercase_in_place(&mut out[at..at + l]);
        Some(at + l)
    };
    match layout(rtype) {
        Layout::Names { fixed, names, .. } if rtype != Rtype::TSIG => {
            let mut at = Some(fixed);
            for _ in 0..names {
                at = at.and_then(|a| lower_name_at(&mut out, a));
            }
        }
        Layout::Naptr => {
            let mut at = 4usize;
            for _ in 0..3 {
                at += 1 + *out.get(at).unwrap_or(&0) as usize;
            }
            let _ = lower_name_at(&mut out, at);
        }
        _ if rtype == Rtype::DNAME => {
            let _ = lower_name_at(&mut out, 0);
        }
        _ => {}
    }
    out
}

/// Whether two RDATA of the same type are equal in canonical form.
pub fn rdata_eq(rtype: Rtype, a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && canonical_rdata(rtype, a) == canonical_rdata(rtype, b)
}

/// The bytes of one question entry: name, type, class.
pub fn question_bytes(name: &[u8], qtype: Rtype, qclass: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 4);
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.0.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

/// Build a message with at most one question, compressing names as [`Writer`] does.
///
/// Returns `None` when the message would exceed 65535 bytes.
pub fn build(
    id: u16,
    flags: u16,
    question: Option<&Question>,
    answer: &[Record],
    authority: &[Record],
    additional: &[Record],
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut w = Writer::new(&mut buf, id, flags);
    if let Some(q) = question {
        let bytes = question_bytes(&q.name, q.qtype, q.qclass);
        w.question(&bytes, q.name.len());
    }
    for (section, records) in [
        (Section::Answer, answer),
        (Section::Authority, authority),
        (Section::Additional, additional),
    ] {
        w.section(section);
        for r in records {
            w.record(&r.owner, r.rtype, r.class, r.ttl, &r.rdata);
            if w.len() > MAX_MESSAGE_LEN {
                return None;
            }
        }
    }
    w.finish();
    (buf.len() <= MAX_MESSAGE_LEN).then_some(buf)
}

/// An answer skeleton for `request`: id, opcode and RD copied, QR set, `rcode`
/// (low 4 bits), the question echoed when there is exactly one and it reads; no records.
pub fn reply_header(request: &[u8], rcode: super::Rcode) -> Vec<u8> {
    let h = Header::parse(request).unwrap_or_default();
    let flags = flag::QR | (h.flags & 0x7800) | (h.flags & flag::RD) | (rcode.0 & 0x0F);
    let question = if h.qdcount == 1 {
        read_name(request, HEADER_LEN)
            .ok()
            .and_then(|(name, p)| Some((name, request.get(p..p + 4)?)))
    } else {
        None
    };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&h.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, u8::from(question.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some((name, tail)) = question {
        out.extend_from_slice(&name);
        out.extend_from_slice(tail);
    }
    out
}

/// Append an OPT record to a finished message and count it in ARCOUNT.
pub fn append_opt(msg: &mut Vec<u8>, udp_size: u16, ext_rcode: u8, flags: u16) {
    msg.push(0);
    msg.extend_from_slice(&Rtype::OPT.0.to_be_bytes());
    msg.extend_from_slice(&udp_size.to_be_bytes());
    msg.push(ext_rcode);
    msg.push(0);
    msg.extend_from_slice(&flags.to_be_bytes());
    msg.extend_from_slice(&[0, 0]);
    bump_arcount(msg);
}

/// Add one to ARCOUNT of a message (after appending a record to it).
pub fn bump_arcount(msg: &mut [u8]) {
    if msg.len() >= HEADER_LEN {
        let n = u16::from_be_bytes([msg[10], msg[11]]).wrapping_add(1);
        msg[10..12].copy_from_slice(&n.to_be_bytes());
    }
}

/// Set the 4-bit header RCODE of a message.
pub fn set_rcode(msg: &mut [u8], rcode: u16) {
    if msg.len() >= HEADER_LEN {
        msg[3] = (msg[3] & 0xF0) | (rcode as u8 & 0x0F);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::from_text;

    fn n(s: &str) -> Vec<u8> {
        from_text(s, &[0]).unwrap()
    }

    fn rec(owner: &str, rtype: Rtype, rdata: &[u8]) -> Record {
        Record {
            owner: n(owner),
            rtype,
            class: 1,
            ttl: 3600,
            rdata: rdata.to_vec(),
        }
    }

    #[test]
    fn build_then_parse_round_trips_with_compression() {
        let mut soa = n("ns1.example.be.");
        soa.extend_from_slice(&n("hostmaster.example.be."));
        soa.extend_from_slice(&[0u8; 20]);
        let answer = vec![
            rec("example.be.", Rtype::SOA, &soa),
            rec("example.be.", Rtype::NS, &n("ns1.example.be.")),
            rec(
                "example.be.",
                Rtype::MX,
                &[&[0u8, 10][..], &n("mx.example.be.")].concat(),
            ),
            rec("www.example.be.", Rtype::A, &[192, 0, 2, 1]),
        ];
        let q = Question {
            name: n("example.be."),
            qtype: Rtype::AXFR,
            qclass: 1,
        };
        let wire = build(7, flag::QR | flag::AA, Some(&q), &answer, &[], &[]).unwrap();
        // Compression made it shorter than the sum of the names.
        assert!(
            wire.len()
                < 12 + 16
                    + answer
                        .iter()
                        .map(|r| r.owner.len() + 10 + r.rdata.len())
                        .sum::<usize>()
        );
        let m = parse(&wire).unwrap();
        assert_eq!(m.header.id, 7);
        assert_eq!(m.questions, vec![q]);
        assert_eq!(m.answer, answer);
        assert!(m.tsig.is_none() && m.opt.is_none());
    }

    #[test]
    fn pointers_must_point_backwards() {
        // Question name is a pointer to itself.
        let msg = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xC0\x0C\x00\x01\x00\x01";
        assert_eq!(parse(msg), Err(MessageError::BadName));
        // Forward pointer.
        let msg = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xC0\x12\x00\x01\x00\x01\x00";
        assert_eq!(parse(msg), Err(MessageError::BadName));
    }

    #[test]
    fn trailing_bytes_and_truncation_are_errors() {
        let q = Question {
            name: n("be."),
            qtype: Rtype::SOA,
            qclass: 1,
        };
        let mut wire = build(1, 0, Some(&q), &[], &[], &[]).unwrap();
        assert!(parse(&wire).is_ok());
        wire.push(0);
        assert_eq!(parse(&wire), Err(MessageError::TrailingData));
        wire.truncate(wire.len() - 3);
        assert!(parse(&wire).is_err());
    }

    #[test]
    fn tsig_must_be_last_and_opt_once() {
        let tsig = rec(
            "key.",
            Rtype::TSIG,
            &[&n("hmac-sha256.")[..], &[0u8; 16]].concat(),
        );
        let a = rec("a.be.", Rtype::A, &[1, 2, 3, 4]);
        let ok = build(1, 0, None, &[], &[], &[a.clone(), tsig.clone()]).unwrap();
        let m = parse(&ok).unwrap();
        assert_eq!(m.tsig.as_ref().unwrap().record, tsig);
        assert_eq!(m.additional, vec![a.clone()]);
        let bad = build(1, 0, None, &[], &[], &[tsig.clone(), a.clone()]).unwrap();
        assert_eq!(parse(&bad), Err(MessageError::TsigNotLast));
        let bad = build(1, 0, None, std::slice::from_ref(&tsig), &[], &[]).unwrap();
        assert_eq!(parse(&bad), Err(MessageError::TsigNotLast));
        let mut two_opt = build(1, 0, None, &[], &[], &[]).unwrap();
        append_opt(&mut two_opt, 1232, 0, 0);
        assert!(parse(&two_opt).unwrap().opt.is_some());
        append_opt(&mut two_opt, 1232, 0, 0);
        assert_eq!(parse(&two_opt), Err(MessageError::BadOpt));
    }

    #[test]
    fn rdata_checks_and_canonical_equality() {
        assert!(rdata_is_valid(Rtype::A, &[1, 2, 3, 4]));
        assert!(!rdata_is_valid(Rtype::A, &[1, 2, 3]));
        assert!(rdata_is_valid(Rtype::NS, &n("ns.be.")));
        assert!(!rdata_is_valid(Rtype::NS, b"\x02ns"));
        assert!(!rdata_is_valid(
            Rtype::NS,
            &[&n("ns.be.")[..], &[0]].concat()
        ));
        assert!(rdata_is_valid(Rtype::TXT, b"\x02hi\x00"));
        assert!(!rdata_is_valid(Rtype::TXT, b"\x05hi"));
        assert!(rdata_is_valid(
            Rtype::NAPTR,
            &[&[0u8, 1, 0, 2, 0, 0, 0][..], &n("x.be.")].concat()
        ));
        assert!(rdata_eq(Rtype::NS, &n("NS.be."), &n("ns.BE.")));
        assert!(!rdata_eq(Rtype::TXT, b"\x01A", b"\x01a"));
        let mx1 = [&[0u8, 5][..], &n("MX.be.")].concat();
        let mx2 = [&[0u8, 5][..], &n("mx.be.")].concat();
        assert!(rdata_eq(Rtype::MX, &mx1, &mx2));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_plausible_headers(
            counts in proptest::collection::vec(0u8..4, 4),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut m = vec![0u8, 1, 0, 0];
            for c in counts { m.extend_from_slice(&[0, c]); }
            m.extend_from_slice(&body);
            let _ = parse(&m);
        }

        #[test]
        fn rdata_helpers_never_panic(t in 0u16..300, rd in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = rdata_is_valid(Rtype(t), &rd);
            let _ = canonical_rdata(Rtype(t), &rd);
        }
    }
}
