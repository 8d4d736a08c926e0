//! SOA serial numbers: RFC 1982 serial arithmetic and the serial field of SOA RDATA.
//!
//! Owns the one definition of "newer serial" used by refresh checks, IXFR,
//! UPDATE (RFC 2136 §3.4.2.2) and the publisher, and the one place that knows
//! where the serial sits in SOA RDATA (RFC 1035 §3.3.13: after the two names,
//! first of the five 32-bit fields, so 20 bytes before the end). It does no I/O
//! and keeps no state.
//!
//! RFC 1982 §3.2: with 32-bit serials, `s1 > s2` when `s1 != s2` and the
//! difference `s1 - s2` (mod 2^32) is below 2^31. Exactly half-way apart
//! (difference 2^31) is undefined: both `serial_gt(a, b)` and `serial_gt(b, a)`
//! are false then. §3.1: a serial may only be increased by at most 2^31 - 1.

use std::cmp::Ordering;

/// Largest increment RFC 1982 §3.1 allows in one step.
pub const MAX_INCREMENT: u32 = (1 << 31) - 1;

/// Whether `a` is newer than `b` (RFC 1982 §3.2).
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// Compare two serials; `None` when they are exactly 2^31 apart (undefined in RFC 1982).
pub fn serial_cmp(a: u32, b: u32) -> Option<Ordering> {
    if a == b {
        Some(Ordering::Equal)
    } else if serial_gt(a, b) {
        Some(Ordering::Greater)
    } else if serial_gt(b, a) {
        Some(Ordering::Less)
    } else {
        None
    }
}

/// `serial + n` (RFC 1982 §3.1); `None` when `n` is larger than 2^31 - 1.
pub fn serial_add(serial: u32, n: u32) -> Option<u32> {
    (n <= MAX_INCREMENT).then(|| serial.wrapping_add(n))
}

/// The serial of SOA RDATA in uncompressed wire form, if the RDATA is well formed.
pub fn soa_serial(rdata: &[u8]) -> Option<u32> {
    let at = soa_fields_at(rdata)?;
    Some(u32::from_be_bytes(rdata.get(at..at + 4)?.try_into().ok()?))
}

/// The minimum field (negative caching TTL, RFC 2308) of SOA RDATA.
pub fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let at = soa_fields_at(rdata)?;
    Some(u32::from_be_bytes(
        rdata.get(at + 16..at + 20)?.try_into().ok()?,
    ))
}

/// Replace the serial of SOA RDATA in place; false if the RDATA is malformed.
pub fn set_soa_serial(rdata: &mut [u8], serial: u32) -> bool {
    match soa_fields_at(rdata) {
        Some(at) => {
            rdata[at..at + 4].copy_from_slice(&serial.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Offset of the five 32-bit fields, checking both names and the total length.
fn soa_fields_at(rdata: &[u8]) -> Option<usize> {
    let m = crate::name::wire_len(rdata).ok()?;
    let r = crate::name::wire_len(rdata.get(m..)?).ok()?;
    (m + r + 20 == rdata.len()).then_some(m + r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1982_examples() {
        assert!(serial_gt(1, 0));
        assert!(serial_gt(0, u32::MAX));
        assert!(serial_gt(44, 4_294_967_295));
        assert!(!serial_gt(5, 5));
        assert!(serial_gt(0x7FFF_FFFF, 0));
        // Exactly half-way apart: undefined both ways.
        assert!(!serial_gt(0x8000_0000, 0));
        assert!(!serial_gt(0, 0x8000_0000));
        assert_eq!(serial_cmp(0x8000_0000, 0), None);
        assert_eq!(serial_cmp(2, 1), Some(Ordering::Greater));
        assert_eq!(serial_cmp(u32::MAX, 1), Some(Ordering::Less));
        assert_eq!(serial_add(u32::MAX, 1), Some(0));
        assert_eq!(
            serial_add(7, MAX_INCREMENT),
            Some(7u32.wrapping_add(MAX_INCREMENT))
        );
        assert_eq!(serial_add(7, 1 << 31), None);
    }

    #[test]
    fn soa_fields() {
        let mut rd = b"\x02ns\x00\x02hm\x00".to_vec();
        for v in [2026_1124u32, 7200, 3600, 864000, 300] {
            rd.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(soa_serial(&rd), Some(2026_1124));
        assert_eq!(soa_minimum(&rd), Some(300));
        assert!(set_soa_serial(&mut rd, 9));
        assert_eq!(soa_serial(&rd), Some(9));
        assert_eq!(soa_serial(&rd[..rd.len() - 1]), None);
        assert_eq!(soa_serial(b"\xC0\x0c"), None);
    }

    proptest::proptest! {
        #[test]
        fn add_is_newer(s in proptest::prelude::any::<u32>(), n in 1u32..=MAX_INCREMENT) {
            let t = serial_add(s, n).unwrap();
            proptest::prop_assert!(serial_gt(t, s));
            proptest::prop_assert!(!serial_gt(s, t));
        }

        #[test]
        fn soa_serial_never_panics(rd in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = soa_serial(&rd);
            let _ = soa_minimum(&rd);
            let mut rd = rd;
            let _ = set_soa_serial(&mut rd, 1);
        }
    }
}
