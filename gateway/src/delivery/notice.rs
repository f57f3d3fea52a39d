//! Notices to subscribers (the unified platform's webhook, a supervising
//! regulator): built from case changes, queued as jobs in the same record
//! and the same durable queue as deliveries, sent as JSON with an
//! `Idempotency-Key` header so receivers can drop a resend after a crash.
//! The bodies' shapes are `yiwang_schema::Notice` (docs/schema/notice.schema.json).

use super::dispatch::Outcome;
use super::{Engine, Subscriber};
use crate::runtime::ErrorClass;
use crate::store::{CaseRecord, Destination, Job, JobKind, JobState, Light, Millis};
use crate::transport::{OutboundRequest, TransportError};
use serde_json::{Value, json};
use std::time::Duration;
use yiwang_schema::{
    DeadlineNotice, DeliveryNotice, DeliveryOutcome, Event, NoticeBody, StageNotice,
};

/// A network moved the case to a stage.
pub fn stage_notice(record: &CaseRecord, e: &Event) -> NoticeBody {
    NoticeBody::Stage(StageNotice::new(&record.case_number, &record.item, e))
}

/// A delivery to a network finished (delivered or dead-lettered); None
/// for a job still under way, which has nothing to announce.
pub fn delivery_notice(record: &CaseRecord, network: &str, state: &JobState) -> Option<NoticeBody> {
    let outcome = match state {
        JobState::Delivered {
            network_case_number,
            ..
        } => DeliveryOutcome::Delivered {
            network_case_number: network_case_number.clone(),
        },
        JobState::Dead { reason, .. } => DeliveryOutcome::Dead {
            reason: reason.clone(),
        },
        _ => return None,
    };
    Some(NoticeBody::Delivery(DeliveryNotice {
        case_number: record.case_number.clone(),
        item: record.item.clone(),
        network: network.to_string(),
        outcome,
    }))
}

/// The deadline light changed.
pub fn deadline_notice(record: &CaseRecord, light: Light) -> NoticeBody {
    NoticeBody::Deadline(DeadlineNotice {
        case_number: record.case_number.clone(),
        item: record.item.clone(),
        light,
        deadline: record.deadline.and_then(super::view::rfc3339),
    })
}

/// A notice as the queue stores it (the job's JSON body).
pub fn body(notice: &NoticeBody) -> Value {
    serde_json::to_value(notice).unwrap_or(Value::Null)
}

/// [`stage_notice`] as a queued body.
pub fn stage_body(record: &CaseRecord, e: &Event) -> Value {
    body(&stage_notice(record, e))
}

/// [`delivery_notice`] as a queued body (`null`, which [`enqueue`] skips,
/// for a job still under way).
pub fn delivery_body(record: &CaseRecord, network: &str, state: &JobState) -> Value {
    delivery_notice(record, network, state).map_or(Value::Null, |n| body(&n))
}

/// [`deadline_notice`] as a queued body.
pub fn deadline_body(record: &CaseRecord, light: Light) -> Value {
    body(&deadline_notice(record, light))
}

/// Queue each notice for every subscriber that wants its kind and item.
pub fn enqueue(engine: &Engine, record: &mut CaseRecord, notices: &[(String, Value)], now: Millis) {
    for sub in engine.subscribers.values() {
        if !sub.items.is_empty() && !sub.items.contains(&record.item) {
            continue;
        }
        for (kind, body) in notices {
            if !body.is_null() && sub.notices.iter().any(|k| k == kind) {
                record.push_job(
                    Destination::Subscriber(sub.name.clone()),
                    JobKind::Notify { body: body.clone() },
                    now,
                );
            }
        }
    }
}

/// POST one notice.
pub(crate) async fn send(engine: &Engine, sub: &Subscriber, job: &Job) -> Outcome {
    let JobKind::Notify { body } = &job.kind else {
        return Outcome::Failed {
            class: ErrorClass::Permanent,
            kind: "misrouted".into(),
            message: "only notices go to subscribers".into(),
            retry_after_ms: None,
        };
    };
    let uri = match sub.url.parse::<http::Uri>() {
        Ok(u) => u,
        Err(e) => {
            return Outcome::Failed {
                class: ErrorClass::Permanent,
                kind: "bad_url".into(),
                message: format!("subscriber `{}`: url: {e}", sub.name),
                retry_after_ms: None,
            };
        }
    };
    let mut payload = body.clone();
    payload["notice_id"] = json!(job.idempotency_key);
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
        Ok(resp) => {
            let retry_after_ms = resp
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .map(|s| s * 1000);
            let permanent =
                (400..500).contains(&resp.status) && !matches!(resp.status, 408 | 425 | 429);
            Outcome::Failed {
                class: if permanent {
                    ErrorClass::Permanent
                } else {
                    ErrorClass::Retryable
                },
                kind: format!("http_{}", resp.status),
                message: format!(
                    "subscriber `{}` answered {}: {}",
                    sub.name,
                    resp.status,
                    String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
                ),
                retry_after_ms,
            }
        }
        // A notice carries its idempotency key: a lost reply is resent.
        Err(e) => Outcome::Failed {
            class: ErrorClass::Retryable,
            kind: match e {
                TransportError::NotSent(_) => "not_sent",
                TransportError::NoReply(_) => "no_reply",
                TransportError::ResponseTooLarge(_) => "reply_too_large",
                // Holds the subscriber's queue (see `Engine::raise_alert`).
                TransportError::PeerRejected(_) => super::dispatch::PEER_REJECTED,
            }
            .into(),
            message: format!("subscriber `{}`: {e}", sub.name),
            retry_after_ms: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_bodies_say_how_the_delivery_ended() {
        let mut rec = CaseRecord::blank("C-1");
        rec.item = "item-1".into();
        let delivered = JobState::Delivered {
            at: 0,
            network_case_number: None,
        };
        assert_eq!(
            delivery_body(&rec, "tax", &delivered),
            serde_json::json!({"type": "delivery", "case_number": "C-1", "item": "item-1",
                               "network": "tax", "state": "delivered",
                               "network_case_number": null})
        );
        let dead = JobState::Dead {
            at: 0,
            reason: "gave up".into(),
        };
        assert_eq!(delivery_body(&rec, "tax", &dead)["reason"], "gave up");
        assert!(delivery_body(&rec, "tax", &JobState::Pending { due: 0 }).is_null());
    }
}
