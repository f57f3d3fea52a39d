//! P6 hostile neighbours: a healthy network and the intake under a steady
//! load while a neighbour network's adapter attacks the gateway, against
//! the same load with no neighbour, in the same run.
//!
//! Every row is a fresh gateway process with fresh simulators: the
//! baseline (the healthy network alone), a polite neighbour (the hostile
//! adapter in `echo` mode: the cost of a neighbour as such), then one row
//! per attack of issue 14 (`attack::all`). The healthy network is the
//! market-regulation adapter against its JSON REST simulator; the
//! neighbour is the hostile test adapter against a simulator of its own,
//! with its own item, fed as many cases as the healthy network.

mod attack;
mod feed;

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup};
use crate::load::ratio;
use anyhow::{Context, Result, bail};
use attack::{HEALTHY, NEIGHBOUR, Neighbour, Plan};
use feed::{Arrivals, Bound, Cases, Load, Measured, percentile};
use std::path::Path;
use std::time::{Duration, Instant};
use yiwang_e2e::start_simulator;
use yiwang_simulator::{SimConfig, Simulator};

/// `yiwang-bench p6` settings.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Healthy cases per second (the neighbour is sent as many).
    #[arg(long, default_value_t = 30.0)]
    pub rate: f64,
    /// Length of each measured window, in seconds (default 20; 4 with --quick).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Run only the neighbours whose name contains this (repeatable); the baseline always runs.
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// Set `[runtime] max-instances` (by default the gateway's own default).
    #[arg(long)]
    pub max_instances: Option<u32>,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            rate: 30.0,
            seconds: None,
            only: Vec::new(),
            max_instances: None,
        }
    }
}

/// The seed case: delivered before the load, the case the back-flow attack injects for.
const SEED: &str = "P6-SEED";

/// One row: a run's figures, or why it has none.
struct Row {
    name: String,
    figures: Result<Figures>,
}

struct Figures {
    m: Measured,
    peak_rss_mib: f64,
}

pub async fn run(scale: Scale, args: &Args) -> Result<()> {
    let window = Duration::from_secs(args.seconds.unwrap_or(scale.pick(20, 4)));
    let load = Load {
        rate: args.rate,
        settle: scale.pick(Duration::from_secs(3), Duration::from_secs(1)),
        window,
        drain: scale.pick(Duration::from_secs(30), Duration::from_secs(4)),
        start_within: scale.pick(Duration::from_secs(60), Duration::from_secs(20)),
    };
    let neighbours: Vec<Neighbour> = attack::all()
        .into_iter()
        .filter(|n| args.only.is_empty() || args.only.iter().any(|o| n.name.contains(o.as_str())))
        .collect();
    println!(
        "\n== P6 hostile neighbours: a healthy network and the intake at {} cases/s, {} s windows, next to each attack ==",
        load.rate,
        window.as_secs()
    );
    let cache = tempfile::Builder::new()
        .prefix("yiwang-bench-p6-cache-")
        .tempdir()?;
    let cases = Cases::load()?;
    let started = Instant::now();
    warm_cache(cache.path(), load.start_within).await?;
    let mut rows = Vec::new();
    for n in std::iter::once(None).chain(neighbours.iter().map(Some)) {
        let name = n.map_or("baseline (no neighbour)", |n| n.name).to_string();
        let mut figures = one_run(load, &cases, n, cache.path(), args.max_instances).await;
        if figures
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("Address already in use"))
        {
            // A port picked as free was taken meanwhile by a simulator of
            // this run: run the row once more, on fresh ports.
            figures = one_run(load, &cases, n, cache.path(), args.max_instances).await;
        }
        match &figures {
            Ok(f) => println!(
                "{name}: {} healthy cases sent, {} undelivered, {} intake errors",
                f.m.sent,
                f.m.undelivered(),
                f.m.intake_errors
            ),
            Err(e) => println!("{name}: no figures: {e:#}"),
        }
        rows.push(Row { name, figures });
    }
    let Some(Ok(base)) = rows.first().map(|r| &r.figures) else {
        bail!("the baseline run failed; no ratios");
    };
    print_figures(&rows, base);
    print_aims(&rows, base);
    println!("P6 took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Start and stop a gateway with both adapters once, so that no row's
/// figures (its peak memory above all) include compiling a component.
async fn warm_cache(cache: &Path, within: Duration) -> Result<()> {
    let setup = Setup::new(&[HEALTHY, NEIGHBOUR])?;
    let polite = Neighbour::polite();
    let nowhere = format!("https://127.0.0.1:{}", crate::gateway::free_port()?);
    let plan = Plan {
        intake_port: setup.intake,
        admin_port: setup.admin,
        cache_dir: cache,
        healthy_url: &nowhere,
        credentials: ("user", "password"),
        neighbour: Some((&polite, &nowhere, SEED)),
    };
    std::fs::write(&setup.config, attack::config_text(&plan))?;
    yiwang_e2e::sign_adapters(&setup.config)?;
    spawn(&setup, within)
        .await
        .context("warming the compiled-component cache")?
        .kill9()
}

/// `GatewayProcess::spawn_logged` off the runtime's threads, its log in the setup's folder.
async fn spawn(setup: &Setup, within: Duration) -> Result<GatewayProcess> {
    let (config, log) = (setup.config.clone(), setup.path().join("gateway.log"));
    tokio::task::spawn_blocking(move || GatewayProcess::spawn_logged(&config, &log, within)).await?
}

/// A fresh gateway and simulators; the load; the figures.
async fn one_run(
    load: Load,
    cases: &Cases,
    neighbour: Option<&Neighbour>,
    cache: &Path,
    max_instances: Option<u32>,
) -> Result<Figures> {
    let setup = Setup::new(&[HEALTHY, NEIGHBOUR])?;
    let healthy_cfg = SimConfig::json_rest(HEALTHY).with_stage_interval(Duration::ZERO);
    let (user, pass) = healthy_cfg.credentials.clone();
    let healthy = start_simulator(HEALTHY, &setup.pki, healthy_cfg, "127.0.0.1:0").await?;
    let mut sims = vec![healthy];
    if neighbour.is_some() {
        let cfg = SimConfig::json_rest(NEIGHBOUR).with_stage_interval(Duration::ZERO);
        sims.push(start_simulator(NEIGHBOUR, &setup.pki, cfg, "127.0.0.1:0").await?);
    }
    let (healthy_url, neighbour_url) = (sims[0].base_url(), sims.get(1).map(Simulator::base_url));
    let plan = Plan {
        intake_port: setup.intake,
        admin_port: setup.admin,
        cache_dir: cache,
        healthy_url: &healthy_url,
        credentials: (&user, &pass),
        neighbour: neighbour
            .zip(neighbour_url.as_deref())
            .map(|(n, u)| (n, u, SEED)),
    };
    let mut text = attack::config_text(&plan);
    if let Some(max) = max_instances {
        text = text.replace(
            "[runtime]\n",
            &format!("[runtime]\nmax-instances = {max}\n"),
        );
    }
    std::fs::write(&setup.config, text)?;
    yiwang_e2e::sign_adapters(&setup.config)?;
    let (arrivals, follower) = Arrivals::follow(&sims[0]);
    let result = measure(&setup, load, cases, neighbour, &arrivals).await;
    follower.abort();
    for sim in sims {
        sim.shutdown().await;
    }
    result
}

/// Start the gateway, deliver the seed case, queue the neighbour's first
/// cases, run the load, read the gateway's peak memory, kill it.
async fn measure(
    setup: &Setup,
    load: Load,
    cases: &Cases,
    neighbour: Option<&Neighbour>,
    arrivals: &Arrivals,
) -> Result<Figures> {
    let gateway = spawn(setup, load.start_within).await?;
    let intake = setup.intake()?;
    cases.post(&intake, true, SEED).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.get(SEED).is_none() {
        if Instant::now() > deadline {
            bail!("the healthy network did not receive the seed case in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(n) = neighbour {
        for i in 0..n.concurrency {
            let (c, client) = (cases.clone(), intake.clone());
            tokio::spawn(async move { c.post(&client, false, &format!("P6-P{i:04}")).await });
        }
    }
    let pid = gateway.pid();
    let m = feed::run(load, cases, &intake, arrivals, neighbour.is_some(), || {
        crate::gateway::cpu_time(pid).unwrap_or_default()
    })
    .await?;
    let peak_rss_mib = gateway.memory().context("gateway memory")?.peak_mib;
    gateway.kill9()?;
    Ok(Figures { m, peak_rss_mib })
}

/// The row's five figures, with the baseline's.
struct Line {
    delivery_p50: Bound,
    delivery_p99: Bound,
    throughput: f64,
    intake_p50: Duration,
    intake_p99: Duration,
}

impl Line {
    fn of(f: &Figures) -> Line {
        let intake: Vec<(Duration, bool)> = f.m.intake.iter().map(|d| (*d, false)).collect();
        Line {
            delivery_p50: percentile(&f.m.delivery, 50),
            delivery_p99: percentile(&f.m.delivery, 99),
            throughput: f.m.throughput,
            intake_p50: percentile(&intake, 50).value,
            intake_p99: percentile(&intake, 99).value,
        }
    }
}

fn times(a: f64, b: f64) -> String {
    format!("{:.2}×", ratio(a, b))
}

fn print_figures(rows: &[Row], base: &Figures) {
    let b = Line::of(base);
    println!(
        "\n| neighbour | healthy delivered/s | delivery p50 ms | delivery p99 ms | intake p50 ms | intake p99 ms | gateway CPU (cores) | peak RSS MiB | undelivered |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let Ok(f) = &r.figures else {
            println!("| {} | — | — | — | — | — | — | — | did not run |", r.name);
            continue;
        };
        let l = Line::of(f);
        let ms = crate::load::ms;
        println!(
            "| {} | {:.1} ({}) | {} ({}) | {} ({}) | {:.2} ({}) | {:.2} ({}) | {:.2} ({}) | {:.0} ({}) | {} of {} |",
            r.name,
            l.throughput,
            times(l.throughput, b.throughput),
            l.delivery_p50.show(),
            times(l.delivery_p50.ms(), b.delivery_p50.ms()),
            l.delivery_p99.show(),
            times(l.delivery_p99.ms(), b.delivery_p99.ms()),
            ms(l.intake_p50),
            times(ms(l.intake_p50), ms(b.intake_p50)),
            ms(l.intake_p99),
            times(ms(l.intake_p99), ms(b.intake_p99)),
            f.m.cpu_cores,
            times(f.m.cpu_cores, base.m.cpu_cores),
            f.peak_rss_mib,
            times(f.peak_rss_mib, base.peak_rss_mib),
            f.m.undelivered(),
            f.m.intake.len(),
        );
    }
    println!(
        "(ratios to the baseline in brackets; ≥ marks a percentile that fell on a case not delivered by the end of the drain)"
    );
}

/// Issue 14's aims per row: intake p50 ≤ 1.5×, healthy delivery p50 ≤ 2×,
/// healthy throughput ≥ 90% of the baseline.
fn print_aims(rows: &[Row], base: &Figures) {
    let b = Line::of(base);
    let mark = |ok: bool| if ok { "holds" } else { "**misses**" };
    println!("\n| neighbour | intake p50 ≤ 1.5× | delivery p50 ≤ 2× | throughput ≥ 90% |");
    println!("|---|---|---|---|");
    let mut all = true;
    for r in rows.iter().skip(1) {
        let Ok(f) = &r.figures else {
            all = false;
            println!("| {} | no figures | no figures | no figures |", r.name);
            continue;
        };
        let l = Line::of(f);
        let intake = ratio(l.intake_p50.as_secs_f64(), b.intake_p50.as_secs_f64());
        let delivery = ratio(l.delivery_p50.ms(), b.delivery_p50.ms());
        let throughput = ratio(l.throughput, b.throughput);
        let ok = [
            intake <= 1.5,
            delivery <= 2.0 && !l.delivery_p50.at_least,
            throughput >= 0.9,
        ];
        all &= ok.iter().all(|o| *o);
        println!(
            "| {} | {:.2}× {} | {:.2}× {} | {:.0}% {} |",
            r.name,
            intake,
            mark(ok[0]),
            delivery,
            mark(ok[1]),
            100.0 * throughput,
            mark(ok[2])
        );
    }
    println!(
        "every aim under every neighbour: **{}**",
        if all { "holds" } else { "no" }
    );
}
