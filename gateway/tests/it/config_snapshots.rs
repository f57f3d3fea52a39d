//! Snapshots of `yiwang config check`: each `gateway/tests/config/*.toml`
//! has a `.err` file beside it holding exactly what the command prints for
//! it (every problem as file:line:col, or the ok line and its notes).
//!
//! The files are checked in a folder that also holds the adapters
//! (`adapters/market_regulation.wasm`, `adapters/housing_construction.wasm`),
//! the item forms of `tests/config/forms/` (in `forms/`) and a generated PKI (`pki/`, for the networks `market-regulation` and
//! `housing-construction`), so a file only fails for what it means to test.
//! `YIWANG_BLESS=1 cargo test -p yiwang-gateway --test it config_snapshots`
//! rewrites the `.err` files after a deliberate change.

use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

/// A folder with the adapters and certificates the cases may name.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("adapters")).expect("mkdir");
    for (from, to) in [
        (
            yiwang_artifacts::MARKET_REGULATION,
            "market_regulation.wasm",
        ),
        (
            yiwang_artifacts::HOUSING_CONSTRUCTION,
            "housing_construction.wasm",
        ),
    ] {
        std::fs::copy(from, dir.path().join("adapters").join(to)).expect("copy adapter");
    }
    yiwang_pki::Pki::generate(
        &dir.path().join("pki"),
        &["market-regulation", "housing-construction"],
    )
    .expect("pki");
    // The item form files the cases name (`forms/*.json`).
    std::fs::create_dir(dir.path().join("forms")).expect("mkdir");
    for entry in std::fs::read_dir(cases_dir().join("forms")).expect("tests/config/forms") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        std::fs::copy(&path, dir.path().join("forms").join(name)).expect("copy form");
    }
    dir
}

/// What `yiwang config check <name>.toml` prints, run in `dir`.
fn check(dir: &Path, name: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .current_dir(dir)
        .env_remove("YIWANG_MR_USERNAME")
        .args(["config", "check", name])
        .output()
        .expect("run yiwang");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let refused = stdout.trim_end().ends_with("problem(s)");
    let expected = if refused { Some(1) } else { Some(0) };
    assert_eq!(
        out.status.code(),
        expected,
        "{name}: exit code\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn config_check_output_matches_the_snapshots() {
    let bless = std::env::var_os("YIWANG_BLESS").is_some_and(|v| v == "1");
    let dir = workspace();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/config")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} config cases", cases.len());
    let mut differ = Vec::new();
    for case in &cases {
        let name = case.file_name().expect("name").to_string_lossy();
        std::fs::copy(case, dir.path().join(&*name)).expect("copy case");
        let got = check(dir.path(), &name);
        let snapshot = case.with_extension("err");
        if bless {
            std::fs::write(&snapshot, &got).expect("write snapshot");
            continue;
        }
        let want = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if want != got {
            differ.push(format!(
                "{name} (- {}, + actual):\n{}",
                snapshot.display(),
                yiwang_gateway::fixture::diff(&want, &got)
            ));
        }
    }
    // A snapshot whose case was removed would otherwise linger unchecked.
    for entry in std::fs::read_dir(cases_dir())
        .expect("tests/config")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "err") && !path.with_extension("toml").is_file() {
            differ.push(format!("{} has no .toml beside it", path.display()));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} config snapshots differ (YIWANG_BLESS=1 rewrites them):\n\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}
