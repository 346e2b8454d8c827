//! Restore times: RFC 3339 (`2026-11-25T13:04:05.250Z`) or Unix seconds with an optional
//! fraction (`1764075845.25`; up to nanoseconds, as `date +%s.%N` prints them, cut to the
//! microsecond), to the microsecond. Parsed exactly, without floating point.

const US_PER_SEC: u64 = 1_000_000;

/// Unix microseconds from either accepted form.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid time '{s}': use RFC 3339 (2026-11-25T13:04:05.250Z) or Unix seconds (1764075845.25)")
    };
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !s.is_empty() {
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        if secs.is_empty() || frac.len() > 9 || frac.contains('.') {
            return Err(bad());
        }
        // Below the microsecond: cut, so a time names the microsecond it falls in.
        let frac = &frac[..frac.len().min(6)];
        let secs: u64 = secs.parse().map_err(|_| bad())?;
        let frac_us: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().map_err(|_| bad())?
        };
        return secs
            .checked_mul(US_PER_SEC)
            .and_then(|us| us.checked_add(frac_us))
            .ok_or_else(bad);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| bad())?;
    let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?;
    Ok(d.as_micros() as u64)
}

/// `2026-11-25T13:04:05.250000Z`.
pub fn format_time(us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_micros(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_to_the_microsecond() {
        assert_eq!(parse_time("1764075845.25").unwrap(), 1_764_075_845_250_000);
        assert_eq!(parse_time("1764075845").unwrap(), 1_764_075_845_000_000);
        assert_eq!(
            parse_time("1764075845.000001").unwrap(),
            1_764_075_845_000_001
        );
        assert_eq!(
            parse_time("1764075845.123456789").unwrap(),
            1_764_075_845_123_456
        );
        assert_eq!(
            parse_time("2025-11-25T13:04:05.250Z").unwrap(),
            1_764_075_845_250_000
        );
        assert_eq!(
            parse_time("2025-11-25T13:04:05.000007Z").unwrap(),
            1_764_075_845_000_007
        );
        assert_eq!(
            format_time(1_764_075_845_250_000),
            "2025-11-25T13:04:05.250000Z"
        );
        assert_eq!(
            parse_time(&format_time(1_764_075_845_123_456)).unwrap(),
            1_764_075_845_123_456
        );
        for bad in [
            "",
            "yesterday",
            "1.2.3",
            "12.1234567891",
            ".5",
            "2025-13-01T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
