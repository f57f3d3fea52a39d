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
        dir: dir.path().to_path_buf(),
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
