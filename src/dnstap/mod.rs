//! dnstap: a copy of queries and answers (AUTH_QUERY / AUTH_RESPONSE) sent to a
//! Frame Streams collector, for abuse analytics.
//!
//! The query path never waits for the collector. A query thread that answered a
//! message the filters and the sampling keep ([`Tap::wants`]) copies the query
//! and the answer into one buffer and offers it to its own bounded queue (a
//! `sync_channel` made on the thread's first capture) with `try_send`; when the
//! queue is full the copy is dropped and counted. One writer thread drains every
//! queue, encodes the dnstap protobuf messages ([`proto`], with `prost`) and
//! writes them as Frame Streams data frames ([`fstrm`]) to a Unix socket or a TCP
//! address, after the bidirectional handshake. When the collector is absent or
//! goes away, the writer reconnects with a growing delay (100 ms to 5 s) and the
//! queues fill and drop meanwhile. With dnstap off the service holds `None`: one
//! branch per query, nothing captured or allocated.
//!
//! Counters ([`Tap::sent`], [`Tap::dropped`]) are in dnstap messages: a query
//! answered is two messages (AUTH_QUERY and AUTH_RESPONSE), a query not answered
//! (dropped by rate limiting) one.

pub mod fstrm;
pub mod proto;

use crate::handler::Outcome;
use crate::server::Transport;
use crate::wire::{Rcode, Rtype};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the collector listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Unix stream socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// What to send and where (from `[dnstap]`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The collector.
    pub target: Target,
    /// `Dnstap.identity` (none: not sent).
    pub identity: Option<Vec<u8>>,
    /// `Dnstap.version` (none: not sent).
    pub version: Option<Vec<u8>>,
    /// Keep one query in `sample` of those the filters let through (1: all).
    pub sample: u32,
    /// Only queries answered NXDOMAIN.
    pub only_nxdomain: bool,
    /// Only queries denied by a suppression (NXDOMAIN/NODATA with the list's EDE).
    pub only_suppressed: bool,
    /// Only queries of this type.
    pub only_qtype: Option<u16>,
    /// Captured queries each query thread may have waiting.
    pub queue: usize,
    /// The server's listen addresses (the response address and port of a message).
    pub listen: Vec<SocketAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target: Target::Tcp(SocketAddr::from(([127, 0, 0, 1], 6000))),
            identity: None,
            version: None,
            sample: 1,
            only_nxdomain: false,
            only_suppressed: false,
            only_qtype: None,
            queue: 4096,
            listen: Vec::new(),
        }
    }
}

/// One captured exchange, on its way to the writer.
struct Entry {
    /// The query, then the answer (if any).
    buf: Vec<u8>,
    qlen: usize,
    answered: bool,
    peer: SocketAddr,
    tcp: bool,
    qtime: Duration,
    rtime: Duration,
}

impl Entry {
    fn messages(&self) -> u64 {
        1 + self.answered as u64
    }
}

/// What the query threads and the writer share.
struct Shared {
    /// Queues of threads that captured for the first time, for the writer to take.
    queues: Mutex<Vec<Receiver<Entry>>>,
    dropped: Mutex<Vec<Arc<AtomicU64>>>,
    /// Messages lost by the writer (a connection that broke with them unsent).
    lost: AtomicU64,
    sent: AtomicU64,
    connected: AtomicBool,
    stop: AtomicBool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Local = (u64, SyncSender<Entry>, Arc<AtomicU64>);

thread_local! {
    /// This thread's queues, one per [`Tap`] it has captured for.
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// The dnstap output of a server: filters, per-thread queues and the writer thread.
pub struct Tap {
    id: u64,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    seen: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Now, as time since the epoch (what dnstap timestamps are).
#[inline]
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Tap {
    /// Start the writer thread (it connects in the background).
    pub fn start(settings: Settings) -> std::io::Result<Tap> {
        let settings = Arc::new(settings);
        let shared = Arc::new(Shared {
            queues: Mutex::new(Vec::new()),
            dropped: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let (s, sh) = (settings.clone(), shared.clone());
        let writer = std::thread::Builder::new()
            .name("belfry-dnstap".into())
            .spawn(move || Writer::new(s, sh).run())?;
        Ok(Tap {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            settings,
            shared,
            seen: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the filters and the sampling keep this exchange.
    #[inline]
    pub fn wants(&self, o: &Outcome) -> bool {
        let s = &*self.settings;
        if s.only_nxdomain && !(o.sent && o.rcode == Rcode::NXDOMAIN) {
            return false;
        }
        if s.only_suppressed && !o.suppressed {
            return false;
        }
        if let Some(t) = s.only_qtype {
            if o.qtype != Some(Rtype(t)) {
                return false;
            }
        }
        s.sample <= 1 || self.seen.fetch_add(1, Ordering::Relaxed) % s.sample as u64 == 0
    }

    /// Capture one exchange if the filters and sampling keep it: the query, the answer
    /// (`None`: nothing was sent) and when the query came. Never waits.
    #[inline]
    pub fn capture(
        &self,
        query: &[u8],
        answer: Option<&[u8]>,
        o: &Outcome,
        peer: SocketAddr,
        transport: Transport,
        qtime: Duration,
    ) {
        if !self.wants(o) {
            return;
        }
        let alen = answer.map_or(0, |a| a.len());
        let mut buf = Vec::with_capacity(query.len() + alen);
        buf.extend_from_slice(query);
        if let Some(a) = answer {
            buf.extend_from_slice(a);
        }
        self.enqueue(Entry {
            buf,
            qlen: query.len(),
            answered: answer.is_some(),
            peer,
            tcp: transport == Transport::Tcp,
            qtime,
            rtime: now(),
        });
    }

    fn enqueue(&self, e: Entry) {
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            let i = match l.iter().position(|(id, _, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    let (tx, rx) = sync_channel(self.settings.queue.max(1));
                    let d = Arc::new(AtomicU64::new(0));
                    self.shared
                        .queues
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(rx);
                    self.shared
                        .dropped
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(d.clone());
                    l.push((self.id, tx, d));
                    l.len() - 1
                }
            };
            let (_, tx, d) = &l[i];
            match tx.try_send(e) {
                Ok(()) => {}
                Err(TrySendError::Full(e)) | Err(TrySendError::Disconnected(e)) => {
                    // Only this thread writes its counter: a load and a store.
                    d.store(d.load(Ordering::Relaxed) + e.messages(), Ordering::Relaxed);
                }
            }
        })
    }

    /// dnstap messages written to the collector.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// dnstap messages dropped: queue full, or lost with a broken connection.
    pub fn dropped(&self) -> u64 {
        let q: u64 = self
            .shared
            .dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum();
        q + self.shared.lost.load(Ordering::Relaxed)
    }

    /// Whether the writer has a collector now.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Write what is queued, end the stream (STOP, FINISH) and stop the writer.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let h = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.shutdown();
    }
}

trait Stream: Read + Write + Send {}
impl Stream for std::net::TcpStream {}
impl Stream for std::os::unix::net::UnixStream {}

/// Longest wait for the collector's handshake, and for a write to go through.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The writer's pause when every queue is empty.
const IDLE: Duration = Duration::from_millis(10);
/// Bytes gathered before a write.
const BATCH: usize = 256 * 1024;

struct Writer {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    /// Every query thread's queue, taken from [`Shared::queues`] as they come.
    queues: Vec<Receiver<Entry>>,
    out: Vec<u8>,
    pending: u64,
    msg: Vec<u8>,
}

impl Writer {
    fn new(settings: Arc<Settings>, shared: Arc<Shared>) -> Writer {
        Writer {
            settings,
            shared,
            queues: Vec::new(),
            out: Vec::with_capacity(BATCH + 4096),
            pending: 0,
            msg: Vec::with_capacity(4096),
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let mut s: Box<dyn Stream> = match &self.settings.target {
            Target::Unix(p) => {
                let s = std::os::unix::net::UnixStream::connect(p)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Box::new(s)
            }
            Target::Tcp(a) => {
                let s = std::net::TcpStream::connect_timeout(a, IO_TIMEOUT)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Box::new(s)
            }
        };
        fstrm::writer_handshake(&mut s, fstrm::CONTENT_TYPE)?;
        Ok(s)
    }

    fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut warned = false;
        loop {
            if self.stopping() {
                return;
            }
            match self.connect() {
                Ok(mut s) => {
                    tracing::info!("dnstap: connected to {}", self.settings.target);
                    self.shared.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    warned = false;
                    let r = self.pump(&mut *s);
                    self.shared.connected.store(false, Ordering::Relaxed);
                    match r {
                        Ok(()) => {
                            if let Err(e) = fstrm::writer_stop(&mut s) {
                                tracing::debug!("dnstap: ending the stream: {e}");
                            }
                            return;
                        }
                        Err(e) => {
                            self.shared.lost.fetch_add(self.pending, Ordering::Relaxed);
                            self.pending = 0;
                            self.out.clear();
                            tracing::warn!(
                                "dnstap: lost the collector {}: {e}; reconnecting",
                                self.settings.target
                            );
                        }
                    }
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            "dnstap: cannot reach the collector {}: {e}; retrying (messages are dropped meanwhile)",
                            self.settings.target
                        );
                        warned = true;
                    }
                    let until = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < until && !self.stopping() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Drain the queues into the stream until stopped (`Ok`) or the stream breaks.
    fn pump(&mut self, s: &mut dyn Stream) -> std::io::Result<()> {
        loop {
            let stop = self.stopping();
            let got = self.drain();
            if !self.out.is_empty() {
                s.write_all(&self.out)?;
                s.flush()?;
                self.shared.sent.fetch_add(self.pending, Ordering::Relaxed);
                self.pending = 0;
                self.out.clear();
            }
            if got == 0 {
                if stop {
                    return Ok(());
                }
                // Nothing queued: the query threads never wake the writer (no
                // syscall on their path); it looks again after a pause, and a queue
                // holds the queries of that pause (4096 by default: 400 k/s per thread).
                std::thread::sleep(IDLE);
            }
        }
    }

    /// Encode what the queues hold (up to a batch) into `out`; returns the entries taken.
    fn drain(&mut self) -> usize {
        // Queues of threads that captured for the first time: taken over, so the lock a
        // new query thread registers under is never held while encoding.
        if let Ok(mut new) = self.shared.queues.try_lock() {
            self.queues.append(&mut new);
        }
        let queues = std::mem::take(&mut self.queues);
        let mut got = 0;
        for q in queues.iter() {
            while self.out.len() < BATCH {
                match q.try_recv() {
                    Ok(e) => {
                        got += 1;
                        self.encode(&e);
                    }
                    Err(_) => break,
                }
            }
        }
        self.queues = queues;
        got
    }

    fn frame(&mut self, d: &proto::Dnstap) {
        use prost::Message as _;
        self.msg.clear();
        // Encoding into a Vec cannot fail.
        let _ = d.encode(&mut self.msg);
        fstrm::push_data(&mut self.out, &self.msg);
        self.pending += 1;
    }

    fn encode(&mut self, e: &Entry) {
        use proto::{MessageType, SocketFamily, SocketProtocol};
        let family = if e.peer.is_ipv4() {
            SocketFamily::Inet
        } else {
            SocketFamily::Inet6
        };
        let ip = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v) => v.octets().to_vec(),
            std::net::IpAddr::V6(v) => v.octets().to_vec(),
        };
        // The server's side: the listen address of the client's family.
        let local = self
            .settings
            .listen
            .iter()
            .find(|a| a.is_ipv4() == e.peer.is_ipv4());
        let base = proto::Message {
            r#type: MessageType::AuthQuery as i32,
            socket_family: Some(family as i32),
            socket_protocol: Some(if e.tcp {
                SocketProtocol::Tcp
            } else {
                SocketProtocol::Udp
            } as i32),
            query_address: Some(ip(e.peer.ip())),
            response_address: local
                .filter(|a| !a.ip().is_unspecified())
                .map(|a| ip(a.ip())),
            query_port: Some(e.peer.port() as u32),
            response_port: local.map(|a| a.port() as u32),
            query_time_sec: Some(e.qtime.as_secs()),
            query_time_nsec: Some(e.qtime.subsec_nanos()),
            query_message: None,
            response_time_sec: None,
            response_time_nsec: None,
            response_message: None,
        };
        let (query, answer) = e.buf.split_at(e.qlen);
        let mut q = base.clone();
        q.query_message = Some(query.to_vec());
        let mut d = proto::Dnstap {
            identity: self.settings.identity.clone(),
            version: self.settings.version.clone(),
            message: Some(q),
            r#type: proto::DnstapType::Message as i32,
        };
        self.frame(&d);
        if e.answered {
            let mut r = base;
            r.r#type = MessageType::AuthResponse as i32;
            r.response_time_sec = Some(e.rtime.as_secs());
            r.response_time_nsec = Some(e.rtime.subsec_nanos());
            r.response_message = Some(answer.to_vec());
            d.message = Some(r);
            self.frame(&d);
        }
    }
}

#[cfg(test)]
mod tests;
