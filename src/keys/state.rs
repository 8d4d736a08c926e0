//! The key-state file: the lifecycle state of every key of a zone, in one file.
//!
//! `<key_dir>/<zone>keystate.toml` (`be.keystate.toml`, `root.keystate.toml`
//! for the root) holds, per key, its RFC 7583 state, its DS state at the
//! parent and the times it went through them. One file for every key, written
//! atomically (temporary file, fsync, rename, fsync of the directory), so a
//! step that moves several keys at once is on disk whole or not at all.
//!
//! A key directory without this file is read the way belfry always read it:
//! every key of the zone is active (and a KSK's DS assumed at the parent); the
//! key manager writes the file at its first start. A key in the directory but
//! not in the file is `generated` (a spare the next rollover may use).
//!
//! Errors name the file, the key and the field.

use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
use crate::dnssec::lifecycle::{DsState, KeyRecord, KeyState, KeyTimes};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name of a zone's key states in its key directory.
pub fn file_name(zone_text: &str) -> String {
    let z = zone_text.trim_end_matches('.').to_ascii_lowercase();
    if z.is_empty() {
        "root.keystate.toml".into()
    } else {
        format!("{z}.keystate.toml")
    }
}

/// The path of a zone's key-state file.
pub fn path(dir: &Path, zone_text: &str) -> PathBuf {
    dir.join(file_name(zone_text))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    zone: String,
    #[serde(default, rename = "key")]
    keys: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    base: String,
    tag: u16,
    role: KeyRole,
    algorithm: u8,
    state: String,
    #[serde(default = "ds_none")]
    ds: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ready: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    removed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    covered: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unused: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ds_submit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ds_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ds_withdraw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ds_withdrawn: Option<String>,
}

fn ds_none() -> String {
    "none".into()
}

fn fmt(t: Option<u64>) -> Option<String> {
    t.map(crate::suppress::list::format_time)
}

impl Entry {
    fn of(k: &KeyRecord) -> Entry {
        let t = &k.times;
        Entry {
            base: k.base.clone(),
            tag: k.tag,
            role: k.role,
            algorithm: k.algorithm,
            state: k.state.name().into(),
            ds: k.ds.name().into(),
            created: fmt(t.created),
            published: fmt(t.published),
            ready: fmt(t.ready),
            active: fmt(t.active),
            retired: fmt(t.retired),
            removed: fmt(t.removed),
            covered: fmt(t.covered),
            unused: fmt(t.unused),
            ds_submit: fmt(t.ds_submit),
            ds_seen: fmt(t.ds_seen),
            ds_withdraw: fmt(t.ds_withdraw),
            ds_withdrawn: fmt(t.ds_withdrawn),
        }
    }

    fn times(&self, at: &dyn Fn(&str) -> String) -> Result<KeyTimes, String> {
        let p = |field: &str, v: &Option<String>| -> Result<Option<u64>, String> {
            match v {
                None => Ok(None),
                Some(s) => crate::suppress::list::parse_time(s)
                    .map(Some)
                    .ok_or_else(|| at(&format!("{field}: not an RFC 3339 time"))),
            }
        };
        Ok(KeyTimes {
            created: p("created", &self.created)?,
            published: p("published", &self.published)?,
            ready: p("ready", &self.ready)?,
            active: p("active", &self.active)?,
            retired: p("retired", &self.retired)?,
            removed: p("removed", &self.removed)?,
            covered: p("covered", &self.covered)?,
            unused: p("unused", &self.unused)?,
            ds_submit: p("ds_submit", &self.ds_submit)?,
            ds_seen: p("ds_seen", &self.ds_seen)?,
            ds_withdraw: p("ds_withdraw", &self.ds_withdraw)?,
            ds_withdrawn: p("ds_withdrawn", &self.ds_withdrawn)?,
        })
    }
}

/// The keys of one zone in a key directory, with their states.
pub struct Keys {
    /// Every key of the zone, with its state (keys whose files are gone only when removed).
    pub records: Vec<KeyRecord>,
    /// The private keys, by key tag.
    pub signing: Vec<SigningKey>,
    /// Whether the states come from a key-state file (false: every key taken as active).
    pub from_file: bool,
}

impl Keys {
    /// The private key of a record.
    pub fn key(&self, tag: u16, alg: u8) -> Option<&SigningKey> {
        self.signing
            .iter()
            .find(|k| k.key_tag() == tag && k.algorithm().number() == alg)
    }
}

/// Read the key-state file, if there is one: (base name → (record without DNSKEY)).
fn read_file(p: &Path, zone_text: &str) -> Result<Option<Vec<KeyRecord>>, String> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read: {e}", p.display())),
    };
    let f: FileV1 = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => format!("{}:{l}: {}", p.display(), e.message()),
            None => format!("{}: {}", p.display(), e.message()),
        }
    })?;
    let want = zone_text.trim_end_matches('.').to_ascii_lowercase();
    if f.zone.trim_end_matches('.').to_ascii_lowercase() != want {
        return Err(format!(
            "{}: the key states of zone {}, not {want}.",
            p.display(),
            f.zone
        ));
    }
    let mut out = Vec::new();
    for e in f.keys {
        let at = |m: &str| format!("{}: key {}: {m}", p.display(), e.base);
        let state = KeyState::from_name(&e.state).ok_or_else(|| {
            at(&format!(
                "state '{}' is none of generated, pre-active, published, ready, active, \
                 retired, post-active, removed",
                e.state
            ))
        })?;
        let ds = DsState::from_name(&e.ds).ok_or_else(|| {
            at(&format!(
                "ds '{}' is none of none, submit, seen, withdraw, withdrawn",
                e.ds
            ))
        })?;
        let times = e.times(&at)?;
        out.push(KeyRecord {
            base: e.base.clone(),
            tag: e.tag,
            algorithm: e.algorithm,
            role: e.role,
            dnskey: Vec::new(),
            state,
            ds,
            times,
        });
    }
    Ok(Some(out))
}

/// Load every key of a zone from its directory with its state (see the module doc).
///
/// Refused: a key of another zone, two keys with the same key tag, a key the
/// state file uses whose files are missing, a key whose `.key` file does not
/// hold the DNSKEY of its private key.
pub fn load(dir: &Path, zone_text: &str) -> Result<Keys, String> {
    let bases = super::key_bases(dir)?;
    let mut signing = Vec::new();
    let mut bases_of = Vec::new();
    for b in &bases {
        let k = key::load_key(dir, b, zone_text).map_err(|e| e.to_string())?;
        check_public_file(dir, b, &k)?;
        signing.push(k);
        bases_of.push(b.clone());
    }
    duplicates(&signing, dir)?;
    let sp = path(dir, zone_text);
    let file = read_file(&sp, zone_text)?;
    let from_file = file.is_some();
    let mut records = Vec::new();
    let stated = file.unwrap_or_default();
    for r in &stated {
        let found = signing
            .iter()
            .position(|k| k.key_tag() == r.tag && k.algorithm().number() == r.algorithm);
        match found {
            Some(i) => {
                let k = &signing[i];
                if k.role() != r.role {
                    return Err(format!(
                        "{}: key {} is a {} in its .meta.toml but a {} in the state file",
                        sp.display(),
                        r.base,
                        k.role().name(),
                        r.role.name()
                    ));
                }
                let mut r = r.clone();
                r.dnskey = k.dnskey_rdata().to_vec();
                records.push(r);
            }
            None if r.state == KeyState::Removed => records.push(r.clone()),
            None => {
                return Err(format!(
                    "{}: key {} is {} but its files are not in {}",
                    sp.display(),
                    r.base,
                    r.state.name(),
                    dir.display()
                ))
            }
        }
    }
    let legacy_roles = !from_file && !signing.iter().any(|k| k.role() == KeyRole::Zsk);
    for (k, b) in signing.iter().zip(&bases_of) {
        if records
            .iter()
            .any(|r| r.tag == k.key_tag() && r.algorithm == k.algorithm().number())
        {
            continue;
        }
        let created = read_created(dir, b);
        let (state, ds) = if from_file {
            (KeyState::Generated, DsState::None)
        } else if k.role() == KeyRole::Zsk {
            (KeyState::Active, DsState::None)
        } else {
            (KeyState::Active, DsState::Seen)
        };
        records.push(KeyRecord {
            base: b.clone(),
            tag: k.key_tag(),
            algorithm: k.algorithm().number(),
            // Without a ZSK, a KSK signs everything: it is a CSK in all but name.
            role: if legacy_roles { KeyRole::Csk } else { k.role() },
            dnskey: k.dnskey_rdata().to_vec(),
            state,
            ds,
            times: KeyTimes {
                created,
                ..Default::default()
            },
        });
    }
    records.sort_by(|a, b| a.base.cmp(&b.base));
    Ok(Keys {
        records,
        signing,
        from_file,
    })
}

fn read_created(dir: &Path, base: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(format!("{base}.meta.toml"))).ok()?;
    let meta: key::KeyMeta = toml::from_str(&text).ok()?;
    crate::suppress::list::parse_time(&meta.created)
}

/// Refuse two keys of a zone with the same key tag (whatever their algorithms).
pub fn duplicates(keys: &[SigningKey], dir: &Path) -> Result<(), String> {
    let mut tags: Vec<(u16, &SigningKey)> = keys.iter().map(|k| (k.key_tag(), k)).collect();
    tags.sort_by_key(|(t, _)| *t);
    if let Some(w) = tags.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!(
            "{}: two keys share key tag {} ({} {} and {} {}): validators could not tell \
             their signatures apart; remove one (and make its successor with `belfry keygen`, \
             which never repeats a tag)",
            dir.display(),
            w[0].0,
            w[0].1.role().name(),
            w[0].1.algorithm().name(),
            w[1].1.role().name(),
            w[1].1.algorithm().name()
        ));
    }
    Ok(())
}

/// The `.key` file, when present, must hold the DNSKEY of the private key.
fn check_public_file(dir: &Path, base: &str, k: &SigningKey) -> Result<(), String> {
    use base64::Engine;
    let p = dir.join(format!("{base}.key"));
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    for line in text
        .lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
    {
        let t: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = t.iter().position(|x| x.eq_ignore_ascii_case("DNSKEY")) else {
            continue;
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(t.get(pos + 4..).unwrap_or(&[]).concat());
        let flags: Option<u16> = t.get(pos + 1).and_then(|f| f.parse().ok());
        let alg: Option<u8> = t.get(pos + 3).and_then(|f| f.parse().ok());
        let d = k.dnskey_rdata();
        let same =
            key.as_deref().ok() == Some(&d[4..]) && flags == Some(k.flags()) && alg == Some(d[3]);
        if !same {
            return Err(format!(
                "{}: the DNSKEY in this file is not the one of the private key {base}.pkcs8.pem \
                 (tag {}): belfry would publish a key other than the one shown",
                p.display(),
                k.key_tag()
            ));
        }
        return Ok(());
    }
    Ok(())
}

/// Write the key states of a zone atomically.
pub fn save(dir: &Path, zone_text: &str, records: &[KeyRecord]) -> Result<(), String> {
    let z = if zone_text.ends_with('.') {
        zone_text.to_string()
    } else {
        format!("{zone_text}.")
    };
    let f = FileV1 {
        zone: z,
        keys: records.iter().map(Entry::of).collect(),
    };
    let body = toml::to_string(&f).map_err(|e| format!("cannot encode the key states: {e}"))?;
    let text = format!(
        "# Key states of zone {} (RFC 7583), written by belfry: read `belfry key status`.\n\
         # Times are UTC on the DNSSEC clock. Do not edit while belfry runs.\n\n{body}",
        f.zone
    );
    write_atomic(&path(dir, zone_text), text.as_bytes())
}

/// Write a file atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(p: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("keystate");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", p.display());
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| fail("cannot create a temporary file", e))?;
        f.write_all(bytes).map_err(|e| fail("cannot write", e))?;
        f.sync_all().map_err(|e| fail("cannot fsync", e))?;
        std::fs::rename(&tmp, p).map_err(|e| fail("cannot rename into place", e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The algorithm of a record, by name.
pub fn algorithm_name(n: u8) -> String {
    Algorithm::from_number(n)
        .map(|a| a.name().to_string())
        .unwrap_or_else(|| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_errors_name_the_key() {
        let dir = std::env::temp_dir().join(format!("belfry-keystate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut made = Vec::new();
        for role in [KeyRole::Ksk, KeyRole::Zsk] {
            let der = key::generate(Algorithm::EcdsaP256Sha256).unwrap();
            let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, role, &der).unwrap();
            key::write_key_set(&dir, "be.", &k, &der, 1000).unwrap();
            made.push(k);
        }
        // No state file: every key active, the KSK's DS assumed at the parent.
        let keys = load(&dir, "be.").unwrap();
        assert!(!keys.from_file);
        assert!(keys.records.iter().all(|r| r.state == KeyState::Active));
        let ksk = keys
            .records
            .iter()
            .find(|r| r.role == KeyRole::Ksk)
            .unwrap();
        assert_eq!(ksk.ds, DsState::Seen);
        assert_eq!(ksk.times.created, Some(1000));
        let mut recs = keys.records.clone();
        recs[0].state = KeyState::Retired;
        recs[0].times.retired = Some(1_800_000_000);
        save(&dir, "be.", &recs).unwrap();
        let back = load(&dir, "be.").unwrap();
        assert!(back.from_file);
        assert_eq!(back.records, recs);
        // A new key not in the file is a spare.
        let der = key::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Zsk, &der).unwrap();
        key::write_key_set(&dir, "be.", &k, &der, 1000).unwrap();
        let back = load(&dir, "be.").unwrap();
        let r = back.records.iter().find(|r| r.tag == k.key_tag()).unwrap();
        assert_eq!(r.state, KeyState::Generated);
        // Errors name the file and the key.
        let text = std::fs::read_to_string(path(&dir, "be.")).unwrap();
        std::fs::write(
            path(&dir, "be."),
            text.replacen("state = \"retired\"", "state = \"dormant\"", 1),
        )
        .unwrap();
        let e = load(&dir, "be.").err().unwrap();
        assert!(
            e.contains("be.keystate.toml") && e.contains("dormant"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
