//! TEMPORARY STAND-IN.
pub fn nsec3_hash(_o: &[u8], _s: &[u8], _i: u16) -> [u8; 20] { [0; 20] }
pub fn base32hex_encode(_h: &[u8; 20]) -> [u8; 32] { [b'0'; 32] }
