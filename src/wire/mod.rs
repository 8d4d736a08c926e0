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
