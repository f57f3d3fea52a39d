//! TLS to PostgreSQL against a private cluster serving a certificate from a
//! test CA: the configured CA is the only trust, so another CA's server is
//! refused, and a connection that is made is encrypted.

use super::{PostgresOptions, PostgresStore};
use std::path::PathBuf;
use yiwang_pki::{Ca, CertSpec};

fn options(url: String, ca: PathBuf) -> PostgresOptions {
    PostgresOptions {
        url,
        password: None,
        pool_size: 2,
        ca: Some(ca),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_required_and_checked_against_the_configured_ca() {
    let ca = Ca::new("Yiwang test database CA");
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let server = ca.issue(&CertSpec::server("database", &["localhost"], &[ip]));
    let cluster = tokio::task::spawn_blocking(move || {
        yiwang_pgtest::Cluster::start_with(&[], Some((&server.cert_pem, &server.key_pem)))
    })
    .await
    .expect("join")
    .expect("start a cluster serving TLS");
    cluster
        .create_database("tls")
        .await
        .expect("create database");
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = dir.path().join("db-ca.crt");
    std::fs::write(&trusted, ca.cert_pem()).expect("write CA");
    let stranger = dir.path().join("other-ca.crt");
    std::fs::write(&stranger, Ca::new("Some other CA").cert_pem()).expect("write CA");

    let store = PostgresStore::connect(&options(cluster.url("tls"), trusted))
        .await
        .expect("connect over TLS with the server's CA");
    let client = store.client().await.expect("a pooled connection");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the store's connection is encrypted");

    let refused = PostgresStore::connect(&options(cluster.url("tls"), stranger)).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("certificate") || message.contains("issuer"),
        "a server certificate from another CA is refused: {message:?}"
    );
}
