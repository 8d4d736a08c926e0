//! The control path of the transport: messages that are not plain queries.
//!
//! An [`Answerer`] marks some messages as control ([`Answerer::is_control`]):
//! dynamic updates, NOTIFY, zone transfers, signed messages. Their answers may
//! take locks, allocate, wait for the publisher or stream many messages, so they
//! never run where queries are answered:
//!
//! - from UDP: the worker copies the message and hands it, with the peer and a
//!   duplicate of its socket, to a [`Pool`] of a few threads through a bounded
//!   queue, and goes on with its batch. When the queue is full the message gets
//!   [`Answerer::busy`] (written on the worker, cheap) instead. A pool thread
//!   sends the answer with the duplicated socket.
//! - from TCP: the connection task runs [`Answerer::control`] on tokio's blocking
//!   pool and writes each answer message it produces, in order, through a small
//!   bounded channel; a client that leaves a message unread longer than the
//!   write timeout is cut off, which also stops the producer (its `send` then
//!   returns false). The connection reads its next message only afterwards, so
//!   answers stay in order.
//!
//! It knows nothing about DNS beyond the TCP length prefix.

use super::{Answerer, Transport};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// One control message that came over UDP.
struct Job {
    msg: Vec<u8>,
    peer: SocketAddr,
    sock: Arc<UdpSocket>,
}

/// The threads answering control messages that came over UDP.
pub struct Pool {
    tx: Option<SyncSender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What a UDP worker holds to hand messages to the [`Pool`].
#[derive(Clone)]
pub struct Submitter {
    tx: SyncSender<Job>,
}

impl Submitter {
    /// Queue a message (copied) for the pool; false when the queue is full or closed.
    pub fn submit(&self, msg: &[u8], peer: SocketAddr, sock: &Arc<UdpSocket>) -> bool {
        let job = Job {
            msg: msg.to_vec(),
            peer,
            sock: sock.clone(),
        };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Pool {
    /// Start `threads` threads behind a queue of `queue` messages.
    pub fn start<A: Answerer>(
        answerer: Arc<A>,
        threads: usize,
        queue: usize,
    ) -> std::io::Result<Pool> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads {
            let (a, rx) = (answerer.clone(), rx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("belfry-ctl-{i}"))
                    .spawn(move || run(a, rx))?,
            );
        }
        Ok(Pool {
            tx: Some(tx),
            threads: handles,
        })
    }

    /// A handle for a UDP worker.
    pub fn submitter(&self) -> Submitter {
        Submitter {
            // Present until `wait`, which consumes the pool.
            tx: self.tx.clone().expect("the pool is running"),
        }
    }

    /// Close the queue and wait for the threads (after the UDP workers stopped).
    pub fn wait(mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run<A: Answerer>(answerer: Arc<A>, rx: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = {
            let r = rx.lock().unwrap_or_else(|p| p.into_inner());
            match r.recv() {
                Ok(j) => j,
                // Every sender is gone: the server stops.
                Err(_) => return,
            }
        };
        let Job { msg, peer, sock } = job;
        let mut sent = false;
        answerer.control(&msg, peer, Transport::Udp, &mut |answer| {
            // One datagram per request: anything after the first is a bug of the answerer.
            if !sent {
                sent = true;
                // A failed send (full buffer, unreachable peer) loses the datagram, as UDP may.
                let _ = sock.send_to(answer, peer);
            }
            false
        });
    }
}

/// Answer a control message that came over TCP, writing every answer message
/// (length-prefixed) to `wr`. Returns false when the connection must close (the
/// client stopped reading or the write failed).
pub(super) async fn tcp<A: Answerer, W: AsyncWrite + Unpin>(
    answerer: &Arc<A>,
    msg: &[u8],
    peer: SocketAddr,
    wr: &mut W,
    write_timeout: Duration,
) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let a = answerer.clone();
    let msg = msg.to_vec();
    let job = tokio::task::spawn_blocking(move || {
        a.control(&msg, peer, Transport::Tcp, &mut |m| {
            if m.len() > 65535 {
                return false;
            }
            let mut frame = Vec::with_capacity(m.len() + 2);
            frame.extend_from_slice(&(m.len() as u16).to_be_bytes());
            frame.extend_from_slice(m);
            tx.blocking_send(frame).is_ok()
        });
    });
    let mut ok = true;
    while let Some(frame) = rx.recv().await {
        match tokio::time::timeout(write_timeout, wr.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                ok = false;
                break;
            }
            Err(_) => {
                tracing::info!(
                    "TCP client {peer} left an answer unread for {} s: connection closed",
                    write_timeout.as_secs()
                );
                ok = false;
                break;
            }
        }
    }
    // Dropping the receiver stops a producer still running.
    drop(rx);
    let _ = job.await;
    ok
}
