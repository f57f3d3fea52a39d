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
//! | a sandbox limit, the `limit-hits`-th time | `dead`, with the limit and the count |
//! | a sandbox limit before that | as its class says, a `permanent` one as `retryable` |
//! | a local shortage (`instantiate`) | as it was (`pending`/`verify`) about a second later; not counted |
//!
//! A local shortage is the gateway's own (no instance free), so it counts
//! against nothing: not the job's attempts, limit hits or age, not the
//! network's breaker (the dispatcher). It is still kept in the job's
//! history, flagged `local`, so an operator sees why a job waited; a run
//! of them is one entry (the latest), so a long shortage cannot grow the
//! record.

use super::backflow::{Refused, apply_events};
use super::notice;
use super::outcome::{Failure, Outcome, is_sandbox_limit};
use super::retry::{backoff_ms, give_up, later};
use crate::config::RetryPolicy;
use crate::runtime::ErrorClass;
use crate::store::lease::is_held_by;
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
    /// The replica whose claim (made at `started_at`) ran the attempt.
    pub owner: String,
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
    /// Events the reply told that this network may not tell about the case.
    pub refused: Vec<Refused>,
}

/// A local shortage is tried again after this long, plus up to
/// [`LOCAL_JITTER_MS`], so waiting jobs do not all come back at once.
pub const LOCAL_RETRY_MS: u64 = 1000;
/// See [`LOCAL_RETRY_MS`].
pub const LOCAL_JITTER_MS: u64 = 500;

/// Record the attempt in its job and move the job on. `None` when the job
/// is not in flight under the attempt's own claim (someone else settled it,
/// or its lease expired and another claim took the job over): nothing
/// changed, so an outcome is never applied over a claim it does not belong to.
pub fn settle(
    record: &mut CaseRecord,
    attempted: &Attempted,
    outcome: &Outcome,
    policy: &RetryPolicy,
    now: Millis,
    rng: &mut impl Rng,
) -> Option<Settled> {
    let job = record.job_mut(attempted.job)?;
    if !is_held_by(&job.state, &attempted.owner, attempted.started_at) {
        return None;
    }
    let local = matches!(outcome, Outcome::Failed(f) if f.kind.is_local_shortage());
    let (kind, message) = match outcome {
        Outcome::Delivered { .. } => (None, String::new()),
        Outcome::NotFound => (
            None,
            "the ministry has no case under this idempotency key; resending".to_string(),
        ),
        Outcome::Failed(f) if local => (
            Some(f.kind.to_string()),
            format!(
                "not counted: the gateway could not start the call (local shortage): {}",
                f.message
            ),
        ),
        Outcome::Failed(f) => (Some(f.kind.to_string()), f.message.clone()),
    };
    // A run of local shortages is one entry: the latest.
    if local && job.attempts.last().is_some_and(|a| a.local) {
        job.attempts.pop();
    }
    job.attempts.push(Attempt {
        at: attempted.started_at,
        elapsed_ms: attempted.elapsed_ms,
        outcome: outcome.attempt_outcome(attempted.verifying),
        kind,
        message,
        adapter: attempted.adapter.clone(),
        verify: attempted.verifying,
        local,
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
        return Some(Settled {
            state,
            fresh: Vec::new(),
            notices: Vec::new(),
            refused: Vec::new(),
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
    let applied = apply_events(record, &network, events);
    // A finished submit is a delivery outcome subscribers hear about.
    let mut notices = Vec::new();
    if submit {
        notices.extend(notice::delivery_notice(record, &network, &state));
    }
    Some(Settled {
        state,
        fresh: applied.fresh,
        notices,
        refused: applied.refused,
    })
}

/// The state after a failed attempt (already in the job's history): back
/// soon, uncounted, after a local shortage; dead after too many sandbox
/// limit hits, if permanent (a limit is not: its count decides), or if the
/// policy gives up; else due again after backoff, as a verify query when
/// the ministry may have acted (ambiguous) or a verify query itself failed.
fn after_failure(
    f: &Failure,
    verifying: bool,
    policy: &RetryPolicy,
    job: &crate::store::Job,
    now: Millis,
    rng: &mut impl Rng,
) -> JobState {
    let again = |due| {
        if f.class == ErrorClass::Ambiguous || verifying {
            JobState::Verify { due }
        } else {
            JobState::Pending { due }
        }
    };
    if f.kind.is_local_shortage() {
        let jitter = rng.random_range(0..=LOCAL_JITTER_MS);
        return again(later(now, LOCAL_RETRY_MS.saturating_add(jitter)));
    }
    if let Some(reason) = poisoned(f, verifying, policy, job) {
        return JobState::Dead { at: now, reason };
    }
    // A sandbox limit ends by its count, whatever class the runtime gave it.
    if f.class == ErrorClass::Permanent && !f.kind.is_sandbox_limit() {
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
    again(later(now, delay))
}

/// Why a job whose call just hit a sandbox limit ends: the `limit-hits`-th
/// hit since creation or replay, whatever class the limit was given.
fn poisoned(
    f: &Failure,
    verifying: bool,
    policy: &RetryPolicy,
    job: &crate::store::Job,
) -> Option<String> {
    if !f.kind.is_sandbox_limit() {
        return None;
    }
    let hits = job
        .counted()
        .filter(|a| a.kind.as_deref().is_some_and(is_sandbox_limit))
        .count();
    if hits < policy.limit_hits.max(1) as usize {
        return None;
    }
    let mut reason = format!(
        "adapter hit a sandbox limit {hits} times (retry.limit-hits = {}; last: {}: {})",
        policy.limit_hits, f.kind, f.message
    );
    if f.class == ErrorClass::Ambiguous && !verifying {
        reason.push_str(
            "; the last call had sent a request, so it may have reached the ministry \
             (a replay resends under the same idempotency key)",
        );
    }
    Some(reason)
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod tests;
