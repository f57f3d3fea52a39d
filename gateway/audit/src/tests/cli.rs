//! `yiwang audit verify|export`.

use super::*;

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
        dirs: vec![dir.path().to_path_buf()],
        public_key: Some(pubkey.clone()),
        witness: None,
        witness_client: Default::default(),
        trails: Vec::new(),
        json: false,
    };
    let (code, out) = run(verify_cmd());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("audit trail intact: 17 records"), "{out}");

    let export = |case: Option<&str>, decrypt: bool| AuditCommand::Export {
        dirs: vec![dir.path().to_path_buf()],
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

/// Two replicas' trails: each verified on its own and named, a break in one found and
/// named while the other stays intact, and their records exported merged by time.
#[tokio::test]
async fn several_replicas_trails_verify_one_by_one_and_export_merged_by_time() {
    let root = tempfile::tempdir().expect("tmp");
    let (a, b) = (root.path().join("copy-1"), root.path().join("copy-2"));
    let named = |replica: &str| AuditConfig {
        replica: Some(replica.to_owned()),
        ..cfg()
    };
    let log_a = AuditLog::open(&a, &named("gw-a")).expect("open a");
    let log_b = AuditLog::open(&b, &named("gw-b")).expect("open b");
    // Alternating, a few milliseconds apart (record times have millisecond precision).
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(3));
    for i in 1..=6 {
        log_a.append(entry(i)).await.expect("a");
        pause().await;
        log_b.append(entry(100 + i)).await.expect("b");
        pause().await;
    }
    log_a.close().await.expect("close a");
    log_b.close().await.expect("close b");
    let err = AuditLog::open(&a, &named("gw-b")).expect_err("another replica's trail");
    assert!(err.to_string().contains("replica \"gw-a\""), "{err}");

    let run = |cmd: AuditCommand| {
        let mut out = Vec::new();
        let code = run_to(cmd, &mut out).expect("run");
        (code, String::from_utf8(out).expect("utf8"))
    };
    let verify = || AuditCommand::Verify {
        dirs: vec![a.clone(), b.clone()],
        public_key: None,
        witness: None,
        witness_client: Default::default(),
        trails: Vec::new(),
        json: false,
    };
    let (code, out) = run(verify());
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("gw-a: audit trail intact"), "{out}");
    assert!(lines[1].starts_with("gw-b: audit trail intact"), "{out}");

    let (code, out) = run(AuditCommand::Export {
        dirs: vec![a.clone(), b.clone()],
        case: None,
        principal: None,
        network: None,
        kind: Some(Kind::Intake),
        since: None,
        until: None,
        body_key: None,
        cipher: BodyCipher::Aes256Gcm,
    });
    assert_eq!(code, 0);
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 12, "{out}");
    let at = |r: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(r["at"].as_str().expect("at")).expect("time")
    };
    assert!(
        records.windows(2).all(|w| at(&w[0]) <= at(&w[1])),
        "time-ordered: {out}"
    );
    for trail in ["gw-a", "gw-b"] {
        let seqs: Vec<u64> = records
            .iter()
            .filter(|r| r["trail"] == json!(trail))
            .map(|r| r["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs.len(), 6, "{trail}: {out}");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{trail} keeps its order"
        );
    }
    // Interleaved, not one trail after the other.
    assert_ne!(records[0]["trail"], records[1]["trail"], "{out}");

    // A changed record in one trail: that trail is named broken, the other intact.
    let seg = segs(&b)[0].clone();
    let text = std::fs::read_to_string(&seg).expect("read");
    let changed = text.replacen("\"amount\":203", "\"amount\":999", 1);
    assert_ne!(changed, text, "the record to change is there");
    std::fs::write(&seg, changed).expect("write");
    let (code, out) = run(verify());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("gw-a: audit trail intact"), "{out}");
    assert!(out.contains("gw-b: audit trail BROKEN"), "{out}");
}
