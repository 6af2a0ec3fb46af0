//! Time: Unix microseconds inside the server, Unix milliseconds on the wire. Every time taken
//! from a user is bounded to [`MIN_US`, `MAX_US`] so arithmetic on it cannot overflow.

/// Earliest accepted time: 1970-01-01T00:00:00Z.
pub const MIN_US: i64 = 0;
/// Latest accepted time: 9999-12-31T23:59:59Z.
pub const MAX_US: i64 = 253_402_300_799_000_000;

/// Unix µs → ms (floor).
pub fn ms(us: i64) -> i64 {
    us.div_euclid(1000)
}

/// Parses an RFC 3339 time or Unix milliseconds into Unix µs, within
/// [`MIN_US`, `MAX_US`]; the error says what is accepted.
pub fn parse_time(t: &str) -> Result<i64, String> {
    let t = t.trim();
    let us = if let Ok(ms) = t.parse::<i64>() {
        ms.checked_mul(1000)
    } else {
        Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_micros())
                .map_err(|_| {
                    format!(
                        "`{t}` is not an RFC 3339 time (like 2026-11-29T10:00:00Z) nor Unix milliseconds"
                    )
                })?,
        )
    };
    match us {
        Some(us) if (MIN_US..=MAX_US).contains(&us) => Ok(us),
        _ => Err(format!(
            "`{t}` is out of range: times must lie between 1970-01-01 and 9999-12-31"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_stay_in_range() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000));
        for bad in ["-9223372036854775808", "4700000000000000", "-1", "soon"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(ms(-1), -1);
        assert_eq!(ms(1999), 1);
    }
}
