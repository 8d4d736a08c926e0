//! Client side: sign a request, verify the answer or answers (RFC 8945 §5.1, §5.4).

use super::{
    digest_message, digest_timers, digest_variables, mac_matches, start_with_mac, time_ok,
    Algorithm, Key, TsigRcode, TsigRecord, DEFAULT_FUDGE, MAX_UNSIGNED_IN_A_ROW,
};
use crate::wire::message::{self, Message, MAX_MESSAGE_LEN};
use ring::hmac;

pub use super::server::TooLong;

/// Why an answer to a signed request is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The answer is not a well-formed message, or its TSIG record is malformed.
    #[error("malformed answer or TSIG record")]
    Malformed,
    /// The first answer message carries no TSIG.
    #[error("answer is not signed")]
    Unsigned,
    /// More than 99 messages in a row without TSIG (RFC 8945 §5.3.1).
    #[error("too many unsigned messages in a row")]
    TooManyUnsigned,
    /// The last message of the answer was not signed.
    #[error("last message of the answer is not signed")]
    LastUnsigned,
    /// Signed with another key or algorithm than the request.
    #[error("answer signed with another key")]
    WrongKey,
    /// The MAC does not verify (or is shorter than the key's policy accepts).
    #[error("answer MAC does not verify")]
    BadSig,
    /// The answer's signing time is outside its fudge.
    #[error("answer signing time outside the fudge")]
    BadTime,
    /// The server reported a TSIG error about our request.
    #[error("server reports TSIG error {0}")]
    Peer(TsigRcode),
}

/// Sign a finished request with `key` (appends the TSIG record, counts it in ARCOUNT).
///
/// Returns the verifier for the answer(s).
pub fn sign_request(key: &Key, msg: &mut Vec<u8>, now: u64) -> Result<ResponseVerifier, TooLong> {
    let alg = key.algorithm().wire_name();
    let rec_len = key.name().len() + 10 + alg.len() + 16 + key.algorithm().mac_len();
    if msg.len() < message::HEADER_LEN || msg.len() + rec_len > MAX_MESSAGE_LEN {
        return Err(TooLong);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let mut ctx = hmac::Context::with_key(key.hmac());
    digest_message(&mut ctx, msg, msg.len(), id, false);
    digest_variables(
        &mut ctx,
        key.name(),
        alg,
        now,
        DEFAULT_FUDGE,
        TsigRcode::NOERROR,
        &[],
    );
    let mac = ctx.sign().as_ref().to_vec();
    TsigRecord {
        key_name: key.name().to_vec(),
        algorithm: alg.to_vec(),
        time_signed: now,
        fudge: DEFAULT_FUDGE,
        mac: mac.clone(),
        original_id: id,
        error: TsigRcode::NOERROR,
        other: Vec::new(),
    }
    .write(msg);
    message::bump_arcount(msg);
    Ok(ResponseVerifier {
        key: key.clone(),
        prior: mac,
        original_id: id,
        first: true,
        pending: None,
        unsigned: 0,
        last_signed: false,
    })
}

/// Verifies the answer message(s) to one signed request, in order.
pub struct ResponseVerifier {
    key: Key,
    prior: Vec<u8>,
    original_id: u16,
    first: bool,
    pending: Option<hmac::Context>,
    unsigned: u16,
    last_signed: bool,
}

impl std::fmt::Debug for ResponseVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseVerifier")
            .field("key", &self.key)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

impl ResponseVerifier {
    /// Verify the next answer message (parses it; see [`ResponseVerifier::verify_parsed`]).
    pub fn verify(&mut self, msg: &[u8], now: u64) -> Result<(), VerifyError> {
        let parsed = message::parse(msg).map_err(|_| VerifyError::Malformed)?;
        self.verify_parsed(msg, &parsed, now)
    }

    /// Verify the next answer message, already parsed from `msg`.
    ///
    /// The first message must be signed; later ones may be unsigned, at most 99 in a row.
    pub fn verify_parsed(
        &mut self,
        msg: &[u8],
        parsed: &Message,
        now: u64,
    ) -> Result<(), VerifyError> {
        let Some(at) = &parsed.tsig else {
            if self.first {
                return Err(VerifyError::Unsigned);
            }
            if self.unsigned >= MAX_UNSIGNED_IN_A_ROW {
                return Err(VerifyError::TooManyUnsigned);
            }
            let ctx = self
                .pending
                .get_or_insert_with(|| start_with_mac(&self.key, &self.prior));
            digest_message(ctx, msg, msg.len(), self.original_id, false);
            self.unsigned += 1;
            self.last_signed = false;
            return Ok(());
        };
        let t = TsigRecord::from_record(&at.record).map_err(|_| VerifyError::Malformed)?;
        if !crate::name::eq_ignore_case(&t.key_name, self.key.name())
            || Algorithm::from_wire(&t.algorithm) != Some(self.key.algorithm())
        {
            return Err(VerifyError::WrongKey);
        }
        if t.error != TsigRcode::NOERROR && t.mac.is_empty() {
            return Err(VerifyError::Peer(t.error));
        }
        if t.mac.len() > self.key.algorithm().mac_len() || t.mac.len() < self.key.min_mac_len() {
            return Err(VerifyError::BadSig);
        }
        let mut ctx = match self.pending.take() {
            Some(c) => c,
            None => start_with_mac(&self.key, &self.prior),
        };
        digest_message(&mut ctx, msg, at.start, t.original_id, true);
        if self.first {
            digest_variables(
                &mut ctx,
                &t.key_name,
                &t.algorithm,
                t.time_signed,
                t.fudge,
                t.error,
                &t.other,
            );
        } else {
            digest_timers(&mut ctx, t.time_signed, t.fudge);
        }
        if !mac_matches(ctx.sign().as_ref(), &t.mac) {
            return Err(VerifyError::BadSig);
        }
        if t.error != TsigRcode::NOERROR {
            return Err(VerifyError::Peer(t.error));
        }
        if !time_ok(now, t.time_signed, t.fudge) {
            return Err(VerifyError::BadTime);
        }
        self.prior = t.mac;
        self.first = false;
        self.unsigned = 0;
        self.last_signed = true;
        Ok(())
    }

    /// After the last answer message: whether the answer as a whole is authenticated.
    pub fn finish(&self) -> Result<(), VerifyError> {
        if self.first {
            Err(VerifyError::Unsigned)
        } else if !self.last_signed {
            Err(VerifyError::LastUnsigned)
        } else {
            Ok(())
        }
    }
}
