//! Notices to subscribers (the unified platform's webhook, a supervising
//! regulator): their bodies, built from case changes, and queued as jobs in
//! the same record and the same durable queue as deliveries
//! ([`super::webhook`] sends them).

use super::Subscriber;
use crate::store::{CaseRecord, Destination, JobKind, JobState, Light, Millis};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use yiwang_schema::Event;

/// A network moved the case to a stage.
pub fn stage_body(record: &CaseRecord, e: &Event) -> Value {
    json!({
        "type": "stage",
        "case_number": record.case_number,
        "item": record.item,
        "network": e.network,
        "network_case_number": e.network_case_number,
        "stage": e.stage,
        "stage_zh": e.stage.label_zh(),
        "at": e.at.to_rfc3339(),
        "details": e.details,
    })
}

/// A delivery to a network finished (delivered or dead-lettered).
pub fn delivery_body(record: &CaseRecord, network: &str, state: &JobState) -> Value {
    let mut body = json!({
        "type": "delivery",
        "case_number": record.case_number,
        "item": record.item,
        "network": network,
        "state": state.name(),
    });
    match state {
        JobState::Delivered {
            network_case_number,
            ..
        } => body["network_case_number"] = json!(network_case_number),
        JobState::Dead { reason, .. } => body["reason"] = json!(reason),
        _ => {}
    }
    body
}

/// The deadline light changed.
pub fn deadline_body(record: &CaseRecord, light: Light) -> Value {
    json!({
        "type": "deadline",
        "case_number": record.case_number,
        "item": record.item,
        "light": light,
        "deadline": record.deadline.and_then(super::view::rfc3339),
    })
}

/// Queue each notice for every subscriber that wants its kind and item.
pub fn enqueue(
    subscribers: &BTreeMap<String, Arc<Subscriber>>,
    record: &mut CaseRecord,
    notices: &[(String, Value)],
    now: Millis,
) {
    for sub in subscribers.values() {
        if !sub.items.is_empty() && !sub.items.contains(&record.item) {
            continue;
        }
        for (kind, body) in notices {
            if sub.notices.iter().any(|k| k == kind) {
                record.push_job(
                    Destination::Subscriber(sub.name.clone()),
                    JobKind::Notify { body: body.clone() },
                    now,
                );
            }
        }
    }
}
