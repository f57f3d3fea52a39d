//! Every adapter in plugins/ passes its recorded fixtures, and a fixture
//! that does not match fails with a readable diff.

use std::path::Path;
use yiwang_gateway::fixture;
use yiwang_gateway::runtime::{Runtime, RuntimeConfig};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: Some(8),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// The plugin folder of an artifact (`market_regulation` → plugins/market-regulation).
fn plugin_dir(crate_name: &str) -> std::path::PathBuf {
    Path::new(yiwang_artifacts::PLUGINS_DIR).join(crate_name.replace('_', "-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plugin_passes_its_fixtures() {
    let rt = runtime();
    let mut checked = 0;
    for (name, path) in yiwang_artifacts::ALL {
        if *name == "hostile_adapter" {
            continue; // a test double, exercised by tests/it/sandbox.rs
        }
        let dir = plugin_dir(name).join("fixtures");
        assert!(
            dir.is_dir(),
            "adapter {name} has no fixtures folder at {}: every adapter needs fixtures",
            dir.display()
        );
        let results = fixture::run_dir(&rt, &yiwang_artifacts::read(path), &dir)
            .await
            .expect("fixtures load");
        assert!(
            results.len() >= 2,
            "{name} should have fixtures for submit and query-status at least"
        );
        for r in &results {
            assert!(
                r.passed(),
                "{name}/{}: {}\n{}",
                r.name,
                r.description,
                r.failures.join("\n")
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected at least two real adapters, found {checked}"
    );
}

fn harness_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/hostile-plugin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_fails_with_a_readable_diff() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let results = fixture::run_dir(&rt, &wasm, &harness_dir().join("fixtures"))
        .await
        .expect("fixtures load");
    let ok = results
        .iter()
        .find(|r| r.name == "relay-ok")
        .expect("relay-ok");
    assert!(ok.passed(), "{}", ok.failures.join("\n"));

    let wrong = results
        .iter()
        .find(|r| r.name == "relay-wrong")
        .expect("relay-wrong");
    let report = wrong.failures.join("\n");
    assert!(
        report.contains("method: expected PUT, got POST"),
        "{report}"
    );
    assert!(
        report.contains("header idempotency-key: expected \"idem-2\", got Some(\"idem-1\")"),
        "{report}"
    );
    assert!(
        report.contains("-  \"case_number\": \"HX-2\""),
        "diff shows the expected line: {report}"
    );
    assert!(
        report.contains("+  \"case_number\": \"HX-1\""),
        "diff shows the actual line: {report}"
    );
    assert!(
        report.contains("result.network_case_number differs"),
        "{report}"
    );
}

#[test]
fn cli_reports_failures_and_exits_non_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .args(["adapter", "test"])
        .arg(harness_dir())
        .arg("--component")
        .arg(yiwang_artifacts::HOSTILE_ADAPTER)
        .output()
        .expect("run yiwang");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok      relay-ok"), "{stdout}");
    assert!(stdout.contains("FAILED  relay-wrong"), "{stdout}");
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
}

/// The signed open-API adapter (plugins/tax) keeps a fixture for every signing failure its
/// README promises, so dropping one fails here and not only in review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tax_fixtures_cover_every_signing_failure() {
    let rt = runtime();
    let results = fixture::run_dir(
        &rt,
        &yiwang_artifacts::read(yiwang_artifacts::TAX),
        &plugin_dir("tax").join("fixtures"),
    )
    .await
    .expect("fixtures load");
    for name in [
        "submit-happy-path",
        "submit-idempotent-resubmit",
        "submit-replayed-nonce-resent",
        "submit-replayed-nonce-twice",
        "submit-clock-skew",
        "submit-bad-signature",
        "submit-unknown-app-key",
        "submit-missing-licence-input",
        "query-status-by-idempotency-key",
        "query-status-idem-not-found",
        "poll-with-cursor",
    ] {
        assert!(
            results.iter().any(|r| r.name == name),
            "plugins/tax/fixtures lacks {name}.toml"
        );
    }
    for r in &results {
        assert!(r.passed(), "tax/{}: {}", r.name, r.failures.join("\n"));
    }
}

/// The callback adapter (plugins/public-security) keeps a fixture for every way a push can
/// be accepted, refused (no events, a 401/403 answer) or fail (an error, so the ministry
/// retries), as its README promises; dropping one fails here and not only in review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_security_fixtures_cover_every_callback_outcome() {
    let rt = runtime();
    let results = fixture::run_dir(
        &rt,
        &yiwang_artifacts::read(yiwang_artifacts::PUBLIC_SECURITY),
        &plugin_dir("public_security").join("fixtures"),
    )
    .await
    .expect("fixtures load");
    for name in [
        "submit-happy-path",
        "submit-missing-licence-number",
        "query-status-by-idempotency-key",
        "query-status-idem-not-found",
        "callback-accepted",
        "callback-completed",
        "callback-tampered-body",
        "callback-wrong-secret",
        "callback-missing-signature",
        "callback-stale-timestamp",
        "callback-no-push-secret",
        "callback-unknown-status",
    ] {
        assert!(
            results.iter().any(|r| r.name == name),
            "plugins/public-security/fixtures lacks {name}.toml"
        );
    }
    for r in &results {
        assert!(
            r.passed(),
            "public-security/{}: {}",
            r.name,
            r.failures.join("\n")
        );
    }
}

/// Compatibility: a component built against contract 1.0.0 and committed
/// (tests/artifacts/contract-1.0.0) loads under this host, says it was built
/// for 1.0.0, and passes every fixture it had then. A contract change that is
/// not additive fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_contract_1_0_passes_its_fixtures() {
    let rt = runtime();
    let dir = Path::new(yiwang_artifacts::CONTRACT_1_0_DIR);
    let wasm = std::fs::read(dir.join("provincial-filing.wasm")).expect("the committed component");
    let results = fixture::run_dir(&rt, &wasm, &dir.join("fixtures"))
        .await
        .expect("the 1.0.0 component loads and its fixtures read");
    assert!(results.len() >= 8, "{} fixtures", results.len());
    for r in &results {
        assert!(
            r.passed(),
            "contract-1.0.0/{}: {}\n{}",
            r.name,
            r.description,
            r.failures.join("\n")
        );
    }
    let adapter = rt
        .load(
            &wasm,
            yiwang_gateway::runtime::NetworkSandbox::new("provincial-filing", Vec::new()),
            yiwang_gateway::runtime::Services::new(std::sync::Arc::new(
                yiwang_gateway::transport::HttpTransport::default(),
            )),
        )
        .await
        .expect("loads");
    assert_eq!(adapter.descriptor().contract_version, "1.0.0");
}
