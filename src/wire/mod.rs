//! DNS message wire format: protocol numbers, query parsing and answer writing.
//!
//! Owns the byte-level view of a DNS message (RFC 1035 §4, EDNS per RFC 6891,
//! Extended DNS Errors per RFC 8914). It knows nothing about zones: the query
//! handler decides what goes into an answer, this module only reads and writes
//! bytes, without heap allocation.

pub mod decode;
pub mod message;
pub mod query;
pub mod types;
pub mod writer;

pub use query::{parse_query, Edns, ParseError, Query};
pub use types::{Class, Opcode, Rcode, Rtype};
pub use writer::{Compressor, Writer};

/// Skip a (possibly compressed) name in `m` at `at`; the offset just after it, or
/// `None` when the message ends first or a label type is unknown. No allocation.
pub fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let l = *m.get(at)?;
        match l & 0xC0 {
            0 if l == 0 => return Some(at + 1),
            0 => at += 1 + l as usize,
            0xC0 => return Some(at + 2),
            _ => return None,
        }
    }
}
