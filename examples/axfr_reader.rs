//! A transfer client that only reads: AXFR a zone over TCP again and again, and
//! print the records and bytes of each transfer and how long it took.
//!
//! `cargo run --release --example axfr_reader -- SERVER_ADDR ZONE [TRANSFERS] [PAUSE_MS]`
//!
//! It walks each message's answer section without copying anything (so its own
//! CPU stays small next to the server's) and ends a transfer at its second SOA.
//! `contrib/bench/transfer_figures.sh axfr-load` runs it next to dnsperf to see
//! what a streaming AXFR costs the UDP workers.

use belfry::wire::decode::build_query;
use belfry::wire::{skip_name, Rtype};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Records and SOA records in one message's answer section.
fn count(m: &[u8]) -> Option<(usize, usize)> {
    if m.len() < 12 || m[3] & 0x0F != 0 {
        return None;
    }
    let qd = u16::from_be_bytes([m[4], m[5]]) as usize;
    let an = u16::from_be_bytes([m[6], m[7]]) as usize;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(m, pos)? + 4;
    }
    let mut soa = 0;
    for _ in 0..an {
        pos = skip_name(m, pos)?;
        let t = u16::from_be_bytes([*m.get(pos)?, *m.get(pos + 1)?]);
        let rdlen = u16::from_be_bytes([*m.get(pos + 8)?, *m.get(pos + 9)?]) as usize;
        pos += 10 + rdlen;
        if t == Rtype::SOA.0 {
            soa += 1;
        }
    }
    Some((an, soa))
}

fn transfer(server: SocketAddr, qname: &[u8], id: u16) -> Result<(usize, usize), String> {
    let mut s = TcpStream::connect(server).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let q = build_query(id, qname, Rtype::AXFR, None);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).map_err(|e| format!("send: {e}"))?;
    let (mut records, mut bytes, mut soas) = (0usize, 0usize, 0usize);
    let mut buf = vec![0u8; 65535];
    while soas < 2 {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).map_err(|e| format!("read: {e}"))?;
        let l = u16::from_be_bytes(len) as usize;
        s.read_exact(&mut buf[..l])
            .map_err(|e| format!("read: {e}"))?;
        let (an, soa) =
            count(&buf[..l]).ok_or("a message that does not parse, or an error rcode")?;
        records += an;
        soas += soa;
        bytes += l + 2;
    }
    Ok((records, bytes))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: axfr_reader SERVER_ADDR ZONE [TRANSFERS] [PAUSE_MS]");
        std::process::exit(2);
    }
    let server: SocketAddr = args[1]
        .parse()
        .expect("SERVER_ADDR: an address like 127.0.0.1:5353");
    let qname = belfry::name::from_text(&args[2], b"\0").expect("ZONE: a domain name");
    let n: usize = args
        .get(3)
        .map(|a| a.parse().expect("TRANSFERS: a count"))
        .unwrap_or(1);
    let pause = Duration::from_millis(
        args.get(4)
            .map(|a| a.parse().expect("PAUSE_MS"))
            .unwrap_or(0),
    );
    for i in 0..n {
        let t = Instant::now();
        match transfer(server, &qname, i as u16) {
            Ok((records, bytes)) => {
                let s = t.elapsed().as_secs_f64();
                println!(
                    "transfer {}: {records} records, {bytes} bytes in {s:.2} s, {:.0} records/s",
                    i + 1,
                    records as f64 / s
                );
            }
            Err(e) => {
                eprintln!("transfer {}: {e}", i + 1);
                std::process::exit(1);
            }
        }
        std::thread::sleep(pause);
    }
}
