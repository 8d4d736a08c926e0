//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//!
//! Owns the server secrets and the two operations the query path needs:
//! [`Secrets::check`] reads the COOKIE option of a query (client cookie alone,
//! or with a server cookie that is ours, stale, or forged), and
//! [`Secrets::make`] builds the server cookie of an answer. A server cookie is
//! RFC 9018's: version 1, three reserved bytes, a 32-bit timestamp and
//! SipHash-2-4 of (client cookie, version, reserved, timestamp, client address)
//! under a 128-bit secret. Because every anycast instance computes it the same
//! way from a shared secret, each accepts the others' cookies; the secrets after
//! the first are still accepted (rotation), and a cookie made with one of them
//! is replaced by one made with the first.
//!
//! Validity (RFC 9018 §4.3): a cookie is accepted up to one hour old and up to
//! five minutes in the future; one older than half an hour is renewed.
//! What a server does with each verdict (RFC 7873 §5.2) is the handler's:
//! it never answers BADCOOKIE to a query without a server cookie.
//!
//! Nothing here allocates or locks; SipHash-2-4 is written out here (it is a
//! few lines, on the query path) and checked against the RFC 9018 Appendix A
//! vectors. Secrets are read from a file of hex lines, never logged.

use std::net::IpAddr;

/// Length of a client cookie.
pub const CLIENT_LEN: usize = 8;
/// Length of the server cookies made here (RFC 9018 §4).
pub const SERVER_LEN: usize = 16;
/// A cookie older than this (seconds) is renewed in the answer (RFC 9018 §4.3).
pub const RENEW_AFTER: u32 = 1800;
/// A cookie older than this (seconds) is no longer accepted (RFC 9018 §4.3).
pub const MAX_AGE: u32 = 3600;
/// A cookie this far (seconds) in the future is still accepted (clock skew, RFC 9018 §4.3).
pub const MAX_AHEAD: u32 = 300;
/// Most secrets accepted at once (the first makes cookies).
pub const MAX_SECRETS: usize = 8;

/// A 128-bit server secret (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret from 32 hex digits.
    pub fn from_hex(text: &str) -> Option<Secret> {
        let t = text.trim();
        if t.len() != 32 {
            return None;
        }
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Secret(k))
    }

    /// A random secret from the system's generator.
    pub fn random() -> Result<Secret, String> {
        use ring::rand::SecureRandom;
        let mut k = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| "the system random generator failed".to_string())?;
        Ok(Secret(k))
    }
}

/// What a query's COOKIE option says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A client cookie alone: the client learns our server cookie from the answer.
    ClientOnly,
    /// A server cookie of ours, recent and made with the current secret: echoed as it is.
    Valid,
    /// A server cookie of ours, to be replaced (older than half an hour, or made with
    /// an older secret): the client is verified, the answer carries a new one.
    ValidRenew,
    /// A server cookie that is not ours, malformed, too old or from the future.
    Invalid,
}

impl Verdict {
    /// Whether the sender proved it receives answers at its address (RFC 7873 §5.2.4).
    pub fn verified(self) -> bool {
        matches!(self, Verdict::Valid | Verdict::ValidRenew)
    }
}

/// The secrets in force: the first makes cookies, all are accepted.
#[derive(Clone, Debug)]
pub struct Secrets {
    keys: Vec<Secret>,
    /// Whether the secret was generated at start (not shared with other instances).
    pub random: bool,
}

impl Secrets {
    /// Secrets from a list, the current one first (1 to [`MAX_SECRETS`]).
    pub fn new(keys: Vec<Secret>) -> Result<Secrets, String> {
        if keys.is_empty() || keys.len() > MAX_SECRETS {
            return Err(format!("between 1 and {MAX_SECRETS} secrets are needed"));
        }
        Ok(Secrets {
            keys,
            random: false,
        })
    }

    /// One random secret, for an instance with no configured secret.
    pub fn random() -> Result<Secrets, String> {
        Ok(Secrets {
            keys: vec![Secret::random()?],
            random: true,
        })
    }

    /// Read a secret file: one secret of 32 hex digits per line, the current one
    /// first, then those still accepted; `#` starts a comment. Errors name the
    /// file and line, never the values.
    pub fn from_file(path: &std::path::Path) -> Result<Secrets, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let k = Secret::from_hex(l).ok_or_else(|| {
                format!(
                    "{}:{}: a cookie secret is 32 hex digits (128 bits, RFC 9018)",
                    path.display(),
                    i + 1
                )
            })?;
            keys.push(k);
        }
        Secrets::new(keys).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no secret (never true for a value built by the constructors).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Judge the data of a query's COOKIE option (8, or 16 to 40 bytes: the parser checked).
    pub fn check(&self, cookie: &[u8], client: IpAddr, now: u32) -> Verdict {
        if cookie.len() <= CLIENT_LEN {
            return Verdict::ClientOnly;
        }
        let (cc, sc) = cookie.split_at(CLIENT_LEN);
        if sc.len() != SERVER_LEN || sc[0] != 1 {
            return Verdict::Invalid;
        }
        let stamp = u32::from_be_bytes([sc[4], sc[5], sc[6], sc[7]]);
        // Serial-number arithmetic (RFC 1982): the age may wrap.
        let age = now.wrapping_sub(stamp) as i32;
        if age > MAX_AGE as i32 || age < -(MAX_AHEAD as i32) {
            return Verdict::Invalid;
        }
        for (i, k) in self.keys.iter().enumerate() {
            let h = hash(k, cc, &sc[..8], client);
            if same(&h.to_le_bytes(), &sc[8..16]) {
                return if i == 0 && age <= RENEW_AFTER as i32 {
                    Verdict::Valid
                } else {
                    Verdict::ValidRenew
                };
            }
        }
        Verdict::Invalid
    }

    /// The COOKIE option data of an answer: the client cookie and a new server cookie.
    pub fn make(&self, client_cookie: &[u8], client: IpAddr, now: u32) -> [u8; 24] {
        let mut out = [0u8; 24];
        let n = client_cookie.len().min(CLIENT_LEN);
        out[..n].copy_from_slice(&client_cookie[..n]);
        out[8] = 1;
        out[12..16].copy_from_slice(&now.to_be_bytes());
        let h = hash(&self.keys[0], &out[..8], &out[8..16], client);
        out[16..24].copy_from_slice(&h.to_le_bytes());
        out
    }
}

/// Compare two byte strings without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// SipHash-2-4 of client cookie | version, reserved, timestamp | client address (RFC 9018 §4.4).
fn hash(k: &Secret, client_cookie: &[u8], head: &[u8], client: IpAddr) -> u64 {
    let mut buf = [0u8; 32];
    buf[..8].copy_from_slice(client_cookie);
    buf[8..16].copy_from_slice(head);
    let n = match client.to_canonical() {
        IpAddr::V4(a) => {
            buf[16..20].copy_from_slice(&a.octets());
            20
        }
        IpAddr::V6(a) => {
            buf[16..32].copy_from_slice(&a.octets());
            32
        }
    };
    siphash24(&k.0, &buf[..n])
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012) of `data` under a 128-bit key.
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or([0; 8]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn secrets(keys: &[&str]) -> Secrets {
        Secrets::new(keys.iter().map(|k| Secret::from_hex(k).unwrap()).collect()).unwrap()
    }

    #[test]
    fn siphash_reference_vectors() {
        // The SipHash paper's Appendix A: key 00..0f, messages 00, 00 01, ...
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let data: Vec<u8> = (0..64).collect();
        assert_eq!(siphash24(&key, &data[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &data[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&key, &data[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(&key, &data[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn rfc9018_appendix_a() {
        let s = secrets(&["e5e973e5a6b2a43f48e7dc849e37bfcf"]);
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        // A.1: a new client learns a server cookie.
        let c = s.make(&hex("2464c4abcf10c957"), ip, 1559731985);
        assert_eq!(
            c.to_vec(),
            hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
        );
        assert_eq!(
            s.check(&hex("2464c4abcf10c957"), ip, 1559731985),
            Verdict::ClientOnly
        );
        // A.2: forty minutes later the cookie is still ours, and renewed.
        assert_eq!(s.check(&c, ip, 1559734385), Verdict::ValidRenew);
        assert_eq!(
            s.make(&c[..8], ip, 1559734385).to_vec(),
            hex("2464c4abcf10c957010000005cf7a871d4a564a1442aca77")
        );
        // A.3: reserved bytes the client sent are part of the hash.
        let ip3: IpAddr = "203.0.113.203".parse().unwrap();
        let c3 = hex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
        assert_eq!(s.check(&c3, ip3, 0x5cf7_8f71 + 60), Verdict::Valid);
        assert_eq!(
            s.check(&c3, ip3, 1559734700),
            Verdict::Invalid,
            "1 h 52 min old"
        );
        assert_eq!(
            s.make(&c3[..8], ip3, 1559734700).to_vec(),
            hex("fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e")
        );
        // A.4: an IPv6 client after the secret rolled over.
        let ip6: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        let old = hex("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
        let rolled = secrets(&[
            "445536bcd2513298075a5d379663c962",
            "dd3bdf9344b678b185a6f5cb60fca715",
        ]);
        assert_eq!(rolled.check(&old, ip6, 1559741961), Verdict::ValidRenew);
        assert_eq!(
            rolled.make(&old[..8], ip6, 1559741961).to_vec(),
            hex("22681ab97d52c298010000005cf7c609a6bb79d16625507a")
        );
        let new_only = secrets(&["445536bcd2513298075a5d379663c962"]);
        assert_eq!(new_only.check(&old, ip6, 1559741961), Verdict::Invalid);
    }

    #[test]
    fn forged_stale_future_and_foreign_cookies() {
        let s = secrets(&["000102030405060708090a0b0c0d0e0f"]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = 2_000_000_000u32;
        let c = s.make(&[9; 8], ip, now);
        assert_eq!(s.check(&c, ip, now), Verdict::Valid);
        assert_eq!(s.check(&c, ip, now + 1800), Verdict::Valid);
        assert_eq!(s.check(&c, ip, now + 1801), Verdict::ValidRenew);
        assert_eq!(s.check(&c, ip, now + 3600), Verdict::ValidRenew);
        assert_eq!(s.check(&c, ip, now + 3601), Verdict::Invalid, "stale");
        assert_eq!(s.check(&c, ip, now - 300), Verdict::Valid, "skew");
        assert_eq!(s.check(&c, ip, now - 301), Verdict::Invalid, "future");
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(s.check(&c, other, now), Verdict::Invalid, "another address");
        let mut forged = c;
        forged[23] ^= 1;
        assert_eq!(s.check(&forged, ip, now), Verdict::Invalid);
        let mut v2 = c;
        v2[8] = 2;
        assert_eq!(s.check(&v2, ip, now), Verdict::Invalid, "unknown version");
        assert_eq!(
            s.check(&c[..16], ip, now),
            Verdict::Invalid,
            "8-byte server cookie"
        );
        // Across the 2^32 wrap of the timestamp.
        let c = s.make(&[9; 8], ip, u32::MAX - 10);
        assert_eq!(s.check(&c, ip, 20), Verdict::Valid);
        // A v4-mapped IPv6 address is the IPv4 client.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            s.check(&s.make(&[1; 8], mapped, now), ip, now),
            Verdict::Valid
        );
    }

    #[test]
    fn secret_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cookie.secret");
        std::fs::write(
            &p,
            "# current\n000102030405060708090a0b0c0d0e0f\n\nffeeddccbbaa99887766554433221100 # old\n",
        )
        .unwrap();
        let s = Secrets::from_file(&p).unwrap();
        assert_eq!(s.len(), 2);
        assert!(!s.random);
        std::fs::write(
            &p,
            "000102030405060708090a0b0c0d0e0f\nnot-hex-secret-value\n",
        )
        .unwrap();
        let e = Secrets::from_file(&p).unwrap_err();
        assert!(e.contains(":2:") && !e.contains("not-hex"), "{e}");
        std::fs::write(&p, "# nothing\n").unwrap();
        assert!(Secrets::from_file(&p).is_err());
        assert_eq!(format!("{:?}", s.keys[0]), "Secret(..)");
    }
}
