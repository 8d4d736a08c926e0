//! A bounded UDP query flood from many loopback source addresses, for measuring RRL.
//!
//! `cargo run --release --example udp_flood -- SERVER SOURCES SECONDS MODE [DO]`
//!
//! - `SERVER`: the server's address (`127.0.0.1:5301`); only loopback targets are accepted.
//! - `SOURCES`: `127.0.0.10-127.0.0.41` (one socket bound to each address: a /24
//!   flooded from many "spoofed" sources) or a single address.
//! - `SECONDS`: how long to send (at most 120).
//! - `MODE`: `random` (random names below `be.`: NXDOMAIN, the largest signed answers)
//!   or a dnsperf query file (`name TYPE` lines, sent in order, round and round).
//! - `DO`: `do` to set the DNSSEC OK bit (EDNS 1232 is always sent).
//!
//! Sends as fast as the sockets take the queries, reads answers between batches and
//! for a second after, then prints one line: queries sent, answers received (full
//! and truncated without records = slipped), bytes each way and their ratio (the
//! amplification factor).

use belfry::wire::decode::{build_query, decode};
use belfry::wire::Rtype;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: udp_flood SERVER SOURCES SECONDS random|QUERYFILE [do]");
        std::process::exit(2);
    }
    let server: SocketAddr = a[1].parse().expect("server address");
    assert!(server.ip().is_loopback(), "loopback targets only");
    let sources: Vec<IpAddr> = match a[2].split_once('-') {
        Some((lo, hi)) => {
            let lo: Ipv4Addr = lo.parse().expect("first source");
            let hi: Ipv4Addr = hi.parse().expect("last source");
            (u32::from(lo)..=u32::from(hi))
                .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
                .collect()
        }
        None => vec![a[2].parse().expect("source address")],
    };
    assert!(
        sources.iter().all(|s| s.is_loopback()),
        "loopback sources only"
    );
    let secs: u64 = a[3].parse::<u64>().expect("seconds").min(120);
    let dnssec_ok = a.get(5).is_some_and(|x| x == "do");
    let queries: Vec<Vec<u8>> = if a[4] == "random" {
        Vec::new()
    } else {
        let text = std::fs::read_to_string(&a[4]).expect("query file");
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let name = it.next()?;
                let t = match it.next()? {
                    "A" => Rtype::A,
                    "AAAA" => Rtype::AAAA,
                    "NS" => Rtype::NS,
                    "DS" => Rtype::DS,
                    "SOA" => Rtype::SOA,
                    "DNSKEY" => Rtype::DNSKEY,
                    "TXT" => Rtype::TXT,
                    _ => return None,
                };
                let wire = belfry::name::from_text(name, &[0]).ok()?;
                Some(build_query(0, &wire, t, Some((1232, dnssec_ok))))
            })
            .collect()
    };
    let socks: Vec<UdpSocket> = sources
        .iter()
        .map(|ip| {
            let s = UdpSocket::bind(SocketAddr::new(*ip, 0)).expect("bind a source address");
            s.set_nonblocking(true).expect("non-blocking");
            s
        })
        .collect();
    let (mut sent, mut bytes_out, mut full, mut slipped, mut bytes_in) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut buf = vec![0u8; 65535];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut drain = |full: &mut u64, slipped: &mut u64, bytes_in: &mut u64| {
        for s in &socks {
            while let Ok(n) = s.recv(&mut buf) {
                *bytes_in += n as u64;
                match decode(&buf[..n]) {
                    Some(m) if m.flag(0x0200) && m.answer.is_empty() && m.authority.is_empty() => {
                        *slipped += 1
                    }
                    _ => *full += 1,
                }
            }
        }
    };
    let t0 = Instant::now();
    let stop = Duration::from_secs(secs);
    let mut i = 0usize;
    while t0.elapsed() < stop {
        for _ in 0..256 {
            let mut q = if queries.is_empty() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let name = format!("r{:016x}.be.", rng);
                let wire = belfry::name::from_text(&name, &[0]).expect("a valid name");
                build_query(0, &wire, Rtype::A, Some((1232, dnssec_ok)))
            } else {
                queries[i % queries.len()].clone()
            };
            q[0..2].copy_from_slice(&(i as u16).to_be_bytes());
            let s = &socks[i % socks.len()];
            match s.send_to(&q, server) {
                Ok(_) => {
                    sent += 1;
                    bytes_out += q.len() as u64;
                    i += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        drain(&mut full, &mut slipped, &mut bytes_in);
    }
    let sending = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(1) {
        drain(&mut full, &mut slipped, &mut bytes_in);
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "sent {sent} ({:.0}/s) from {} sources, {bytes_out} bytes; received {} ({full} full, {slipped} slipped), {bytes_in} bytes; amplification {:.3}",
        sent as f64 / sending,
        socks.len(),
        full + slipped,
        bytes_in as f64 / bytes_out.max(1) as f64
    );
}
