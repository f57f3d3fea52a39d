//! `yiwang-sim`: run simulated ministry networks on this machine until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use yiwang_simulator::{Archetype, SimConfig, Simulator};

/// Simulated ministry private networks (审批专网) for the Yiwang demo, tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "yiwang-sim", version)]
struct Cli {
    /// One network: `name=NAME,archetype=json-rest|soap|signed-api|callback,addr=IP:PORT[,prefix=CASEPREFIX]`.
    /// Archetype `callback` also takes `callback=http://HOST:PORT/PATH`, where its status
    /// changes are pushed. Archetype `signed-api` also takes `app-key=KEY,app-secret=SECRET`
    /// (default `yiwang-app` and a demo secret). Repeat for more networks.
    #[arg(long = "network", required = true, value_parser = parse_network)]
    networks: Vec<NetworkSpec>,

    /// Milliseconds between automatic status advances (0 = never).
    #[arg(long, default_value_t = 2000)]
    stage_interval_ms: u64,
}

#[derive(Debug, Clone)]
struct NetworkSpec {
    name: String,
    archetype: Archetype,
    addr: SocketAddr,
    prefix: Option<String>,
    /// Archetype 5: where status changes are pushed.
    callback: Option<String>,
    /// Archetype 3: application key and secret.
    app_key: Option<String>,
    app_secret: Option<String>,
}

fn parse_network(spec: &str) -> anyhow::Result<NetworkSpec> {
    let (mut name, mut archetype, mut addr, mut prefix) = (None, None, None, None);
    let mut callback = None;
    let (mut app_key, mut app_secret) = (None, None);
    for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("{pair:?} is not key=value"))?;
        let value = value.trim();
        match key.trim() {
            "name" => name = Some(value.to_owned()),
            "archetype" => archetype = Some(value.parse::<Archetype>()?),
            "addr" => {
                addr = Some(
                    value
                        .parse::<SocketAddr>()
                        .with_context(|| format!("addr {value:?}"))?,
                )
            }
            "prefix" => prefix = Some(value.to_owned()),
            "callback" => callback = Some(value.to_owned()),
            "app-key" => app_key = Some(value.to_owned()),
            "app-secret" => app_secret = Some(value.to_owned()),
            other => bail!(
                "unknown key {other:?} (expected name, archetype, addr, prefix, callback, app-key, app-secret)"
            ),
        }
    }
    Ok(NetworkSpec {
        name: name.context("missing name=")?,
        archetype: archetype.context("missing archetype=")?,
        addr: addr.context("missing addr=")?,
        prefix,
        callback,
        app_key,
        app_secret,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the "listening" lines, for scripts to read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let mut running = Vec::new();
    for spec in cli.networks {
        let mut cfg = SimConfig::new(spec.archetype, spec.name.clone())
            .with_stage_interval(Duration::from_millis(cli.stage_interval_ms));
        if let Some(prefix) = spec.prefix {
            cfg = cfg.with_case_prefix(prefix);
        }
        if let Some(url) = spec.callback {
            cfg = cfg.with_callback_url(url);
        }
        if spec.app_key.is_some() || spec.app_secret.is_some() {
            let key = spec.app_key.unwrap_or_else(|| cfg.app_key.clone());
            let secret = spec.app_secret.unwrap_or_else(|| cfg.app_secret.clone());
            cfg = cfg.with_app_credentials(key, secret);
        }
        let sim = Simulator::start(cfg, spec.addr)
            .await
            .with_context(|| format!("starting network {}", spec.name))?;
        println!(
            "network {} ({}) listening on {}",
            spec.name,
            spec.archetype,
            sim.base_url()
        );
        running.push(sim);
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for sim in running {
        sim.shutdown().await;
    }
    Ok(())
}
