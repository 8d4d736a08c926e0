//! RRSIG RDATA and the data to be signed (RFC 4034 §3.1, §3.1.8.1, §6).
//!
//! The caller gives the owner name in canonical (lowercase) form and the
//! RDATAs already canonical; this module builds the signed data in a reused
//! buffer, calls the key, and verifies the new signature against the public
//! key before handing it out (a malformed signature is never served).

use super::key::{verify_with_dnskey, SigningKey};

/// The RRSIG fields other than the signature.
#[derive(Clone, Copy, Debug)]
pub struct RrsigFields<'a> {
    /// Type covered.
    pub type_covered: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// Labels in the owner name (RFC 4034 §3.1.3).
    pub labels: u8,
    /// Original TTL.
    pub original_ttl: u32,
    /// Expiration, seconds since the epoch (serial arithmetic).
    pub expiration: u32,
    /// Inception.
    pub inception: u32,
    /// Key tag of the signing key.
    pub key_tag: u16,
    /// Signer's name (the zone apex), lowercase wire form, never compressed.
    pub signer: &'a [u8],
}

/// Label count for the RRSIG labels field: root and a leading `*` are not counted.
pub fn labels_count(owner: &[u8]) -> u8 {
    let n = crate::name::label_count(owner);
    let wild = owner.len() > 2 && owner[0] == 1 && owner[1] == b'*';
    (n - usize::from(wild)) as u8
}

fn put_fields(out: &mut Vec<u8>, f: &RrsigFields<'_>) {
    out.extend_from_slice(&f.type_covered.to_be_bytes());
    out.push(f.algorithm);
    out.push(f.labels);
    out.extend_from_slice(&f.original_ttl.to_be_bytes());
    out.extend_from_slice(&f.expiration.to_be_bytes());
    out.extend_from_slice(&f.inception.to_be_bytes());
    out.extend_from_slice(&f.key_tag.to_be_bytes());
    out.extend_from_slice(f.signer);
}

/// Sort canonical RDATAs (RFC 4034 §6.3) and drop duplicates.
pub fn sort_canonical(rdatas: &mut Vec<&[u8]>) {
    rdatas.sort();
    rdatas.dedup();
}

/// Build the signed data: RRSIG RDATA without signature, then each RR in canonical form.
pub fn signed_data(
    out: &mut Vec<u8>,
    f: &RrsigFields<'_>,
    owner: &[u8],
    class: u16,
    rdatas: &[&[u8]],
) {
    out.clear();
    put_fields(out, f);
    for r in rdatas {
        out.extend_from_slice(owner);
        out.extend_from_slice(&f.type_covered.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&f.original_ttl.to_be_bytes());
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(r);
    }
}

/// Sign an RRset and return the complete RRSIG RDATA, verified against the key first.
pub fn sign_rrset(
    key: &SigningKey,
    f: &RrsigFields<'_>,
    owner: &[u8],
    class: u16,
    rdatas: &[&[u8]],
    scratch: &mut Vec<u8>,
) -> Result<Vec<u8>, String> {
    sign_rrset_against(key, key.dnskey_rdata(), f, owner, class, rdatas, scratch)
}

/// Sign an RRset and return the complete RRSIG RDATA, verified first against
/// `dnskey` (the DNSKEY RDATA as served) — a signature a validator would reject
/// is never handed out.
pub fn sign_rrset_against(
    key: &SigningKey,
    dnskey: &[u8],
    f: &RrsigFields<'_>,
    owner: &[u8],
    class: u16,
    rdatas: &[&[u8]],
    scratch: &mut Vec<u8>,
) -> Result<Vec<u8>, String> {
    signed_data(scratch, f, owner, class, rdatas);
    let sig = key.sign(scratch).map_err(|e| e.to_string())?;
    if super::key::key_tag(dnskey) != f.key_tag
        || dnskey.get(3) != Some(&f.algorithm)
        || !verify_with_dnskey(dnskey, scratch, &sig)
    {
        return Err(format!(
            "a new signature by key {} did not verify against the DNSKEY served; it was not used",
            key.key_tag()
        ));
    }
    let mut rd = Vec::with_capacity(18 + f.signer.len() + sig.len());
    put_fields(&mut rd, f);
    rd.extend_from_slice(&sig);
    Ok(rd)
}

/// Verify RRSIG RDATA over an RRset with a DNSKEY.
pub fn verify_rrsig(
    dnskey: &[u8],
    rrsig: &[u8],
    owner: &[u8],
    class: u16,
    rdatas: &[&[u8]],
) -> bool {
    if rrsig.len() < 19 {
        return false;
    }
    let Ok(slen) = crate::name::wire_len(&rrsig[18..]) else {
        return false;
    };
    let f = RrsigFields {
        type_covered: u16::from_be_bytes([rrsig[0], rrsig[1]]),
        algorithm: rrsig[2],
        labels: rrsig[3],
        original_ttl: u32::from_be_bytes([rrsig[4], rrsig[5], rrsig[6], rrsig[7]]),
        expiration: u32::from_be_bytes([rrsig[8], rrsig[9], rrsig[10], rrsig[11]]),
        inception: u32::from_be_bytes([rrsig[12], rrsig[13], rrsig[14], rrsig[15]]),
        key_tag: u16::from_be_bytes([rrsig[16], rrsig[17]]),
        signer: &rrsig[18..18 + slen],
    };
    let mut data = Vec::new();
    let mut sorted = rdatas.to_vec();
    sort_canonical(&mut sorted);
    signed_data(&mut data, &f, owner, class, &sorted);
    verify_with_dnskey(dnskey, &data, &rrsig[18 + slen..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::key::{generate, Algorithm, KeyRole};

    #[test]
    fn sign_then_verify() {
        let der = generate(Algorithm::EcdsaP256Sha256).unwrap();
        let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Zsk, &der).unwrap();
        let owner = b"\x03foo\x02be\x00";
        let f = RrsigFields {
            type_covered: 43,
            algorithm: 13,
            labels: labels_count(owner),
            original_ttl: 3600,
            expiration: 2000000000,
            inception: 1700000000,
            key_tag: k.key_tag(),
            signer: b"\x02be\x00",
        };
        let rds: [&[u8]; 2] = [b"\x00\x01\x0d\x02abc", b"\x00\x00\x0d\x02abc"];
        let mut scratch = Vec::new();
        let mut sorted = rds.to_vec();
        sort_canonical(&mut sorted);
        let rrsig = sign_rrset(&k, &f, owner, 1, &sorted, &mut scratch).unwrap();
        assert!(verify_rrsig(k.dnskey_rdata(), &rrsig, owner, 1, &rds));
        assert!(!verify_rrsig(
            k.dnskey_rdata(),
            &rrsig,
            b"\x03bar\x02be\x00",
            1,
            &rds
        ));
        assert_eq!(labels_count(b"\x01*\x02be\x00"), 1);
        assert_eq!(labels_count(b"\x00"), 0);
    }
}
