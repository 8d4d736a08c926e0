//! Key directory management for the command line: keygen, import, list, DS, active keys.
//!
//! A key directory holds, per key, `K<zone>+<alg>+<tag>.pkcs8.pem` (private,
//! mode 0600), `.key` (the DNSKEY as zone-file text) and `.meta.toml` (role,
//! algorithm, key tag, creation time). The active keys are those named in
//! `[dnssec] keys`, or every key in the directory when that list is empty.

use crate::config::Config;
use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
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

/// `belfry keygen`.
pub fn keygen(zone: &str, algorithm: &str, role: &str, dir: &Path) -> Result<(), String> {
    let alg = Algorithm::from_name(algorithm).ok_or_else(|| {
        format!("--algorithm '{algorithm}': use ecdsap256sha256, ed25519 or rsasha256")
    })?;
    let role =
        KeyRole::from_name(role).ok_or_else(|| format!("--role '{role}': use ksk, zsk or csk"))?;
    crate::name::from_text(zone, &[0]).map_err(|e| format!("--zone: {e}"))?;
    let der = key::generate(alg).map_err(|e| e.to_string())?;
    let k = SigningKey::from_pkcs8(alg, role, &der).map_err(|e| e.to_string())?;
    let files = key::write_key_set(dir, zone, &k, &der, crate::suppress::list::now_secs())
        .map_err(|e| e.to_string())?;
    println!("{}", files.base);
    eprintln!(
        "wrote {} (private, mode 0600), {}, {}",
        files.private.display(),
        files.public.display(),
        files.meta.display()
    );
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

/// `belfry key list`.
pub fn list(dir: &Path) -> Result<(), String> {
    for b in key_bases(dir)? {
        let meta = std::fs::read_to_string(dir.join(format!("{b}.meta.toml"))).unwrap_or_default();
        let one_line: Vec<&str> = meta.lines().map(str::trim).collect();
        println!("{b}\t{}", one_line.join("  "));
    }
    Ok(())
}

/// `belfry ds`: DS records of the KSKs/CSKs for the parent.
pub fn print_ds(cfg: &Config, digests: &[u8]) -> Result<(), String> {
    let keys = load_active(cfg)?;
    let owner = crate::name::to_lowercase(&cfg.origin_wire());
    for k in keys.iter().filter(|k| k.flags() == 257) {
        for &d in digests {
            let ds = key::ds_rdata(&owner, k.dnskey_rdata(), d).map_err(|e| e.to_string())?;
            let hex: String = ds[4..].iter().map(|b| format!("{b:02X}")).collect();
            println!(
                "{} IN DS {} {} {} {}",
                crate::name::to_text(&owner),
                k.key_tag(),
                k.algorithm().number(),
                d,
                hex
            );
        }
    }
    Ok(())
}
