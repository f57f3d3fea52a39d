//! One notice to a subscriber: POSTed as JSON with an `Idempotency-Key`
//! header (receivers drop a resend after a crash), over the subscriber's own
//! mTLS client. The twin of [`super::call`] for destinations that have no
//! adapter.

use super::outcome::{Failure, FailureKind, Outcome};
use super::{Engine, Subscriber};
use crate::runtime::ErrorClass;
use crate::store::{Job, JobKind};
use crate::transport::{OutboundRequest, OutboundResponse, TransportError};
use std::time::Duration;

/// POST one notice.
pub(crate) async fn send(engine: &Engine, sub: &Subscriber, job: &Job) -> Outcome {
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
    match engine.webhook.send(request).await {
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

/// A subscriber's non-2xx answer: a client error other than 408, 425 and
/// 429 is permanent, the rest is retried (after its Retry-After, if any).
fn refused(sub: &Subscriber, resp: &OutboundResponse) -> Outcome {
    let retry_after_ms = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000));
    let permanent = (400..500).contains(&resp.status) && !matches!(resp.status, 408 | 425 | 429);
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
