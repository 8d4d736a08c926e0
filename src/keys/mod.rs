//! Key directory management: keygen, import, list, DS, the key states, the key manager.
//!
//! A key directory holds, per key, `K<zone>+<alg>+<tag>.pkcs8.pem` (private,
//! mode 0600), `.key` (the DNSKEY as zone-file text) and `.meta.toml` (role,
//! algorithm, key tag, creation time), and per zone one key-state file
//! ([`state`]) with every key's lifecycle state. Which DNSKEYs are served and
//! which keys sign what follows from those states; with `[dnssec] keys` set,
//! the keys named there are all active and nothing is rolled (static keys).
//!
//! [`keygen`] never makes a key whose tag equals the tag of any key in the
//! directory (of any zone or algorithm): it makes another. [`manager`] runs the
//! rollovers in the server.

pub mod cli;
pub mod manager;
pub mod state;

use crate::config::Config;
use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
use crate::dnssec::lifecycle::KeySet;
use crate::dnssec::Signer;
use std::collections::BTreeSet;
use std::path::Path;

/// Base names of all keys in a directory (those with a `.meta.toml`), sorted.
pub fn key_bases(dir: &Path) -> Result<Vec<String>, String> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the key directory: {e}", dir.display()))?;
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".meta.toml"))
                .map(String::from)
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Load the active keys named by the configuration; errors name the file.
pub fn load_active(cfg: &Config) -> Result<Vec<SigningKey>, String> {
    let dir = &cfg.dnssec.key_dir;
    let bases = if cfg.dnssec.keys.is_empty() {
        key_bases(dir)?
    } else {
        cfg.dnssec.keys.clone()
    };
    if bases.is_empty() {
        return Err(format!(
            "{}: no keys (make one with `belfry keygen --zone {} --dir {}`)",
            dir.display(),
            cfg.zone.origin,
            dir.display()
        ));
    }
    let mut keys = Vec::new();
    for b in &bases {
        keys.push(key::load_key(dir, b, &cfg.zone.origin).map_err(|e| e.to_string())?);
    }
    if !keys.iter().any(|k| k.flags() == 257) {
        return Err(format!(
            "{}: no KSK or CSK among the active keys {:?}",
            dir.display(),
            bases
        ));
    }
    Ok(keys)
}

/// Load a bare PKCS#8 file (PEM or DER) as a combined signing key.
pub fn load_pkcs8_as_csk(path: &Path) -> Result<SigningKey, String> {
    let der = key::read_pkcs8(path).map_err(|e| e.to_string())?;
    SigningKey::from_pkcs8_any(KeyRole::Csk, &der).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every key tag found in a key directory: in file names `K<zone>+<alg>+<tag>.*`
/// (any zone), in `.meta.toml` files and in key-state files.
pub fn taken_tags(dir: &Path) -> Result<BTreeSet<u16>, String> {
    let mut tags = BTreeSet::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tags),
        Err(e) => {
            return Err(format!(
                "{}: cannot read the key directory: {e}",
                dir.display()
            ))
        }
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(n) = name.to_str() else { continue };
        // K<zone>+<alg>+<tag>.<ext>: the tag is the digits after the last '+'.
        if n.starts_with('K') && n.contains('+') {
            if let Some(tag) = n
                .rsplit('+')
                .next()
                .and_then(|t| t.split('.').next())
                .and_then(|t| t.parse::<u16>().ok())
            {
                tags.insert(tag);
            }
        }
        if n.ends_with(".meta.toml") {
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                if let Ok(m) = toml::from_str::<key::KeyMeta>(&text) {
                    tags.insert(m.key_tag);
                }
            }
        }
        if n.ends_with(".keystate.toml") {
            for (_, tag, _) in state_entries(&e.path()) {
                tags.insert(tag);
            }
        }
    }
    Ok(tags)
}

/// (base, tag, state) of every key in a key-state file (nothing when it cannot be read).
fn state_entries(p: &Path) -> Vec<(String, u16, String)> {
    let Ok(text) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    let Ok(v) = toml::from_str::<toml::Value>(&text) else {
        return Vec::new();
    };
    v.get("key")
        .and_then(|k| k.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|k| {
                    Some((
                        k.get("base")?.as_str()?.to_string(),
                        u16::try_from(k.get("tag")?.as_integer()?).ok()?,
                        k.get("state")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Most keys made in search of an unused tag before giving up.
const KEYGEN_ATTEMPTS: usize = 1_000_000;

/// Make a key whose tag no key of the directory has, and write its files.
pub fn generate_unique(
    dir: &Path,
    zone: &str,
    alg: Algorithm,
    role: KeyRole,
    created: u64,
) -> Result<(SigningKey, key::KeyFiles, usize), String> {
    let taken = taken_tags(dir)?;
    if taken.len() >= 65536 {
        return Err(format!(
            "{}: every one of the 65536 key tags is taken",
            dir.display()
        ));
    }
    for attempt in 1..=KEYGEN_ATTEMPTS {
        let der = key::generate(alg).map_err(|e| e.to_string())?;
        let k = SigningKey::from_pkcs8(alg, role, &der).map_err(|e| e.to_string())?;
        if taken.contains(&k.key_tag()) {
            continue;
        }
        let files = key::write_key_set(dir, zone, &k, &der, created).map_err(|e| e.to_string())?;
        return Ok((k, files, attempt));
    }
    Err(format!(
        "{}: no key with an unused tag after {KEYGEN_ATTEMPTS} attempts",
        dir.display()
    ))
}

/// `belfry keygen`.
pub fn keygen(zone: &str, algorithm: &str, role: &str, dir: &Path) -> Result<(), String> {
    let alg = Algorithm::from_name(algorithm).ok_or_else(|| {
        format!("--algorithm '{algorithm}': use ecdsap256sha256, ed25519 or rsasha256")
    })?;
    let role =
        KeyRole::from_name(role).ok_or_else(|| format!("--role '{role}': use ksk, zsk or csk"))?;
    crate::name::from_text(zone, &[0]).map_err(|e| format!("--zone: {e}"))?;
    let (_, files, attempts) =
        generate_unique(dir, zone, alg, role, crate::suppress::list::now_secs())?;
    println!("{}", files.base);
    eprintln!(
        "wrote {} (private, mode 0600), {}, {}{}",
        files.private.display(),
        files.public.display(),
        files.meta.display(),
        if attempts > 1 {
            format!(
                " ({} keys made: the others had a key tag already in the directory)",
                attempts
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The signer of a key set: its published DNSKEYs, its signing keys loaded from `dir`.
pub fn signer_for(
    origin: &[u8],
    set: &KeySet,
    dir: &Path,
    zone_text: &str,
    policy: crate::dnssec::Policy,
) -> Result<Signer, String> {
    let published: Vec<Vec<u8>> = set
        .records
        .iter()
        .filter(|r| r.published())
        .map(|r| r.dnskey.clone())
        .collect();
    let mut loaded: Vec<(u16, SigningKey)> = Vec::new();
    let mut load = |r: &crate::dnssec::lifecycle::KeyRecord| -> Result<SigningKey, String> {
        if let Some((_, k)) = loaded.iter().find(|(t, _)| *t == r.tag) {
            return Ok(k.clone());
        }
        let k = key::load_key(dir, &r.base, zone_text)
            .map_err(|e| format!("key {} ({}) is needed to sign: {e}", r.base, r.state.name()))?;
        if k.dnskey_rdata() != r.dnskey.as_slice() {
            return Err(format!(
                "{}: the key files of {} do not hold the key of the key set (tag {})",
                dir.display(),
                r.base,
                r.tag
            ));
        }
        loaded.push((r.tag, k.clone()));
        Ok(k)
    };
    let mut ksks = Vec::new();
    let mut zsks = Vec::new();
    for r in &set.records {
        if r.signs_dnskey() {
            ksks.push(load(r)?);
        }
        if r.signs_zone() {
            zsks.push(load(r)?);
        }
    }
    Signer::with_roles(origin, published, ksks, zsks, policy).map_err(|e| e.to_string())
}

/// The signer at start, from the key directory: by the keys' states, or the keys
/// named by `[dnssec] keys` (all active). Refuses what `check` refuses.
pub fn load_signer(cfg: &Config) -> Result<Signer, String> {
    let dir = &cfg.dnssec.key_dir;
    let zone = cfg.zone.origin.as_str();
    if !cfg.dnssec.keys.is_empty() {
        let keys = load_active(cfg)?;
        static_keys_published(cfg, &keys)?;
        return Signer::new(&cfg.origin_wire(), keys, cfg.policy())
            .map_err(|e| format!("{}: {e}", dir.display()));
    }
    let keys = state::load(dir, zone)?;
    if keys.records.is_empty() {
        return Err(format!(
            "{}: no keys (make one with `belfry keygen --zone {} --dir {}`)",
            dir.display(),
            cfg.zone.origin,
            dir.display()
        ));
    }
    let set = KeySet {
        records: keys.records.clone(),
        cds_ttl: cfg.dnssec.cds.then_some(cfg.dnssec.dnskey_ttl),
    };
    let signer = signer_for(&cfg.origin_wire(), &set, dir, zone, cfg.policy())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(signer.with_key_dir(dir, zone).with_keyset(set))
}

/// The signer to read a checkpoint with: the key set its signatures were made
/// with (written beside it) when the journal after it holds key changes (a stop
/// in the middle of a rollover: the journal brings the keys forward) or when it
/// is the key set on disk; otherwise the key set on disk (keys changed while
/// belfry was stopped: the stored signatures are not used).
pub fn signer_at_checkpoint(
    cfg: &Config,
    checkpoint: &Path,
    journal: &crate::publish::journal::Journal,
) -> Result<Signer, String> {
    let disk = load_signer(cfg)?;
    if !cfg.dnssec.keys.is_empty() {
        return Ok(disk);
    }
    let Some(stored) = crate::publish::checkpoint::read_keyset(checkpoint) else {
        return Ok(disk);
    };
    let serial = crate::publish::checkpoint::peek(checkpoint)?.serial;
    let key_changes = journal
        .entries_from(serial)?
        .unwrap_or_default()
        .iter()
        .any(|e| {
            matches!(
                e.change,
                crate::publish::change::Change::Keys(
                    crate::publish::keys::KeyChange::SetKeys { .. }
                )
            )
        });
    let same = disk.keyset().is_some_and(|d| d.same_zone(&stored));
    if same || !key_changes {
        if !same {
            tracing::warn!(
                "the keys on disk are not those of the checkpoint {}: its signatures are made again",
                checkpoint.display()
            );
        }
        return Ok(disk);
    }
    let dir = &cfg.dnssec.key_dir;
    let zone = cfg.zone.origin.as_str();
    let s = signer_for(&cfg.origin_wire(), &stored, dir, zone, cfg.policy())
        .map_err(|e| format!("{}: {e}", checkpoint.display()))?;
    Ok(s.with_key_dir(dir, zone).with_keyset(stored))
}

/// With static keys, a key the key-state file says is in use must be among them.
fn static_keys_published(cfg: &Config, keys: &[SigningKey]) -> Result<(), String> {
    let dir = &cfg.dnssec.key_dir;
    let Ok(all) = state::load(dir, &cfg.zone.origin) else {
        return Ok(());
    };
    if !all.from_file {
        return Ok(());
    }
    for r in all.records.iter().filter(|r| r.published() || r.signs()) {
        if !keys.iter().any(|k| k.key_tag() == r.tag) {
            return Err(format!(
                "{}: key {} is {} in {}, but its DNSKEY would not be published:                  `[dnssec] keys` does not name it",
                dir.display(),
                r.base,
                r.state.name(),
                state::file_name(&cfg.zone.origin)
            ));
        }
    }
    Ok(())
}

/// `belfry key import`.
pub fn import(key_file: &Path, dir: &Path) -> Result<(), String> {
    let (k, zone, der) = key::import_bind(key_file).map_err(|e| e.to_string())?;
    let files = key::write_key_set(dir, &zone, &k, &der, crate::suppress::list::now_secs())
        .map_err(|e| e.to_string())?;
    println!("{}", files.base);
    eprintln!(
        "imported {} {} key tag {} for {zone} into {}",
        k.role().name(),
        k.algorithm().name(),
        k.key_tag(),
        dir.display()
    );
    Ok(())
}

/// `belfry key list`: every key with its role, algorithm and state.
pub fn list(dir: &Path) -> Result<(), String> {
    let states: Vec<(String, u16, String)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the key directory: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".keystate.toml"))
        .flat_map(|e| state_entries(&e.path()))
        .collect();
    for b in key_bases(dir)? {
        let meta = std::fs::read_to_string(dir.join(format!("{b}.meta.toml"))).unwrap_or_default();
        let one_line: Vec<&str> = meta.lines().map(str::trim).collect();
        let st = states
            .iter()
            .find(|(x, _, _)| *x == b)
            .map(|(_, _, s)| format!("  state = \"{s}\""))
            .unwrap_or_default();
        println!("{b}\t{}{st}", one_line.join("  "));
    }
    Ok(())
}

/// `belfry ds`: DS records of the KSKs/CSKs the parent should publish (by their
/// states; with static keys, every KSK/CSK).
pub fn print_ds(cfg: &Config, digests: &[u8]) -> Result<(), String> {
    let owner = crate::name::to_lowercase(&cfg.origin_wire());
    let dnskeys: Vec<Vec<u8>> = if cfg.dnssec.keys.is_empty() {
        let keys = state::load(&cfg.dnssec.key_dir, &cfg.zone.origin)?;
        let set = KeySet {
            records: keys.records,
            cds_ttl: None,
        };
        set.cds_keys().map(|k| k.dnskey.clone()).collect()
    } else {
        load_active(cfg)?
            .iter()
            .filter(|k| k.flags() == 257)
            .map(|k| k.dnskey_rdata().to_vec())
            .collect()
    };
    for dk in dnskeys {
        for line in ds_lines(&owner, &dk, digests)? {
            println!("{line}");
        }
    }
    Ok(())
}

/// DS records of a DNSKEY in zone-file text, one per digest type.
pub fn ds_lines(owner: &[u8], dnskey: &[u8], digests: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for &d in digests {
        let ds = key::ds_rdata(owner, dnskey, d).map_err(|e| e.to_string())?;
        let hex: String = ds[4..].iter().map(|b| format!("{b:02X}")).collect();
        out.push(format!(
            "{} IN DS {} {} {} {}",
            crate::name::to_text(owner),
            key::key_tag(dnskey),
            dnskey.get(3).copied().unwrap_or(0),
            d,
            hex
        ));
    }
    Ok(out)
}
