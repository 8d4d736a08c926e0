//! NOTIFY (RFC 1996): building and matching requests and answers, both directions.
//!
//! Out (we are the primary): [`build`] a request, sign it if needed
//! ([`crate::tsig::sign_request`]), send it ([`send`] does one UDP attempt),
//! and check the answer with [`check_response`]. Retries and backoff are the
//! caller's (RFC 1996 §3.6: retry until answered or a limit is reached).
//! In (we are a secondary): [`parse`] a request and answer it with [`response`].

use crate::name::eq_ignore_case;
use crate::serial::soa_serial;
use crate::tsig::{self, Key, ResponseVerifier, VerifyError};
use crate::wire::decode::Record;
use crate::wire::message::{self, flag, Question};
use crate::wire::{Class, Opcode, Rcode, Rtype};
use std::net::SocketAddr;
use std::time::Duration;

/// Why a NOTIFY exchange failed or a NOTIFY request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The message is not a well-formed NOTIFY of the expected kind.
    #[error("malformed NOTIFY message")]
    Malformed,
    /// The answer is not for our request (id, opcode or question differ).
    #[error("answer does not match the request")]
    Mismatch,
    /// The secondary answered with an error RCODE.
    #[error("secondary answered RCODE {0}")]
    Rcode(u16),
    /// The answer's TSIG did not verify.
    #[error("TSIG: {0}")]
    Tsig(VerifyError),
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// Network failure.
    #[error("network failure")]
    Io,
}

const NOTIFY_FLAGS: u16 = (Opcode::NOTIFY.0 as u16) << 11;

/// A NOTIFY request for `zone` (RFC 1996 §3.7): AA set, question (zone, SOA, IN),
/// and the current SOA in the answer section when given (a hint of the new serial).
pub fn build(id: u16, zone: &[u8], soa: Option<&Record>) -> Vec<u8> {
    let q = Question {
        name: zone.to_vec(),
        qtype: Rtype::SOA,
        qclass: Class::IN.0,
    };
    let answer: Vec<Record> = soa.into_iter().cloned().collect();
    // A question and one SOA are far below 65535 bytes.
    message::build(id, NOTIFY_FLAGS | flag::AA, Some(&q), &answer, &[], &[]).unwrap_or_default()
}

/// Check the answer to a NOTIFY request with id `id` for `zone` (RFC 1996 §4.7),
/// verifying its TSIG when the request was signed.
pub fn check_response(
    id: u16,
    zone: &[u8],
    answer: &[u8],
    verifier: Option<&mut ResponseVerifier>,
    now: u64,
) -> Result<(), NotifyError> {
    let m = message::parse(answer).map_err(|_| NotifyError::Malformed)?;
    if !m.header.is_response() || m.header.id != id || m.header.opcode() != Opcode::NOTIFY {
        return Err(NotifyError::Mismatch);
    }
    match m.questions.as_slice() {
        [] => {}
        [q] if q.qtype == Rtype::SOA && eq_ignore_case(&q.name, zone) => {}
        _ => return Err(NotifyError::Mismatch),
    }
    if let Some(v) = verifier {
        if let Err(e) = v.verify_parsed(answer, &m, now) {
            if e == VerifyError::Unsigned && m.rcode() != 0 {
                return Err(NotifyError::Rcode(m.rcode()));
            }
            return Err(NotifyError::Tsig(e));
        }
    }
    match m.rcode() {
        0 => Ok(()),
        r => Err(NotifyError::Rcode(r)),
    }
}

/// An incoming NOTIFY request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Message id.
    pub id: u16,
    /// The zone, wire form as sent.
    pub zone: Vec<u8>,
    /// The serial announced in the answer section, if any (a hint only, RFC 1996 §3.11).
    pub serial: Option<u32>,
}

/// Read an incoming NOTIFY request (opcode NOTIFY, QR clear, one SOA question of class IN).
pub fn parse(msg: &[u8]) -> Result<Notify, NotifyError> {
    let m = message::parse(msg).map_err(|_| NotifyError::Malformed)?;
    if m.header.is_response() || m.header.opcode() != Opcode::NOTIFY {
        return Err(NotifyError::Malformed);
    }
    let [q] = m.questions.as_slice() else {
        return Err(NotifyError::Malformed);
    };
    if q.qtype != Rtype::SOA || q.qclass != Class::IN.0 {
        return Err(NotifyError::Malformed);
    }
    let serial = m
        .answer
        .iter()
        .find(|r| r.rtype == Rtype::SOA && eq_ignore_case(&r.owner, &q.name))
        .and_then(|r| soa_serial(&r.rdata));
    Ok(Notify {
        id: m.header.id,
        zone: q.name.clone(),
        serial,
    })
}

/// The answer to a NOTIFY request: question echoed, AA set, `rcode`
/// (NOERROR, or NOTAUTH for a zone we are not secondary for, REFUSED by ACL).
/// Sign it afterwards when the request was signed.
pub fn response(request: &[u8], rcode: Rcode) -> Vec<u8> {
    let mut out = message::reply_header(request, rcode);
    if out.len() >= 4 {
        out[2] |= (flag::AA >> 8) as u8;
    }
    out
}

/// Send one NOTIFY over UDP to `target` and wait up to `wait` for its answer.
///
/// Signed with `key` when given; the answer must then be signed too.
pub async fn send(
    target: SocketAddr,
    zone: &[u8],
    soa: Option<&Record>,
    key: Option<&Key>,
    wait: Duration,
) -> Result<(), NotifyError> {
    use ring::rand::SecureRandom;
    let mut idb = [0u8; 2];
    ring::rand::SystemRandom::new()
        .fill(&mut idb)
        .map_err(|_| NotifyError::Io)?;
    let id = u16::from_be_bytes(idb);
    let mut msg = build(id, zone, soa);
    let mut verifier = match key {
        Some(k) => {
            Some(tsig::sign_request(k, &mut msg, tsig::now()).map_err(|_| NotifyError::Malformed)?)
        }
        None => None,
    };
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|_| NotifyError::Io)?;
    sock.connect(target).await.map_err(|_| NotifyError::Io)?;
    sock.send(&msg).await.map_err(|_| NotifyError::Io)?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| NotifyError::Timeout)?
            .map_err(|_| NotifyError::Io)?;
        match check_response(id, zone, &buf[..n], verifier.as_mut(), tsig::now()) {
            // Stray datagrams are not our answer: keep waiting.
            Err(NotifyError::Mismatch) | Err(NotifyError::Malformed) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soa(serial: u32) -> Record {
        let mut rdata = b"\x02ns\x02be\x00\x02hm\x02be\x00".to_vec();
        for v in [serial, 1, 2, 3, 4] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        Record {
            owner: b"\x02be\x00".to_vec(),
            rtype: Rtype::SOA,
            class: 1,
            ttl: 3600,
            rdata,
        }
    }

    #[test]
    fn build_parse_respond_check() {
        let req = build(77, b"\x02be\x00", Some(&soa(2026)));
        let n = parse(&req).unwrap();
        assert_eq!(
            n,
            Notify {
                id: 77,
                zone: b"\x02be\x00".to_vec(),
                serial: Some(2026)
            }
        );
        let resp = response(&req, Rcode::NOERROR);
        assert_eq!(check_response(77, b"\x02BE\x00", &resp, None, 0), Ok(()));
        assert_eq!(
            check_response(78, b"\x02be\x00", &resp, None, 0),
            Err(NotifyError::Mismatch)
        );
        assert_eq!(
            check_response(77, b"\x02nl\x00", &resp, None, 0),
            Err(NotifyError::Mismatch)
        );
        let refused = response(&req, Rcode::REFUSED);
        assert_eq!(
            check_response(77, b"\x02be\x00", &refused, None, 0),
            Err(NotifyError::Rcode(5))
        );
        // The request itself is not an answer; a query is not a NOTIFY.
        assert_eq!(
            check_response(77, b"\x02be\x00", &req, None, 0),
            Err(NotifyError::Mismatch)
        );
        let q = message::build(
            1,
            0,
            Some(&Question {
                name: b"\x02be\x00".to_vec(),
                qtype: Rtype::SOA,
                qclass: 1,
            }),
            &[],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(parse(&q), Err(NotifyError::Malformed));
        assert_eq!(parse(&build(5, b"\x02be\x00", None)).unwrap().serial, None);
    }

    #[test]
    fn signed_notify_round_trip() {
        let key = Key::from_text("n-key", "hmac-sha256", "c2VjcmV0c2VjcmV0").unwrap();
        let mut ring = tsig::KeyRing::new();
        ring.insert(key.clone()).unwrap();
        let mut req = build(9, b"\x02be\x00", None);
        let mut v = tsig::sign_request(&key, &mut req, 1000).unwrap();
        let mut s = match tsig::verify_request(&ring, &req, 1000) {
            tsig::Check::Verified(s) => s,
            other => panic!("{other:?}"),
        };
        let mut resp = response(&req, Rcode::NOERROR);
        s.sign(&mut resp, 1000).unwrap();
        assert_eq!(
            check_response(9, b"\x02be\x00", &resp, Some(&mut v), 1000),
            Ok(())
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let _ = check_response(1, b"\x02be\x00", &bytes, None, 0);
            let _ = response(&bytes, Rcode::NOERROR);
        }
    }
}
