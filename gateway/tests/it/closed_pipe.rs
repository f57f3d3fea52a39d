//! The command line stops quietly when its reader does (`yiwang adapter describe X | head -1`):
//! no panic, no error, exit 0.

use std::process::{Command, Stdio};

#[test]
fn describe_into_a_closed_pipe_exits_quietly() {
    // The reading end is closed before the command starts, so its first write fails with
    // EPIPE every time (no race with a reader that has not hung up yet).
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .args(["adapter", "describe", yiwang_artifacts::MARKET_REGULATION])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run yiwang");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn describe_into_an_open_pipe_still_prints_everything() {
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .args(["adapter", "describe", yiwang_artifacts::MARKET_REGULATION])
        .output()
        .expect("run yiwang");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let descriptor: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(descriptor["name"], "market-regulation");
}
