//! PostgreSQL 15 (Debian's package) started by the benchmark: a private
//! cluster (`yiwang-pgtest`) on a loopback port, with
//! `synchronous_commit = on` and `fsync = on` (the defaults, set anyway so
//! the figure cannot silently lose its meaning).

use anyhow::Result;
use std::time::Duration;
use yiwang_pgtest::Cluster;

pub struct Postgres {
    cluster: Cluster,
}

impl Postgres {
    /// A new cluster, started and accepting connections.
    pub async fn start() -> Result<Postgres> {
        Postgres::start_with(&[]).await
    }

    /// [`Postgres::start`] with these settings too.
    pub async fn start_with(extra: &[(&'static str, &'static str)]) -> Result<Postgres> {
        let mut settings = vec![
            ("fsync", "on"),
            ("synchronous_commit", "on"),
            ("max_connections", "200"),
            ("shared_buffers", "256MB"),
        ];
        settings.extend_from_slice(extra);
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(&settings)).await??;
        if extra
            .iter()
            .any(|(k, v)| *k == "shared_preload_libraries" && v.contains("pg_stat_statements"))
        {
            let c = cluster.connect("postgres").await?;
            c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .await?;
        }
        Ok(Postgres { cluster })
    }

    /// One connection over loopback TCP (no TLS).
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        self.cluster.connect("postgres").await
    }

    /// One connection to `database`.
    pub async fn connect_to(&self, database: &str) -> Result<tokio_postgres::Client> {
        self.cluster.connect(database).await
    }

    /// A connection URL for `database`.
    pub fn url(&self, database: &str) -> String {
        self.cluster.url(database)
    }

    /// Create `database` unless it exists.
    pub async fn create_database(&self, database: &str) -> Result<()> {
        self.cluster.create_database(database).await
    }

    /// CPU time of the server: the postmaster and every process it started
    /// that is still running (backends, WAL writer, checkpointer).
    pub fn cpu(&self) -> Duration {
        self.cluster
            .postmaster_pid()
            .map(crate::gateway::tree_cpu_time)
            .unwrap_or_default()
    }

    /// Settings as the server sees them, over one connection.
    pub async fn settings(&self, names: &[&str]) -> Result<Vec<String>> {
        let c = self.connect().await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let row = c.query_one("SELECT current_setting($1)", &[name]).await?;
            out.push(row.get(0));
        }
        Ok(out)
    }
}
