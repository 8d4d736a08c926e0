//! The independent oracle: hickory-proto, a DNS library that shares no code with belfry,
//! reads every answer the Rust clients receive and checks it against belfry's own decoder
//! (header, counts, every record, EDNS, Extended DNS Error), and verifies every RRSIG with
//! hickory's DNSSEC code against the DNSKEY RRset the server publishes.
//!
//! hickory-proto is a dev-dependency only: it is never on the query path.

use belfry::wire::decode::{decode, Record as OurRecord};
use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY};
use hickory_proto::dnssec::Verifier;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

/// Extended DNS Error option code (RFC 8914).
const EDE: u16 = 15;

/// Uncompressed wire form of anything hickory can encode (names keep their case).
fn bytes(x: &impl BinEncodable) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    x.emit(&mut enc).expect("hickory encodes what it decoded");
    buf
}

fn same_record(h: &Record, o: &OurRecord, section: &str, i: usize) {
    let what = format!("{section} record {i} ({})", h.name);
    assert_eq!(bytes(&h.name), o.owner, "{what}: owner");
    assert_eq!(u16::from(h.record_type()), o.rtype.0, "{what}: type");
    assert_eq!(u16::from(h.dns_class), o.class, "{what}: class");
    assert_eq!(h.ttl, o.ttl, "{what}: TTL");
    assert_eq!(bytes(&h.data), o.rdata, "{what}: RDATA");
}

/// The Extended DNS Error of a message as hickory reads it: (info code, text).
pub fn ede(m: &Message) -> Option<(u16, String)> {
    let edns = m.edns.as_ref()?;
    match edns.options().get(EdnsCode::from(EDE))? {
        EdnsOption::Unknown(_, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        other => panic!("malformed EDE option: {other:?}"),
    }
}

/// Parse an answer with hickory-proto and check that belfry's decoder reads the same:
/// header flags, rcode (extended bits included), every record of every section, EDNS and
/// EDE. Panics with the bytes when hickory cannot parse it.
pub fn parse(raw: &[u8]) -> Message {
    let h = Message::from_vec(raw)
        .unwrap_or_else(|e| panic!("hickory-proto cannot parse the answer ({e}): {raw:02x?}"));
    let o = decode(raw).expect("belfry's decoder reads what hickory reads");
    let md = &h.metadata;
    assert_eq!(md.id, o.id);
    assert_eq!(
        md.message_type == MessageType::Response,
        o.flags & 0x8000 != 0
    );
    assert_eq!(u8::from(md.op_code), ((o.flags >> 11) & 0xF) as u8);
    assert_eq!(md.authoritative, o.flag(0x0400), "AA");
    assert_eq!(md.truncation, o.flag(0x0200), "TC");
    assert_eq!(md.recursion_desired, o.flag(0x0100), "RD");
    assert_eq!(md.recursion_available, o.flag(0x0080), "RA");
    assert!(!md.authentic_data, "an authoritative server never sets AD");
    assert_eq!(md.checking_disabled, o.flag(0x0010), "CD");
    assert_eq!(u16::from(md.response_code), o.rcode, "rcode");
    match h.queries.first() {
        Some(q) => {
            assert_eq!(h.queries.len(), 1);
            assert_eq!(bytes(q.name()), o.qname, "question name");
            assert_eq!(u16::from(q.query_type()), o.qtype, "question type");
        }
        None => assert!(o.qname.is_empty()),
    }
    // hickory keeps a TSIG record apart from the additional section; belfry's decoder
    // lists it there (it is the last record, RFC 8945 §4.1).
    let o_additional: Vec<_> = o
        .additional
        .iter()
        .filter(|r| r.rtype != belfry::wire::Rtype::TSIG)
        .cloned()
        .collect();
    for (name, hs, os) in [
        ("answer", &h.answers, &o.answer),
        ("authority", &h.authorities, &o.authority),
        ("additional", &h.additionals, &o_additional),
    ] {
        assert_eq!(hs.len(), os.len(), "{name} count");
        for (i, (hr, or)) in hs.iter().zip(os.iter()).enumerate() {
            same_record(hr, or, name, i);
        }
    }
    assert_eq!(
        h.edns
            .as_ref()
            .map(|e| (e.max_payload(), e.version(), e.flags().dnssec_ok)),
        o.opt,
        "EDNS"
    );
    assert_eq!(ede(&h), o.ede, "Extended DNS Error");
    h
}

/// Whether a message holds any RRSIG.
pub fn has_rrsigs(m: &Message) -> bool {
    m.answers
        .iter()
        .chain(&m.authorities)
        .chain(&m.additionals)
        .any(|r| r.record_type() == RecordType::RRSIG)
}

/// Records of a message of one type, in any section.
pub fn records_of(m: &Message, t: RecordType) -> Vec<&Record> {
    m.answers
        .iter()
        .chain(&m.authorities)
        .chain(&m.additionals)
        .filter(|r| r.record_type() == t)
        .collect()
}

/// The DNSKEYs of a DNSKEY answer, after checking their own RRSIG (made by a KSK).
pub fn dnskeys_of(m: &Message) -> Vec<DNSKEY> {
    let keys: Vec<DNSKEY> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect();
    assert!(!keys.is_empty(), "no DNSKEY in {m}");
    assert!(
        verify_rrsigs(m, &keys) >= 1,
        "the DNSKEY RRset carries a signature"
    );
    keys
}

/// Key tag of a DNSKEY as hickory computes it (RFC 4034 Appendix B).
pub fn key_tag(k: &DNSKEY) -> u16 {
    k.calculate_key_tag().expect("key tag")
}

/// Verify every RRSIG of a message with hickory's DNSSEC code against `dnskeys`: the key
/// named by the key tag and algorithm must verify it over the RRset it covers in the same
/// section (owner, class and type; wildcard expansion per the labels field), the RRset must
/// be there, and the validity period must include now. Returns how many were verified.
pub fn verify_rrsigs(m: &Message, dnskeys: &[DNSKEY]) -> usize {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut verified = 0;
    for (name, section) in [
        ("answer", &m.answers),
        ("authority", &m.authorities),
        ("additional", &m.additionals),
    ] {
        for r in section {
            let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data else {
                continue;
            };
            let input = sig.input();
            let what = format!("{name}: RRSIG {} over {}", input.type_covered, r.name);
            assert!(
                section
                    .iter()
                    .any(|x| x.name == r.name && x.record_type() == input.type_covered),
                "{what}: the RRset it covers is not in the section"
            );
            assert!(
                input.sig_inception.get() <= now && now < input.sig_expiration.get(),
                "{what}: not valid now"
            );
            let key = dnskeys
                .iter()
                .find(|k| key_tag(k) == input.key_tag && k.algorithm() == input.algorithm)
                .unwrap_or_else(|| panic!("{what}: no DNSKEY with tag {}", input.key_tag));
            key.verify_rrsig(&r.name, DNSClass::IN, sig, section.iter())
                .unwrap_or_else(|e| panic!("{what}: does not verify: {e}"));
            verified += 1;
        }
    }
    verified
}

/// In a DO=1 answer of the signed zone, every RRset of the answer and authority sections
/// has an RRSIG, except the NS RRset of a referral (RFC 4035 §2.2: never signed).
pub fn assert_signed_rrsets(m: &Message) {
    for (name, section) in [("answer", &m.answers), ("authority", &m.authorities)] {
        for r in section {
            let t = r.record_type();
            // NS in authority is always a delegation's (a referral, or after a CNAME).
            if t == RecordType::RRSIG || (t == RecordType::NS && name == "authority") {
                continue;
            }
            let covered = section.iter().any(|s| match &s.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                    s.name == r.name && sig.input().type_covered == t
                }
                _ => false,
            });
            assert!(covered, "{name}: {} {t} has no RRSIG", r.name);
        }
    }
}

/// Whether a message holds a DNSSEC record (RRSIG, NSEC, NSEC3, DS, DNSKEY, NSEC3PARAM)
/// of a type other than `asked`.
pub fn dnssec_records_besides(m: &Message, asked: RecordType) -> Vec<String> {
    m.answers
        .iter()
        .chain(&m.authorities)
        .chain(&m.additionals)
        .filter(|r| {
            let t = r.record_type();
            t != asked
                && matches!(
                    t,
                    RecordType::RRSIG
                        | RecordType::NSEC
                        | RecordType::NSEC3
                        | RecordType::DS
                        | RecordType::DNSKEY
                        | RecordType::NSEC3PARAM
                )
        })
        .map(|r| format!("{} {}", r.name, r.record_type()))
        .collect()
}
