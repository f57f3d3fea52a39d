//! Each test causes the failure it claims to detect.

use crate::chain::{SUFFIX_LEN, split_line};
use crate::cli::{AuditCommand, run_to};
use crate::writer::Clock;
use crate::*;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod bodies;
mod chain;
mod cli;
mod config;
mod crash_loop;
mod prune;
mod query;
mod tail;
mod timestamp;
mod verify;
mod witness;
mod writer;

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
    crate::layout::segments(dir)
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
        let hash = crate::chain::digest(alg, &prev, head.as_bytes());
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

fn small_segments() -> AuditConfig {
    AuditConfig {
        checkpoint_every: 1000,
        segment_max_bytes: 4096,
        retention_days: Some(5),
        ..AuditConfig::default()
    }
}
