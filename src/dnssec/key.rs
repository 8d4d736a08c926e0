//! Signing keys held in `ring`: algorithms, DNSKEY form, key tags, DS digests, key files.
//!
//! Supports ECDSA P-256/SHA-256 (algorithm 13, RFC 6605), Ed25519 (15,
//! RFC 8080) and RSA/SHA-256 (8, RFC 5702). Private keys live on disk as
//! PKCS#8 (PEM), which is what `ring` loads; BIND/ldns `K*.private` files are
//! converted to PKCS#8 on import. The DNSKEY RDATA (RFC 4034 §2.1) and the key
//! tag (RFC 4034 App. B) are computed once when a key is loaded.
//!
//! Errors name the file and the problem. Nothing here touches the query path.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A DNSSEC signing algorithm (IANA DNS Security Algorithm Numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA/SHA-256 (8).
    RsaSha256,
    /// ECDSA P-256 with SHA-256 (13).
    EcdsaP256Sha256,
    /// Ed25519 (15).
    Ed25519,
}

impl Algorithm {
    /// The algorithm number.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::RsaSha256 => 8,
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// From an algorithm number.
    pub fn from_number(n: u8) -> Option<Algorithm> {
        match n {
            8 => Some(Algorithm::RsaSha256),
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// From a name like `ecdsap256sha256`, `ed25519`, `rsasha256`, or a number.
    pub fn from_name(s: &str) -> Option<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsap256sha256" | "ecdsa" | "13" => Some(Algorithm::EcdsaP256Sha256),
            "ed25519" | "15" => Some(Algorithm::Ed25519),
            "rsasha256" | "rsa" | "8" => Some(Algorithm::RsaSha256),
            _ => None,
        }
    }

    /// The mnemonic.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "RSASHA256",
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }
}

/// The role of a key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// Key-signing key: signs the DNSKEY RRset (flags 257).
    Ksk,
    /// Zone-signing key: signs the other RRsets (flags 256).
    Zsk,
    /// Combined signing key: both (flags 257).
    Csk,
}

impl KeyRole {
    /// DNSKEY flags for the role.
    pub fn flags(self) -> u16 {
        match self {
            KeyRole::Zsk => 256,
            _ => 257,
        }
    }

    /// From `ksk`/`zsk`/`csk`.
    pub fn from_name(s: &str) -> Option<KeyRole> {
        match s.to_ascii_lowercase().as_str() {
            "ksk" => Some(KeyRole::Ksk),
            "zsk" => Some(KeyRole::Zsk),
            "csk" => Some(KeyRole::Csk),
            _ => None,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Ksk => "ksk",
            KeyRole::Zsk => "zsk",
            KeyRole::Csk => "csk",
        }
    }
}

/// A key error, naming the file when there is one.
#[derive(Debug, Clone)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

struct Inner {
    alg: Algorithm,
    role: KeyRole,
    pair: Pair,
    dnskey: Vec<u8>,
    tag: u16,
    rng: SystemRandom,
}

/// A private key ready to sign, with its DNSKEY RDATA and key tag.
#[derive(Clone)]
pub struct SigningKey(Arc<Inner>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({} {} tag {})",
            self.0.role.name(),
            self.0.alg.name(),
            self.0.tag
        )
    }
}

/// RFC 4034 Appendix B key tag of DNSKEY RDATA.
pub fn key_tag(dnskey: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, &b) in dnskey.iter().enumerate() {
        ac += if i & 1 == 1 {
            b as u32
        } else {
            (b as u32) << 8
        };
    }
    ac += (ac >> 16) & 0xFFFF;
    (ac & 0xFFFF) as u16
}

/// Read a DER length at `p`; returns (length, bytes used).
fn der_len(d: &[u8], p: usize) -> Option<(usize, usize)> {
    let b = *d.get(p)? as usize;
    if b < 0x80 {
        return Some((b, 1));
    }
    let n = b & 0x7F;
    if n == 0 || n > 3 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *d.get(p + 1 + i)? as usize;
    }
    Some((len, 1 + n))
}

/// (n, e) from a DER RSAPublicKey.
fn rsa_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if *der.first()? != 0x30 {
        return None;
    }
    let (_, l) = der_len(der, 1)?;
    let mut p = 1 + l;
    let mut ints = Vec::new();
    for _ in 0..2 {
        if *der.get(p)? != 0x02 {
            return None;
        }
        let (len, l) = der_len(der, p + 1)?;
        let mut v = der.get(p + 1 + l..p + 1 + l + len)?;
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        ints.push(v.to_vec());
        p += 1 + l + len;
    }
    let e = ints.pop()?;
    let n = ints.pop()?;
    Some((n, e))
}

/// DNSKEY public key field for RSA (RFC 3110 §2).
fn rsa_dnskey_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(n.len() + e.len() + 3);
    if e.len() < 256 {
        v.push(e.len() as u8);
    } else {
        v.push(0);
        v.extend_from_slice(&(e.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(e);
    v.extend_from_slice(n);
    v
}

impl SigningKey {
    /// Load a key from PKCS#8 DER for an algorithm and role.
    pub fn from_pkcs8(alg: Algorithm, role: KeyRole, der: &[u8]) -> Result<SigningKey, KeyError> {
        let rng = SystemRandom::new();
        let bad = |e: ring::error::KeyRejected| {
            KeyError(format!("not a valid {} PKCS#8 key: {e}", alg.name()))
        };
        let (pair, public) = match alg {
            Algorithm::EcdsaP256Sha256 => {
                let kp = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &rng,
                )
                .map_err(bad)?;
                let pk = kp.public_key().as_ref()[1..].to_vec();
                (Pair::Ecdsa(kp), pk)
            }
            Algorithm::Ed25519 => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(bad)?;
                let pk = kp.public_key().as_ref().to_vec();
                (Pair::Ed(kp), pk)
            }
            Algorithm::RsaSha256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(bad)?;
                let (n, e) = rsa_components(kp.public().as_ref())
                    .ok_or_else(|| KeyError("cannot read the RSA public key".into()))?;
                (Pair::Rsa(kp), rsa_dnskey_key(&n, &e))
            }
        };
        let mut dnskey = Vec::with_capacity(4 + public.len());
        dnskey.extend_from_slice(&role.flags().to_be_bytes());
        dnskey.push(3);
        dnskey.push(alg.number());
        dnskey.extend_from_slice(&public);
        let tag = key_tag(&dnskey);
        Ok(SigningKey(Arc::new(Inner {
            alg,
            role,
            pair,
            dnskey,
            tag,
            rng,
        })))
    }

    /// Load a PKCS#8 key whose algorithm is found by trying each (PEM or DER file).
    pub fn from_pkcs8_any(role: KeyRole, der: &[u8]) -> Result<SigningKey, KeyError> {
        for alg in [
            Algorithm::EcdsaP256Sha256,
            Algorithm::Ed25519,
            Algorithm::RsaSha256,
        ] {
            if let Ok(k) = Self::from_pkcs8(alg, role, der) {
                return Ok(k);
            }
        }
        Err(KeyError(
            "not a PKCS#8 ECDSA P-256, Ed25519 or RSA private key".into(),
        ))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.0.alg
    }

    /// The role.
    pub fn role(&self) -> KeyRole {
        self.0.role
    }

    /// DNSKEY flags (256 or 257).
    pub fn flags(&self) -> u16 {
        self.0.role.flags()
    }

    /// DNSKEY RDATA.
    pub fn dnskey_rdata(&self) -> &[u8] {
        &self.0.dnskey
    }

    /// Key tag.
    pub fn key_tag(&self) -> u16 {
        self.0.tag
    }

    /// Sign `data`; the signature in DNSSEC wire form (ECDSA: r||s, 64 bytes).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let fail = |_| KeyError("signing failed".into());
        match &self.0.pair {
            Pair::Ecdsa(kp) => Ok(kp.sign(&self.0.rng, data).map_err(fail)?.as_ref().to_vec()),
            Pair::Ed(kp) => Ok(kp.sign(data).as_ref().to_vec()),
            Pair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &self.0.rng, data, &mut sig)
                    .map_err(fail)?;
                Ok(sig)
            }
        }
    }

    /// Verify a signature against this key's public key.
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> bool {
        verify_with_dnskey(&self.0.dnskey, data, sig)
    }
}

/// Verify `sig` over `data` with the public key in DNSKEY RDATA.
pub fn verify_with_dnskey(dnskey: &[u8], data: &[u8], sig: &[u8]) -> bool {
    if dnskey.len() < 5 {
        return false;
    }
    let key = &dnskey[4..];
    match Algorithm::from_number(dnskey[3]) {
        Some(Algorithm::EcdsaP256Sha256) => {
            if key.len() != 64 {
                return false;
            }
            let mut pk = [0u8; 65];
            pk[0] = 4;
            pk[1..].copy_from_slice(key);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &pk[..])
                .verify(data, sig)
                .is_ok()
        }
        Some(Algorithm::Ed25519) => signature::UnparsedPublicKey::new(&signature::ED25519, key)
            .verify(data, sig)
            .is_ok(),
        Some(Algorithm::RsaSha256) => {
            let (elen, off) = match key.first() {
                Some(0) if key.len() > 3 => (u16::from_be_bytes([key[1], key[2]]) as usize, 3),
                Some(&l) => (l as usize, 1),
                None => return false,
            };
            if key.len() < off + elen {
                return false;
            }
            let c = signature::RsaPublicKeyComponents {
                n: &key[off + elen..],
                e: &key[off..off + elen],
            };
            c.verify(&signature::RSA_PKCS1_2048_8192_SHA256, data, sig)
                .is_ok()
        }
        None => false,
    }
}

/// DS RDATA (RFC 4034 §5.1.4) for digest type 2 (SHA-256) or 4 (SHA-384).
pub fn ds_rdata(
    owner_lowercase: &[u8],
    dnskey: &[u8],
    digest_type: u8,
) -> Result<Vec<u8>, KeyError> {
    let alg = match digest_type {
        2 => &ring::digest::SHA256,
        4 => &ring::digest::SHA384,
        _ => {
            return Err(KeyError(format!(
                "DS digest type {digest_type} is not supported (use 2 or 4)"
            )))
        }
    };
    let mut ctx = ring::digest::Context::new(alg);
    ctx.update(owner_lowercase);
    ctx.update(dnskey);
    let d = ctx.finish();
    let mut v = Vec::with_capacity(4 + d.as_ref().len());
    v.extend_from_slice(&key_tag(dnskey).to_be_bytes());
    v.push(dnskey.get(3).copied().unwrap_or(0));
    v.push(digest_type);
    v.extend_from_slice(d.as_ref());
    Ok(v)
}

/// Generate a new private key as PKCS#8 DER.
pub fn generate(alg: Algorithm) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::EcdsaP256Sha256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError("key generation failed".into()))
        }
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError("key generation failed".into())),
        Algorithm::RsaSha256 => {
            // ring cannot make RSA keys; openssl writes a 2048-bit PKCS#8 key.
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-outform",
                    "DER",
                ])
                .output()
                .map_err(|e| {
                    KeyError(format!(
                        "RSA keys are generated with the openssl command, which failed to run: {e}"
                    ))
                })?;
            if !out.status.success() {
                return Err(KeyError(format!(
                    "openssl genpkey failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            Ok(wrap_pkcs1(out.stdout))
        }
    }
}

/// PEM-encode PKCS#8 DER.
pub fn to_pem(der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END PRIVATE KEY-----\n");
    s
}

/// Read PKCS#8 from a PEM or DER file.
pub fn read_pkcs8(path: &Path) -> Result<Vec<u8>, KeyError> {
    let raw = std::fs::read(path)
        .map_err(|e| KeyError(format!("{}: cannot read: {e}", path.display())))?;
    if let Ok(text) = std::str::from_utf8(&raw) {
        if let Some(start) = text.find("-----BEGIN PRIVATE KEY-----") {
            let body = &text[start + 27..];
            let end = body
                .find("-----END PRIVATE KEY-----")
                .ok_or_else(|| KeyError(format!("{}: PEM without an END line", path.display())))?;
            let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
            return base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| KeyError(format!("{}: bad base64 in the PEM", path.display())));
        }
        if text.contains("-----BEGIN") {
            return Err(KeyError(format!(
                "{}: not a PKCS#8 \"PRIVATE KEY\" PEM",
                path.display()
            )));
        }
    }
    Ok(raw)
}

/// The files of one key in a key directory.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// `K<zone>+<alg>+<tag>` base name.
    pub base: String,
    /// Private key (PKCS#8 PEM).
    pub private: PathBuf,
    /// Public DNSKEY in zone-file text.
    pub public: PathBuf,
    /// Metadata (role, algorithm, key tag, created).
    pub meta: PathBuf,
}

/// Base name of a key's files, BIND style.
pub fn base_name(zone_text: &str, k: &SigningKey) -> String {
    let z = if zone_text.ends_with('.') {
        zone_text.to_string()
    } else {
        format!("{zone_text}.")
    };
    format!(
        "K{}+{:03}+{:05}",
        z.to_ascii_lowercase(),
        k.algorithm().number(),
        k.key_tag()
    )
}

/// Write a key's files (private key with mode 0600).
pub fn write_key_set(
    dir: &Path,
    zone_text: &str,
    k: &SigningKey,
    pkcs8: &[u8],
    created: u64,
) -> Result<KeyFiles, KeyError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| KeyError(format!("{}: cannot create: {e}", dir.display())))?;
    let base = base_name(zone_text, k);
    let private = dir.join(format!("{base}.pkcs8.pem"));
    let public = dir.join(format!("{base}.key"));
    let meta = dir.join(format!("{base}.meta.toml"));
    let w = |p: &Path, text: &str, mode: u32| -> Result<(), KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(p)
            .map_err(|e| KeyError(format!("{}: cannot write: {e}", p.display())))?;
        f.write_all(text.as_bytes())
            .map_err(|e| KeyError(format!("{}: cannot write: {e}", p.display())))
    };
    w(&private, &to_pem(pkcs8), 0o600)?;
    let z = if zone_text.ends_with('.') {
        zone_text.to_string()
    } else {
        format!("{zone_text}.")
    };
    let d = k.dnskey_rdata();
    w(
        &public,
        &format!(
            "; {} {} key, tag {}\n{} IN DNSKEY {} {} {} {}\n",
            k.role().name(),
            k.algorithm().name(),
            k.key_tag(),
            z,
            k.flags(),
            d[2],
            d[3],
            base64::engine::general_purpose::STANDARD.encode(&d[4..])
        ),
        0o644,
    )?;
    w(
        &meta,
        &format!(
            "zone = \"{z}\"\nrole = \"{}\"\nalgorithm = \"{}\"\nkey_tag = {}\ncreated = \"{}\"\n",
            k.role().name(),
            k.algorithm().name().to_ascii_lowercase(),
            k.key_tag(),
            crate::suppress::list::format_time(created)
        ),
        0o644,
    )?;
    Ok(KeyFiles {
        base,
        private,
        public,
        meta,
    })
}

/// Metadata file contents.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMeta {
    /// Zone.
    pub zone: String,
    /// ksk, zsk or csk.
    pub role: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Key tag.
    pub key_tag: u16,
    /// Creation time.
    pub created: String,
}

/// Load a key from `<dir>/<base>.pkcs8.pem` and `<base>.meta.toml`, checking zone, algorithm and tag.
pub fn load_key(dir: &Path, base: &str, zone_text: &str) -> Result<SigningKey, KeyError> {
    let meta_p = dir.join(format!("{base}.meta.toml"));
    let text = std::fs::read_to_string(&meta_p)
        .map_err(|e| KeyError(format!("{}: cannot read: {e}", meta_p.display())))?;
    let meta: KeyMeta = toml::from_str(&text)
        .map_err(|e| KeyError(format!("{}: {}", meta_p.display(), e.message())))?;
    let want = zone_text.trim_end_matches('.').to_ascii_lowercase();
    if meta.zone.trim_end_matches('.').to_ascii_lowercase() != want {
        return Err(KeyError(format!(
            "{}: key is for zone {}, not {want}.",
            meta_p.display(),
            meta.zone
        )));
    }
    let role = KeyRole::from_name(&meta.role).ok_or_else(|| {
        KeyError(format!(
            "{}: role '{}' is not ksk, zsk or csk",
            meta_p.display(),
            meta.role
        ))
    })?;
    let alg = Algorithm::from_name(&meta.algorithm).ok_or_else(|| {
        KeyError(format!(
            "{}: unsupported algorithm '{}'",
            meta_p.display(),
            meta.algorithm
        ))
    })?;
    let priv_p = dir.join(format!("{base}.pkcs8.pem"));
    let der = read_pkcs8(&priv_p)?;
    let k = SigningKey::from_pkcs8(alg, role, &der)
        .map_err(|e| KeyError(format!("{}: {e}", priv_p.display())))?;
    if k.key_tag() != meta.key_tag {
        return Err(KeyError(format!(
            "{}: key tag {} does not match the private key (tag {})",
            meta_p.display(),
            meta.key_tag,
            k.key_tag()
        )));
    }
    Ok(k)
}

/// Minimal DER writer pieces for the PKCS#8 made on BIND import.
fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = body.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(body);
    v
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes;
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    let mut body = Vec::with_capacity(b.len() + 1);
    if b.first().is_some_and(|&x| x & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(b);
    der(0x02, &body)
}

/// PKCS#8 for a P-256 private scalar and its public point (RFC 5915 inside RFC 5208).
fn pkcs8_p256(private: &[u8], public_xy: &[u8]) -> Vec<u8> {
    let mut ec = der_uint(&[1]);
    ec.extend_from_slice(&der(0x04, private));
    let mut pubbits = vec![0u8, 4];
    pubbits.extend_from_slice(public_xy);
    ec.extend_from_slice(&der(0xA1, &der(0x03, &pubbits)));
    let ecpk = der(0x30, &ec);
    let alg = der(
        0x30,
        &[
            &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01][..],
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07][..],
        ]
        .concat(),
    );
    let mut body = der_uint(&[0]);
    body.extend_from_slice(&alg);
    body.extend_from_slice(&der(0x04, &ecpk));
    der(0x30, &body)
}

/// PKCS#8 v1 for an Ed25519 seed (RFC 8410).
fn pkcs8_ed25519(seed: &[u8]) -> Vec<u8> {
    let mut body = der_uint(&[0]);
    body.extend_from_slice(&der(0x30, &[0x06, 0x03, 0x2b, 0x65, 0x70]));
    body.extend_from_slice(&der(0x04, &der(0x04, seed)));
    der(0x30, &body)
}

/// Wrap PKCS#1 RSAPrivateKey DER in PKCS#8; PKCS#8 input is returned as it is.
fn wrap_pkcs1(der_in: Vec<u8>) -> Vec<u8> {
    // PKCS#1: SEQUENCE { INTEGER 0, INTEGER n, ... }; PKCS#8 has a SEQUENCE second.
    let second_is_integer = der_len(&der_in, 1)
        .map(|(_, l)| 1 + l + 3)
        .and_then(|p| der_in.get(p).copied())
        == Some(0x02);
    if !second_is_integer {
        return der_in;
    }
    let mut body = der_uint(&[0]);
    body.extend_from_slice(&der(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    ));
    body.extend_from_slice(&der(0x04, &der_in));
    der(0x30, &body)
}

/// PKCS#8 for RSA components (PKCS#1 RSAPrivateKey inside).
fn pkcs8_rsa(parts: &[&[u8]; 8]) -> Vec<u8> {
    let mut rsa = der_uint(&[0]);
    for p in parts {
        rsa.extend_from_slice(&der_uint(p));
    }
    let pkcs1 = der(0x30, &rsa);
    let mut body = der_uint(&[0]);
    body.extend_from_slice(&der(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    ));
    body.extend_from_slice(&der(0x04, &pkcs1));
    der(0x30, &body)
}

/// Import a BIND/ldns key pair: returns the key (role from the DNSKEY flags), its zone and PKCS#8 DER.
pub fn import_bind(key_path: &Path) -> Result<(SigningKey, String, Vec<u8>), KeyError> {
    let key_text = std::fs::read_to_string(key_path)
        .map_err(|e| KeyError(format!("{}: cannot read: {e}", key_path.display())))?;
    let private_path = key_path.with_extension("private");
    let priv_text = std::fs::read_to_string(&private_path)
        .map_err(|e| KeyError(format!("{}: cannot read: {e}", private_path.display())))?;
    // The DNSKEY line: <zone> [ttl] [IN] DNSKEY <flags> 3 <alg> <base64...>
    let line = key_text
        .lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
        .find(|l| {
            l.split_whitespace()
                .any(|t| t.eq_ignore_ascii_case("DNSKEY"))
        })
        .ok_or_else(|| KeyError(format!("{}: no DNSKEY record", key_path.display())))?;
    let toks: Vec<&str> = line.split_whitespace().collect();
    let pos = toks
        .iter()
        .position(|t| t.eq_ignore_ascii_case("DNSKEY"))
        .unwrap_or(0);
    if toks.len() < pos + 5 {
        return Err(KeyError(format!(
            "{}: incomplete DNSKEY record",
            key_path.display()
        )));
    }
    let zone = toks[0].to_string();
    let flags: u16 = toks[pos + 1]
        .parse()
        .map_err(|_| KeyError(format!("{}: bad DNSKEY flags", key_path.display())))?;
    let algn: u8 = toks[pos + 3]
        .parse()
        .map_err(|_| KeyError(format!("{}: bad algorithm", key_path.display())))?;
    let alg = Algorithm::from_number(algn).ok_or_else(|| {
        KeyError(format!(
            "{}: algorithm {algn} is not supported (8, 13 and 15 are)",
            key_path.display()
        ))
    })?;
    let public = base64::engine::general_purpose::STANDARD
        .decode(toks[pos + 4..].concat())
        .map_err(|_| KeyError(format!("{}: bad base64 public key", key_path.display())))?;
    let field = |name: &str| -> Result<Vec<u8>, KeyError> {
        let v = priv_text
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .ok_or_else(|| KeyError(format!("{}: no {name} field", private_path.display())))?;
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| KeyError(format!("{}: bad base64 in {name}", private_path.display())))
    };
    let der = match alg {
        Algorithm::EcdsaP256Sha256 => pkcs8_p256(&field("PrivateKey")?, &public),
        Algorithm::Ed25519 => pkcs8_ed25519(&field("PrivateKey")?),
        Algorithm::RsaSha256 => {
            let names = [
                "Modulus",
                "PublicExponent",
                "PrivateExponent",
                "Prime1",
                "Prime2",
                "Exponent1",
                "Exponent2",
                "Coefficient",
            ];
            let vals: Vec<Vec<u8>> = names.iter().map(|n| field(n)).collect::<Result<_, _>>()?;
            pkcs8_rsa(&[
                &vals[0], &vals[1], &vals[2], &vals[3], &vals[4], &vals[5], &vals[6], &vals[7],
            ])
        }
    };
    let role = if flags & 1 == 1 {
        KeyRole::Ksk
    } else {
        KeyRole::Zsk
    };
    let k = SigningKey::from_pkcs8(alg, role, &der)
        .map_err(|e| KeyError(format!("{}: {e}", private_path.display())))?;
    if k.dnskey_rdata()[4..] != public[..] {
        return Err(KeyError(format!(
            "{}: the private key does not match the public key in {}",
            private_path.display(),
            key_path.display()
        )));
    }
    Ok((k, zone, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_sign_verify_each_algorithm() {
        for alg in [
            Algorithm::EcdsaP256Sha256,
            Algorithm::Ed25519,
            Algorithm::RsaSha256,
        ] {
            let der = match generate(alg) {
                Ok(d) => d,
                Err(e) if alg == Algorithm::RsaSha256 => panic!("RSA keygen needs openssl: {e}"),
                Err(e) => panic!("{e}"),
            };
            let k = SigningKey::from_pkcs8(alg, KeyRole::Csk, &der).unwrap();
            let sig = k.sign(b"data").unwrap();
            assert!(k.verify(b"data", &sig));
            assert!(!k.verify(b"datb", &sig));
            assert_eq!(k.dnskey_rdata()[3], alg.number());
            assert_eq!(k.key_tag(), key_tag(k.dnskey_rdata()));
            assert_eq!(
                SigningKey::from_pkcs8_any(KeyRole::Csk, &der)
                    .unwrap()
                    .algorithm(),
                alg
            );
        }
    }

    #[test]
    fn key_files_round_trip_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("belfry-keys-{}", std::process::id()));
        let der = generate(Algorithm::EcdsaP256Sha256).unwrap();
        let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Ksk, &der).unwrap();
        let f = write_key_set(&dir, "be", &k, &der, 0).unwrap();
        let mode = std::fs::metadata(&f.private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load_key(&dir, &f.base, "be.").unwrap();
        assert_eq!(back.dnskey_rdata(), k.dnskey_rdata());
        assert!(load_key(&dir, &f.base, "nl.")
            .unwrap_err()
            .0
            .contains("not nl"));
        assert!(load_key(&dir, "Kmissing", "be.").is_err());
        std::fs::write(
            &f.private,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(load_key(&dir, &f.base, "be.")
            .unwrap_err()
            .0
            .contains("PKCS#8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rfc4034_key_tag_and_rfc6605_ds() {
        // RFC 6605 §6.1: the example KSK and its SHA-256 DS.
        let key = base64::engine::general_purpose::STANDARD
            .decode("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==")
            .unwrap();
        let mut dnskey = vec![0x01, 0x01, 3, 13];
        dnskey.extend_from_slice(&key);
        assert_eq!(key_tag(&dnskey), 55648);
        let ds = ds_rdata(b"\x07example\x03net\x00", &dnskey, 2).unwrap();
        let hex: String = ds[4..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17"
        );
    }
}
