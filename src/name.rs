//! Domain names in wire form, and the lookup key that orders them canonically.
//!
//! belfry keeps names as uncompressed wire bytes (RFC 1035 §3.1). For lookups it
//! uses a *key*: the labels in reverse order (root side first), each label
//! lowercased (RFC 4343), escaped so that it holds no 0x00 byte, and ended by a
//! 0x00 byte. Two properties follow, and the zone index relies on both:
//!
//! - byte order of keys is DNS canonical order (RFC 4034 §6.1);
//! - the key of an ancestor is a prefix of the key of every descendant, ending
//!   at a label boundary, so one key of the query name gives the keys of all of
//!   its ancestors.
//!
//! This module does no allocation on the query path: keys are built into
//! caller-owned fixed buffers.

/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Largest number of labels a name can hold, root excluded.
pub const MAX_LABELS: usize = 127;
/// Largest key: every byte may be escaped to two, plus one terminator per label.
pub const MAX_KEY_LEN: usize = 2 * MAX_NAME_LEN + MAX_LABELS;

/// Errors met while reading a name from wire bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name runs past the end of the buffer.
    Truncated,
    /// A label type other than a plain label (compression is rejected where it is not allowed).
    BadLabel,
    /// The name is longer than 255 bytes.
    TooLong,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameError::Truncated => "name runs past the end of the data",
            NameError::BadLabel => "bad label type in name",
            NameError::TooLong => "name longer than 255 bytes",
        })
    }
}

impl std::error::Error for NameError {}

/// Length of the uncompressed wire name at the start of `buf`, checking its labels.
pub fn wire_len(buf: &[u8]) -> Result<usize, NameError> {
    let mut pos = 0usize;
    loop {
        let len = *buf.get(pos).ok_or(NameError::Truncated)? as usize;
        if len & 0xC0 != 0 {
            return Err(NameError::BadLabel);
        }
        pos += 1 + len;
        if pos > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if len == 0 {
            return Ok(pos);
        }
        if pos > buf.len() {
            return Err(NameError::Truncated);
        }
    }
}

/// Number of labels in an uncompressed wire name, root excluded.
pub fn label_count(wire: &[u8]) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        n += 1;
        pos += 1 + len as usize;
    }
    n
}

/// Start offsets of each label of an uncompressed wire name (root excluded), in order.
pub fn label_starts(wire: &[u8], out: &mut [u8; MAX_LABELS + 1]) -> usize {
    let mut pos = 0usize;
    let mut n = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || n >= MAX_LABELS {
            break;
        }
        out[n] = pos as u8;
        n += 1;
        pos += 1 + len as usize;
    }
    n
}

/// Lowercase copy of an uncompressed wire name (label lengths are untouched).
pub fn to_lowercase(wire: &[u8]) -> Vec<u8> {
    let mut out = wire.to_vec();
    lowercase_in_place(&mut out);
    out
}

/// Lowercase an uncompressed wire name in place.
pub fn lowercase_in_place(wire: &mut [u8]) {
    let mut pos = 0usize;
    while pos < wire.len() {
        let len = wire[pos] as usize;
        if len == 0 {
            break;
        }
        let end = (pos + 1 + len).min(wire.len());
        wire[pos + 1..end].make_ascii_lowercase();
        pos = end;
    }
}

/// Whether two uncompressed wire names are equal, ignoring ASCII case.
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether `name` is `zone` or below it (both uncompressed wire names).
pub fn is_at_or_below(name: &[u8], zone: &[u8]) -> bool {
    if zone.len() > name.len() {
        return false;
    }
    let off = name.len() - zone.len();
    if !name[off..].eq_ignore_ascii_case(zone) {
        return false;
    }
    // `off` must fall on a label boundary of `name`.
    let mut pos = 0usize;
    while pos < off {
        pos += 1 + name[pos] as usize;
    }
    pos == off
}

/// A lookup key built into a fixed buffer, with the key length after each label.
pub struct Key {
    buf: [u8; MAX_KEY_LEN],
    len: usize,
    /// `ends[i]` = key length covering the first `i + 1` labels counted from the root side.
    ends: [u16; MAX_LABELS],
    labels: usize,
}

impl Default for Key {
    fn default() -> Self {
        Self::new()
    }
}

impl Key {
    /// An empty key (the root).
    pub const fn new() -> Self {
        Key {
            buf: [0; MAX_KEY_LEN],
            len: 0,
            ends: [0; MAX_LABELS],
            labels: 0,
        }
    }

    /// Build the key of an uncompressed wire name (which must be valid: see [`wire_len`]).
    pub fn set(&mut self, wire: &[u8]) {
        let mut starts = [0u8; MAX_LABELS + 1];
        let n = label_starts(wire, &mut starts);
        self.len = 0;
        self.labels = 0;
        for i in (0..n).rev() {
            let s = starts[i] as usize;
            let l = wire[s] as usize;
            for &b in &wire[s + 1..s + 1 + l] {
                let b = b.to_ascii_lowercase();
                if b <= 1 {
                    self.buf[self.len] = 1;
                    self.buf[self.len + 1] = b + 1;
                    self.len += 2;
                } else {
                    self.buf[self.len] = b;
                    self.len += 1;
                }
            }
            self.buf[self.len] = 0;
            self.len += 1;
            self.ends[self.labels] = self.len as u16;
            self.labels += 1;
        }
    }

    /// Set the key from canonical key bytes (as [`Key::as_bytes`] gives them).
    pub fn set_key(&mut self, key: &[u8]) {
        let n = key.len().min(MAX_KEY_LEN);
        self.buf[..n].copy_from_slice(&key[..n]);
        self.len = n;
        self.labels = 0;
        let mut i = 0;
        while i < n {
            match key[i] {
                0 if self.labels < MAX_LABELS => {
                    self.ends[self.labels] = (i + 1) as u16;
                    self.labels += 1;
                }
                1 => i += 1,
                _ => {}
            }
            i += 1;
        }
    }

    /// The whole key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Number of labels in the name, root excluded.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// Key of the ancestor holding the `n` labels nearest the root (`n = 0` is the root).
    pub fn prefix(&self, n: usize) -> &[u8] {
        if n == 0 {
            &[]
        } else {
            &self.buf[..self.ends[n - 1] as usize]
        }
    }
}

/// Key of an uncompressed wire name as an owned vector (load-time helper).
pub fn key_of(wire: &[u8]) -> Vec<u8> {
    let mut k = Key::new();
    k.set(wire);
    k.as_bytes().to_vec()
}

/// Wire name of the ancestor of `wire` that has `keep` labels (root excluded).
pub fn ancestor(wire: &[u8], keep: usize) -> &[u8] {
    let total = label_count(wire);
    let mut skip = total.saturating_sub(keep);
    let mut pos = 0usize;
    while skip > 0 {
        pos += 1 + wire[pos] as usize;
        skip -= 1;
    }
    &wire[pos..]
}

/// Presentation form of an uncompressed wire name, with trailing dot (RFC 4343 escapes).
pub fn to_text(wire: &[u8]) -> String {
    let mut s = String::new();
    push_text(&mut s, wire);
    s
}

/// [`to_text`] appended to `s`.
pub fn push_text(s: &mut String, wire: &[u8]) {
    let start = s.len();
    let mut pos = 0usize;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let end = (pos + 1 + len as usize).min(wire.len());
        for &b in &wire[pos + 1..end] {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    s.push('\\');
                    s.push(b as char);
                }
                0x21..=0x7E => s.push(b as char),
                _ => {
                    use std::fmt::Write;
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('.');
        pos = end;
    }
    if s.len() == start {
        s.push('.');
    }
}

/// Parse a plain absolute or origin-relative name (letters, digits, `-`, `_`, `*`, `\.` escapes).
///
/// Used for names given on the command line, in the config and in the suppression list.
pub fn from_text(text: &str, origin: &[u8]) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty name".into());
    }
    if text == "@" {
        return Ok(origin.to_vec());
    }
    if text == "." {
        return Ok(vec![0]);
    }
    let absolute = text.ends_with('.') && !text.ends_with("\\.");
    let body = if absolute {
        &text[..text.len() - 1]
    } else {
        text
    };
    let mut out = Vec::with_capacity(text.len() + 2);
    let mut label: Vec<u8> = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() {
            return Err(format!("empty label in '{text}'"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 bytes in '{text}'"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label);
        label.clear();
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'.' => flush(&mut label, &mut out)?,
            b'\\' => {
                let rest = &bytes[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(|c| c.is_ascii_digit()) {
                    let v: u32 = std::str::from_utf8(&rest[..3])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(256);
                    if v > 255 {
                        return Err(format!("bad escape in '{text}'"));
                    }
                    label.push(v as u8);
                    i += 3;
                } else if let Some(&c) = rest.first() {
                    label.push(c);
                    i += 1;
                } else {
                    return Err(format!("dangling backslash in '{text}'"));
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'(' | b')' | b';' => {
                return Err(format!(
                    "invalid character {:?} in name '{text}'",
                    b as char
                ));
            }
            _ => label.push(b),
        }
        i += 1;
    }
    flush(&mut label, &mut out)?;
    if !absolute {
        out.extend_from_slice(origin);
    } else {
        out.push(0);
    }
    if out.len() > MAX_NAME_LEN {
        return Err(format!("name '{text}' is longer than 255 bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        from_text(s, &[0]).unwrap()
    }

    #[test]
    fn text_round_trip() {
        assert_eq!(w("www.Example.be."), b"\x03www\x07Example\x02be\x00");
        assert_eq!(to_text(&w("www.Example.be.")), "www.Example.be.");
        assert_eq!(to_text(&[0]), ".");
        assert_eq!(to_text(&w("a\\.b.be.")), "a\\.b.be.");
        assert_eq!(w("a\\065.be."), b"\x02aA\x02be\x00");
        assert_eq!(
            from_text("foo", b"\x02be\x00").unwrap(),
            b"\x03foo\x02be\x00"
        );
        assert!(from_text("a..b.", &[0]).is_err());
        assert!(from_text(&"a".repeat(64), &[0]).is_err());
        assert!(from_text("a b", &[0]).is_err());
    }

    #[test]
    fn key_prefixes_are_ancestors() {
        let mut k = Key::new();
        k.set(&w("www.Example.BE."));
        assert_eq!(k.labels(), 3);
        assert_eq!(k.prefix(1), b"be\0");
        assert_eq!(k.prefix(2), b"be\0example\0");
        assert_eq!(k.as_bytes(), b"be\0example\0www\0");
        assert_eq!(key_of(&w("example.be.")), k.prefix(2));
    }

    #[test]
    fn key_order_is_canonical_order() {
        // RFC 4034 §6.1 example, in canonical order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let keys: Vec<Vec<u8>> = names.iter().map(|n| key_of(&w(n))).collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
        }
        // A zero byte sorts before 0x01 and both before printable bytes.
        assert!(key_of(&w("\\000.x.")) < key_of(&w("\\001.x.")));
        assert!(key_of(&w("\\001.x.")) < key_of(&w("\\002.x.")));
        assert!(key_of(&w("a.x.")) < key_of(&w("a\\000.x.")));
    }

    #[test]
    fn below_and_ancestors() {
        let be = w("be.");
        assert!(is_at_or_below(&w("a.BE."), &be));
        assert!(is_at_or_below(&be, &be));
        assert!(!is_at_or_below(&w("abe."), &be));
        assert!(!is_at_or_below(&w("com."), &be));
        assert_eq!(ancestor(&w("a.b.be."), 2), &w("b.be.")[..]);
        assert_eq!(ancestor(&w("a.b.be."), 0), &[0u8][..]);
        assert_eq!(label_count(&w("a.b.be.")), 3);
        assert_eq!(wire_len(b"\x01a\x00rest"), Ok(3));
        assert_eq!(wire_len(b"\x01a"), Err(NameError::Truncated));
        assert_eq!(wire_len(b"\xc0\x0c"), Err(NameError::BadLabel));
    }

    proptest::proptest! {
        #[test]
        fn key_order_matches_label_comparison(a in proptest::collection::vec(proptest::collection::vec(0u8..=255, 1..5), 1..4),
                                              b in proptest::collection::vec(proptest::collection::vec(0u8..=255, 1..5), 1..4)) {
            let mk = |labels: &Vec<Vec<u8>>| {
                let mut v = Vec::new();
                for l in labels { v.push(l.len() as u8); v.extend_from_slice(l); }
                v.push(0);
                v
            };
            // Reference canonical comparison: labels from the root, lowercase, shorter prefix first.
            let cmp = |x: &Vec<Vec<u8>>, y: &Vec<Vec<u8>>| {
                let xs: Vec<Vec<u8>> = x.iter().rev().map(|l| l.to_ascii_lowercase()).collect();
                let ys: Vec<Vec<u8>> = y.iter().rev().map(|l| l.to_ascii_lowercase()).collect();
                xs.cmp(&ys)
            };
            let ka = key_of(&mk(&a));
            let kb = key_of(&mk(&b));
            proptest::prop_assert_eq!(ka.cmp(&kb), cmp(&a, &b));
        }
    }
}
