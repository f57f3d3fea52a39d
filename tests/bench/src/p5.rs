//! P5 growth: the gateway's memory and restart recovery time with 10k and
//! 100k deliveries pending, against the same gateway with none; and its
//! resident memory with 200 adapters loaded, against one.
//!
//! Pending deliveries are made the way they arise in production: cases come
//! in through the intake while their ministry is in a long outage (nothing
//! listens at its endpoint; the breaker opens on the first failure and
//! stays open). Recovery is measured after `kill -9`: from starting the
//! process to the intake listening, and to the queue gauge showing every
//! pending delivery again.

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup, free_port, metric, route, scrape};
use crate::load::{Until, closed_loop, ratio};
use anyhow::{Result, bail};
use serde_json::Value;
use std::time::{Duration, Instant};
use yiwang_e2e::{NetworkSpec, case_json};

const NETWORK: &str = "p5-market";
const ITEM: &str = "SC-QYKB-001";
const ADAPTERS: usize = 200;

pub async fn run(scale: Scale) -> Result<()> {
    println!("\n== P5 growth: pending deliveries, restart recovery, adapters loaded ==");
    queue_growth(scale.pick([10_000, 100_000], [1_000, 10_000])).await?;
    adapters_loaded(scale.pick(ADAPTERS, 40)).await
}

struct QueueRow {
    pending: u64,
    fill_rate: Option<f64>,
    rss_running: f64,
    ready: Duration,
    recovered: Duration,
    rss_restarted: f64,
    data_mib: f64,
}

async fn queue_growth(levels: [u64; 2]) -> Result<()> {
    let setup = Setup::new(&[NETWORK])?;
    setup.write_unreachable(NETWORK, ITEM)?;
    let intake = setup.intake()?;
    let admin = setup.admin()?;
    let template = case_json("enterprise-establishment.json", "P5")?;
    let settle = Duration::from_secs(2);

    let mut gateway = GatewayProcess::spawn(&setup.config)?;
    let mut rows = Vec::new();
    let mut pending = 0u64;
    for target in std::iter::once(0).chain(levels) {
        let mut fill_rate = None;
        if target > pending {
            let (client, template) = (intake.clone(), template.clone());
            let start = pending;
            let run = closed_loop(64, Until::Count(target - pending), move |i| {
                let (client, mut case) = (client.clone(), template.clone());
                async move {
                    case["case_number"] = Value::String(format!("P5-{:07}", start + i));
                    match client.post("/v1/cases", &case).await? {
                        (202, _) => Ok(()),
                        (s, body) => bail!("intake answered {s}: {body}"),
                    }
                }
            })
            .await;
            run.check("intake")?;
            fill_rate = Some(run.rate());
            pending = target;
        }
        tokio::time::sleep(settle).await;
        let rss_running = gateway.memory()?.rss_mib;
        gateway.kill9()?;
        gateway = GatewayProcess::spawn(&setup.config)?;
        let spawned = Instant::now() - gateway.ready_after;
        let recovered = loop {
            let text = scrape(&admin).await?;
            if metric(&text, "yiwang_queue_depth") as u64 >= pending {
                break spawned.elapsed();
            }
            if spawned.elapsed() > Duration::from_secs(600) {
                bail!("the queue did not show {pending} pending within 600 s of a restart");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(settle).await;
        rows.push(QueueRow {
            pending,
            fill_rate,
            rss_running,
            ready: gateway.ready_after,
            recovered,
            rss_restarted: gateway.memory()?.rss_mib,
            data_mib: setup.data_bytes() as f64 / 1048576.0,
        });
    }
    gateway.stop()?;

    println!(
        "\n| pending deliveries | filled at cases/s | RSS running MiB | restart (kill -9): listening after s | queue recovered after s | RSS after restart MiB | data on disk MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} |",
            r.pending,
            r.fill_rate.map_or("—".into(), |f| format!("{f:.0}")),
            r.rss_running,
            r.ready.as_secs_f64(),
            r.recovered.as_secs_f64(),
            r.rss_restarted,
            r.data_mib
        );
    }
    if let (Some(empty), Some(most)) = (rows.first(), rows.last()) {
        let per_10k = |a: f64, b: f64| ratio(a - b, most.pending as f64 / 10_000.0);
        println!(
            "against the empty queue: +{:.1} MiB RSS and +{:.3} s recovery per 10k pending (at {}); recovery {:.1}× the empty gateway's",
            per_10k(most.rss_restarted, empty.rss_restarted),
            per_10k(most.recovered.as_secs_f64(), empty.recovered.as_secs_f64()),
            most.pending,
            ratio(most.recovered.as_secs_f64(), empty.recovered.as_secs_f64())
        );
    }
    Ok(())
}

/// One network per adapter: the four example adapters in turn, each with
/// its own TLS identity, secrets and endpoint (in an outage: nothing is
/// sent), against the same gateway with one network.
async fn adapters_loaded(count: usize) -> Result<()> {
    let names: Vec<String> = (0..count).map(|i| format!("n{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let setup = Setup::new(&refs)?;
    let dead = format!("https://127.0.0.1:{}", free_port()?);
    let makers: [fn(&str) -> NetworkSpec; 4] = [
        NetworkSpec::market_regulation,
        NetworkSpec::housing_construction,
        NetworkSpec::tax,
        NetworkSpec::public_security,
    ];
    let specs: Vec<(NetworkSpec, String)> = refs
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut spec = makers[i % makers.len()](name).with_breaker(1, 3_600_000);
            if spec.poll_interval_ms.is_some() {
                spec.poll_interval_ms = Some(3_600_000);
            }
            (spec, dead.clone())
        })
        .collect();
    let items = route(ITEM, &refs[..1]);
    let settle = Duration::from_secs(3);

    // Cold first (it fills the compiled-component cache), then both warm.
    setup.write_config(&specs, &items)?;
    let cold = GatewayProcess::spawn(&setup.config)?;
    tokio::time::sleep(settle).await;
    let (cold_ready, cold_rss) = (cold.ready_after, cold.memory()?.rss_mib);
    cold.stop()?;
    let warm = GatewayProcess::spawn(&setup.config)?;
    tokio::time::sleep(settle).await;
    let (warm_ready, warm_rss) = (warm.ready_after, warm.memory()?.rss_mib);
    warm.stop()?;
    setup.write_config(&specs[..1], &items)?;
    let one = GatewayProcess::spawn(&setup.config)?;
    tokio::time::sleep(settle).await;
    let (one_ready, one_rss) = (one.ready_after, one.memory()?.rss_mib);
    one.stop()?;

    println!("\n| networks (adapters loaded) | start to listening s | RSS MiB |");
    println!("|---|---:|---:|");
    println!(
        "| 1 (compiled component from the cache) | {:.2} | {one_rss:.0} |",
        one_ready.as_secs_f64()
    );
    println!(
        "| {count}, first start (4 distinct components compiled) | {:.2} | {cold_rss:.0} |",
        cold_ready.as_secs_f64()
    );
    println!(
        "| {count}, restart (compiled components from the cache) | {:.2} | {warm_rss:.0} |",
        warm_ready.as_secs_f64()
    );
    println!(
        "per additional network: {:.2} MiB RSS, {:.1} ms of start-up (restart)",
        ratio(warm_rss - one_rss, (count - 1) as f64),
        1e3 * ratio(
            warm_ready.as_secs_f64() - one_ready.as_secs_f64(),
            (count - 1) as f64
        )
    );
    Ok(())
}
