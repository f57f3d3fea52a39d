//! One notice to a subscriber: POSTed as JSON with an `Idempotency-Key`
//! header (receivers drop a resend after a crash), over the subscriber's own
//! mTLS client. The twin of [`super::call`] for destinations that have no
//! adapter.

use super::outcome::{Failure, FailureKind, Outcome};
use super::{Delivery, Subscriber};
use crate::runtime::ErrorClass;
use crate::store::{Job, JobKind};
use crate::transport::{OutboundRequest, OutboundResponse, TransportError};
use std::time::Duration;
use yiwang_schema::http_status::StatusClass;

/// POST one notice.
pub(crate) async fn send(delivery: &Delivery, sub: &Subscriber, job: &Job) -> Outcome {
    let JobKind::Notify { body } = &job.kind else {
        return Outcome::permanent(FailureKind::Misrouted, "only notices go to subscribers");
    };
    let uri = match sub.url.parse::<http::Uri>() {
        Ok(u) => u,
        Err(e) => {
            let message = format!("subscriber `{}`: url: {e}", sub.name);
            return Outcome::permanent(FailureKind::BadUrl, message);
        }
    };
    let mut payload = body.clone();
    payload["notice_id"] = serde_json::json!(job.idempotency_key);
    let bytes = serde_json::to_vec(&payload).unwrap_or_default();
    let request = OutboundRequest {
        network: format!("subscriber:{}", sub.name),
        method: http::Method::POST,
        uri,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("idempotency-key".into(), job.idempotency_key.clone()),
            (
                "user-agent".into(),
                concat!("yiwang/", env!("CARGO_PKG_VERSION")).into(),
            ),
        ],
        body: bytes.into(),
        timeout: Duration::from_millis(sub.timeout_ms),
        max_response_bytes: 64 << 10,
    };
    match delivery.webhook.send(request).await {
        Ok(resp) if (200..300).contains(&resp.status) => Outcome::Delivered {
            network_case_number: None,
            events: Vec::new(),
        },
        Ok(resp) => refused(sub, &resp),
        // A notice carries its idempotency key: a lost reply is resent.
        Err(e) => Outcome::Failed(Failure {
            class: ErrorClass::Retryable,
            kind: match e {
                TransportError::NotSent(_) => FailureKind::NotSent,
                TransportError::NoReply(_) => FailureKind::NoReply,
                TransportError::ResponseTooLarge(_) => FailureKind::ReplyTooLarge,
                // Holds the subscriber's queue (see `Alerts::raise`).
                TransportError::PeerRejected(_) => FailureKind::PeerRejected,
            },
            message: format!("subscriber `{}`: {e}", sub.name),
            retry_after_ms: None,
        }),
    }
}

/// A subscriber's non-2xx answer: permanent or retried by the status class
/// the gateway and the SDK share (408, 425, 429 and 5xx are retried), after
/// the subscriber's Retry-After if it gave one.
fn refused(sub: &Subscriber, resp: &OutboundResponse) -> Outcome {
    let retry_after_ms = resp
        .retry_after(std::time::SystemTime::now())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let permanent = resp.status_class() == StatusClass::Permanent;
    Outcome::Failed(Failure {
        class: if permanent {
            ErrorClass::Permanent
        } else {
            ErrorClass::Retryable
        },
        kind: FailureKind::Http(resp.status),
        message: format!(
            "subscriber `{}` answered {}: {}",
            sub.name,
            resp.status,
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
        ),
        retry_after_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryPolicy;

    fn answer(status: u16, retry_after: Option<&str>) -> Outcome {
        let sub = Subscriber {
            name: "platform".into(),
            url: "https://platform.example/notices".into(),
            notices: vec![],
            items: vec![],
            retry: RetryPolicy::default(),
            concurrency: 1,
            timeout_ms: 1000,
        };
        let headers = retry_after
            .map(|v| vec![("Retry-After".to_string(), v.to_string())])
            .unwrap_or_default();
        let resp = OutboundResponse {
            status,
            headers,
            body: bytes::Bytes::from_static(b"busy"),
        };
        refused(&sub, &resp)
    }

    fn failure(o: Outcome) -> Failure {
        match o {
            Outcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_subscriber_status_is_classed_like_a_ministry_status() {
        let f = failure(answer(503, Some("120")));
        assert_eq!(f.class, ErrorClass::Retryable);
        assert_eq!(f.retry_after_ms, Some(120_000));
        assert_eq!(f.kind, FailureKind::Http(503));
        assert!(f.message.contains("answered 503: busy"), "{}", f.message);
        for retried in [408, 425, 429, 500] {
            assert_eq!(
                failure(answer(retried, None)).class,
                ErrorClass::Retryable,
                "{retried}"
            );
        }
        for dead in [302, 400, 404, 422] {
            assert_eq!(
                failure(answer(dead, None)).class,
                ErrorClass::Permanent,
                "{dead}"
            );
        }
        let past = failure(answer(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")));
        assert_eq!(
            past.retry_after_ms,
            Some(0),
            "a date already past asks for no wait"
        );
    }
}
