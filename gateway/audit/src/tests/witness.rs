//! Witnesses: each test makes the change a witness exists to catch — a cut
//! tail, stripped checkpoints, a swapped key — or pushes what a witness
//! must refuse (a fork, a seq going backwards, a forged signature).

use super::*;

fn public_key_hex(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("signing.pub"))
        .expect("pub")
        .lines()
        .next()
        .expect("one key")
        .to_string()
}

/// Push every checkpoint of `dir` to `store`, as `pushed_by`.
fn witness_all(dir: &Path, store: &WitnessStore, pushed_by: &str) -> Vec<Accepted> {
    checkpoints_after(dir, 0, usize::MAX)
        .expect("checkpoints")
        .into_iter()
        .map(|pending| {
            store
                .accept(&pending.push, pushed_by, "2026-01-01T00:00:00Z")
                .expect("accepted")
        })
        .collect()
}

fn witnessed(dir: &Path, doc: &WitnessDoc) -> VerifyReport {
    verify_witnessed(dir, None, doc, &[]).expect("verify")
}

#[tokio::test]
async fn a_witnessed_trail_verifies_and_says_what_is_not_covered() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, held) = (tmp.path().join("audit"), tmp.path().join("held"));
    write_log(&dir, &cfg(), 12).await;
    let store = WitnessStore::open(&held).expect("store");
    let accepted = witness_all(&dir, &store, "gw-a");
    assert_eq!(
        accepted.iter().map(|a| a.seq).collect::<Vec<_>>(),
        vec![6, 12, 17]
    );
    assert!(accepted.iter().all(|a| a.new));
    let key = read_public_keys(&dir.join("signing.pub")).expect("key")[0];
    assert_eq!(accepted[0].trail_id, trail_id(&key));
    // A resend (a lost answer) is no conflict.
    let again = witness_all(&dir, &store, "gw-a");
    assert!(again.iter().all(|a| !a.new));

    let doc = store.held(None).expect("held");
    assert_eq!(doc.trails.len(), 1);
    assert_eq!(doc.trails[0].checkpoints.len(), 3);
    let r = witnessed(&dir, &doc);
    assert!(r.intact(), "{r:?}");
    let w = r.witness.clone().expect("coverage");
    assert_eq!((w.checkpoints, w.last_witnessed_seq), (3, Some(17)));
    assert_eq!(w.records_not_witnessed, 0);

    // Records written since are reported as not witnessed.
    write_log(&dir, &cfg(), 2).await;
    let r = witnessed(&dir, &doc);
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.witness.expect("coverage").records_not_witnessed, 5);

    // Through the CLI, from the witness's answer saved to a file.
    let file = tmp.path().join("witness.json");
    std::fs::write(&file, serde_json::to_vec(&doc).expect("json")).expect("write");
    let mut out = Vec::new();
    let cmd = AuditCommand::Verify {
        dirs: vec![dir.clone()],
        public_key: None,
        witness: Some(file.display().to_string()),
        witness_client: Default::default(),
        trails: Vec::new(),
        json: false,
    };
    assert_eq!(run_to(cmd, &mut out).expect("cli"), 0);
    let out = String::from_utf8(out).expect("utf8");
    assert!(
        out.contains("witnessed: 3 checkpoints identical up to seq 17"),
        "{out}"
    );
    assert!(out.contains("5 records after it not witnessed"), "{out}");
}

#[tokio::test]
async fn a_tail_cut_after_a_witnessed_checkpoint_is_found_with_the_witness() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, held) = (tmp.path().join("audit"), tmp.path().join("held"));
    write_log(&dir, &cfg(), 12).await;
    let store = WitnessStore::open(&held).expect("store");
    witness_all(&dir, &store, "gw-a");
    // Cut everything after the checkpoint of seq 12: still a valid chain.
    let seg = &segs(&dir)[0];
    let mut lines = read_lines(seg);
    lines.truncate(12);
    write_lines(seg, &lines);
    assert!(verify(&dir, None).expect("verify").intact());

    let b = witnessed(&dir, &store.held(None).expect("held"))
        .broken
        .expect("cut found");
    assert_eq!(b.seq, Some(17));
    assert_eq!(
        b.reason,
        "the witness holds checkpoint seq 17 but the trail ends at seq 12: records cut off the end"
    );
}

#[tokio::test]
async fn stripped_checkpoints_are_found_with_the_witness() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, held) = (tmp.path().join("audit"), tmp.path().join("held"));
    write_log(&dir, &cfg(), 12).await;
    let store = WitnessStore::open(&held).expect("store");
    witness_all(&dir, &store, "gw-a");
    // Strip the checkpoints of seq 12 and 17, renumber, re-hash: the chain
    // is valid again, only less of it is signed.
    let seg = &segs(&dir)[0];
    let mut lines: Vec<String> = read_lines(seg)
        .into_iter()
        .filter(|l| !l.contains("\"kind\":\"checkpoint\"") || l.starts_with("{\"seq\":6,"))
        .collect();
    for (i, line) in lines.iter_mut().enumerate() {
        let rest = line.split_once(',').expect("seq").1;
        *line = format!("{{\"seq\":{},{rest}", i + 1);
    }
    rehash(&mut lines, 6, HashAlg::Sha256);
    write_lines(seg, &lines);
    let plain = verify(&dir, None).expect("verify");
    assert!(plain.intact(), "{plain:?}");
    assert_eq!(plain.last_checkpoint_seq, Some(6));

    let b = witnessed(&dir, &store.held(None).expect("held"))
        .broken
        .expect("stripping found");
    assert_eq!(b.seq, Some(12));
    assert!(
        b.reason
            .starts_with("differs from the checkpoint the witness holds for seq 12"),
        "{}",
        b.reason
    );
}

#[tokio::test]
async fn a_swapped_key_and_a_re_signed_trail_are_found_with_the_witness() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, held) = (tmp.path().join("audit"), tmp.path().join("held"));
    write_log(&dir, &cfg(), 12).await;
    let store = WitnessStore::open(&held).expect("store");
    witness_all(&dir, &store, "gw-a");
    // The insider writes the history they want under a key of their own
    // and puts it, and its signing.pub, in place of the real one.
    let forged = tmp.path().join("forged");
    let key = write_key(tmp.path(), "insider.key", [7; 32]);
    let insider = AuditConfig {
        signing_key_file: Some(key),
        ..cfg()
    };
    let log = AuditLog::open(&forged, &insider).expect("open");
    for i in 1..=12 {
        log.append(entry(i + 800)).await.expect("append");
    }
    log.close().await.expect("close");
    std::fs::remove_file(&segs(&dir)[0]).expect("rm");
    for name in ["000000000001.jsonl", "signing.pub"] {
        std::fs::copy(forged.join(name), dir.join(name)).expect("swap");
    }
    assert!(verify(&dir, None).expect("verify").intact());
    let original = store.held(None).expect("held").trails[0].trail_id.clone();

    let b = witnessed(&dir, &store.held(None).expect("held"))
        .broken
        .expect("swap found");
    assert!(
        b.reason
            .starts_with("the witness holds no trail signed by the verifying key(s)"),
        "{}",
        b.reason
    );

    // Pushed by the same gateway as a "new" trail, the forgery does not
    // hide the old one.
    witness_all(&dir, &store, "gw-a");
    let doc = store.held(None).expect("held");
    assert_eq!(doc.trails.len(), 2);
    let b = witnessed(&dir, &doc).broken.expect("swap found");
    assert!(
        b.reason.starts_with("the witnessed key of trail"),
        "{}",
        b.reason
    );
    // Named by the id the auditor recorded, the original trail alone.
    let b = verify_witnessed(&dir, None, &doc, std::slice::from_ref(&original))
        .expect("verify")
        .broken
        .expect("swap found");
    assert!(
        b.reason
            .starts_with(&format!("the witnessed key of trail {original}")),
        "{}",
        b.reason
    );
}

#[tokio::test]
async fn a_witness_refuses_forks_backwards_seqs_and_forged_checkpoints() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = write_key(tmp.path(), "gw.key", [3; 32]);
    let keyed = AuditConfig {
        signing_key_file: Some(key),
        ..cfg()
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_log(&a, &keyed, 12).await;
    // The same key, another history: its checkpoints fork from a's.
    let log = AuditLog::open(&b, &keyed).expect("open");
    for i in 1..=12 {
        log.append(entry(i + 500)).await.expect("append");
    }
    log.close().await.expect("close");
    let store = WitnessStore::open(&tmp.path().join("held")).expect("store");
    let pk = public_key_hex(&a);
    let line_of = |p: PendingCheckpoint| p.push.line;
    let lines_a: Vec<String> = checkpoints_after(&a, 0, 10)
        .expect("a")
        .into_iter()
        .map(line_of)
        .collect();
    let lines_b: Vec<String> = checkpoints_after(&b, 0, 10)
        .expect("b")
        .into_iter()
        .map(line_of)
        .collect();
    assert_eq!(checkpoints_after(&a, 6, 1).expect("after 6")[0].seq, 12);
    let push = |line: &str| {
        store.accept(
            &CheckpointPush {
                public_key: pk.clone(),
                line: line.to_string(),
            },
            "gw-a",
            "2026-01-01T00:00:00Z",
        )
    };
    push(&lines_a[0]).expect("seq 6");
    push(&lines_a[2]).expect("seq 17");
    let refused = |r: Result<Accepted, WitnessError>| match r {
        Err(WitnessError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let fork = refused(push(&lines_b[2]));
    assert!(
        matches!(fork, Refusal::Fork { seq: 17, .. }) && fork.is_conflict(),
        "{fork}"
    );
    let back = refused(push(&lines_a[1]));
    assert_eq!(
        back,
        Refusal::Backwards {
            pushed: 12,
            held: 17
        }
    );
    // Not a checkpoint; a signature changed and the hash recomputed.
    let start = read_lines(&segs(&a)[0]).remove(0);
    assert_eq!(refused(push(&start)), Refusal::NotACheckpoint(Kind::Start));
    let sig_at = lines_a[0].find("\"signature\":\"").expect("sig") + 13;
    let mut forged = lines_a[0].clone();
    let flipped = if &forged[sig_at..=sig_at] == "a" {
        "b"
    } else {
        "a"
    };
    forged.replace_range(sig_at..=sig_at, flipped);
    let mut one = vec![forged];
    rehash(&mut one, 0, HashAlg::Sha256);
    assert!(matches!(
        refused(push(&one[0])),
        Refusal::BadSignature { seq: 6, .. }
    ));
    // Nothing refused was kept.
    let doc = store.held(None).expect("held");
    let seqs: Vec<u64> = doc.trails[0].checkpoints.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, vec![6, 17]);
}
