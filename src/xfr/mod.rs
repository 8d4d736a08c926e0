//! Zone transfers in (AXFR RFC 5936, IXFR RFC 1995) and NOTIFY messages (RFC 1996).
//!
//! Owns the client side of transfers: the SOA refresh check (RFC 1982 serial
//! comparison), AXFR and IXFR over TCP with TSIG on every message verified,
//! fallback from IXFR to AXFR, and the limits that keep a hostile or broken
//! primary from making us wait or grow without bound (timeouts per connect, per
//! message and per transfer; a cap on records and on decoded bytes). It also
//! owns the NOTIFY request and response formats, both directions.
//!
//! It does not apply what it receives: a transfer yields either a full zone
//! ([`Transfer::Full`], records in the order received, the SOA first) or a list
//! of differences ([`Transfer::Incremental`]), which the publisher diffs,
//! checks and signs. It does not serve transfers (the transfer-out code does),
//! and it keeps no state between transfers.
//!
//! Shape: [`client::Reader`] is the protocol core, fed one message at a time
//! and doing no I/O (property-tested on hostile input); the async functions
//! [`client::query_soa`], [`client::transfer`] and [`client::refresh`] are a
//! thin tokio shell around it. [`notify`] builds and matches NOTIFY messages
//! and sends one over UDP.

pub mod client;
pub mod follow;
pub mod notify;

pub use client::{query_soa, refresh, transfer, Diff, Kind, Primary, Reader, Refresh, Transfer};

use std::time::Duration;

/// Bounds on one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time to set up the TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next message (and for the UDP SOA answer).
    pub message_timeout: Duration,
    /// Longest time for the whole transfer.
    pub transfer_timeout: Duration,
    /// Most records accepted in one transfer (all difference sequences counted).
    pub max_records: usize,
    /// Most bytes of owner names and RDATA accepted in one transfer, decoded.
    pub max_bytes: usize,
}

impl Default for Limits {
    /// Sized for a TLD: 30 M records (the signed 1.8 M-delegation zone is about 7 M), 4 GiB.
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(10),
            message_timeout: Duration::from_secs(30),
            transfer_timeout: Duration::from_secs(3600),
            max_records: 30_000_000,
            max_bytes: 4 << 30,
        }
    }
}

/// Why a SOA query or transfer failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XfrError {
    /// Network failure (connect, read, write).
    #[error("network: {0}")]
    Io(String),
    /// No answer in time; names which wait ran out.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The primary answered with an error RCODE (REFUSED, NOTAUTH, NOTIMP, …).
    #[error("primary answered RCODE {0}")]
    Rcode(u16),
    /// The TSIG of an answer did not verify, or the primary reported a TSIG error.
    #[error("TSIG: {0}")]
    Tsig(crate::tsig::VerifyError),
    /// The answer breaks the protocol (names what).
    #[error("malformed transfer: {0}")]
    Malformed(&'static str),
    /// The transfer exceeds a configured limit (names which).
    #[error("transfer too large: more than the configured {0}")]
    TooLarge(&'static str),
    /// The connection ended before the transfer was complete.
    #[error("connection closed before the end of the transfer")]
    Closed,
}

impl XfrError {
    /// Whether an IXFR that failed this way is worth retrying as AXFR: the primary
    /// does not do IXFR (NOTIMP, FORMERR, REFUSED, SERVFAIL) or sent a broken
    /// difference sequence. Network, TSIG and limit failures are not.
    pub fn ixfr_fallback(&self) -> bool {
        matches!(
            self,
            XfrError::Rcode(1 | 2 | 4 | 5) | XfrError::Malformed(_)
        )
    }
}

#[cfg(test)]
mod tests;
