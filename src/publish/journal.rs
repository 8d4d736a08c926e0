//! The journal: every published change, appended and fsynced before it is served.
//!
//! One record per change: the change as submitted (typed, so a restart can
//! apply it again through the same code), and the difference of the signed
//! zone it made (serial N → M: records removed and added, RRSIG and NSEC3
//! included), which is what IXFR (RFC 1995) serves and what a restart takes
//! its signatures from.
//!
//! On disk: records of `magic | length | CRC-32 | payload` (payload in
//! postcard). A record torn by a crash is detected when the journal is opened
//! (bad magic, short, or a CRC mismatch) and cut off, with everything after it.
//! The journal is bounded by a size budget: the oldest records are dropped
//! (never those a restart still needs) by rewriting the file atomically.

use super::change::Change;
use super::diff::Diff;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"BJR1";
const HEADER: usize = 12;
/// Largest record accepted when reading (a corrupt length must not allocate gigabytes).
const MAX_RECORD: u32 = 1 << 30;

/// One published change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The change's id.
    pub id: u64,
    /// When it was published (seconds since the epoch).
    pub time: u64,
    /// Who asked.
    pub actor: String,
    /// Serial before.
    pub from: u32,
    /// Serial after.
    pub to: u32,
    /// The change as submitted.
    pub change: Change,
    /// What it did to the signed zone.
    pub diff: Diff,
}

#[derive(Clone, Copy, Debug)]
struct Index {
    from: u32,
    to: u32,
    time: u64,
    offset: u64,
    len: u32,
}

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    index: Vec<Index>,
    size: u64,
    /// Size budget in bytes (older records are dropped beyond it).
    pub max_bytes: u64,
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Records read.
    pub records: usize,
    /// Bytes cut off at the end (a torn or corrupt tail).
    pub cut_bytes: u64,
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> String {
    format!("{}: {what}: {e}", path.display())
}

impl Journal {
    /// Open (or create) a journal, cutting off a torn tail.
    pub fn open(path: &Path, max_bytes: u64) -> Result<(Journal, Opened), String> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_err(path, "cannot open the journal", e))?;
        let len = file
            .metadata()
            .map_err(|e| io_err(path, "cannot read the journal", e))?
            .len();
        let mut index = Vec::new();
        let mut pos = 0u64;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_err(path, "cannot read the journal", e))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
        let mut header = [0u8; HEADER];
        let mut buf = Vec::new();
        loop {
            if pos + HEADER as u64 > len {
                break;
            }
            if reader.read_exact(&mut header).is_err() || header[..4] != MAGIC {
                break;
            }
            let n = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
            if n > MAX_RECORD || pos + HEADER as u64 + n as u64 > len {
                break;
            }
            buf.resize(n as usize, 0);
            if reader.read_exact(&mut buf).is_err() || crc32fast::hash(&buf) != crc {
                break;
            }
            let Ok(e) = postcard::from_bytes::<Entry>(&buf) else {
                break;
            };
            index.push(Index {
                from: e.from,
                to: e.to,
                time: e.time,
                offset: pos,
                len: n,
            });
            pos += HEADER as u64 + n as u64;
        }
        drop(reader);
        let cut = len - pos;
        if cut > 0 {
            file.set_len(pos)
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(path, "cannot cut the torn end of the journal", e))?;
        }
        let records = index.len();
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                index,
                size: pos,
                max_bytes,
            },
            Opened {
                records,
                cut_bytes: cut,
            },
        ))
    }

    /// Append a record and make it durable; on failure nothing of it remains.
    pub fn append(&mut self, e: &Entry) -> Result<(), String> {
        let payload =
            postcard::to_stdvec(e).map_err(|x| format!("cannot encode a journal record: {x}"))?;
        if payload.len() as u64 > MAX_RECORD as u64 {
            return Err("a journal record over 1 GiB: change too large".into());
        }
        let mut rec = Vec::with_capacity(HEADER + payload.len());
        rec.extend_from_slice(&MAGIC);
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        let r = self
            .file
            .write_all(&rec)
            .and_then(|_| self.file.sync_data());
        if let Err(x) = r {
            // Leave no torn record behind: cut back to the last good end.
            let _ = self.file.set_len(self.size);
            return Err(io_err(&self.path, "cannot write the journal", x));
        }
        self.index.push(Index {
            from: e.from,
            to: e.to,
            time: e.time,
            offset: self.size,
            len: payload.len() as u32,
        });
        self.size += rec.len() as u64;
        Ok(())
    }

    /// Take back the newest record (its change was refused after it was written).
    pub fn undo_last(&mut self) -> Result<(), String> {
        let Some(last) = self.index.pop() else {
            return Ok(());
        };
        self.file
            .set_len(last.offset)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| io_err(&self.path, "cannot take back the last record", e))?;
        self.size = last.offset;
        Ok(())
    }

    fn read_at(&self, ix: &Index) -> Result<Entry, String> {
        let mut f = File::open(&self.path).map_err(|e| io_err(&self.path, "cannot read", e))?;
        f.seek(SeekFrom::Start(ix.offset + HEADER as u64))
            .map_err(|e| io_err(&self.path, "cannot read", e))?;
        let mut buf = vec![0u8; ix.len as usize];
        f.read_exact(&mut buf)
            .map_err(|e| io_err(&self.path, "cannot read", e))?;
        postcard::from_bytes(&buf).map_err(|e| format!("{}: bad record: {e}", self.path.display()))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The serial the oldest record starts from.
    pub fn first_serial(&self) -> Option<u32> {
        self.index.first().map(|i| i.from)
    }

    /// The serial the newest record leads to.
    pub fn last_serial(&self) -> Option<u32> {
        self.index.last().map(|i| i.to)
    }

    /// The records leading from `serial` to the newest one, in order; `None` when
    /// the journal does not reach back to `serial` (or does not continue from it).
    pub fn entries_from(&self, serial: u32) -> Result<Option<Vec<Entry>>, String> {
        let Some(start) = self.index.iter().rposition(|i| i.from == serial) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut expect = serial;
        for ix in &self.index[start..] {
            if ix.from != expect {
                return Ok(None);
            }
            out.push(self.read_at(ix)?);
            expect = ix.to;
        }
        Ok(Some(out))
    }

    /// The (from, to, time) of every record, oldest first.
    pub fn spans(&self) -> Vec<(u32, u32, u64)> {
        self.index.iter().map(|i| (i.from, i.to, i.time)).collect()
    }

    /// Drop the oldest records while over the size budget or older than
    /// `max_age` seconds, keeping every record from `keep_from` on (what a
    /// restart needs). Rewrites the file atomically when anything is dropped.
    pub fn trim(&mut self, keep_from: u32, max_age: u64, now: u64) -> Result<usize, String> {
        let needed = self
            .index
            .iter()
            .position(|i| i.from == keep_from)
            .unwrap_or(self.index.len());
        let mut drop_n = 0usize;
        let mut size = self.size;
        while drop_n < needed {
            let i = self.index[drop_n];
            let too_big = size > self.max_bytes;
            let too_old = max_age > 0 && now.saturating_sub(i.time) > max_age;
            if !too_big && !too_old {
                break;
            }
            size -= HEADER as u64 + i.len as u64;
            drop_n += 1;
        }
        if drop_n == 0 {
            return Ok(0);
        }
        let keep_off = self.index[drop_n].offset;
        let tmp = self.path.with_extension("tmp");
        {
            let mut src =
                File::open(&self.path).map_err(|e| io_err(&self.path, "cannot read", e))?;
            src.seek(SeekFrom::Start(keep_off))
                .map_err(|e| io_err(&self.path, "cannot read", e))?;
            let mut dst = File::create(&tmp).map_err(|e| io_err(&tmp, "cannot create", e))?;
            let r = std::io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
            if let Err(e) = r {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_err(&tmp, "cannot write", e));
            }
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&self.path, "cannot replace", e)
        })?;
        if let Some(d) = self.path.parent() {
            if let Ok(d) = File::open(d) {
                let _ = d.sync_all();
            }
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, "cannot reopen", e))?;
        self.index.drain(..drop_n);
        for i in &mut self.index {
            i.offset -= keep_off;
        }
        self.size -= keep_off;
        Ok(drop_n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::diff::Rr;

    fn entry(from: u32, n: usize) -> Entry {
        Entry {
            id: from as u64,
            time: 1000 + from as u64,
            actor: "t".into(),
            from,
            to: from + 1,
            change: Change::Resign,
            diff: Diff {
                old_soa: None,
                removed: vec![],
                new_soa: None,
                added: (0..n)
                    .map(|i| Rr {
                        owner: b"\x01a\x02be\x00".to_vec(),
                        rtype: 1,
                        ttl: 60,
                        rdata: vec![i as u8; 4],
                    })
                    .collect(),
            },
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("belfry-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn append_reopen_and_read_back() {
        let d = dir("rw");
        let p = d.join("journal");
        let (mut j, o) = Journal::open(&p, 1 << 30).unwrap();
        assert_eq!(o, Opened::default());
        for s in 10..20 {
            j.append(&entry(s, 3)).unwrap();
        }
        drop(j);
        let (j, o) = Journal::open(&p, 1 << 30).unwrap();
        assert_eq!(o.records, 10);
        assert_eq!(j.first_serial(), Some(10));
        assert_eq!(j.last_serial(), Some(20));
        let es = j.entries_from(15).unwrap().unwrap();
        assert_eq!(es.len(), 5);
        assert_eq!(es[0], entry(15, 3));
        assert!(j.entries_from(9).unwrap().is_none());
        assert_eq!(j.entries_from(20).unwrap().map(|v| v.len()), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let d = dir("torn");
        let p = d.join("journal");
        let (mut j, _) = Journal::open(&p, 1 << 30).unwrap();
        for s in 1..6 {
            j.append(&entry(s, 10)).unwrap();
        }
        let full = std::fs::metadata(&p).unwrap().len();
        drop(j);
        // Every cut point inside the last record: it is dropped, the rest is kept.
        let bytes = std::fs::read(&p).unwrap();
        let (jj, _) = Journal::open(&p, 1 << 30).unwrap();
        let last_start = jj.index[4].offset as usize;
        drop(jj);
        for cut in [last_start + 1, last_start + 11, full as usize - 1] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let (j, o) = Journal::open(&p, 1 << 30).unwrap();
            assert_eq!(o.records, 4, "cut at {cut}");
            assert_eq!(o.cut_bytes, (cut - last_start) as u64);
            assert_eq!(j.last_serial(), Some(5));
        }
        // A flipped byte in a middle record cuts from there.
        let mut b = bytes.clone();
        let mid = last_start - 5;
        b[mid] ^= 0xFF;
        std::fs::write(&p, &b).unwrap();
        let (j, _) = Journal::open(&p, 1 << 30).unwrap();
        assert_eq!(j.len(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn trim_keeps_what_a_restart_needs() {
        let d = dir("trim");
        let p = d.join("journal");
        let (mut j, _) = Journal::open(&p, 4000).unwrap();
        for s in 1..40 {
            j.append(&entry(s, 20)).unwrap();
        }
        let dropped = j.trim(30, 0, 0).unwrap();
        assert!(dropped > 0);
        assert!(j.size() <= 4000 || j.first_serial() == Some(30));
        assert_eq!(j.last_serial(), Some(40));
        assert!(j.entries_from(30).unwrap().is_some());
        // Budget met or the restart floor reached; the file reads back the same.
        let spans = j.spans();
        drop(j);
        let (j, _) = Journal::open(&p, 4000).unwrap();
        assert_eq!(j.spans(), spans);
        // Age: everything before the floor older than 5 s at t=2000 goes.
        let (mut j, _) = Journal::open(&p, 1 << 30).unwrap();
        j.trim(35, 5, 2000).unwrap();
        assert_eq!(j.first_serial(), Some(35));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
