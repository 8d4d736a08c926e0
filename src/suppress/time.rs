//! Times of the suppression list: parsed by `jiff`, kept as seconds since the epoch.
//!
//! Input is RFC 3339 (`2026-11-24T13:00:00Z`, `2026-11-24T14:00:00.5+01:00`):
//! offsets and fractions are accepted (fractions are cut to the second),
//! impossible dates (`2027-02-30`) and times before 1970 are refused. Durations
//! for `--expires` (`90s`, `30m`, `24h`, `14d`, `2w`) are checked for overflow
//! and must land within the years jiff can represent. Output is always UTC with
//! a `Z`, to the second.

use jiff::Timestamp;

/// Why a time or duration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// Not RFC 3339, or an impossible date or time.
    Syntax,
    /// Before 1970.
    BeforeEpoch,
    /// A duration that is not `<number><s|m|h|d|w>`.
    Duration,
    /// A duration so long the time overflows.
    Overflow,
}

impl std::fmt::Display for TimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeError::Syntax => {
                "not an RFC 3339 time with an offset, like 2026-11-24T13:00:00Z or \
                 2026-11-24T14:00:00+01:00 (or the date does not exist)"
            }
            TimeError::BeforeEpoch => "before 1970",
            TimeError::Duration => "not a duration like 30m, 24h, 14d or 2w",
            TimeError::Overflow => "the duration is too long",
        })
    }
}

impl std::error::Error for TimeError {}

/// Parse an RFC 3339 time into seconds since the epoch.
pub fn parse(s: &str) -> Result<u64, TimeError> {
    if s.len() > 64 {
        return Err(TimeError::Syntax);
    }
    let t: Timestamp = s.trim().parse().map_err(|_| TimeError::Syntax)?;
    u64::try_from(t.as_second()).map_err(|_| TimeError::BeforeEpoch)
}

/// Format seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(t: u64) -> String {
    let secs = i64::try_from(t).unwrap_or(i64::MAX);
    match Timestamp::from_second(secs) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => Timestamp::MAX.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

/// A time `now + duration` for a duration like `24h`, or an RFC 3339 time as it is.
pub fn expiry(s: &str, now: u64) -> Result<u64, TimeError> {
    if let Ok(t) = parse(s) {
        return Ok(t);
    }
    let s = s.trim();
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(TimeError::Duration)?;
    let (num, unit) = s.split_at(unit_at);
    if num.is_empty() {
        return Err(TimeError::Duration);
    }
    let mult: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(TimeError::Duration),
    };
    let n: u64 = num.parse().map_err(|_| TimeError::Overflow)?;
    let t = n
        .checked_mul(mult)
        .and_then(|d| now.checked_add(d))
        .ok_or(TimeError::Overflow)?;
    let max = u64::try_from(Timestamp::MAX.as_second()).unwrap_or(u64::MAX);
    if t > max {
        return Err(TimeError::Overflow);
    }
    Ok(t)
}

/// Seconds since the epoch now (wall clock).
pub fn now() -> u64 {
    Timestamp::now().as_second().try_into().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse("2026-11-24T13:00:00Z"), Ok(1795525200));
        assert_eq!(parse("2026-11-24T14:00:00+01:00"), Ok(1795525200));
        assert_eq!(parse("2026-11-24T13:00:00.999Z"), Ok(1795525200));
        assert_eq!(format(1795525200), "2026-11-24T13:00:00Z");
        for t in [0u64, 951782400, 4102444800, 1795525200 + 86399] {
            assert_eq!(parse(&format(t)), Ok(t));
        }
    }

    #[test]
    fn impossible_times_are_refused() {
        for s in [
            "2027-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24 13:00:00",
            "2026-11-24T13:00:00",
            "2026-11-24T25:00:00Z",
            "yesterday",
            "",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
        assert_eq!(parse("1969-12-31T23:59:59Z"), Err(TimeError::BeforeEpoch));
    }

    #[test]
    fn durations_are_checked_for_overflow() {
        assert_eq!(expiry("24h", 1000), Ok(1000 + 86400));
        assert_eq!(expiry("2w", 0), Ok(14 * 86400));
        assert_eq!(expiry("2026-11-24T13:00:00Z", 5), Ok(1795525200));
        assert_eq!(expiry("99999999999999999999d", 0), Err(TimeError::Overflow));
        assert_eq!(expiry("999999999999999d", 0), Err(TimeError::Overflow));
        assert_eq!(
            expiry(&format!("{}s", u64::MAX), 1),
            Err(TimeError::Overflow)
        );
        for s in ["h", "10", "10y", "-5h", "1.5h"] {
            assert!(expiry(s, 0).is_err(), "{s}");
        }
    }
}
