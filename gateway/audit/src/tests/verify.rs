//! What `verify` detects: each test makes the change it claims to catch.

use super::*;

#[tokio::test]
async fn clean_log_verifies_and_counts_checkpoints() {
    let dir = tempfile::tempdir().expect("tmp");
    let receipts = write_log(dir.path(), &cfg(), 12).await;
    assert_eq!(receipts.first().map(|r| r.seq), Some(2));
    assert_eq!(receipts.last().map(|r| r.seq), Some(15));
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.records, 17);
    assert_eq!(r.checkpoints, 3);
    assert_eq!((r.first_seq, r.last_seq), (Some(1), Some(17)));
    assert_eq!(r.last_checkpoint_seq, Some(17));
    assert_eq!(r.records_after_last_checkpoint, 0);
    assert_eq!(r.hash, Some(HashAlg::Sha256));
    let kinds: Vec<Kind> = all(dir.path(), &Query::default())
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds[0], Kind::Start);
    assert_eq!(kinds[5], Kind::Checkpoint);
    assert_eq!(kinds[15], Kind::Stop);
    assert_eq!(kinds[16], Kind::Checkpoint);
    // The signing key was created private, its public half published.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("signing.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dmode = std::fs::metadata(dir.path())
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dmode & 0o777, 0o700);
    assert!(dir.path().join("signing.pub").exists());
}

#[tokio::test]
async fn a_changed_byte_names_the_record() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    assert!(lines[7].contains("\"amount\":106"));
    lines[7] = lines[7].replace("\"amount\":106", "\"amount\":906");
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!(b.seq, Some(8));
    assert_eq!(b.line, 8);
    assert_eq!(&b.file, seg);
    assert_eq!(b.reason, "hash mismatch (record changed)");
}

#[tokio::test]
async fn a_deleted_line_names_the_record_after_the_gap() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    lines.remove(7); // seq 8
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!((b.seq, b.line), (Some(9), 8));
    assert_eq!(b.reason, "seq 9 follows 7 (record deleted or reordered)");
}

#[tokio::test]
async fn swapped_lines_are_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    lines.swap(7, 8);
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!((b.seq, b.line), (Some(9), 8));
    assert!(b.reason.contains("follows 7"), "{}", b.reason);
}

#[tokio::test]
async fn a_relinked_record_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    // Edit seq 8 and fix its own hash, but not the records after it.
    lines[7] = lines[7].replace("\"amount\":106", "\"amount\":906");
    let mut one = lines[..8].to_vec();
    rehash(&mut one, 7, HashAlg::Sha256);
    lines[7] = one[7].clone();
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!(b.seq, Some(9));
    assert_eq!(b.reason, "prev does not match the hash of seq 8");
}

#[tokio::test]
async fn a_rehashed_forgery_is_caught_by_the_next_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    lines[7] = lines[7].replace("\"amount\":106", "\"amount\":906");
    rehash(&mut lines, 7, HashAlg::Sha256);
    write_lines(seg, &lines);
    let b = broken(dir.path());
    // Every hash and link is right now; the checkpoint at 12 is not.
    assert_eq!((b.seq, b.line), (Some(12), 12));
    assert_eq!(b.reason, "checkpoint signature invalid");
}

#[tokio::test]
async fn a_tampered_checkpoint_signature_is_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let orig = read_lines(seg);
    let mut lines = orig.clone();
    let rec: Record = serde_json::from_str(&lines[5]).expect("cp");
    assert_eq!(rec.kind, Kind::Checkpoint);
    let sig = rec.detail["signature"].as_str().expect("sig").to_string();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    lines[5] = lines[5].replace(&sig, &flipped);
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!(
        (b.seq, b.reason.as_str()),
        (Some(6), "hash mismatch (record changed)")
    );
    // And with every hash recomputed, the signature itself fails.
    rehash(&mut lines, 5, HashAlg::Sha256);
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!(
        (b.seq, b.reason.as_str()),
        (Some(6), "checkpoint signature invalid")
    );
}

#[tokio::test]
async fn the_wrong_public_key_is_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let other = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let r = verify(dir.path(), Some(&other)).expect("verify");
    let b = r.broken.expect("broken");
    assert_eq!(b.seq, Some(6));
    assert!(
        b.reason.starts_with("checkpoint signed by key "),
        "{}",
        b.reason
    );
    assert!(b.reason.contains(&key_id(&other)), "{}", b.reason);
    // A replaced signing.pub is the same failure.
    std::fs::write(
        dir.path().join("signing.pub"),
        format!("{}\n", hex::encode(other.as_bytes())),
    )
    .expect("pub");
    assert!(
        broken(dir.path())
            .reason
            .contains("not by the verifying key")
    );
}

#[tokio::test]
async fn an_unparsable_line_is_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    lines.insert(3, "{\"seq\":4, oops".to_string());
    write_lines(seg, &lines);
    let b = broken(dir.path());
    assert_eq!(
        (b.seq, b.line, b.reason.as_str()),
        (None, 4, "unparsable line")
    );
}
