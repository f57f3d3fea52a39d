//! What the API shows: a case per network (delivery state and latest
//! normalized stage), search summaries, queue entries and dead letters.
//! The shapes are `crate::wire`'s; this module fills them from a record.

use crate::store::{Attempt, CaseRecord, Destination, Hold, Job, JobKind, JobState, Millis};
use crate::wire::{
    AttemptView, CaseSummary, CaseView, DeadLetter, DeadlineView, FollowUpView, JobKindName,
    JobProgress, JobView, LastError, NetworkSummary, NetworkView,
};
use chrono::TimeZone;
use std::collections::BTreeMap;

/// A time as RFC 3339 in Beijing time.
pub fn rfc3339(t: Millis) -> Option<String> {
    yiwang_schema::BEIJING
        .timestamp_millis_opt(t)
        .single()
        .map(|d| d.to_rfc3339())
}

fn kind_name(kind: &JobKind) -> JobKindName {
    match kind {
        JobKind::Submit { .. } => JobKindName::Submit,
        JobKind::Change { .. } => JobKindName::Change,
        JobKind::Notify { .. } => JobKindName::Notice,
    }
}

/// One job as operators and the bureau see it.
pub fn job_view(record: &CaseRecord, job: &Job) -> JobView {
    let mut v = JobView {
        job: job.id,
        destination: job.destination.key(),
        kind: kind_name(&job.kind),
        idempotency_key: job.idempotency_key.clone(),
        created_at: rfc3339(job.created_at),
        attempts: job.attempts.len(),
        state: JobProgress::Pending,
        waiting_for: None,
        next_attempt_at: None,
        since: None,
        delivered_at: None,
        network_case_number: None,
        dead_at: None,
        reason: None,
        last_error: None,
        adapter: job.adapter.clone(),
    };
    v.state = progress(record, job, &mut v);
    let last = job.attempts.iter().rev().find(|a| !a.outcome.succeeded());
    if let Some(a) = last
        && !matches!(job.state, JobState::Delivered { .. })
    {
        v.last_error = Some(LastError {
            at: rfc3339(a.at),
            class: a.outcome.name().to_string(),
            kind: a.kind.clone(),
            message: a.message.clone(),
        });
    }
    v
}

/// Where the job stands, filling in the fields that go with that state.
fn progress(record: &CaseRecord, job: &Job, v: &mut JobView) -> JobProgress {
    match &job.state {
        JobState::Pending { due } => match record.hold(job) {
            Some(Hold::Behind { job: j, dead }) => {
                v.waiting_for = Some(format!(
                    "job {j} to the same destination{}",
                    if dead {
                        ", which is a dead letter (replay it first)"
                    } else {
                        ""
                    }
                ));
                if dead {
                    JobProgress::Blocked
                } else {
                    JobProgress::Pending
                }
            }
            Some(Hold::WaitingFor { network, field }) => {
                v.waiting_for = Some(if field == "delivery" {
                    format!("delivery to `{network}`")
                } else {
                    format!("`{field}` from `{network}`")
                });
                JobProgress::Waiting
            }
            None if job.attempts.is_empty() => JobProgress::Pending,
            None => {
                v.next_attempt_at = rfc3339(*due);
                JobProgress::Retrying
            }
        },
        JobState::Verify { due } => {
            v.next_attempt_at = rfc3339(*due);
            JobProgress::Verifying
        }
        JobState::InFlight {
            since, verifying, ..
        } => {
            v.since = rfc3339(*since);
            if *verifying {
                JobProgress::Verifying
            } else {
                JobProgress::InFlight
            }
        }
        JobState::Delivered {
            at,
            network_case_number,
        } => {
            v.delivered_at = rfc3339(*at);
            v.network_case_number = network_case_number.clone();
            JobProgress::Delivered
        }
        JobState::Dead { at, reason } => {
            v.dead_at = rfc3339(*at);
            v.reason = Some(reason.clone());
            JobProgress::Dead
        }
    }
}

/// The full case view (`GET /v1/cases/{id}`).
pub fn case_view(record: &CaseRecord) -> CaseView {
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
    let networks = names
        .into_iter()
        .map(|name| (name.to_string(), network_view(record, name)))
        .collect();
    let notices = record
        .jobs
        .iter()
        .filter(|j| matches!(j.destination, Destination::Subscriber(_)))
        .map(|j| job_view(record, j))
        .collect();
    CaseView {
        case_number: record.case_number.clone(),
        item: record.item.clone(),
        principal: record.principal.clone(),
        accepted_at: rfc3339(record.accepted_at),
        updated_at: rfc3339(record.updated_at),
        content_sha256: record.digest.clone(),
        deadline: DeadlineView {
            light: record.light,
            deadline: record.deadline.and_then(rfc3339),
        },
        networks,
        notices,
    }
}

/// One network's part of the case view.
fn network_view(record: &CaseRecord, name: &str) -> NetworkView {
    let jobs: Vec<&Job> = record
        .jobs
        .iter()
        .filter(|j| matches!(&j.destination, Destination::Network(n) if n == name))
        .collect();
    let current = jobs
        .iter()
        .find(|j| !matches!(j.state, JobState::Delivered { .. }))
        .or(jobs.last())
        .map(|j| job_view(record, j));
    let net = record.networks.get(name).cloned().unwrap_or_default();
    let open = record.follow_up_at(name, &net).is_some();
    let follow_up = net.follow_up.map(|f| FollowUpView {
        queries: f.queries,
        next_at: open.then(|| rfc3339(f.next)).flatten(),
        interval_ms: f.interval_ms,
    });
    NetworkView {
        delivery: current,
        network_case_number: net.network_case_number,
        stage: net.stage,
        stage_zh: net.stage.map(|s| s.label_zh().to_string()),
        stage_at: net.stage_at,
        decision: net.decision,
        certificate_number: net.certificate_number,
        events: net.events,
        jobs: jobs.iter().map(|j| job_view(record, j)).collect(),
        follow_up,
    }
}

/// A line of a search result (`GET /v1/cases`).
pub fn case_summary(record: &CaseRecord) -> CaseSummary {
    let mut networks: BTreeMap<String, NetworkSummary> = BTreeMap::new();
    for job in &record.jobs {
        if let Destination::Network(n) = &job.destination {
            let state = job_view(record, job).state;
            let stage = record.networks.get(n).and_then(|c| c.stage);
            // The latest unfinished job speaks for the network.
            let speaks = networks
                .get(n)
                .is_none_or(|_| state != JobProgress::Delivered);
            if speaks {
                networks.insert(n.clone(), NetworkSummary { state, stage });
            }
        }
    }
    CaseSummary {
        case_number: record.case_number.clone(),
        item: record.item.clone(),
        accepted_at: rfc3339(record.accepted_at),
        updated_at: rfc3339(record.updated_at),
        light: record.light,
        networks,
    }
}

fn attempt_view(a: &Attempt) -> AttemptView {
    AttemptView {
        at: rfc3339(a.at),
        elapsed_ms: a.elapsed_ms,
        outcome: a.outcome.name().to_string(),
        kind: a.kind.clone(),
        message: a.message.clone(),
        adapter: a.adapter.clone(),
        verify: a.verify,
    }
}

/// A dead letter with everything needed to decide on a replay.
pub fn dead_letter(record: &CaseRecord, job: &Job) -> DeadLetter {
    DeadLetter {
        case_number: record.case_number.clone(),
        item: record.item.clone(),
        job: job_view(record, job),
        attempt_log: job.attempts.iter().map(attempt_view).collect(),
        case: serde_json::from_str(&record.case_json).unwrap_or(serde_json::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Attempt;
    use serde_json::{Value, json};

    fn submit() -> JobKind {
        JobKind::Submit {
            after: Vec::new(),
            inputs: Default::default(),
        }
    }

    fn failed(at: Millis) -> Attempt {
        Attempt {
            at,
            elapsed_ms: 12,
            outcome: crate::store::AttemptOutcome::Permanent,
            kind: Some("adapter_permanent".into()),
            message: "refused".into(),
            adapter: None,
            verify: false,
            local: false,
        }
    }

    /// A case with a dead submit to `tax` and a second job behind it.
    fn record() -> CaseRecord {
        let mut rec = CaseRecord::blank("C-1");
        rec.item = "item-1".into();
        let tax = Destination::Network("tax".into());
        let dead = rec.push_job(tax.clone(), submit(), 0);
        rec.push_job(tax, submit(), 0);
        if let Some(job) = rec.job_mut(dead) {
            job.attempts.push(failed(1_000));
            job.state = JobState::Dead {
                at: 2_000,
                reason: "gave up".into(),
            };
        }
        rec
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        k.sort();
        k
    }

    #[test]
    fn a_dead_job_shows_its_reason_and_last_error() {
        let rec = record();
        let v = serde_json::to_value(job_view(&rec, &rec.jobs[0])).unwrap_or_default();
        assert_eq!(v["state"], "dead");
        assert_eq!(v["kind"], "submit");
        assert_eq!(v["destination"], "network:tax");
        assert_eq!(v["reason"], "gave up");
        assert_eq!(v["dead_at"], "1970-01-01T08:00:02+08:00");
        assert_eq!(
            v["last_error"],
            json!({"at": "1970-01-01T08:00:01+08:00", "class": "permanent",
                   "kind": "adapter_permanent", "message": "refused"})
        );
        assert_eq!(
            keys(&v),
            [
                "attempts",
                "created_at",
                "dead_at",
                "destination",
                "idempotency_key",
                "job",
                "kind",
                "last_error",
                "reason",
                "state"
            ]
        );
    }

    #[test]
    fn a_job_behind_a_dead_letter_is_blocked_and_says_so() {
        let rec = record();
        let v = serde_json::to_value(job_view(&rec, &rec.jobs[1])).unwrap_or_default();
        assert_eq!(v["state"], "blocked");
        assert_eq!(
            v["waiting_for"],
            "job 1 to the same destination, which is a dead letter (replay it first)"
        );
        assert!(v.get("last_error").is_none() && v.get("next_attempt_at").is_none());
    }

    #[test]
    fn case_views_and_dead_letters_keep_their_fields() {
        let rec = record();
        let v = serde_json::to_value(case_view(&rec)).unwrap_or_default();
        assert_eq!(
            keys(&v),
            [
                "accepted_at",
                "case_number",
                "content_sha256",
                "deadline",
                "item",
                "networks",
                "notices",
                "principal",
                "updated_at"
            ]
        );
        assert_eq!(v["deadline"], json!({"light": "green", "deadline": null}));
        let tax = &v["networks"]["tax"];
        assert_eq!(tax["delivery"]["job"], 1, "the first unfinished job speaks");
        assert_eq!(tax["stage"], Value::Null);
        assert_eq!(tax["jobs"].as_array().map(Vec::len), Some(2));

        let s = serde_json::to_value(case_summary(&rec)).unwrap_or_default();
        assert_eq!(
            s["networks"]["tax"],
            json!({"state": "blocked", "stage": null})
        );
        assert_eq!(s["light"], "green");

        let d = serde_json::to_value(dead_letter(&rec, &rec.jobs[0])).unwrap_or_default();
        assert_eq!(d["case_number"], "C-1");
        assert_eq!(d["item"], "item-1");
        assert_eq!(d["state"], "dead", "the job's fields sit at the top level");
        assert_eq!(d["case"], json!({}));
        assert_eq!(
            keys(&d["attempt_log"][0]),
            [
                "adapter",
                "at",
                "elapsed_ms",
                "kind",
                "message",
                "outcome",
                "verify"
            ]
        );
    }
}
