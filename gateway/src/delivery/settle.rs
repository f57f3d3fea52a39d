//! The queue's state machine: what one attempt's [`Outcome`] does to its
//! job. A pure function of the record, the outcome, the retry policy, the
//! time and a source of jitter, so every transition is tested here without
//! a store, a clock or a network.
//!
//! | outcome | job becomes |
//! |---|---|
//! | delivered (or found by a verify query) | `delivered`, with the ministry's number |
//! | not found by a verify query | `pending`, due now (resend with the same key) |
//! | permanent failure | `dead`, with the message as reason |
//! | retryable failure | `pending` after backoff, or `dead` once the policy gives up |
//! | ambiguous failure, or a failed verify | `verify` after backoff, or `dead` once the policy gives up |

use super::backflow::apply_events;
use super::notice;
use super::outcome::{Failure, Outcome};
use super::retry::{backoff_ms, give_up};
use crate::config::RetryPolicy;
use crate::runtime::ErrorClass;
use crate::store::{Attempt, CaseRecord, Destination, JobKind, JobState, Millis};
use rand::Rng;
use yiwang_schema::{Event, NoticeBody};

/// The attempt being settled.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub job: u32,
    /// A verify query (`query-status` with `idem:<key>`), not a send.
    pub verifying: bool,
    pub started_at: Millis,
    pub elapsed_ms: u64,
    /// The adapter version (sha256) that ran, for network jobs.
    pub adapter: Option<String>,
}

/// What settling did to the record, for what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The job's new state.
    pub state: JobState,
    /// Events the reply told that the network's view did not have yet.
    pub fresh: Vec<Event>,
    /// Notices the change raises besides its events (a finished submit).
    pub notices: Vec<NoticeBody>,
}

/// Record the attempt in its job and move the job on. `None` when the job
/// is not in flight (someone else settled it): nothing changed.
pub fn settle(
    record: &mut CaseRecord,
    attempted: &Attempted,
    outcome: &Outcome,
    policy: &RetryPolicy,
    now: Millis,
    rng: &mut impl Rng,
) -> Option<Settled> {
    let job = record.job_mut(attempted.job)?;
    if !matches!(job.state, JobState::InFlight { .. }) {
        return None;
    }
    let (kind, message) = match outcome {
        Outcome::Delivered { .. } => (None, String::new()),
        Outcome::NotFound => (
            None,
            "the ministry has no case under this idempotency key; resending".to_string(),
        ),
        Outcome::Failed(f) => (Some(f.kind.to_string()), f.message.clone()),
    };
    job.attempts.push(Attempt {
        at: attempted.started_at,
        elapsed_ms: attempted.elapsed_ms,
        outcome: outcome.attempt_outcome(attempted.verifying),
        kind,
        message,
        adapter: attempted.adapter.clone(),
        verify: attempted.verifying,
    });
    job.state = match outcome {
        Outcome::Delivered {
            network_case_number,
            ..
        } => JobState::Delivered {
            at: now,
            network_case_number: network_case_number.clone(),
        },
        Outcome::NotFound => JobState::Pending { due: now },
        Outcome::Failed(f) => after_failure(f, attempted.verifying, policy, job, now, rng),
    };
    let state = job.state.clone();
    let submit = matches!(job.kind, JobKind::Submit { .. });
    let Destination::Network(network) = job.destination.clone() else {
        let notices = Vec::new();
        return Some(Settled {
            state,
            fresh: Vec::new(),
            notices,
        });
    };
    // What the network now knows about the case.
    if let JobState::Delivered {
        network_case_number: Some(n),
        ..
    } = &state
    {
        let view = record.networks.entry(network.clone()).or_default();
        view.network_case_number = Some(n.clone());
    }
    let events = match outcome {
        Outcome::Delivered { events, .. } => events.clone(),
        _ => Vec::new(),
    };
    let fresh = apply_events(record, &network, events);
    // A finished submit is a delivery outcome subscribers hear about.
    let mut notices = Vec::new();
    if submit {
        notices.extend(notice::delivery_notice(record, &network, &state));
    }
    Some(Settled {
        state,
        fresh,
        notices,
    })
}

/// The state after a failed attempt: dead if permanent or if the policy
/// gives up; else due again after backoff, as a verify query when the
/// ministry may have acted (ambiguous) or a verify query itself failed.
fn after_failure(
    f: &Failure,
    verifying: bool,
    policy: &RetryPolicy,
    job: &crate::store::Job,
    now: Millis,
    rng: &mut impl Rng,
) -> JobState {
    if f.class == ErrorClass::Permanent {
        return JobState::Dead {
            at: now,
            reason: f.message.clone(),
        };
    }
    if let Some(why) = give_up(policy, job.sends(), job.age_origin(), now) {
        return JobState::Dead {
            at: now,
            reason: format!("{why}; last error: {}", f.message),
        };
    }
    let delay = backoff_ms(policy, job.tries().max(1), f.retry_after_ms, rng);
    let due = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
    if f.class == ErrorClass::Ambiguous || verifying {
        JobState::Verify { due }
    } else {
        JobState::Pending { due }
    }
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod tests;
