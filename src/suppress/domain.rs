//! Domains as operators give them: parsed once, at the edge, into one wire name.
//!
//! Owns the rule of what can be put on the suppression list: a host name that
//! can be delegated — labels of letters, digits and hyphens (RFC 952/1123
//! host names), no leading or trailing hyphen, no `--` in the third and fourth
//! position unless an A-label (`xn--`), at most 63 bytes a label and 255 a
//! name (RFC 1035 §2.3.4). Presentation escapes are decoded first (RFC 1035
//! §5.1), so `\112hish.be.` and `PHISH.be` are the entry `phish.be.`; an escape
//! that hides a dot, NUL, `*` or a non-ASCII byte is refused. An IDN given in
//! Unicode is converted to its A-label by IDNA/UTS 46 (the `idna` crate,
//! non-transitional, STD3 rules); an A-label is checked to decode. Names are
//! shown both ways ([`show`]).
//!
//! It must not echo unbounded input: errors quote at most [`QUOTE_MAX`]
//! characters of what was given.

use std::fmt;

/// Longest input accepted before any parsing (a name is at most 255 bytes, escapes at most 4 a byte).
pub const MAX_INPUT: usize = 1024;
/// Most characters of a refused input quoted in an error.
pub const QUOTE_MAX: usize = 80;

/// Why a domain was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainError {
    /// Nothing given.
    Empty,
    /// Longer than any name can be.
    TooLong,
    /// Not a name at all (empty label, label too long, bad escape).
    Syntax(String),
    /// A byte that a delegable host name cannot hold (escaped dot, NUL, `*`, `_`, space, ...).
    NotHostName,
    /// A non-ASCII byte given as an escape (`\195\169`): give the IDN as text or as its A-label.
    RawUnicode,
    /// Escapes mixed with Unicode text.
    Mixed,
    /// Refused by IDNA/UTS 46 (a bad A-label, a disallowed code point, a hyphen rule).
    Idna,
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Empty => f.write_str("no domain given"),
            DomainError::TooLong => f.write_str("longer than a domain name can be"),
            DomainError::Syntax(m) => write!(f, "not a domain name: {m}"),
            DomainError::NotHostName => f.write_str(
                "only host names can be delegated: letters, digits and hyphens \
                 (no '*', '_', NUL, escaped dots or spaces)",
            ),
            DomainError::RawUnicode => f.write_str(
                "a non-ASCII byte given as an escape; give an IDN as text (café.be) \
                 or as its A-label (xn--caf-dma.be)",
            ),
            DomainError::Mixed => f.write_str("escapes and Unicode text mixed in one name"),
            DomainError::Idna => f.write_str(
                "not a valid host name under IDNA/UTS 46 (a bad xn-- label, a disallowed \
                 character, or a hyphen at the start, end or in positions 3-4)",
            ),
        }
    }
}

impl std::error::Error for DomainError {}

/// At most [`QUOTE_MAX`] characters of an input, control characters escaped, for an error message.
pub fn quote(input: &str) -> String {
    let mut s = String::new();
    for (i, c) in input.chars().enumerate() {
        if i == QUOTE_MAX {
            s.push('…');
            break;
        }
        if c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

/// Parse a domain given by an operator (relative names are taken as absolute)
/// into its lowercase uncompressed wire form.
pub fn parse(input: &str) -> Result<Vec<u8>, DomainError> {
    if input.len() > MAX_INPUT {
        return Err(DomainError::TooLong);
    }
    let text = input.trim();
    let text = text
        .strip_suffix('.')
        .filter(|t| !t.ends_with('\\'))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(DomainError::Empty);
    }
    let ascii = if text.is_ascii() {
        // Decode escapes, then look at the bytes they stand for.
        let wire = crate::name::from_text(&format!("{text}."), &[0]).map_err(|m| {
            // The message of from_text quotes its input: keep only its kind.
            let kind = m.split(" in '").next().unwrap_or("bad name");
            DomainError::Syntax(kind.to_string())
        })?;
        let mut out = String::with_capacity(wire.len());
        let mut pos = 0usize;
        while let Some(&len) = wire.get(pos) {
            if len == 0 {
                break;
            }
            let label = &wire[pos + 1..pos + 1 + len as usize];
            for &b in label {
                if b >= 0x80 {
                    return Err(DomainError::RawUnicode);
                }
                if !(b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(DomainError::NotHostName);
                }
            }
            if !out.is_empty() {
                out.push('.');
            }
            out.extend(label.iter().map(|&b| b as char));
            pos += 1 + len as usize;
        }
        out
    } else {
        if text.contains('\\') {
            return Err(DomainError::Mixed);
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DomainError::NotHostName);
        }
        text.to_string()
    };
    // UTS 46 with STD3 rules, hyphen checks and DNS lengths: maps Unicode to A-labels,
    // lowercases, and checks that every xn-- label decodes.
    let a = idna::domain_to_ascii_strict(&ascii).map_err(|_| DomainError::Idna)?;
    if !a.is_ascii() || a.split('.').any(|l| l.is_empty()) {
        return Err(DomainError::Idna);
    }
    let wire = crate::name::from_text(&format!("{a}."), &[0])
        .map_err(|_| DomainError::Syntax("label or name too long".into()))?;
    if wire.len() > crate::name::MAX_NAME_LEN {
        return Err(DomainError::TooLong);
    }
    Ok(crate::name::to_lowercase(&wire))
}

/// The Unicode form of a wire name when it holds an A-label, else `None`.
pub fn unicode(wire: &[u8]) -> Option<String> {
    let text = crate::name::to_text(wire);
    let has_a_label = text
        .split('.')
        .any(|l| l.len() > 4 && l[..4].eq_ignore_ascii_case("xn--"));
    if !has_a_label {
        return None;
    }
    let (u, r) = idna::domain_to_unicode(text.trim_end_matches('.'));
    r.ok().map(|()| format!("{u}."))
}

/// A name shown both ways: `xn--caf-dma.be. (café.be.)`, or just the name.
pub fn show(wire: &[u8]) -> String {
    let a = crate::name::to_text(wire);
    match unicode(wire) {
        Some(u) => format!("{a} ({u})"),
        None => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn one_name_one_spelling() {
        let p = w("phish.be.");
        assert_eq!(p, b"\x05phish\x02be\x00");
        for s in [
            "\\112hish.be.",
            "PHISH.BE.",
            "phish.be",
            " Phish.Be. ",
            "p\\hish.be.",
        ] {
            assert_eq!(w(s), p, "{s}");
        }
    }

    #[test]
    fn only_delegable_host_names() {
        for s in [
            "*.be.",
            "a\\000b.be.",
            "a\\.b.be.",
            "a_b.be.",
            "a b.be.",
            "\\042.be.",
            "-a.be.",
            "a-.be.",
            "ab--c.be.",
            "xn--zz.be.",
            "xn--.be.",
            "a..be.",
            ".",
            "",
        ] {
            assert!(parse(s).is_err(), "{s} accepted");
        }
        assert_eq!(parse("caf\\195\\169.be."), Err(DomainError::RawUnicode));
        assert_eq!(parse("caf\\195é.be."), Err(DomainError::Mixed));
        assert_eq!(parse(&"a".repeat(2000)), Err(DomainError::TooLong));
        assert!(parse(&format!("{}.be.", "a".repeat(64))).is_err());
        let long = format!("{}be.", "abcdefghi.".repeat(26));
        assert!(parse(&long).is_err(), "over 255 bytes");
        w("a-b.be.");
        w("1.be.");
        w("xn--caf-dma.be.");
    }

    #[test]
    fn idn_is_converted_and_shown_both_ways() {
        let a = w("xn--caf-dma.be.");
        assert_eq!(w("café.be."), a);
        assert_eq!(w("CAFÉ.be"), a);
        assert_eq!(show(&a), "xn--caf-dma.be. (café.be.)");
        assert_eq!(unicode(&w("phish.be.")), None);
        assert_eq!(show(&w("phish.be.")), "phish.be.");
    }

    #[test]
    fn errors_quote_a_bounded_input() {
        let q = quote(&format!("{}\n", "x".repeat(10_000)));
        assert!(q.chars().count() <= QUOTE_MAX + 1, "{q}");
        assert_eq!(quote("a\nb"), "a\\nb");
    }
}
