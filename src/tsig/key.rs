//! TSIG keys, the key ring, and their TOML representation.

use super::keyfile;
use ring::hmac;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// An HMAC algorithm for TSIG (RFC 8945 §6; HMAC-SHA224 is not offered by `ring`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// hmac-sha1 (legacy, RFC 8945 §6: "MUST" to implement, not recommended).
    HmacSha1,
    /// hmac-sha256, the default.
    HmacSha256,
    /// hmac-sha384.
    HmacSha384,
    /// hmac-sha512.
    HmacSha512,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::HmacSha1,
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// The algorithm's name in presentation form, without the trailing dot.
    pub fn text_name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm's name in wire form (lowercase, as sent in TSIG RDATA).
    pub fn wire_name(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha1 => b"\x09hmac-sha1\x00",
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    /// Length of the full MAC in bytes.
    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::HmacSha1 => 20,
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
        }
    }

    /// The algorithm named by a wire-form name (any letter case).
    pub fn from_wire(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.wire_name().eq_ignore_ascii_case(name))
    }

    /// The algorithm named in text (`hmac-sha256`, any case, trailing dot allowed).
    pub fn from_text(name: &str) -> Option<Algorithm> {
        let name = name.strip_suffix('.').unwrap_or(name);
        Algorithm::ALL
            .into_iter()
            .find(|a| a.text_name().eq_ignore_ascii_case(name))
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Parse an algorithm as written in key files: `hmac-sha256`, or BIND's
/// `hmac-sha256-128` (accept MACs truncated to 128 bits, RFC 8945 §5.2.2.1).
///
/// Returns the algorithm and the shortest MAC accepted, in bytes.
pub fn parse_algorithm(text: &str) -> Result<(Algorithm, usize), String> {
    let t = text.trim();
    if let Some(a) = Algorithm::from_text(t) {
        return Ok((a, a.mac_len()));
    }
    if let Some((base, bits)) = t.rsplit_once('-') {
        if let (Some(a), Ok(bits)) = (Algorithm::from_text(base), bits.parse::<usize>()) {
            let min = (a.mac_len() / 2).max(10) * 8;
            if bits % 8 != 0 || bits < min || bits > a.mac_len() * 8 {
                return Err(format!(
                    "truncation in '{t}' must be a multiple of 8 between {min} and {} bits",
                    a.mac_len() * 8
                ));
            }
            return Ok((a, bits / 8));
        }
    }
    if t.eq_ignore_ascii_case("hmac-md5")
        || t.eq_ignore_ascii_case("hmac-md5.sig-alg.reg.int")
        || t.eq_ignore_ascii_case("hmac-sha224")
    {
        return Err(format!(
            "algorithm '{t}' is not supported (use hmac-sha256 or hmac-sha512)"
        ));
    }
    Err(format!(
        "unknown algorithm '{t}' (expected hmac-sha256, hmac-sha512, hmac-sha384 or hmac-sha1)"
    ))
}

/// A TSIG key: name, algorithm and shared secret.
#[derive(Clone)]
pub struct Key {
    name: Vec<u8>,
    algorithm: Algorithm,
    hmac: hmac::Key,
    min_mac_len: usize,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &crate::name::to_text(&self.name))
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A key from its wire-form name, algorithm and secret bytes.
    pub fn new(name: &[u8], algorithm: Algorithm, secret: &[u8]) -> Key {
        Key {
            name: crate::name::to_lowercase(name),
            algorithm,
            hmac: hmac::Key::new(algorithm.ring(), secret),
            min_mac_len: algorithm.mac_len(),
        }
    }

    /// A key from text: name, algorithm (`hmac-sha256`, `hmac-sha512-256`, …) and base64 secret.
    pub fn from_text(name: &str, algorithm: &str, secret: &str) -> Result<Key, String> {
        let wire = crate::name::from_text(name, &[0]).map_err(|e| format!("key name: {e}"))?;
        let (alg, min) = parse_algorithm(algorithm)?;
        let secret = decode_secret(secret)?;
        Ok(Key::new(&wire, alg, &secret).with_min_mac_len(min))
    }

    /// The same key accepting MACs truncated down to `bytes` (never below RFC 8945's minimum).
    pub fn with_min_mac_len(mut self, bytes: usize) -> Key {
        let floor = (self.algorithm.mac_len() / 2).max(10);
        self.min_mac_len = bytes.clamp(floor, self.algorithm.mac_len());
        self
    }

    /// The key name, lowercase wire form.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Shortest MAC accepted from a peer, in bytes (local truncation policy).
    pub fn min_mac_len(&self) -> usize {
        self.min_mac_len
    }

    pub(super) fn hmac(&self) -> &hmac::Key {
        &self.hmac
    }
}

/// Decode a base64 secret, ignoring white space inside it; an empty secret is an error.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("secret is not valid base64: {e}"))?;
    if bytes.is_empty() {
        return Err("secret is empty".into());
    }
    Ok(bytes)
}

/// An operator-input error: where (file:line, or config field) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {what}")]
pub struct KeyError {
    /// `file:line` or a config field path such as `tsig.key[1].secret`.
    pub at: String,
    /// What is wrong.
    pub what: String,
}

/// The set of TSIG keys the server knows, looked up by name (any letter case).
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Add a key; a second key with the same name is an error.
    pub fn insert(&mut self, key: Key) -> Result<(), String> {
        if self.get(key.name()).is_some() {
            return Err(format!(
                "key '{}' is defined twice",
                crate::name::to_text(key.name())
            ));
        }
        self.keys.push(key);
        Ok(())
    }

    /// The key of this name (wire form, any case).
    pub fn get(&self, name: &[u8]) -> Option<&Key> {
        self.keys
            .iter()
            .find(|k| crate::name::eq_ignore_case(&k.name, name))
    }

    /// The key named in text (`xfr-key` or `xfr-key.`).
    pub fn get_text(&self, name: &str) -> Option<&Key> {
        crate::name::from_text(name, &[0])
            .ok()
            .and_then(|w| self.get(&w))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// All keys, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }
}

/// One key written in the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key name, e.g. `xfr-key` (a domain name).
    pub name: String,
    /// Algorithm, `hmac-sha256` when absent.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Base64 secret, as `tsig-keygen` prints it.
    pub secret: String,
}

/// The `[tsig]` table: keys written inline and BIND key files to read.
///
/// ```toml
/// [tsig]
/// files = ["keys/tsig.key"]          # BIND format, as made by `tsig-keygen`
/// [[tsig.key]]
/// name = "xfr-key"
/// algorithm = "hmac-sha256"          # the default
/// secret = "base64…"
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TsigConfig {
    /// Keys written in the configuration.
    #[serde(default)]
    pub key: Vec<KeyConfig>,
    /// BIND key files (relative paths are taken from the configuration's directory).
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

impl TsigConfig {
    /// Build the key ring, checking every key; errors name the field or file:line.
    pub fn load(&self, base_dir: &Path) -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing::new();
        for (i, k) in self.key.iter().enumerate() {
            let field = |f: &str| format!("tsig.key[{i}].{f}");
            let err = |f: &str, what: String| KeyError { at: field(f), what };
            let wire = crate::name::from_text(&k.name, &[0]).map_err(|e| err("name", e))?;
            let (alg, min) = match &k.algorithm {
                Some(a) => parse_algorithm(a).map_err(|e| err("algorithm", e))?,
                None => (Algorithm::HmacSha256, Algorithm::HmacSha256.mac_len()),
            };
            let secret = decode_secret(&k.secret).map_err(|e| err("secret", e))?;
            ring.insert(Key::new(&wire, alg, &secret).with_min_mac_len(min))
                .map_err(|e| err("name", e))?;
        }
        for (i, f) in self.files.iter().enumerate() {
            let path = if f.is_absolute() {
                f.clone()
            } else {
                base_dir.join(f)
            };
            let text = std::fs::read_to_string(&path).map_err(|e| KeyError {
                at: format!("tsig.files[{i}]"),
                what: format!("cannot read {}: {e}", path.display()),
            })?;
            for (line, key) in keyfile::parse(&text, &path.display().to_string())? {
                ring.insert(key).map_err(|what| KeyError {
                    at: format!("{}:{line}", path.display()),
                    what,
                })?;
            }
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        assert_eq!(
            Algorithm::from_text("HMAC-SHA256."),
            Some(Algorithm::HmacSha256)
        );
        assert_eq!(
            Algorithm::from_wire(b"\x0bHMAC-sha512\x00"),
            Some(Algorithm::HmacSha512)
        );
        assert_eq!(
            Algorithm::from_wire(b"\x08hmac-md5\x07sig-alg\x03reg\x03int\x00"),
            None
        );
        assert_eq!(
            parse_algorithm("hmac-sha256-128"),
            Ok((Algorithm::HmacSha256, 16))
        );
        assert!(parse_algorithm("hmac-sha256-64").is_err());
        assert!(parse_algorithm("hmac-md5")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_algorithm("rot13").unwrap_err().contains("unknown"));
    }

    #[test]
    fn ring_lookup_ignores_case_and_refuses_duplicates() {
        let mut ring = KeyRing::new();
        ring.insert(Key::from_text("Xfr-Key", "hmac-sha256", "c2VjcmV0").unwrap())
            .unwrap();
        assert!(ring.get(b"\x07XFR-KEY\x00").is_some());
        assert!(ring.get_text("xfr-key.").is_some());
        assert!(ring
            .insert(Key::from_text("xfr-key.", "hmac-sha512", "c2VjcmV0").unwrap())
            .is_err());
        assert_eq!(ring.len(), 1);
    }

    #[test]
    fn config_errors_name_the_field() {
        let cfg: TsigConfig = toml::from_str(
            "[[key]]\nname = \"a\"\nsecret = \"c2VjcmV0\"\n[[key]]\nname = \"b\"\nalgorithm = \"hmac-sha999\"\nsecret = \"c2VjcmV0\"\n",
        )
        .unwrap();
        let e = cfg.load(Path::new(".")).unwrap_err();
        assert_eq!(e.at, "tsig.key[1].algorithm");
        let cfg: TsigConfig =
            toml::from_str("[[key]]\nname = \"a\"\nsecret = \"not base64!\"\n").unwrap();
        assert_eq!(
            cfg.load(Path::new(".")).unwrap_err().at,
            "tsig.key[0].secret"
        );
        let cfg: TsigConfig =
            toml::from_str("[[key]]\nname = \"a\"\nsecret = \"c2VjcmV0\"\n").unwrap();
        let ring = cfg.load(Path::new(".")).unwrap();
        assert_eq!(
            ring.get_text("a").unwrap().algorithm(),
            Algorithm::HmacSha256
        );
        assert!(toml::from_str::<TsigConfig>(
            "[[key]]\nname = \"a\"\nsecret = \"x\"\nsecrte = 1\n"
        )
        .is_err());
    }
}
