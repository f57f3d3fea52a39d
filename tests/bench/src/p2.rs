//! P2 end to end: cases per second from the bureau's intake request to the
//! ministry simulator, through the market-regulation Wasm adapter, over
//! mTLS both ways — against nginx as an mTLS reverse proxy in front of the
//! same simulator with the same payloads (the no-transform, no-durability
//! limit), and against the simulator called directly (the reference for
//! "added latency").
//!
//! - direct: the client posts the adapter's exact submit body (the mapping
//!   compiled natively) to the simulator with the gateway's client
//!   certificate for that network;
//! - nginx: the same bodies to nginx, which verifies the bureau's
//!   certificate and proxies to the simulator over mTLS (kept alive);
//! - gateway: the unified case to the intake; the latency is from sending
//!   the intake request to the simulator storing the case (`received_at`),
//!   so it includes the fsyncs, the queue, the adapter and the ministry's
//!   half of the round trip. The proxies' latency is the full round trip.

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup, route};
use crate::load::{Stats, Until, closed_loop, ms, ratio};
use crate::nginx::{Nginx, ProxySpec};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use market_regulation::mapping;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use yiwang_e2e::{Client, NetworkSpec, case_json, start_simulator};
use yiwang_gateway::tls::ClientTlsConfig;
use yiwang_simulator::SimConfig;

const NETWORK: &str = "p2-market";
const ITEM: &str = "SC-QYKB-001";

struct Row {
    path: &'static str,
    conc: usize,
    rate: f64,
    stats: Stats,
}

pub async fn run(scale: Scale) -> Result<()> {
    let levels = [
        (1usize, scale.pick(300u64, 40)),
        (32, scale.pick(3000, 300)),
    ];
    println!("\n== P2 end to end: intake → Wasm adapter → ministry over mTLS, against nginx ==");
    let setup = Setup::new(&[NETWORK])?;
    let sim_cfg = SimConfig::json_rest(NETWORK).with_stage_interval(Duration::ZERO);
    let (user, pass) = sim_cfg.credentials.clone();
    let sim = start_simulator(NETWORK, &setup.pki, sim_cfg, "127.0.0.1:0").await?;
    let mut spec = NetworkSpec::market_regulation(NETWORK).with_concurrency(32);
    spec.poll_interval_ms = Some(5000);
    setup.write_config(&[(spec, sim.base_url())], &route(ITEM, &[NETWORK]))?;

    let net = setup.pki.network(NETWORK).context("network PKI")?;
    let direct = Client::with_tls(
        sim.base_url(),
        &ClientTlsConfig {
            ca: vec![net.ca.cert_path.clone()],
            cert: net.gateway_client.cert_path.clone(),
            key: net.gateway_client.key_path.clone(),
            pin_sha256: Vec::new(),
            crl: Vec::new(),
            server_name: Some(net.server_name.clone()),
        },
    )?;
    let proxy_port = crate::gateway::free_port()?;
    let nginx = Nginx::start(
        &setup.path().join("nginx"),
        &ProxySpec {
            listen_port: proxy_port,
            server_cert: setup.pki.gateway.cert_path.clone(),
            server_key: setup.pki.gateway.key_path.clone(),
            client_ca: setup.pki.bureau_ca.cert_path.clone(),
            upstream: sim.addr(),
            upstream_ca: net.ca.cert_path.clone(),
            upstream_cert: net.gateway_client.cert_path.clone(),
            upstream_key: net.gateway_client.key_path.clone(),
            upstream_name: net.server_name.clone(),
        },
    )?;
    let via_nginx = Client::new(
        format!("https://127.0.0.1:{proxy_port}"),
        &setup.pki,
        &setup.pki.bureau_fuzhou,
    )?;
    let token = login(&direct, &user, &pass).await?;
    let gateway = GatewayProcess::spawn(&setup.config)?;
    let intake = setup.intake()?;
    let template = case_json("enterprise-establishment.json", "P2")?;

    let mut rows = Vec::new();
    for (conc, n) in levels {
        for (path, client) in [("direct", &direct), ("nginx", &via_nginx)] {
            let bodies = Arc::new(submit_bodies(&template, &format!("{path}-C{conc}"), n)?);
            let (client, token) = (client.clone(), token.clone());
            let run = closed_loop(conc, Until::Count(n), move |i| {
                let (client, token, bodies) = (client.clone(), token.clone(), bodies.clone());
                async move { submit(&client, &token, bodies[i as usize].clone()).await }
            })
            .await;
            run.check(path)?;
            rows.push(Row {
                path,
                conc,
                rate: run.rate(),
                stats: run.stats(),
            });
        }
        let cpu_before = gateway.cpu()?;
        rows.push(through_gateway(&intake, &sim, &template, conc, n).await?);
        let cpu = gateway.cpu()? - cpu_before;
        println!(
            "gateway at concurrency {conc}: {:.0} µs of CPU per case (its whole process)",
            1e6 * cpu.as_secs_f64() / n as f64
        );
    }
    let nginx_mib = nginx.rss_mib();
    let gateway_mib = gateway.memory()?.rss_mib;
    gateway.stop()?;
    drop(nginx);

    println!("\n| path | concurrency | cases/s | p50 ms | p99 ms | added p50 ms | added p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let base = rows
            .iter()
            .find(|d| d.path == "direct" && d.conc == r.conc)
            .map(|d| d.stats)
            .unwrap_or_default();
        let added = |a: Duration, b: Duration| {
            if r.path == "direct" {
                "—".to_string()
            } else {
                format!("{:.2}", ms(a) - ms(b))
            }
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.path,
            r.conc,
            r.rate,
            ms(r.stats.p50),
            ms(r.stats.p99),
            added(r.stats.p50, base.p50),
            added(r.stats.p99, base.p99)
        );
    }
    for (conc, _) in levels {
        let rate = |p: &str| {
            rows.iter()
                .find(|r| r.path == p && r.conc == conc)
                .map_or(0.0, |r| r.rate)
        };
        println!(
            "concurrency {conc}: gateway ÷ nginx throughput **{:.2}×**",
            ratio(rate("gateway"), rate("nginx"))
        );
    }
    println!(
        "resident memory at the end: gateway {gateway_mib:.0} MiB, nginx (master + workers) {nginx_mib:.0} MiB"
    );
    Ok(())
}

/// Log in to the simulator; the token serves the direct and nginx paths.
async fn login(client: &Client, user: &str, pass: &str) -> Result<String> {
    let body = json!({"username": user, "password": pass}).to_string();
    let (status, reply) = client
        .request(
            http::Method::POST,
            mapping::LOGIN_PATH,
            "application/json;charset=UTF-8",
            body.into_bytes(),
        )
        .await?;
    reply["data"]["token"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("login answered {status}: {reply}"))
}

/// The adapter's submit body for `n` fresh cases, built by its own mapping
/// code compiled natively (before timing starts).
fn submit_bodies(template: &Value, tag: &str, n: u64) -> Result<Vec<Vec<u8>>> {
    (0..n)
        .map(|i| {
            let mut case = template.clone();
            case["case_number"] = Value::String(format!("P2-{tag}-{i:06}"));
            let case: yiwang_schema::Case = serde_json::from_value(case)?;
            let body = mapping::submit_body(&case, &format!("P2-{tag}-{i:06}"))
                .map_err(|e| anyhow::anyhow!("mapping: {e:?}"))?;
            Ok(mapping::case_body_bytes(&body))
        })
        .collect()
}

async fn submit(client: &Client, token: &str, body: Vec<u8>) -> Result<()> {
    let (status, reply) = client
        .request_with(
            http::Method::POST,
            mapping::SUBMIT_PATH,
            "application/json;charset=UTF-8",
            &[(mapping::TOKEN_HEADER.to_string(), token.to_string())],
            body,
        )
        .await?;
    if status != 200 || reply["code"] != "0000" {
        bail!("submit answered {status}: {reply}");
    }
    Ok(())
}

/// `n` cases into the intake from `conc` workers, each waiting until the
/// ministry has stored its case before sending the next: at most `conc`
/// cases are anywhere between the bureau and the ministry, as at most
/// `conc` requests are inside a proxy. A case's latency runs from sending
/// the intake request to the simulator storing it.
async fn through_gateway(
    intake: &Client,
    sim: &yiwang_simulator::Simulator,
    template: &Value,
    conc: usize,
    n: u64,
) -> Result<Row> {
    type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<DateTime<Utc>>>>>;
    let waiters: Waiters = Arc::default();
    let mut arrivals = sim.arrivals();
    let w = waiters.clone();
    let router = tokio::spawn(async move {
        while let Ok(a) = arrivals.recv().await {
            let waiter = a
                .unified_case_number
                .and_then(|u| w.lock().unwrap_or_else(|p| p.into_inner()).remove(&u));
            if let Some(tx) = waiter {
                let _ = tx.send(a.received_at.with_timezone(&Utc));
            }
        }
    });
    let (client, template) = (intake.clone(), template.clone());
    let run = closed_loop(conc, Until::Count(n), move |i| {
        let (client, mut case, waiters) = (client.clone(), template.clone(), waiters.clone());
        let number = format!("P2-GW-C{conc}-{i:06}");
        async move {
            case["case_number"] = Value::String(number.clone());
            let (tx, rx) = oneshot::channel();
            waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(number.clone(), tx);
            match client.post("/v1/cases", &case).await? {
                (202, _) => {}
                (s, body) => bail!("intake answered {s}: {body}"),
            }
            tokio::time::timeout(Duration::from_secs(60), rx)
                .await
                .map_err(|_| anyhow::anyhow!("case {number} did not reach the ministry in 60 s"))?
                .map_err(|_| anyhow::anyhow!("the simulator stopped"))?;
            Ok(())
        }
    })
    .await;
    router.abort();
    run.check("gateway")?;
    Ok(Row {
        path: "gateway",
        conc,
        rate: run.rate(),
        stats: run.stats(),
    })
}
