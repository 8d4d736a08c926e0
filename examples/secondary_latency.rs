//! Latency from a suppression API call to NXDOMAIN on a *secondary*, against running servers.
//!
//! `cargo run --release --example secondary_latency -- SECONDARY_ADDR ADMIN_ADDR TOKEN_FILE DOMAINS_FILE CYCLES [PAUSE_MS]`
//!
//! For each cycle: POST an add for a delegated domain to belfry's admin API,
//! then query the secondary (Knot, NSD, BIND, …) over UDP every millisecond
//! until it answers NXDOMAIN; the time from sending the API request to that
//! answer is one sample (it covers belfry's change, NOTIFY, the secondary's SOA
//! query and IXFR, and its reload). Then the suppression is lifted, and the time
//! until the secondary answers NOERROR again is a lift sample. With PAUSE_MS,
//! each change waits that long after the previous one was seen on the secondary
//! (back to back by default). Prints the distributions (p50, p90, p99, max) in
//! milliseconds.

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

/// Query `name` on the secondary until its rcode is `want`; the time it took.
fn until(sock: &UdpSocket, dns: SocketAddr, name: &str, want: u16, t0: Instant) -> Duration {
    let mut buf = vec![0u8; 4096];
    let wire = belfry::name::from_text(&format!("www.{name}"), &[0]).expect("name");
    let mut id = 0u16;
    loop {
        id = id.wrapping_add(1);
        let q = build_query(id, &wire, Rtype::A, None);
        sock.send_to(&q, dns).expect("send");
        if let Ok(n) = sock.recv(&mut buf) {
            if let Some(m) = decode(&buf[..n]) {
                if m.id == id && m.rcode == want {
                    return t0.elapsed();
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name}: no rcode {want} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "{what}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(*v.last().expect("samples"))
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 && a.len() != 7 {
        eprintln!(
            "usage: secondary_latency SECONDARY_ADDR ADMIN_ADDR TOKEN_FILE DOMAINS_FILE CYCLES [PAUSE_MS]"
        );
        std::process::exit(2);
    }
    let dns: SocketAddr = a[1].parse().expect("secondary address");
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
    let pause = Duration::from_millis(a.get(6).map_or(0, |p| p.parse().expect("pause ms")));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (mut adds, mut lifts) = (Vec::new(), Vec::new());
    for i in 0..cycles {
        let d = &domains[(i * 7919) % domains.len()];
        let add = format!("{{\"actor\":\"latency\",\"entries\":[{{\"domain\":\"{d}\",\"reason\":\"latency test\",\"case\":\"L-{i}\"}}]}}");
        std::thread::sleep(pause);
        let t0 = Instant::now();
        let code = post(admin, &token, "/v1/suppressions", &add);
        assert_eq!(code, 200, "add {d}");
        adds.push(until(&sock, dns, d, 3, t0));
        let rm =
            format!("{{\"actor\":\"latency\",\"reason\":\"latency test\",\"domains\":[\"{d}\"]}}");
        std::thread::sleep(pause);
        let t0 = Instant::now();
        let code = post(admin, &token, "/v1/suppressions/remove", &rm);
        assert_eq!(code, 200, "remove {d}");
        lifts.push(until(&sock, dns, d, 0, t0));
    }
    report("suppress -> NXDOMAIN on the secondary", adds);
    report("lift -> NOERROR on the secondary", lifts);
}
