//! Append-only files that survive log rotation: reopened on the reload signal or when moved away.
//!
//! A [`ReopenFile`] keeps the path it was opened from and the device and inode
//! it got. Before a write (at most once per `check_every`) it compares them
//! with what the path names now; when the file was renamed or deleted (as
//! logrotate does) it opens the path again, creating it. [`reopen_all`]
//! reopens every such file at once; the serve loop calls it on SIGHUP.
//!
//! It must not be used on the query path: every write takes a lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

struct Inner {
    file: File,
    /// (device, inode) of the open file.
    id: (u64, u64),
    last_check: Instant,
}

/// An append-only file reopened after rotation.
pub struct ReopenFile {
    path: PathBuf,
    check_every: Duration,
    inner: Mutex<Inner>,
}

/// Every open [`ReopenFile`], for [`reopen_all`].
static OPEN: Mutex<Vec<Weak<ReopenFile>>> = Mutex::new(Vec::new());

fn open_append(path: &Path) -> std::io::Result<(File, (u64, u64))> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let m = file.metadata()?;
    Ok((file, (m.dev(), m.ino())))
}

impl ReopenFile {
    /// Open (or create) `path` for appending; rotation is checked at most once per `check_every`.
    pub fn open(path: &Path, check_every: Duration) -> std::io::Result<Arc<ReopenFile>> {
        let (file, id) = open_append(path)?;
        let f = Arc::new(ReopenFile {
            path: path.to_path_buf(),
            check_every,
            inner: Mutex::new(Inner {
                file,
                id,
                last_check: Instant::now(),
            }),
        });
        let mut all = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&f));
        Ok(f)
    }

    /// The path the file is (re)opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open the path again, whether or not it moved.
    pub fn reopen(&self) -> std::io::Result<()> {
        let (file, id) = open_append(&self.path)?;
        let mut g = self.lock();
        g.file = file;
        g.id = id;
        g.last_check = Instant::now();
        Ok(())
    }

    /// Reopen when the path no longer names the open file (renamed or deleted).
    fn follow(&self, g: &mut Inner) -> std::io::Result<()> {
        if g.last_check.elapsed() < self.check_every {
            return Ok(());
        }
        g.last_check = Instant::now();
        let moved = match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != g.id,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e),
        };
        if moved {
            let (file, id) = open_append(&self.path)?;
            g.file = file;
            g.id = id;
        }
        Ok(())
    }

    /// Append `bytes` in one write (following a rotation first); `sync` also waits for
    /// the disk. A failed write is cut back off, so no torn line is left behind.
    pub fn append(&self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        let mut g = self.lock();
        // A failed check keeps writing to the file already open.
        let _ = self.follow(&mut g);
        let start = g.file.metadata().map(|m| m.len()).ok();
        let mut r = g.file.write_all(bytes);
        if r.is_ok() && sync {
            r = g.file.sync_data();
        }
        if r.is_err() {
            if let Some(len) = start {
                let _ = g.file.set_len(len);
            }
        }
        r
    }
}

/// Reopen every open [`ReopenFile`]; returns the failures, naming each path.
pub fn reopen_all() -> Vec<String> {
    let files: Vec<Arc<ReopenFile>> = {
        let mut all = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    files
        .iter()
        .filter_map(|f| {
            f.reopen()
                .err()
                .map(|e| format!("{}: cannot reopen: {e}", f.path.display()))
        })
        .collect()
}

/// A `Write` that sends each buffer to a [`ReopenFile`] (for the log writer).
pub struct Appender(pub Arc<ReopenFile>);

impl Write for Appender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf, false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("belfry-reopen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn follows_a_rename_on_the_next_write() {
        let d = dir("rename");
        let p = d.join("a.log");
        let f = ReopenFile::open(&p, Duration::ZERO).unwrap();
        f.append(b"one\n", false).unwrap();
        std::fs::rename(&p, d.join("a.log.1")).unwrap();
        f.append(b"two\n", true).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("a.log.1")).unwrap(), "one\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        std::fs::remove_file(&p).unwrap();
        f.append(b"three\n", false).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "three\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reopen_all_reopens_at_once() {
        let d = dir("all");
        let p = d.join("b.log");
        // A long check interval: only reopen_all moves it to the new file.
        let f = ReopenFile::open(&p, Duration::from_secs(3600)).unwrap();
        f.append(b"one\n", false).unwrap();
        std::fs::rename(&p, d.join("b.log.1")).unwrap();
        f.append(b"two\n", false).unwrap();
        assert!(reopen_all().is_empty());
        f.append(b"three\n", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("b.log.1")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "three\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}
