//! Streaming parser for RFC 1035 §5 master files (BIND zone-file format).
//!
//! Reads a file line by line through a reused buffer and hands each record to
//! a callback in wire form, borrowing from the parser's buffers: no allocation
//! per record on the common path. Handles `$ORIGIN`, `$TTL` (RFC 2308 §4),
//! `$INCLUDE` (with its own origin, nested up to 16 deep), relative names and
//! `@`, blank owners, TTL and class in either order, parentheses across lines,
//! comments, quoted strings and `\X`/`\DDD` escapes. RDATA text is turned into
//! wire form for the types a TLD zone holds (SOA, NS, A, AAAA, DS, DNSKEY, TXT,
//! MX, CNAME, SRV, CAA, ...) and for any type in the RFC 3597 `\# len hex`
//! form. RRSIG/NSEC/NSEC3 are refused: belfry signs the zone itself.
//!
//! Every error names the file and the line where the record starts.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// One record as parsed; everything is borrowed from the parser's reused buffers.
pub struct RawRecord<'a> {
    /// Owner: absolute uncompressed wire name, letter case as written.
    pub owner: &'a [u8],
    /// TTL.
    pub ttl: u32,
    /// Class (1 = IN).
    pub class: u16,
    /// Type.
    pub rtype: u16,
    /// RDATA in uncompressed wire form.
    pub rdata: &'a [u8],
    /// File the record is in.
    pub file: &'a Path,
    /// 1-based line where the record starts.
    pub line: usize,
}

/// A parse error and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// File.
    pub file: PathBuf,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Counters of a parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseStats {
    /// Records handed to the sink.
    pub records: u64,
    /// Physical lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
}

const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("HINFO", 13),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("NAPTR", 35),
    ("DNAME", 39),
    ("DS", 43),
    ("SSHFP", 44),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("ANY", 255),
    ("CAA", 257),
];

/// Type mnemonic (or `TYPEnnn`) to code, from the bytes of a token.
fn rtype_from_bytes(t: &[u8]) -> Option<u16> {
    // The types of a TLD zone, without a scan of the table.
    let mut up = [0u8; 4];
    if t.len() <= 4 {
        for (u, b) in up.iter_mut().zip(t) {
            *u = b.to_ascii_uppercase();
        }
        match &up[..t.len()] {
            b"NS" => return Some(2),
            b"DS" => return Some(43),
            b"A" => return Some(1),
            b"AAAA" => return Some(28),
            b"IN" | b"CH" | b"HS" => return None,
            _ => {}
        }
    }
    rtype_from_str(std::str::from_utf8(t).ok()?)
}

/// Type mnemonic (or `TYPEnnn`) to code.
pub fn rtype_from_str(s: &str) -> Option<u16> {
    for &(n, c) in TYPES {
        if n.eq_ignore_ascii_case(s) {
            return Some(c);
        }
    }
    let rest = s
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("TYPE"))
        .and(s.get(4..))?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Type code to mnemonic (or `TYPEnnn`).
pub fn rtype_to_string(t: u16) -> String {
    TYPES
        .iter()
        .find(|&&(_, c)| c == t)
        .map(|&(n, _)| n.to_string())
        .unwrap_or_else(|| format!("TYPE{t}"))
}

/// Parse a presentation-format name relative to `origin` into absolute wire form.
pub fn name_from_text(text: &str, origin: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    parse_name(text.as_bytes(), origin, &mut out)?;
    Ok(out)
}

/// Absolute wire name to presentation text.
pub fn name_to_text(wire: &[u8]) -> String {
    crate::name::to_text(wire)
}

/// Append the wire form of a name token (escapes allowed) to `out`.
fn parse_name(tok: &[u8], origin: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if tok == b"@" {
        out.extend_from_slice(origin);
        return Ok(());
    }
    if tok == b"." {
        out.push(0);
        return Ok(());
    }
    if tok.is_empty() {
        return Err("empty name".into());
    }
    let start = out.len();
    if !tok.contains(&b'\\') {
        // No escapes: whole labels between the dots.
        let (body, absolute) = match tok.strip_suffix(b".") {
            Some(b) => (b, true),
            None => (tok, false),
        };
        for label in body.split(|&b| b == b'.') {
            let label_at = out.len();
            out.push(0);
            out.extend_from_slice(label);
            close_label(out, label_at, tok)?;
        }
        if absolute {
            out.push(0);
        } else {
            out.extend_from_slice(origin);
        }
        return check_name_len(out, start, tok);
    }
    let mut label_at = out.len();
    out.push(0);
    let mut i = 0;
    let mut absolute = false;
    while i < tok.len() {
        let b = tok[i];
        match b {
            b'.' => {
                close_label(out, label_at, tok)?;
                if i + 1 == tok.len() {
                    absolute = true;
                    break;
                }
                label_at = out.len();
                out.push(0);
            }
            b'\\' => {
                let (v, used) = unescape(&tok[i..]).ok_or_else(|| {
                    format!("bad escape in name '{}'", String::from_utf8_lossy(tok))
                })?;
                out.push(v);
                i += used - 1;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    if absolute {
        out.push(0);
    } else {
        close_label(out, label_at, tok)?;
        out.extend_from_slice(origin);
    }
    check_name_len(out, start, tok)
}

fn check_name_len(out: &[u8], start: usize, tok: &[u8]) -> Result<(), String> {
    if out.len() - start > 255 {
        return Err(format!(
            "name '{}' is longer than 255 bytes",
            String::from_utf8_lossy(tok)
        ));
    }
    Ok(())
}

/// Set the length byte of the label that starts at `label_at`, checking it is 1–63 bytes.
fn close_label(out: &mut [u8], label_at: usize, tok: &[u8]) -> Result<(), String> {
    let len = out.len() - label_at - 1;
    let what = match len {
        0 => "empty label",
        64.. => "label longer than 63 bytes",
        _ => {
            out[label_at] = len as u8;
            return Ok(());
        }
    };
    Err(format!("{what} in name '{}'", String::from_utf8_lossy(tok)))
}

/// Decode one escape at the start of `s` (which begins with a backslash): (byte, bytes used).
fn unescape(s: &[u8]) -> Option<(u8, usize)> {
    let c = *s.get(1)?;
    if c.is_ascii_digit() {
        let d = s.get(1..4)?;
        if !d.iter().all(|x| x.is_ascii_digit()) {
            return None;
        }
        let v = (d[0] - b'0') as u32 * 100 + (d[1] - b'0') as u32 * 10 + (d[2] - b'0') as u32;
        if v > 255 {
            return None;
        }
        Some((v as u8, 4))
    } else {
        Some((c, 2))
    }
}

/// A token of the current entry: byte range in the entry buffer and whether it was quoted.
#[derive(Clone, Copy)]
struct Tok {
    start: u32,
    end: u32,
    quoted: bool,
}

/// Parse a TTL-like number with optional unit suffixes (`3600`, `1h30m`, `2D`).
fn parse_ttl(tok: &[u8]) -> Option<u32> {
    if tok.is_empty() {
        return None;
    }
    if tok.iter().all(|b| b.is_ascii_digit()) {
        if tok.len() > 10 {
            return None;
        }
        let v: u64 = tok.iter().fold(0u64, |a, &b| a * 10 + (b - b'0') as u64);
        return u32::try_from(v).ok();
    }
    let mut total: u64 = 0;
    let mut cur: u64 = 0;
    let mut have = false;
    for &b in tok {
        if b.is_ascii_digit() {
            cur = cur.checked_mul(10)?.checked_add((b - b'0') as u64)?;
            have = true;
        } else {
            if !have {
                return None;
            }
            let m = match b.to_ascii_lowercase() {
                b's' => 1,
                b'm' => 60,
                b'h' => 3600,
                b'd' => 86400,
                b'w' => 604800,
                _ => return None,
            };
            total = total.checked_add(cur.checked_mul(m)?)?;
            cur = 0;
            have = false;
        }
    }
    total = total.checked_add(cur)?;
    u32::try_from(total).ok()
}

fn class_from(tok: &[u8]) -> Option<u16> {
    match tok {
        t if t.eq_ignore_ascii_case(b"IN") => Some(1),
        t if t.eq_ignore_ascii_case(b"CH") => Some(3),
        t if t.eq_ignore_ascii_case(b"HS") => Some(4),
        t if t.len() > 5 && t[..5].eq_ignore_ascii_case(b"CLASS") => {
            std::str::from_utf8(&t[5..]).ok()?.parse().ok()
        }
        _ => None,
    }
}

struct Frame {
    path: PathBuf,
    reader: BufReader<Box<dyn std::io::Read>>,
    line: usize,
    origin: Vec<u8>,
}

struct Parser<'s, F> {
    stack: Vec<Frame>,
    sink: &'s mut F,
    ttl_default: Option<u32>,
    last_ttl: Option<u32>,
    last_class: u16,
    prev_owner: Vec<u8>,
    prev_owner_text: Vec<u8>,
    prev_owner_origin: Vec<u8>,
    line_buf: Vec<u8>,
    entry: Vec<u8>,
    toks: Vec<Tok>,
    rdata: Vec<u8>,
    scratch: Vec<u8>,
    stats: ParseStats,
}

/// Parse a master file, calling `sink` for each record in file order.
pub fn parse_file<F>(path: &Path, origin: &[u8], mut sink: F) -> Result<ParseStats, ParseError>
where
    F: FnMut(&RawRecord<'_>) -> Result<(), String>,
{
    let f = std::fs::File::open(path).map_err(|e| ParseError {
        file: path.to_path_buf(),
        line: 0,
        message: format!("cannot open: {e}"),
    })?;
    run(path, Box::new(f), origin, &mut sink)
}

/// Parse master-file text held in memory (`name` is used in errors).
pub fn parse_str<F>(
    name: &Path,
    text: &str,
    origin: &[u8],
    mut sink: F,
) -> Result<ParseStats, ParseError>
where
    F: FnMut(&RawRecord<'_>) -> Result<(), String>,
{
    let bytes: Vec<u8> = text.as_bytes().to_vec();
    run(
        name,
        Box::new(std::io::Cursor::new(bytes)),
        origin,
        &mut sink,
    )
}

fn run<F>(
    path: &Path,
    reader: Box<dyn std::io::Read>,
    origin: &[u8],
    sink: &mut F,
) -> Result<ParseStats, ParseError>
where
    F: FnMut(&RawRecord<'_>) -> Result<(), String>,
{
    let mut p = Parser {
        stack: vec![Frame {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, reader),
            line: 0,
            origin: origin.to_vec(),
        }],
        sink,
        ttl_default: None,
        last_ttl: None,
        last_class: 1,
        prev_owner: Vec::new(),
        prev_owner_text: Vec::new(),
        prev_owner_origin: Vec::new(),
        line_buf: Vec::with_capacity(256),
        entry: Vec::with_capacity(256),
        toks: Vec::with_capacity(16),
        rdata: Vec::with_capacity(512),
        scratch: Vec::with_capacity(256),
        stats: ParseStats::default(),
    };
    p.run()?;
    Ok(p.stats)
}

impl<F> Parser<'_, F>
where
    F: FnMut(&RawRecord<'_>) -> Result<(), String>,
{
    fn err(&self, line: usize, message: impl Into<String>) -> ParseError {
        let file = self
            .stack
            .last()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        ParseError {
            file,
            line,
            message: message.into(),
        }
    }

    /// Read one physical line into `line_buf`; false at end of the current file.
    fn read_line(&mut self) -> Result<bool, ParseError> {
        self.line_buf.clear();
        let Some(fr) = self.stack.last_mut() else {
            return Ok(false);
        };
        let n = fr
            .reader
            .read_until(b'\n', &mut self.line_buf)
            .map_err(|e| ParseError {
                file: fr.path.clone(),
                line: fr.line + 1,
                message: format!("read error: {e}"),
            })?;
        if n == 0 {
            return Ok(false);
        }
        fr.line += 1;
        self.stats.lines += 1;
        self.stats.bytes += n as u64;
        Ok(true)
    }

    /// Fast path for the common line (no quotes, escapes or parentheses): tokens are
    /// whitespace-separated ranges of the line itself, which becomes the entry buffer.
    /// Returns false (having changed nothing that matters) when the line needs the full tokenizer.
    fn tokenize_plain(&mut self) -> bool {
        let line = &self.line_buf;
        let mut i = 0;
        let n = line.len();
        while i < n {
            match line[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b';' => break,
                b'"' | b'\\' | b'(' | b')' => {
                    self.toks.clear();
                    return false;
                }
                _ => {
                    let start = i;
                    while i < n && !ENDS_TOKEN[line[i] as usize] {
                        i += 1;
                    }
                    if i < n && matches!(line[i], b'"' | b'\\' | b'(' | b')') {
                        self.toks.clear();
                        return false;
                    }
                    self.toks.push(Tok {
                        start: start as u32,
                        end: i as u32,
                        quoted: false,
                    });
                }
            }
        }
        std::mem::swap(&mut self.entry, &mut self.line_buf);
        true
    }

    /// Tokenize `line_buf` into `entry`/`toks`; returns the new parenthesis depth.
    fn tokenize(&mut self, mut depth: u32, start_line: usize) -> Result<u32, ParseError> {
        let line = &self.line_buf;
        let mut i = 0;
        let n = line.len();
        while i < n {
            let b = line[i];
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b';' => break,
                b'(' => {
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err(self.err(start_line, "')' without '('"));
                    }
                    depth -= 1;
                    i += 1;
                }
                b'"' => {
                    let start = self.entry.len() as u32;
                    i += 1;
                    let mut closed = false;
                    while i < n {
                        let c = line[i];
                        if c == b'\\' && i + 1 < n {
                            self.entry.push(c);
                            self.entry.push(line[i + 1]);
                            i += 2;
                            continue;
                        }
                        if c == b'"' {
                            closed = true;
                            i += 1;
                            break;
                        }
                        self.entry.push(c);
                        i += 1;
                    }
                    if !closed {
                        return Err(self.err(start_line, "unterminated quoted string"));
                    }
                    self.toks.push(Tok {
                        start,
                        end: self.entry.len() as u32,
                        quoted: true,
                    });
                }
                _ => {
                    let start = self.entry.len() as u32;
                    while i < n {
                        let c = line[i];
                        if c == b'\\' && i + 1 < n {
                            self.entry.push(c);
                            self.entry.push(line[i + 1]);
                            i += 2;
                            continue;
                        }
                        if matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"') {
                            break;
                        }
                        self.entry.push(c);
                        i += 1;
                    }
                    self.toks.push(Tok {
                        start,
                        end: self.entry.len() as u32,
                        quoted: false,
                    });
                }
            }
        }
        Ok(depth)
    }

    fn tok(&self, i: usize) -> &[u8] {
        let t = self.toks[i];
        &self.entry[t.start as usize..t.end as usize]
    }

    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            if !self.read_line()? {
                // End of this file: pop an include, or finish.
                if self.stack.len() > 1 {
                    self.stack.pop();
                    continue;
                }
                return Ok(());
            }
            let start_line = self.stack.last().map(|f| f.line).unwrap_or(0);
            let blank_owner = matches!(self.line_buf.first(), Some(b' ') | Some(b'\t'));
            self.entry.clear();
            self.toks.clear();
            if self.tokenize_plain() {
                if self.toks.is_empty() {
                    continue;
                }
                self.entry_done(start_line, blank_owner)?;
                continue;
            }
            self.entry.clear();
            self.toks.clear();
            let mut depth = self.tokenize(0, start_line)?;
            while depth > 0 {
                if !self.read_line()? {
                    return Err(self.err(start_line, "unterminated parenthesis (opened here)"));
                }
                depth = self.tokenize(depth, start_line)?;
            }
            if self.toks.is_empty() {
                continue;
            }
            self.entry_done(start_line, blank_owner)?;
        }
    }

    fn directive(&mut self, line: usize) -> Result<(), ParseError> {
        let name = String::from_utf8_lossy(self.tok(0)).to_ascii_uppercase();
        let origin = self
            .stack
            .last()
            .map(|f| f.origin.clone())
            .unwrap_or_default();
        match name.as_str() {
            "$ORIGIN" => {
                if self.toks.len() != 2 {
                    return Err(self.err(line, "$ORIGIN takes one name"));
                }
                let mut o = Vec::new();
                let t = self.tok(1).to_vec();
                parse_name(&t, &origin, &mut o).map_err(|m| self.err(line, m))?;
                if let Some(f) = self.stack.last_mut() {
                    f.origin = o;
                }
            }
            "$TTL" => {
                if self.toks.len() != 2 {
                    return Err(self.err(line, "$TTL takes one value"));
                }
                let t = self.tok(1).to_vec();
                let v = parse_ttl(&t)
                    .filter(|&v| v <= i32::MAX as u32)
                    .ok_or_else(|| {
                        self.err(line, format!("bad TTL '{}'", String::from_utf8_lossy(&t)))
                    })?;
                self.ttl_default = Some(v);
            }
            "$INCLUDE" => {
                if self.toks.len() < 2 || self.toks.len() > 3 {
                    return Err(self.err(line, "$INCLUDE takes a file name and an optional origin"));
                }
                if self.stack.len() >= 16 {
                    return Err(
                        self.err(line, "$INCLUDE nested more than 16 deep (an include loop?)")
                    );
                }
                let file = String::from_utf8_lossy(self.tok(1)).into_owned();
                let base = self
                    .stack
                    .last()
                    .and_then(|f| f.path.parent().map(|p| p.to_path_buf()))
                    .unwrap_or_default();
                let path = if Path::new(&file).is_absolute() {
                    PathBuf::from(&file)
                } else {
                    base.join(&file)
                };
                if self.stack.iter().any(|f| f.path == path) {
                    return Err(self.err(
                        line,
                        format!("$INCLUDE loop: {} is already being read", path.display()),
                    ));
                }
                let new_origin = if self.toks.len() == 3 {
                    let mut o = Vec::new();
                    let t = self.tok(2).to_vec();
                    parse_name(&t, &origin, &mut o).map_err(|m| self.err(line, m))?;
                    o
                } else {
                    origin
                };
                let f = std::fs::File::open(&path)
                    .map_err(|e| self.err(line, format!("$INCLUDE {}: {e}", path.display())))?;
                self.stack.push(Frame {
                    path,
                    reader: BufReader::with_capacity(1 << 16, Box::new(f)),
                    line: 0,
                    origin: new_origin,
                });
            }
            other => return Err(self.err(line, format!("unsupported directive {other}"))),
        }
        Ok(())
    }

    fn entry_done(&mut self, line: usize, blank_owner: bool) -> Result<(), ParseError> {
        if !blank_owner && self.tok(0).first() == Some(&b'$') && !self.toks[0].quoted {
            return self.directive(line);
        }
        let mut i = 0;
        if !blank_owner {
            let owner_tok = self.tok(0);
            let origin = &self.stack[self.stack.len() - 1].origin;
            let same = owner_tok == self.prev_owner_text.as_slice()
                && origin == &self.prev_owner_origin
                && !self.prev_owner.is_empty();
            if !same {
                let t = self.toks[0];
                let owner_tok = &self.entry[t.start as usize..t.end as usize];
                let origin = &self.stack[self.stack.len() - 1].origin;
                self.scratch.clear();
                if let Err(m) = parse_name(owner_tok, origin, &mut self.scratch) {
                    return Err(self.err(line, m));
                }
                std::mem::swap(&mut self.prev_owner, &mut self.scratch);
                self.prev_owner_text.clear();
                self.prev_owner_text.extend_from_slice(owner_tok);
                self.prev_owner_origin.clear();
                self.prev_owner_origin.extend_from_slice(origin);
            }
            i = 1;
        } else if self.prev_owner.is_empty() {
            return Err(self.err(line, "no owner name and no previous owner to repeat"));
        }
        // TTL and class, in either order.
        let mut ttl = None;
        let mut class = None;
        while i < self.toks.len() {
            let t = self.tok(i);
            if ttl.is_none() && t.first().is_some_and(|b| b.is_ascii_digit()) {
                let v = parse_ttl(t).ok_or_else(|| {
                    self.err(line, format!("bad TTL '{}'", String::from_utf8_lossy(t)))
                })?;
                if v > i32::MAX as u32 {
                    return Err(self.err(line, format!("TTL {v} is larger than 2147483647")));
                }
                ttl = Some(v);
                i += 1;
            } else if class.is_none() && class_from(t).is_some() && rtype_from_bytes(t).is_none() {
                class = class_from(t);
                i += 1;
            } else {
                break;
            }
        }
        let Some(type_tok) = (i < self.toks.len()).then(|| self.tok(i)) else {
            return Err(self.err(line, "missing record type"));
        };
        let Some(rtype) = rtype_from_bytes(type_tok) else {
            let text = String::from_utf8_lossy(type_tok).into_owned();
            return Err(self.err(line, format!("unknown record type '{text}'")));
        };
        i += 1;
        let ttl = match ttl.or(self.ttl_default).or(self.last_ttl) {
            Some(t) => t,
            None => return Err(self.err(line, "no TTL given and no $TTL or earlier TTL to use")),
        };
        // RFC 2308 §4: a record without TTL takes $TTL; explicit TTLs become the "last TTL".
        self.last_ttl = Some(ttl);
        let class = class.unwrap_or(self.last_class);
        self.last_class = class;
        let mut rdata = std::mem::take(&mut self.rdata);
        rdata.clear();
        let frame = self.stack.len() - 1;
        let r = self.rdata_wire(rtype, i, &self.stack[frame].origin, &mut rdata);
        if let Err(m) = r {
            self.rdata = rdata;
            return Err(self.err(line, format!("{}: {m}", rtype_to_string(rtype))));
        }
        if rdata.len() > 65535 {
            self.rdata = rdata;
            return Err(self.err(line, "RDATA longer than 65535 bytes"));
        }
        let rec = RawRecord {
            owner: &self.prev_owner,
            ttl,
            class,
            rtype,
            rdata: &rdata,
            file: &self.stack[frame].path,
            line,
        };
        let res = (self.sink)(&rec);
        self.rdata = rdata;
        if let Err(m) = res {
            return Err(self.err(line, m));
        }
        self.stats.records += 1;
        Ok(())
    }

    fn rdata_wire(
        &self,
        rtype: u16,
        first: usize,
        origin: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let n = self.toks.len() - first;
        let t = |k: usize| -> Result<&[u8], String> {
            if k < n {
                Ok(self.tok(first + k))
            } else {
                Err("missing fields".into())
            }
        };
        let s = |k: usize| -> Result<String, String> {
            Ok(String::from_utf8_lossy(t(k)?).into_owned())
        };
        let exact = |want: usize| -> Result<(), String> {
            match n.cmp(&want) {
                std::cmp::Ordering::Less => Err("missing fields".into()),
                std::cmp::Ordering::Greater => Err(format!(
                    "unexpected '{}' after the RDATA",
                    String::from_utf8_lossy(self.tok(first + want))
                )),
                std::cmp::Ordering::Equal => Ok(()),
            }
        };
        let num = |k: usize, max: u64| -> Result<u64, String> {
            let v = t(k)?;
            decimal(v)
                .filter(|&x| x <= max)
                .ok_or_else(|| format!("bad number '{}'", String::from_utf8_lossy(v)))
        };
        // The hex digits of tokens `from..n` read as one string, into `out`.
        let hex = |from: usize, out: &mut Vec<u8>, what: &str| -> Result<(), String> {
            let at = out.len();
            if hex_tokens((from..n).map(|k| self.tok(first + k)), out) {
                return Ok(());
            }
            out.truncate(at);
            let mut text = String::new();
            for k in from..n {
                text.push_str(&s(k)?);
            }
            Err(format!("bad {what} '{text}'"))
        };
        if n >= 1 && t(0)? == b"\\#" && !self.toks[first].quoted {
            let len = num(1, 65535)? as usize;
            let at = out.len();
            hex(2, out, "hex")?;
            if out.len() - at != len {
                return Err(format!(
                    "\\# length {len} does not match {} bytes of data",
                    out.len() - at
                ));
            }
            return Ok(());
        }
        match rtype {
            1 => {
                exact(1)?;
                let a: Ipv4Addr = std::str::from_utf8(t(0)?)
                    .ok()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("bad IPv4 address '{}'", s(0).unwrap_or_default()))?;
                out.extend_from_slice(&a.octets());
            }
            28 => {
                exact(1)?;
                let a: Ipv6Addr = std::str::from_utf8(t(0)?)
                    .ok()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("bad IPv6 address '{}'", s(0).unwrap_or_default()))?;
                out.extend_from_slice(&a.octets());
            }
            2 | 5 | 12 | 39 => {
                exact(1)?;
                parse_name(t(0)?, origin, out)?;
            }
            6 => {
                exact(7)?;
                parse_name(t(0)?, origin, out)?;
                parse_name(t(1)?, origin, out)?;
                let serial = num(2, u32::MAX as u64)? as u32;
                out.extend_from_slice(&serial.to_be_bytes());
                for k in 3..7 {
                    let v = parse_ttl(t(k)?)
                        .ok_or_else(|| format!("bad time value '{}'", s(k).unwrap_or_default()))?;
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            15 => {
                exact(2)?;
                out.extend_from_slice(&(num(0, 65535)? as u16).to_be_bytes());
                parse_name(t(1)?, origin, out)?;
            }
            33 => {
                exact(4)?;
                for k in 0..3 {
                    out.extend_from_slice(&(num(k, 65535)? as u16).to_be_bytes());
                }
                parse_name(t(3)?, origin, out)?;
            }
            16 | 99 => {
                if n == 0 {
                    return Err("missing text".into());
                }
                for k in 0..n {
                    char_string(t(k)?, out)?;
                }
            }
            13 => {
                exact(2)?;
                char_string(t(0)?, out)?;
                char_string(t(1)?, out)?;
            }
            257 => {
                exact(3)?;
                out.push(num(0, 255)? as u8);
                let tag = t(1)?;
                if tag.is_empty()
                    || tag.len() > 255
                    || !tag.iter().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(format!("bad CAA tag '{}'", s(1)?));
                }
                out.push(tag.len() as u8);
                out.extend_from_slice(tag);
                let mut v = Vec::new();
                char_string(t(2)?, &mut v)?;
                out.extend_from_slice(&v[1..]);
            }
            43 | 59 => {
                if n < 4 {
                    return Err("missing fields".into());
                }
                out.extend_from_slice(&(num(0, 65535)? as u16).to_be_bytes());
                out.push(num(1, 255)? as u8);
                out.push(num(2, 255)? as u8);
                hex(3, out, "digest hex")?;
            }
            48 | 60 => {
                if n < 4 {
                    return Err("missing fields".into());
                }
                out.extend_from_slice(&(num(0, 65535)? as u16).to_be_bytes());
                out.push(num(1, 255)? as u8);
                out.push(num(2, 255)? as u8);
                let mut b64 = String::new();
                for k in 3..n {
                    b64.push_str(&s(k)?);
                }
                use base64::Engine;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| "bad base64 public key".to_string())?;
                out.extend_from_slice(&key);
            }
            51 => {
                exact(4)?;
                out.push(num(0, 255)? as u8);
                out.push(num(1, 255)? as u8);
                out.extend_from_slice(&(num(2, 65535)? as u16).to_be_bytes());
                let salt = s(3)?;
                if salt == "-" {
                    out.push(0);
                } else {
                    let at = out.len();
                    out.push(0);
                    if !hex_tokens(std::iter::once(t(3)?), out) {
                        return Err(format!("bad salt '{salt}'"));
                    }
                    let len = out.len() - at - 1;
                    if len > 255 {
                        return Err("salt longer than 255 bytes".into());
                    }
                    out[at] = len as u8;
                }
            }
            44 | 52 => {
                let fixed = if rtype == 44 { 2 } else { 3 };
                if n <= fixed {
                    return Err("missing fields".into());
                }
                for k in 0..fixed {
                    out.push(num(k, 255)? as u8);
                }
                hex(fixed, out, "hex")?;
            }
            46 | 47 | 50 => {
                return Err(format!(
                    "{} records are not accepted in the input zone: belfry signs the zone itself",
                    rtype_to_string(rtype)
                ))
            }
            _ => {
                return Err(format!(
                    "no text form known for {}; write it as \\# <length> <hex> (RFC 3597)",
                    rtype_to_string(rtype)
                ))
            }
        }
        Ok(())
    }
}

/// Append a <character-string> (length byte + bytes, escapes decoded).
fn char_string(tok: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let at = out.len();
    out.push(0);
    let mut i = 0;
    while i < tok.len() {
        if tok[i] == b'\\' {
            let (v, used) = unescape(tok.get(i..).unwrap_or(&[])).ok_or("bad escape in string")?;
            out.push(v);
            i += used;
        } else {
            out.push(tok[i]);
            i += 1;
        }
    }
    let len = out.len() - at - 1;
    if len > 255 {
        return Err("string longer than 255 bytes".into());
    }
    out[at] = len as u8;
    Ok(())
}

/// The bytes that end an unquoted token on a plain line.
const ENDS_TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\r\n;\"\\()";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

/// The value of each hex digit; 255 for every other byte.
const HEX: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// A decimal number of ASCII digits only (no sign, no spaces), if it fits in a `u64`.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// Decode hex digits spread over tokens (read as one string) into `out`; false
/// when a character is not a hex digit or the count is odd (`out` then holds junk).
fn hex_tokens<'a>(toks: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) -> bool {
    let mut high: Option<u8> = None;
    for tok in toks {
        for &c in tok {
            let v = HEX[c as usize];
            if v > 15 {
                return false;
            }
            match high.take() {
                Some(h) => out.push(h << 4 | v),
                None => high = Some(v),
            }
        }
    }
    high.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rec = (String, u32, u16, u16, Vec<u8>, usize);

    fn parse(text: &str) -> Result<Vec<Rec>, ParseError> {
        let mut v = Vec::new();
        parse_str(Path::new("t.zone"), text, b"\x02be\x00", |r| {
            v.push((
                name_to_text(r.owner),
                r.ttl,
                r.class,
                r.rtype,
                r.rdata.to_vec(),
                r.line,
            ));
            Ok(())
        })?;
        Ok(v)
    }

    fn err(text: &str) -> ParseError {
        parse(text).unwrap_err()
    }

    #[test]
    fn directives_relative_names_and_blank_owner() {
        let z = "$TTL 1h\n@ IN SOA ns a.b. ( 1 ; serial\n 2h 3m 4w\n 5 )\n  NS ns1\nfoo 60 NS ns.example.net.\n$ORIGIN sub.be.\nbar IN 30 A 192.0.2.1\n\tAAAA 2001:db8::1\n";
        let r = parse(z).unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].0, "be.");
        assert_eq!(r[0].1, 3600);
        assert_eq!(r[0].3, 6);
        let mut soa = b"\x02ns\x02be\x00\x01a\x01b\x00".to_vec();
        for v in [1u32, 7200, 180, 4 * 604800, 5] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(r[0].4, soa);
        assert_eq!(r[1].0, "be.");
        assert_eq!(r[1].4, b"\x03ns1\x02be\x00");
        assert_eq!(r[1].5, 5);
        assert_eq!(r[2].0, "foo.be.");
        assert_eq!(r[2].1, 60);
        assert_eq!(r[3].0, "bar.sub.be.");
        assert_eq!(r[3].1, 30);
        assert_eq!(r[3].4, vec![192, 0, 2, 1]);
        assert_eq!(r[4].0, "bar.sub.be.");
        assert_eq!(r[4].3, 28);
        // Blank owner after $TTL: TTL from $TTL.
        assert_eq!(r[4].1, 3600);
    }

    #[test]
    fn rdata_types() {
        let r = parse("$TTL 60\nx TXT \"a b\" c \"\\\"q\\065\"\nx MX 10 mail\nx SRV 1 2 53 t.example.\nx CAA 0 issue \"ca.example\"\nx DS 12345 13 2 ABCD EF01\nx DNSKEY 257 3 13 AAEC AwQ=\nx TYPE65534 \\# 3 010203\nx A \\# 4 c0000201\nx NSEC3PARAM 1 0 0 -\nx HINFO cpu os\nx CNAME y\n").unwrap();
        assert_eq!(r[0].4, b"\x03a b\x01c\x03\"qA");
        assert_eq!(r[1].4, b"\x00\x0a\x04mail\x02be\x00");
        assert_eq!(r[2].4, b"\x00\x01\x00\x02\x00\x35\x01t\x07example\x00");
        assert_eq!(r[3].4, b"\x00\x05issueca.example");
        assert_eq!(r[4].4, b"\x30\x39\x0d\x02\xab\xcd\xef\x01");
        assert_eq!(r[5].4, b"\x01\x01\x03\x0d\x00\x01\x02\x03\x04");
        assert_eq!(r[6].3, 65534);
        assert_eq!(r[6].4, b"\x01\x02\x03");
        assert_eq!(r[7].4, vec![192, 0, 2, 1]);
        assert_eq!(r[8].4, b"\x01\x00\x00\x00\x00");
        assert_eq!(r[9].4, b"\x03cpu\x02os");
        assert_eq!(r[10].4, b"\x01y\x02be\x00");
    }

    #[test]
    fn escapes_in_names() {
        let r = parse("$TTL 60\na\\.b NS c\\032d.\n\\065x NS x.\n").unwrap();
        assert_eq!(r[0].0, "a\\.b.be.");
        assert_eq!(r[0].4, b"\x03c d\x00");
        assert_eq!(r[1].0, "Ax.be.");
    }

    #[test]
    fn include_with_origin_and_errors_in_it() {
        let dir = std::env::temp_dir().join(format!("belfry-inc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inc.zone"), "a NS ns.example.\nb A 1.2.3\n").unwrap();
        std::fs::write(dir.join("ok.zone"), "a NS ns.example.\n").unwrap();
        std::fs::write(
            dir.join("main.zone"),
            "$TTL 60\n$INCLUDE ok.zone sub.be.\nz NS ns.example.\n$INCLUDE inc.zone\n",
        )
        .unwrap();
        std::fs::write(dir.join("loop.zone"), "$INCLUDE loop.zone\n").unwrap();
        let mut got = Vec::new();
        let e = parse_file(&dir.join("main.zone"), b"\x02be\x00", |r| {
            got.push(name_to_text(r.owner));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(got, vec!["a.sub.be.", "z.be.", "a.be."]);
        assert_eq!(e.line, 2);
        assert!(e.file.ends_with("inc.zone"), "{e}");
        assert!(e.message.contains("bad IPv4"), "{e}");
        let e = parse_file(&dir.join("loop.zone"), b"\x02be\x00", |_| Ok(())).unwrap_err();
        assert!(e.message.contains("loop"), "{e}");
        let e = parse_file(&dir.join("missing.zone"), b"\x02be\x00", |_| Ok(())).unwrap_err();
        assert!(e.message.contains("cannot open"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("$TTL 60\nok NS x.\nbad A 300.1.1.1\n");
        assert_eq!((e.line, e.message.contains("IPv4")), (3, true), "{e}");
        let e = err("$TTL 60\nx SOA a b (1 2\n3 4\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("parenthesis"), "{e}");
        let e = err("$TTL 60\nx TXT \"open\n");
        assert!(e.message.contains("unterminated"), "{e}");
        let e = err("x NS y.\n");
        assert!(e.message.contains("no TTL"), "{e}");
        let e = err("$TTL 60\nx FOO bar\n");
        assert!(e.message.contains("unknown record type 'FOO'"), "{e}");
        let e = err("$TTL 60\nx RRSIG A 13 1 60 1 1 1 be. AAAA\n");
        assert!(e.message.contains("signs the zone itself"), "{e}");
        let e = err("$TTL 60\nx NS a b\n");
        assert!(e.message.contains("unexpected 'b'"), "{e}");
        let e = err(&format!("$TTL 60\n{} NS x.\n", "a".repeat(64)));
        assert!(e.message.contains("63"), "{e}");
        let e = err("$TTL 60\nx MX 70000 y.\n");
        assert!(e.message.contains("bad number"), "{e}");
        let e = err("$TTL 60\nx 99999999999 NS y.\n");
        assert!(e.message.contains("TTL"), "{e}");
        let e = err("$TTL 60\nx DS 1 13 2 XYZ\n");
        assert!(e.message.contains("hex"), "{e}");
        let e = err("$TTL 60\nx A \\# 3 c0000201\n");
        assert!(e.message.contains("length"), "{e}");
        let e = err("$FOO x\n");
        assert!(e.message.contains("unsupported directive"), "{e}");
        let e = err("  NS x.\n");
        assert!(e.message.contains("previous owner"), "{e}");
    }

    #[test]
    fn ttl_units_and_type_names() {
        assert_eq!(parse_ttl(b"1h30m"), Some(5400));
        assert_eq!(parse_ttl(b"2D"), Some(172800));
        assert_eq!(parse_ttl(b"1x"), None);
        assert_eq!(rtype_from_str("aaaa"), Some(28));
        assert_eq!(rtype_from_str("TYPE300"), Some(300));
        assert_eq!(rtype_to_string(300), "TYPE300");
        assert_eq!(rtype_to_string(43), "DS");
    }

    #[test]
    fn fast_paths_take_and_refuse_what_the_general_ones_did() {
        // Hex read across tokens as one string, whatever the split.
        let r = parse("$TTL 60\nx DS 1 13 2 ABC DEF0123\nx ds 1 13 2 abcdef0123\n").unwrap();
        assert_eq!(r[0].4, r[1].4);
        assert_eq!(&r[0].4[4..], b"\xab\xcd\xef\x01\x23");
        let e = err("$TTL 60\nx DS 1 13 2 ABC DEF012\n");
        assert!(e.message.contains("bad digest hex 'ABCDEF012'"), "{e}");
        // Numbers are digits only.
        for bad in ["+5", "-1", "5x", "18446744073709551616"] {
            let e = err(&format!("$TTL 60\nx MX {bad} y.\n"));
            assert!(e.message.contains(&format!("bad number '{bad}'")), "{e}");
        }
        // Names without escapes: labels checked the same way.
        for (bad, why) in [
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a..", "empty label"),
        ] {
            let e = err(&format!("$TTL 60\nx NS {bad}\n"));
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        let long = format!("{}.", vec!["a".repeat(63); 4].join("."));
        let e = err(&format!("$TTL 60\nx NS {long}\n"));
        assert!(e.message.contains("longer than 255"), "{e}");
        let r = parse("$TTL 60\nx NS Mixed.Case\nx NS y.z.\n").unwrap();
        assert_eq!(r[0].4, b"\x05Mixed\x04Case\x02be\x00");
        assert_eq!(r[1].4, b"\x01y\x01z\x00");
        // Type and class mnemonics in any case, a class before or after the TTL.
        let r =
            parse("x 60 in ns y.\nx IN 60 Ds 1 13 2 00\nx aaaa ::1\nx In A 192.0.2.1\n").unwrap();
        assert_eq!(
            r.iter().map(|r| r.3).collect::<Vec<_>>(),
            vec![2, 43, 28, 1]
        );
        let e = err("$TTL 60\nx IN\n");
        assert!(e.message.contains("missing record type"), "{e}");
    }

    #[test]
    fn crlf_and_comments() {
        let r = parse("$TTL 60\r\n; comment\r\nx NS y. ; trailing\r\n\r\n").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].4, b"\x01y\x00");
    }
}
