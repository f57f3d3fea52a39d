//! Every transition of [`settle`], one row each, and the properties that
//! hold for any outcome, policy and time.

use super::*;
use crate::delivery::backflow::{MAX_EVENTS_PER_NETWORK, Refusal};
use crate::delivery::outcome::{FailureKind, SANDBOX_LIMITS};
use crate::delivery::retry::later;
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
            local: false,
        });
    }
    job.state = claimed_state(false);
    r
}

/// In flight under the claim [`attempted`] settles.
fn claimed_state(verifying: bool) -> JobState {
    JobState::InFlight {
        since: NOW - 10,
        verifying,
        lease: Some(crate::store::Lease {
            owner: "replica-a".into(),
            until: NOW + 30_000,
        }),
    }
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
        owner: "replica-a".into(),
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

/// An adapter call that failed with `kind` (`limit_cpu_time`, `instantiate`…).
fn call_failed(class: ErrorClass, kind: &'static str) -> Outcome {
    Outcome::Failed(Failure {
        class,
        kind: FailureKind::Call(kind),
        message: format!("{kind} happened"),
        retry_after_ms: None,
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
        limit_hits: 3,
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
fn retry_after_is_a_floor_up_to_the_ceiling() {
    let mut r = in_flight(network(), submit(), 0);
    let settled = run(
        &mut r,
        false,
        &failed(ErrorClass::Retryable, Some(30_000)),
        &policy(),
    );
    assert!(matches!(settled.state, JobState::Pending { due } if due >= NOW + 30_000));
    for huge in [120_000, u64::MAX] {
        let mut r = in_flight(network(), submit(), 0);
        let settled = run(
            &mut r,
            false,
            &failed(ErrorClass::Retryable, Some(huge)),
            &policy(),
        );
        assert_eq!(
            settled.state,
            JobState::Pending { due: NOW + 60_000 },
            "retry-after {huge} waits max-interval-ms"
        );
    }
}

/// The attempt as `kind` failed it, `n` times before the one settled now.
fn hits(kind: &str, class: crate::store::AttemptOutcome, n: usize, r: &mut CaseRecord) {
    let job = r.job_mut(1).expect("job 1");
    for i in 0..n {
        job.attempts.push(Attempt {
            at: NOW - 40_000 + i as i64,
            elapsed_ms: 1,
            outcome: class,
            kind: Some(kind.into()),
            message: "over".into(),
            adapter: None,
            verify: false,
            local: kind == "instantiate",
        });
    }
}

#[test]
fn poison_calls_end_after_limit_hits() {
    use crate::store::AttemptOutcome::{Permanent, Retryable};
    // (what, earlier attempts (kind, outcome, count), this failure, verifying, the job becomes)
    type Row = (
        &'static str,
        Vec<(&'static str, crate::store::AttemptOutcome, usize)>,
        Outcome,
        bool,
        Is,
    );
    let rows: Vec<Row> = vec![
        (
            "first cpu hit",
            vec![],
            call_failed(ErrorClass::Retryable, "limit_cpu_time"),
            false,
            Is::PendingLater,
        ),
        (
            "second hit",
            vec![("limit_memory", Permanent, 1)],
            call_failed(ErrorClass::Retryable, "limit_cpu_time"),
            false,
            Is::PendingLater,
        ),
        (
            "third hit, mixed limits",
            vec![
                ("limit_memory", Permanent, 1),
                ("limit_stack", Retryable, 1),
            ],
            call_failed(ErrorClass::Retryable, "limit_cpu_time"),
            false,
            Is::Dead("poison"),
        ),
        (
            "third hit, after a send",
            vec![("limit_output", Retryable, 2)],
            call_failed(ErrorClass::Ambiguous, "limit_table"),
            false,
            Is::Dead("poison"),
        ),
        (
            "a permanent limit is counted, not final",
            vec![],
            call_failed(ErrorClass::Permanent, "limit_memory"),
            false,
            Is::PendingLater,
        ),
        (
            "a permanent third limit ends",
            vec![("limit_memory", Permanent, 2)],
            call_failed(ErrorClass::Permanent, "limit_memory"),
            false,
            Is::Dead("poison"),
        ),
        (
            "an ambiguous second hit is verified",
            vec![("limit_cpu_time", Retryable, 1)],
            call_failed(ErrorClass::Ambiguous, "limit_cpu_time"),
            false,
            Is::VerifyLater,
        ),
        (
            "a verify's third hit ends too",
            vec![("limit_cpu_time", Retryable, 2)],
            call_failed(ErrorClass::Retryable, "limit_cpu_time"),
            true,
            Is::Dead("poison"),
        ),
        (
            "wall time is not a sandbox limit",
            vec![("limit_wall_time", Retryable, 4)],
            call_failed(ErrorClass::Retryable, "limit_wall_time"),
            false,
            Is::Dead("gave up"),
        ),
        (
            "other failures between hits do not count",
            vec![("limit_cpu_time", Retryable, 1), ("trap", Retryable, 2)],
            call_failed(ErrorClass::Retryable, "limit_cpu_time"),
            false,
            Is::PendingLater,
        ),
        (
            "local shortages are no hits",
            vec![
                ("limit_cpu_time", Retryable, 1),
                ("instantiate", Retryable, 1),
            ],
            call_failed(ErrorClass::Retryable, "limit_cpu_time"),
            false,
            Is::PendingLater,
        ),
    ];
    let lenient = RetryPolicy {
        max_attempts: Some(5),
        ..policy()
    };
    for (what, before, outcome, verifying, expect) in rows {
        let mut r = in_flight(network(), submit(), 0);
        for (kind, class, n) in before {
            hits(kind, class, n, &mut r);
        }
        let settled = run(&mut r, verifying, &outcome, &lenient);
        let got = match &settled.state {
            JobState::Dead { reason, .. } if reason.contains("sandbox limit") => Is::Dead("poison"),
            other => is(other),
        };
        assert_eq!(got, expect, "{what}: {:?}", settled.state);
    }
}

#[test]
fn a_poison_reason_names_the_limit_the_count_and_a_possible_send() {
    let mut r = in_flight(network(), submit(), 0);
    hits(
        "limit_memory",
        crate::store::AttemptOutcome::Retryable,
        1,
        &mut r,
    );
    let one_hit = RetryPolicy {
        limit_hits: 2,
        ..policy()
    };
    let settled = run(
        &mut r,
        false,
        &call_failed(ErrorClass::Retryable, "limit_cpu_time"),
        &one_hit,
    );
    let JobState::Dead { reason, .. } = settled.state else {
        panic!("dead: {:?}", settled.state)
    };
    assert!(
        reason.starts_with("adapter hit a sandbox limit 2 times"),
        "{reason}"
    );
    assert!(
        reason.contains("limit_cpu_time: limit_cpu_time happened"),
        "{reason}"
    );
    assert!(reason.contains("limit-hits = 2"), "{reason}");
    assert!(!reason.contains("may have reached"), "{reason}");

    let mut r = in_flight(network(), submit(), 0);
    let once = RetryPolicy {
        limit_hits: 1,
        ..policy()
    };
    let settled = run(
        &mut r,
        false,
        &call_failed(ErrorClass::Ambiguous, "limit_output"),
        &once,
    );
    let JobState::Dead { reason, .. } = settled.state else {
        panic!("dead: {:?}", settled.state)
    };
    assert!(
        reason.contains("1 times") && reason.contains("limit_output"),
        "{reason}"
    );
    assert!(reason.contains("may have reached the ministry"), "{reason}");
}

#[test]
fn a_replay_counts_limit_hits_afresh() {
    let mut r = in_flight(network(), submit(), 0);
    hits(
        "limit_cpu_time",
        crate::store::AttemptOutcome::Retryable,
        2,
        &mut r,
    );
    r.job_mut(1).expect("job 1").replayed_at = Some(NOW - 20_000);
    let settled = run(
        &mut r,
        false,
        &call_failed(ErrorClass::Retryable, "limit_cpu_time"),
        &policy(),
    );
    assert_eq!(is(&settled.state), Is::PendingLater);
}

#[test]
fn a_local_shortage_counts_against_nothing() {
    // Four sends of five already: a counted failure now would give up.
    for verifying in [false, true] {
        let mut r = in_flight(network(), submit(), 4);
        let sends = r.job(1).expect("job 1").sends();
        let shortage = call_failed(ErrorClass::Retryable, "instantiate");
        let settled = run(&mut r, verifying, &shortage, &policy());
        let due = match settled.state {
            JobState::Pending { due } if !verifying => due,
            JobState::Verify { due } if verifying => due,
            other => panic!("verifying {verifying}: back as it was, not {other:?}"),
        };
        assert!(
            (NOW + 1000..=NOW + 1500).contains(&due),
            "back in about a second: {}",
            due - NOW
        );
        let job = r.job(1).expect("job 1");
        assert_eq!(job.sends(), sends, "not a send");
        let last = job.attempts.last().expect("kept in the history");
        assert!(
            last.local && last.message.starts_with("not counted"),
            "{last:?}"
        );
        // A run of shortages is one entry.
        let len = job.attempts.len();
        r.job_mut(1).expect("job 1").state = claimed_state(verifying);
        run(&mut r, verifying, &shortage, &policy());
        assert_eq!(r.job(1).expect("job 1").attempts.len(), len);
        // The next counted failure still gives up at five sends.
        r.job_mut(1).expect("job 1").state = claimed_state(false);
        let settled = run(
            &mut r,
            false,
            &failed(ErrorClass::Retryable, None),
            &policy(),
        );
        assert_eq!(is(&settled.state), Is::Dead("gave up"));
        assert_eq!(r.job(1).expect("job 1").attempts.len(), len + 1);
    }
    // Even past max-age: the age is judged on a real attempt.
    let mut r = in_flight(network(), submit(), 0);
    r.job_mut(1).expect("job 1").created_at = NOW - 3_600_001;
    let settled = run(
        &mut r,
        false,
        &call_failed(ErrorClass::Retryable, "instantiate"),
        &policy(),
    );
    assert!(matches!(settled.state, JobState::Pending { .. }));
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
fn a_reply_cannot_speak_under_another_number() {
    let mut r = in_flight(network(), submit(), 0);
    let mut other = event(yiwang_schema::Stage::Completed, "2026-11-21T09:30:00+08:00");
    other.network_case_number = "SC-10".into();
    let outcome = Outcome::Delivered {
        network_case_number: Some("SC-9".into()),
        events: vec![
            event(yiwang_schema::Stage::Accepted, "2026-11-20T09:30:00+08:00"),
            other,
        ],
    };
    let settled = run(&mut r, false, &outcome, &policy());
    assert_eq!(settled.fresh.len(), 1);
    assert_eq!(settled.refused.len(), 1);
    assert_eq!(settled.refused[0].why, Refusal::OtherNumber);
    assert_eq!(r.networks["scjg"].events.len(), 1);
    assert_eq!(
        r.networks["scjg"].stage,
        Some(yiwang_schema::Stage::Accepted)
    );
}

/// A case with a submit delivered to `scjg` under `SC-9`.
fn delivered_to_scjg() -> CaseRecord {
    let mut r = CaseRecord::blank("C1");
    let id = r.push_job(network(), submit(), NOW - 60_000);
    r.job_mut(id).expect("the job").state = JobState::Delivered {
        at: NOW - 1000,
        network_case_number: Some("SC-9".into()),
    };
    r.networks
        .entry("scjg".into())
        .or_default()
        .network_case_number = Some("SC-9".into());
    r
}

#[test]
fn back_flow_is_confined_to_the_networks_own_cases() {
    // (what, network speaking, its number, the record's number known, accepted)
    let rows: Vec<(&str, &str, &str, bool, Option<Refusal>)> = vec![
        ("its own case, its number", "scjg", "SC-9", true, None),
        (
            "its own case, number not yet known",
            "scjg",
            "SC-77",
            false,
            None,
        ),
        (
            "its own case, another number",
            "scjg",
            "SC-10",
            true,
            Some(Refusal::OtherNumber),
        ),
        (
            "a case never routed to it",
            "tax",
            "SC-9",
            true,
            Some(Refusal::OtherCase),
        ),
        (
            "a case never routed to it, its own number",
            "tax",
            "TX-1",
            true,
            Some(Refusal::OtherCase),
        ),
    ];
    for (what, speaker, number, known, refusal) in rows {
        let mut r = delivered_to_scjg();
        if !known {
            r.networks.clear();
        }
        let before = r.clone();
        let mut e = event(yiwang_schema::Stage::Completed, "2026-11-21T09:30:00+08:00");
        e.network_case_number = number.into();
        e.network = "scjg".into();
        e.details.certificate_number = Some("FORGED-CERT".into());
        let applied = apply_events(&mut r, speaker, vec![e]);
        match refusal {
            Some(why) => {
                assert_eq!(r, before, "{what}: the record is untouched");
                assert!(applied.fresh.is_empty(), "{what}");
                assert_eq!(applied.refused.len(), 1, "{what}");
                assert_eq!(applied.refused[0].why, why, "{what}");
            }
            None => {
                assert_eq!(applied.fresh.len(), 1, "{what}");
                let view = &r.networks[speaker];
                assert_eq!(view.network_case_number.as_deref(), Some(number), "{what}");
                assert_eq!(
                    view.events[0].network, speaker,
                    "{what}: the speaker is who it says"
                );
            }
        }
    }
}

#[test]
fn the_same_content_at_another_time_is_one_event() {
    let mut r = delivered_to_scjg();
    let first = event(yiwang_schema::Stage::Accepted, "2026-11-20T09:30:00+08:00");
    let mut again = event(yiwang_schema::Stage::Accepted, "2026-11-20T10:45:00+08:00");
    again.raw_ref = Some(format!("sha256:{}", "0".repeat(64)));
    assert_eq!(apply_events(&mut r, "scjg", vec![first]).fresh.len(), 1);
    let applied = apply_events(&mut r, "scjg", vec![again.clone()]);
    assert!(applied.fresh.is_empty() && applied.refused.is_empty());
    assert_eq!(r.networks["scjg"].events.len(), 1);
    // Other content is another event, even at the same time.
    let mut denied = again;
    denied.details.decision = Some(yiwang_schema::Decision::Denied);
    assert_eq!(apply_events(&mut r, "scjg", vec![denied]).fresh.len(), 1);
    assert_eq!(r.networks["scjg"].events.len(), 2);
}

#[test]
fn a_network_keeps_at_most_the_cap_of_events_per_case() {
    let mut r = delivered_to_scjg();
    let invented: Vec<Event> = (0..MAX_EVENTS_PER_NETWORK + 5)
        .map(|i| {
            let mut e = event(
                yiwang_schema::Stage::UnderReview,
                "2026-11-20T09:30:00+08:00",
            );
            e.details.raw_status = Some(format!("status-{i}"));
            e
        })
        .collect();
    let applied = apply_events(&mut r, "scjg", invented);
    assert_eq!(applied.fresh.len(), MAX_EVENTS_PER_NETWORK);
    assert_eq!(applied.refused.len(), 5);
    assert!(applied.refused.iter().all(|x| x.why == Refusal::TooMany));
    assert_eq!(r.networks["scjg"].events.len(), MAX_EVENTS_PER_NETWORK);
    let mut one_more = event(yiwang_schema::Stage::Completed, "2026-11-22T09:30:00+08:00");
    one_more.details.raw_status = Some("new".into());
    let applied = apply_events(&mut r, "scjg", vec![one_more]);
    assert_eq!(applied.refused.len(), 1);
    assert_eq!(r.networks["scjg"].events.len(), MAX_EVENTS_PER_NETWORK);
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

/// A replica that lost its lease cannot apply its outcome over the claim
/// another replica made since (nor over its own earlier claim).
#[test]
fn an_outcome_under_a_lost_lease_is_not_applied() {
    let mut r = in_flight(network(), submit(), 0);
    let rng = &mut StdRng::seed_from_u64(1);
    let delivered = Outcome::Delivered {
        network_case_number: Some("N-1".into()),
        events: vec![],
    };
    for (owner, started_at) in [("replica-b", NOW - 10), ("replica-a", NOW - 20)] {
        let before = r.clone();
        let stale = Attempted {
            owner: owner.into(),
            started_at,
            ..attempted(false)
        };
        assert!(settle(&mut r, &stale, &delivered, &policy(), NOW, rng).is_none());
        assert_eq!(r, before, "{owner} at {started_at}");
    }
    assert!(settle(&mut r, &attempted(false), &delivered, &policy(), NOW, rng).is_some());
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
        (class.clone(), proptest::option::of(any::<u64>())).prop_map(|(c, ra)| failed(c, ra)),
        (class, any_call_kind()).prop_map(|(c, k)| call_failed(c, k)),
    ]
}

/// A sandbox limit, a local shortage, or another adapter failure.
fn any_call_kind() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        proptest::sample::select(SANDBOX_LIMITS),
        Just("instantiate"),
        Just("limit_wall_time"),
        Just("trap"),
    ]
}

fn any_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u64>()),
        any::<u32>(),
    )
        .prop_map(
            |(initial_ms, max_interval_ms, max_attempts, max_age_s, limit_hits)| RetryPolicy {
                initial_ms,
                max_interval_ms,
                max_attempts,
                max_age_s,
                limit_hits,
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
        // The prior attempts are counted ones: a new local one is added.
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
            && !f.kind.is_sandbox_limit()
            && !f.kind.is_local_shortage()
        {
            let dead = matches!(job.state, JobState::Dead { .. });
            prop_assert!(dead, "a permanent failure is a dead letter");
        }
        if let Outcome::Failed(f) = &outcome
            && f.kind.is_local_shortage()
        {
            let back = matches!(job.state, JobState::Pending { .. } | JobState::Verify { .. });
            prop_assert!(back, "a local shortage is never final");
        }
    }

    /// Whatever Retry-After an adapter claims (u64::MAX too), the next
    /// attempt is due within [now, now + max-interval-ms].
    #[test]
    fn retry_after_never_parks_a_job_beyond_the_ceiling(
        retry_after_ms in prop_oneof![Just(u64::MAX), Just(i64::MAX as u64 + 1), any::<u64>()],
        policy in any_policy(),
        class in prop_oneof![Just(ErrorClass::Retryable), Just(ErrorClass::Ambiguous)],
        verifying in any::<bool>(),
        now in any::<i64>(),
        seed in any::<u64>(),
    ) {
        let mut r = in_flight(network(), submit(), 0);
        r.job_mut(1).expect("job 1").created_at = now;
        let policy = RetryPolicy { max_attempts: None, max_age_s: None, ..policy };
        let rng = &mut StdRng::seed_from_u64(seed);
        let settled = settle(&mut r, &attempted(verifying), &failed(class, Some(retry_after_ms)), &policy, now, rng)
            .expect("settles");
        match settled.state {
            JobState::Pending { due } | JobState::Verify { due } => {
                prop_assert!(due >= now);
                prop_assert!(due <= later(now, policy.max_interval_ms), "due {} after now", due.saturating_sub(now));
            }
            other => prop_assert!(false, "retried, not {:?}", other),
        }
    }
}
