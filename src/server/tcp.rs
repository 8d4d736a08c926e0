//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): length-prefixed messages, pipelined, limited.
//!
//! An accept loop per listener and a task per connection on one multi-threaded
//! runtime. A connection reads the next query while earlier answers are being
//! written by the same task in order; it is closed after the idle timeout, at a
//! zero-length message, after the configured number of queries, or at shutdown
//! (after a short grace period). Over the connection limit, new connections are
//! closed at once.

use super::{Answerer, ServerConfig, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
        for l in listeners {
            let _guard = rt.enter();
            let listener = tokio::net::TcpListener::from_std(l)?;
            let limits = Limits {
                max_connections: cfg.tcp_max_connections,
                idle: cfg.tcp_idle_timeout,
                max_queries: cfg.tcp_max_queries_per_connection,
            };
            rt.spawn(accept_loop(
                listener,
                answerer.clone(),
                open.clone(),
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

#[derive(Clone, Copy)]
struct Limits {
    max_connections: usize,
    idle: Duration,
    max_queries: usize,
}

async fn accept_loop<A: Answerer>(
    listener: tokio::net::TcpListener,
    answerer: Arc<A>,
    open: Arc<AtomicUsize>,
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
                crate::log(&format!("TCP accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
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
        if answerer.answer(&query[..n], peer, Transport::Tcp, &mut answer) {
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
