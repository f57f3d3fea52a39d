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
        let cluster = tokio::task::spawn_blocking(|| {
            Cluster::start(&[
                ("fsync", "on"),
                ("synchronous_commit", "on"),
                ("max_connections", "200"),
                ("shared_buffers", "256MB"),
            ])
        })
        .await??;
        Ok(Postgres { cluster })
    }

    /// One connection over loopback TCP (no TLS).
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        self.cluster.connect("postgres").await
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
