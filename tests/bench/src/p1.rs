//! P1 intake durability: cases per second acknowledged (each one on disk
//! before its `202`), and acknowledgement latency, at concurrency 1, 16 and
//! 64 — against PostgreSQL 15 doing the equivalent insert and commit per
//! case — plus the disk's raw fsync rate and the cases each fsync carried.
//!
//! The gateway's one network is in an outage (nothing listens at its
//! endpoint; the breaker opens on the first failure and stays open), so the
//! dispatcher stays out of the way and the figure is the intake's own:
//! mTLS, HTTP, schema validation, routing, the durable store and the durable
//! audit record. PostgreSQL gets the same case JSON (as `jsonb`), its job
//! rows and an audit row in one statement, committed, over loopback TCP.

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup, metric, route, scrape};
use crate::load::{Stats, Until, closed_loop, ms, per_second, ratio};
use crate::postgres::Postgres;
use anyhow::Result;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yiwang_e2e::{NetworkSpec, case_json};

const NETWORK: &str = "p1-market";
const ITEM: &str = "SC-QYKB-001";
const CONCURRENCY: [usize; 3] = [1, 16, 64];

pub async fn run(scale: Scale) -> Result<()> {
    let seconds = scale.pick(6, 2);
    println!("\n== P1 intake durability: the gateway against PostgreSQL 15 ==");
    println!("each level runs {seconds} s; every acknowledged case is on disk (fsync) first");
    let setup = Setup::new(&[NETWORK])?;
    let fsyncs_per_s = fsync_rate(setup.path(), Duration::from_secs(2), true)?;
    let in_place = fsync_rate(setup.path(), Duration::from_secs(2), false)?;
    println!(
        "disk: {fsyncs_per_s:.0} fdatasync/s appending, {in_place:.0} fdatasync/s overwriting in place \
         (4 KiB write + fdatasync, one at a time, in the benchmark folder)"
    );

    // The gateway: one network in an outage.
    let dead = crate::gateway::free_port()?;
    let mut spec = NetworkSpec::market_regulation(NETWORK).with_breaker(1, 3_600_000);
    // No change-feed polling of the unreachable ministry during the run.
    spec.poll_interval_ms = Some(3_600_000);
    setup.write_config(
        &[(spec, format!("https://127.0.0.1:{dead}"))],
        &route(ITEM, &[NETWORK]),
    )?;
    let gateway = GatewayProcess::spawn(&setup.config)?;
    let intake = setup.intake()?;
    let admin = setup.admin()?;
    let template = case_json("enterprise-establishment.json", "P1")?;
    let mut gw_rows = Vec::new();
    for conc in CONCURRENCY {
        let before = settled_metrics(&admin).await?;
        let cpu_before = gateway.cpu()?;
        let (client, template) = (intake.clone(), template.clone());
        let run = closed_loop(
            conc,
            Until::Elapsed(Duration::from_secs(seconds)),
            move |i| {
                let (client, mut case) = (client.clone(), template.clone());
                async move {
                    case["case_number"] = Value::String(format!("P1-C{conc}-{i:07}"));
                    match client.post("/v1/cases", &case).await? {
                        (202, _) => Ok(()),
                        (s, body) => anyhow::bail!("intake answered {s}: {body}"),
                    }
                }
            },
        )
        .await;
        run.check("gateway intake")?;
        let cpu = gateway.cpu()? - cpu_before;
        let after = settled_metrics(&admin).await?;
        let d = |name: &str| metric(&after, name) - metric(&before, name);
        let accepted = d("yiwang_intake_accepted_total");
        gw_rows.push(GatewayRow {
            conc,
            stats: run.stats(),
            rate: run.rate(),
            accepted,
            cpu,
            store_fsyncs: d("yiwang_store_fsyncs_total"),
            audit_fsyncs: d("yiwang_audit_fsyncs_total"),
        });
    }
    let memory = gateway.memory()?;
    gateway.stop()?;

    // PostgreSQL: the same cases, one statement and commit each.
    let pg = Postgres::start().await?;
    let names = [
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
    ];
    let values = pg.settings(&names).await?;
    let shown: Vec<String> = names[1..]
        .iter()
        .zip(&values[1..])
        .map(|(n, v)| format!("{n} = {v}"))
        .collect();
    println!("PostgreSQL {}: {}", values[0], shown.join(", "));
    create_schema(&pg).await?;
    let mut pg_rows = Vec::new();
    for conc in CONCURRENCY {
        pg_rows.push(insert_level(&pg, &template, conc, seconds).await?);
    }
    drop(pg);

    println!(
        "\n| concurrency | gateway cases/s | p50 ms | p99 ms | cases/store fsync | cases/fsync (store+audit) | CPU µs/case | PostgreSQL cases/s | p50 ms | p99 ms | cases/WAL sync | CPU µs/case | gateway ÷ PostgreSQL |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (g, p) in gw_rows.iter().zip(&pg_rows) {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | **{:.2}×** |",
            g.conc,
            g.rate,
            ms(g.stats.p50),
            ms(g.stats.p99),
            ratio(g.accepted, g.store_fsyncs),
            ratio(g.accepted, g.store_fsyncs + g.audit_fsyncs),
            1e6 * ratio(g.cpu.as_secs_f64(), g.accepted),
            p.rate,
            ms(p.stats.p50),
            ms(p.stats.p99),
            ratio(p.count, p.wal_syncs),
            1e6 * ratio(p.cpu.as_secs_f64(), p.count),
            ratio(g.rate, p.rate)
        );
    }
    println!(
        "gateway resident memory after P1: {:.0} MiB (peak {:.0} MiB); disk limit for one-at-a-time commits: {fsyncs_per_s:.0}/s appending, {in_place:.0}/s in place",
        memory.rss_mib, memory.peak_mib
    );
    Ok(())
}

/// P1's PostgreSQL baseline at one concurrency for `seconds`: each case its
/// rows in one statement, committed (the schema from [`create_schema`]).
pub(crate) async fn insert_level(
    pg: &Postgres,
    template: &Value,
    conc: usize,
    seconds: u64,
) -> Result<PgRow> {
    let pool = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..conc {
        let client = pg.connect().await?;
        let insert = client.prepare(INSERT).await?;
        pool.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((client, insert));
    }
    let before = wal_syncs(pg).await?;
    let cpu_before = pg.cpu();
    let template = template.clone();
    let bureau = template["bureau"]["uscc"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let p = pool.clone();
    let run = closed_loop(
        conc,
        Until::Elapsed(Duration::from_secs(seconds)),
        move |i| {
            let (pool, mut case, bureau) = (p.clone(), template.clone(), bureau.clone());
            async move {
                let number = format!("P1-C{conc}-{i:07}");
                case["case_number"] = Value::String(number.clone());
                let body = case.to_string();
                let sha = hex::encode(Sha256::digest(body.as_bytes()));
                let (client, insert) = pool
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop()
                    .ok_or_else(|| anyhow::anyhow!("no free connection"))?;
                let networks = vec![NETWORK.to_string()];
                let due = chrono::Utc::now().timestamp_millis();
                let result = client
                    .execute(
                        &insert,
                        &[
                            &number,
                            &ITEM,
                            &bureau.as_str(),
                            &body,
                            &due,
                            &networks,
                            &"fuzhou-bureau",
                            &sha,
                        ],
                    )
                    .await;
                pool.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((client, insert));
                result?;
                Ok(())
            }
        },
    )
    .await;
    run.check("PostgreSQL insert")?;
    let cpu = pg.cpu().saturating_sub(cpu_before);
    drop(pool);
    let after = wal_syncs(pg).await?;
    Ok(PgRow {
        stats: run.stats(),
        rate: run.rate(),
        wal_syncs: after - before,
        cpu,
        count: run.latencies.len() as f64,
    })
}

struct GatewayRow {
    conc: usize,
    stats: Stats,
    rate: f64,
    accepted: f64,
    /// The gateway process's CPU time during the level.
    cpu: Duration,
    store_fsyncs: f64,
    audit_fsyncs: f64,
}

pub(crate) struct PgRow {
    pub(crate) stats: Stats,
    pub(crate) rate: f64,
    pub(crate) wal_syncs: f64,
    /// The server's CPU time during the level.
    pub(crate) cpu: Duration,
    pub(crate) count: f64,
}

/// The store's fsync counter is published once a second: wait for it.
async fn settled_metrics(admin: &yiwang_e2e::Client) -> Result<String> {
    tokio::time::sleep(Duration::from_millis(1300)).await;
    scrape(admin).await
}

/// The gateway's durable state, as tables: the case (its JSON as `jsonb`),
/// one job per routed network (with the index the dispatcher would need),
/// and the audit row.
const SCHEMA: &str = "
CREATE TABLE cases (
    case_number text PRIMARY KEY,
    item text NOT NULL,
    bureau text NOT NULL,
    body jsonb NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE jobs (
    case_number text NOT NULL REFERENCES cases,
    network text NOT NULL,
    state text NOT NULL,
    due_at bigint NOT NULL,
    PRIMARY KEY (case_number, network)
);
CREATE INDEX jobs_due ON jobs (network, state, due_at);
CREATE TABLE audit (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    principal text NOT NULL,
    case_number text NOT NULL,
    body_sha256 text NOT NULL,
    status int NOT NULL
);
";

/// One case in one round trip and one commit (autocommit).
const INSERT: &str = "
WITH c AS (
    INSERT INTO cases (case_number, item, bureau, body)
    VALUES ($1, $2, $3, $4::text::jsonb) RETURNING case_number
), j AS (
    INSERT INTO jobs (case_number, network, state, due_at)
    SELECT c.case_number, n, 'pending', $5 FROM c, unnest($6::text[]) AS n
)
INSERT INTO audit (principal, case_number, body_sha256, status)
SELECT $7, c.case_number, $8, 202 FROM c
";

pub(crate) async fn create_schema(pg: &Postgres) -> Result<()> {
    pg.connect().await?.batch_execute(SCHEMA).await?;
    Ok(())
}

/// WAL flushes so far (statistics are flushed by backends within a second).
async fn wal_syncs(pg: &Postgres) -> Result<f64> {
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let c = pg.connect().await?;
    let row = c.query_one("SELECT wal_sync FROM pg_stat_wal", &[]).await?;
    Ok(row.get::<_, i64>(0) as f64)
}

/// 4 KiB writes each followed by fdatasync, one at a time, for `time`: the
/// rate at which anything can make one write durable after another. With
/// `grow`, every write appends (the file's size changes, so the journal
/// commits too, as for a log file that grows); without, the writes go over
/// the same preallocated 1 MiB again and again (as for a recycled WAL segment).
pub fn fsync_rate(dir: &Path, time: Duration, grow: bool) -> Result<f64> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let f = std::fs::File::create(&path)?;
    let block = [0x5a_u8; 4096];
    if !grow {
        for i in 0..256 {
            f.write_all_at(&block, i * 4096)?;
        }
        f.sync_all()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        let at = if grow { n * 4096 } else { (n % 256) * 4096 };
        f.write_all_at(&block, at)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = per_second(n, start.elapsed());
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
