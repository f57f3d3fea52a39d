//! `yiwang`: the gateway's command line (the binary is a thin `main` over
//! [`main`], so end-to-end tests can run the same code as a process).

use crate::fixture;
use crate::runtime::{NetworkSandbox, Runtime, RuntimeConfig, Services};
use crate::transport::HttpTransport;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

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
    /// Run the gateway: intake, delivery queue, back-flow, admin API.
    Serve {
        /// The configuration file (see config/yiwang.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Inspect and repair the delivery queue of a running gateway (through
    /// its admin API).
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Verify, query and export the tamper-evident audit trail (offline,
    /// read-only: point --dir at the gateway's <data-dir>/audit or a copy).
    #[command(subcommand)]
    Audit(yiwang_audit::cli::AuditCommand),
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

/// Where the running gateway's admin API is, and the operator's identity
/// (the admin listener is mTLS: a client certificate mapped to an operator).
#[derive(clap::Args)]
struct AdminAddr {
    /// Admin API base URL (`https://127.0.0.1:8441`).
    #[arg(long, conflicts_with = "config")]
    admin: Option<String>,
    /// Read the admin listener's address from this configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The operator's client certificate (PEM).
    #[arg(long, env = "YIWANG_CLIENT_CERT")]
    cert: PathBuf,
    /// The operator's private key (PEM).
    #[arg(long, env = "YIWANG_CLIENT_KEY")]
    key: PathBuf,
    /// The CA that issued the gateway's server certificate (PEM).
    #[arg(long, env = "YIWANG_CA")]
    ca: PathBuf,
    /// Verify the gateway's certificate for this name instead of the URL's host.
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Unfinished jobs, oldest first.
    List {
        #[command(flatten)]
        at: AdminAddr,
        /// Only this network (or `subscriber:<name>`).
        #[arg(long)]
        network: Option<String>,
        /// Only jobs in this state (pending, waiting, blocked, retrying, verifying, in_flight).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Dead letters with their case, adapter version and every attempt.
    Dlq {
        #[command(flatten)]
        at: AdminAddr,
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        case: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put dead letters back in the queue: one (--case and --job), a case's,
    /// or a network's, at most --rate per second, optionally with a newer
    /// adapter version.
    Replay {
        #[command(flatten)]
        at: AdminAddr,
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        case: Option<String>,
        #[arg(long)]
        job: Option<u32>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Replayed jobs falling due per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Replay with this adapter component (loaded and checked by the gateway).
        #[arg(long)]
        adapter: Option<PathBuf>,
    },
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

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with these arguments (the first is the program name): lets
/// another binary, such as the benchmark harness, run the gateway's command
/// line as a child process of itself.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse_from(args)) {
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
        Top::Serve { config } => serve(&config),
        Top::Queue(cmd) => queue(cmd),
        Top::Audit(cmd) => Ok(ExitCode::from(
            u8::try_from(yiwang_audit::cli::run(cmd)?).unwrap_or(2),
        )),
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
    match crate::config::Config::load(file) {
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

fn serve(config: &Path) -> Result<ExitCode> {
    let loaded = match crate::config::Config::load(config) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    tokio_rt()?.block_on(async {
        let gateway =
            crate::serve::Gateway::start(&loaded, crate::delivery::EngineOptions::default())
                .await?;
        // Scripts and tests read these lines to find the listeners.
        println!("yiwang: intake listening on {}", gateway.intake_addr);
        if let Some(a) = gateway.callback_addr {
            println!("yiwang: callbacks listening on {a}");
        }
        if let Some(a) = gateway.admin_addr {
            println!("yiwang: admin listening on {a}");
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        eprintln!("yiwang: stopping");
        gateway.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn admin_base(at: &AdminAddr) -> Result<String> {
    if let Some(a) = &at.admin {
        return Ok(a.trim_end_matches('/').to_string());
    }
    let file = at
        .config
        .clone()
        .context("give --admin URL or --config FILE (with [listeners] admin)")?;
    let loaded = crate::config::Config::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = loaded
        .config
        .listeners
        .admin
        .as_ref()
        .with_context(|| format!("{} has no [listeners] admin listener", file.display()))?;
    Ok(format!("https://{}", admin.addr))
}

/// One request to the admin API; the JSON answer, or the problem it reported.
fn admin_call(
    at: &AdminAddr,
    base: &str,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    use crate::transport::{OutboundRequest, Transport};
    let uri: http::Uri = format!("{base}{path}").parse().context("admin URL")?;
    let request = OutboundRequest {
        network: "admin".into(),
        method,
        uri,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body
            .map(|b| b.to_string().into_bytes().into())
            .unwrap_or_default(),
        timeout: std::time::Duration::from_secs(120),
        max_response_bytes: 256 << 20,
    };
    let transport = crate::transport::GatewayTransport::new(std::time::Duration::from_secs(5));
    transport
        .add(
            "admin",
            &crate::tls::ClientTlsConfig {
                ca: vec![at.ca.clone()],
                cert: at.cert.clone(),
                key: at.key.clone(),
                pin_sha256: Vec::new(),
                server_name: at.server_name.clone(),
            },
        )
        .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?;
    let resp = tokio_rt()?
        .block_on(transport.send(request))
        .map_err(|e| anyhow::anyhow!("admin API at {base}: {e}"))?;
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&resp.body).into_owned())
    });
    if !(200..300).contains(&resp.status) {
        let detail = json
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        bail!(
            "admin API answered {}: {detail} {}",
            resp.status,
            if detail.is_empty() {
                json.to_string()
            } else {
                String::new()
            }
        );
    }
    Ok(json)
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", url_encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn queue(cmd: QueueCmd) -> Result<ExitCode> {
    match cmd {
        QueueCmd::List {
            at,
            network,
            state,
            limit,
        } => {
            let base = admin_base(&at)?;
            let path = format!(
                "/admin/queue{}",
                query_string(&[
                    ("network", network),
                    ("state", state),
                    ("limit", Some(limit.to_string()))
                ])
            );
            let out = admin_call(&at, &base, http::Method::GET, &path, None)?;
            let jobs = out["jobs"].as_array().cloned().unwrap_or_default();
            for j in &jobs {
                println!(
                    "{:<24} {:<6} {:<32} {:<10} attempts={} {}",
                    j["case_number"].as_str().unwrap_or(""),
                    j["job"],
                    j["destination"].as_str().unwrap_or(""),
                    j["state"].as_str().unwrap_or(""),
                    j["attempts"],
                    j.get("last_error")
                        .and_then(|e| e["message"].as_str())
                        .or_else(|| j.get("waiting_for").and_then(|w| w.as_str()))
                        .unwrap_or("")
                );
            }
            println!("{} job(s)", jobs.len());
        }
        QueueCmd::Dlq {
            at,
            network,
            case,
            limit,
        } => {
            let base = admin_base(&at)?;
            let path = format!(
                "/admin/dlq{}",
                query_string(&[
                    ("network", network),
                    ("case_number", case),
                    ("limit", Some(limit.to_string()))
                ])
            );
            let out = admin_call(&at, &base, http::Method::GET, &path, None)?;
            let jobs = out["dead_letters"].as_array().cloned().unwrap_or_default();
            for j in &jobs {
                println!(
                    "{} job {} → {} ({} attempts)\n  reason: {}",
                    j["case_number"].as_str().unwrap_or(""),
                    j["job"],
                    j["destination"].as_str().unwrap_or(""),
                    j["attempts"],
                    j["reason"].as_str().unwrap_or("")
                );
                for a in j["attempt_log"].as_array().into_iter().flatten() {
                    println!(
                        "    {} {:<10} {:<22} adapter={} {}",
                        a["at"].as_str().unwrap_or(""),
                        a["outcome"].as_str().unwrap_or(""),
                        a["kind"].as_str().unwrap_or("-"),
                        a["adapter"]
                            .as_str()
                            .map(|d| &d[..12.min(d.len())])
                            .unwrap_or("-"),
                        a["message"].as_str().unwrap_or("")
                    );
                }
            }
            println!("{} dead letter(s)", jobs.len());
        }
        QueueCmd::Replay {
            at,
            network,
            case,
            job,
            limit,
            rate,
            adapter,
        } => {
            let base = admin_base(&at)?;
            let mut body = serde_json::json!({
                "network": network,
                "case_number": case,
                "job": job,
                "limit": limit,
                "rate_per_second": rate,
            });
            if let Some(path) = adapter {
                use base64::Engine as _;
                let wasm =
                    std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                body["adapter_wasm_base64"] =
                    serde_json::json!(base64::engine::general_purpose::STANDARD.encode(wasm));
            }
            let out = admin_call(&at, &base, http::Method::POST, "/admin/replay", Some(body))?;
            let n = out["replayed"].as_array().map(Vec::len).unwrap_or(0);
            for r in out["replayed"].as_array().into_iter().flatten() {
                println!(
                    "replayed {} job {} (due {})",
                    r["case_number"].as_str().unwrap_or(""),
                    r["job"],
                    r["due"].as_str().unwrap_or("")
                );
            }
            if let Some(a) = out["adapter"].as_str() {
                println!("with adapter {a}");
            }
            println!("{n} job(s) replayed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
