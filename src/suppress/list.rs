//! The suppression list file: entries, their checks, and atomic persistence.
//!
//! The file is TOML, one `[[suppression]]` table per entry, plus the serial
//! the server last published. It is written atomically (temporary file in the
//! same directory, fsync, rename, fsync of the directory), so after a crash it
//! holds either the old or the new list, never a mix. Parse errors name the
//! file and line.

use super::EdeKind;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One suppressed domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The domain, absolute, lowercase (e.g. `phish-example.be.`).
    pub domain: String,
    /// Why (free text).
    pub reason: String,
    /// The registry's case id.
    pub case: String,
    /// Who added it.
    pub added_by: String,
    /// When, RFC 3339 UTC (`2026-11-24T13:00:00Z`).
    pub added_at: String,
    /// When the suppression lifts by itself, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Extended DNS Error kind: `blocked` (15) or `censored` (16).
    #[serde(default = "default_ede")]
    pub ede: EdeKind,
}

impl Entry {
    /// The file form of a suppression.
    pub fn from_suppression(s: &crate::publish::change::Suppression) -> Entry {
        Entry {
            domain: crate::name::to_text(&s.name),
            reason: s.reason.clone(),
            case: s.case.clone(),
            added_by: s.added_by.clone(),
            added_at: format_time(s.added_at),
            expires: s.expires.map(format_time),
            ede: s.ede,
        }
    }

    /// The suppression an entry describes (the entry must have passed [`parse`]).
    pub fn to_suppression(&self) -> Result<crate::publish::change::Suppression, String> {
        let name = crate::name::from_text(&self.domain, &[0])
            .map_err(|e| format!("domain '{}': {e}", self.domain))?;
        Ok(crate::publish::change::Suppression {
            name: crate::name::to_lowercase(&name),
            reason: self.reason.clone(),
            case: self.case.clone(),
            added_by: self.added_by.clone(),
            added_at: parse_time(&self.added_at)
                .ok_or_else(|| format!("bad added_at '{}'", self.added_at))?,
            expires: match &self.expires {
                Some(x) => Some(parse_time(x).ok_or_else(|| format!("bad expires '{x}'"))?),
                None => None,
            },
            ede: self.ede,
        })
    }
}

fn default_ede() -> EdeKind {
    EdeKind::Blocked
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFile {
    /// Last SOA serial published by the server (kept so serials only go up).
    #[serde(default)]
    pub serial: u32,
    /// The entries.
    #[serde(default, rename = "suppression")]
    pub entries: Vec<Entry>,
}

/// Parse list text; errors are `file:line: message`.
pub fn parse(path: &Path, text: &str) -> Result<ListFile, String> {
    let list: ListFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => format!("{}:{l}: {}", path.display(), e.message().trim()),
            None => format!("{}: {}", path.display(), e.message().trim()),
        }
    })?;
    // Point entry-level errors at the entry's line.
    let entry_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[suppression]]"))
        .map(|(i, _)| i + 1)
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (i, e) in list.entries.iter().enumerate() {
        let line = entry_lines.get(i).copied().unwrap_or(0);
        let at = |m: String| format!("{}:{line}: {m}", path.display());
        if let Err(m) = crate::name::from_text(&e.domain, &[0]) {
            return Err(at(format!("domain '{}': {m}", e.domain)));
        }
        if !e.domain.ends_with('.') {
            return Err(at(format!(
                "domain '{}' must be absolute (end with a dot)",
                e.domain
            )));
        }
        if parse_time(&e.added_at).is_none() {
            return Err(at(format!(
                "added_at '{}' is not an RFC 3339 UTC time like 2026-11-24T13:00:00Z",
                e.added_at
            )));
        }
        if let Some(x) = &e.expires {
            if parse_time(x).is_none() {
                return Err(at(format!(
                    "expires '{x}' is not an RFC 3339 UTC time like 2026-12-08T13:00:00Z"
                )));
            }
        }
        if !seen.insert(e.domain.to_ascii_lowercase()) {
            return Err(at(format!("domain '{}' is listed twice", e.domain)));
        }
    }
    Ok(list)
}

/// Read the list file; a missing file is an empty list.
pub fn load(path: &Path) -> Result<ListFile, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse(path, &t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ListFile::default()),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Render the list as the file's text.
pub fn render(list: &ListFile) -> String {
    let mut s = String::from(
        "# belfry suppression list. Managed by `belfry suppress`; hand edits are picked up\n\
         # by the running server (a broken edit is rejected and logged, the old list stays).\n",
    );
    s.push_str(&toml::to_string(list).unwrap_or_default());
    s
}

/// Write the list atomically: temp file, fsync, rename, fsync the directory.
pub fn persist(path: &Path, list: &ListFile) -> Result<String, String> {
    let text = render(list);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("suppressions"),
        std::process::id()
    ));
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", path.display());
    {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| fail("cannot create temporary file", e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| fail("cannot write", e))?;
        f.sync_all().map_err(|e| fail("cannot fsync", e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| fail("cannot rename into place", e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(text)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` into seconds since the epoch.
pub fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let t = days * 86400 + h * 3600 + mi * 60 + se;
    u64::try_from(t).ok()
}

/// Format seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: u64) -> String {
    let days = (t / 86400) as i64;
    let rem = t % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-24T13:00:00Z"), Some(1795525200));
        assert_eq!(format_time(1795525200), "2026-11-24T13:00:00Z");
        for t in [0u64, 951782400, 4102444800, 1795525200 + 86399] {
            assert_eq!(parse_time(&format_time(t)), Some(t));
        }
        assert!(parse_time("2026-13-01T00:00:00Z").is_none());
        assert!(parse_time("2026-11-24 13:00:00").is_none());
    }

    #[test]
    fn parse_errors_name_line() {
        let p = Path::new("s.toml");
        let ok = "serial = 5\n[[suppression]]\ndomain = \"a.be.\"\nreason = \"r\"\ncase = \"C1\"\nadded_by = \"x\"\nadded_at = \"2026-11-24T13:00:00Z\"\n";
        let l = parse(p, ok).unwrap();
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].ede, EdeKind::Blocked);
        let e = parse(p, &ok.replace("case =", "kase =")).unwrap_err();
        assert!(e.starts_with("s.toml:"), "{e}");
        let e = parse(p, &format!("{ok}{}", &ok[11..])).unwrap_err();
        assert!(e.contains("twice") && e.starts_with("s.toml:8:"), "{e}");
        let e = parse(p, &ok.replace("2026-11-24T13:00:00Z", "yesterday")).unwrap_err();
        assert!(e.starts_with("s.toml:2:"), "{e}");
        let e = parse(p, &ok.replace("a.be.", "a..be.")).unwrap_err();
        assert!(e.contains("empty label"), "{e}");
    }

    #[test]
    fn persist_round_trips() {
        let dir = std::env::temp_dir().join(format!("belfry-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.toml");
        let list = ListFile {
            serial: 7,
            entries: vec![Entry {
                domain: "a.be.".into(),
                reason: "phishing \"bank\"".into(),
                case: "C-1".into(),
                added_by: "op".into(),
                added_at: format_time(now_secs()),
                expires: None,
                ede: EdeKind::Censored,
            }],
        };
        persist(&p, &list).unwrap();
        assert_eq!(load(&p).unwrap(), list);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
