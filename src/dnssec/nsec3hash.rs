//! NSEC3 owner hashing (RFC 5155 §5) and Base32hex (RFC 4648 §7).
//!
//! Hashing a name takes no heap allocation: the iterated SHA-1 runs over a
//! stack buffer. Names must be given lowercase (canonical form).

use ring::digest;

/// H(name) iterated `iterations` extra times with `salt` (RFC 5155 §5).
pub fn nsec3_hash(owner_lowercase: &[u8], salt: &[u8], iterations: u16) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(owner_lowercase);
    ctx.update(salt);
    let mut h = [0u8; 20];
    h.copy_from_slice(ctx.finish().as_ref());
    for _ in 0..iterations {
        let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&h);
        ctx.update(salt);
        h.copy_from_slice(ctx.finish().as_ref());
    }
    h
}

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Lowercase Base32hex of a 20-byte hash, without padding (32 characters).
pub fn base32hex_encode(h: &[u8; 20]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, o) in h.chunks(5).zip(out.chunks_mut(8)) {
        let v = chunk.iter().fold(0u64, |a, &b| (a << 8) | b as u64);
        for (i, c) in o.iter_mut().enumerate() {
            *c = ALPHABET[((v >> (35 - 5 * i)) & 31) as usize];
        }
    }
    out
}

/// Decode 32 Base32hex characters (either case) into a hash.
pub fn base32hex_decode(s: &[u8]) -> Option<[u8; 20]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 20];
    for (chunk, o) in s.chunks(8).zip(out.chunks_mut(5)) {
        let mut v = 0u64;
        for &c in chunk {
            let d = match c.to_ascii_lowercase() {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'v' => c - b'a' + 10,
                _ => return None,
            };
            v = (v << 5) | d as u64;
        }
        for (i, b) in o.iter_mut().enumerate() {
            *b = (v >> (32 - 8 * i)) as u8;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5155_appendix_a_hashes() {
        // RFC 5155 Appendix A: salt aabbccdd, 12 additional iterations.
        let salt = [0xaa, 0xbb, 0xcc, 0xdd];
        let cases: &[(&str, &str)] = &[
            ("example.", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
            ("a.example.", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
            ("ai.example.", "gjeqe526plbf1g8mklp59enfd789njgi"),
            ("ns1.example.", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
            ("ns2.example.", "q04jkcevqvmu85r014c7dkba38o0ji5r"),
            ("w.example.", "k8udemvp1j2f7eg6jebps17vp3n8i58h"),
            ("*.w.example.", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
            ("x.w.example.", "b4um86eghhds6nea196smvmlo4ors995"),
            ("y.w.example.", "ji6neoaepv8b5o6k4ev33abha8ht9fgc"),
            ("x.y.w.example.", "2vptu5timamqttgl4luu9kg21e0aor3s"),
            ("xx.example.", "t644ebqk9bibcna874givr6joj62mlhv"),
        ];
        for (name, want) in cases {
            let w = crate::name::from_text(name, &[0]).unwrap();
            let h = nsec3_hash(&w, &salt, 12);
            assert_eq!(&base32hex_encode(&h), want.as_bytes(), "{name}");
            assert_eq!(
                base32hex_decode(want.to_ascii_uppercase().as_bytes()),
                Some(h)
            );
        }
    }
}
