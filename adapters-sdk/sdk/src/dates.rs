//! Ministry date formats, all in Beijing time (UTC+08:00): formatting converts to +08:00 first, parsing reads zone-less values as +08:00.
//!
//! There is no clock here: adapters receive "now" from the host and pass values in.

use std::fmt;

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc,
};
use thiserror::Error;

pub use yiwang_schema::BEIJING;

/// Beijing's offset from UTC in seconds ([`BEIJING`]'s, whose one home is `yiwang-schema`).
pub const BEIJING_OFFSET_SECS: i32 = BEIJING.local_minus_utc();

/// The UTC+08:00 offset (China Standard Time) every ministry timestamp is written in.
///
/// ```
/// assert_eq!(yiwang_adapter_sdk::dates::beijing().local_minus_utc(), 8 * 3600);
/// ```
pub const fn beijing() -> FixedOffset {
    BEIJING
}

/// A date format seen on ministry networks. All are Beijing time with no zone written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinistryDateFormat {
    /// `yyyy-MM-dd HH:mm:ss`, e.g. `2024-03-01 09:30:00`. Parsing also accepts a fractional
    /// second (`2024-03-01 09:30:00.0`, as Java's `Timestamp.toString()` writes it).
    DateTime,
    /// `yyyyMMddHHmmss`, e.g. `20240301093000`.
    Compact,
    /// `yyyy-MM-dd`, e.g. `2024-03-01`; parses to midnight Beijing time.
    Date,
    /// Milliseconds since the Unix epoch, e.g. `1709256600000` (zone-free by nature).
    EpochMillis,
}

impl MinistryDateFormat {
    /// Every format, in the order [`parse_any`] tries them.
    pub const ALL: [MinistryDateFormat; 4] = [
        MinistryDateFormat::DateTime,
        MinistryDateFormat::Compact,
        MinistryDateFormat::Date,
        MinistryDateFormat::EpochMillis,
    ];

    /// The pattern in the notation ministry interface documents use (Java's).
    pub fn pattern(self) -> &'static str {
        match self {
            MinistryDateFormat::DateTime => "yyyy-MM-dd HH:mm:ss",
            MinistryDateFormat::Compact => "yyyyMMddHHmmss",
            MinistryDateFormat::Date => "yyyy-MM-dd",
            MinistryDateFormat::EpochMillis => "epoch milliseconds",
        }
    }
}

impl fmt::Display for MinistryDateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pattern())
    }
}

/// Errors from parsing ministry dates.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DateError {
    /// The value does not match the expected format, or names an impossible date/time.
    #[error("{input:?} is not a valid `{format}` date: {reason}")]
    Invalid {
        /// The value as received.
        input: String,
        /// The format it was parsed as.
        format: MinistryDateFormat,
        /// What was wrong.
        reason: String,
    },
    /// [`parse_any`] found no format that fits.
    #[error(
        "{input:?} matches no ministry date format (tried yyyy-MM-dd HH:mm:ss, yyyyMMddHHmmss, yyyy-MM-dd, epoch milliseconds, RFC 3339)"
    )]
    Unrecognized {
        /// The value as received.
        input: String,
    },
}

/// Formats `dt` in `fmt`, after converting it to Beijing time.
///
/// ```
/// use chrono::DateTime;
/// use yiwang_adapter_sdk::dates::{format, MinistryDateFormat};
/// let utc = DateTime::parse_from_rfc3339("2024-03-01T01:30:00Z").unwrap();
/// assert_eq!(format(&utc, MinistryDateFormat::DateTime), "2024-03-01 09:30:00");
/// assert_eq!(format(&utc, MinistryDateFormat::Compact), "20240301093000");
/// ```
pub fn format(dt: &DateTime<FixedOffset>, fmt: MinistryDateFormat) -> String {
    let local = dt.with_timezone(&BEIJING);
    match fmt {
        MinistryDateFormat::DateTime => local.format("%Y-%m-%d %H:%M:%S").to_string(),
        MinistryDateFormat::Compact => local.format("%Y%m%d%H%M%S").to_string(),
        MinistryDateFormat::Date => local.format("%Y-%m-%d").to_string(),
        MinistryDateFormat::EpochMillis => local.timestamp_millis().to_string(),
    }
}

/// `dt` in UTC with a `Z`, to the second: `2026-12-07T02:00:00Z`. The form WS-Security's
/// `wsu:Created`, many signature schemes and ISO 8601 APIs want (never `+00:00`).
///
/// ```
/// use chrono::DateTime;
/// use yiwang_adapter_sdk::dates::utc_z;
/// let t = DateTime::parse_from_rfc3339("2026-12-07T10:00:00.250+08:00").unwrap();
/// assert_eq!(utc_z(&t), "2026-12-07T02:00:00Z");
/// ```
pub fn utc_z<Tz: TimeZone>(dt: &DateTime<Tz>) -> String {
    dt.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// [`utc_z`] with milliseconds: `2026-12-07T02:00:00.250Z`.
pub fn utc_z_millis<Tz: TimeZone>(dt: &DateTime<Tz>) -> String {
    dt.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses `s` (surrounding whitespace ignored: fixed-width files pad) in `fmt`; the zone-less
/// value is read as Beijing time. The result carries the +08:00 offset.
///
/// ```
/// use yiwang_adapter_sdk::dates::{parse, MinistryDateFormat};
/// let t = parse("2024-03-01 09:30:00", MinistryDateFormat::DateTime).unwrap();
/// assert_eq!(t.to_rfc3339(), "2024-03-01T09:30:00+08:00");
/// ```
pub fn parse(s: &str, fmt: MinistryDateFormat) -> Result<DateTime<FixedOffset>, DateError> {
    let value = s.trim();
    let invalid = |reason: String| DateError::Invalid {
        input: s.to_owned(),
        format: fmt,
        reason,
    };
    let naive = match fmt {
        MinistryDateFormat::DateTime => {
            if value.len() < 19 {
                return Err(invalid("expected yyyy-MM-dd HH:mm:ss".to_owned()));
            }
            NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|e| invalid(e.to_string()))?
        }
        MinistryDateFormat::Compact => {
            if value.len() != 14 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "expected exactly 14 digits yyyyMMddHHmmss".to_owned(),
                ));
            }
            NaiveDateTime::parse_from_str(value, "%Y%m%d%H%M%S")
                .map_err(|e| invalid(e.to_string()))?
        }
        MinistryDateFormat::Date => {
            if value.len() != 10 {
                return Err(invalid("expected yyyy-MM-dd".to_owned()));
            }
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|e| invalid(e.to_string()))?
                .and_time(NaiveTime::MIN)
        }
        MinistryDateFormat::EpochMillis => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "expected an integer number of milliseconds".to_owned(),
                ));
            }
            let millis: i64 = value
                .parse()
                .map_err(|e: std::num::ParseIntError| invalid(e.to_string()))?;
            let utc = DateTime::from_timestamp_millis(millis)
                .ok_or_else(|| invalid("out of the representable range".to_owned()))?;
            return Ok(utc.with_timezone(&BEIJING));
        }
    };
    BEIJING
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| invalid("out of the representable range".to_owned()))
}

/// Parses `s` in whichever ministry format fits, or RFC 3339 (`2024-03-01T09:30:00+08:00`).
///
/// All-digit input of 14 characters is `yyyyMMddHHmmss`; any other all-digit input is epoch
/// milliseconds (14-digit epoch milliseconds would be after the year 2286). An RFC 3339 value
/// keeps its instant and is returned in +08:00 like the rest.
///
/// ```
/// use yiwang_adapter_sdk::dates::parse_any;
/// for s in ["2024-03-01 09:30:00", "20240301093000", "1709256600000", "2024-03-01T01:30:00Z"] {
///     assert_eq!(parse_any(s).unwrap().to_rfc3339(), "2024-03-01T09:30:00+08:00");
/// }
/// ```
pub fn parse_any(s: &str) -> Result<DateTime<FixedOffset>, DateError> {
    let value = s.trim();
    let all_digits = !value.is_empty()
        && value
            .strip_prefix('-')
            .unwrap_or(value)
            .bytes()
            .all(|b| b.is_ascii_digit());
    let attempt = if all_digits {
        if value.len() == 14 {
            parse(value, MinistryDateFormat::Compact)
        } else {
            parse(value, MinistryDateFormat::EpochMillis)
        }
    } else if value.len() == 10 {
        parse(value, MinistryDateFormat::Date)
    } else if value.as_bytes().get(10) == Some(&b' ') {
        parse(value, MinistryDateFormat::DateTime)
    } else {
        DateTime::parse_from_rfc3339(value)
            .map(|dt| dt.with_timezone(&BEIJING))
            .map_err(|e| DateError::Invalid {
                input: s.to_owned(),
                format: MinistryDateFormat::DateTime,
                reason: e.to_string(),
            })
    };
    attempt.map_err(|_| DateError::Unrecognized {
        input: s.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("valid RFC 3339 in test")
    }

    #[test]
    fn beijing_is_plus_eight() {
        assert_eq!(beijing().local_minus_utc(), 28_800);
        assert_eq!(beijing().to_string(), "+08:00");
    }

    #[test]
    fn formats() {
        // 2024-03-01 01:30:00 UTC = 09:30 Beijing; 20:00 UTC on Feb 29 is already Mar 1 in Beijing.
        let cases = [
            (
                "2024-03-01T01:30:00Z",
                MinistryDateFormat::DateTime,
                "2024-03-01 09:30:00",
            ),
            (
                "2024-03-01T01:30:00Z",
                MinistryDateFormat::Compact,
                "20240301093000",
            ),
            (
                "2024-03-01T01:30:00Z",
                MinistryDateFormat::Date,
                "2024-03-01",
            ),
            (
                "2024-03-01T01:30:00Z",
                MinistryDateFormat::EpochMillis,
                "1709256600000",
            ),
            (
                "2024-02-29T20:00:00Z",
                MinistryDateFormat::Date,
                "2024-03-01",
            ),
            (
                "2024-02-29T20:00:00-05:00",
                MinistryDateFormat::DateTime,
                "2024-03-01 09:00:00",
            ),
            (
                "2024-03-01T09:30:00.999+08:00",
                MinistryDateFormat::DateTime,
                "2024-03-01 09:30:00",
            ),
            (
                "2024-03-01T09:30:00.123+08:00",
                MinistryDateFormat::EpochMillis,
                "1709256600123",
            ),
        ];
        for (input, fmt, want) in cases {
            assert_eq!(format(&rfc(input), fmt), want, "{input} as {fmt}");
        }
    }

    #[test]
    fn utc_z_converts_to_utc_and_writes_z() {
        let t = rfc("2026-12-07T07:59:59.999+08:00");
        assert_eq!(utc_z(&t), "2026-12-06T23:59:59Z", "the day rolls back");
        assert_eq!(utc_z_millis(&t), "2026-12-06T23:59:59.999Z");
        assert_eq!(utc_z(&rfc("2026-12-07T00:00:00Z")), "2026-12-07T00:00:00Z");
    }

    #[test]
    fn parses() {
        let cases = [
            (
                "2024-03-01 09:30:00",
                MinistryDateFormat::DateTime,
                "2024-03-01T09:30:00+08:00",
            ),
            (
                " 2024-03-01 09:30:00 ",
                MinistryDateFormat::DateTime,
                "2024-03-01T09:30:00+08:00",
            ),
            (
                "2024-03-01 09:30:00.0",
                MinistryDateFormat::DateTime,
                "2024-03-01T09:30:00+08:00",
            ),
            (
                "20240301093000",
                MinistryDateFormat::Compact,
                "2024-03-01T09:30:00+08:00",
            ),
            (
                "2024-03-01",
                MinistryDateFormat::Date,
                "2024-03-01T00:00:00+08:00",
            ),
            (
                "1709256600000",
                MinistryDateFormat::EpochMillis,
                "2024-03-01T09:30:00+08:00",
            ),
            (
                "0",
                MinistryDateFormat::EpochMillis,
                "1970-01-01T08:00:00+08:00",
            ),
        ];
        for (input, fmt, want) in cases {
            let got = parse(input, fmt).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.to_rfc3339(), want, "{input:?}");
            assert_eq!(got.offset(), &beijing());
        }
    }

    #[test]
    fn zone_less_means_beijing() {
        let got = parse("2024-03-01 09:30:00", MinistryDateFormat::DateTime).expect("valid");
        assert_eq!(
            got,
            rfc("2024-03-01T01:30:00Z"),
            "same instant as 01:30 UTC"
        );
    }

    #[test]
    fn round_trip_each_format() {
        let t = rfc("2023-12-31T23:59:59+08:00");
        for fmt in [
            MinistryDateFormat::DateTime,
            MinistryDateFormat::Compact,
            MinistryDateFormat::EpochMillis,
        ] {
            assert_eq!(
                parse(&format(&t, fmt), fmt).expect("round trip"),
                t,
                "{fmt}"
            );
        }
    }

    #[test]
    fn rejects() {
        let cases = [
            ("2024-02-30 09:30:00", MinistryDateFormat::DateTime),
            ("2024-03-01 25:00:00", MinistryDateFormat::DateTime),
            ("2024-03-01T09:30:00", MinistryDateFormat::DateTime),
            ("2024-03-01", MinistryDateFormat::DateTime),
            ("2024030109300", MinistryDateFormat::Compact),
            ("2024-03-01", MinistryDateFormat::Compact),
            ("20241301093000", MinistryDateFormat::Compact),
            ("2024-3-1", MinistryDateFormat::Date),
            ("2023-02-29", MinistryDateFormat::Date),
            ("17092566OO000", MinistryDateFormat::EpochMillis),
            ("", MinistryDateFormat::EpochMillis),
            ("99999999999999999999", MinistryDateFormat::EpochMillis),
        ];
        for (input, fmt) in cases {
            match parse(input, fmt) {
                Err(DateError::Invalid {
                    input: got, format, ..
                }) => {
                    assert_eq!((got.as_str(), format), (input, fmt));
                }
                other => panic!("{input:?} as {fmt}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_any_cases() {
        let want = "2024-03-01T09:30:00+08:00";
        for input in [
            "2024-03-01 09:30:00",
            "2024-03-01 09:30:00.0",
            "20240301093000",
            "1709256600000",
            "2024-03-01T09:30:00+08:00",
            "2024-03-01T01:30:00Z",
        ] {
            assert_eq!(parse_any(input).expect(input).to_rfc3339(), want, "{input}");
        }
        assert_eq!(
            parse_any("2024-03-01").expect("date").to_rfc3339(),
            "2024-03-01T00:00:00+08:00"
        );
        for bad in [
            "",
            "yesterday",
            "2024/03/01",
            "2024-02-30 00:00:00",
            "2024-03-01T09:30:00",
        ] {
            assert_eq!(
                parse_any(bad),
                Err(DateError::Unrecognized {
                    input: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
    }
}
