//! TEMPORARY STAND-IN (replaced by the master-file parser).
use std::path::{Path, PathBuf};
pub struct RawRecord<'a> { pub owner: &'a [u8], pub ttl: u32, pub class: u16, pub rtype: u16, pub rdata: &'a [u8], pub file: &'a Path, pub line: usize }
pub struct ParseError { pub file: PathBuf, pub line: usize, pub message: String }
pub struct ParseStats { pub records: u64 }
pub fn parse_file(path: &Path, _origin: &[u8], _sink: impl FnMut(&RawRecord<'_>) -> Result<(), String>) -> Result<ParseStats, ParseError> {
    Err(ParseError { file: path.to_path_buf(), line: 0, message: "parser not yet available".into() })
}
pub fn rtype_to_string(t: u16) -> String { format!("TYPE{t}") }
