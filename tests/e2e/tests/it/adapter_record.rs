//! `yiwang adapter call` and `yiwang adapter record` against live simulated networks: the
//! exchange is printed with secrets hidden, and the fixture written replays against the same
//! component with `yiwang adapter test` — with no secret in the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result};
use yiwang_e2e::live::simulator;
use yiwang_simulator::SimConfig;

fn yiwang(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().context("run yiwang-under-test")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A plugin-shaped folder (`fixtures/` with the case beside the fixture).
fn plugin_dir(case: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures)?;
    let copy = fixtures.join(case.file_name().context("case file name")?);
    std::fs::copy(case, &copy)?;
    Ok((dir, copy))
}

fn replay(dir: &Path, component: &str) -> Result<String> {
    let dir = dir.to_str().context("utf-8 path")?;
    let out = yiwang(&["adapter", "test", dir, "--component", component], &[])?;
    let stdout = text(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "replay failed:\n{stdout}{}",
        text(&out.stderr)
    );
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_submit_is_called_printed_recorded_and_replays() -> Result<()> {
    let sim = simulator(SimConfig::soap("housing-construction")).await?;
    let case = Path::new(yiwang_artifacts::PLUGINS_DIR)
        .join("housing-construction/fixtures/construction-permit.json");
    let (dir, case) = plugin_dir(&case)?;
    let out_file = dir.path().join("fixtures/submit-recorded.toml");
    let base = sim.base_url();
    let args = [
        "adapter",
        "record",
        yiwang_artifacts::HOUSING_CONSTRUCTION,
        "submit",
        "--endpoint",
        &base,
        "--network",
        "housing-construction",
        "--case",
        case.to_str().context("utf-8 path")?,
        "--idempotency-key",
        "rec-1",
        "--out",
        out_file.to_str().context("utf-8 path")?,
    ];
    let out = yiwang(&args, &[])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("--> #1 POST"), "{stdout}");
    assert!(
        stdout.contains("SOAPAction: \"urn:SubmitCase\""),
        "{stdout}"
    );
    assert!(stdout.contains("<-- #1 HTTP 200"), "{stdout}");
    assert!(stdout.contains("result (submit):"), "{stdout}");
    let fixture = std::fs::read_to_string(&out_file)?;
    assert!(fixture.contains("body-format = \"xml\""), "{fixture}");
    assert!(
        fixture.contains("case = \"construction-permit.json\""),
        "{fixture}"
    );
    let replayed = replay(dir.path(), yiwang_artifacts::HOUSING_CONSTRUCTION)?;
    assert!(replayed.contains("ok      submit-recorded"), "{replayed}");
    assert!(replayed.contains("1 passed, 0 failed"), "{replayed}");

    // The case is now at the ministry: `call query-status` by the idempotency key finds it.
    let query = [
        "adapter",
        "call",
        yiwang_artifacts::HOUSING_CONSTRUCTION,
        "query-status",
        "--endpoint",
        &base,
        "--number",
        "idem:rec-1",
    ];
    let out = yiwang(&query, &[])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("\"stage\": \"received\""), "{stdout}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_secret_is_hidden_in_the_print_and_absent_from_the_fixture() -> Result<()> {
    let sim = simulator(SimConfig::json_rest("market-regulation")).await?;
    let (user, password) = sim.config().credentials.clone();
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../adapters-sdk/schema/testdata/enterprise-establishment.json");
    let (dir, case) = plugin_dir(&case)?;
    let out_file = dir.path().join("fixtures/login-and-submit.toml");
    let base = sim.base_url();
    let args = [
        "adapter",
        "record",
        yiwang_artifacts::MARKET_REGULATION,
        "submit",
        "--endpoint",
        &base,
        "--network",
        "market-regulation",
        "--case",
        case.to_str().context("utf-8 path")?,
        "--idempotency-key",
        "rec-2",
        "--secret-env",
        "username=REC_USER",
        "--secret-env",
        "password=REC_PASS",
        "--out",
        out_file.to_str().context("utf-8 path")?,
    ];
    let out = yiwang(&args, &[("REC_USER", &user), ("REC_PASS", &password)])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        !stdout.contains(&password),
        "the password is printed: {stdout}"
    );
    assert!(stdout.contains("${secret:password}"), "{stdout}");
    let fixture = std::fs::read_to_string(&out_file)?;
    assert!(
        !fixture.contains(&password),
        "the password is in the file: {fixture}"
    );
    assert!(fixture.contains("fixture-password"), "{fixture}");
    let replayed = replay(dir.path(), yiwang_artifacts::MARKET_REGULATION)?;
    assert!(replayed.contains("1 passed, 0 failed"), "{replayed}");

    // A secret that is not in the environment is named, and nothing is called.
    let out = yiwang(&args, &[])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("secret username: environment variable REC_USER is not set"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}
