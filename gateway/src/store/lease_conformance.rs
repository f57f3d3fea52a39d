//! The job-lease part of the suite every [`Store`] backend passes (run by
//! [`store_conformance!`](crate::store_conformance) with the rest): two
//! owners never hold one job; the concurrency limit counts every owner's
//! live leases; an expired lease is recovered by another owner as a verify
//! before any resend; per-case FIFO and chained holds hold across owners.

use super::conformance::{Open, T0, case, net, put, submit};
use super::lease::{self, ClaimRequest, Claims};
use super::{JobKind, JobRef, JobState, Millis, Store};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How long the leases of this suite last.
const LEASE: Millis = 1_000;

async fn claim(store: &dyn Store, owner: &str, now: Millis, limit: usize, max: usize) -> Claims {
    let request = ClaimRequest {
        owner,
        now,
        until: now + LEASE,
        limit,
        max,
    };
    store.claim("network:a", &request).await.expect("claim")
}

fn refs(claims: &Claims) -> Vec<(&str, u32)> {
    claims
        .jobs
        .iter()
        .map(|c| (c.job.case_number.as_str(), c.job.job))
        .collect()
}

/// Settle a claimed job as delivered, as the owner's dispatcher would.
async fn deliver(store: &dyn Store, job: &JobRef, owner: &str, since: Millis) {
    store
        .update(&job.case_number, &mut |rec| {
            let mut rec = rec?;
            let j = rec.job_mut(job.job)?;
            if !lease::is_held_by(&j.state, owner, since) {
                return None;
            }
            j.state = JobState::Delivered {
                at: since + 1,
                network_case_number: Some("N".into()),
            };
            Some(rec)
        })
        .await
        .expect("update")
        .expect("held by the owner");
}

/// Two owners claiming the same queue at once: each job goes to exactly
/// one of them, and the store says so.
pub async fn two_owners_never_hold_one_job(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for i in 0..24 {
        put(&*store, &case(&format!("C{i:02}"), "I1", &["a"], T0)).await;
    }
    let run = |owner: &'static str, store: Arc<dyn Store>| async move {
        let mut mine = Vec::new();
        loop {
            let claims = claim(&*store, owner, T0 + 1, 100, 3).await;
            if claims.jobs.is_empty() {
                return mine;
            }
            mine.extend(claims.jobs.into_iter().map(|c| c.job));
        }
    };
    let a = tokio::spawn(run("replica-a", store.clone()));
    let b = tokio::spawn(run("replica-b", store.clone()));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let all: BTreeSet<&JobRef> = a.iter().chain(&b).collect();
    assert_eq!(
        a.len() + b.len(),
        24,
        "every job claimed once: a {a:?}, b {b:?}"
    );
    assert_eq!(all.len(), 24, "no job claimed twice");
    for (owner, jobs) in [("replica-a", &a), ("replica-b", &b)] {
        for r in jobs {
            let rec = store
                .case(&r.case_number)
                .await
                .expect("read")
                .expect("case");
            let state = &rec.job(r.job).expect("job").state;
            assert!(
                matches!(state, JobState::InFlight { lease: Some(l), .. } if l.owner == owner),
                "{r:?} is {state:?}, claimed by {owner}"
            );
        }
    }
}

/// The limit is the destination's, not an owner's: one owner's live
/// leases leave the other only what remains, even when both claim at once;
/// a settled job frees its slot for either.
pub async fn the_concurrency_limit_counts_every_owners_live_leases(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for i in 0..10 {
        put(&*store, &case(&format!("C{i:02}"), "I1", &["a"], T0)).await;
    }
    let first = claim(&*store, "replica-a", T0 + 1, 3, 10).await;
    assert_eq!(first.jobs.len(), 3);
    assert_eq!(first.live, 3);
    let none = claim(&*store, "replica-b", T0 + 2, 3, 10).await;
    assert!(
        none.jobs.is_empty(),
        "a's leases fill the limit: {:?}",
        refs(&none)
    );
    assert_eq!(none.live, 3);
    assert_eq!(
        none.next,
        Some(T0 + 1 + LEASE),
        "look again when a lease expires, not at once for the work already due"
    );
    // Both at once against a limit of 5: two slots left between them.
    let (s1, s2) = (store.clone(), store.clone());
    let a = tokio::spawn(async move { claim(&*s1, "replica-a", T0 + 3, 5, 5).await.jobs.len() });
    let b = tokio::spawn(async move { claim(&*s2, "replica-b", T0 + 3, 5, 5).await.jobs.len() });
    assert_eq!(a.await.expect("a") + b.await.expect("b"), 2);
    let c = &first.jobs[0];
    deliver(&*store, &c.job, "replica-a", c.since).await;
    let freed = claim(&*store, "replica-b", T0 + 4, 5, 5).await;
    assert_eq!(freed.jobs.len(), 1, "the settled job's slot");
    assert_eq!(freed.live, 5);
}

/// An expired lease is taken over by another owner as a verify query (the
/// holder may have reached the ministry); the old holder can neither renew
/// nor settle it any more. An in-flight job without a lease (written
/// before leases) counts as expired.
pub async fn an_expired_lease_is_recovered_with_a_verify(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("C1", "I1", &["a"], T0)).await;
    let mut old = case("C2", "I1", &["a"], T0);
    old.job_mut(1).expect("job").state = JobState::InFlight {
        since: T0,
        verifying: false,
        lease: None,
    };
    put(&*store, &old).await;
    let a = claim(&*store, "replica-a", T0, 10, 10).await;
    assert_eq!(refs(&a), [("C2", 1), ("C1", 1)], "the unleased job first");
    assert!(a.jobs[0].recovered.is_some() && a.jobs[0].verifying);
    assert!(a.jobs[1].recovered.is_none() && !a.jobs[1].verifying);
    let held = a.jobs[1].clone();
    let job = &held.job;
    let b = claim(&*store, "replica-b", T0 + LEASE - 1, 10, 10).await;
    assert!(b.jobs.is_empty(), "live: {:?}", refs(&b));
    assert_eq!(
        b.next,
        Some(T0 + LEASE),
        "look again when the leases expire"
    );
    assert!(
        !store
            .renew(job, "replica-b", held.since, T0 + 5 * LEASE)
            .await
            .expect("renew")
    );
    assert!(
        store
            .renew(job, "replica-a", held.since, T0 + 2 * LEASE)
            .await
            .expect("renew")
    );
    let b = claim(&*store, "replica-b", T0 + LEASE + 1, 10, 10).await;
    assert_eq!(refs(&b), [("C2", 1)], "only the lease a did not renew");
    let b = claim(&*store, "replica-b", T0 + 2 * LEASE, 10, 10).await;
    assert_eq!(refs(&b), [("C1", 1)]);
    let taken = &b.jobs[0];
    assert!(
        taken.verifying,
        "a submit whose holder vanished is verified first"
    );
    assert_eq!(taken.recovered.as_deref(), Some("replica replica-a"));
    assert!(
        !store
            .renew(job, "replica-a", held.since, T0 + 9 * LEASE)
            .await
            .expect("renew")
    );
    let rec = store.case("C1").await.expect("read").expect("case");
    let state = &rec.job(1).expect("job").state;
    assert!(
        !lease::is_held_by(state, "replica-a", held.since),
        "{state:?}"
    );
    assert!(
        lease::is_held_by(state, "replica-b", taken.since),
        "{state:?}"
    );
    assert_eq!(store.in_flight().await.expect("in flight").len(), 2);
}

/// A change behind an in-flight submit is held whoever holds the submit;
/// a chained step waits for its upstream's delivery by another owner.
pub async fn fifo_and_chained_holds_hold_across_owners(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut r = case("C1", "I1", &["a"], T0);
    r.push_job(
        net("a"),
        JobKind::Change {
            change_json: "{}".into(),
        },
        T0,
    );
    r.push_job(net("b"), submit(&["a"], &[]), T0);
    put(&*store, &r).await;
    let a = claim(&*store, "replica-a", T0 + 1, 10, 10).await;
    assert_eq!(refs(&a), [("C1", 1)]);
    let b = claim(&*store, "replica-b", T0 + 2, 10, 10).await;
    assert!(b.jobs.is_empty(), "the change waits behind a's submit");
    let request = ClaimRequest {
        owner: "replica-b",
        now: T0 + 2,
        until: T0 + 2 + LEASE,
        limit: 10,
        max: 10,
    };
    let chained = store.claim("network:b", &request).await.expect("claim");
    assert!(chained.jobs.is_empty(), "b's step waits for a's delivery");
    deliver(&*store, &a.jobs[0].job, "replica-a", a.jobs[0].since).await;
    let b = claim(&*store, "replica-b", T0 + 3, 10, 10).await;
    assert_eq!(refs(&b), [("C1", 2)], "then the change, by either owner");
    let request = ClaimRequest {
        now: T0 + 3,
        ..request
    };
    let chained = store.claim("network:b", &request).await.expect("claim");
    assert_eq!(chained.jobs.len(), 1, "and the chained step");
}

/// Leader leases: one holder at a time; the holder keeps it by renewing; it passes on at
/// expiry or when the holder resigns; a lease survives a reopen of the store.
pub async fn one_leader_per_task_passing_on_at_expiry_or_resignation(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let t = T0;
    assert!(
        store
            .lead("deadlines", "a", t, t + LEASE)
            .await
            .expect("lead")
    );
    assert!(
        !store
            .lead("deadlines", "b", t + 1, t + 1 + LEASE)
            .await
            .expect("lead")
    );
    assert!(
        store
            .lead("poll:tax", "b", t + 1, t + 1 + LEASE)
            .await
            .expect("lead"),
        "another task"
    );
    // Renewed by its holder, refused to the other until the renewed expiry.
    assert!(
        store
            .lead("deadlines", "a", t + 500, t + 500 + LEASE)
            .await
            .expect("renew")
    );
    assert!(
        !store
            .lead("deadlines", "b", t + LEASE, t + 2 * LEASE)
            .await
            .expect("lead")
    );
    let held = store.leader("deadlines", t + LEASE).await.expect("leader");
    assert_eq!(held.map(|l| l.owner).as_deref(), Some("a"));
    // Expired: the other takes over, and the old holder cannot renew.
    let later = t + 500 + LEASE;
    assert!(
        store
            .leader("deadlines", later)
            .await
            .expect("leader")
            .is_none()
    );
    assert!(
        store
            .lead("deadlines", "b", later, later + LEASE)
            .await
            .expect("take over")
    );
    assert!(
        !store
            .lead("deadlines", "a", later + 1, later + 1 + LEASE)
            .await
            .expect("lead")
    );
    // Resigning passes it on at once; resigning what one does not hold changes nothing.
    store.resign("deadlines", "a").await.expect("resign");
    assert!(
        !store
            .lead("deadlines", "a", later + 2, later + 2 + LEASE)
            .await
            .expect("lead")
    );
    store.resign("deadlines", "b").await.expect("resign");
    assert!(
        store
            .lead("deadlines", "a", later + 3, later + 3 + LEASE)
            .await
            .expect("lead")
    );
    drop(store);
    let store = open(dir.path());
    let held = store.leader("deadlines", later + 4).await.expect("leader");
    assert_eq!(
        held.map(|l| l.owner).as_deref(),
        Some("a"),
        "durable across a reopen"
    );
}

/// Many replicas asking at once: exactly one gets the lease.
pub async fn concurrent_candidates_get_one_leader(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut asks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        asks.push(tokio::spawn(async move {
            let owner = format!("r{i}");
            store
                .lead("retention", &owner, T0, T0 + LEASE)
                .await
                .expect("lead")
        }));
    }
    let mut granted = 0;
    for ask in asks {
        granted += usize::from(ask.await.expect("join"));
    }
    assert_eq!(granted, 1, "one leader among eight candidates");
}
