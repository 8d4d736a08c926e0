//! Latency of one dynamic update (RFC 2136) of one delegation, against a running server.
//!
//! `cargo run --release --example update_latency -- DNS_ADDR ZONE COUNT`
//!
//! For each of COUNT updates: send an unsigned UPDATE over UDP that adds a new
//! delegation (NS + DS) below ZONE, wait for its NOERROR, then ask for the DS
//! until it is served; the time from sending the UPDATE to that answer is one
//! sample. The server must allow updates from the sender (`[[acl.update]]`).
//! Prints the distribution (p50, p90, p99, max) in milliseconds.

use belfry::wire::decode::{build_query, decode};
use belfry::wire::Rtype;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn name(text: &str) -> Vec<u8> {
    belfry::name::from_text(text, &[0]).expect("a domain name")
}

fn record(out: &mut Vec<u8>, owner: &[u8], rtype: Rtype, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.0.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&3600u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// An UPDATE adding `owner NS ns1.example-hosting.net.` and a DS with `tag`.
fn update(id: u16, zone: &[u8], owner: &[u8], tag: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(200);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x2800u16.to_be_bytes()); // opcode 5 (UPDATE)
    for c in [1u16, 0, 2, 0] {
        m.extend_from_slice(&c.to_be_bytes());
    }
    m.extend_from_slice(zone);
    m.extend_from_slice(&Rtype::SOA.0.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    record(&mut m, owner, Rtype::NS, &name("ns1.example-hosting.net."));
    let mut ds = tag.to_be_bytes().to_vec();
    ds.extend_from_slice(&[13, 2]);
    ds.extend_from_slice(&[0xAB; 32]);
    record(&mut m, owner, Rtype::DS, &ds);
    m
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        eprintln!("usage: update_latency DNS_ADDR ZONE COUNT");
        std::process::exit(2);
    }
    let dns: SocketAddr = a[1].parse().expect("DNS address");
    let zone_text = a[2].trim_end_matches('.').to_string();
    let zone = name(&format!("{zone_text}."));
    let count: usize = a[3].parse().expect("COUNT");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let run = std::process::id() % 10_000;
    let mut samples = Vec::with_capacity(count);
    let mut buf = vec![0u8; 65535];
    for i in 0..count {
        let owner = name(&format!("upd-lat-{run}-{i}.{zone_text}."));
        let id = (i % 65536) as u16;
        let t = Instant::now();
        sock.send_to(&update(id, &zone, &owner, (i % 65536) as u16), dns)
            .expect("send");
        let (n, _) = sock.recv_from(&mut buf).expect("no answer to the UPDATE");
        let rcode = buf[3] & 0x0f;
        assert!(n >= 12 && rcode == 0, "UPDATE {i} answered rcode {rcode}");
        loop {
            let q = build_query(id ^ 0x5555, &owner, Rtype::DS, Some((1232, true)));
            sock.send_to(&q, dns).expect("send");
            let (n, _) = sock.recv_from(&mut buf).expect("no answer to the query");
            let m = decode(&buf[..n]).expect("an answer");
            if m.rcode == 0 && m.answer.iter().any(|r| r.rtype == Rtype::DS) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "update {i} not served"
            );
        }
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "{count} updates: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        q(0.50),
        q(0.90),
        q(0.99),
        samples[samples.len() - 1]
    );
}
