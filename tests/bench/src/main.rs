//! `yiwang-bench`: the side-by-side benchmarks of issue 5 that need whole
//! processes — P1 intake durability against PostgreSQL, P2 end to end
//! against nginx, P4 isolation, P5 growth, P6 hostile neighbours, P7 memory after
//! hostile input. (P3, the adapter's cost against
//! native code, is `cargo bench -p yiwang-gateway --bench adapter_cost`.)
//!
//! Each benchmark starts what it measures and its baseline itself, on
//! loopback, in the same run, and prints figures and ratios. Nothing here is
//! a test: no figure is asserted. `make bench` runs everything;
//! docs/benchmarks.md explains every figure.
//!
//! The gateway runs as a child process of this binary (`yiwang-bench
//! __gateway serve --config …` is the `yiwang` command line), so it is
//! measured as deployed: its own memory, its own threads, killable with -9.

mod gateway;
mod load;
mod nginx;
mod p1;
mod p2;
mod p4;
mod p5;
mod p6;
mod p7;
mod p8;
mod postgres;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The hidden first argument that makes this binary the gateway.
pub const GATEWAY_ARG: &str = "__gateway";

#[derive(Parser)]
#[command(
    name = "yiwang-bench",
    about = "Yiwang's side-by-side benchmarks (P1, P2, P4, P5, P6, P7, P8)"
)]
struct Cli {
    /// Smaller counts and shorter runs: a smoke run of every benchmark.
    #[arg(long, global = true)]
    quick: bool,
    #[command(subcommand)]
    which: Option<Which>,
}

#[derive(Subcommand, Clone)]
enum Which {
    /// Every benchmark below, in order (the default).
    All,
    /// Intake durability against PostgreSQL 15, and the disk's fsync rate.
    P1,
    /// End to end through a Wasm adapter over mTLS against nginx.
    P2,
    /// Healthy networks' throughput while one network is stalled.
    P4,
    /// Memory and restart recovery at 10k and 100k pending; 200 adapters.
    P5,
    /// A healthy network and the intake under load next to each hostile neighbour.
    P6(p6::Args),
    /// The gateway's memory after a hostile intake corpus, against valid cases.
    P7,
    /// One gateway on sled, one on PostgreSQL, two replicas on one PostgreSQL;
    /// plain PostgreSQL inserts; the database's cost per case.
    P8,
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub quick: bool,
}

impl Scale {
    /// `full` normally, `quick` with `--quick`.
    pub fn pick<T>(self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == GATEWAY_ARG) {
        return yiwang_gateway::cli::main_from(std::iter::once("yiwang".into()).chain(args));
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yiwang-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let scale = Scale { quick: cli.quick };
    let which = cli.which.clone().unwrap_or(Which::All);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    print_machine();
    let all = matches!(which, Which::All);
    rt.block_on(async {
        if all || matches!(which, Which::P1) {
            p1::run(scale).await?;
        }
        if all || matches!(which, Which::P2) {
            p2::run(scale).await?;
        }
        if all || matches!(which, Which::P4) {
            p4::run(scale).await?;
        }
        if all || matches!(which, Which::P5) {
            p5::run(scale).await?;
        }
        match &which {
            Which::P6(args) => p6::run(scale, args).await?,
            Which::All => p6::run(scale, &p6::Args::default()).await?,
            _ => {}
        }
        if all || matches!(which, Which::P7) {
            p7::run(scale).await?;
        }
        if all || matches!(which, Which::P8) {
            p8::run(scale).await?;
        }
        anyhow::Ok(())
    })
}

/// What the figures were measured on.
fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    println!(
        "machine: {cpus} CPUs ({model}), {mem_gib:.1} GiB RAM; {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
}
