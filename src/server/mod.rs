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
//! - Control path ([`control`]): messages the [`Answerer`] marks as control
//!   ([`Answerer::is_control`]: a cheap look, no allocation) are not answered on
//!   the UDP worker or the TCP task. A UDP worker hands the message, its peer and a
//!   duplicate of its socket to a small bounded thread pool and goes on (when the
//!   pool's queue is full the message gets [`Answerer::busy`] at once); a TCP task
//!   runs it on tokio's blocking pool and writes each answer message as it comes
//!   (many for a zone transfer), cutting a client off that stops reading.
//!
//! It must not parse or build DNS messages beyond the TCP length prefix.

pub mod control;
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

    /// Whether a message goes to the control path instead of [`Answerer::answer`].
    ///
    /// Called for every message on the query path: a look at a few bytes, no
    /// allocation, no lock. The default sends nothing there.
    fn is_control(&self, _msg: &[u8]) -> bool {
        false
    }

    /// Answer a control message, off the query path (it may block, take locks,
    /// allocate): hand each answer message to `send`, in order; stop when
    /// `send` returns false (the client is gone or stopped reading).
    fn control(
        &self,
        _msg: &[u8],
        _peer: SocketAddr,
        _transport: Transport,
        _send: &mut dyn FnMut(&[u8]) -> bool,
    ) {
    }

    /// The answer to a control message when the control path is full (written
    /// into `out`); false drops it. Called on the query path: keep it cheap.
    fn busy(&self, _msg: &[u8], _out: &mut Vec<u8>) -> bool {
        false
    }
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
    /// Threads answering control messages that came over UDP.
    pub control_threads: usize,
    /// Control messages from UDP waiting for a thread; more get [`Answerer::busy`].
    pub control_queue: usize,
    /// How long a TCP client may leave an answer message of the control path unread.
    pub control_write_timeout: Duration,
}

/// A running server.
pub struct Server {
    stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    control: control::Pool,
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
        let control = control::Pool::start(
            answerer.clone(),
            cfg.control_threads.max(1),
            cfg.control_queue.max(1),
        )?;
        let mut udp_threads = Vec::new();
        for (i, socks) in per_worker.into_iter().enumerate() {
            let (a, s, c) = (answerer.clone(), stop.clone(), control.submitter());
            udp_threads.push(
                std::thread::Builder::new()
                    .name(format!("belfry-udp-{i}"))
                    .spawn(move || udp::worker(socks, a, s, c))?,
            );
        }
        let tcp = tcp::TcpServer::start(tcp_listeners, &cfg, answerer)?;
        Ok(Server {
            stop,
            udp_threads,
            control,
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
        self.control.wait();
    }
}
