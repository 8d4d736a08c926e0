//! TEMPORARY STAND-IN.
use crate::config::Config; use std::path::Path;
pub fn load_active(_c: &Config) -> Result<Vec<crate::dnssec::key::SigningKey>, String> { Err("not yet".into()) }
pub fn load_pkcs8_as_csk(_p: &Path) -> Result<crate::dnssec::key::SigningKey, String> { Err("not yet".into()) }
pub fn keygen(_z: &str, _a: &str, _r: &str, _d: &Path) -> Result<(), String> { Err("not yet".into()) }
pub fn import(_k: &Path, _d: &Path) -> Result<(), String> { Err("not yet".into()) }
pub fn list(_d: &Path) -> Result<(), String> { Err("not yet".into()) }
pub fn print_ds(_c: &Config, _d: &[u8]) -> Result<(), String> { Err("not yet".into()) }
