//! Beijing time (UTC+08:00) and the wire date formats the simulated networks speak.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

/// Every simulated network runs on Beijing time and writes no zone on the wire.
pub(crate) use yiwang_schema::BEIJING;

pub(crate) fn now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&BEIJING)
}

/// `yyyy-MM-dd HH:mm:ss`
pub(crate) fn dashed(at: &DateTime<FixedOffset>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `yyyyMMddHHmmss`
pub(crate) fn compact(at: &DateTime<FixedOffset>) -> String {
    at.format("%Y%m%d%H%M%S").to_string()
}

/// `yyyyMMdd`
pub(crate) fn day(at: &DateTime<FixedOffset>) -> String {
    at.format("%Y%m%d").to_string()
}

/// Strict `yyyy-MM-dd HH:mm:ss`: chrono alone would accept unpadded fields.
pub(crate) fn parse_dashed(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()
}

/// Strict `yyyyMMddHHmmss`.
pub(crate) fn parse_compact(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 14 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_is_strict() {
        assert!(parse_dashed("2024-03-05 09:07:00").is_some());
        assert!(parse_dashed("2024-3-5 09:07:00").is_none());
        assert!(parse_dashed("2024-02-30 09:07:00").is_none());
        assert!(parse_dashed("2024-03-05T09:07:00").is_none());
        assert!(parse_dashed("20240305090700").is_none());
    }

    #[test]
    fn compact_is_strict() {
        assert!(parse_compact("20240305090700").is_some());
        assert!(parse_compact("2024030509070").is_none());
        assert!(parse_compact("20241305090700").is_none());
        assert!(parse_compact("2024-03-05 09:07:00").is_none());
    }

    #[test]
    fn formats_are_beijing_wall_clock() {
        let at = DateTime::parse_from_rfc3339("2024-03-04T16:05:06Z")
            .map(|t| t.with_timezone(&BEIJING))
            .ok();
        let at = at.as_ref();
        assert_eq!(at.map(dashed).as_deref(), Some("2024-03-05 00:05:06"));
        assert_eq!(at.map(compact).as_deref(), Some("20240305000506"));
        assert_eq!(at.map(day).as_deref(), Some("20240305"));
    }
}
