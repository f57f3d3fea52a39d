//! The writer: group commit, checkpoints, segment rolls, key changes.

use super::*;

#[tokio::test]
async fn segments_roll_only_after_checkpoints() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &small_segments(), 60).await;
    let files = segs(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for (i, f) in files.iter().enumerate() {
        let lines = read_lines(f);
        let first: Record = serde_json::from_str(&lines[0]).expect("first");
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(name, format!("{:012}.jsonl", first.seq));
        let last: Record = serde_json::from_str(lines.last().expect("last")).expect("last");
        assert_eq!(last.kind, Kind::Checkpoint, "segment {i} ends unsigned");
    }
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert!(r.checkpoints as usize >= files.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::open(dir.path(), &cfg()).expect("open");
    let before = log.stats();
    // Hold the writer as if a sync were in progress while 64 callers arrive.
    log.hold(true);
    let queued = log.queued();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.spawn(async move { log.append(entry(i)).await });
    }
    while log.queued() < queued + 64 {
        tokio::task::yield_now().await;
    }
    log.hold(false);
    let mut seqs = Vec::new();
    while let Some(r) = tasks.join_next().await {
        seqs.push(r.expect("task").expect("append").seq);
    }
    let after = log.stats();
    let records = after.records - before.records;
    let fsyncs = after.fsyncs - before.fsyncs;
    assert!(records >= 64, "{records}");
    assert!(fsyncs < 64, "64 concurrent appends took {fsyncs} fsyncs");
    assert!(fsyncs <= 2, "one batch expected, {fsyncs} fsyncs");
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 64);
    log.close().await.expect("close");
    assert!(verify(dir.path(), None).expect("verify").intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unheld_concurrent_appends_stay_contiguous() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::open(dir.path(), &cfg()).expect("open");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.spawn(async move { log.append(entry(i)).await });
    }
    for i in 64..96 {
        log.record(entry(i));
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("append");
    }
    log.close().await.expect("close");
    let s = log.stats();
    assert!(s.fsyncs <= s.records, "{s:?}");
    assert_eq!(s.write_failures, 0);
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(of_kind(dir.path(), Kind::Intake).len(), 96);
    assert!(matches!(
        log.append(entry(0)).await,
        Err(AuditError::Closed)
    ));
}

#[tokio::test]
async fn a_checkpoint_follows_within_the_interval() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = AuditConfig {
        checkpoint_interval_ms: 20,
        ..AuditConfig::default()
    };
    let log = AuditLog::open(dir.path(), &cfg).expect("open");
    let r = log.append(entry(1)).await.expect("append");
    // Wait (not a timing assertion) for the writer's own checkpoint.
    let mut waited = 0;
    while of_kind(dir.path(), Kind::Checkpoint).is_empty() {
        assert!(waited < 500, "no interval checkpoint after 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    let cp = &of_kind(dir.path(), Kind::Checkpoint)[0];
    assert_eq!(cp.detail["covers-seq"], json!(r.seq));
    assert_eq!(cp.detail["covers-hash"], json!(r.hash));
    let forced = log.checkpoint().await.expect("checkpoint");
    assert_eq!(forced.seq, cp.seq + 1);
    log.close().await.expect("close");
    assert!(verify(dir.path(), None).expect("verify").intact());
}

#[tokio::test]
async fn a_key_change_is_recorded_and_both_keys_verify() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    let a = write_key(keys.path(), "a.key", [1u8; 32]);
    let b = write_key(keys.path(), "b.key", [2u8; 32]);
    let with = |k: &PathBuf| AuditConfig {
        signing_key_file: Some(k.clone()),
        ..cfg()
    };
    write_log(dir.path(), &with(&a), 3).await;
    write_log(dir.path(), &with(&b), 3).await;
    let change = of_kind(dir.path(), Kind::KeyChange);
    assert_eq!(change.len(), 1);
    let kb = SigningKey::from_bytes(&[2u8; 32]).verifying_key();
    assert_eq!(change[0].detail["key-id"], json!(key_id(&kb)));
    assert!(verify(dir.path(), None).expect("verify").intact());
    // With only the new key, the old checkpoints do not verify.
    let r = verify(dir.path(), Some(&kb)).expect("verify");
    assert_eq!(r.broken.expect("broken").seq, Some(6));
    // A key file that is named but missing is an error, not a new key.
    let missing = AuditConfig {
        signing_key_file: Some(keys.path().join("nope.key")),
        ..cfg()
    };
    assert!(AuditLog::open(dir.path(), &missing).is_err());
}
