//! Each test causes the failure it claims to detect.

use super::chain::{self, SUFFIX_LEN, split_line};
use super::cli::{AuditCommand, run_to};
use super::writer::Clock;
use super::*;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn cfg() -> AuditConfig {
    AuditConfig {
        checkpoint_every: 5,
        ..AuditConfig::default()
    }
}

fn entry(i: u64) -> Entry {
    Entry::new(Kind::Intake)
        .principal("window-1")
        .case(format!("c-{i}"))
        .network("market")
        .detail(json!({"amount": 100 + i}))
}

/// start(1), e1..e4, cp(6), e5..e9, cp(12), e10..e12, stop(16), cp(17).
async fn write_log(dir: &Path, cfg: &AuditConfig, n: u64) -> Vec<Receipt> {
    let log = AuditLog::open(dir, cfg).expect("open");
    let mut receipts = Vec::new();
    for i in 1..=n {
        receipts.push(log.append(entry(i)).await.expect("append"));
    }
    log.close().await.expect("close");
    receipts
}

fn segs(dir: &Path) -> Vec<PathBuf> {
    verify::segments(dir)
        .expect("segments")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.ends_with('\n'));
    text.lines().map(str::to_string).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write");
}

/// What an attacker without the key can do: recompute every hash from
/// line `from` on, relinking each to the one before.
fn rehash(lines: &mut [String], from: usize, alg: HashAlg) {
    for i in from..lines.len() {
        let prev = if i == 0 {
            split_line(lines[0].as_bytes()).expect("line").prev
        } else {
            split_line(lines[i - 1].as_bytes()).expect("line").hash
        };
        let head = lines[i][..lines[i].len() - SUFFIX_LEN].to_string();
        let hash = chain::digest(alg, &prev, head.as_bytes());
        lines[i] = format!(
            "{head},\"prev\":\"{}\",\"hash\":\"{}\"}}",
            hex::encode(prev),
            hex::encode(hash)
        );
    }
}

fn broken(dir: &Path) -> Broken {
    let report = verify(dir, None).expect("verify");
    report.broken.expect("the chain should be broken")
}

fn all(dir: &Path, q: &Query) -> Vec<Record> {
    query(dir, q).collect::<Result<Vec<_>, _>>().expect("query")
}

fn of_kind(dir: &Path, kind: Kind) -> Vec<Record> {
    all(
        dir,
        &Query {
            kind: Some(kind),
            ..Query::default()
        },
    )
}

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).expect("time")
}

fn manual_clock(start: &str) -> (Clock, Arc<Mutex<DateTime<FixedOffset>>>) {
    let now = Arc::new(Mutex::new(t(start)));
    let c = now.clone();
    (Arc::new(move || *c.lock().expect("clock")), now)
}

fn write_key(dir: &Path, name: &str, bytes: [u8; 32]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{}\n", hex::encode(bytes))).expect("key");
    p
}

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
async fn the_line_is_the_hashed_body_plus_prev_and_hash() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 1).await;
    let lines = read_lines(&segs(dir.path())[0]);
    let line = &lines[1];
    let rec: Record = serde_json::from_str(line).expect("record");
    // The body is the record's JSON without prev/hash; the hash is
    // H(prev bytes ‖ body), over the bytes on disk.
    let body = format!("{}}}", &line[..line.len() - SUFFIX_LEN]);
    assert!(body.starts_with("{\"seq\":2,\"at\":\""));
    assert!(!body.contains("\"prev\""));
    let prev = hex::decode(&rec.prev).expect("hex");
    let mut input = prev.clone();
    input.extend_from_slice(body.as_bytes());
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&input)), rec.hash);
    let first: Record = serde_json::from_str(&lines[0]).expect("record");
    assert_eq!(first.prev, "0".repeat(64));
    assert_eq!(rec.prev, first.hash);
}

#[tokio::test]
async fn reopen_continues_the_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 3).await; // 1..=4, stop 5, cp 6
    let log = AuditLog::open(dir.path(), &cfg()).expect("reopen"); // start 7
    let r = log.append(entry(4)).await.expect("append");
    assert_eq!(r.seq, 8);
    drop(log); // a clean close by drop: stop 9, cp 10
    let report = verify(dir.path(), None).expect("verify");
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.last_seq, Some(10));
    assert_eq!(report.last_checkpoint_seq, Some(10));
    let recs = all(dir.path(), &Query::default());
    assert_eq!(recs[6].kind, Kind::Start);
    assert_eq!(recs[6].prev, recs[5].hash);
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
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

#[tokio::test]
async fn a_torn_last_line_is_recovered_at_open() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 3).await; // ends at cp 6
    let seg = segs(dir.path())[0].clone();
    let lines = read_lines(&seg);
    // A crash in the middle of writing seq 7.
    let torn = lines[2][..90].replace("\"seq\":3", "\"seq\":7");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("seg");
    std::io::Write::write_all(&mut f, torn.as_bytes()).expect("torn");
    drop(f);
    // Until open recovers it, verify reports the fragment, not a break.
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.unterminated_tail_bytes, torn.len() as u64);

    let log = AuditLog::open(dir.path(), &cfg()).expect("open");
    log.close().await.expect("close");
    let r = verify(dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.unterminated_tail_bytes, 0);
    let rec = of_kind(dir.path(), Kind::Recovered);
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].seq, 7);
    assert_eq!(rec[0].detail["cut-bytes"], json!(torn.len()));
    use base64::Engine as _;
    let cut = base64::engine::general_purpose::STANDARD
        .decode(rec[0].detail["cut-base64"].as_str().expect("b64"))
        .expect("b64");
    assert_eq!(cut, torn.as_bytes());

    // A complete but unparsable last line is cut the same way.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("seg");
    std::io::Write::write_all(&mut f, b"\0\0\0garbage\n").expect("garbage");
    drop(f);
    assert_eq!(broken(dir.path()).reason, "unparsable line");
    drop(AuditLog::open(dir.path(), &cfg()).expect("open"));
    assert!(verify(dir.path(), None).expect("verify").intact());
    let rec = of_kind(dir.path(), Kind::Recovered);
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[1].detail["reason"], json!("unparsable final line"));
}

#[tokio::test]
async fn open_reports_but_never_repairs_a_broken_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    write_log(dir.path(), &cfg(), 12).await;
    let seg = segs(dir.path())[0].clone();
    let mut lines = read_lines(&seg);
    lines[7] = lines[7].replace("\"amount\":106", "\"amount\":906");
    write_lines(&seg, &lines);
    let before = std::fs::read(&seg).expect("read");

    let log = AuditLog::open(dir.path(), &cfg()).expect("open succeeds");
    log.close().await.expect("close");
    let after = std::fs::read(&seg).expect("read");
    assert_eq!(&after[..before.len()], &before[..], "history was rewritten");
    let found = of_kind(dir.path(), Kind::ChainBreakFound);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].detail["seq"], json!(8));
    assert_eq!(
        found[0].detail["reason"],
        json!("hash mismatch (record changed)")
    );
    // Verify still names the original break.
    assert_eq!(broken(dir.path()).seq, Some(8));
}

fn small_segments() -> AuditConfig {
    AuditConfig {
        checkpoint_every: 1000,
        segment_max_bytes: 4096,
        retention_days: Some(5),
        ..AuditConfig::default()
    }
}

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
        dir: dir.path().to_path_buf(),
        public_key: None,
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
    let report = log.prune(Utc::now()).expect("prune");
    assert!(report.removed.is_empty());
    assert!(!dir.path().join("anchor.json").exists());
    log.close().await.expect("close");
}

#[test]
fn sm3_known_vector() {
    use sha2::Digest;
    let expect = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
    assert_eq!(hex::encode(sm3::Sm3::digest(b"abc")), expect);
    assert_eq!(
        hex::encode(chain::hash_parts(HashAlg::Sm3, &[b"a", b"bc"])),
        expect
    );
    assert_eq!(
        hex::encode(chain::hash_parts(HashAlg::Sha256, &[b"abc"])),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn an_sm3_chain_verifies_and_differs_from_sha256() {
    let sm3_dir = tempfile::tempdir().expect("tmp");
    let sha_dir = tempfile::tempdir().expect("tmp");
    let seed = tempfile::tempdir().expect("tmp");
    let key = write_key(seed.path(), "signing.key", [9u8; 32]);
    let base = AuditConfig {
        signing_key_file: Some(key),
        ..cfg()
    };
    let sm3_cfg = AuditConfig {
        hash: HashAlg::Sm3,
        ..base.clone()
    };
    for (dir, cfg) in [(&sm3_dir, &sm3_cfg), (&sha_dir, &base)] {
        let (clock, _) = manual_clock("2026-11-21T10:00:00.123+08:00");
        let log = AuditLog::open_with_clock(dir.path(), cfg, clock).expect("open");
        for i in 1..=12 {
            log.append(entry(i)).await.expect("append");
        }
        log.close().await.expect("close");
    }
    let r = verify(sm3_dir.path(), None).expect("verify");
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.hash, Some(HashAlg::Sm3));
    assert_eq!(r.checkpoints, 3);
    // The same record content (seq 2 has no alg-dependent field and the
    // same prev-independent body) hashes differently.
    let a = read_lines(&segs(sm3_dir.path())[0]);
    let b = read_lines(&segs(sha_dir.path())[0]);
    let head = |l: &str| l[..l.len() - SUFFIX_LEN].to_string();
    assert_eq!(head(&a[1]), head(&b[1]));
    assert_ne!(a[1], b[1]);
    let s = split_line(a[1].as_bytes()).expect("line");
    assert!(s.hash_ok(HashAlg::Sm3) && !s.hash_ok(HashAlg::Sha256));
    // A rehash with the wrong algorithm does not pass for the SM3 chain.
    let seg = &segs(sm3_dir.path())[0];
    let mut lines = a.clone();
    rehash(&mut lines, 3, HashAlg::Sha256);
    write_lines(seg, &lines);
    assert_eq!(
        broken(sm3_dir.path()).reason,
        "hash mismatch (record changed)"
    );
    // The chain's algorithm is fixed for its directory.
    let err = AuditLog::open(sha_dir.path(), &sm3_cfg).expect_err("alg change");
    assert!(err.to_string().contains("uses sha256"), "{err}");
}

async fn bodies_roundtrip(cipher: BodyCipher) {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    let key = [0x42u8; 32];
    let cfg = AuditConfig {
        keep_bodies: true,
        body_key_file: Some(write_key(keys.path(), "body.key", key)),
        body_cipher: cipher,
        ..cfg()
    };
    let secret = "申请人 张三 身份证 110101199003071234".as_bytes().to_vec();
    let log = AuditLog::open(dir.path(), &cfg).expect("open");
    let r = log
        .append(
            Entry::new(Kind::AdapterCall)
                .case("c-1")
                .body("request", secret.clone())
                .body("response", b"{\"ok\":true}".to_vec()),
        )
        .await
        .expect("append");
    log.close().await.expect("close");

    let raw = std::fs::read(&segs(dir.path())[0]).expect("raw");
    let hay = String::from_utf8_lossy(&raw);
    assert!(!hay.contains("张三"), "plaintext on disk");
    assert!(!hay.contains("ok\\\":true"), "plaintext on disk");
    assert!(verify(dir.path(), None).expect("verify").intact());

    let rec = all(dir.path(), &Query::default())
        .into_iter()
        .find(|x| x.seq == r.seq)
        .expect("record");
    assert_eq!(rec.bodies[0].cipher, Some(cipher));
    assert_eq!(rec.bodies[0].size, secret.len() as u64);
    let plain = decrypt_bodies(&rec, cipher, &key).expect("decrypt");
    assert_eq!(plain[0], ("request".to_string(), secret));
    assert_eq!(plain[1].1, b"{\"ok\":true}");
    assert!(decrypt_bodies(&rec, cipher, &[0x43u8; 32]).is_err());
    let other = match cipher {
        BodyCipher::Aes256Gcm => BodyCipher::Sm4Gcm,
        BodyCipher::Sm4Gcm => BodyCipher::Aes256Gcm,
    };
    assert!(decrypt_bodies(&rec, other, &key).is_err());
    // The AAD binds a body to its record: moved to another seq, it fails.
    let mut moved = rec.clone();
    moved.seq += 1;
    assert!(decrypt_bodies(&moved, cipher, &key).is_err());
}

#[tokio::test]
async fn kept_bodies_are_encrypted_with_aes_256_gcm() {
    bodies_roundtrip(BodyCipher::Aes256Gcm).await;
}

#[tokio::test]
async fn kept_bodies_are_encrypted_with_sm4_gcm() {
    bodies_roundtrip(BodyCipher::Sm4Gcm).await;
}

#[tokio::test]
async fn without_keep_bodies_only_digests_are_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::open(dir.path(), &cfg()).expect("open");
    log.append(Entry::new(Kind::Intake).body("intake", b"secret-form-data".to_vec()))
        .await
        .expect("append");
    log.close().await.expect("close");
    let raw = std::fs::read_to_string(&segs(dir.path())[0]).expect("raw");
    assert!(!raw.contains("secret-form-data"));
    let rec = &of_kind(dir.path(), Kind::Intake)[0];
    use sha2::Digest;
    assert_eq!(
        rec.bodies,
        vec![BodyRecord {
            label: "intake".into(),
            sha256: hex::encode(sha2::Sha256::digest(b"secret-form-data")),
            size: 16,
            cipher: None,
            nonce: None,
            data: None,
        }]
    );
    assert!(
        decrypt_bodies(rec, BodyCipher::Aes256Gcm, &[0u8; 32])
            .expect("nothing to decrypt")
            .is_empty()
    );
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

#[tokio::test]
async fn query_filters_by_case_principal_network_kind_and_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let (clock, now) = manual_clock("2026-11-21T10:00:00.000+08:00");
    let log = AuditLog::open_with_clock(dir.path(), &cfg(), clock).expect("open");
    let set = |s: &str| *now.lock().expect("clock") = t(s);
    log.append(Entry::new(Kind::Intake).case("c-1").principal("window-1"))
        .await
        .expect("a");
    set("2026-11-21T11:00:00.000+08:00");
    log.append(Entry::new(Kind::Outbound).case("c-1").network("market"))
        .await
        .expect("b");
    set("2026-11-21T12:00:00.000+08:00");
    log.append(Entry::new(Kind::Outbound).case("c-2").network("tax"))
        .await
        .expect("c");
    set("2026-11-21T13:00:00.000+08:00");
    log.append(Entry::new(Kind::Denial).principal("window-2"))
        .await
        .expect("d");
    log.close().await.expect("close");
    let d = dir.path();
    let count = |q: Query| all(d, &q).len();
    let q = Query::default;
    assert_eq!(
        count(Query {
            case: Some("c-1".into()),
            ..q()
        }),
        2
    );
    assert_eq!(
        count(Query {
            principal: Some("window-2".into()),
            ..q()
        }),
        1
    );
    assert_eq!(
        count(Query {
            network: Some("tax".into()),
            ..q()
        }),
        1
    );
    assert_eq!(
        count(Query {
            kind: Some(Kind::Outbound),
            ..q()
        }),
        2
    );
    let mid = all(
        d,
        &Query {
            since: Some(t("2026-11-21T03:00:00Z")),
            until: Some(t("2026-11-21T12:00:00+08:00")),
            ..q()
        },
    );
    assert_eq!(mid.len(), 1);
    assert_eq!(mid[0].network.as_deref(), Some("market"));
    assert_eq!(
        count(Query {
            case: Some("c-1".into()),
            kind: Some(Kind::Intake),
            ..q()
        }),
        1
    );
}

#[test]
fn config_parses_kebab_case_and_reports_problems() {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        audit: AuditConfig,
    }
    let w: Wrapper = toml::from_str(
        r#"
        [audit]
        dir = "/var/lib/yiwang/audit"
        hash = "sm3"
        checkpoint-every = 100
        checkpoint-interval-ms = 5000
        keep-bodies = true
        body-cipher = "sm4-gcm"
        retention-days = 365
        segment-max-bytes = 1048576
        "#,
    )
    .expect("parse");
    let c = w.audit;
    assert_eq!(c.hash, HashAlg::Sm3);
    assert_eq!(c.body_cipher, BodyCipher::Sm4Gcm);
    assert_eq!((c.checkpoint_every, c.retention_days), (100, Some(365)));
    let problems = c.check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("body-key-file"));
    assert!(AuditConfig::default().check().is_empty());
    assert!(toml::from_str::<Wrapper>("[audit]\nhash = \"md5\"\n").is_err());
    assert!(toml::from_str::<Wrapper>("[audit]\nkeep-body = true\n").is_err());
    let bad = AuditConfig {
        checkpoint_every: 0,
        retention_days: Some(0),
        ..AuditConfig::default()
    };
    assert_eq!(bad.check().len(), 2);
}

#[tokio::test]
async fn cli_verify_and_export() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    let body_key = write_key(keys.path(), "body.key", [5u8; 32]);
    let cfg = AuditConfig {
        keep_bodies: true,
        body_key_file: Some(body_key.clone()),
        ..cfg()
    };
    let log = AuditLog::open(dir.path(), &cfg).expect("open");
    for i in 1..=12 {
        log.append(entry(i).body("request", format!("form {i}").into_bytes()))
            .await
            .expect("append");
    }
    log.close().await.expect("close");
    let pubkey = keys.path().join("audit.pub");
    std::fs::copy(dir.path().join("signing.pub"), &pubkey).expect("copy");

    let run = |cmd: AuditCommand| {
        let mut out = Vec::new();
        let code = run_to(cmd, &mut out).expect("run");
        (code, String::from_utf8(out).expect("utf8"))
    };
    let verify_cmd = || AuditCommand::Verify {
        dir: dir.path().to_path_buf(),
        public_key: Some(pubkey.clone()),
        json: false,
    };
    let (code, out) = run(verify_cmd());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("audit trail intact: 17 records"), "{out}");

    let export = |case: Option<&str>, decrypt: bool| AuditCommand::Export {
        dir: dir.path().to_path_buf(),
        case: case.map(str::to_string),
        principal: None,
        network: None,
        kind: None,
        since: None,
        until: None,
        body_key: decrypt.then(|| body_key.clone()),
        cipher: BodyCipher::Aes256Gcm,
    };
    let (code, out) = run(export(Some("c-3"), true));
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["case"], json!("c-3"));
    assert_eq!(lines[0]["decrypted"][0]["text"], json!("form 3"));
    let (_, out) = run(export(None, false));
    assert_eq!(out.lines().count(), 17);
    assert!(!out.contains("decrypted"));

    let seg = &segs(dir.path())[0];
    let mut lines = read_lines(seg);
    lines.remove(4); // seq 5
    write_lines(seg, &lines);
    let (code, out) = run(verify_cmd());
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains("BROKEN at seq 6"), "{out}");
    assert!(out.contains("000000000001.jsonl line 5"), "{out}");
    assert!(out.contains("seq 6 follows 4"), "{out}");
}

#[test]
fn cli_parses_as_a_subcommand() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Top {
        #[command(subcommand)]
        audit: AuditCommand,
    }
    let t = Top::try_parse_from([
        "yiwang",
        "export",
        "/tmp/a",
        "--kind",
        "adapter-call",
        "--since",
        "2026-11-21T00:00:00+08:00",
        "--cipher",
        "sm4-gcm",
    ])
    .expect("parse");
    match t.audit {
        AuditCommand::Export {
            kind,
            since,
            cipher,
            ..
        } => {
            assert_eq!(kind, Some(Kind::AdapterCall));
            assert!(since.is_some());
            assert_eq!(cipher, BodyCipher::Sm4Gcm);
        }
        AuditCommand::Verify { .. } => panic!("wrong subcommand"),
    }
    assert!(Top::try_parse_from(["yiwang", "export", "/tmp/a", "--kind", "nope"]).is_err());
    assert!(Top::try_parse_from(["yiwang", "export", "/tmp/a", "--since", "yesterday"]).is_err());
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
