//! TEMPORARY STAND-IN (replaced by the key module).
#[derive(Clone, Copy, Debug)] pub enum Algorithm { RsaSha256 = 8, EcdsaP256Sha256 = 13, Ed25519 = 15 }
impl Algorithm { pub fn number(self) -> u8 { self as u8 } }
#[derive(Clone)] pub struct SigningKey;
impl SigningKey { pub fn flags(&self) -> u16 { 257 } pub fn dnskey_rdata(&self) -> &[u8] { &[] } pub fn algorithm(&self) -> Algorithm { Algorithm::EcdsaP256Sha256 } pub fn key_tag(&self) -> u16 { 0 } }
