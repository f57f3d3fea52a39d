//! Notices to subscribers (the unified platform's webhook, a supervising
//! regulator): their bodies, built from case changes, and queued as jobs in
//! the same record and the same durable queue as deliveries
//! ([`super::webhook`] sends them). The bodies' shapes are
//! `yiwang_schema::Notice` (docs/schema/notice.schema.json).

use super::Subscriber;
use crate::store::{CaseRecord, Destination, JobKind, JobState, Light, Millis};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
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

/// Queue each notice for every subscriber that wants its kind and item.
pub fn enqueue(
    subscribers: &BTreeMap<String, Arc<Subscriber>>,
    record: &mut CaseRecord,
    notices: &[NoticeBody],
    now: Millis,
) {
    for sub in subscribers.values() {
        if !sub.items.is_empty() && !sub.items.contains(&record.item) {
            continue;
        }
        for n in notices {
            if sub.notices.iter().any(|k| k == n.kind()) {
                record.push_job(
                    Destination::Subscriber(sub.name.clone()),
                    JobKind::Notify { body: body(n) },
                    now,
                );
            }
        }
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
        let body_of = |state: &JobState| delivery_notice(&rec, "tax", state).map(|n| body(&n));
        assert_eq!(
            body_of(&delivered).expect("a finished delivery is announced"),
            serde_json::json!({"type": "delivery", "case_number": "C-1", "item": "item-1",
                               "network": "tax", "state": "delivered",
                               "network_case_number": null})
        );
        let dead = JobState::Dead {
            at: 0,
            reason: "gave up".into(),
        };
        assert_eq!(
            body_of(&dead).expect("a dead letter is announced")["reason"],
            "gave up"
        );
        assert!(body_of(&JobState::Pending { due: 0 }).is_none());
    }
}
