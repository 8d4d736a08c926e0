//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): length-prefixed messages, pipelined, limited.
//!
//! An accept loop per listener and a task per connection on one multi-threaded
//! runtime. A connection reads the next query while earlier answers are being
//! written by the same task in order; it is closed after the idle timeout, at a
//! zero-length message, after the configured number of queries, or at shutdown
//! (after a short grace period). Over the connection limit, or over the limit of
//! its client address or client prefix (/24 and /56 by default), a new connection
//! is closed at once. The per-client table holds only clients with an open
//! connection, so it is bounded by the connection limit. A control message
//! (see [`super::control`]) is answered off the runtime, its answer messages
//! written as they come, before the next message is read.

use super::{Answerer, ServerConfig, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// Bind a TCP listener (`SO_REUSEADDR`, `IPV6_V6ONLY` for IPv6).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The TCP side of a running server.
pub struct TcpServer {
    rt: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
}

impl TcpServer {
    /// Start accepting on the given listeners.
    pub fn start<A: Answerer>(
        listeners: Vec<std::net::TcpListener>,
        cfg: &ServerConfig,
        answerer: Arc<A>,
    ) -> std::io::Result<TcpServer> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.workers.clamp(1, 4))
            .thread_name("belfry-tcp")
            .enable_all()
            .build()?;
        let (stop, stop_rx) = watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let clients = Arc::new(PerClient {
            max_address: cfg.tcp_max_per_address.max(1),
            max_prefix: cfg.tcp_max_per_prefix.max(1),
            v4_bits: cfg.tcp_prefix_v4.min(32),
            v6_bits: cfg.tcp_prefix_v6.min(128),
            open: Mutex::new(HashMap::new()),
        });
        for l in listeners {
            let _guard = rt.enter();
            let listener = tokio::net::TcpListener::from_std(l)?;
            let limits = Limits {
                max_connections: cfg.tcp_max_connections,
                idle: cfg.tcp_idle_timeout,
                max_queries: cfg.tcp_max_queries_per_connection,
                control_write: cfg.control_write_timeout,
            };
            rt.spawn(accept_loop(
                listener,
                answerer.clone(),
                open.clone(),
                clients.clone(),
                limits,
                stop_rx.clone(),
            ));
        }
        Ok(TcpServer { rt: Some(rt), stop })
    }

    /// Stop accepting; connections are told to finish.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Give open connections two seconds, then stop the runtime.
    pub fn wait(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A client address, or the network of a client address, for per-client limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Client {
    Address(IpAddr),
    Prefix(IpAddr),
}

/// Keep the first `bits` bits of an address.
fn network(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - bits as u32).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - bits as u32).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// Open connections per client address and per client prefix.
struct PerClient {
    max_address: usize,
    max_prefix: usize,
    v4_bits: u8,
    v6_bits: u8,
    /// Only clients with an open connection are in the map.
    open: Mutex<HashMap<Client, usize>>,
}

impl PerClient {
    fn keys(&self, ip: IpAddr) -> [Client; 2] {
        let ip = ip.to_canonical();
        let bits = if ip.is_ipv4() {
            self.v4_bits
        } else {
            self.v6_bits
        };
        [Client::Address(ip), Client::Prefix(network(ip, bits))]
    }

    /// Count a new connection from `ip`, or refuse it when its address or prefix is full.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let [a, p] = self.keys(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let na = open.get(&a).copied().unwrap_or(0);
        let np = open.get(&p).copied().unwrap_or(0);
        if na >= self.max_address || np >= self.max_prefix {
            return None;
        }
        open.insert(a, na + 1);
        open.insert(p, np + 1);
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for k in self.keys(ip) {
            if let Some(n) = open.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&k);
                }
            }
        }
    }
}

/// One counted connection; released when dropped.
struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.clients.release(self.ip);
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_connections: usize,
    idle: Duration,
    max_queries: usize,
    control_write: Duration,
}

async fn accept_loop<A: Answerer>(
    listener: tokio::net::TcpListener,
    answerer: Arc<A>,
    open: Arc<AtomicUsize>,
    clients: Arc<PerClient>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!("TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = clients.admit(peer.ip()) else {
            tracing::debug!(
                "TCP connection from {peer} closed: its address or prefix is at its limit"
            );
            drop(stream);
            continue;
        };
        if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            open.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (a, o, st) = (answerer.clone(), open.clone(), stop.clone());
        tokio::spawn(async move {
            connection(stream, peer, a, limits, st).await;
            o.fetch_sub(1, Ordering::AcqRel);
            drop(slot);
        });
    }
}

async fn connection<A: Answerer>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    answerer: Arc<A>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    let mut query = vec![0u8; 65535];
    let mut answer = Vec::with_capacity(4096);
    let mut frame = Vec::with_capacity(4098);
    let mut served = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        let mut len = [0u8; 2];
        let read = tokio::select! {
            r = tokio::time::timeout(limits.idle, rd.read_exact(&mut len)) => r,
            _ = stop.changed() => return,
        };
        match read {
            Ok(Ok(_)) => {}
            _ => return, // idle timeout, EOF or error
        }
        let n = u16::from_be_bytes(len) as usize;
        if n == 0 {
            return;
        }
        match tokio::time::timeout(limits.idle, rd.read_exact(&mut query[..n])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        answer.clear();
        if answerer.is_control(&query[..n]) {
            // Off the runtime, answers streamed in order (a zone transfer is many).
            if !super::control::tcp(&answerer, &query[..n], peer, &mut wr, limits.control_write)
                .await
            {
                return;
            }
        } else if answerer.answer(&query[..n], peer, Transport::Tcp, &mut answer) {
            if answer.len() > 65535 {
                return;
            }
            frame.clear();
            frame.extend_from_slice(&(answer.len() as u16).to_be_bytes());
            frame.extend_from_slice(&answer);
            match tokio::time::timeout(limits.idle, wr.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        served += 1;
        if limits.max_queries > 0 && served >= limits.max_queries {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(per_address: usize, per_prefix: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            max_address: per_address,
            max_prefix: per_prefix,
            v4_bits: 24,
            v6_bits: 56,
            open: Mutex::new(HashMap::new()),
        })
    }

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(network(ip("192.0.2.77"), 24), ip("192.0.2.0"));
        assert_eq!(network(ip("192.0.2.77"), 0), ip("0.0.0.0"));
        assert_eq!(network(ip("192.0.2.77"), 32), ip("192.0.2.77"));
        assert_eq!(
            network(ip("2001:db8:1:2345::1"), 56),
            ip("2001:db8:1:2300::")
        );
        assert_eq!(network(ip("2001:db8::1"), 128), ip("2001:db8::1"));
    }

    #[test]
    fn per_address_and_per_prefix_limits() {
        let t = table(2, 3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a1 = t.admit(ip("192.0.2.1")).unwrap();
        let a2 = t.admit(ip("192.0.2.1")).unwrap();
        assert!(t.admit(ip("192.0.2.1")).is_none(), "third from one address");
        // The v4-mapped form is the same client.
        assert!(t.admit(ip("::ffff:192.0.2.1")).is_none());
        let b1 = t.admit(ip("192.0.2.2")).unwrap();
        assert!(t.admit(ip("192.0.2.3")).is_none(), "fourth from one /24");
        assert!(t.admit(ip("198.51.100.1")).is_some(), "another /24");
        drop(a1);
        assert!(t.admit(ip("192.0.2.3")).is_some());
        drop((a2, b1));
        assert!(
            t.open.lock().unwrap().is_empty(),
            "closed clients leave the table"
        );
    }
}
