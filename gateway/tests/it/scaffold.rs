//! `yiwang adapter new` makes, for every archetype, an out-of-tree crate that builds from
//! its own workspace and lock file, is lint-clean and passes `yiwang adapter test` as
//! generated; and it refuses what it cannot make well.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ARCHETYPES: &[&str] = &["json-rest", "soap", "signed-api", "callback", "lookup-only"];

fn yiwang(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .args(args)
        .current_dir(dir)
        // The generated crates share one target folder of their own (built from nothing on
        // a fresh machine), apart from the workspace's and the plugins'.
        .env("CARGO_TARGET_DIR", scaffold_target())
        .env_remove("YIWANG_SDK")
        .output()
        .expect("run yiwang")
}

fn scaffold_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffolded")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_archetype_builds_out_of_tree_and_passes_its_fixtures_as_generated() {
    let tmp = tempfile::tempdir().unwrap();
    for archetype in ARCHETYPES {
        let name = format!("new-{archetype}");
        let out = yiwang(
            &["adapter", "new", &name, "--archetype", archetype],
            tmp.path(),
        );
        assert!(out.status.success(), "{archetype}: {}", text(&out));
        let dir = tmp.path().join(&name);
        for file in [
            "Cargo.toml",
            "Cargo.lock",
            ".gitignore",
            "src/lib.rs",
            "README.md",
        ] {
            assert!(dir.join(file).is_file(), "{archetype}: no {file}");
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "its own workspace");
        assert!(
            manifest.contains("[profile.release]"),
            "its own release profile"
        );
        assert!(
            !manifest.contains("{{"),
            "every placeholder filled: {manifest}"
        );

        let clippy = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["clippy", "--release", "--quiet", "--", "-D", "warnings"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", scaffold_target())
            .output()
            .expect("run cargo clippy");
        assert!(
            clippy.status.success(),
            "{archetype} is not lint-clean: {}",
            text(&clippy)
        );

        let out = yiwang(&["adapter", "test", "."], &dir);
        let report = text(&out);
        assert!(out.status.success(), "{archetype}: {report}");
        let passed = report
            .lines()
            .find_map(|l| l.strip_suffix(" passed, 0 failed"))
            .and_then(|n| n.trim().parse::<usize>().ok());
        assert!(
            passed.is_some_and(|n| n >= 3),
            "{archetype}: at least submit, a refusal and query-status: {report}"
        );
    }
}

#[test]
fn a_bad_name_a_used_folder_and_a_missing_sdk_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = yiwang(
        &["adapter", "new", "Bad Name", "--archetype", "soap"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("adapter name \"Bad Name\""),
        "{}",
        text(&out)
    );

    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/x"), "x").unwrap();
    let out = yiwang(
        &["adapter", "new", "taken", "--archetype", "soap"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("is not empty"), "{}", text(&out));

    let args = [
        "adapter",
        "new",
        "x",
        "--archetype",
        "soap",
        "--sdk",
        "/nonexistent",
    ];
    let out = yiwang(&args, tmp.path());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no adapter SDK at /nonexistent"),
        "{}",
        text(&out)
    );
    assert!(
        !tmp.path().join("x").exists(),
        "nothing written on a refusal"
    );
}
