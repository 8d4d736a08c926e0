//! Unit tests of TSIG: request/answer round trips, each error of RFC 8945 §5.2, streams.

use super::*;
use crate::wire::decode::Record;
use crate::wire::message::{self, flag, Question};

const NOW: u64 = 1_764_000_000;

fn key(name: &str, alg: &str) -> Key {
    Key::from_text(name, alg, "9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=").unwrap()
}

fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    r.insert(key("xfr-key", "hmac-sha256")).unwrap();
    r.insert(key("big-key", "hmac-sha512")).unwrap();
    r
}

fn query(id: u16) -> Vec<u8> {
    let q = Question {
        name: b"\x02be\x00".to_vec(),
        qtype: crate::wire::Rtype::SOA,
        qclass: 1,
    };
    message::build(id, 0, Some(&q), &[], &[], &[]).unwrap()
}

fn answer(id: u16, n: u8) -> Vec<u8> {
    let q = Question {
        name: b"\x02be\x00".to_vec(),
        qtype: crate::wire::Rtype::AXFR,
        qclass: 1,
    };
    let rec = Record {
        owner: b"\x01a\x02be\x00".to_vec(),
        rtype: crate::wire::Rtype::A,
        class: 1,
        ttl: 60,
        rdata: vec![192, 0, 2, n],
    };
    message::build(id, flag::QR | flag::AA, Some(&q), &[rec], &[], &[]).unwrap()
}

fn verified(c: Check) -> Signer {
    match c {
        Check::Verified(s) => s,
        other => panic!("expected Verified, got {other:?}"),
    }
}

fn failed(c: Check) -> Failure {
    match c {
        Check::Failed(f) => f,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn request_and_answer_round_trip_for_each_algorithm() {
    for alg in ["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"] {
        let k = key("k", alg);
        let mut r = KeyRing::new();
        r.insert(k.clone()).unwrap();
        let mut q = query(0x1234);
        let mut v = sign_request(&k, &mut q, NOW).unwrap();
        assert_eq!(u16::from_be_bytes([q[10], q[11]]), 1);
        let mut s = verified(verify_request(&r, &q, NOW + 10));
        let mut a = answer(0x1234, 1);
        s.sign(&mut a, NOW + 11).unwrap();
        assert_eq!(v.verify(&a, NOW + 12), Ok(()), "{alg}");
        assert_eq!(v.finish(), Ok(()));
    }
}

#[test]
fn unsigned_request_is_unsigned() {
    assert!(matches!(
        verify_request(&ring(), &query(1), NOW),
        Check::Unsigned
    ));
}

#[test]
fn unknown_key_or_algorithm_is_badkey_with_unsigned_reply() {
    let mut q = query(7);
    let _ = sign_request(&key("other-key", "hmac-sha256"), &mut q, NOW).unwrap();
    let mut f = failed(verify_request(&ring(), &q, NOW));
    assert_eq!(f.error(), TsigRcode::BADKEY);
    let reply = f.reply(&q, NOW);
    let m = message::parse(&reply).unwrap();
    assert_eq!(m.header.id, 7);
    assert_eq!(m.header.rcode(), 9);
    assert!(m.header.is_response());
    assert_eq!(m.questions.len(), 1);
    let t = TsigRecord::from_record(&m.tsig.unwrap().record).unwrap();
    assert_eq!(t.error, TsigRcode::BADKEY);
    assert!(t.mac.is_empty());
    assert_eq!(t.key_name, b"\x09other-key\x00");

    // Right name, wrong algorithm.
    let mut q = query(8);
    let _ = sign_request(&key("xfr-key", "hmac-sha512"), &mut q, NOW).unwrap();
    assert_eq!(
        failed(verify_request(&ring(), &q, NOW)).error(),
        TsigRcode::BADKEY
    );
}

#[test]
fn wrong_secret_or_changed_message_is_badsig() {
    let mut q = query(9);
    let wrong = Key::from_text("xfr-key", "hmac-sha256", "c2VjcmV0").unwrap();
    let mut v = sign_request(&wrong, &mut q, NOW).unwrap();
    let mut f = failed(verify_request(&ring(), &q, NOW));
    assert_eq!(f.error(), TsigRcode::BADSIG);
    // The client sees the server's BADSIG.
    assert_eq!(
        v.verify(&f.reply(&q, NOW), NOW),
        Err(VerifyError::Peer(TsigRcode::BADSIG))
    );

    let mut q = query(10);
    let _ = sign_request(&key("xfr-key", "hmac-sha256"), &mut q, NOW).unwrap();
    q[2] ^= 0x01; // RD flipped after signing
    assert_eq!(
        failed(verify_request(&ring(), &q, NOW)).error(),
        TsigRcode::BADSIG
    );
}

#[test]
fn id_is_replaced_by_original_id() {
    // A forwarder may change the id: the MAC covers the original id (RFC 8945 §4.3.1).
    let mut q = query(11);
    let _ = sign_request(&key("xfr-key", "hmac-sha256"), &mut q, NOW).unwrap();
    q[0] = 0xAB;
    assert!(matches!(
        verify_request(&ring(), &q, NOW),
        Check::Verified(_)
    ));
}

#[test]
fn old_request_is_badtime_with_signed_reply_carrying_server_time() {
    let k = key("xfr-key", "hmac-sha256");
    let mut q = query(12);
    let mut v = sign_request(&k, &mut q, NOW).unwrap();
    let server_now = NOW + 301;
    let mut f = failed(verify_request(&ring(), &q, server_now));
    assert_eq!(f.error(), TsigRcode::BADTIME);
    let reply = f.reply(&q, server_now);
    let m = message::parse(&reply).unwrap();
    let t = TsigRecord::from_record(&m.tsig.unwrap().record).unwrap();
    assert_eq!(t.time_signed, NOW);
    assert_eq!(t.other, time48(server_now).to_vec());
    assert_eq!(t.mac.len(), 32);
    // The client verifies the MAC, then reports the error.
    assert_eq!(
        v.verify(&reply, NOW),
        Err(VerifyError::Peer(TsigRcode::BADTIME))
    );
    // Inside the fudge on either side it passes.
    assert!(matches!(
        verify_request(&ring(), &q, NOW - 300),
        Check::Verified(_)
    ));
}

#[test]
fn truncated_macs() {
    let k = key("xfr-key", "hmac-sha256");
    let mut q = query(13);
    let _ = sign_request(&k, &mut q, NOW).unwrap();
    let parsed = message::parse(&q).unwrap();
    let at = parsed.tsig.unwrap();
    let mut t = TsigRecord::from_record(&at.record).unwrap();
    let rebuild = |t: &TsigRecord| {
        let mut m = q[..at.start].to_vec();
        t.write(&mut m);
        m
    };
    // Truncated to 16 bytes: valid MAC, but the key's policy wants 32: BADTRUNC, signed.
    t.mac.truncate(16);
    let m16 = rebuild(&t);
    assert_eq!(
        failed(verify_request(&ring(), &m16, NOW)).error(),
        TsigRcode::BADTRUNC
    );
    let mut lenient = KeyRing::new();
    lenient.insert(key("xfr-key", "hmac-sha256-128")).unwrap();
    assert!(matches!(
        verify_request(&lenient, &m16, NOW),
        Check::Verified(_)
    ));
    // Below max(10, L/2): FORMERR.
    t.mac.truncate(12);
    assert!(matches!(
        verify_request(&lenient, &rebuild(&t), NOW),
        Check::FormErr
    ));
    // Longer than the hash: FORMERR.
    t.mac = vec![0; 33];
    assert!(matches!(
        verify_request(&ring(), &rebuild(&t), NOW),
        Check::FormErr
    ));
    // Empty MAC: BADSIG.
    t.mac.clear();
    assert_eq!(
        failed(verify_request(&ring(), &rebuild(&t), NOW)).error(),
        TsigRcode::BADSIG
    );
}

#[test]
fn misplaced_or_malformed_tsig_is_formerr() {
    let k = key("xfr-key", "hmac-sha256");
    let mut q = query(14);
    let _ = sign_request(&k, &mut q, NOW).unwrap();
    // A second TSIG after the first.
    let mut twice = q.clone();
    let tsig_at = message::parse(&q).unwrap().tsig.unwrap().start;
    let tail = q[tsig_at..].to_vec();
    twice.extend_from_slice(&tail);
    message::bump_arcount(&mut twice);
    assert!(matches!(
        verify_request(&ring(), &twice, NOW),
        Check::FormErr
    ));
    // Class IN instead of ANY.
    let mut bad = q.clone();
    let class_at = tsig_at + k.name().len() + 2;
    bad[class_at + 1] = 1;
    bad[class_at] = 0;
    assert!(matches!(verify_request(&ring(), &bad, NOW), Check::FormErr));
}

#[test]
fn stream_signing_every_message_and_with_gaps() {
    let k = key("xfr-key", "hmac-sha256");
    let mut q = query(15);
    let mut v = sign_request(&k, &mut q, NOW).unwrap();
    let mut s = verified(verify_request(&ring(), &q, NOW));
    for i in 0..5u8 {
        let mut a = answer(15, i);
        if i == 0 || i == 4 || !s.skip(&a) {
            s.sign(&mut a, NOW).unwrap();
        }
        v.verify(&a, NOW).unwrap();
    }
    v.finish().unwrap();

    // The first message cannot be skipped; a tampered unsigned message breaks the next MAC.
    let mut q = query(16);
    let mut v = sign_request(&k, &mut q, NOW).unwrap();
    let mut s = verified(verify_request(&ring(), &q, NOW));
    assert!(!s.skip(&answer(16, 0)));
    let mut a0 = answer(16, 0);
    s.sign(&mut a0, NOW).unwrap();
    let a1 = answer(16, 1);
    assert!(s.skip(&a1));
    let mut a2 = answer(16, 2);
    s.sign(&mut a2, NOW).unwrap();
    v.verify(&a0, NOW).unwrap();
    let mut a1_bad = a1.clone();
    let last = a1_bad.len() - 1;
    a1_bad[last] ^= 1;
    v.verify(&a1_bad, NOW).unwrap();
    assert_eq!(v.finish(), Err(VerifyError::LastUnsigned));
    assert_eq!(v.verify(&a2, NOW), Err(VerifyError::BadSig));
}

#[test]
fn at_most_99_unsigned_in_a_row() {
    let k = key("xfr-key", "hmac-sha256");
    let mut q = query(17);
    let mut v = sign_request(&k, &mut q, NOW).unwrap();
    let mut s = verified(verify_request(&ring(), &q, NOW));
    let mut first = answer(17, 0);
    s.sign(&mut first, NOW).unwrap();
    v.verify(&first, NOW).unwrap();
    for _ in 0..99 {
        let a = answer(17, 1);
        assert!(s.skip(&a));
        v.verify(&a, NOW).unwrap();
    }
    let a = answer(17, 2);
    assert!(!s.skip(&a));
    assert_eq!(v.verify(&a, NOW), Err(VerifyError::TooManyUnsigned));
}

#[test]
fn client_rejects_unsigned_or_foreign_answers() {
    let k = key("xfr-key", "hmac-sha256");
    let mut q = query(18);
    let mut v = sign_request(&k, &mut q, NOW).unwrap();
    assert_eq!(v.verify(&answer(18, 0), NOW), Err(VerifyError::Unsigned));
    // Signed by a signer holding another key.
    let mut other_ring = KeyRing::new();
    let other = key("big-key", "hmac-sha512");
    other_ring.insert(other.clone()).unwrap();
    let mut q2 = query(18);
    let _ = sign_request(&other, &mut q2, NOW).unwrap();
    let mut s = verified(verify_request(&other_ring, &q2, NOW));
    let mut a = answer(18, 0);
    s.sign(&mut a, NOW).unwrap();
    assert_eq!(v.verify(&a, NOW), Err(VerifyError::WrongKey));
    // An answer signed long ago.
    let mut q3 = query(19);
    let mut v3 = sign_request(&k, &mut q3, NOW).unwrap();
    let mut s3 = verified(verify_request(&ring(), &q3, NOW));
    let mut a3 = answer(19, 0);
    s3.sign(&mut a3, NOW - 1000).unwrap();
    assert_eq!(v3.verify(&a3, NOW), Err(VerifyError::BadTime));
}

#[test]
fn tsig_len_is_what_sign_appends() {
    let k = key("xfr-key", "hmac-sha512");
    let mut r = KeyRing::new();
    r.insert(k.clone()).unwrap();
    let mut q = query(20);
    let _ = sign_request(&k, &mut q, NOW).unwrap();
    let mut s = verified(verify_request(&r, &q, NOW));
    let mut a = answer(20, 0);
    let before = a.len();
    s.sign(&mut a, NOW).unwrap();
    assert_eq!(a.len() - before, s.tsig_len());
}

proptest::proptest! {
    #[test]
    fn verify_never_panics_on_garbage(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let _ = verify_request(&ring(), &bytes, NOW);
    }

    #[test]
    fn verify_never_panics_on_mutated_signed_requests(pos in 0usize..200, val in proptest::prelude::any::<u8>(), cut in 0usize..200) {
        let mut q = query(21);
        let mut v = sign_request(&key("xfr-key", "hmac-sha256"), &mut q, NOW).unwrap();
        let p = pos % q.len();
        q[p] = val;
        let _ = verify_request(&ring(), &q, NOW);
        let c = cut % q.len();
        let _ = verify_request(&ring(), &q[..c], NOW);
        let _ = v.verify(&q, NOW);
        let _ = v.verify(&q[..c], NOW);
    }
}
