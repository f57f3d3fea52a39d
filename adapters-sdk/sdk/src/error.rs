//! Building classified [`AdapterError`]s, and classifying HTTP outcomes.

use crate::bindings::yiwang::adapter::http::SendError;
use crate::{AdapterError, Rejection, RetryableError};
use std::time::{Duration, SystemTime};
pub use yiwang_schema::http_status::{RetryAfter, StatusClass, status_class};

/// Nothing reached the ministry, or it asked to try later.
pub fn retryable(message: impl Into<String>) -> AdapterError {
    AdapterError::Retryable(RetryableError {
        message: message.into(),
        retry_after_ms: None,
    })
}

/// The ministry rejected the data; resending is useless.
pub fn permanent(message: impl Into<String>) -> AdapterError {
    AdapterError::Permanent(Rejection {
        field: None,
        code: None,
        message: message.into(),
    })
}

/// A rejection naming the unified field (JSON pointer) and the ministry's code.
pub fn permanent_field(
    field: impl Into<String>,
    code: Option<String>,
    message: impl Into<String>,
) -> AdapterError {
    AdapterError::Permanent(Rejection {
        field: Some(field.into()),
        code,
        message: message.into(),
    })
}

/// Sent, but no usable reply: the gateway must ask before resending.
pub fn ambiguous(message: impl Into<String>) -> AdapterError {
    AdapterError::Ambiguous(message.into())
}

impl From<SendError> for AdapterError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NotSent(m) => retryable(format!("not sent: {m}")),
            SendError::NoReply(m) => ambiguous(format!("sent, no reply: {m}")),
            SendError::ResponseTooLarge(n) => {
                ambiguous(format!("sent, reply over the size cap ({n} bytes)"))
            }
            SendError::ForbiddenDestination(u) => {
                permanent(format!("destination outside this network: {u}"))
            }
            SendError::InvalidRequest(m) => permanent(format!("invalid request: {m}")),
            SendError::RequestTooLarge(n) => {
                permanent(format!("request over the size cap ({n} bytes)"))
            }
        }
    }
}

/// Whether a request may have changed something at the ministry, which
/// decides what a lost or unreadable reply means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Login, query, change feed: asking again is harmless, so a lost reply
    /// is retryable.
    ReadOnly,
    /// Submit, withdraw, supplement: the ministry may have acted, so a lost
    /// reply is ambiguous.
    MayAct,
}

/// Classify a transport failure for a request with `effect` (the plain
/// `From<SendError>` assumes the request may have acted).
pub fn send_error(e: SendError, effect: Effect) -> AdapterError {
    match (e, effect) {
        (SendError::NoReply(m), Effect::ReadOnly) => retryable(format!("sent, no reply: {m}")),
        (SendError::ResponseTooLarge(n), Effect::ReadOnly) => {
            retryable(format!("reply over the size cap ({n} bytes)"))
        }
        (e, _) => AdapterError::from(e),
    }
}

/// Classify a transport-level HTTP status ([`status_class`], shared with the
/// gateway): `None` for 2xx (read the body), retryable for 408/425/429/5xx
/// (honouring Retry-After, in seconds or as an HTTP-date counted from the
/// host's clock), ambiguous never (a status line means the ministry
/// answered), permanent for other codes.
pub fn classify_status(status: u16, retry_after: Option<&str>) -> Option<AdapterError> {
    classify_status_at(status, retry_after, host_time)
}

/// [`classify_status`] with the clock given. `now` is called only for a
/// Retry-After in the HTTP-date form, so code that never meets one (and
/// native unit tests, which have no host) never reads the clock.
pub fn classify_status_at(
    status: u16,
    retry_after: Option<&str>,
    now: impl FnOnce() -> SystemTime,
) -> Option<AdapterError> {
    match status_class(status) {
        StatusClass::Success => None,
        StatusClass::Retryable => Some(AdapterError::Retryable(RetryableError {
            message: format!("ministry answered HTTP {status}"),
            retry_after_ms: retry_after.and_then(|v| retry_after_ms(v, now)),
        })),
        StatusClass::Permanent => Some(permanent(format!("ministry answered HTTP {status}"))),
    }
}

/// A `Retry-After` value (delay-seconds or an HTTP-date, [`RetryAfter::parse`], the parser
/// the gateway uses too) as milliseconds from `now`; `None` if it is neither. `now` is called
/// only for the HTTP-date form. The SDK's one reader of the header: [`classify_status`] and
/// [`crate::soap_reply`] both go through it.
pub fn retry_after_ms(value: &str, now: impl FnOnce() -> SystemTime) -> Option<u64> {
    let delay = match RetryAfter::parse(value)? {
        RetryAfter::Delay(delay) => delay,
        at @ RetryAfter::At(_) => at.delay_from(now()),
    };
    Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

/// The host's clock as a `SystemTime`.
pub(crate) fn host_time() -> SystemTime {
    let ms = u64::try_from(crate::bindings::yiwang::adapter::clock::now_millis()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert!(classify_status(200, None).is_none());
        match classify_status(503, Some("2")) {
            Some(AdapterError::Retryable(r)) => assert_eq!(r.retry_after_ms, Some(2000)),
            other => panic!("503 must be retryable, got {other:?}"),
        }
        assert!(matches!(
            classify_status(400, None),
            Some(AdapterError::Permanent(_))
        ));
        // RFC 8470: a 425 Too Early may be repeated.
        assert!(matches!(
            classify_status(425, None),
            Some(AdapterError::Retryable(_))
        ));
        // Seconds never read the clock (there is no host in a native test).
        let no_clock = || -> SystemTime { panic!("the clock was read") };
        match classify_status_at(429, Some("u"), no_clock) {
            Some(AdapterError::Retryable(r)) => assert_eq!(r.retry_after_ms, None),
            other => panic!("429 must be retryable, got {other:?}"),
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        match classify_status_at(503, Some("Wed, 21 Oct 2015 07:28:30 GMT"), || now) {
            Some(AdapterError::Retryable(r)) => assert_eq!(r.retry_after_ms, Some(30_000)),
            other => panic!("503 must be retryable, got {other:?}"),
        }
        // A date in the past is no wait at all; garbage is no hint.
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:27:00 GMT", || now),
            Some(0)
        );
        assert_eq!(retry_after_ms(" 7 ", no_clock), Some(7_000));
        assert_eq!(retry_after_ms("soon", no_clock), None);
        assert!(matches!(
            AdapterError::from(SendError::NoReply("reset".into())),
            AdapterError::Ambiguous(_)
        ));
        assert!(matches!(
            AdapterError::from(SendError::NotSent("refused".into())),
            AdapterError::Retryable(_)
        ));
        assert!(matches!(
            send_error(SendError::NoReply("reset".into()), Effect::ReadOnly),
            AdapterError::Retryable(_)
        ));
        assert!(matches!(
            send_error(SendError::NoReply("reset".into()), Effect::MayAct),
            AdapterError::Ambiguous(_)
        ));
    }
}
