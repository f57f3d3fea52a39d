//! The line format and the two chain hashes.

use super::*;

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

#[test]
fn sm3_known_vector() {
    use sha2::Digest;
    let expect = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
    assert_eq!(hex::encode(sm3::Sm3::digest(b"abc")), expect);
    assert_eq!(
        hex::encode(crate::chain::hash_parts(HashAlg::Sm3, &[b"a", b"bc"])),
        expect
    );
    assert_eq!(
        hex::encode(crate::chain::hash_parts(HashAlg::Sha256, &[b"abc"])),
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

#[test]
fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("anchor.json");
    crate::chain::write_atomic(&path, b"first\n").expect("write");
    crate::chain::write_atomic(&path, b"second\n").expect("rewrite");
    assert_eq!(std::fs::read(&path).expect("read"), b"second\n");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["anchor.json"]);
}
