//! Latency from a suppression API call to the first NXDOMAIN, against a running server.
//!
//! `cargo run --release --example suppress_latency -- DNS_ADDR ADMIN_ADDR TOKEN_FILE DOMAINS_FILE CYCLES`
//!
//! For each cycle: POST an add for a delegated domain, then query it over UDP
//! until the answer is NXDOMAIN; the time from sending the API request to that
//! answer is one sample. Then the suppression is lifted (not timed). Prints
//! the distribution (p50, p90, p99, max) in milliseconds.

use belfry::wire::decode::{build_query, decode};
use belfry::wire::Rtype;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn post(admin: SocketAddr, token: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(admin).expect("admin API");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut r = String::new();
    s.read_to_string(&mut r).expect("read");
    r.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 {
        eprintln!("usage: suppress_latency DNS_ADDR ADMIN_ADDR TOKEN_FILE DOMAINS_FILE CYCLES");
        std::process::exit(2);
    }
    let dns: SocketAddr = a[1].parse().expect("DNS address");
    let admin: SocketAddr = a[2].parse().expect("admin address");
    let token = std::fs::read_to_string(&a[3])
        .expect("token file")
        .trim()
        .to_string();
    let domains: Vec<String> = std::fs::read_to_string(&a[4])
        .expect("domains file")
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let cycles: usize = a[5].parse().expect("cycles");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = vec![0u8; 4096];
    let mut samples = Vec::with_capacity(cycles);
    for i in 0..cycles {
        let d = &domains[(i * 7919) % domains.len()];
        let add = format!("{{\"actor\":\"latency\",\"entries\":[{{\"domain\":\"{d}\",\"reason\":\"latency test\",\"case\":\"L-{i}\"}}]}}");
        let q = build_query(
            i as u16,
            &belfry::name::from_text(d, &[0]).expect("name"),
            Rtype::A,
            Some((1232, true)),
        );
        let t0 = Instant::now();
        let st = post(admin, &token, "/v1/suppressions", &add);
        assert_eq!(st, 200, "add {d}");
        loop {
            sock.send_to(&q, dns).expect("send");
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if decode(&buf[..n]).map(|m| m.rcode) == Some(3) {
                    break;
                }
            }
        }
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        let rm = format!("{{\"actor\":\"latency\",\"reason\":\"done\",\"domains\":[\"{d}\"]}}");
        assert_eq!(
            post(admin, &token, "/v1/suppressions/remove", &rm),
            200,
            "remove {d}"
        );
    }
    samples.sort_by(|x, y| x.total_cmp(y));
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{} cycles: API call to first NXDOMAIN: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        samples[samples.len() - 1]
    );
}
