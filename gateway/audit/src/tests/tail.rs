//! Open after a crash or a break: the tail recovered, never repaired.

use super::*;

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
