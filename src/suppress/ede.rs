//! How long the Extended DNS Error text of suppressed answers may be.
//!
//! The EDE option (RFC 8914 §2: 4 bytes of option header, 2 of info code, the
//! text) rides in the OPT record of every suppressed answer. Too long a text
//! pushes those answers over what the client can take: over 512 bytes (an
//! EDNS client with the smallest buffer) or over `max_udp_payload` for DNSSEC
//! answers — and past 65,535 bytes the option cannot be written at all. This
//! module computes the worst case — the longest query name (255 bytes),
//! the zone's SOA in authority, and with DNSSEC its RRSIG, three NSEC3
//! records (closest encloser, next closer, wildcard; RFC 5155 §7.2.2) with the
//! longest type bitmap of window 0 and their RRSIGs at the ZSK's signature
//! length — and refuses a text that does not fit, at configuration check.

use crate::dnssec::Dnssec;
use crate::zone::Zone;

/// Longest text accepted before the zone is known (the option must fit a UDP answer at all).
pub const MAX_TEXT: usize = 400;

/// Checks that need no zone: printable text of at most [`MAX_TEXT`] bytes.
pub fn check_text_alone(text: &str) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    if text.len() > MAX_TEXT {
        return Err(format!(
            "{} bytes, more than the {MAX_TEXT} any answer could carry",
            text.len()
        ));
    }
    Ok(())
}

/// Bytes of a suppressed answer apart from the EDE text, in the worst case:
/// `(without DNSSEC, with DNSSEC)`.
pub fn worst_case_without_text(zone: &Zone, dnssec: Option<&Dnssec>) -> (usize, usize) {
    let origin = zone.origin().len();
    let header = 12;
    let question = crate::name::MAX_NAME_LEN + 4;
    // Owner compressed to a pointer, type, class, TTL, RDLENGTH: 2 + 10.
    let soa = 2 + 10 + zone.soa_rdata().len();
    let opt = 11;
    let ede_fixed = 4 + 2;
    let plain = header + question + soa + opt + ede_fixed;
    let Some(d) = dnssec else {
        return (plain, plain);
    };
    let sig_len = d
        .signer
        .zsks()
        .iter()
        .map(|k| k.sign(b"belfry ede check").map(|s| s.len()).unwrap_or(512))
        .max()
        .unwrap_or(512);
    // RRSIG RDATA: 18 fixed bytes, the signer's name uncompressed, the signature.
    let rrsig = 2 + 10 + 18 + origin + sig_len;
    let params = &d.signer.policy().nsec3;
    // NSEC3 owner: a 32-character base32hex label then a pointer to the origin.
    // RDATA: alg, flags, iterations (4), salt length + salt, hash length + 20, bitmap.
    let bitmap = 2 + 32;
    let nsec3 = (1 + 32 + 2) + 10 + 4 + 1 + params.salt.len() + 1 + 20 + bitmap;
    let signed = plain + rrsig + 3 * (nsec3 + rrsig);
    (plain, signed)
}

/// Refuse an EDE text that would push a suppressed answer over 512 bytes
/// (without DNSSEC) or over `max_udp_payload` (with DNSSEC).
pub fn check_fits(
    text: &str,
    zone: &Zone,
    dnssec: Option<&Dnssec>,
    max_udp_payload: u16,
) -> Result<(), String> {
    check_text_alone(text)?;
    let (plain, signed) = worst_case_without_text(zone, dnssec);
    let limit_plain = 512usize.saturating_sub(plain);
    let limit_signed = (max_udp_payload as usize).saturating_sub(signed);
    let fit = limit_plain.min(if dnssec.is_some() {
        limit_signed
    } else {
        usize::MAX
    });
    if text.len() > fit {
        return Err(format!(
            "[suppress] ede_text is {} bytes; a suppressed answer can then exceed {} bytes \
             (worst case: a 255-byte name{}); at most {fit} bytes fit",
            text.len(),
            if text.len() > limit_plain {
                512
            } else {
                max_udp_payload as usize
            },
            if dnssec.is_some() {
                ", with DNSSEC: SOA, three NSEC3 and their signatures"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_alone() {
        assert!(check_text_alone("suspended by the registry").is_ok());
        assert!(check_text_alone("a\nb").is_err());
        assert!(check_text_alone(&"x".repeat(MAX_TEXT + 1)).is_err());
    }
}
