//! `yiwang`: the gateway's command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use yiwang_gateway::fixture;
use yiwang_gateway::runtime::{NetworkSandbox, Runtime, RuntimeConfig, Services};
use yiwang_gateway::transport::HttpTransport;

#[derive(Parser)]
#[command(
    name = "yiwang",
    version,
    about = "Yiwang (一网): enter a case once, reach every ministry network"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Work with adapter components.
    #[command(subcommand)]
    Adapter(AdapterCmd),
    /// Work with unified cases.
    #[command(subcommand)]
    Case(CaseCmd),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print the JSON Schema of the unified case (or event, case-change).
    Schema {
        #[arg(value_parser = ["case", "event", "case-change"], default_value = "case")]
        which: String,
    },
}

#[derive(Subcommand)]
enum AdapterCmd {
    /// Run an adapter against its recorded fixtures (no network) and diff
    /// the requests and results against the expected ones.
    Test {
        /// The plugin folder (with Cargo.toml and fixtures/).
        plugin_dir: PathBuf,
        /// Use this component instead of building the plugin.
        #[arg(long)]
        component: Option<PathBuf>,
        /// Run only fixtures whose name contains this.
        #[arg(long)]
        only: Option<String>,
    },
    /// Load a component and print what it says about itself (items, field mapping).
    Describe { component: PathBuf },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check a configuration file; every problem is reported as file:line:col.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum CaseCmd {
    /// Validate a case file against the unified schema; lists every problem.
    Validate { file: PathBuf },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Top::Adapter(AdapterCmd::Test {
            plugin_dir,
            component,
            only,
        }) => adapter_test(&plugin_dir, component, only),
        Top::Adapter(AdapterCmd::Describe { component }) => adapter_describe(&component),
        Top::Case(CaseCmd::Validate { file }) => case_validate(&file),
        Top::Config(ConfigCmd::Check { file }) => config_check(&file),
        Top::Schema { which } => {
            let schema = match which.as_str() {
                "event" => yiwang_schema::event_json_schema(),
                "case-change" => yiwang_schema::case_change_json_schema(),
                _ => yiwang_schema::case_json_schema(),
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn tokio_rt() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio")
}

fn adapter_test(
    plugin_dir: &Path,
    component: Option<PathBuf>,
    only: Option<String>,
) -> Result<ExitCode> {
    let fixtures = plugin_dir.join("fixtures");
    if !fixtures.is_dir() {
        bail!("{} has no fixtures/ folder", plugin_dir.display());
    }
    let component = match component {
        Some(c) => c,
        None => build_plugin(plugin_dir)?,
    };
    let wasm =
        std::fs::read(&component).with_context(|| format!("read {}", component.display()))?;
    let rt = tokio_rt()?;
    let results = rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        })?;
        anyhow::Ok(fixture::run_dir(&runtime, &wasm, &fixtures).await?)
    })?;
    let mut failed = 0;
    let mut ran = 0;
    for r in results
        .iter()
        .filter(|r| only.as_ref().is_none_or(|o| r.name.contains(o.as_str())))
    {
        ran += 1;
        if r.passed() {
            println!("ok      {}  {}", r.name, r.description);
        } else {
            failed += 1;
            println!("FAILED  {}  {}", r.name, r.description);
            for f in &r.failures {
                for line in f.lines() {
                    println!("        {line}");
                }
            }
        }
    }
    println!("\n{} passed, {} failed", ran - failed, failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Build one plugin for wasm32-wasip2 and return the component's path.
fn build_plugin(plugin_dir: &Path) -> Result<PathBuf> {
    eprintln!("building {} for wasm32-wasip2 ...", plugin_dir.display());
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(plugin_dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo (is the Rust toolchain installed?)")?;
    if !out.status.success() {
        bail!(
            "building {} failed; if the target is missing: rustup target add wasm32-wasip2",
            plugin_dir.display()
        );
    }
    let manifest = std::fs::read_to_string(plugin_dir.join("Cargo.toml"))
        .context("read the plugin's Cargo.toml")?;
    let package: toml::Table =
        toml::from_str(&manifest).context("parse the plugin's Cargo.toml")?;
    let name = package
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .context("the plugin's Cargo.toml has no package.name")?
        .replace('-', "_");
    let mut found = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name.as_str() {
            for f in msg["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
            {
                if f.ends_with(".wasm") {
                    found = Some(PathBuf::from(f));
                }
            }
        }
    }
    found.with_context(|| format!("cargo built no .wasm for {name} (is it a cdylib?)"))
}

fn adapter_describe(component: &Path) -> Result<ExitCode> {
    let wasm = std::fs::read(component).with_context(|| format!("read {}", component.display()))?;
    let rt = tokio_rt()?;
    let descriptor = rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances: 2,
            ..RuntimeConfig::default()
        })?;
        let sandbox = NetworkSandbox::new("describe", Vec::new());
        let adapter = runtime
            .load(
                &wasm,
                sandbox,
                Services::new(std::sync::Arc::new(HttpTransport::default())),
            )
            .await?;
        anyhow::Ok(adapter.descriptor().clone())
    })?;
    println!("{}", serde_json::to_string_pretty(&descriptor)?);
    Ok(ExitCode::SUCCESS)
}

fn config_check(file: &Path) -> Result<ExitCode> {
    match yiwang_gateway::config::Config::load(file) {
        Ok(loaded) => {
            let c = &loaded.config;
            println!(
                "{}: ok ({} networks, {} items)",
                file.display(),
                c.networks.len(),
                c.items.len()
            );
            for (name, net) in &c.networks {
                if let Err(e) = loaded.resolve_secrets(name, net.get_ref()) {
                    println!("  note: {e} (needed when the gateway starts)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            println!("{errors}");
            println!("{} problem(s)", errors.errors.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn case_validate(file: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    match yiwang_schema::parse_case(&bytes) {
        Ok(valid) => {
            println!("{}: valid case {}", file.display(), valid.case.case_number);
            for o in &valid.overrides_applied {
                println!(
                    "  checksum override applied at {} ({}; approved by {})",
                    o.pointer, o.reason, o.approved_by
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            println!("{}: {} problem(s)", file.display(), errors.0.len());
            for e in &errors.0 {
                println!("  {e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
