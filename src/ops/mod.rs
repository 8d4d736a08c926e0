//! Running belfry as a service: logs, signals, systemd, descriptor limits, progress of long work.
//!
//! - [`log`]: the `tracing` subscriber (text, JSON or journald lines; filter from config or env);
//! - [`reopen`]: append-only files (audit log, log file) reopened after rotation;
//! - [`notify`]: `sd_notify` readiness and status datagrams;
//! - [`limits`]: `RLIMIT_NOFILE` and the TCP descriptor budget;
//! - [`heap`]: the allocator's figures (what the program holds, what is resident);
//! - [`progress`]: progress and time left of long work, for logs, status and terminals;
//! - [`Signals`]: SIGTERM/SIGINT stop the server, SIGHUP reloads.
//!
//! Nothing here is on the query path or knows DNS.

pub mod heap;
pub mod limits;
pub mod log;
pub mod notify;
pub mod progress;
pub mod reopen;

/// The process signals the serve loop waits on.
pub struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Take over SIGTERM, SIGINT and SIGHUP (call early: until then SIGHUP ends the process).
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _g = rt.enter();
        let term = signal(SignalKind::terminate())?;
        let int = signal(SignalKind::interrupt())?;
        let hup = signal(SignalKind::hangup())?;
        drop(_g);
        Ok(Signals { rt, term, int, hup })
    }

    /// Block until SIGTERM or SIGINT, calling `on_reload` for every SIGHUP meanwhile.
    pub fn wait(mut self, mut on_reload: impl FnMut()) {
        loop {
            let reload = self.rt.block_on(async {
                tokio::select! {
                    _ = self.term.recv() => false,
                    _ = self.int.recv() => false,
                    _ = self.hup.recv() => true,
                }
            });
            if !reload {
                return;
            }
            on_reload();
        }
    }
}

/// Give memory freed after big transient work (a load, a reload, a checkpoint)
/// back to the system; glibc keeps it otherwise.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
