//! Retention: anchors, and evidence kept back.

use super::*;

#[tokio::test]
async fn prune_leaves_a_verifiable_anchor() {
    let dir = tempfile::tempdir().expect("tmp");
    let (clock, now) = manual_clock("2026-01-01T09:00:00.000+08:00");
    let log = AuditLog::open_with_clock(dir.path(), &small_segments(), clock).expect("open");
    for i in 0..40 {
        log.append(entry(i)).await.expect("append");
    }
    *now.lock().expect("clock") = t("2026-01-20T09:00:00.000+08:00");
    for i in 40..80 {
        log.append(entry(i)).await.expect("append");
    }
    let files_before = segs(dir.path());
    let report = log
        .prune(
            Utc.with_ymd_and_hms(2026, 1, 20, 0, 0, 0)
                .single()
                .expect("now"),
        )
        .await
        .expect("prune");
    assert!(!report.removed.is_empty(), "{report:?}");
    assert!(report.removed.len() < files_before.len());
    assert!(report.kept_back.is_none(), "{report:?}");
    log.close().await.expect("close");

    let anchor_seq = report.anchor_seq.expect("anchor");
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.anchor_seq, Some(anchor_seq));
    assert_eq!(r.first_seq, Some(anchor_seq + 1));
    assert_eq!(of_kind(dir.path(), Kind::Prune).len(), 1);
    for gone in &report.removed {
        assert!(!gone.exists());
    }
    let mut out = Vec::new();
    let cmd = AuditCommand::Verify {
        dirs: vec![dir.path().to_path_buf()],
        public_key: None,
        witness: None,
        witness_client: Default::default(),
        trails: Vec::new(),
        json: false,
    };
    assert_eq!(run_to(cmd, &mut out).expect("cli"), 0);
    let out = String::from_utf8(out).expect("utf8");
    assert!(
        out.contains(&format!("anchored at seq {anchor_seq}")),
        "{out}"
    );

    // A forged anchor: signature changed and hash recomputed.
    let anchor_path = dir.path().join("anchor.json");
    let original = std::fs::read_to_string(&anchor_path).expect("anchor");
    let mut doc: serde_json::Value = serde_json::from_str(&original).expect("json");
    let line = doc["checkpoint"].as_str().expect("line").to_string();
    let rec: Record = serde_json::from_str(&line).expect("cp");
    let sig = rec.detail["signature"].as_str().expect("sig");
    let forged_sig = format!(
        "{}{}",
        if sig.starts_with('a') { "b" } else { "a" },
        &sig[1..]
    );
    let mut forged = vec![line.replace(sig, &forged_sig)];
    rehash(&mut forged, 0, HashAlg::Sha256);
    doc["checkpoint"] = json!(forged[0]);
    doc["hash"] = json!(split_line(forged[0].as_bytes()).map(|s| hex::encode(s.hash)));
    std::fs::write(&anchor_path, doc.to_string()).expect("forge");
    assert_eq!(broken(dir.path()).reason, "anchor signature invalid");

    // An anchor that is not the one the next record links to.
    std::fs::write(&anchor_path, &original).expect("restore");
    let first_left = segs(dir.path())[0].clone();
    std::fs::remove_file(&first_left).expect("rm");
    let b = broken(dir.path());
    assert!(
        b.reason
            .starts_with("first record after the anchor does not link to it"),
        "{}",
        b.reason
    );

    // Deleting anchor.json is detected.
    std::fs::remove_file(&anchor_path).expect("rm anchor");
    let b = broken(dir.path());
    assert!(b.reason.contains("there is no anchor.json"), "{}", b.reason);
}

#[tokio::test]
async fn prune_without_retention_or_young_segments_does_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::open(dir.path(), &small_segments()).expect("open");
    for i in 0..60 {
        log.append(entry(i)).await.expect("append");
    }
    let report = log.prune(Utc::now()).await.expect("prune");
    assert!(report.removed.is_empty());
    assert!(!dir.path().join("anchor.json").exists());
    log.close().await.expect("close");
}

#[tokio::test]
async fn prune_keeps_a_broken_segment_as_evidence() {
    let dir = tempfile::tempdir().expect("tmp");
    let (clock, now) = manual_clock("2026-01-01T09:00:00.000+08:00");
    let log = AuditLog::open_with_clock(dir.path(), &small_segments(), clock).expect("open");
    for i in 0..40 {
        log.append(entry(i)).await.expect("append");
    }
    *now.lock().expect("clock") = t("2026-01-20T09:00:00.000+08:00");
    for i in 40..80 {
        log.append(entry(i)).await.expect("append");
    }
    let first = segs(dir.path())[0].clone();
    let mut lines = read_lines(&first);
    lines[3] = lines[3].replace("\"amount\":102", "\"amount\":902");
    write_lines(&first, &lines);
    let report = log
        .prune(
            Utc.with_ymd_and_hms(2026, 1, 20, 0, 0, 0)
                .single()
                .expect("now"),
        )
        .await
        .expect("prune");
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(
        report
            .kept_back
            .as_deref()
            .is_some_and(|k| k.contains("broken at seq 4")),
        "{report:?}"
    );
    assert!(first.exists());
    assert!(!dir.path().join("anchor.json").exists());
    log.close().await.expect("close");
    assert_eq!(broken(dir.path()).seq, Some(4));
}

/// Old history deleted without the key: the first segments removed and an
/// `anchor.json` written around the genuine signed checkpoint that closed
/// them, with retention off and no pruning — then the same with a forged,
/// chained (but unsigned) `prune` record appended at the tail.
#[tokio::test]
async fn deleted_leading_segments_behind_a_forged_anchor_are_a_break() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = AuditConfig {
        retention_days: None,
        ..small_segments()
    };
    let log = AuditLog::open(dir.path(), &cfg).expect("open");
    for i in 0..80 {
        log.append(entry(i)).await.expect("append");
    }
    log.close().await.expect("close");
    let files = segs(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    let cut = &files[..3];
    let closing = read_lines(&cut[2]).pop().expect("closing line");
    let (split, rec) = crate::chain::parse_line(closing.as_bytes()).expect("line");
    assert_eq!(rec.kind, Kind::Checkpoint);
    let anchor = json!({
        "format": "yiwang-audit-anchor/1",
        "seq": rec.seq,
        "hash": hex::encode(split.hash),
        "pruned-at": "2026-01-20T00:00:00Z",
        "pruned-segments": cut.iter().map(|p| crate::layout::file_name(p)).collect::<Vec<_>>(),
        "checkpoint": closing,
    });
    std::fs::write(dir.path().join("anchor.json"), anchor.to_string()).expect("anchor");
    for f in cut {
        std::fs::remove_file(f).expect("rm");
    }
    let b = broken(dir.path());
    assert_eq!(b.seq, Some(rec.seq));
    assert!(b.file.ends_with("anchor.json"), "{b}");
    assert_eq!(
        b.reason,
        format!(
            "no signed prune record made this anchor: records 1..={} are missing \
             (segments deleted, not pruned by retention)",
            rec.seq
        )
    );

    // A `prune` record naming the anchor, chained at the tail but signed by
    // no checkpoint, does not make it valid.
    let last = segs(dir.path()).pop().expect("last");
    let mut lines = read_lines(&last);
    let tail: Record = serde_json::from_str(lines.last().expect("tail")).expect("rec");
    let forged = format!(
        "{{\"seq\":{},\"at\":\"2026-01-20T00:00:00.000+08:00\",\"kind\":\"prune\",\
         \"detail\":{{\"anchor-seq\":{}}},\"bodies\":[],\"prev\":\"{}\",\"hash\":\"{}\"}}",
        tail.seq + 1,
        rec.seq,
        "0".repeat(64),
        "0".repeat(64)
    );
    lines.push(forged);
    let n = lines.len();
    rehash(&mut lines, n - 1, HashAlg::Sha256);
    write_lines(&last, &lines);
    let r = verify(dir.path(), None).expect("verify");
    assert_eq!(
        r.last_seq,
        Some(tail.seq + 1),
        "the forged record chains: {r:?}"
    );
    let b = r.broken.expect("still broken");
    assert!(b.reason.starts_with("no signed prune record"), "{b}");
}
