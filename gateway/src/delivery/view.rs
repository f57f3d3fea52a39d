//! What the API shows: a case per network (delivery state and latest
//! normalized stage), search summaries, queue entries and dead letters.

use crate::store::{CaseRecord, Destination, Hold, Job, JobKind, JobState, Millis};
use chrono::{FixedOffset, TimeZone};
use serde_json::{Value, json};

/// A time as RFC 3339 in Beijing time.
pub fn rfc3339(t: Millis) -> Option<String> {
    FixedOffset::east_opt(8 * 3600)?
        .timestamp_millis_opt(t)
        .single()
        .map(|d| d.to_rfc3339())
}

fn kind_name(kind: &JobKind) -> &'static str {
    match kind {
        JobKind::Submit { .. } => "submit",
        JobKind::Change { .. } => "change",
        JobKind::Notify { .. } => "notice",
    }
}

/// One job as operators and the bureau see it.
pub fn job_view(record: &CaseRecord, job: &Job) -> Value {
    let last = job.attempts.iter().rev().find(|a| !a.outcome.succeeded());
    let mut v = json!({
        "job": job.id,
        "destination": job.destination.key(),
        "kind": kind_name(&job.kind),
        "idempotency_key": job.idempotency_key,
        "created_at": rfc3339(job.created_at),
        "attempts": job.attempts.len(),
    });
    let state = match &job.state {
        JobState::Pending { due } => match record.hold(job) {
            Some(Hold::Behind { job: j, dead }) => {
                v["waiting_for"] = json!(format!(
                    "job {j} to the same destination{}",
                    if dead {
                        ", which is a dead letter (replay it first)"
                    } else {
                        ""
                    }
                ));
                if dead { "blocked" } else { "pending" }
            }
            Some(Hold::WaitingFor { network, field }) => {
                v["waiting_for"] = json!(if field == "delivery" {
                    format!("delivery to `{network}`")
                } else {
                    format!("`{field}` from `{network}`")
                });
                "waiting"
            }
            None if job.attempts.is_empty() => "pending",
            None => {
                v["next_attempt_at"] = json!(rfc3339(*due));
                "retrying"
            }
        },
        JobState::Verify { due } => {
            v["next_attempt_at"] = json!(rfc3339(*due));
            "verifying"
        }
        JobState::InFlight { since, verifying } => {
            v["since"] = json!(rfc3339(*since));
            if *verifying { "verifying" } else { "in_flight" }
        }
        JobState::Delivered {
            at,
            network_case_number,
        } => {
            v["delivered_at"] = json!(rfc3339(*at));
            if let Some(n) = network_case_number {
                v["network_case_number"] = json!(n);
            }
            "delivered"
        }
        JobState::Dead { at, reason } => {
            v["dead_at"] = json!(rfc3339(*at));
            v["reason"] = json!(reason);
            "dead"
        }
    };
    v["state"] = json!(state);
    if let Some(a) = last
        && !matches!(job.state, JobState::Delivered { .. })
    {
        v["last_error"] = json!({
            "at": rfc3339(a.at),
            "class": a.outcome,
            "kind": a.kind,
            "message": a.message,
        });
    }
    if let Some(pin) = &job.adapter {
        v["adapter"] = json!(pin);
    }
    v
}

/// The full case view (`GET /v1/cases/{id}`).
pub fn case_view(record: &CaseRecord) -> Value {
    let mut networks = serde_json::Map::new();
    let mut names: Vec<&str> = record
        .jobs
        .iter()
        .filter_map(|j| match &j.destination {
            Destination::Network(n) => Some(n.as_str()),
            Destination::Subscriber(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let jobs: Vec<&Job> = record
            .jobs
            .iter()
            .filter(|j| j.destination == Destination::Network(name.to_string()))
            .collect();
        let current = jobs
            .iter()
            .find(|j| !matches!(j.state, JobState::Delivered { .. }))
            .or(jobs.last())
            .map(|j| job_view(record, j));
        let net = record.networks.get(name).cloned().unwrap_or_default();
        networks.insert(
            name.to_string(),
            json!({
                "delivery": current,
                "network_case_number": net.network_case_number,
                "stage": net.stage,
                "stage_zh": net.stage.map(|s| s.label_zh()),
                "stage_at": net.stage_at,
                "decision": net.decision,
                "certificate_number": net.certificate_number,
                "events": net.events,
                "jobs": jobs.iter().map(|j| job_view(record, j)).collect::<Vec<_>>(),
            }),
        );
    }
    let notices: Vec<Value> = record
        .jobs
        .iter()
        .filter(|j| matches!(j.destination, Destination::Subscriber(_)))
        .map(|j| job_view(record, j))
        .collect();
    json!({
        "case_number": record.case_number,
        "item": record.item,
        "principal": record.principal,
        "accepted_at": rfc3339(record.accepted_at),
        "updated_at": rfc3339(record.updated_at),
        "content_sha256": record.digest,
        "deadline": {
            "light": record.light,
            "deadline": record.deadline.and_then(rfc3339),
        },
        "networks": networks,
        "notices": notices,
    })
}

/// A line of a search result (`GET /v1/cases`).
pub fn case_summary(record: &CaseRecord) -> Value {
    let mut networks = serde_json::Map::new();
    for job in &record.jobs {
        if let Destination::Network(n) = &job.destination {
            let v = job_view(record, job);
            let stage = record.networks.get(n).and_then(|c| c.stage);
            // The latest unfinished job speaks for the network.
            let entry = networks.entry(n.clone()).or_insert(Value::Null);
            if entry.is_null() || v["state"] != "delivered" {
                *entry = json!({ "state": v["state"], "stage": stage });
            }
        }
    }
    json!({
        "case_number": record.case_number,
        "item": record.item,
        "accepted_at": rfc3339(record.accepted_at),
        "updated_at": rfc3339(record.updated_at),
        "light": record.light,
        "networks": networks,
    })
}

/// A dead letter with everything needed to decide on a replay.
pub fn dead_letter(record: &CaseRecord, job: &Job) -> Value {
    let mut v = job_view(record, job);
    v["case_number"] = json!(record.case_number);
    v["item"] = json!(record.item);
    v["attempt_log"] = json!(
        job.attempts
            .iter()
            .map(|a| json!({
                "at": rfc3339(a.at),
                "elapsed_ms": a.elapsed_ms,
                "outcome": a.outcome,
                "kind": a.kind,
                "message": a.message,
                "adapter": a.adapter,
                "verify": a.verify,
            }))
            .collect::<Vec<_>>()
    );
    v["case"] = serde_json::from_str(&record.case_json).unwrap_or(Value::Null);
    v
}
