//! The descriptor budget: raise `RLIMIT_NOFILE` and check that the TCP limit leaves room for the rest.
//!
//! At start belfry raises its soft descriptor limit to the hard one
//! ([`raise_nofile`]). Every TCP connection holds one descriptor; the
//! listeners, worker runtimes and open files hold a fixed number
//! ([`fixed_descriptors`]); and [`RESERVE`] more stay free for what comes and
//! goes: admin API connections, reading the list, zone and key files, the
//! control plane. [`Budget::check`] tells whether `tcp_max_connections` fits
//! what is left; `belfry check` refuses a configuration that does not, and
//! `belfry serve` warns and lowers the TCP limit to what fits.

use crate::config::Config;

/// Descriptors kept free for the admin API, file reads and the control plane.
pub const RESERVE: u64 = 64;

/// The descriptor limits after [`raise_nofile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nofile {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// The current `RLIMIT_NOFILE`.
pub fn nofile() -> std::io::Result<Nofile> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Nofile {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

/// Raise the soft descriptor limit to the hard limit (capped by `fs.nr_open` when unlimited).
pub fn raise_nofile() -> std::io::Result<Nofile> {
    let now = nofile()?;
    let mut want = now.hard;
    if want == libc::RLIM_INFINITY {
        want = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if want <= now.soft {
        return Ok(now);
    }
    let r = libc::rlimit {
        rlim_cur: want,
        rlim_max: now.hard,
    };
    // SAFETY: setrlimit reads the rlimit we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    nofile()
}

/// The nice value background bulk work runs at (reading a whole zone file on a reload):
/// when it and a query worker want the same core, the worker gets about nine tenths.
pub const BACKGROUND_NICE: i32 = 10;

/// Lower the calling thread's CPU priority to `nice` (Linux keeps the nice value per
/// thread, and threads it starts inherit it). Meant for a thread that ends when its
/// work does: an unprivileged thread cannot raise its priority again.
pub fn lower_this_thread(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority reads its three integer arguments only.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Put the calling thread in the idle scheduling class (`SCHED_IDLE`; threads it
/// starts inherit it): it gets a core only when nothing else wants it. Under load
/// on every core such a thread barely runs, so it is for work that holds no lock
/// others wait on. It does not make a waking query worker take its core at once:
/// on the kernels measured here (preemption off, 250 Hz) the worker waits for the
/// next tick, up to 4 ms, so background work also leaves a core free
/// ([`leave_one_core`]). An unprivileged thread cannot leave the class again:
/// meant for a thread that ends when its work does.
pub fn idle_this_thread() -> std::io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the sched_param we own.
    if unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &p) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Keep the calling thread (and the threads it starts) off one of the cores it may
/// run on, when it may run on two or more: background work then always leaves a
/// core free for the query workers (see [`idle_this_thread`] for why a lower
/// priority alone does not). Returns how many cores it keeps.
pub fn leave_one_core() -> std::io::Result<usize> {
    // SAFETY: cpu_set_t is plain data; the calls read and write the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::CPU_COUNT(&set) as usize;
        if n < 2 {
            return Ok(n);
        }
        let last = (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("a set with two cores has a last one");
        libc::CPU_CLR(last, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n - 1)
    }
}

/// Make the calling thread (and the threads it starts) background work: kept off
/// one core ([`leave_one_core`]) and, with `idle`, in the idle class
/// ([`idle_this_thread`]), else (or where that is refused) at [`BACKGROUND_NICE`].
/// What cannot be done is logged at debug level under `what`, and the work goes on.
pub fn background_thread(what: &str, idle: bool) {
    if let Err(e) = leave_one_core() {
        tracing::debug!("{what}: cannot keep off a core: {e}");
    }
    if idle {
        match idle_this_thread() {
            Ok(()) => return,
            Err(e) => tracing::debug!("{what}: cannot run as SCHED_IDLE: {e}"),
        }
    }
    if let Err(e) = lower_this_thread(BACKGROUND_NICE) {
        tracing::debug!("{what}: cannot lower its priority: {e}");
    }
}

/// Run `f` on a thread of its own made background work ([`background_thread`]) and
/// wait for it, so that the caller's scheduling stays as it was (an unprivileged
/// thread cannot raise its priority again). `None` when `f` panicked.
pub fn in_background<T: Send>(what: &str, idle: bool, f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            background_thread(what, idle);
            f()
        })
        .join()
        .ok()
    })
}

/// Descriptors a running server holds whatever its traffic: stdio, sockets, runtimes, files.
///
/// Measured on an idle server (`ls /proc/PID/fd`): 17 + per address (1 + workers) +
/// 4 per worker (its runtime's epoll and waker, its share of the TCP runtime), with
/// stdio, the signal runtime, the admin listener and the audit log in the 17. The
/// base here adds room for a log file, the list file being read and an admin
/// connection, and the publisher's and control path's own (the journal, the NOTIFY
/// socket, the follower's runtime, a socket handed to each control thread);
/// `tests/ops.rs` checks the estimate against a running server.
pub fn fixed_descriptors(cfg: &Config) -> u64 {
    let listen = cfg.server.listen.len() as u64;
    let workers = cfg.server.workers as u64;
    let control = cfg.transfer.control_threads as u64;
    30 + listen * (1 + workers) + 4 * workers + control
}

/// The TCP connection budget under a descriptor limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The soft `RLIMIT_NOFILE`.
    pub limit: u64,
    /// Descriptors held whatever the traffic ([`fixed_descriptors`]).
    pub fixed: u64,
    /// Descriptors kept free ([`RESERVE`]).
    pub reserve: u64,
}

impl Budget {
    /// The budget of a configuration under a descriptor limit.
    pub fn new(cfg: &Config, limit: u64) -> Budget {
        Budget {
            limit,
            fixed: fixed_descriptors(cfg),
            reserve: RESERVE,
        }
    }

    /// Most TCP connections that fit.
    pub fn max_tcp(&self) -> u64 {
        self.limit.saturating_sub(self.fixed + self.reserve)
    }

    /// Whether `tcp_max_connections` fits; the error names the field, the numbers and the way out.
    pub fn check(&self, tcp_max_connections: usize) -> Result<(), String> {
        if tcp_max_connections as u64 <= self.max_tcp() {
            return Ok(());
        }
        Err(format!(
            "[server] tcp_max_connections = {tcp_max_connections} does not fit the descriptor limit \
             {} (RLIMIT_NOFILE): at most {} fit, after {} for listeners, workers and files and {} \
             kept in reserve for the admin API and file reads; lower it or raise the hard limit \
             (LimitNOFILE= in the systemd unit, `ulimit -Hn`)",
            self.limit,
            self.max_tcp(),
            self.fixed,
            self.reserve
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn budget_counts_fixed_and_reserve() {
        let cfg = Config::parse(
            Path::new("b.toml"),
            "[server]\nlisten = [\"127.0.0.1:53\", \"[::1]:53\"]\nworkers = 2\n[zone]\norigin = \"be.\"\nfile = \"be.zone\"\n",
        )
        .unwrap();
        let b = Budget::new(&cfg, 1024);
        assert_eq!(b.fixed, 30 + 2 * 3 + 4 * 2 + 2);
        assert_eq!(b.max_tcp(), 1024 - b.fixed - RESERVE);
        assert!(b.check(b.max_tcp() as usize).is_ok());
        let e = b.check(1024).unwrap_err();
        assert!(e.contains("tcp_max_connections = 1024"), "{e}");
        assert!(e.contains(&format!("at most {}", b.max_tcp())), "{e}");
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let n = raise_nofile().unwrap();
        assert!(n.soft == n.hard || n.hard == libc::RLIM_INFINITY, "{n:?}");
    }

    #[test]
    fn an_idle_thread_is_in_the_idle_class_and_its_threads_too() {
        let policies = std::thread::spawn(|| {
            idle_this_thread().unwrap();
            // SAFETY: sched_getscheduler(0) asks about the calling thread.
            let mine = unsafe { libc::sched_getscheduler(0) };
            let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) })
                .join()
                .unwrap();
            (mine, child)
        })
        .join()
        .unwrap();
        assert_eq!(policies, (libc::SCHED_IDLE, libc::SCHED_IDLE));
        // SAFETY: as above; this thread was not touched.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    #[test]
    fn background_work_runs_on_its_own_thread_and_a_panic_is_none() {
        // SAFETY: sched_getscheduler reads its integer argument only.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let caller = policy();
        assert_eq!(in_background("test", true, policy), Some(libc::SCHED_IDLE));
        assert_eq!(policy(), caller);
        assert_eq!(
            in_background("test", false, || -> u8 { panic!("expected") }),
            None
        );
    }

    #[test]
    fn a_thread_that_leaves_a_core_keeps_its_threads_off_it_too() {
        fn cores() -> usize {
            // SAFETY: as in leave_one_core.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(
                    libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                    0
                );
                libc::CPU_COUNT(&set) as usize
            }
        }
        let before = cores();
        let (kept, mine, child) = std::thread::spawn(move || {
            let kept = leave_one_core().unwrap();
            let child = std::thread::spawn(cores).join().unwrap();
            (kept, cores(), child)
        })
        .join()
        .unwrap();
        let want = if before >= 2 { before - 1 } else { before };
        assert_eq!((kept, mine, child), (want, want, want));
        assert_eq!(cores(), before, "the calling thread is untouched");
    }
}
