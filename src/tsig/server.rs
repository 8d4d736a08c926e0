//! Server side: verify a request (RFC 8945 §5.2), sign the answer or answers (§5.3), error answers (§5.3.2).

use super::{
    digest_message, digest_timers, digest_variables, mac_matches, start_with_mac, time48, time_ok,
    Algorithm, Key, KeyRing, TsigRcode, TsigRecord, DEFAULT_FUDGE, MAX_UNSIGNED_IN_A_ROW,
};
use crate::wire::message::{self, Message, MAX_MESSAGE_LEN};
use crate::wire::Rcode;
use ring::hmac;

/// The outcome of checking a request's TSIG, telling what to answer.
#[derive(Debug)]
pub enum Check {
    /// No TSIG in the request: treat it as unauthenticated.
    Unsigned,
    /// Signed with a known key and verified: answer, and sign the answer with this signer.
    Verified(Signer),
    /// Signed but failed: answer with [`Failure::reply`] (or [`Failure::finish`] an answer).
    Failed(Failure),
    /// The TSIG record is malformed, misplaced or repeated: answer FORMERR, unsigned (RFC 8945 §5.1).
    FormErr,
}

/// Check the TSIG of a request (parses the message; see [`verify_parsed`]).
pub fn verify_request(keys: &KeyRing, msg: &[u8], now: u64) -> Check {
    match message::parse(msg) {
        Ok(m) => verify_parsed(keys, msg, &m, now),
        Err(_) => Check::FormErr,
    }
}

/// Check the TSIG of a request already parsed from `msg`, in the order of RFC 8945 §5.2:
/// key (BADKEY), MAC size (FORMERR) and MAC (BADSIG), time (BADTIME), truncation (BADTRUNC).
pub fn verify_parsed(keys: &KeyRing, msg: &[u8], parsed: &Message, now: u64) -> Check {
    let Some(at) = &parsed.tsig else {
        return Check::Unsigned;
    };
    let Ok(t) = TsigRecord::from_record(&at.record) else {
        return Check::FormErr;
    };
    let key = match keys.get(&t.key_name) {
        Some(k) if Algorithm::from_wire(&t.algorithm) == Some(k.algorithm()) => k,
        _ => return Check::Failed(Failure::new(TsigRcode::BADKEY, t, None)),
    };
    let full = key.algorithm().mac_len();
    if t.mac.len() > full || (!t.mac.is_empty() && t.mac.len() < (full / 2).max(10)) {
        return Check::FormErr;
    }
    let mut ctx = hmac::Context::with_key(key.hmac());
    digest_message(&mut ctx, msg, at.start, t.original_id, true);
    digest_variables(
        &mut ctx,
        &t.key_name,
        &t.algorithm,
        t.time_signed,
        t.fudge,
        t.error,
        &t.other,
    );
    if !mac_matches(ctx.sign().as_ref(), &t.mac) {
        return Check::Failed(Failure::new(TsigRcode::BADSIG, t, None));
    }
    let signer = Signer::new(key.clone(), &t.mac, t.original_id);
    if !time_ok(now, t.time_signed, t.fudge) {
        return Check::Failed(Failure::new(TsigRcode::BADTIME, t, Some(signer)));
    }
    if t.mac.len() < key.min_mac_len() {
        return Check::Failed(Failure::new(TsigRcode::BADTRUNC, t, Some(signer)));
    }
    Check::Verified(signer)
}

/// A signed answer would exceed 65535 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("message too long for its TSIG record")]
pub struct TooLong;

/// Signs the answer to a verified request, or each message of a multi-message answer.
///
/// The first message's MAC covers the request MAC, the message and all TSIG
/// variables; each later one covers the previous MAC, the messages sent
/// unsigned since (see [`Signer::skip`]), this message and the timers (RFC 8945 §5.3.1).
pub struct Signer {
    key: Key,
    prior: Vec<u8>,
    original_id: u16,
    first: bool,
    pending: Option<hmac::Context>,
    unsigned: u16,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.key)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn new(key: Key, request_mac: &[u8], original_id: u16) -> Signer {
        Signer {
            key,
            prior: request_mac.to_vec(),
            original_id,
            first: true,
            pending: None,
            unsigned: 0,
        }
    }

    /// The key that signed the request.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Bytes [`Signer::sign`] appends to a message (reserve them when filling a message).
    pub fn tsig_len(&self) -> usize {
        self.key.name().len()
            + 10
            + self.key.algorithm().wire_name().len()
            + 16
            + self.key.algorithm().mac_len()
    }

    /// Sign a finished answer message: append the TSIG record and count it in ARCOUNT.
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) -> Result<(), TooLong> {
        self.sign_with(msg, now, TsigRcode::NOERROR, &[])
    }

    /// Leave this message of a multi-message answer unsigned.
    ///
    /// Returns false, and does nothing, when it must be signed: the first
    /// message, or after 99 unsigned ones in a row. The last message of an
    /// answer must always be signed.
    pub fn skip(&mut self, msg: &[u8]) -> bool {
        if self.first || self.unsigned >= MAX_UNSIGNED_IN_A_ROW {
            return false;
        }
        let ctx = self
            .pending
            .get_or_insert_with(|| start_with_mac(&self.key, &self.prior));
        digest_message(ctx, msg, msg.len(), self.original_id, false);
        self.unsigned += 1;
        true
    }

    fn sign_with(
        &mut self,
        msg: &mut Vec<u8>,
        time: u64,
        error: TsigRcode,
        other: &[u8],
    ) -> Result<(), TooLong> {
        if msg.len() + self.tsig_len() + other.len() > MAX_MESSAGE_LEN {
            return Err(TooLong);
        }
        let mut ctx = match self.pending.take() {
            Some(c) => c,
            None => start_with_mac(&self.key, &self.prior),
        };
        digest_message(&mut ctx, msg, msg.len(), self.original_id, false);
        let alg = self.key.algorithm().wire_name();
        if self.first {
            digest_variables(
                &mut ctx,
                self.key.name(),
                alg,
                time,
                DEFAULT_FUDGE,
                error,
                other,
            );
        } else {
            digest_timers(&mut ctx, time, DEFAULT_FUDGE);
        }
        let mac = ctx.sign().as_ref().to_vec();
        let rec = TsigRecord {
            key_name: self.key.name().to_vec(),
            algorithm: alg.to_vec(),
            time_signed: time,
            fudge: DEFAULT_FUDGE,
            mac: mac.clone(),
            original_id: self.original_id,
            error,
            other: other.to_vec(),
        };
        rec.write(msg);
        message::bump_arcount(msg);
        self.prior = mac;
        self.first = false;
        self.unsigned = 0;
        Ok(())
    }
}

/// A request whose TSIG failed: which error, and how to answer it (RFC 8945 §5.2, §5.3.2).
#[derive(Debug)]
pub struct Failure {
    error: TsigRcode,
    request: TsigRecord,
    signer: Option<Signer>,
}

impl Failure {
    fn new(error: TsigRcode, request: TsigRecord, signer: Option<Signer>) -> Failure {
        Failure {
            error,
            request,
            signer,
        }
    }

    /// The TSIG error to report: BADKEY, BADSIG, BADTIME or BADTRUNC.
    pub fn error(&self) -> TsigRcode {
        self.error
    }

    /// The key name the request used (wire form, as sent), for logs.
    pub fn key_name(&self) -> &[u8] {
        &self.request.key_name
    }

    /// The request's signing time, for logs.
    pub fn time_signed(&self) -> u64 {
        self.request.time_signed
    }

    /// Turn a finished answer into the error answer: RCODE NOTAUTH and a TSIG record
    /// with the error; unsigned (empty MAC) for BADKEY and BADSIG, signed for BADTIME
    /// (with the request's time and our time as other data) and BADTRUNC.
    pub fn finish(&mut self, reply: &mut Vec<u8>, now: u64) -> Result<(), TooLong> {
        message::set_rcode(reply, Rcode::NOTAUTH.0);
        match self.signer.as_mut() {
            Some(s) if self.error == TsigRcode::BADTIME => {
                s.sign_with(reply, self.request.time_signed, self.error, &time48(now))
            }
            Some(s) => s.sign_with(reply, now, self.error, &[]),
            None => {
                let rec = TsigRecord {
                    key_name: self.request.key_name.clone(),
                    algorithm: self.request.algorithm.clone(),
                    time_signed: now,
                    fudge: DEFAULT_FUDGE,
                    mac: Vec::new(),
                    original_id: self.request.original_id,
                    error: self.error,
                    other: Vec::new(),
                };
                if reply.len() + rec.wire_len() > MAX_MESSAGE_LEN {
                    return Err(TooLong);
                }
                rec.write(reply);
                message::bump_arcount(reply);
                Ok(())
            }
        }
    }

    /// The whole error answer to `request`: its header and question echoed, RCODE
    /// NOTAUTH, and the TSIG record of [`Failure::finish`].
    pub fn reply(&mut self, request: &[u8], now: u64) -> Vec<u8> {
        let mut out = message::reply_header(request, Rcode::NOTAUTH);
        // A reply of header, one question and one TSIG record always fits.
        let _ = self.finish(&mut out, now);
        out
    }
}
