//! Transaction signatures (TSIG, RFC 8945): keys, verifying requests, signing answers and requests.
//!
//! Owns the TSIG record format (RFC 8945 §4), the MAC computation (§4.3),
//! the server's checks in the RFC's order (§5.2: key, MAC, time, truncation)
//! and the error answers they call for (§5.3.2), the signing of multi-message
//! answers such as zone transfers (§5.3.1), and the client side: signing a
//! request (NOTIFY out, inbound transfers) and verifying its answers (§5.4).
//! Keys come from BIND key files ([`keyfile`]) or the TOML config ([`TsigConfig`]);
//! MACs are computed by `ring::hmac`.
//!
//! It does not decide who may do what (that is [`crate::acl`]), does no I/O, and
//! keeps no clock: every call takes `now` in seconds since the Unix epoch.
//! Not implemented: HMAC-MD5 and HMAC-SHA224 (not in `ring`), TKEY / GSS-TSIG,
//! and the optional replay cache of §5.2.3 (a request whose time is older than
//! the last one seen from the same key is still accepted inside the fudge).
//!
//! Use on the server:
//! 1. [`verify_request`] → [`Check::Unsigned`] (apply the ACL as for no key),
//!    [`Check::Verified`] (answer, then [`Signer::sign`] every answer message),
//!    [`Check::Failed`] (send [`Failure::reply`]: NOTAUTH with the TSIG error),
//!    or [`Check::FormErr`] (answer FORMERR, unsigned).
//!
//! On the client: [`sign_request`] appends the TSIG and returns a
//! [`ResponseVerifier`]; call [`ResponseVerifier::verify`] on every answer
//! message and [`ResponseVerifier::finish`] after the last one.

mod client;
mod key;
pub mod keyfile;
mod server;

pub use client::{sign_request, ResponseVerifier, VerifyError};
pub use key::{
    decode_secret, parse_algorithm, Algorithm, Key, KeyConfig, KeyError, KeyRing, TsigConfig,
};
pub use server::{verify_parsed, verify_request, Check, Failure, Signer};

use crate::wire::decode::Record;
use crate::wire::message::HEADER_LEN;
use crate::wire::{Class, Rtype};
use ring::hmac;

/// Fudge we send: the RFC 8945 §10 recommendation.
pub const DEFAULT_FUDGE: u16 = 300;

/// Most messages of a signed stream that may go unsigned in a row (RFC 8945 §5.3.1).
pub const MAX_UNSIGNED_IN_A_ROW: u16 = 99;

/// A TSIG error code (RFC 8945 §3, IANA "DNS RCODEs"), carried in the TSIG record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TsigRcode(pub u16);

impl TsigRcode {
    /// No error.
    pub const NOERROR: TsigRcode = TsigRcode(0);
    /// The MAC does not verify.
    pub const BADSIG: TsigRcode = TsigRcode(16);
    /// The key (or its algorithm) is not known.
    pub const BADKEY: TsigRcode = TsigRcode(17);
    /// The signing time is outside the fudge.
    pub const BADTIME: TsigRcode = TsigRcode(18);
    /// The MAC is truncated more than local policy accepts.
    pub const BADTRUNC: TsigRcode = TsigRcode(22);

    /// The mnemonic, for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NOERROR",
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            19 => "BADMODE",
            20 => "BADNAME",
            21 => "BADALG",
            22 => "BADTRUNC",
            _ => "unknown TSIG error",
        }
    }
}

impl std::fmt::Display for TsigRcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The fields of a TSIG record (RFC 8945 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigRecord {
    /// Key name, wire form as received.
    pub key_name: Vec<u8>,
    /// Algorithm name, wire form as received.
    pub algorithm: Vec<u8>,
    /// Signing time, seconds since the epoch (48 bits on the wire).
    pub time_signed: u64,
    /// Allowed clock difference in seconds.
    pub fudge: u16,
    /// The MAC (possibly truncated, possibly empty in error answers).
    pub mac: Vec<u8>,
    /// Message id when the message was signed.
    pub original_id: u16,
    /// TSIG error.
    pub error: TsigRcode,
    /// Other data (the server's time in BADTIME answers).
    pub other: Vec<u8>,
}

/// Why a TSIG record is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Class is not ANY or TTL is not 0 (RFC 8945 §4.2).
    #[error("TSIG class must be ANY and TTL 0")]
    ClassOrTtl,
    /// RDATA fields do not add up to its length.
    #[error("malformed TSIG RDATA")]
    Rdata,
}

impl TsigRecord {
    /// Read a TSIG record as returned by [`crate::wire::message::parse`].
    pub fn from_record(r: &Record) -> Result<TsigRecord, FormatError> {
        if r.class != Class::ANY.0 || r.ttl != 0 {
            return Err(FormatError::ClassOrTtl);
        }
        let d = &r.rdata;
        let alen = crate::name::wire_len(d).map_err(|_| FormatError::Rdata)?;
        let field = |at: usize, len: usize| d.get(at..at + len).ok_or(FormatError::Rdata);
        let u16_at = |at: usize| -> Result<u16, FormatError> {
            let b = field(at, 2)?;
            Ok(u16::from_be_bytes([b[0], b[1]]))
        };
        let mut t = [0u8; 8];
        t[2..].copy_from_slice(field(alen, 6)?);
        let fudge = u16_at(alen + 6)?;
        let mac_len = u16_at(alen + 8)? as usize;
        let mac = field(alen + 10, mac_len)?.to_vec();
        let p = alen + 10 + mac_len;
        let original_id = u16_at(p)?;
        let error = TsigRcode(u16_at(p + 2)?);
        let other_len = u16_at(p + 4)? as usize;
        let other = field(p + 6, other_len)?.to_vec();
        if p + 6 + other_len != d.len() {
            return Err(FormatError::Rdata);
        }
        Ok(TsigRecord {
            key_name: r.owner.clone(),
            algorithm: d[..alen].to_vec(),
            time_signed: u64::from_be_bytes(t),
            fudge,
            mac,
            original_id,
            error,
            other,
        })
    }

    /// Append the whole record (owner, type, class ANY, TTL 0, RDATA), names uncompressed.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key_name);
        out.extend_from_slice(&Rtype::TSIG.0.to_be_bytes());
        out.extend_from_slice(&Class::ANY.0.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        let rdlen = self.algorithm.len() + 16 + self.mac.len() + self.other.len();
        out.extend_from_slice(&(rdlen as u16).to_be_bytes());
        out.extend_from_slice(&self.algorithm);
        out.extend_from_slice(&time48(self.time_signed));
        out.extend_from_slice(&self.fudge.to_be_bytes());
        out.extend_from_slice(&(self.mac.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.original_id.to_be_bytes());
        out.extend_from_slice(&self.error.0.to_be_bytes());
        out.extend_from_slice(&(self.other.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.other);
    }

    /// Bytes [`TsigRecord::write`] appends.
    pub fn wire_len(&self) -> usize {
        self.key_name.len() + 10 + self.algorithm.len() + 16 + self.mac.len() + self.other.len()
    }
}

/// The low 48 bits of a time, big-endian (the Time Signed field).
pub(crate) fn time48(t: u64) -> [u8; 6] {
    let b = t.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The current time in seconds since the Unix epoch, for the `now` arguments.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Digest the message part of a signed message: header with `original_id` and
/// ARCOUNT less one when `strip` (the TSIG was in it), then everything up to `end`.
pub(crate) fn digest_message(
    ctx: &mut hmac::Context,
    msg: &[u8],
    end: usize,
    original_id: u16,
    strip: bool,
) {
    if msg.len() < HEADER_LEN || end < HEADER_LEN || end > msg.len() {
        ctx.update(msg);
        return;
    }
    ctx.update(&original_id.to_be_bytes());
    ctx.update(&msg[2..10]);
    let ar = u16::from_be_bytes([msg[10], msg[11]]);
    let ar = if strip { ar.wrapping_sub(1) } else { ar };
    ctx.update(&ar.to_be_bytes());
    ctx.update(&msg[HEADER_LEN..end]);
}

/// Digest the TSIG variables (RFC 8945 §4.3.3), names in canonical (lowercase) form.
pub(crate) fn digest_variables(
    ctx: &mut hmac::Context,
    key_name: &[u8],
    algorithm: &[u8],
    time_signed: u64,
    fudge: u16,
    error: TsigRcode,
    other: &[u8],
) {
    ctx.update(&crate::name::to_lowercase(key_name));
    ctx.update(&Class::ANY.0.to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(&crate::name::to_lowercase(algorithm));
    digest_timers(ctx, time_signed, fudge);
    ctx.update(&error.0.to_be_bytes());
    ctx.update(&(other.len() as u16).to_be_bytes());
    ctx.update(other);
}

/// Digest the TSIG timers (RFC 8945 §5.3.1: later messages of a stream).
pub(crate) fn digest_timers(ctx: &mut hmac::Context, time_signed: u64, fudge: u16) {
    ctx.update(&time48(time_signed));
    ctx.update(&fudge.to_be_bytes());
}

/// Start a digest with a prior MAC (its length, then its bytes).
pub(crate) fn start_with_mac(key: &Key, mac: &[u8]) -> hmac::Context {
    let mut ctx = hmac::Context::with_key(key.hmac());
    ctx.update(&(mac.len() as u16).to_be_bytes());
    ctx.update(mac);
    ctx
}

/// Compare a received (possibly truncated) MAC with the computed one in constant time.
pub(crate) fn mac_matches(computed: &[u8], received: &[u8]) -> bool {
    match computed.get(..received.len()) {
        Some(prefix) if !received.is_empty() => {
            // Constant-time comparison of equal-length slices.
            let mut diff = 0u8;
            for (a, b) in prefix.iter().zip(received) {
                diff |= a ^ b;
            }
            diff == 0
        }
        _ => false,
    }
}

/// Whether `now` is inside `time_signed ± fudge`.
pub(crate) fn time_ok(now: u64, time_signed: u64, fudge: u16) -> bool {
    now.abs_diff(time_signed) <= fudge as u64
}

#[cfg(test)]
mod tests;
