//! Parsing a query message without allocation (RFC 1035 §4.1, RFC 6891 §6).
//!
//! The parser borrows from the packet. It checks only what the handler needs
//! and what RFC 8906 asks of a server: one question, a well-formed name, well-formed
//! resource records after it, at most one OPT record, owned by the root.
//! Messages with QR=1 or shorter than a header are dropped, never answered.
//! Of the EDNS options it reads the DNS COOKIE (RFC 7873 §4: a COOKIE of a
//! length other than 8 or 16 to 40 bytes is a format error, §5.2.2; the first
//! COOKIE counts) and notes an NSID request (RFC 5001 §2.1); the others are skipped.

use super::types::{option, Class, Opcode, Rtype};
use crate::name;

/// EDNS information from a query's OPT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (values below 512 are treated as 512).
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// The DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// Whether the query asked for the server's NSID (RFC 5001).
    pub nsid: bool,
}

/// A parsed query; names and question bytes point into the packet.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// Message id.
    pub id: u16,
    /// Header flags word (bytes 2–3 of the header).
    pub flags: u16,
    /// Opcode from the flags word.
    pub opcode: Opcode,
    /// The question name, uncompressed wire form, letter case as sent.
    pub qname: &'a [u8],
    /// The whole question entry (name, type, class) as sent, for echoing.
    pub question: &'a [u8],
    /// Question type.
    pub qtype: Rtype,
    /// Question class.
    pub qclass: Class,
    /// EDNS, if the query carried an OPT record.
    pub edns: Option<Edns>,
    /// The data of the DNS COOKIE option (client cookie, then any server cookie), if any.
    pub cookie: Option<&'a [u8]>,
}

/// Why a message could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not to be answered at all (too short for a header, or a response).
    Drop,
    /// Malformed: answer FORMERR, echoing only the header.
    FormErr,
}

const HEADER_LEN: usize = 12;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skip a possibly compressed name; returns the offset just past it.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, ParseError> {
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::FormErr)?;
        match len & 0xC0 {
            0x00 => {
                pos += 1 + len as usize;
                total += 1 + len as usize;
                if total > name::MAX_NAME_LEN || pos > msg.len() {
                    return Err(ParseError::FormErr);
                }
                if len == 0 {
                    return Ok(pos);
                }
            }
            0xC0 => {
                if pos + 2 > msg.len() {
                    return Err(ParseError::FormErr);
                }
                return Ok(pos + 2);
            }
            _ => return Err(ParseError::FormErr),
        }
    }
}

/// Parse a query. Never panics, whatever the bytes.
pub fn parse_query(msg: &[u8]) -> Result<Query<'_>, ParseError> {
    if msg.len() < HEADER_LEN {
        return Err(ParseError::Drop);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Err(ParseError::Drop);
    }
    let opcode = Opcode(((flags >> 11) & 0x0F) as u8);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let nscount = u16::from_be_bytes([msg[8], msg[9]]);
    let arcount = u16::from_be_bytes([msg[10], msg[11]]);
    if qdcount != 1 {
        return Err(ParseError::FormErr);
    }
    let qlen = name::wire_len(&msg[HEADER_LEN..]).map_err(|_| ParseError::FormErr)?;
    let qname = &msg[HEADER_LEN..HEADER_LEN + qlen];
    let mut pos = HEADER_LEN + qlen;
    let qtype = Rtype(be16(msg, pos).ok_or(ParseError::FormErr)?);
    let qclass = Class(be16(msg, pos + 2).ok_or(ParseError::FormErr)?);
    pos += 4;
    let question = &msg[HEADER_LEN..pos];

    for _ in 0..(ancount as usize + nscount as usize) {
        pos = skip_name(msg, pos)?;
        let rdlen = be16(msg, pos + 8).ok_or(ParseError::FormErr)? as usize;
        pos += 10 + rdlen;
        if pos > msg.len() {
            return Err(ParseError::FormErr);
        }
    }
    let mut edns = None;
    let mut cookie = None;
    for _ in 0..arcount {
        let owner = pos;
        pos = skip_name(msg, pos)?;
        let rtype = be16(msg, pos).ok_or(ParseError::FormErr)?;
        let rdlen = be16(msg, pos + 8).ok_or(ParseError::FormErr)? as usize;
        let rdata = pos + 10;
        if rdata + rdlen > msg.len() {
            return Err(ParseError::FormErr);
        }
        if Rtype(rtype) == Rtype::OPT {
            // RFC 6891 §6.1.1: one OPT only, owned by the root.
            if edns.is_some() || msg[owner] != 0 {
                return Err(ParseError::FormErr);
            }
            let udp_size = be16(msg, pos + 2).ok_or(ParseError::FormErr)?;
            let version = msg[pos + 5];
            let dnssec_ok = msg[pos + 6] & 0x80 != 0;
            // Options must be well formed.
            let mut nsid = false;
            let mut o = rdata;
            while o < rdata + rdlen {
                let code = be16(msg, o).ok_or(ParseError::FormErr)?;
                let olen = be16(msg, o + 2).ok_or(ParseError::FormErr)? as usize;
                let data = msg.get(o + 4..o + 4 + olen).ok_or(ParseError::FormErr)?;
                match code {
                    option::COOKIE => {
                        // RFC 7873 §5.2.2: a client cookie alone (8), or with a server cookie of 8 to 32.
                        if !(olen == 8 || (16..=40).contains(&olen)) {
                            return Err(ParseError::FormErr);
                        }
                        cookie = cookie.or(Some(data));
                    }
                    option::NSID => nsid = true,
                    _ => {}
                }
                o += 4 + olen;
            }
            if o != rdata + rdlen {
                return Err(ParseError::FormErr);
            }
            edns = Some(Edns {
                udp_size,
                version,
                dnssec_ok,
                nsid,
            });
        }
        pos = rdata + rdlen;
    }
    Ok(Query {
        id,
        flags,
        opcode,
        qname,
        question,
        qtype,
        qclass,
        edns,
        cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, edns: Option<(u16, u8, bool)>) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        if let Some((size, ver, d)) = edns {
            m[11] = 1;
            m.push(0);
            m.extend_from_slice(&41u16.to_be_bytes());
            m.extend_from_slice(&size.to_be_bytes());
            m.push(0);
            m.push(ver);
            m.push(if d { 0x80 } else { 0 });
            m.push(0);
            m.extend_from_slice(&0u16.to_be_bytes());
        }
        m
    }

    #[test]
    fn parses_plain_and_edns_queries() {
        let m = query(b"\x03foo\x02be\x00", 2, None);
        let q = parse_query(&m).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qname, b"\x03foo\x02be\x00");
        assert_eq!(q.qtype, Rtype::NS);
        assert!(q.edns.is_none());
        let m = query(b"\x03foo\x02be\x00", 43, Some((1232, 0, true)));
        let q = parse_query(&m).unwrap();
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 1232,
                version: 0,
                dnssec_ok: true,
                nsid: false,
            })
        );
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_query(&[0; 11]).unwrap_err(), ParseError::Drop);
        let mut m = query(b"\x02be\x00", 1, None);
        m[2] |= 0x80;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::Drop);
        let mut m = query(b"\x02be\x00", 1, None);
        m[5] = 2;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::FormErr);
        let m = query(b"\x02be\x00", 1, None);
        assert_eq!(
            parse_query(&m[..m.len() - 1]).unwrap_err(),
            ParseError::FormErr
        );
        // Compression pointer in the question.
        let m = query(b"\xc0\x0c", 1, None);
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::FormErr);
        // Two OPT records.
        let mut m = query(b"\x02be\x00", 1, Some((1232, 0, false)));
        let opt = m[m.len() - 11..].to_vec();
        m.extend_from_slice(&opt);
        m[11] = 2;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::FormErr);
        // Bad option length.
        let mut m = query(b"\x02be\x00", 1, Some((1232, 0, false)));
        let n = m.len();
        m[n - 1] = 4;
        m.extend_from_slice(&[0, 15, 0, 9]);
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::FormErr);
    }

    /// A query with an OPT record holding the given options.
    fn with_options(opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = query(b"\x02be\x00", 6, Some((1232, 0, false)));
        let n = m.len();
        let len: usize = opts.iter().map(|(_, d)| 4 + d.len()).sum();
        m[n - 2..].copy_from_slice(&(len as u16).to_be_bytes());
        for (code, data) in opts {
            m.extend_from_slice(&code.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn cookie_and_nsid_options() {
        let q = with_options(&[(option::NSID, b""), (option::COOKIE, &[7; 8])]);
        let p = parse_query(&q).unwrap();
        assert!(p.edns.unwrap().nsid);
        assert_eq!(p.cookie, Some(&[7u8; 8][..]));
        let q = with_options(&[(option::COOKIE, &[1; 24]), (option::COOKIE, &[2; 8])]);
        assert_eq!(
            parse_query(&q).unwrap().cookie,
            Some(&[1u8; 24][..]),
            "the first counts"
        );
        let q = with_options(&[(12, &[0; 5])]);
        let p = parse_query(&q).unwrap();
        assert!(p.cookie.is_none() && !p.edns.unwrap().nsid);
        // RFC 7873 §5.2.2: lengths 0-7, 9-15 and over 40 are malformed.
        for len in (0..8).chain(9..16).chain(41..44) {
            let data = vec![0u8; len];
            let q = with_options(&[(option::COOKIE, &data)]);
            assert_eq!(parse_query(&q).unwrap_err(), ParseError::FormErr, "{len}");
        }
        for len in [8, 16, 24, 40] {
            let data = vec![0u8; len];
            assert!(parse_query(&with_options(&[(option::COOKIE, &data)])).is_ok());
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(0u8..=255, 0..600)) {
            let _ = parse_query(&bytes);
        }
    }
}
