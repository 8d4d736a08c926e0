//! BIND key files: `key "name" { algorithm hmac-sha256; secret "base64"; };`.
//!
//! Reads what `tsig-keygen` and `ddns-confgen` print, and what named.conf
//! `include`s for keys: any number of `key` statements, names quoted or not,
//! comments in the three named.conf styles (`//`, `#`, `/* … */`). Anything
//! else is an error naming the file and line.

use super::key::{decode_secret, parse_algorithm, Key, KeyError};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Semi,
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Open => "'{'".into(),
            Tok::Close => "'}'".into(),
            Tok::Semi => "';'".into(),
        }
    }
}

fn tokenize(text: &str, file: &str) -> Result<Vec<(usize, Tok)>, KeyError> {
    let err = |line: usize, what: &str| KeyError {
        at: format!("{file}:{line}"),
        what: what.to_string(),
    };
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut line = 1usize;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                i += 2;
                loop {
                    match b.get(i) {
                        None => return Err(err(start, "comment '/*' is never closed")),
                        Some(b'*') if b.get(i + 1) == Some(&b'/') => {
                            i += 2;
                            break;
                        }
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'{' => {
                out.push((line, Tok::Open));
                i += 1;
            }
            b'}' => {
                out.push((line, Tok::Close));
                i += 1;
            }
            b';' => {
                out.push((line, Tok::Semi));
                i += 1;
            }
            b'"' => {
                let start = line;
                let mut s = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(err(start, "string is never closed")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if i + 1 < b.len() => {
                            s.push(b[i + 1]);
                            i += 2;
                        }
                        Some(&ch) => {
                            if ch == b'\n' {
                                line += 1;
                            }
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                let s = String::from_utf8(s).map_err(|_| err(start, "string is not UTF-8"))?;
                out.push((start, Tok::Str(s)));
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'{' | b'}' | b';' | b'"' | b'#')
                    && (b[i] != b'/' || !matches!(b.get(i + 1), Some(b'/') | Some(b'*')))
                {
                    i += 1;
                }
                // `start..i` holds whole UTF-8 characters: it stops only at ASCII bytes.
                let w = String::from_utf8_lossy(&b[start..i]).into_owned();
                out.push((line, Tok::Word(w)));
            }
        }
    }
    Ok(out)
}

/// Parse the text of a key file; each key comes with the line of its `key` statement.
///
/// `file` is used in error messages only.
pub fn parse(text: &str, file: &str) -> Result<Vec<(usize, Key)>, KeyError> {
    let toks = tokenize(text, file)?;
    let last_line = toks.last().map_or(1, |t| t.0);
    let mut it = toks.into_iter().peekable();
    let err = |line: usize, what: String| KeyError {
        at: format!("{file}:{line}"),
        what,
    };
    let mut next = |want: &str| -> Result<(usize, Tok), KeyError> {
        it.next()
            .ok_or_else(|| err(last_line, format!("file ends where {want} was expected")))
    };
    let mut keys = Vec::new();
    while let Ok((line, t)) = next("'key'") {
        match &t {
            Tok::Word(w) if w == "key" => {}
            other => {
                return Err(err(
                    line,
                    format!("expected a 'key' statement, found {}", other.show()),
                ))
            }
        }
        let (l, name) = next("a key name")?;
        let name = match name {
            Tok::Word(s) | Tok::Str(s) => s,
            other => {
                return Err(err(
                    l,
                    format!("expected a key name, found {}", other.show()),
                ))
            }
        };
        let (l, open) = next("'{'")?;
        if open != Tok::Open {
            return Err(err(
                l,
                format!("expected '{{' after the key name, found {}", open.show()),
            ));
        }
        let mut algorithm: Option<(usize, String)> = None;
        let mut secret: Option<(usize, String)> = None;
        loop {
            let (l, t) = next("'}'")?;
            let field = match t {
                Tok::Close => break,
                Tok::Word(w) => w,
                other => {
                    return Err(err(
                        l,
                        format!(
                            "expected 'algorithm', 'secret' or '}}', found {}",
                            other.show()
                        ),
                    ))
                }
            };
            let (vl, v) = next("a value")?;
            let value = match v {
                Tok::Word(s) | Tok::Str(s) => s,
                other => {
                    return Err(err(
                        vl,
                        format!("expected a value for '{field}', found {}", other.show()),
                    ))
                }
            };
            let (sl, semi) = next("';'")?;
            if semi != Tok::Semi {
                return Err(err(
                    sl,
                    format!("expected ';' after '{field}', found {}", semi.show()),
                ));
            }
            let slot = match field.to_ascii_lowercase().as_str() {
                "algorithm" => &mut algorithm,
                "secret" => &mut secret,
                _ => {
                    return Err(err(
                        l,
                        format!(
                            "unknown statement '{field}' in key (expected 'algorithm' or 'secret')"
                        ),
                    ))
                }
            };
            if slot.is_some() {
                return Err(err(l, format!("'{field}' given twice in key '{name}'")));
            }
            *slot = Some((vl, value));
        }
        let (l, semi) = next("';'")?;
        if semi != Tok::Semi {
            return Err(err(
                l,
                format!("expected ';' after '}}', found {}", semi.show()),
            ));
        }
        let (al, alg) =
            algorithm.ok_or_else(|| err(line, format!("key '{name}' has no algorithm")))?;
        let (sl, sec) = secret.ok_or_else(|| err(line, format!("key '{name}' has no secret")))?;
        let wire =
            crate::name::from_text(&name, &[0]).map_err(|e| err(line, format!("key name: {e}")))?;
        let (alg, min) = parse_algorithm(&alg).map_err(|e| err(al, e))?;
        let secret = decode_secret(&sec).map_err(|e| err(sl, e))?;
        keys.push((line, Key::new(&wire, alg, &secret).with_min_mac_len(min)));
    }
    Ok(keys)
}

/// Read a key file from disk.
pub fn load(path: &std::path::Path) -> Result<Vec<Key>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError {
        at: path.display().to_string(),
        what: format!("cannot read: {e}"),
    })?;
    Ok(parse(&text, &path.display().to_string())?
        .into_iter()
        .map(|(_, k)| k)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsig::Algorithm;

    #[test]
    fn reads_tsig_keygen_output_and_comments() {
        let text = "# made by tsig-keygen\nkey \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"9o4Rgr+XmU7k1Ru9mYN1pzG/HxHM6vWl1uK6Qm5Lq6c=\";\n};\n\
                    /* a second\n key */\nkey upd.example. { algorithm \"HMAC-SHA512\"; // trailing\n secret \"c2Vj cmV0\"; };\n";
        let keys = parse(text, "k.conf").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].0, 2);
        assert_eq!(keys[0].1.name(), b"\x07xfr-key\x00");
        assert_eq!(keys[0].1.algorithm(), Algorithm::HmacSha256);
        assert_eq!(keys[1].0, 8);
        assert_eq!(keys[1].1.name(), b"\x03upd\x07example\x00");
        assert_eq!(keys[1].1.algorithm(), Algorithm::HmacSha512);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(
            "key \"a\" {\n algorithm hmac-sha256;\n secret \"%%%\";\n};\n",
            "f",
        )
        .unwrap_err();
        assert_eq!(e.at, "f:3");
        assert!(e.what.contains("base64"), "{e}");
        let e = parse("key \"a\" {\n algorithm hmac-sha256;\n};\n", "f").unwrap_err();
        assert_eq!(e.to_string(), "f:1: key 'a' has no secret");
        let e = parse("key \"a\" {\n algo hmac-sha256;\n};\n", "f").unwrap_err();
        assert_eq!(e.at, "f:2");
        let e = parse("options { };\n", "f").unwrap_err();
        assert!(e.what.contains("expected a 'key' statement"));
        let e = parse(
            "key \"a\" {\n algorithm hmac-sha256;\n secret \"c2VjcmV0\";\n}\n",
            "f",
        )
        .unwrap_err();
        assert!(e.what.contains("file ends"), "{e}");
        let e = parse(
            "key \"a\" {\n algorithm hmac-md5;\n secret \"c2VjcmV0\";\n};",
            "f",
        )
        .unwrap_err();
        assert_eq!(e.at, "f:2");
        let e = parse("/* open", "f").unwrap_err();
        assert_eq!(e.at, "f:1");
        assert!(parse("", "f").unwrap().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[a-z{};\"#/* \\n0-9=+-]{0,120}") {
            let _ = parse(&text, "f");
        }
    }
}
