//! `yiwang store check` and `yiwang store migrate` against a private
//! PostgreSQL cluster: an empty database is reported with its pending
//! migration (exit 1), `migrate` applies it, and `check` then agrees (exit 0).

use std::path::Path;
use std::process::Command;

/// Run `yiwang store <verb> --config <file>` in `dir`: exit code and stdout.
fn store(dir: &Path, verb: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .current_dir(dir)
        .args(["store", verb, "--config", "yiwang.toml"])
        .output()
        .expect("run yiwang");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_reports_pending_migrations_until_store_migrate_applies_them() {
    let cluster = yiwang_pgtest::shared();
    cluster
        .create_database("store_cli")
        .await
        .expect("create database");
    let dir = tempfile::tempdir().expect("tempdir");
    yiwang_pki::Pki::generate(&dir.path().join("pki"), &[]).expect("pki");
    let config = format!(
        "[tls]\ncert = \"pki/gateway.crt\"\nkey = \"pki/gateway.key\"\nclient-ca = [\"pki/bureau-ca.crt\"]\n\n\
         [store]\nbackend = \"postgres\"\nurl = \"{}\"\npool-size = 2\n",
        cluster.url("store_cli")
    );
    std::fs::write(dir.path().join("yiwang.toml"), config).expect("write config");

    let (code, out) = store(dir.path(), "check");
    assert_eq!(code, Some(1), "{out}");
    // Every migration this binary carries is pending on an empty database.
    let known = yiwang_gateway::store::postgres::schema::known_version();
    assert!(out.contains("schema version none"), "{out}");
    assert!(
        out.contains(&format!("{known} migration(s) pending")),
        "{out}"
    );

    let (code, out) = store(dir.path(), "migrate");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("schema version {known}, this binary's {known}")),
        "{out}"
    );

    let (code, out) = store(dir.path(), "check");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

/// An unreachable database is an error that names it, not a hang or a panic.
#[test]
fn store_check_names_an_unreachable_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    yiwang_pki::Pki::generate(&dir.path().join("pki"), &[]).expect("pki");
    let port = yiwang_pgtest::free_port().expect("port");
    let config = format!(
        "[tls]\ncert = \"pki/gateway.crt\"\nkey = \"pki/gateway.key\"\nclient-ca = [\"pki/bureau-ca.crt\"]\n\n\
         [store]\nbackend = \"postgres\"\nurl = \"postgres://yiwang@127.0.0.1:{port}/yiwang\"\n"
    );
    std::fs::write(dir.path().join("yiwang.toml"), config).expect("write config");
    let (code, out) = store(dir.path(), "check");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "PostgreSQL store at postgres://yiwang@127.0.0.1:{port}/yiwang"
        )),
        "{out}"
    );
}
