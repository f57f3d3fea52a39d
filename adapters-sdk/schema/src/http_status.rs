//! What an HTTP answer means for a retry: the class of a status code and the
//! delay a `Retry-After` header asks for. One home, read by the gateway (its
//! webhook sender and outbound replies) and by the adapter SDK, so a ministry
//! and a subscriber answering the same status are treated the same.
//!
//! Pure: the caller passes `now` (the gateway its clock, an adapter the host's).
//!
//! # Status classes
//!
//! | status | class | why |
//! |---|---|---|
//! | 2xx | [`StatusClass::Success`] | |
//! | 408 Request Timeout | [`StatusClass::Retryable`] | the server gave up waiting for the request (RFC 9110 §15.5.9) |
//! | 425 Too Early | [`StatusClass::Retryable`] | the server would not risk a replay of early data; RFC 8470 §5.2 says the client *can* repeat the request, and it will be accepted once the handshake is complete |
//! | 429 Too Many Requests | [`StatusClass::Retryable`] | the server asks to slow down (RFC 6585 §4), usually with `Retry-After` |
//! | 5xx | [`StatusClass::Retryable`] | the server failed or is unavailable; it may recover |
//! | anything else | [`StatusClass::Permanent`] | a 4xx says the request is wrong and will be wrong again; a 1xx or 3xx as final answer is not followed (the gateway sends only to configured endpoints), so the same request meets it again; a code outside 100–599 is a broken peer |

use std::time::{Duration, SystemTime};

/// What to do about an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 2xx: the request was received and accepted; read the body.
    Success,
    /// The server asked to try again later (408, 425, 429, 5xx).
    Retryable,
    /// Sending the same request again will get the same answer.
    Permanent,
}

/// The class of an HTTP status code (see the module table).
pub fn status_class(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        408 | 425 | 429 | 500..=599 => StatusClass::Retryable,
        _ => StatusClass::Permanent,
    }
}

/// A parsed `Retry-After` value (RFC 9110 §10.2.3): a delay in seconds, or
/// an instant as an HTTP-date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `delay-seconds`: wait this long from when the answer came.
    Delay(Duration),
    /// `HTTP-date`: wait until this instant.
    At(SystemTime),
}

impl RetryAfter {
    /// Parses a header value; `None` for anything that is neither form (a
    /// negative or fractional number, a date in another format, a number too
    /// large for 64 bits). Surrounding whitespace is ignored.
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return value
                .parse::<u64>()
                .ok()
                .map(|s| RetryAfter::Delay(Duration::from_secs(s)));
        }
        httpdate::parse_http_date(value).ok().map(RetryAfter::At)
    }

    /// The delay asked for, counted from `now`; zero for a date already past.
    pub fn delay_from(self, now: SystemTime) -> Duration {
        match self {
            RetryAfter::Delay(delay) => delay,
            RetryAfter::At(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }
}

/// The delay a `Retry-After` header value asks for, counted from `now`:
/// [`RetryAfter::parse`] then [`RetryAfter::delay_from`].
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    RetryAfter::parse(value).map(|r| r.delay_from(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wed, 21 Oct 2015 07:28:00 GMT.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn statuses_are_classified() {
        let cases = [
            (200, StatusClass::Success),
            (204, StatusClass::Success),
            (299, StatusClass::Success),
            (100, StatusClass::Permanent),
            (301, StatusClass::Permanent),
            (304, StatusClass::Permanent),
            (400, StatusClass::Permanent),
            (401, StatusClass::Permanent),
            (404, StatusClass::Permanent),
            (409, StatusClass::Permanent),
            (422, StatusClass::Permanent),
            (408, StatusClass::Retryable),
            (425, StatusClass::Retryable),
            (429, StatusClass::Retryable),
            (500, StatusClass::Retryable),
            (503, StatusClass::Retryable),
            (599, StatusClass::Retryable),
            (600, StatusClass::Permanent),
            (0, StatusClass::Permanent),
        ];
        for (status, class) in cases {
            assert_eq!(status_class(status), class, "{status}");
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(retry_after("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            RetryAfter::parse("5"),
            Some(RetryAfter::Delay(Duration::from_secs(5)))
        );
        for bad in [
            "",
            " ",
            "-1",
            "+5",
            "1.5",
            "5s",
            "soon",
            "99999999999999999999999",
        ] {
            assert_eq!(retry_after(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_as_an_http_date_counts_from_now() {
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms RFC 9110 still requires recipients to accept.
        assert_eq!(
            retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now()),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Wed Oct 21 07:28:10 2015", now()),
            Some(Duration::from_secs(10))
        );
        // A date already past: retry at once.
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("2015-10-21T07:28:30Z", now()), None);
    }
}
