//! Network transport: DNS over UDP and TCP (RFC 1035 §4.2, RFC 7766) on tokio.
//!
//! Owns sockets, threads and runtimes, and nothing about DNS content: every
//! message goes to an [`Answerer`] (the sans-IO handler behind the service)
//! and whatever it writes is sent back.
//!
//! - UDP: `workers` long-lived threads, each with its own current-thread tokio
//!   runtime and its own `SO_REUSEPORT` socket per listen address, so the kernel
//!   spreads queries over them. A worker drains its socket in batches with
//!   `recvmmsg`/`sendmmsg` and reuses its buffers: no task, lock or allocation
//!   per query.
//! - TCP: one multi-threaded runtime; an accept loop per address, a task per
//!   connection, length-prefixed messages answered in order (pipelining), an
//!   idle timeout, a connection limit, limits per client address and per client
//!   prefix (so one client cannot hold every slot) and a per-connection query limit.
//!
//! It must not parse or build DNS messages beyond the TCP length prefix.

mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which transport a message came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// The DNS logic the transport calls: sans-IO, bytes in, bytes out.
pub trait Answerer: Send + Sync + 'static {
    /// Answer one message into `out` (cleared, capacity kept) and return true, or return false to drop it.
    fn answer(
        &self,
        query: &[u8],
        peer: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool;
}

/// Transport settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Addresses to serve on (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads.
    pub workers: usize,
    /// Most TCP connections open at once; more are closed at once.
    pub tcp_max_connections: usize,
    /// Idle time after which a TCP connection is closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout: Duration,
    /// Most queries on one TCP connection (0 = no limit).
    pub tcp_max_queries_per_connection: usize,
    /// Most TCP connections open at once from one client address.
    pub tcp_max_per_address: usize,
    /// Most TCP connections open at once from one client prefix.
    pub tcp_max_per_prefix: usize,
    /// IPv4 prefix length of a client network for `tcp_max_per_prefix`.
    pub tcp_prefix_v4: u8,
    /// IPv6 prefix length of a client network for `tcp_max_per_prefix`.
    pub tcp_prefix_v6: u8,
}

/// A running server.
pub struct Server {
    stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    tcp: tcp::TcpServer,
    addrs: Vec<SocketAddr>,
}

impl Server {
    /// Bind every address (errors name the address) and start serving.
    pub fn start<A: Answerer>(cfg: ServerConfig, answerer: Arc<A>) -> std::io::Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        // Bind TCP first: with port 0 its port is then used for UDP too.
        let mut tcp_listeners = Vec::new();
        let mut addrs = Vec::new();
        for &a in &cfg.listen {
            let l =
                tcp::bind(a).map_err(|e| std::io::Error::new(e.kind(), format!("TCP {a}: {e}")))?;
            let actual = l.local_addr()?;
            addrs.push(actual);
            tcp_listeners.push(l);
        }
        let mut per_worker: Vec<Vec<std::net::UdpSocket>> = Vec::new();
        for _ in 0..cfg.workers.max(1) {
            let mut socks = Vec::new();
            for &a in &addrs {
                let s = udp::bind(a)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("UDP {a}: {e}")))?;
                socks.push(s);
            }
            per_worker.push(socks);
        }
        let mut udp_threads = Vec::new();
        for (i, socks) in per_worker.into_iter().enumerate() {
            let (a, s) = (answerer.clone(), stop.clone());
            udp_threads.push(
                std::thread::Builder::new()
                    .name(format!("belfry-udp-{i}"))
                    .spawn(move || udp::worker(socks, a, s))?,
            );
        }
        let tcp = tcp::TcpServer::start(tcp_listeners, &cfg, answerer)?;
        Ok(Server {
            stop,
            udp_threads,
            tcp,
            addrs,
        })
    }

    /// The bound addresses (UDP and TCP share the port).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stop accepting and ask workers to finish.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tcp.shutdown();
    }

    /// Wait until everything has stopped (TCP connections get about two seconds).
    pub fn wait(self) {
        for t in self.udp_threads {
            let _ = t.join();
        }
        self.tcp.wait();
    }
}
