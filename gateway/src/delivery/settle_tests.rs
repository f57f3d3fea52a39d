//! Every transition of [`settle`], one row each, and the properties that
//! hold for any outcome, policy and time.

use super::*;
use crate::delivery::outcome::FailureKind;
use crate::store::{Job, NetworkCase};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;

const NOW: Millis = 1_800_000_000_000;

fn submit() -> JobKind {
    JobKind::Submit {
        after: vec![],
        inputs: BTreeMap::new(),
    }
}

/// A record with one job in flight to `destination`, after `prior` sends.
fn in_flight(destination: Destination, kind: JobKind, prior: usize) -> CaseRecord {
    let mut r = CaseRecord::blank("C1");
    let id = r.push_job(destination, kind, NOW - 60_000);
    let job = r.job_mut(id).expect("the job just pushed");
    for i in 0..prior {
        job.attempts.push(Attempt {
            at: NOW - 50_000 + i as i64,
            elapsed_ms: 1,
            outcome: crate::store::AttemptOutcome::Retryable,
            kind: Some("not_sent".into()),
            message: "down".into(),
            adapter: None,
            verify: false,
        });
    }
    job.state = JobState::InFlight {
        since: NOW - 10,
        verifying: false,
    };
    r
}

fn network() -> Destination {
    Destination::Network("scjg".into())
}

fn attempted(verifying: bool) -> Attempted {
    Attempted {
        job: 1,
        verifying,
        started_at: NOW - 10,
        elapsed_ms: 10,
        adapter: Some("ab".repeat(32)),
    }
}

fn failed(class: ErrorClass, retry_after_ms: Option<u64>) -> Outcome {
    Outcome::Failed(Failure {
        class,
        kind: FailureKind::NoReply,
        message: "the ministry did not answer".into(),
        retry_after_ms,
    })
}

fn event(stage: yiwang_schema::Stage, at: &str) -> Event {
    Event {
        case_number: None,
        network: "scjg".into(),
        network_case_number: "SC-9".into(),
        stage,
        at: chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339"),
        details: Default::default(),
        raw_ref: None,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        initial_ms: 1000,
        max_interval_ms: 60_000,
        max_attempts: Some(5),
        max_age_s: Some(3600),
    }
}

fn run(
    record: &mut CaseRecord,
    verifying: bool,
    outcome: &Outcome,
    policy: &RetryPolicy,
) -> Settled {
    let rng = &mut StdRng::seed_from_u64(7);
    settle(record, &attempted(verifying), outcome, policy, NOW, rng).expect("the job was in flight")
}

/// What a state is, with its time relative to NOW.
#[derive(Debug, PartialEq)]
enum Is {
    Delivered(Option<&'static str>),
    PendingNow,
    PendingLater,
    VerifyLater,
    Dead(&'static str),
}

fn is(state: &JobState) -> Is {
    match state {
        JobState::Delivered {
            network_case_number,
            at,
        } => {
            assert_eq!(*at, NOW);
            Is::Delivered(match network_case_number.as_deref() {
                Some("SC-9") => Some("SC-9"),
                Some(other) => panic!("unexpected number {other}"),
                None => None,
            })
        }
        JobState::Pending { due } if *due == NOW => Is::PendingNow,
        JobState::Pending { due } if *due > NOW => Is::PendingLater,
        JobState::Verify { due } if *due > NOW => Is::VerifyLater,
        JobState::Dead { reason, at } => {
            assert_eq!(*at, NOW);
            Is::Dead(if reason.contains("gave up") {
                "gave up"
            } else {
                "permanent"
            })
        }
        other => panic!("unexpected state {other:?}"),
    }
}

#[test]
fn every_transition() {
    let delivered = Outcome::Delivered {
        network_case_number: Some("SC-9".into()),
        events: vec![],
    };
    // (what happened, verifying, prior sends, outcome, the job becomes, the attempt is)
    let rows: Vec<(&str, bool, usize, Outcome, Is, &str)> = vec![
        (
            "submit delivered",
            false,
            0,
            delivered.clone(),
            Is::Delivered(Some("SC-9")),
            "delivered",
        ),
        (
            "verify found the case",
            true,
            1,
            delivered,
            Is::Delivered(Some("SC-9")),
            "found",
        ),
        (
            "verify found nothing",
            true,
            1,
            Outcome::NotFound,
            Is::PendingNow,
            "not_found",
        ),
        (
            "rejected by the ministry",
            false,
            0,
            failed(ErrorClass::Permanent, None),
            Is::Dead("permanent"),
            "permanent",
        ),
        (
            "nothing reached it",
            false,
            0,
            failed(ErrorClass::Retryable, None),
            Is::PendingLater,
            "retryable",
        ),
        (
            "it may have acted",
            false,
            0,
            failed(ErrorClass::Ambiguous, None),
            Is::VerifyLater,
            "ambiguous",
        ),
        (
            "a verify query failed",
            true,
            1,
            failed(ErrorClass::Retryable, None),
            Is::VerifyLater,
            "retryable",
        ),
        (
            "fifth send fails: give up",
            false,
            4,
            failed(ErrorClass::Retryable, None),
            Is::Dead("gave up"),
            "retryable",
        ),
        (
            "fourth send fails: retry",
            false,
            3,
            failed(ErrorClass::Retryable, None),
            Is::PendingLater,
            "retryable",
        ),
        (
            "ambiguous at the cap: give up",
            false,
            4,
            failed(ErrorClass::Ambiguous, None),
            Is::Dead("gave up"),
            "ambiguous",
        ),
    ];
    for (what, verifying, prior, outcome, expect, label) in rows {
        let mut r = in_flight(network(), submit(), prior);
        let settled = run(&mut r, verifying, &outcome, &policy());
        assert_eq!(is(&settled.state), expect, "{what}");
        let job = r.job(1).expect("job 1");
        assert_eq!(
            job.state, settled.state,
            "{what}: the record holds the new state"
        );
        let last = job.attempts.last().expect("an attempt");
        assert_eq!(last.outcome.name(), label, "{what}");
        assert_eq!(last.verify, verifying, "{what}");
        assert_eq!(job.attempts.len(), prior + 1, "{what}");
    }
}

#[test]
fn a_job_older_than_max_age_is_dead_on_its_next_failure() {
    let mut r = in_flight(network(), submit(), 0);
    r.job_mut(1).expect("job 1").created_at = NOW - 3_600_001;
    let settled = run(
        &mut r,
        false,
        &failed(ErrorClass::Retryable, None),
        &policy(),
    );
    assert_eq!(is(&settled.state), Is::Dead("gave up"));
    let JobState::Dead { reason, .. } = settled.state else {
        unreachable!()
    };
    assert!(
        reason.contains("max-age-s") && reason.contains("did not answer"),
        "{reason}"
    );
}

#[test]
fn retry_after_is_a_floor_and_saturates() {
    let mut r = in_flight(network(), submit(), 0);
    let settled = run(
        &mut r,
        false,
        &failed(ErrorClass::Retryable, Some(120_000)),
        &policy(),
    );
    assert!(matches!(settled.state, JobState::Pending { due } if due >= NOW + 120_000));
    let mut r = in_flight(network(), submit(), 0);
    let settled = run(
        &mut r,
        false,
        &failed(ErrorClass::Retryable, Some(u64::MAX)),
        &policy(),
    );
    assert_eq!(settled.state, JobState::Pending { due: i64::MAX });
}

#[test]
fn a_delivery_records_the_number_its_events_and_a_notice() {
    let mut r = in_flight(network(), submit(), 0);
    let outcome = Outcome::Delivered {
        network_case_number: Some("SC-9".into()),
        events: vec![
            event(yiwang_schema::Stage::Accepted, "2026-11-20T09:30:00+08:00"),
            event(yiwang_schema::Stage::Accepted, "2026-11-20T09:30:00+08:00"),
        ],
    };
    let settled = run(&mut r, false, &outcome, &policy());
    assert_eq!(settled.fresh.len(), 1, "the duplicate event is dropped");
    let view: &NetworkCase = &r.networks["scjg"];
    assert_eq!(view.network_case_number.as_deref(), Some("SC-9"));
    assert_eq!(view.events.len(), 1);
    assert_eq!(settled.notices.len(), 1);
    assert_eq!(settled.notices[0].kind(), "delivery");
    assert_eq!(
        crate::delivery::notice::body(&settled.notices[0])["state"],
        "delivered"
    );
}

#[test]
fn a_retry_raises_no_notice_but_a_dead_change_does_not_either() {
    let mut r = in_flight(network(), submit(), 0);
    let settled = run(
        &mut r,
        false,
        &failed(ErrorClass::Retryable, None),
        &policy(),
    );
    assert!(settled.notices.is_empty());
    let change = JobKind::Change {
        change_json: "{}".into(),
    };
    let mut r = in_flight(network(), change, 0);
    let settled = run(
        &mut r,
        false,
        &failed(ErrorClass::Permanent, None),
        &policy(),
    );
    assert!(matches!(settled.state, JobState::Dead { .. }));
    assert!(
        settled.notices.is_empty(),
        "only submits notify delivery outcomes"
    );
}

#[test]
fn a_subscriber_job_touches_no_network_view() {
    let notify = JobKind::Notify {
        body: serde_json::json!({"type": "stage"}),
    };
    let mut r = in_flight(Destination::Subscriber("platform".into()), notify, 0);
    let outcome = Outcome::Delivered {
        network_case_number: None,
        events: vec![],
    };
    let settled = run(&mut r, false, &outcome, &policy());
    assert!(matches!(settled.state, JobState::Delivered { .. }));
    assert!(r.networks.is_empty());
    assert!(settled.notices.is_empty());
}

#[test]
fn a_job_not_in_flight_is_left_alone() {
    let mut r = in_flight(network(), submit(), 0);
    r.job_mut(1).expect("job 1").state = JobState::Pending { due: NOW };
    let before = r.clone();
    let rng = &mut StdRng::seed_from_u64(1);
    assert!(
        settle(
            &mut r,
            &attempted(false),
            &Outcome::NotFound,
            &policy(),
            NOW,
            rng
        )
        .is_none()
    );
    assert_eq!(r, before);
    assert!(
        settle(
            &mut r,
            &Attempted {
                job: 9,
                ..attempted(false)
            },
            &Outcome::NotFound,
            &policy(),
            NOW,
            rng
        )
        .is_none()
    );
}

fn any_outcome() -> impl Strategy<Value = Outcome> {
    let class = prop_oneof![
        Just(ErrorClass::Retryable),
        Just(ErrorClass::Permanent),
        Just(ErrorClass::Ambiguous)
    ];
    prop_oneof![
        Just(Outcome::NotFound),
        proptest::option::of("[A-Z0-9]{1,8}").prop_map(|n| Outcome::Delivered {
            network_case_number: n,
            events: vec![],
        }),
        (class, proptest::option::of(any::<u64>())).prop_map(|(c, ra)| failed(c, ra)),
    ]
}

fn any_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(initial_ms, max_interval_ms, max_attempts, max_age_s)| RetryPolicy {
                initial_ms,
                max_interval_ms,
                max_attempts,
                max_age_s,
            },
        )
}

proptest! {
    /// No transition loses a job, attempts only grow, the next attempt is
    /// never in the past, and no time arithmetic overflows (a debug build
    /// panics on overflow, so a wrapping sum fails here).
    #[test]
    fn no_transition_loses_a_job_or_goes_back_in_time(
        outcome in any_outcome(),
        policy in any_policy(),
        verifying in any::<bool>(),
        prior in 0usize..12,
        now in any::<i64>(),
        created_at in any::<i64>(),
        replayed_at in proptest::option::of(any::<i64>()),
        seed in any::<u64>(),
    ) {
        let mut r = in_flight(network(), submit(), prior);
        let other = r.push_job(Destination::Subscriber("platform".into()), submit(), 0);
        {
            let job = r.job_mut(1).expect("job 1");
            job.created_at = created_at;
            job.replayed_at = replayed_at;
        }
        let jobs_before: Vec<u32> = r.jobs.iter().map(|j| j.id).collect();
        let other_before: Job = r.job(other).expect("other job").clone();
        let attempts_before = r.job(1).expect("job 1").attempts.clone();
        let rng = &mut StdRng::seed_from_u64(seed);
        let settled = settle(&mut r, &attempted(verifying), &outcome, &policy, now, rng);
        let settled = settled.expect("an in-flight job always settles");
        prop_assert_eq!(r.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), jobs_before);
        prop_assert_eq!(r.job(other).expect("other job"), &other_before);
        let job = r.job(1).expect("job 1");
        prop_assert_eq!(job.attempts.len(), attempts_before.len() + 1);
        prop_assert_eq!(&job.attempts[..attempts_before.len()], &attempts_before[..]);
        prop_assert_eq!(&job.state, &settled.state);
        match &job.state {
            JobState::InFlight { .. } => prop_assert!(false, "still in flight"),
            JobState::Pending { due } | JobState::Verify { due } => prop_assert!(*due >= now),
            JobState::Delivered { at, .. } | JobState::Dead { at, .. } => prop_assert_eq!(*at, now),
        }
        if let Outcome::Failed(f) = &outcome
            && f.class == ErrorClass::Permanent
        {
            let dead = matches!(job.state, JobState::Dead { .. });
            prop_assert!(dead, "a permanent failure is a dead letter");
        }
    }
}
