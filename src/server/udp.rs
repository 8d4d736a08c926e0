//! UDP workers: batched receive and send on `SO_REUSEPORT` sockets.
//!
//! Each worker thread runs a current-thread tokio runtime with one long-lived
//! task per socket. A task waits for readiness, then drains the socket with
//! `recvmmsg` (up to [`BATCH`] datagrams a call), answers each into a reused
//! buffer and sends the answers with one `sendmmsg`. Send and receive errors
//! (an ICMP port unreachable reported back, a full send buffer) never stop a
//! worker: that datagram is dropped, as UDP allows. A message the answerer marks
//! as control goes to the control pool ([`super::control`]) with a duplicate of the
//! socket, and the batch goes on without it.

use super::{Answerer, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;
/// Largest query read; longer datagrams are dropped.
const RECV_SIZE: usize = 4096;

/// Bind one UDP socket with `SO_REUSEPORT` (and `IPV6_V6ONLY` for IPv6).
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Run one worker until `stop` is set.
pub fn worker<A: Answerer>(
    socks: Vec<UdpSocket>,
    answerer: Arc<A>,
    stop: Arc<AtomicBool>,
    control: super::control::Submitter,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("UDP worker cannot start its runtime: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut tasks = Vec::new();
        for s in socks {
            let (a, st, c) = (answerer.clone(), stop.clone(), control.clone());
            tasks.push(tokio::task::spawn_local(async move {
                match tokio::net::UdpSocket::from_std(s) {
                    Ok(sock) => serve_socket(sock, a, st, c).await,
                    Err(e) => tracing::error!("UDP socket: {e}"),
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Buffers for one batch, allocated once per socket task.
struct Bufs {
    rx: Vec<[u8; RECV_SIZE]>,
    tx: Vec<Vec<u8>>,
    addrs: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
    out_iov: [libc::iovec; BATCH],
    out_msgs: [libc::mmsghdr; BATCH],
}

fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

async fn serve_socket<A: Answerer>(
    sock: tokio::net::UdpSocket,
    answerer: Arc<A>,
    stop: Arc<AtomicBool>,
    control: super::control::Submitter,
) {
    // The control pool answers through its own handle on this socket.
    let dup = match sock.as_fd().try_clone_to_owned() {
        Ok(fd) => Arc::new(UdpSocket::from(fd)),
        Err(e) => {
            tracing::error!("UDP socket: cannot duplicate it for the control path: {e}");
            return;
        }
    };
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut b: Box<Bufs> = Box::new(Bufs {
        rx: vec![[0u8; RECV_SIZE]; BATCH],
        tx: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
        addrs: unsafe { std::mem::zeroed() },
        iov: unsafe { std::mem::zeroed() },
        msgs: unsafe { std::mem::zeroed() },
        out_iov: unsafe { std::mem::zeroed() },
        out_msgs: unsafe { std::mem::zeroed() },
    });
    let fd = sock.as_raw_fd();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(250), sock.readable()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                tracing::warn!("UDP readiness error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Ok(Ok(())) => {}
        }
        loop {
            let n = sock.try_io(tokio::io::Interest::READABLE, || {
                let bufs = &mut *b;
                for i in 0..BATCH {
                    bufs.iov[i] = libc::iovec {
                        iov_base: bufs.rx[i].as_mut_ptr() as *mut libc::c_void,
                        iov_len: RECV_SIZE,
                    };
                    bufs.msgs[i].msg_hdr.msg_name =
                        &mut bufs.addrs[i] as *mut _ as *mut libc::c_void;
                    bufs.msgs[i].msg_hdr.msg_namelen =
                        std::mem::size_of::<libc::sockaddr_storage>() as u32;
                    bufs.msgs[i].msg_hdr.msg_iov = &mut bufs.iov[i];
                    bufs.msgs[i].msg_hdr.msg_iovlen = 1;
                    bufs.msgs[i].msg_hdr.msg_control = std::ptr::null_mut();
                    bufs.msgs[i].msg_hdr.msg_controllen = 0;
                    bufs.msgs[i].msg_hdr.msg_flags = 0;
                    bufs.msgs[i].msg_len = 0;
                }
                // SAFETY: the arrays live in `bufs` for the duration of the call and
                // every header points at its own buffer and address storage.
                let r = unsafe {
                    libc::recvmmsg(
                        fd,
                        bufs.msgs.as_mut_ptr(),
                        BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if r < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(r as usize)
                }
            });
            let n = match n {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let bufs = &mut *b;
            let mut out = 0usize;
            for i in 0..n {
                let len = bufs.msgs[i].msg_len as usize;
                if bufs.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > RECV_SIZE {
                    continue;
                }
                let Some(peer) = to_socket_addr(&bufs.addrs[i]) else {
                    continue;
                };
                let mut buf = std::mem::take(&mut bufs.tx[out]);
                buf.clear();
                let msg = &bufs.rx[i][..len];
                let send = if answerer.is_control(msg) {
                    // Off to the control pool; when it is full, the busy answer (or none).
                    !control.submit(msg, peer, &dup) && answerer.busy(msg, &mut buf)
                } else {
                    answerer.answer(msg, peer, Transport::Udp, &mut buf)
                };
                if send {
                    bufs.out_iov[out] = libc::iovec {
                        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                        iov_len: buf.len(),
                    };
                    bufs.out_msgs[out].msg_hdr.msg_name =
                        &mut bufs.addrs[i] as *mut _ as *mut libc::c_void;
                    bufs.out_msgs[out].msg_hdr.msg_namelen = bufs.msgs[i].msg_hdr.msg_namelen;
                    bufs.out_msgs[out].msg_hdr.msg_iov = &mut bufs.out_iov[out];
                    bufs.out_msgs[out].msg_hdr.msg_iovlen = 1;
                    bufs.out_msgs[out].msg_hdr.msg_control = std::ptr::null_mut();
                    bufs.out_msgs[out].msg_hdr.msg_controllen = 0;
                    bufs.out_msgs[out].msg_hdr.msg_flags = 0;
                    bufs.tx[out] = buf;
                    out += 1;
                } else {
                    bufs.tx[out] = buf;
                }
            }
            let mut sent = 0usize;
            while sent < out {
                // SAFETY: headers `sent..out` point at live buffers and addresses in `bufs`.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        bufs.out_msgs[sent..].as_mut_ptr(),
                        (out - sent) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if r <= 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    // A failed datagram (full buffer, unreachable peer) is skipped.
                    sent += 1;
                } else {
                    sent += r as usize;
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
}
