//! Decoding whole responses into owned values: for tests, tools and the CLI, not the query path.
//!
//! Follows compression pointers (RFC 1035 §4.1.4) with a hop limit, expands
//! compressed names inside the RDATA of the types that may carry them, and
//! reads the OPT record and its Extended DNS Error option (RFC 8914).

use super::types::Rtype;

/// One decoded resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name, uncompressed wire form, case as received.
    pub owner: Vec<u8>,
    /// Type.
    pub rtype: Rtype,
    /// Class.
    pub class: u16,
    /// TTL.
    pub ttl: u32,
    /// RDATA with names expanded.
    pub rdata: Vec<u8>,
}

/// A decoded message.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// Id.
    pub id: u16,
    /// Flags word.
    pub flags: u16,
    /// Full rcode (extended bits from OPT included).
    pub rcode: u16,
    /// Question name.
    pub qname: Vec<u8>,
    /// Question type.
    pub qtype: u16,
    /// Answer section.
    pub answer: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section, OPT excluded.
    pub additional: Vec<Record>,
    /// OPT: (payload size, version, DO).
    pub opt: Option<(u16, u8, bool)>,
    /// Extended DNS Error: (info code, text).
    pub ede: Option<(u16, String)>,
    /// Every EDNS option of the OPT record, in order: (code, data).
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Message {
    /// Whether a header flag is set.
    pub fn flag(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }

    /// The data of the first EDNS option with this code.
    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    }

    /// Records of a type in a section.
    pub fn of(section: &[Record], t: Rtype) -> Vec<&Record> {
        section.iter().filter(|r| r.rtype == t).collect()
    }
}

fn read_name(msg: &[u8], mut pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len & 0xC0 == 0xC0 {
            let lo = *msg.get(pos + 1)? as usize;
            if end.is_none() {
                end = Some(pos + 2);
            }
            pos = ((len & 0x3F) << 8) | lo;
            continue;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        out.extend_from_slice(msg.get(pos..pos + 1 + len)?);
        pos += 1 + len;
        if len == 0 {
            return Some((out, end.unwrap_or(pos)));
        }
        if out.len() > 255 {
            return None;
        }
    }
    None
}

fn expand_rdata(msg: &[u8], rtype: Rtype, start: usize, len: usize) -> Option<Vec<u8>> {
    let raw = msg.get(start..start + len)?;
    let mut v = Vec::new();
    match rtype {
        Rtype::NS | Rtype::CNAME | Rtype::PTR => v = read_name(msg, start)?.0,
        Rtype::MX => {
            v.extend_from_slice(raw.get(..2)?);
            v.extend_from_slice(&read_name(msg, start + 2)?.0);
        }
        Rtype::SOA => {
            let (m, p) = read_name(msg, start)?;
            let (r, p) = read_name(msg, p)?;
            v.extend_from_slice(&m);
            v.extend_from_slice(&r);
            v.extend_from_slice(msg.get(p..p + 20)?);
        }
        _ => v.extend_from_slice(raw),
    }
    Some(v)
}

/// Decode a response; `None` if it is malformed.
pub fn decode(msg: &[u8]) -> Option<Message> {
    if msg.len() < 12 {
        return None;
    }
    let be16 =
        |p: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(p)?, *msg.get(p + 1)?])) };
    let mut m = Message {
        id: be16(0)?,
        flags: be16(2)?,
        ..Default::default()
    };
    m.rcode = m.flags & 0x0F;
    let counts = [be16(4)?, be16(6)?, be16(8)?, be16(10)?];
    let mut pos = 12;
    for _ in 0..counts[0] {
        let (n, p) = read_name(msg, pos)?;
        m.qname = n;
        m.qtype = be16(p)?;
        pos = p + 4;
    }
    for (section, &count) in counts[1..].iter().enumerate() {
        for _ in 0..count {
            let (owner, p) = read_name(msg, pos)?;
            let rtype = Rtype(be16(p)?);
            let class = be16(p + 2)?;
            let ttl = u32::from_be_bytes(msg.get(p + 4..p + 8)?.try_into().ok()?);
            let rdlen = be16(p + 8)? as usize;
            let rstart = p + 10;
            if rstart + rdlen > msg.len() {
                return None;
            }
            pos = rstart + rdlen;
            if rtype == Rtype::OPT {
                m.opt = Some((class, (ttl >> 16) as u8, ttl & 0x8000 != 0));
                m.rcode |= ((ttl >> 24) as u16) << 4;
                let mut o = rstart;
                while o + 4 <= rstart + rdlen {
                    let code = be16(o)?;
                    let olen = be16(o + 2)? as usize;
                    m.options
                        .push((code, msg.get(o + 4..o + 4 + olen)?.to_vec()));
                    if code == super::types::option::EDE && olen >= 2 {
                        let info = be16(o + 4)?;
                        let text =
                            String::from_utf8_lossy(msg.get(o + 6..o + 4 + olen)?).into_owned();
                        m.ede = Some((info, text));
                    }
                    o += 4 + olen;
                }
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
            match section {
                0 => m.answer.push(r),
                1 => m.authority.push(r),
                _ => m.additional.push(r),
            }
        }
    }
    Some(m)
}

/// Build a query with EDNS (payload size, DO) and the given options (for tests and tools).
pub fn build_query_with(
    id: u16,
    qname: &[u8],
    qtype: Rtype,
    edns: (u16, bool),
    options: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut m = build_query(id, qname, qtype, Some(edns));
    let len: usize = options.iter().map(|(_, d)| 4 + d.len()).sum();
    let n = m.len();
    m[n - 2..].copy_from_slice(&(len as u16).to_be_bytes());
    for (code, data) in options {
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
    }
    m
}

/// Build a query message (for tests and tools).
pub fn build_query(id: u16, qname: &[u8], qtype: Rtype, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[
        0x00,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        if edns.is_some() { 1 } else { 0 },
    ]);
    m.extend_from_slice(qname);
    m.extend_from_slice(&qtype.0.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some((size, dnssec_ok)) = edns {
        m.push(0);
        m.extend_from_slice(&Rtype::OPT.0.to_be_bytes());
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    m
}
