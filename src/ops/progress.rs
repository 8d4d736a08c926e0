//! Progress of long work: done/total, percent and time left, for logs, status, systemd and terminals.
//!
//! - [`Progress`] is for the running server: it logs a line at most every
//!   [`LOG_EVERY`], sets the systemd `STATUS=` line, and shows on a [`Board`]
//!   that `GET /v1/status` reads. Start one per task (signing pass, and later
//!   reload, bulk suppression, AXFR), call [`Progress::set`] as work is done, and
//!   [`Progress::finish`] (or drop it) at the end.
//! - [`Bar`] is for commands a person runs: an `indicatif` bar on a terminal,
//!   plain lines at a slower pace when standard error is not one.
//!
//! The estimate of time left assumes the rest goes at the average pace so far.
//! Nothing here is for the query path.

use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a running task logs a progress line.
pub const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often a [`Bar`] prints a plain line when standard error is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// One task's progress as status shows it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Report {
    /// What is being done (`signing`, …).
    pub task: String,
    /// Units done.
    pub done: u64,
    /// Units in all (0 when unknown).
    pub total: u64,
    /// Percent done (0 when the total is unknown).
    pub percent: f64,
    /// Seconds since the task started.
    pub elapsed_seconds: f64,
    /// Estimated seconds left, once there is something to estimate from.
    pub eta_seconds: Option<f64>,
}

/// Percent done and the estimate of seconds left after `elapsed` for `done` of `total`.
pub fn estimate(done: u64, total: u64, elapsed: Duration) -> (f64, Option<f64>) {
    if total == 0 {
        return (0.0, None);
    }
    let done = done.min(total);
    let percent = done as f64 * 100.0 / total as f64;
    if done == 0 || elapsed < Duration::from_millis(200) {
        return (percent, None);
    }
    let left = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
    (percent, Some(left))
}

/// A human line: `signing: 45% (123/456), about 12 s left`.
pub fn line(r: &Report) -> String {
    if r.total == 0 {
        return format!(
            "{}: {} done, {:.0} s so far",
            r.task, r.done, r.elapsed_seconds
        );
    }
    let eta = match r.eta_seconds {
        Some(s) => format!(", about {} left", human_secs(s)),
        None => String::new(),
    };
    format!(
        "{}: {:.0}% ({}/{}){eta}",
        r.task, r.percent, r.done, r.total
    )
}

fn human_secs(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", (s + 30) / 60),
        _ => format!("{:.1} h", s as f64 / 3600.0),
    }
}

struct Shared {
    task: String,
    done: AtomicU64,
    total: AtomicU64,
    start: Instant,
}

impl Shared {
    fn report(&self) -> Report {
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let elapsed = self.start.elapsed();
        let (percent, eta_seconds) = estimate(done, total, elapsed);
        Report {
            task: self.task.clone(),
            done,
            total,
            percent: (percent * 10.0).round() / 10.0,
            elapsed_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            eta_seconds: eta_seconds.map(|s| s.round()),
        }
    }
}

/// The tasks in progress in a running server, for `GET /v1/status`.
#[derive(Default)]
pub struct Board {
    tasks: Mutex<Vec<Arc<Shared>>>,
}

impl Board {
    /// An empty board.
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    /// The tasks in progress now.
    pub fn reports(&self) -> Vec<Report> {
        let t = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().map(|s| s.report()).collect()
    }

    fn add(&self, s: Arc<Shared>) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    fn remove(&self, s: &Arc<Shared>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|x| !Arc::ptr_eq(x, s));
    }
}

/// Progress of one task in the running server: log lines, systemd status, the status board.
pub struct Progress {
    shared: Arc<Shared>,
    board: Option<Arc<Board>>,
    every: Duration,
    last_log: Instant,
    systemd: bool,
    finished: bool,
}

impl Progress {
    /// Start reporting a task of `total` units (0 = unknown) on `board`.
    pub fn start(task: &str, total: u64, board: Option<&Arc<Board>>) -> Progress {
        let shared = Arc::new(Shared {
            task: task.to_string(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(total),
            start: Instant::now(),
        });
        if let Some(b) = board {
            b.add(shared.clone());
        }
        Progress {
            shared,
            board: board.cloned(),
            every: LOG_EVERY,
            last_log: Instant::now(),
            systemd: true,
            finished: false,
        }
    }

    /// Log (and set the systemd status) at most this often instead of [`LOG_EVERY`].
    pub fn every(mut self, every: Duration) -> Progress {
        self.every = every;
        self
    }

    /// Leave the systemd `STATUS=` line alone (for work that is not the server's main state).
    pub fn without_systemd(mut self) -> Progress {
        self.systemd = false;
        self
    }

    /// Record `done` of `total` units; logs when the interval has passed.
    pub fn set(&mut self, done: u64, total: u64) {
        self.shared.done.store(done, Ordering::Relaxed);
        self.shared.total.store(total, Ordering::Relaxed);
        if self.last_log.elapsed() >= self.every {
            self.last_log = Instant::now();
            let l = line(&self.shared.report());
            tracing::info!("{l}");
            if self.systemd {
                super::notify::status(&l);
            }
        }
    }

    /// The state now.
    pub fn report(&self) -> Report {
        self.shared.report()
    }

    /// End the task and take it off the board; returns how long it took.
    pub fn finish(mut self) -> Duration {
        self.end()
    }

    fn end(&mut self) -> Duration {
        self.finished = true;
        if let Some(b) = &self.board {
            b.remove(&self.shared);
        }
        self.shared.start.elapsed()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.finished {
            self.end();
        }
    }
}

/// A progress bar for a command a person runs: `indicatif` on a terminal, plain lines otherwise.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    shared: Shared,
    out: Box<dyn Write + Send>,
    every: Duration,
    last: Instant,
    printed: bool,
    title: String,
}

impl Bar {
    /// A bar on standard error for `total` units (0 = unknown: a spinner).
    pub fn new(task: &str, total: u64) -> Bar {
        let tty = std::io::stderr().is_terminal();
        Self::with(task, total, tty, Box::new(std::io::stderr()), PLAIN_EVERY)
    }

    /// A bar drawn by `indicatif` (`tty`) or as plain lines to `out` every `every`.
    pub fn with(
        task: &str,
        total: u64,
        tty: bool,
        out: Box<dyn Write + Send>,
        every: Duration,
    ) -> Bar {
        let bar = tty.then(|| {
            let b = if total > 0 {
                indicatif::ProgressBar::new(total)
            } else {
                indicatif::ProgressBar::new_spinner()
            };
            let style = if total > 0 {
                indicatif::ProgressStyle::with_template(
                    "{msg:>14} [{bar:40}] {percent:>3}% {human_pos}/{human_len} ({eta} left)",
                )
            } else {
                indicatif::ProgressStyle::with_template("{msg:>14} {spinner} {elapsed}")
            };
            if let Ok(s) = style {
                b.set_style(s.progress_chars("=> "));
            }
            b.set_message(task.to_string());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        Bar {
            bar,
            shared: Shared {
                task: task.to_string(),
                done: AtomicU64::new(0),
                total: AtomicU64::new(total),
                start: Instant::now(),
            },
            out,
            every,
            last: Instant::now(),
            printed: false,
            title: task.to_string(),
        }
    }

    /// Record `done` units.
    pub fn set(&mut self, done: u64) {
        self.shared.done.store(done, Ordering::Relaxed);
        match &self.bar {
            Some(b) => b.set_position(done),
            None => {
                if self.last.elapsed() >= self.every {
                    self.last = Instant::now();
                    self.printed = true;
                    let _ = writeln!(self.out, "{}", line(&self.shared.report()));
                }
            }
        }
    }

    /// Change the task name shown (a new stage of the same work).
    pub fn stage(&mut self, task: &str) {
        self.shared.task = task.to_string();
        if let Some(b) = &self.bar {
            b.set_message(task.to_string());
        }
    }

    /// Clear the bar (or print a closing plain line if progress lines were printed).
    pub fn finish(mut self) {
        match self.bar.take() {
            Some(b) => b.finish_and_clear(),
            None if self.printed => {
                let _ = writeln!(
                    self.out,
                    "{}: done in {:.1} s",
                    self.title,
                    self.shared.start.elapsed().as_secs_f64()
                );
            }
            None => {}
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// How far a file has been read by this process: the offset of its open descriptor (Linux `/proc`).
///
/// Lets a progress display follow a reader it cannot hook, such as the zone
/// loader; `None` when the file is not open (not yet, or no longer).
pub fn read_position(path: &std::path::Path) -> Option<u64> {
    let want = std::fs::canonicalize(path).ok()?;
    for e in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() != Some(want.as_path()) {
            continue;
        }
        let info =
            std::fs::read_to_string(std::path::Path::new("/proc/self/fdinfo").join(e.file_name()))
                .ok()?;
        return info
            .lines()
            .find_map(|l| l.strip_prefix("pos:"))
            .and_then(|v| v.trim().parse().ok());
    }
    None
}

/// A writer of master-file text that counts delegations (runs of NS lines per owner) into a [`Bar`].
///
/// For `belfry generate`: the apex NS set counts as one owner and is not shown.
pub struct DelegationCounter<W: Write> {
    inner: W,
    bar: Bar,
    line: Vec<u8>,
    last_owner: Vec<u8>,
    owners: u64,
}

impl<W: Write> DelegationCounter<W> {
    /// Count what goes through to `inner` into `bar`.
    pub fn new(inner: W, bar: Bar) -> Self {
        DelegationCounter {
            inner,
            bar,
            line: Vec::with_capacity(256),
            last_owner: Vec::new(),
            owners: 0,
        }
    }

    fn end_line(&mut self) {
        let mut t = self
            .line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let owner = t.next().unwrap_or_default();
        if !self.line.starts_with(b" ")
            && !self.line.starts_with(b"\t")
            && t.take(3).any(|x| x == b"NS")
            && owner != self.last_owner.as_slice()
        {
            self.last_owner.clear();
            self.last_owner.extend_from_slice(owner);
            self.owners += 1;
            if self.owners % 1024 == 0 {
                self.bar.set(self.owners.saturating_sub(1));
            }
        }
        self.line.clear();
    }

    /// Flush and close the bar.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.inner.flush()?;
        self.bar.set(self.owners.saturating_sub(1));
        self.bar.finish();
        Ok(())
    }
}

impl<W: Write> Write for DelegationCounter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < 256 {
                self.line.push(b);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_proportional() {
        let (p, eta) = estimate(25, 100, Duration::from_secs(10));
        assert_eq!(p, 25.0);
        assert_eq!(eta, Some(30.0));
        assert_eq!(estimate(0, 100, Duration::from_secs(10)).1, None);
        assert_eq!(estimate(5, 0, Duration::from_secs(10)), (0.0, None));
        assert_eq!(
            estimate(200, 100, Duration::from_secs(10)),
            (100.0, Some(0.0))
        );
    }

    #[test]
    fn board_shows_tasks_until_finished() {
        let b = Board::new();
        let mut p = Progress::start("signing", 1000, Some(&b)).without_systemd();
        p.set(250, 1000);
        let r = b.reports();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].task.as_str(), r[0].done, r[0].total),
            ("signing", 250, 1000)
        );
        assert_eq!(r[0].percent, 25.0);
        p.finish();
        assert!(b.reports().is_empty());
        let p = Progress::start("reload", 0, Some(&b)).without_systemd();
        assert_eq!(b.reports().len(), 1);
        drop(p);
        assert!(b.reports().is_empty());
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_off_a_terminal() {
        let sink = Sink::default();
        let mut bar = Bar::with(
            "loading",
            200,
            false,
            Box::new(sink.clone()),
            Duration::ZERO,
        );
        bar.set(50);
        bar.set(200);
        bar.finish();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("loading: 25% (50/200)"), "{text}");
        assert!(lines[1].starts_with("loading: 100% (200/200)"), "{text}");
        assert!(lines[2].starts_with("loading: done in"), "{text}");
    }

    #[test]
    fn counts_delegations_in_master_text() {
        let sink = Sink::default();
        let bar = Bar::with(
            "generating",
            3,
            false,
            Box::new(sink.clone()),
            Duration::ZERO,
        );
        let mut w = DelegationCounter::new(Vec::new(), bar);
        let text = "$ORIGIN be.\nbe. 3600 IN SOA a. b. 1 2 3 4 5\nbe. 86400 IN NS a.nsset.be.\n\
                    a.nsset.be. 86400 IN A 192.0.2.1\nbe. 86400 IN NS b.nsset.be.\n\
                    one.be. 3600 IN NS ns1.x.\none.be. 3600 IN NS ns2.x.\n\
                    two.be. 3600 IN NS ns1.two.be.\nns1.two.be. 3600 IN A 192.0.2.2\n\
                    two.be. 3600 IN DS 1 13 2 00\nthree.be. 3600 IN NS ns1.x.\n";
        // Written in small pieces, as `writeln!` does.
        for chunk in text.as_bytes().chunks(7) {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.owners - 1, 3);
        w.finish().unwrap();
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(out.starts_with("generating: 100% (3/3)"), "{out}");
    }

    #[test]
    fn read_position_follows_an_open_file() {
        use std::io::Read;
        let p = std::env::temp_dir().join(format!("belfry-pos-{}", std::process::id()));
        std::fs::write(&p, vec![b'x'; 10_000]).unwrap();
        assert_eq!(read_position(&p), None);
        let mut f = std::fs::File::open(&p).unwrap();
        let mut buf = [0u8; 4000];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(read_position(&p), Some(4000));
        drop(f);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn human_lines() {
        let r = Report {
            task: "signing".into(),
            done: 45,
            total: 100,
            percent: 45.0,
            elapsed_seconds: 10.0,
            eta_seconds: Some(12.2),
        };
        assert_eq!(line(&r), "signing: 45% (45/100), about 12 s left");
        assert_eq!(human_secs(600.0), "10 min");
    }
}
