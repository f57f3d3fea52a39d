//! PostgreSQL 15 (Debian's package) started by the benchmark: a private
//! cluster in the benchmark's folder, on a loopback port, with
//! `synchronous_commit = on` and `fsync = on` (the defaults, set anyway so
//! the figure cannot silently lose its meaning).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where Debian puts PostgreSQL 15's server programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    data: PathBuf,
    pub port: u16,
}

/// Run a PostgreSQL program; as root, as the `postgres` user (the server
/// refuses to run as root).
fn pg_command(program: &str) -> Command {
    let path = format!("{BIN}/{program}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c.output().with_context(|| format!("{what}: cannot run"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Postgres {
    /// A new cluster in `parent/postgres`, started and accepting connections.
    pub async fn start(parent: &Path) -> Result<Postgres> {
        if !Path::new(BIN).join("postgres").exists() {
            bail!(
                "PostgreSQL 15 is not installed ({BIN}/postgres): `make bench` installs it (Debian package postgresql-15)"
            );
        }
        let data = parent.join("postgres");
        std::fs::create_dir_all(&data)?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&data);
                    c
                },
                "chown the PostgreSQL folder",
            )?;
        }
        let mut init = pg_command("initdb");
        init.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(init, "initdb")?;
        let port = crate::gateway::free_port()?;
        let options = format!(
            "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
             -c max_connections=200 -c shared_buffers=256MB",
            sock = data.display()
        );
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(start, "pg_ctl start")?;
        let pg = Postgres { data, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match pg.connect().await {
                Ok(_) => return Ok(pg),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// One connection over loopback TCP (no TLS).
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .context("connect to PostgreSQL")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// CPU time of the server: the postmaster and every process it started
    /// that is still running (backends, WAL writer, checkpointer).
    pub fn cpu(&self) -> Duration {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
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

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
    }
}
