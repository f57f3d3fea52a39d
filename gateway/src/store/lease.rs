//! Leases: which replica runs a job's attempt, and until when.
//!
//! Several gateway replicas may share one store. A replica takes a job by
//! *claiming* it: the job goes in flight carrying a [`Lease`] (the replica's
//! id and an expiry), in the same atomic write that marks the attempt in
//! flight before anything is sent. While the call runs, the replica renews
//! the lease; when it settles the attempt, the settlement is applied only
//! if the job is still in flight under that very claim (same owner, same
//! start), so a replica that lost its lease cannot overwrite what another
//! one did since.
//!
//! A lease that expired means its holder stopped (a crash, a partition from
//! the database, a renewal that kept failing) and may or may not have
//! reached the ministry. Whoever claims the job next treats it exactly as
//! a crash recovery does: a submit is verified with `query-status` before
//! any resend, a change or a notice is sent again with its idempotency key
//! ([`recovered_state`]). An in-flight job without a lease (written before
//! leases existed) counts as expired.
//!
//! Per-case FIFO and chained-route holds need nothing more: a job behind an
//! in-flight one is held by the record's own rules ([`CaseRecord::hold`]),
//! whichever replica holds the lease. A destination's concurrency limit is
//! counted over live leases in the store, so it is global across replicas:
//! each backend makes the count and the claims that follow it one atomic
//! step per destination.
//!
//! Replicas compare lease expiries with their own clocks: keep them within
//! a small fraction of `lease-ms` of each other (NTP does).

use super::JobRef;
use super::record::{CaseRecord, Job, JobKind, JobState, Lease, Millis};

/// What a dispatcher asks of [`super::Store::claim`].
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The claiming replica's id.
    pub owner: &'a str,
    pub now: Millis,
    /// The lease's expiry for what is claimed now.
    pub until: Millis,
    /// The destination's concurrency limit, counted over live leases of
    /// every replica.
    pub limit: usize,
    /// At most this many claims (what this replica can start now).
    pub max: usize,
}

/// A job claimed: in flight under the caller's lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: JobRef,
    /// The record as stored by the claim.
    pub record: CaseRecord,
    /// A verify query (`query-status` with `idem:<key>`), not a send.
    pub verifying: bool,
    /// The job was taken over from an expired lease (its holder may have
    /// reached the ministry).
    pub recovered: Option<String>,
    /// The claim's start, the in-flight state's `since`: with the owner,
    /// what names this claim when renewing and settling it.
    pub since: Millis,
}

impl Claimed {
    pub fn job(&self) -> Option<&Job> {
        self.record.job(self.job.job)
    }
}

/// The result of a claim.
#[derive(Debug, Default)]
pub struct Claims {
    pub jobs: Vec<Claimed>,
    /// When to look again: the next due time after `now`, or the next
    /// lease expiry. Work already due that the limit or `max` left
    /// unclaimed is not in it: a slot coming free wakes the dispatcher.
    pub next: Option<Millis>,
    /// Live leases of the destination (every replica's) after the claim.
    pub live: usize,
}

/// Whether a job is in flight under a lease that is still live at `now`.
pub fn holds_live_lease(state: &JobState, now: Millis) -> bool {
    matches!(state, JobState::InFlight { lease: Some(l), .. } if l.is_live(now))
}

/// The expiry of a job's lease while it is in flight.
pub fn lease_until(state: &JobState) -> Option<Millis> {
    match state {
        JobState::InFlight { lease, .. } => Some(lease.as_ref().map_or(Millis::MIN, |l| l.until)),
        _ => None,
    }
}

/// What an attempt that may have reached the ministry becomes when nobody
/// holds it any more: a submit is verified before any resend; a change or
/// a notice carries an idempotency key and is sent again.
pub fn recovered_state(job: &Job, now: Millis) -> JobState {
    match job.kind {
        JobKind::Submit { .. } => JobState::Verify { due: now },
        _ => JobState::Pending { due: now },
    }
}

/// Claim one job of `record` for `request.owner`: a runnable job that is
/// due (pending, or verify), or an in-flight job whose lease expired. The
/// job goes in flight under the new lease. `None` when it is not claimable
/// (held, not due, finished, or leased by a live holder).
pub fn claim(record: &mut CaseRecord, job: u32, request: &ClaimRequest<'_>) -> Option<Claimed> {
    let now = request.now;
    let current = record.job(job)?;
    let (verifying, recovered) = match &current.state {
        JobState::Pending { due } | JobState::Verify { due } if *due <= now => {
            if record.hold(current).is_some() {
                return None;
            }
            (matches!(current.state, JobState::Verify { .. }), None)
        }
        JobState::InFlight { lease, .. } if !lease.as_ref().is_some_and(|l| l.is_live(now)) => {
            let from = lease
                .as_ref()
                .map_or("an unleased attempt".to_string(), |l| {
                    format!("replica {}", l.owner)
                });
            let verifying = matches!(recovered_state(current, now), JobState::Verify { .. });
            (verifying, Some(from))
        }
        _ => return None,
    };
    let j = record.job_mut(job)?;
    j.state = JobState::InFlight {
        since: now,
        verifying,
        lease: Some(Lease {
            owner: request.owner.to_string(),
            until: request.until,
        }),
    };
    Some(Claimed {
        job: JobRef {
            case_number: record.case_number.clone(),
            job,
        },
        record: record.clone(),
        verifying,
        recovered,
        since: now,
    })
}

/// Whether a job is in flight under the claim `owner` made at `since`.
pub fn is_held_by(state: &JobState, owner: &str, since: Millis) -> bool {
    matches!(state, JobState::InFlight { since: s, lease: Some(l), .. } if *s == since && l.owner == owner)
}

/// Extend the claim `owner` made at `since` to `until`; false when the job
/// is no longer held under that claim (the lease was lost).
pub fn renew(record: &mut CaseRecord, job: u32, owner: &str, since: Millis, until: Millis) -> bool {
    let Some(j) = record.job_mut(job) else {
        return false;
    };
    if !is_held_by(&j.state, owner, since) {
        return false;
    }
    if let JobState::InFlight { lease: Some(l), .. } = &mut j.state {
        l.until = l.until.max(until);
    }
    true
}

/// At start: attempts this replica left in flight in a previous life (or
/// without any lease) are recovered at once, by [`recovered_state`];
/// another replica's live leases are left to it. The jobs recovered.
pub fn recover_own(record: &mut CaseRecord, owner: &str, now: Millis) -> Vec<u32> {
    let mut recovered = Vec::new();
    for job in &mut record.jobs {
        let JobState::InFlight { lease, .. } = &job.state else {
            continue;
        };
        let ours = match lease {
            None => true,
            Some(l) => l.owner == owner || !l.is_live(now),
        };
        if ours {
            job.state = recovered_state(job, now);
            recovered.push(job.id);
        }
    }
    recovered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::Destination;

    fn record() -> CaseRecord {
        let mut r = CaseRecord::blank("C1");
        let net = Destination::Network("a".into());
        r.push_job(
            net.clone(),
            JobKind::Submit {
                after: vec![],
                inputs: Default::default(),
            },
            10,
        );
        r.push_job(
            net,
            JobKind::Change {
                change_json: "{}".into(),
            },
            10,
        );
        r
    }

    fn request(owner: &str, now: Millis) -> ClaimRequest<'_> {
        ClaimRequest {
            owner,
            now,
            until: now + 100,
            limit: 4,
            max: 4,
        }
    }

    #[test]
    fn a_due_job_is_claimed_once_until_its_lease_expires() {
        let mut r = record();
        assert!(claim(&mut r, 1, &request("a", 5)).is_none(), "not due yet");
        let c = claim(&mut r, 1, &request("a", 20)).expect("claimed");
        assert!(!c.verifying && c.recovered.is_none());
        assert!(is_held_by(&r.job(1).expect("job").state, "a", 20));
        assert!(claim(&mut r, 1, &request("b", 119)).is_none(), "leased");
        assert!(
            claim(&mut r, 2, &request("b", 30)).is_none(),
            "behind job 1"
        );
        let taken = claim(&mut r, 1, &request("b", 120)).expect("expired");
        assert!(taken.verifying, "a submit is verified before a resend");
        assert_eq!(taken.recovered.as_deref(), Some("replica a"));
        assert!(!is_held_by(&r.job(1).expect("job").state, "a", 20));
    }

    #[test]
    fn renewal_needs_the_same_claim() {
        let mut r = record();
        claim(&mut r, 1, &request("a", 20)).expect("claimed");
        assert!(renew(&mut r, 1, "a", 20, 500));
        assert_eq!(lease_until(&r.job(1).expect("job").state), Some(500));
        assert!(!renew(&mut r, 1, "b", 20, 900), "another owner");
        assert!(!renew(&mut r, 1, "a", 21, 900), "another claim");
        claim(&mut r, 1, &request("b", 600)).expect("expired at 500");
        assert!(!renew(&mut r, 1, "a", 20, 900), "lost");
    }

    #[test]
    fn start_recovers_only_its_own_and_expired_leases() {
        let mut r = record();
        claim(&mut r, 1, &request("b", 20)).expect("claimed by b");
        assert!(recover_own(&mut r, "a", 50).is_empty(), "b's lease is live");
        assert_eq!(recover_own(&mut r, "b", 50), [1], "b's own, previous life");
        assert_eq!(r.job(1).expect("job").state, JobState::Verify { due: 50 });
        // A change left in flight is sent again with its key.
        r.job_mut(1).expect("job").state = JobState::Delivered {
            at: 60,
            network_case_number: None,
        };
        claim(&mut r, 2, &request("b", 70)).expect("claimed");
        assert_eq!(recover_own(&mut r, "a", 500), [2], "expired");
        assert_eq!(r.job(2).expect("job").state, JobState::Pending { due: 500 });
    }
}
