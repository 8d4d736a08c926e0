//! A small UDP+TCP responder on loopback for tests of protocol pieces against real clients.
//!
//! It runs in threads of the test process; the handler maps one request to zero or
//! more answer messages (more than one only makes sense over TCP). Dropping the
//! responder stops its threads.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the handler learns about a request.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Whether it came over TCP.
    pub tcp: bool,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Maps a request to its answers.
pub type Handler = Arc<dyn Fn(&[u8], Meta) -> Vec<Vec<u8>> + Send + Sync>;

/// A running responder.
pub struct Responder {
    pub port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Responder {
    /// Start on a free port of 127.0.0.1 (UDP and TCP, same number).
    pub fn start(handler: Handler) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        // A client's ephemeral port may take a port between the check and the bind: retry.
        let (port, udp, tcp) = (0..50)
            .find_map(|_| {
                let port = super::common::free_port();
                let udp = UdpSocket::bind(("127.0.0.1", port)).ok()?;
                let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((port, udp, tcp))
            })
            .expect("no free port for the responder");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut threads = Vec::new();
        {
            let (stop, handler, seen) = (stop.clone(), handler.clone(), seen.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 65535];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    seen.lock().unwrap().push(buf[..n].to_vec());
                    for a in handler(&buf[..n], Meta { tcp: false, peer }) {
                        let _ = udp.send_to(&a, peer);
                    }
                }
            }));
        }
        {
            let (stop, handler, seen) = (stop.clone(), handler.clone(), seen.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match tcp.accept() {
                        Ok((s, peer)) => {
                            let (handler, seen) = (handler.clone(), seen.clone());
                            std::thread::spawn(move || serve_tcp(s, peer, handler, seen));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }));
        }
        Responder {
            port,
            stop,
            threads,
            seen,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

fn serve_tcp(mut s: TcpStream, peer: SocketAddr, handler: Handler, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if s.read_exact(&mut msg).is_err() {
            return;
        }
        seen.lock().unwrap().push(msg.clone());
        for a in handler(&msg, Meta { tcp: true, peer }) {
            let mut framed = (a.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&a);
            if s.write_all(&framed).is_err() {
                return;
            }
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
