//! The contract every [`Store`] backend must keep, as one generic suite:
//! atomic read-modify-write, due work oldest first, per-case FIFO, chained
//! steps held until their upstream delivers, every index (in flight, dead
//! letters, pending, cross-reference, follow-ups, deadlines, search), cursors, adapter
//! key-value data, queue depth, retention, and everything still there after
//! the store is closed and opened again; and the job leases of several
//! replicas (in `lease_conformance`).
//!
//! A backend runs it with [`store_conformance!`](crate::store_conformance),
//! naming a function that opens its store in a directory (the same directory
//! again = the same data):
//!
//! ```ignore
//! yiwang_gateway::store_conformance!(|dir: &std::path::Path| {
//!     std::sync::Arc::new(SledStore::open(dir).unwrap()) as std::sync::Arc<dyn Store>
//! });
//! ```

use super::{CaseQuery, CaseRecord, Destination, JobKind, JobState, Millis, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// Opens a backend's store in a directory.
pub trait Open: Fn(&Path) -> Arc<dyn Store> {}
impl<F: Fn(&Path) -> Arc<dyn Store>> Open for F {}

pub(super) const T0: Millis = 1_800_000_000_000;

pub(super) fn net(n: &str) -> Destination {
    Destination::Network(n.to_string())
}

pub(super) fn submit(after: &[&str], inputs: &[(&str, &str)]) -> JobKind {
    JobKind::Submit {
        after: after.iter().map(|s| s.to_string()).collect(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A case of `item` with one pending submit per network, due at `due`.
pub(super) fn case(number: &str, item: &str, networks: &[&str], due: Millis) -> CaseRecord {
    let mut r = CaseRecord::blank(number);
    r.item = item.to_string();
    r.bureau = "91350100MA00000001".into();
    r.updated_at = due;
    for n in networks {
        r.push_job(net(n), submit(&[], &[]), due);
    }
    r
}

/// Store `record` as the case's new content.
pub(super) async fn put(store: &dyn Store, record: &CaseRecord) {
    let r = record.clone();
    let stored = store
        .update(&record.case_number, &mut |_| Some(r.clone()))
        .await
        .expect("update");
    assert_eq!(
        stored.as_ref(),
        Some(record),
        "update returns what it stored"
    );
}

/// Change one job's state.
async fn set_state(store: &dyn Store, case: &str, job: u32, state: JobState) {
    store
        .update(case, &mut |rec| {
            let mut rec = rec?;
            rec.job_mut(job)?.state = state.clone();
            Some(rec)
        })
        .await
        .expect("update")
        .expect("the job exists");
}

fn cases(refs: &[super::JobRef]) -> Vec<(&str, u32)> {
    refs.iter()
        .map(|r| (r.case_number.as_str(), r.job))
        .collect()
}

/// `update` creates, reads back, and leaves everything alone when the
/// closure writes nothing.
pub async fn update_is_read_modify_write(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert!(store.case("C1").await.expect("read").is_none());
    let r = case("C1", "I1", &["a"], T0);
    put(&*store, &r).await;
    assert_eq!(store.case("C1").await.expect("read"), Some(r.clone()));
    let mut seen = None;
    let unchanged = store
        .update("C1", &mut |rec| {
            seen = rec;
            None
        })
        .await
        .expect("update");
    assert_eq!(unchanged, None);
    assert_eq!(seen, Some(r.clone()));
    assert_eq!(store.case("C1").await.expect("read"), Some(r));
}

/// Concurrent updates of one case are serialized: none is lost.
pub async fn concurrent_updates_of_one_case_are_serialized(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("C1", "I1", &[], T0)).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update("C1", &mut |rec| {
                    let mut rec = rec?;
                    rec.push_job(net("a"), submit(&[], &[]), T0);
                    Some(rec)
                })
                .await
                .expect("update");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let r = store.case("C1").await.expect("read").expect("case");
    assert_eq!(r.jobs.len(), 16);
    let ids: BTreeSet<u32> = r.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 16, "every job has its own id");
}

/// Concurrent first writes of one case (an intake and its repost racing):
/// each closure sees what the others stored, so none is lost.
pub async fn concurrent_creates_of_one_case_are_serialized(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update("NEW", &mut |rec| {
                    let mut rec = rec.unwrap_or_else(|| case("NEW", "I1", &[], T0));
                    rec.push_job(net("a"), submit(&[], &[]), T0);
                    Some(rec)
                })
                .await
                .expect("update");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let r = store.case("NEW").await.expect("read").expect("case");
    assert_eq!(r.jobs.len(), 8, "every create saw the ones before it");
    assert_eq!(store.pending(None, 100).await.expect("pending").len(), 8);
}

/// Due work: only what is due, oldest due first, at most `limit`, and when
/// the next work falls due.
pub async fn due_work_comes_oldest_first(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("C3", "I1", &["a"], T0 + 30)).await;
    put(&*store, &case("C1", "I1", &["a"], T0 + 10)).await;
    put(&*store, &case("C2", "I1", &["a", "b"], T0 + 20)).await;
    put(&*store, &case("C4", "I1", &["a"], T0 + 99)).await;
    let due = store.due("network:a", T0 + 50, 10).await.expect("due");
    assert_eq!(cases(&due.jobs), [("C1", 1), ("C2", 1), ("C3", 1)]);
    assert_eq!(due.next, Some(T0 + 99));
    let due = store.due("network:a", T0 + 50, 2).await.expect("due");
    assert_eq!(cases(&due.jobs), [("C1", 1), ("C2", 1)]);
    let due = store.due("network:b", T0 + 50, 10).await.expect("due");
    assert_eq!(cases(&due.jobs), [("C2", 2)]);
    assert_eq!(due.next, None);
    assert!(
        store
            .due("network:c", T0 + 50, 10)
            .await
            .expect("due")
            .jobs
            .is_empty()
    );
}

/// Per-case FIFO per network: a change waits behind its submit; a finished
/// submit releases it; a claimed (in-flight) job is no longer due.
pub async fn jobs_of_one_case_run_in_order(open: &impl Open) {
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
    put(&*store, &r).await;
    let due = store.due("network:a", T0 + 1, 10).await.expect("due");
    assert_eq!(cases(&due.jobs), [("C1", 1)], "the change waits");
    set_state(
        &*store,
        "C1",
        1,
        JobState::InFlight {
            since: T0,
            verifying: false,
            lease: None,
        },
    )
    .await;
    assert!(
        store
            .due("network:a", T0 + 1, 10)
            .await
            .expect("due")
            .jobs
            .is_empty()
    );
    assert_eq!(
        cases(&store.in_flight().await.expect("in flight")),
        [("C1", 1)]
    );
    let delivered = JobState::Delivered {
        at: T0 + 1,
        network_case_number: Some("A-1".into()),
    };
    set_state(&*store, "C1", 1, delivered).await;
    assert!(store.in_flight().await.expect("in flight").is_empty());
    let due = store.due("network:a", T0 + 1, 10).await.expect("due");
    assert_eq!(cases(&due.jobs), [("C1", 2)], "the change is released");
}

/// A chained step is held until its upstream delivered with the result it
/// needs; the result releases it.
pub async fn chained_steps_wait_for_their_upstream(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut r = case("C1", "I1", &["scjg"], T0);
    r.push_job(
        net("tax"),
        submit(&["scjg"], &[("uscc", "scjg.certificate_number")]),
        T0,
    );
    put(&*store, &r).await;
    assert!(
        store
            .due("network:tax", T0, 10)
            .await
            .expect("due")
            .jobs
            .is_empty()
    );
    let delivered = JobState::Delivered {
        at: T0,
        network_case_number: Some("S-1".into()),
    };
    set_state(&*store, "C1", 1, delivered).await;
    assert!(
        store
            .due("network:tax", T0, 10)
            .await
            .expect("due")
            .jobs
            .is_empty(),
        "delivered, but the certificate number is not there yet"
    );
    store
        .update("C1", &mut |rec| {
            let mut rec = rec?;
            rec.networks
                .entry("scjg".into())
                .or_default()
                .certificate_number = Some("91350100X".into());
            Some(rec)
        })
        .await
        .expect("update");
    let due = store.due("network:tax", T0, 10).await.expect("due");
    assert_eq!(cases(&due.jobs), [("C1", 2)]);
}

/// Dead letters newest first; pending work oldest first; both by destination.
pub async fn dead_letters_and_pending_are_indexed(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("C1", "I1", &["a"], T0)).await;
    put(&*store, &case("C2", "I1", &["a", "b"], T0 + 5)).await;
    let dead = |at| JobState::Dead {
        at,
        reason: "rejected".into(),
    };
    set_state(&*store, "C1", 1, dead(T0 + 100)).await;
    set_state(&*store, "C2", 1, dead(T0 + 200)).await;
    let all = store.dead_letters(None, 10).await.expect("dead");
    assert_eq!(cases(&all), [("C2", 1), ("C1", 1)]);
    let one = store
        .dead_letters(Some("network:a"), 1)
        .await
        .expect("dead");
    assert_eq!(cases(&one), [("C2", 1)]);
    assert!(
        store
            .dead_letters(Some("network:b"), 10)
            .await
            .expect("dead")
            .is_empty()
    );
    let pending = store.pending(None, 10).await.expect("pending");
    assert_eq!(
        cases(&pending),
        [("C2", 2)],
        "a dead letter is finished work"
    );
    let b = store.pending(Some("network:b"), 10).await.expect("pending");
    assert_eq!(cases(&b), [("C2", 2)]);
    set_state(
        &*store,
        "C2",
        2,
        JobState::Delivered {
            at: T0,
            network_case_number: None,
        },
    )
    .await;
    assert!(
        store
            .pending(Some("network:b"), 10)
            .await
            .expect("pending")
            .is_empty()
    );
}

/// A ministry's case number finds the unified case, per network.
pub async fn network_case_numbers_find_their_case(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut r = case("C1", "I1", &["a"], T0);
    r.networks
        .entry("a".into())
        .or_default()
        .network_case_number = Some("A-77".into());
    put(&*store, &r).await;
    let found = store
        .case_for_network_number("a", "A-77")
        .await
        .expect("xref");
    assert_eq!(found.as_deref(), Some("C1"));
    assert!(
        store
            .case_for_network_number("b", "A-77")
            .await
            .expect("xref")
            .is_none()
    );
    assert!(
        store
            .case_for_network_number("a", "A-78")
            .await
            .expect("xref")
            .is_none()
    );
}

/// A case is open for follow-up on a network from its delivery there with
/// the network's number until a final stage, due earliest first, per
/// network; the schedule moves it; a final stage takes it out.
pub async fn follow_ups_are_indexed_per_network(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let deliver = |r: &mut CaseRecord, network: &str, at: Millis| {
        let id = r
            .jobs
            .iter()
            .find(|j| j.destination == net(network))
            .map(|j| j.id)
            .expect("a job");
        let number = format!("{network}-{}", r.case_number);
        r.job_mut(id).expect("job").state = JobState::Delivered {
            at,
            network_case_number: Some(number.clone()),
        };
        r.networks
            .entry(network.into())
            .or_default()
            .network_case_number = Some(number);
    };
    let mut c1 = case("C1", "I1", &["a", "b"], T0);
    deliver(&mut c1, "a", T0 + 20);
    let mut c2 = case("C2", "I1", &["a"], T0);
    deliver(&mut c2, "a", T0 + 10);
    put(&*store, &c1).await;
    put(&*store, &c2).await;
    put(&*store, &case("C3", "I1", &["a"], T0)).await;
    let due = store.follow_ups_due("a", T0 + 20, 10).await.expect("due");
    assert_eq!(due.cases, ["C2", "C1"], "delivered ones, earliest first");
    assert_eq!(due.next, None);
    let due = store.follow_ups_due("a", T0 + 15, 10).await.expect("due");
    assert_eq!(
        (due.cases.as_slice(), due.next),
        (&["C2".to_string()][..], Some(T0 + 20))
    );
    let due = store.follow_ups_due("a", T0 + 20, 1).await.expect("due");
    assert_eq!(
        (due.cases.len(), due.next),
        (1, Some(T0 + 20)),
        "at most limit"
    );
    assert!(
        store
            .follow_ups_due("b", T0 + 99, 10)
            .await
            .expect("due")
            .cases
            .is_empty()
    );
    store
        .update("C2", &mut |rec| {
            let mut rec = rec?;
            rec.networks.get_mut("a")?.follow_up = Some(super::FollowUp {
                next: T0 + 500,
                interval_ms: 480,
                queries: 1,
            });
            Some(rec)
        })
        .await
        .expect("update");
    let due = store.follow_ups_due("a", T0 + 100, 10).await.expect("due");
    assert_eq!(
        (due.cases.as_slice(), due.next),
        (&["C1".to_string()][..], Some(T0 + 500))
    );
    store
        .update("C1", &mut |rec| {
            let mut rec = rec?;
            rec.networks.get_mut("a")?.stage = Some(yiwang_schema::Stage::Completed);
            Some(rec)
        })
        .await
        .expect("update");
    let due = store.follow_ups_due("a", T0 + 1000, 10).await.expect("due");
    assert_eq!(
        due.cases,
        ["C2"],
        "a final stage leaves the follow-up index"
    );
    drop(store);
    let store = open(dir.path());
    let due = store.follow_ups_due("a", T0 + 1000, 10).await.expect("due");
    assert_eq!(due.cases, ["C2"], "the schedule survives a reopen");
}

/// The deadline index names cases whose light may change by `now`.
pub async fn deadlines_are_indexed(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut r = case("C1", "I1", &["a"], T0);
    r.clock = Some(super::CaseClock {
        start: T0,
        value: 3,
        unit: yiwang_schema::TimeLimitUnit::CalendarDays,
        yellow_ms: 3_600_000,
    });
    r.deadline = Some(T0 + 3 * 86_400_000);
    put(&*store, &r).await;
    let yellow_at = T0 + 3 * 86_400_000 - 3_600_000;
    assert!(
        store
            .deadlines_due(yellow_at - 1, 10)
            .await
            .expect("deadlines")
            .is_empty()
    );
    assert_eq!(
        store.deadlines_due(yellow_at, 10).await.expect("deadlines"),
        ["C1"]
    );
}

/// Search narrows by item, network, state, bureau and time, newest first.
pub async fn search_narrows_by_every_field(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("C1", "I1", &["a"], T0 + 1)).await;
    put(&*store, &case("C2", "I2", &["b"], T0 + 2)).await;
    let mut other = case("C3", "I1", &["a", "b"], T0 + 3);
    other.bureau = "91350200MA00000002".into();
    put(&*store, &other).await;
    set_state(
        &*store,
        "C3",
        2,
        JobState::Dead {
            at: T0 + 3,
            reason: "x".into(),
        },
    )
    .await;
    let numbers = |rs: Vec<CaseRecord>| rs.into_iter().map(|r| r.case_number).collect::<Vec<_>>();
    let q = |f: &dyn Fn(&mut CaseQuery)| {
        let mut q = CaseQuery {
            limit: 10,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = store.search(&q(&|_| {})).await.expect("search");
    assert_eq!(numbers(all), ["C3", "C2", "C1"]);
    let i1 = store
        .search(&q(&|q| q.item = Some("I1".into())))
        .await
        .expect("search");
    assert_eq!(numbers(i1), ["C3", "C1"]);
    let b = store
        .search(&q(&|q| q.network = Some("b".into())))
        .await
        .expect("search");
    assert_eq!(numbers(b), ["C3", "C2"]);
    let dead = store
        .search(&q(&|q| q.state = Some("dead".into())))
        .await
        .expect("search");
    assert_eq!(numbers(dead), ["C3"]);
    let dead_a = q(&|q| {
        q.state = Some("dead".into());
        q.network = Some("a".into());
    });
    assert!(store.search(&dead_a).await.expect("search").is_empty());
    let bureau = q(&|q| q.bureaus = Some(BTreeSet::from(["91350200MA00000002".to_string()])));
    assert_eq!(
        numbers(store.search(&bureau).await.expect("search")),
        ["C3"]
    );
    let window = q(&|q| {
        q.since = Some(T0 + 2);
        q.until = Some(T0 + 3);
    });
    assert_eq!(
        numbers(store.search(&window).await.expect("search")),
        ["C2"]
    );
    let one = store.search(&q(&|q| q.limit = 1)).await.expect("search");
    assert_eq!(numbers(one), ["C3"]);
}

/// Queue depth per destination counts unfinished jobs and the oldest one.
pub async fn depth_counts_unfinished_work(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("C1", "I1", &["a"], T0 + 10)).await;
    put(&*store, &case("C2", "I1", &["a", "b"], T0 + 20)).await;
    set_state(
        &*store,
        "C2",
        2,
        JobState::Delivered {
            at: T0,
            network_case_number: None,
        },
    )
    .await;
    let depth: BTreeMap<String, (u64, Option<Millis>)> = store
        .depth()
        .await
        .expect("depth")
        .into_iter()
        .map(|d| (d.destination, (d.pending, d.oldest_created_at)))
        .collect();
    assert_eq!(depth.get("network:a"), Some(&(2, Some(T0 + 10))));
    assert!(depth.get("network:b").is_none_or(|d| d.0 == 0));
}

/// Cursors and adapter key-value data, each network's its own.
pub async fn cursors_and_kv_are_per_network(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert!(store.cursor("a").await.expect("cursor").is_none());
    store.set_cursor("a", "c-1").await.expect("set");
    store.set_cursor("a", "c-2").await.expect("set");
    assert_eq!(
        store.cursor("a").await.expect("cursor").as_deref(),
        Some("c-2")
    );
    assert!(store.cursor("b").await.expect("cursor").is_none());
    let kv = store.kv();
    assert!(kv.set("a", "token", b"secret-a").is_ok());
    assert_eq!(kv.get("a", "token").as_deref(), Some(&b"secret-a"[..]));
    assert!(
        kv.get("b", "token").is_none(),
        "a network sees only its own keys"
    );
    kv.delete("a", "token");
    assert!(kv.get("a", "token").is_none());
    let big = vec![0u8; crate::runtime::KV_MAX_TOTAL];
    assert!(kv.set("a", "big", &big).is_err(), "the quota holds");
}

/// A network's kv quota counts keys and values as they are now: an
/// overwrite replaces the old value's bytes, a delete frees them, and the
/// count survives a reopen, so the quota holds exactly at its limit.
pub async fn kv_quota_holds_across_overwrite_delete_and_reopen(open: &impl Open) {
    use crate::runtime::{KV_MAX_TOTAL, KV_MAX_VALUE, KvError, KvUsage};
    let dir = tempfile::tempdir().expect("tempdir");
    // 16 keys of 2 bytes with values filling the quota to the byte.
    let value = vec![7u8; KV_MAX_TOTAL / 16 - 2];
    assert!(value.len() <= KV_MAX_VALUE);
    let full = KvUsage {
        bytes: KV_MAX_TOTAL as u64,
        keys: 16,
    };
    {
        let store = open(dir.path());
        let kv = store.kv();
        for i in 0..16 {
            kv.set("a", &format!("{i:02}"), &value).expect("fits");
        }
        assert_eq!(kv.usage("a").expect("usage"), full);
        assert!(matches!(kv.set("a", "xx", b""), Err(KvError::QuotaFull)));
        kv.set("a", "00", &value)
            .expect("an overwrite of the same size fits");
        let longer = [&value[..], b"!"].concat();
        assert!(
            matches!(kv.set("a", "00", &longer), Err(KvError::QuotaFull)),
            "one byte more than the quota"
        );
        kv.set("b", "00", &value).expect("the quota is per network");
        kv.delete("a", "15");
        kv.delete("a", "never-set");
        kv.set("a", "xx", b"").expect("a delete frees its bytes");
    }
    let store = open(dir.path());
    let kv = store.kv();
    let after = KvUsage {
        bytes: (KV_MAX_TOTAL - value.len()) as u64,
        keys: 16,
    };
    assert_eq!(kv.usage("a").expect("usage"), after, "counted after reopen");
    assert_eq!(kv.get("a", "00").as_deref(), Some(&value[..]));
    assert!(kv.get("a", "15").is_none());
    let too_big = vec![0u8; value.len() - 1];
    assert!(matches!(
        kv.set("a", "yy", &too_big),
        Err(KvError::QuotaFull)
    ));
    kv.set("a", "y", &too_big).expect("fits to the byte");
    assert_eq!(kv.usage("a").expect("usage").bytes, KV_MAX_TOTAL as u64);
}

/// Retention drops settled cases last changed before the cut-off, and only
/// those.
pub async fn retention_drops_only_old_settled_cases(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    put(&*store, &case("OLD", "I1", &[], T0)).await;
    put(&*store, &case("OPEN", "I1", &["a"], T0)).await;
    put(&*store, &case("NEW", "I1", &[], T0 + 1000)).await;
    assert_eq!(store.compact(T0 + 500).await.expect("compact"), 1);
    assert!(store.case("OLD").await.expect("read").is_none());
    assert!(
        store.case("OPEN").await.expect("read").is_some(),
        "unfinished work stays"
    );
    assert!(store.case("NEW").await.expect("read").is_some());
    let all = store
        .search(&CaseQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(all.len(), 2, "its index entries went with it");
}

/// Closed and opened again: records, every index, depth and cursors are
/// there (what `update` acknowledged was durable).
pub async fn everything_survives_a_reopen(open: &impl Open) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        let mut r = case("C1", "I1", &["a", "b"], T0);
        r.networks
            .entry("a".into())
            .or_default()
            .network_case_number = Some("A-1".into());
        put(&*store, &r).await;
        set_state(
            &*store,
            "C1",
            2,
            JobState::InFlight {
                since: T0,
                verifying: false,
                lease: None,
            },
        )
        .await;
        store.set_cursor("a", "c-9").await.expect("set");
    }
    let store = open(dir.path());
    let r = store.case("C1").await.expect("read").expect("case");
    assert_eq!(r.jobs.len(), 2);
    assert_eq!(
        cases(&store.due("network:a", T0, 10).await.expect("due").jobs),
        [("C1", 1)]
    );
    assert_eq!(
        cases(&store.in_flight().await.expect("in flight")),
        [("C1", 2)]
    );
    let found = store
        .case_for_network_number("a", "A-1")
        .await
        .expect("xref");
    assert_eq!(found.as_deref(), Some("C1"));
    assert_eq!(
        store.cursor("a").await.expect("cursor").as_deref(),
        Some("c-9")
    );
    let depth = store.depth().await.expect("depth");
    assert_eq!(depth.iter().map(|d| d.pending).sum::<u64>(), 2);
}

/// One `#[tokio::test]` per rule of the suite, for a backend's opener.
#[macro_export]
macro_rules! store_conformance {
    ($open:expr) => {
        $crate::store_conformance!(@tests $open;
            update_is_read_modify_write,
            concurrent_updates_of_one_case_are_serialized,
            concurrent_creates_of_one_case_are_serialized,
            due_work_comes_oldest_first,
            jobs_of_one_case_run_in_order,
            chained_steps_wait_for_their_upstream,
            dead_letters_and_pending_are_indexed,
            network_case_numbers_find_their_case,
            deadlines_are_indexed,
            follow_ups_are_indexed_per_network,
            search_narrows_by_every_field,
            depth_counts_unfinished_work,
            cursors_and_kv_are_per_network,
            kv_quota_holds_across_overwrite_delete_and_reopen,
            retention_drops_only_old_settled_cases,
            everything_survives_a_reopen,
        );
        $crate::store_conformance!(@leases $open;
            two_owners_never_hold_one_job,
            the_concurrency_limit_counts_every_owners_live_leases,
            an_expired_lease_is_recovered_with_a_verify,
            fifo_and_chained_holds_hold_across_owners,
            one_leader_per_task_passing_on_at_expiry_or_resignation,
            concurrent_candidates_get_one_leader,
        );
    };
    (@leases $open:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::store::lease_conformance::$name(&$open).await;
            }
        )*
    };
    (@tests $open:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::store::conformance::$name(&$open).await;
            }
        )*
    };
}
