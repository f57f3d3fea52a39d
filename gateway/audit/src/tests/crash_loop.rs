//! A gateway killed again and again still signs its trail: open signs what
//! an earlier run left unsigned, and the checkpoint rules count from the
//! last checkpoint on disk, not from the process's start.

use super::*;

/// Neither rule fires within a run of these tests: only open signs.
fn rare_checkpoints() -> AuditConfig {
    AuditConfig {
        checkpoint_every: 1000,
        checkpoint_interval_ms: 3_600_000,
        ..AuditConfig::default()
    }
}

#[tokio::test]
async fn every_run_but_the_last_is_signed_at_the_next_open() {
    let dir = tempfile::tempdir().expect("tmp");
    for run in 0..4 {
        let log = AuditLog::open(dir.path(), &rare_checkpoints()).expect("open");
        for i in 0..3 {
            log.append(entry(run * 10 + i)).await.expect("append");
        }
        log.crash(); // no stop, no final checkpoint
    }
    // start 1, e 2..=4 | start 5, cp 6, e 7..=9 | start 10, cp 11, e 12..=14
    // | start 15, cp 16, e 17..=19
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.last_seq, Some(19));
    assert_eq!(
        r.checkpoints, 3,
        "one checkpoint per open that found unsigned records"
    );
    assert_eq!(r.last_checkpoint_seq, Some(16));
    assert_eq!(
        r.records_after_last_checkpoint, 3,
        "only the last run's records"
    );
    let recs = all(dir.path(), &Query::default());
    for cp in recs.iter().filter(|r| r.kind == Kind::Checkpoint) {
        let before = &recs[(cp.seq - 2) as usize];
        assert_eq!(
            before.kind,
            Kind::Start,
            "checkpoint {} is not open's",
            cp.seq
        );
        assert_eq!(cp.detail["covers-seq"], json!(before.seq));
    }
    let last_cp = recs
        .iter()
        .rfind(|r| r.kind == Kind::Checkpoint)
        .expect("cp");
    assert_eq!(r.last_checkpoint_at, Some(last_cp.at));
    let summary = crate::cli::summary(&r);
    assert!(
        summary.contains("last checkpoint seq 16, 3 records after it not yet signed"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_trail_that_ends_signed_is_not_signed_again_at_open() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &rare_checkpoints(), 3).await; // ends with stop 5, cp 6
    // A roll that a crash interrupted: the next segment exists, empty, and
    // the checkpoint closing the one before is the last on disk.
    crate::layout::new_segment(dir.path(), 7).expect("segment");
    let log = AuditLog::open(dir.path(), &rare_checkpoints()).expect("open");
    log.append(entry(4)).await.expect("append");
    log.crash();
    let recs = all(dir.path(), &Query::default());
    let kinds: Vec<Kind> = recs[6..].iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [Kind::Start, Kind::Intake], "no checkpoint at open");
    assert_eq!(verify(dir.path(), None).expect("verify").checkpoints, 1);
}

#[tokio::test]
async fn the_interval_counts_from_the_last_checkpoint_on_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let (clock, now) = manual_clock("2026-11-21T10:00:00.000+08:00");
    let open =
        || AuditLog::open_with_clock(dir.path(), &rare_checkpoints(), clock.clone()).expect("open");
    let set = |at: &str| *now.lock().expect("clock") = t(at);
    let log = open();
    log.append(entry(1)).await.expect("append");
    log.close().await.expect("close"); // its checkpoint, seq 4, at 10:00
    let checkpoints = || of_kind(dir.path(), Kind::Checkpoint).len();
    assert_eq!(checkpoints(), 1);

    // Half an hour later: the interval (an hour) has not passed since it.
    set("2026-11-21T10:30:00.000+08:00");
    let log = open(); // start 5
    log.append(entry(2)).await.expect("append"); // 6
    log.crash();
    assert_eq!(
        checkpoints(),
        1,
        "signed before the interval since the last checkpoint"
    );

    // A crash, then an open more than an hour after the checkpoint on disk:
    // signed at once (for both reasons), once.
    set("2026-11-21T11:00:01.000+08:00");
    let log = open(); // start 7, cp 8
    let recs = all(dir.path(), &Query::default());
    assert_eq!(recs.len(), 8);
    assert_eq!(recs[7].kind, Kind::Checkpoint);
    assert_eq!(recs[7].detail["covers-seq"], json!(7));
    log.crash();

    // A clean trail whose last checkpoint is over an hour old: the open's
    // `start` is signed at once, although no run crashed.
    let log = open();
    log.close().await.expect("close"); // start 9, stop 10, cp 11
    set("2026-11-21T12:00:02.000+08:00");
    let log = open(); // start 12, cp 13
    let recs = all(dir.path(), &Query::default());
    assert_eq!(recs.len(), 13);
    assert_eq!(
        (recs[11].kind, recs[12].kind),
        (Kind::Start, Kind::Checkpoint),
        "an old checkpoint on disk starts the interval"
    );
    log.crash();
    assert!(verify(dir.path(), None).expect("verify").intact());
}
