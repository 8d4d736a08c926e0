//! TEMPORARY STAND-IN (replaced by the generator).
pub struct GenParams { pub origin: String, pub delegations: usize, pub seed: u64 }
pub struct GenStats { pub delegations: usize, pub secure: usize, pub with_glue: usize, pub records: usize }
pub fn write_zone(_p: &GenParams, _w: &mut impl std::io::Write) -> std::io::Result<GenStats> { Err(std::io::Error::other("not yet")) }
