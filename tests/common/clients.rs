//! Real clients (dig, kdig, delv through [`run`]) and small Rust clients; every answer the
//! Rust clients receive goes through the hickory-proto oracle ([`super::oracle::parse`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Fail (never skip) when a client tool is missing.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{tool} is needed by this test; .ci/run installs it (apt-get install bind9-dnsutils knot-dnsutils unbound bind9-utils)");
}

/// Run a client tool and return its stdout (stderr appended).
pub fn run(tool: &str, args: &str) -> String {
    require(tool);
    let out = Command::new(tool)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// Send one datagram and wait for one answer; the answer is checked by the oracle.
pub fn udp_raw(addr: SocketAddr, q: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.send_to(q, addr).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    super::oracle::parse(&buf);
    Some(buf)
}

/// Send several queries on one TCP connection in one write, read all answers (each checked
/// by the oracle).
pub fn tcp_pipelined(addr: SocketAddr, queries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    for q in queries {
        all.extend_from_slice(&(q.len() as u16).to_be_bytes());
        all.extend_from_slice(q);
    }
    s.write_all(&all).unwrap();
    let mut out = Vec::new();
    for _ in queries {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m).unwrap();
        super::oracle::parse(&m);
        out.push(m);
    }
    out
}

/// Wire name from text.
pub fn wire(name: &str) -> Vec<u8> {
    belfry::name::from_text(name, &[0]).unwrap()
}

/// The status word dig prints.
pub fn status(dig_out: &str) -> String {
    dig_out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The flags dig prints.
pub fn flags(dig_out: &str) -> Vec<String> {
    dig_out
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|f| {
            f.split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Records of a section in dig output: (owner, type, rest).
pub fn section(dig_out: &str, name: &str) -> Vec<(String, String, String)> {
    let header = format!(";; {name} SECTION:");
    let mut inside = false;
    let mut v = Vec::new();
    for l in dig_out.lines() {
        if l.starts_with(&header) {
            inside = true;
            continue;
        }
        if inside {
            if l.trim().is_empty() || l.starts_with(";;") {
                break;
            }
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() >= 4 {
                v.push((t[0].to_string(), t[3].to_string(), t[4..].join(" ")));
            }
        }
    }
    v
}

/// Whether a path exists and is a file.
pub fn exists(p: &Path) -> bool {
    p.is_file()
}
