//! This replica's side of job leases (the rules are in `store::lease`):
//! who it is among the replicas sharing the store, keeping a claim's lease
//! alive while its call runs, and recovering at start what it left in
//! flight in a previous life.
//!
//! A lease is renewed every third of `lease-ms`, so two renewals may fail
//! (the database briefly away) before another replica may take the job
//! over. If that happens anyway, the call's outcome is not applied: the
//! settle checks that the job is still in flight under this claim (see
//! `settle::settle`), and the replica that took over verifies with the
//! ministry before any resend.

use crate::store::{Claimed, JobRef, Millis, Store, lease, now_millis};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

/// This gateway among the replicas sharing one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// `[gateway] replica-id`, or the default derived from the host name
    /// and the data directory.
    pub id: String,
    /// `[gateway] lease-ms`: how long a claim holds without renewal.
    pub lease_ms: u64,
}

impl Replica {
    /// The expiry of a lease taken or renewed at `now`.
    pub fn lease_until(&self, now: Millis) -> Millis {
        now.saturating_add(i64::try_from(self.lease_ms).unwrap_or(i64::MAX))
    }
}

/// Keeps one claim's lease alive until dropped.
pub(crate) struct Renewal {
    _stop: DropGuard,
}

/// Renew `claimed`'s lease every third of the lease while the returned
/// [`Renewal`] lives (dropping it stops the renewals, also when a stop
/// abandons the call).
pub(crate) fn keep(store: Arc<dyn Store>, replica: &Replica, claimed: &Claimed) -> Renewal {
    let stop = CancellationToken::new();
    let every = Duration::from_millis((replica.lease_ms / 3).max(100));
    let (job, since, replica) = (claimed.job.clone(), claimed.since, replica.clone());
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stopped.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let until = replica.lease_until(now_millis());
            match store.renew(&job, &replica.id, since, until).await {
                Ok(true) => {}
                Ok(false) => {
                    lost(&job, "the job is no longer held under this claim");
                    return;
                }
                // Keep trying: until the lease expires the job is still ours.
                Err(e) => {
                    tracing::warn!(case = %job.case_number, job = job.job, error = %e, "cannot renew a lease; trying again")
                }
            }
        }
    });
    Renewal {
        _stop: stop.drop_guard(),
    }
}

/// A claim this replica no longer holds: its outcome will not be applied.
pub(crate) fn lost(job: &JobRef, why: &str) {
    metrics::counter!("yiwang_leases_lost_total").increment(1);
    tracing::warn!(case = %job.case_number, job = job.job, why,
        "lease lost: another replica may have taken the job over; this attempt's outcome is not applied");
}

/// At start: the attempts this replica left in flight in a previous life,
/// and those whose lease expired, may have reached the ministry; each is
/// verified before any resend (see `store::lease::recover_own`). Other
/// replicas' live leases are left to them. How many were recovered.
pub(crate) async fn recover(store: &dyn Store, replica: &Replica) -> anyhow::Result<usize> {
    let cases: BTreeSet<String> = store
        .in_flight()
        .await?
        .into_iter()
        .map(|r| r.case_number)
        .collect();
    let now = now_millis();
    let mut recovered = 0;
    for case in &cases {
        let mut ids = Vec::new();
        store
            .update(case, &mut |rec| {
                let mut rec = rec?;
                ids = lease::recover_own(&mut rec, &replica.id, now);
                (!ids.is_empty()).then_some(rec)
            })
            .await?;
        recovered += ids.len();
    }
    Ok(recovered)
}
