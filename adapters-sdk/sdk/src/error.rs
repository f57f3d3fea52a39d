//! Building classified [`AdapterError`]s, and classifying HTTP outcomes.

use crate::bindings::yiwang::adapter::http::SendError;
use crate::{AdapterError, Rejection, RetryableError};

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

/// Classify a transport-level HTTP status: `None` for 2xx (read the body),
/// retryable for 408/429/5xx (honouring Retry-After seconds), ambiguous never
/// (a status line means the ministry answered), permanent for other codes.
pub fn classify_status(status: u16, retry_after: Option<&str>) -> Option<AdapterError> {
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(AdapterError::Retryable(RetryableError {
            message: format!("ministry answered HTTP {status}"),
            retry_after_ms: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000)),
        })),
        _ => Some(permanent(format!("ministry answered HTTP {status}"))),
    }
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
