//! The intake rules: a case becomes one durable record with one job per
//! step of its item's route; a bureau-side change becomes one job per
//! network the case went to. The same request again is answered from the
//! record (nothing new is queued); different content under a known case
//! number is a conflict.

use super::Delivery;
use super::route::RouteStep;
use crate::store::deadline;
use crate::store::{
    CaseClock, CaseRecord, ChangeRecord, Destination, JobKind, Millis, StoreError, now_millis,
};
use yiwang_schema::Sha256Digest;
use yiwang_schema::ValidationErrors;

/// Why the intake refused a request.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the body is not a valid case")]
    Invalid(ValidationErrors),
    #[error("item `{code}` has no route in this gateway's configuration")]
    UnknownItem { code: String },
    #[error(
        "case {case_number} was already accepted with different content (sha256 {existing}); a corrected case needs a new case number or a change event"
    )]
    Conflict {
        case_number: String,
        existing: String,
    },
    #[error("case {case_number} is not known to this gateway")]
    UnknownCase { case_number: String },
    #[error("the change names case {in_body}, but was posted to case {in_path}")]
    CaseMismatch { in_path: String, in_body: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The outcome of an accepted intake.
#[derive(Debug)]
pub struct Accepted {
    pub record: CaseRecord,
    /// False when the same case was accepted before (nothing new was queued).
    pub created: bool,
    /// The jobs this request created (or created the first time).
    pub jobs: Vec<u32>,
}

/// What an intake write found: the same request again (the stored record
/// and the jobs it created the first time), or new work (its jobs).
enum Repeat {
    Seen(Box<CaseRecord>, Vec<u32>),
    New(Vec<u32>),
}

/// A case as first stored: its canonical JSON and digest, the clock of its
/// deadline light, and one `Submit` job per route step.
struct NewCase<'a> {
    case: &'a yiwang_schema::Case,
    canonical: String,
    digest: String,
    principal: &'a str,
    steps: &'a [RouteStep],
    yellow_ms: i64,
}

impl NewCase<'_> {
    /// The record and the jobs it queues.
    fn record(&self, now: Millis) -> (CaseRecord, Vec<u32>) {
        let case = self.case;
        let mut r = CaseRecord::blank(&case.case_number);
        r.item = case.item.code.clone();
        r.case_json = self.canonical.clone();
        r.digest = self.digest.clone();
        r.principal = self.principal.to_string();
        r.bureau = case.bureau.uscc.clone();
        r.accepted_at = now;
        r.updated_at = now;
        r.clock = Some(CaseClock {
            start: case.accepted_at.map_or(now, |t| t.timestamp_millis()),
            value: case.time_limit.value,
            unit: case.time_limit.unit,
            yellow_ms: self.yellow_ms,
        });
        let jobs = self
            .steps
            .iter()
            .map(|s| {
                let kind = JobKind::Submit {
                    after: s.after.clone(),
                    inputs: s.inputs.clone(),
                };
                r.push_job(Destination::Network(s.network.clone()), kind, now)
            })
            .collect();
        let (deadline, light) = deadline::evaluate(&r, now);
        r.deadline = deadline;
        r.light = light;
        (r, jobs)
    }
}

impl Delivery {
    /// The window case timestamps must fall in now (`[gateway]
    /// earliest-case-time`, `max-clock-ahead-s`).
    pub fn time_window(&self) -> yiwang_schema::TimeWindow {
        yiwang_schema::TimeWindow {
            now: chrono::Utc::now(),
            ..self.window
        }
    }

    /// Accept a case: refuse timestamps ahead of this gateway's clock (the
    /// schema's `timestamp_range`), route it, and store it with one job per
    /// route step in one durable write.
    pub async fn accept(
        &self,
        case: yiwang_schema::Case,
        principal: &str,
    ) -> Result<Accepted, IntakeError> {
        case.validate_clock(&self.time_window())
            .map_err(IntakeError::Invalid)?;
        let code = case.item.code.clone();
        let steps = self
            .route(&code)
            .ok_or(IntakeError::UnknownItem { code: code.clone() })?;
        let canonical = serde_json::to_string(&case)
            .map_err(|e| StoreError::Backend(format!("serialize case: {e}")))?;
        let new = NewCase {
            digest: Sha256Digest::of(&canonical).to_string(),
            canonical,
            case: &case,
            principal,
            steps,
            yellow_ms: self.yellow_ms,
        };
        let now = now_millis();
        let mut outcome: Option<Result<Repeat, IntakeError>> = None;
        let stored = self
            .store
            .update(&case.case_number, &mut |existing| match existing {
                Some(r) if r.digest == new.digest => {
                    let jobs = submit_jobs(&r);
                    outcome = Some(Ok(Repeat::Seen(Box::new(r), jobs)));
                    None
                }
                Some(r) => {
                    outcome = Some(Err(IntakeError::Conflict {
                        case_number: case.case_number.clone(),
                        existing: r.digest,
                    }));
                    None
                }
                None => {
                    let (r, jobs) = new.record(now);
                    outcome = Some(Ok(Repeat::New(jobs)));
                    Some(r)
                }
            })
            .await?;
        // Counted by the intake edge once the acceptance is audited.
        self.accepted(&case.case_number, outcome, stored)
    }

    /// Accept a bureau-side change: one job per network the case was routed
    /// to, each after that network's earlier jobs for the case.
    pub async fn change(&self, case_number: &str, body: &[u8]) -> Result<Accepted, IntakeError> {
        let change = yiwang_schema::parse_case_change(body).map_err(IntakeError::Invalid)?;
        change
            .validate_clock(&self.time_window())
            .map_err(IntakeError::Invalid)?;
        if change.case_number != case_number {
            return Err(IntakeError::CaseMismatch {
                in_path: case_number.to_string(),
                in_body: change.case_number,
            });
        }
        let change_json =
            serde_json::to_string(&change).map_err(|e| StoreError::Backend(e.to_string()))?;
        let digest = Sha256Digest::of(&change_json).to_string();
        let now = now_millis();
        let mut outcome: Option<Result<Repeat, IntakeError>> = None;
        let stored = self
            .store
            .update(case_number, &mut |existing| {
                let Some(mut r) = existing else {
                    outcome = Some(Err(IntakeError::UnknownCase {
                        case_number: case_number.to_string(),
                    }));
                    return None;
                };
                if let Some(seen) = r.changes.iter().find(|c| c.digest == digest) {
                    let jobs = seen.jobs.clone();
                    outcome = Some(Ok(Repeat::Seen(Box::new(r), jobs)));
                    return None;
                }
                let jobs = queue_change(&mut r, &change_json, &digest, now);
                outcome = Some(Ok(Repeat::New(jobs)));
                Some(r)
            })
            .await?;
        self.accepted(case_number, outcome, stored)
    }

    /// What an intake write decided, as the answer: a new write wakes the
    /// dispatchers of its jobs; a repeat answers from the record it read.
    fn accepted(
        &self,
        case_number: &str,
        outcome: Option<Result<Repeat, IntakeError>>,
        stored: Option<CaseRecord>,
    ) -> Result<Accepted, IntakeError> {
        let unknown = || IntakeError::UnknownCase {
            case_number: case_number.to_string(),
        };
        match outcome.ok_or_else(unknown)?? {
            Repeat::Seen(record, jobs) => Ok(Accepted {
                record: *record,
                created: false,
                jobs,
            }),
            Repeat::New(jobs) => {
                let record = stored.ok_or_else(unknown)?;
                self.wake_record(&record);
                Ok(Accepted {
                    record,
                    created: true,
                    jobs,
                })
            }
        }
    }
}

/// The submit jobs of a record (what a repeated intake answers with).
fn submit_jobs(r: &CaseRecord) -> Vec<u32> {
    r.jobs
        .iter()
        .filter(|j| matches!(j.kind, JobKind::Submit { .. }))
        .map(|j| j.id)
        .collect()
}

/// Queue a change to every network the case was submitted to; its jobs.
fn queue_change(r: &mut CaseRecord, change_json: &str, digest: &str, now: Millis) -> Vec<u32> {
    let networks: Vec<String> = r
        .jobs
        .iter()
        .filter(|j| matches!(j.kind, JobKind::Submit { .. }))
        .filter_map(|j| match &j.destination {
            Destination::Network(n) => Some(n.clone()),
            Destination::Subscriber(_) => None,
        })
        .collect();
    let jobs: Vec<u32> = networks
        .into_iter()
        .map(|n| {
            let kind = JobKind::Change {
                change_json: change_json.to_string(),
            };
            r.push_job(Destination::Network(n), kind, now)
        })
        .collect();
    r.changes.push(ChangeRecord {
        digest: digest.to_string(),
        at: now,
        jobs: jobs.clone(),
    });
    r.updated_at = now;
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_change_goes_to_every_submitted_network_once() {
        let mut r = CaseRecord::blank("C1");
        for n in ["a", "b"] {
            let kind = JobKind::Submit {
                after: vec![],
                inputs: BTreeMap::new(),
            };
            r.push_job(Destination::Network(n.into()), kind, 0);
        }
        r.push_job(
            Destination::Subscriber("s".into()),
            JobKind::Notify {
                body: serde_json::json!({}),
            },
            0,
        );
        let jobs = queue_change(&mut r, "{}", "d1", 5);
        assert_eq!(jobs.len(), 2);
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.changes[0].jobs, jobs);
        assert_eq!(submit_jobs(&r).len(), 2);
        assert_eq!(r.updated_at, 5);
    }
}
