//! P8 replicas on PostgreSQL: intake and end-to-end throughput of one gateway on sled (the
//! embedded default), one on PostgreSQL and two replicas sharing one PostgreSQL database
//! (the load split between their intakes) — against PostgreSQL doing P1's plain insert and
//! commit per case — with the CPU each side spent per case, and what one case costs the
//! database (WAL bytes, rows written, statements, transactions), the inputs of the N-machine
//! model in docs/benchmarks.md.
//!
//! Each configuration gets the same cases of one item routed to one JSON REST simulator
//! (no stage delays) at the same client concurrency. Intake throughput is the accepted cases
//! over the time to post them all; end to end is the cases over the time from the first
//! post until the simulator has stored every one. All processes share this machine's
//! cores: two replicas on two cores do not scale, and the figures say so.

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup, free_port, route};
use crate::load::{Until, closed_loop, per_second, ratio};
use crate::postgres::Postgres;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yiwang_e2e::{Client, NetworkSpec, case_json, config_text, start_simulator};
use yiwang_simulator::{SimConfig, Simulator};

const NETWORK: &str = "p8-market";
const ITEM: &str = "SC-QYKB-001";
const CONCURRENCY: usize = 16;

/// Where a configuration keeps its queue.
#[derive(Clone, Copy)]
enum Backend {
    Sled,
    Postgres { replicas: usize },
}

impl Backend {
    fn label(self) -> String {
        match self {
            Backend::Sled => "1 gateway, sled".into(),
            Backend::Postgres { replicas: 1 } => "1 gateway, PostgreSQL".into(),
            Backend::Postgres { replicas } => format!("{replicas} replicas, one PostgreSQL"),
        }
    }
}

/// What one configuration measured.
struct Row {
    label: String,
    intake_rate: f64,
    e2e_rate: f64,
    gateway_cpu_per_case: Duration,
    db_cpu_per_case: Duration,
    db: Option<DbCost>,
}

/// What the database did per case (from its own statistics).
#[derive(Clone, Copy)]
struct DbCost {
    wal_bytes: f64,
    rows: f64,
    statements: f64,
    transactions: f64,
}

pub async fn run(scale: Scale) -> Result<()> {
    let cases = scale.pick(1500u64, 150);
    println!(
        "\n== P8 replicas: sled, PostgreSQL, two replicas on one PostgreSQL; plain PostgreSQL inserts =="
    );
    println!(
        "{cases} cases per configuration at concurrency {CONCURRENCY}, one item to one JSON REST simulator"
    );
    let setup = Setup::new(&[NETWORK])?;
    let sim_cfg = SimConfig::json_rest(NETWORK).with_stage_interval(Duration::ZERO);
    let sim = start_simulator(NETWORK, &setup.pki, sim_cfg, "127.0.0.1:0").await?;
    let pg = Postgres::start_with(&[
        ("shared_preload_libraries", "pg_stat_statements"),
        ("pg_stat_statements.track", "all"),
    ])
    .await?;
    let template = case_json("enterprise-establishment.json", "P8")?;
    let mut rows = Vec::new();
    for (i, backend) in [
        Backend::Sled,
        Backend::Postgres { replicas: 1 },
        Backend::Postgres { replicas: 2 },
    ]
    .into_iter()
    .enumerate()
    {
        let world = World {
            setup: &setup,
            sim: &sim,
            pg: &pg,
            template: &template,
        };
        rows.push(world.measure(backend, &format!("p8c{i}"), cases).await?);
    }
    crate::p1::create_schema(&pg).await?;
    let seconds = scale.pick(5, 2);
    let plain = crate::p1::insert_level(&pg, &template, CONCURRENCY, seconds).await?;
    print(
        &rows,
        plain.rate,
        ratio(plain.cpu.as_secs_f64(), plain.count),
    );
    Ok(())
}

struct World<'a> {
    setup: &'a Setup,
    sim: &'a Simulator,
    pg: &'a Postgres,
    template: &'a Value,
}

impl World<'_> {
    /// One configuration: start its gateways, post `cases`, wait for the simulator to store
    /// them all, read the CPU and the database's statistics, stop.
    async fn measure(&self, backend: Backend, tag: &str, cases: u64) -> Result<Row> {
        let replicas = match backend {
            Backend::Sled => 1,
            Backend::Postgres { replicas } => replicas,
        };
        let database = format!("yiwang_{tag}");
        if let Backend::Postgres { .. } = backend {
            self.pg.create_database(&database).await?;
        }
        let mut gateways = Vec::new();
        let mut intakes = Vec::new();
        for r in 0..replicas {
            let (config, port) = self.write_config(backend, tag, r, &database)?;
            gateways.push(GatewayProcess::spawn(&config)?);
            intakes.push(Client::new(
                format!("https://127.0.0.1:{port}"),
                &self.setup.pki,
                &self.setup.pki.bureau_fuzhou,
            )?);
        }
        let db_before = self.db_snapshot(backend, &database).await?;
        let cpu_before: Vec<Duration> = gateways.iter().map(|g| g.cpu()).collect::<Result<_>>()?;
        let pg_cpu_before = self.pg.cpu();
        let stored_before = self.sim.case_count() as u64;

        let started = Instant::now();
        let (intakes, template, tag2) = (Arc::new(intakes), self.template.clone(), tag.to_owned());
        let run = closed_loop(CONCURRENCY, Until::Count(cases), move |i| {
            let (intakes, mut case, tag) = (intakes.clone(), template.clone(), tag2.clone());
            async move {
                case["case_number"] = Value::String(format!("P8-{tag}-{i:07}"));
                let target = &intakes[usize::try_from(i).unwrap_or(0) % intakes.len()];
                match target.post("/v1/cases", &case).await? {
                    (202, _) => Ok(()),
                    (status, body) => bail!("intake answered {status}: {body}"),
                }
            }
        })
        .await;
        run.check("intake")?;
        let intake_rate = per_second(cases, run.elapsed);
        let want = stored_before + cases;
        let deadline = Instant::now() + Duration::from_secs(600);
        while (self.sim.case_count() as u64) < want {
            if Instant::now() > deadline {
                bail!(
                    "{}: the simulator stored {} of {cases} cases in 10 minutes",
                    backend.label(),
                    self.sim.case_count() as u64 - stored_before
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e2e_rate = per_second(cases, started.elapsed());
        let gateway_cpu: Duration = gateways
            .iter()
            .zip(&cpu_before)
            .map(|(g, before)| g.cpu().map(|c| c.saturating_sub(*before)))
            .sum::<Result<Duration>>()?;
        let db_cpu = self.pg.cpu().saturating_sub(pg_cpu_before);
        for g in gateways {
            g.stop()?;
        }
        // A backend reports its table and transaction counts when it goes idle or exits:
        // read them once the gateways' connections are closed.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let db_after = self.db_snapshot(backend, &database).await?;
        let per_case = |d: Duration| d.div_f64(cases as f64);
        let db = match (db_before, db_after) {
            (Some(b), Some(a)) => Some(DbCost {
                wal_bytes: (a.wal_bytes - b.wal_bytes) / cases as f64,
                rows: (a.rows - b.rows) / cases as f64,
                statements: (a.statements - b.statements) / cases as f64,
                transactions: (a.transactions - b.transactions) / cases as f64,
            }),
            _ => None,
        };
        Ok(Row {
            label: backend.label(),
            intake_rate,
            e2e_rate,
            gateway_cpu_per_case: per_case(gateway_cpu),
            db_cpu_per_case: match backend {
                Backend::Sled => Duration::ZERO,
                Backend::Postgres { .. } => per_case(db_cpu),
            },
            db,
        })
    }

    /// Replica `r`'s configuration file and intake port: its own data folder, ports and
    /// replica id; the shared database for PostgreSQL.
    fn write_config(
        &self,
        backend: Backend,
        tag: &str,
        r: usize,
        database: &str,
    ) -> Result<(PathBuf, u16)> {
        let (intake, admin) = (free_port()?, free_port()?);
        let listeners = format!(
            "[listeners]\nintake = {{ addr = \"127.0.0.1:{intake}\", rate-per-principal = 0, \
             handshake-rate-per-peer = 0, max-handshakes = 512, max-handshakes-per-peer = 512 }}\n\
             admin = {{ addr = \"127.0.0.1:{admin}\" }}\n"
        );
        let mut spec = NetworkSpec::market_regulation(NETWORK).with_concurrency(16);
        spec.poll_interval_ms = Some(3_600_000);
        let networks = [(spec, self.sim.base_url())];
        let mut text = config_text(&networks, &route(ITEM, &[NETWORK]), "", &listeners, "")
            .replacen(
                "[gateway]\ndata-dir = \"data\"\n",
                &format!("[gateway]\ndata-dir = \"data-{tag}-{r}\"\nreplica-id = \"{tag}-{r}\"\n"),
                1,
            );
        if let Backend::Postgres { .. } = backend {
            let url = self.pg.url(database);
            text.push_str(&format!(
                "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npool-size = 16\n"
            ));
        }
        let path = self.setup.path().join(format!("p8-{tag}-{r}.toml"));
        std::fs::write(&path, text)?;
        yiwang_e2e::sign_adapters(&path)?;
        Ok((path, intake))
    }

    /// The database's counters now (`None` for sled).
    async fn db_snapshot(&self, backend: Backend, database: &str) -> Result<Option<DbCost>> {
        if let Backend::Sled = backend {
            return Ok(None);
        }
        let c = self.pg.connect_to(database).await?;
        let one = |sql: &'static str| {
            let c = &c;
            async move {
                let row = c
                    .query_one(sql, &[])
                    .await
                    .with_context(|| sql.to_owned())?;
                anyhow::Ok(row.get::<_, Option<f64>>(0).unwrap_or(0.0))
            }
        };
        Ok(Some(DbCost {
            wal_bytes: one("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8").await?,
            rows: one(
                "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del)::float8 FROM pg_stat_user_tables",
            )
            .await?,
            // The extension lives in the `postgres` database; its counts are the cluster's.
            statements: {
                let c = self.pg.connect().await?;
                let sql = "SELECT sum(s.calls)::float8 FROM pg_stat_statements s \
                           JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1";
                let row = c.query_one(sql, &[&database]).await.context(sql)?;
                row.get::<_, Option<f64>>(0).unwrap_or(0.0)
            },
            transactions: one(
                "SELECT (xact_commit + xact_rollback)::float8 FROM pg_stat_database \
                 WHERE datname = current_database()",
            )
            .await?,
        }))
    }
}

fn print(rows: &[Row], plain_rate: f64, plain_cpu_per_case: f64) {
    let sled = rows.first().map(|r| r.e2e_rate).unwrap_or(0.0);
    println!(
        "\n| configuration | intake cases/s | end-to-end cases/s | ÷ sled (end to end) | gateway CPU ms/case | PostgreSQL CPU ms/case |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}× | {:.2} | {:.2} |",
            r.label,
            r.intake_rate,
            r.e2e_rate,
            ratio(r.e2e_rate, sled),
            r.gateway_cpu_per_case.as_secs_f64() * 1e3,
            r.db_cpu_per_case.as_secs_f64() * 1e3,
        );
    }
    println!(
        "| plain PostgreSQL insert + commit (P1's baseline) | {plain_rate:.0} | – | – | – | {:.2} |",
        plain_cpu_per_case * 1e3
    );
    println!(
        "\n| configuration | WAL bytes/case | rows written/case | statements/case | transactions/case |"
    );
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        if let Some(d) = r.db {
            println!(
                "| {} | {:.0} | {:.1} | {:.1} | {:.1} |",
                r.label, d.wal_bytes, d.rows, d.statements, d.transactions
            );
        }
    }
}
