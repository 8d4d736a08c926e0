//! Readiness and status for systemd (`Type=notify`): datagrams to `$NOTIFY_SOCKET` (sd_notify(3)).
//!
//! `READY=1` once the zone is served, `STATUS=…` for what the server is doing,
//! `RELOADING=1` and `READY=1` around a reload, `STOPPING=1` at shutdown. The
//! socket may be a path or, with a leading `@`, an abstract Unix socket. Without
//! `NOTIFY_SOCKET` every call does nothing. A failed send is reported once to the
//! log and never stops the server.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};

static WARNED: AtomicBool = AtomicBool::new(false);

/// Where `NOTIFY_SOCKET` points, if it is set to something usable.
fn target() -> Option<SocketAddr> {
    let v = std::env::var_os("NOTIFY_SOCKET")?;
    let b = std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str());
    match b.first()? {
        b'@' => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&b[1..]).ok()
        }
        b'/' => SocketAddr::from_pathname(std::path::Path::new(&v)).ok(),
        _ => None,
    }
}

/// Send one notification (newline-separated `KEY=value` lines); true when it was sent.
pub fn notify(state: &str) -> bool {
    let Some(addr) = target() else {
        return false;
    };
    let r = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), &addr));
    match r {
        Ok(_) => true,
        Err(e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
            }
            false
        }
    }
}

/// `READY=1` with a status line.
pub fn ready(status: &str) -> bool {
    notify(&format!("READY=1\nSTATUS={status}"))
}

/// A `STATUS=` line.
pub fn status(status: &str) -> bool {
    notify(&format!("STATUS={status}"))
}

/// `RELOADING=1` with the monotonic time systemd asks for (systemd.service(5), `Type=notify-reload`).
pub fn reloading(status: &str) -> bool {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS={status}"
    ))
}

/// `STOPPING=1` with a status line.
pub fn stopping(status: &str) -> bool {
    notify(&format!("STOPPING=1\nSTATUS={status}"))
}
