//! P4 isolation: the throughput to healthy networks while one network is
//! stalled, against the same networks when all are healthy.
//!
//! Four networks speak the same protocol through the same adapter, and the
//! item routes every case to all four. A run sends `n` cases and measures
//! how fast the three networks `a`, `b`, `c` receive all of them. In the
//! stalled run, network `d`'s ministry accepts connections and requests
//! and never answers (each call times out after the network's send
//! timeout, then the breaker opens and closes again): its calls hold their
//! own concurrency slots, and nothing of theirs may slow `a`, `b` or `c`.

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup, route};
use crate::load::{Until, closed_loop, per_second, ratio};
use anyhow::{Result, bail};
use serde_json::Value;
use std::time::{Duration, Instant};
use yiwang_e2e::{NetworkSpec, case_json, start_simulator};
use yiwang_simulator::{SimConfig, Simulator};

const ITEM: &str = "SC-QYKB-001";
const NETWORKS: [&str; 4] = ["p4-a", "p4-b", "p4-c", "p4-d"];
const STALLED: &str = "p4-d";

pub async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(1500u64, 150);
    println!("\n== P4 isolation: healthy networks' throughput while one network is stalled ==");
    let healthy = one_run(n, false).await?;
    let stalled = one_run(n, true).await?;
    println!("\n| run | cases | deliveries to a, b, c | seconds | deliveries/s to a, b, c |");
    println!("|---|---:|---:|---:|---:|");
    for (name, r) in [("all four healthy", &healthy), ("d stalled", &stalled)] {
        println!(
            "| {name} | {n} | {} | {:.2} | {:.0} |",
            3 * n,
            r.as_secs_f64(),
            per_second(3 * n, *r)
        );
    }
    println!(
        "healthy networks while one is stalled: **{:.0}%** of all-healthy throughput",
        100.0 * ratio(per_second(3 * n, stalled), per_second(3 * n, healthy))
    );
    Ok(())
}

/// A fresh gateway and four fresh ministries; `n` cases to all four;
/// returns how long `a`, `b` and `c` took to receive every case.
async fn one_run(n: u64, stall: bool) -> Result<Duration> {
    let setup = Setup::new(&NETWORKS)?;
    let mut sims: Vec<(&str, Simulator)> = Vec::new();
    let mut placed = Vec::new();
    for name in NETWORKS {
        let cfg = SimConfig::json_rest(name).with_stage_interval(Duration::ZERO);
        let sim = start_simulator(name, &setup.pki, cfg, "127.0.0.1:0").await?;
        let mut spec = NetworkSpec::market_regulation(name)
            .with_concurrency(8)
            .with_breaker(5, 1000)
            .with_send_timeout_ms(2000);
        spec.poll_interval_ms = Some(5000);
        placed.push((spec, sim.base_url()));
        sims.push((name, sim));
    }
    setup.write_config(&placed, &route(ITEM, &NETWORKS))?;
    if stall {
        for (name, sim) in &sims {
            if *name == STALLED {
                // Longer than the benchmark: the ministry never answers.
                sim.faults().update(|f| f.latency_ms = 3_600_000);
            }
        }
    }
    let gateway = GatewayProcess::spawn(&setup.config)?;
    let intake = setup.intake()?;
    let template = case_json("enterprise-establishment.json", "P4")?;
    let start = Instant::now();
    let run = closed_loop(16, Until::Count(n), move |i| {
        let (client, mut case) = (intake.clone(), template.clone());
        async move {
            case["case_number"] = Value::String(format!("P4-{i:06}"));
            match client.post("/v1/cases", &case).await? {
                (202, _) => Ok(()),
                (s, body) => bail!("intake answered {s}: {body}"),
            }
        }
    })
    .await;
    run.check("intake")?;
    let deadline = start + Duration::from_secs(300);
    let healthy = |sims: &[(&str, Simulator)]| {
        sims.iter()
            .filter(|(name, _)| *name != STALLED)
            .all(|(_, s)| s.case_count() as u64 >= n)
    };
    while !healthy(&sims) {
        if Instant::now() > deadline {
            bail!("the healthy networks did not receive {n} cases in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    gateway.stop()?;
    for (_, sim) in sims {
        sim.shutdown().await;
    }
    Ok(took)
}
