//! Differential property test of the query parser: random, generated and mutated messages
//! go through `belfry::wire::parse_query` and through hickory-proto's decoder.
//!
//! - Where hickory parses a well-formed query (one question, a query message, and hickory's
//!   own encoder gives back the same bytes, so nothing was normalised away), belfry must
//!   extract the same id, opcode, RD, question (name bytes as sent, type, class) and EDNS
//!   fields (payload size, version, DO).
//! - Where belfry refuses, the answer must be what RFC 6891 and RFC 8906 ask: no answer to
//!   a response or to less than a header; FORMERR echoing the header only for a malformed
//!   message; and for a well-formed one BADVERS (with OPT) for an EDNS version above 0,
//!   NOTIMP for an opcode other than QUERY. Every answer belfry writes is itself read by
//!   the hickory oracle ([`common::oracle::parse`]).

mod common;

use belfry::handler::{handle, HandlerConfig, Snapshot};
use belfry::wire::{parse_query, ParseError};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::sync::{Arc, OnceLock};

/// The sample zone, unsigned, for the handler's answers.
fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let zone =
            belfry::zone::load_file(&common::root().join("zones/be.zone"), &common::wire("be."))
                .unwrap();
        let serial = zone.serial();
        Snapshot {
            zone: Arc::new(zone),
            dnssec: None,
            suppressions: Arc::new(belfry::suppress::Suppressions::new()),
            serial,
        }
    })
}

fn name_bytes(n: &Name) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    n.emit(&mut enc).unwrap();
    buf
}

/// EDNS of a generated query: payload size, version, DO, options (code, data).
type EdnsSpec = (u16, u8, bool, Vec<(u16, Vec<u8>)>);

/// A query as hickory would send it.
#[derive(Clone, Debug)]
struct Spec {
    id: u16,
    opcode: u8,
    rd: bool,
    cd: bool,
    labels: Vec<Vec<u8>>,
    qtype: u16,
    qclass: u16,
    edns: Option<EdnsSpec>,
}

fn encode(s: &Spec) -> Option<Vec<u8>> {
    let name = Name::from_labels(s.labels.iter().map(|l| l.as_slice())).ok()?;
    let mut m = Message::new(s.id, MessageType::Query, OpCode::from_u8(s.opcode));
    m.metadata.recursion_desired = s.rd;
    m.metadata.checking_disabled = s.cd;
    let mut q = Query::query(name, RecordType::from(s.qtype));
    q.set_query_class(DNSClass::from(s.qclass));
    m.add_query(q);
    if let Some((size, version, dnssec_ok, opts)) = &s.edns {
        let mut e = Edns::new();
        e.set_max_payload(*size);
        e.set_version(*version);
        e.set_dnssec_ok(*dnssec_ok);
        for (code, data) in opts {
            e.options_mut()
                .insert(EdnsOption::Unknown(*code, data.clone()));
        }
        m.set_edns(e);
    }
    m.to_vec().ok()
}

fn label() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-zA-Z0-9-]{1,12}".prop_map(|s| s.into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 1..20),
        1 => Just(b"*".to_vec()),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let edns = proptest::option::of((
        any::<u16>(),
        prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        any::<bool>(),
        proptest::collection::vec(
            (20u16..60000, proptest::collection::vec(any::<u8>(), 0..12)),
            0..3,
        ),
    ));
    (
        any::<u16>(),
        prop_oneof![6 => Just(0u8), 1 => 1u8..16],
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(label(), 0..5),
        prop_oneof![3 => prop::sample::select(vec![1u16, 2, 6, 15, 16, 28, 43, 46, 48, 50, 51, 255, 41, 252]), 1 => any::<u16>()],
        prop_oneof![4 => Just(1u16), 1 => prop::sample::select(vec![3u16, 4, 254, 255]), 1 => any::<u16>()],
        edns,
    )
        .prop_map(|(id, opcode, rd, cd, labels, qtype, qclass, edns)| Spec {
            id,
            opcode,
            rd,
            cd,
            labels,
            qtype,
            qclass,
            edns,
        })
}

/// One change to a message's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    /// Append a copy of the last `n` bytes and count one more additional record.
    DuplicateTail(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => (1usize..30).prop_map(Mutation::DuplicateTail),
    ]
}

fn mutate(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let n = b.len().max(1);
        match *m {
            Mutation::Set(p, v) => {
                if !b.is_empty() {
                    b[p % n] = v;
                }
            }
            Mutation::Truncate(p) => b.truncate(p % n),
            Mutation::Insert(p, v) => b.insert(p % (b.len() + 1), v),
            Mutation::Remove(p) => {
                if !b.is_empty() {
                    b.remove(p % n);
                }
            }
            Mutation::DuplicateTail(k) => {
                let k = k.min(b.len());
                let tail = b[b.len() - k..].to_vec();
                b.extend_from_slice(&tail);
                if b.len() >= 12 {
                    let ar = u16::from_be_bytes([b[10], b[11]]).wrapping_add(1);
                    b[10..12].copy_from_slice(&ar.to_be_bytes());
                }
            }
        }
    }
    b
}

/// hickory's reading of a message when it is a well-formed query that hickory would
/// encode to exactly the same bytes (so no field was normalised on the way).
fn canonical_query(bytes: &[u8]) -> Option<Message> {
    let m = Message::from_vec(bytes).ok()?;
    if m.metadata.message_type != MessageType::Query || m.queries.len() != 1 {
        return None;
    }
    (m.to_vec().ok()? == bytes).then_some(m)
}

/// The whole check for one message; returns whether hickory found it a canonical query.
fn check(bytes: &[u8]) -> bool {
    let parsed = parse_query(bytes);
    let hickory = canonical_query(bytes);
    if let Some(h) = &hickory {
        let q = parsed.as_ref().unwrap_or_else(|e| {
            panic!("hickory reads a well-formed query, belfry refuses ({e:?}): {bytes:02x?}")
        });
        let hq = &h.queries[0];
        assert_eq!(q.id, h.metadata.id);
        assert_eq!(q.opcode.0, u8::from(h.metadata.op_code));
        assert_eq!(q.flags & 0x0100 != 0, h.metadata.recursion_desired);
        assert_eq!(q.qname, &name_bytes(hq.name())[..], "question name as sent");
        assert_eq!(q.qtype.0, u16::from(hq.query_type()));
        assert_eq!(q.qclass.0, u16::from(hq.query_class()));
        assert_eq!(
            q.edns.map(|e| (e.udp_size, e.version, e.dnssec_ok)),
            h.edns
                .as_ref()
                .map(|e| (e.max_payload(), e.version(), e.flags().dnssec_ok)),
            "EDNS fields"
        );
    }
    let mut out = Vec::new();
    let answered = handle(
        snapshot(),
        &HandlerConfig::default(),
        bytes,
        false,
        &mut out,
    );
    match parsed {
        Err(ParseError::Drop) => {
            assert!(!answered, "dropped messages get no answer");
            assert!(
                bytes.len() < 12 || bytes[2] & 0x80 != 0,
                "only responses and runts are dropped: {bytes:02x?}"
            );
        }
        Err(ParseError::FormErr) => {
            assert!(answered);
            let r = common::oracle::parse(&out);
            assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
            assert_eq!(r.metadata.message_type, MessageType::Response);
            assert_eq!(r.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
            assert_eq!(u8::from(r.metadata.op_code), (bytes[2] >> 3) & 0x0F);
            assert!(r.queries.is_empty() && r.answers.is_empty() && r.edns.is_none());
        }
        Ok(q) => {
            assert!(answered, "a parsed query is answered");
            let r = common::oracle::parse(&out);
            assert_eq!(r.metadata.id, q.id);
            assert_eq!(r.metadata.message_type, MessageType::Response);
            assert_eq!(r.metadata.recursion_desired, q.flags & 0x0100 != 0);
            assert_eq!(r.queries.len(), 1, "the question is echoed");
            assert_eq!(name_bytes(r.queries[0].name()), q.qname);
            // RFC 6891 §7: an OPT in the query gets an OPT in the answer.
            assert_eq!(r.edns.is_some(), q.edns.is_some());
            let rcode = r.metadata.response_code;
            if q.edns.is_some_and(|e| e.version > 0) {
                // 16 is BADVERS in an answer with OPT (hickory names the number BADSIG).
                assert_eq!(u16::from(rcode), 16, "RFC 6891 §6.1.3: BADVERS");
            } else if q.opcode.0 != 0 {
                assert_eq!(rcode, ResponseCode::NotImp, "RFC 8906 §3.1.3");
            } else if q.qtype.0 == 41 {
                assert_eq!(rcode, ResponseCode::FormErr, "OPT is not a question type");
            } else {
                assert!(
                    matches!(
                        rcode,
                        ResponseCode::NoError
                            | ResponseCode::NXDomain
                            | ResponseCode::Refused
                            | ResponseCode::NotImp
                    ),
                    "{rcode:?}"
                );
            }
        }
    }
    hickory.is_some()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Queries hickory writes: belfry reads the same fields, and answers them as RFC 6891
    /// and RFC 8906 ask.
    #[test]
    fn well_formed_queries_agree(s in spec()) {
        if let Some(bytes) = encode(&s) {
            check(&bytes);
        }
    }

    /// Mutated queries: whatever hickory still reads as a well-formed query, belfry reads
    /// the same; what belfry refuses is refused the way the RFCs ask.
    #[test]
    fn mutated_queries_agree(s in spec(), ms in proptest::collection::vec(mutation(), 1..4)) {
        if let Some(bytes) = encode(&s) {
            check(&mutate(bytes, &ms));
        }
    }

    /// Random bytes, with a plausible header now and then.
    #[test]
    fn random_messages_agree(
        header in proptest::collection::vec(any::<u8>(), 12),
        body in proptest::collection::vec(any::<u8>(), 0..80),
        qd1 in any::<bool>(),
    ) {
        let mut b = header;
        if qd1 {
            b[2] &= 0x7F;
            b[4] = 0;
            b[5] = 1;
        }
        b.extend_from_slice(&body);
        check(&b);
    }
}

/// The generators do reach the interesting cases: plenty of queries hickory reads as
/// canonical, with and without EDNS, mutated ones that belfry refuses, and mutated ones
/// that are still well-formed (so the agreement is checked on them too).
#[test]
fn the_differential_test_covers_both_sides() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut canonical, mut with_edns, mut refused, mut mutated_canonical) = (0, 0, 0, 0);
    for _ in 0..600 {
        let s = spec().new_tree(&mut runner).unwrap().current();
        let ms = proptest::collection::vec(mutation(), 1..3)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        if let Some(bytes) = encode(&s) {
            if check(&bytes) {
                canonical += 1;
                with_edns += usize::from(s.edns.is_some());
            }
            let m = mutate(bytes, &ms);
            mutated_canonical += usize::from(check(&m));
            refused += usize::from(parse_query(&m).is_err());
        }
    }
    assert!(canonical > 300, "{canonical} canonical queries");
    assert!(with_edns > 100, "{with_edns} with EDNS");
    assert!(refused > 50, "{refused} refused after mutation");
    assert!(
        mutated_canonical > 20,
        "{mutated_canonical} mutated messages still well-formed queries"
    );
}
