//! `yiwang adapter call | record`: one operation of a component against a live endpoint,
//! through the gateway's own HTTP transport and the network sandbox (only the endpoints
//! given are reachable; secrets are filled in by the host as in production), printing the
//! exchange; `record` also writes it as a fixture the harness replays.
//!
//! Secrets come from environment variables (`--secret-env NAME=VAR`), never from the
//! command line, and are shown as `${secret:NAME}` in what is printed; the written fixture
//! carries stand-ins instead (see `fixture::record`).

use super::tokio_rt;
use crate::fixture::{self, CallSpec, NetworkSpec, RecordedExchange, RecordingTransport};
use crate::runtime::{NetworkSandbox, Runtime, RuntimeConfig, Services};
use crate::transport::HttpTransport;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// One operation against a live endpoint.
#[derive(Args, Debug, Clone)]
pub(super) struct CallArgs {
    /// The adapter component (.wasm).
    component: PathBuf,
    /// The operation to make.
    #[arg(value_enum)]
    operation: CallOperation,
    /// An endpoint of the network (repeat for several): the sandbox lets the adapter
    /// reach these and nothing else.
    #[arg(long = "endpoint", required = true)]
    endpoints: Vec<String>,
    /// The network's name (events carry it).
    #[arg(long, default_value = "adapter-call")]
    network: String,
    /// submit: the unified case (JSON file).
    #[arg(long)]
    case: Option<PathBuf>,
    /// submit: the idempotency key.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// query-status: the ministry's case number, or `idem:<key>`.
    #[arg(long)]
    number: Option<String>,
    /// poll: the cursor to poll from.
    #[arg(long)]
    cursor: Option<String>,
    /// An adapter-config value, `KEY=VALUE` (repeat).
    #[arg(long = "config", value_parser = pair)]
    config: Vec<(String, String)>,
    /// A secret, read from an environment variable: `NAME=ENV_VAR` (repeat).
    #[arg(long = "secret-env", value_parser = pair)]
    secret_env: Vec<(String, String)>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum CallOperation {
    Submit,
    QueryStatus,
    Poll,
}

impl CallOperation {
    fn name(self) -> &'static str {
        match self {
            CallOperation::Submit => "submit",
            CallOperation::QueryStatus => "query-status",
            CallOperation::Poll => "poll",
        }
    }
}

fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

/// What a call did: the exchanges and the outcome.
struct Done {
    call: CallSpec,
    network: NetworkSpec,
    now: chrono::DateTime<chrono::FixedOffset>,
    exchanges: Vec<RecordedExchange>,
    outcome: crate::runtime::CallReport<serde_json::Value>,
}

/// `yiwang adapter call`: print the exchange and the result; exit 1 if the call failed.
pub(super) fn call(args: &CallArgs) -> Result<ExitCode> {
    let done = run(args)?;
    let mut out = std::io::stdout().lock();
    print_exchanges(&mut out, &done)?;
    print_outcome(&mut out, &done)?;
    Ok(exit_code(&done))
}

/// `yiwang adapter record`: as `call`, then write the fixture to `out`.
pub(super) fn record(
    args: &CallArgs,
    out_file: &Path,
    description: Option<&str>,
) -> Result<ExitCode> {
    let done = run(args)?;
    let mut out = std::io::stdout().lock();
    print_exchanges(&mut out, &done)?;
    print_outcome(&mut out, &done)?;
    let case_name = args.case.as_ref().map(|c| relative_case(c, out_file));
    let call = CallSpec {
        case: case_name,
        ..done.call.clone()
    };
    let description = description.map_or_else(
        || {
            format!(
                "{} recorded from {}",
                call.operation,
                done.network.endpoints.join(", ")
            )
        },
        str::to_string,
    );
    let toml = fixture::fixture_toml(
        &description,
        &call,
        &done.network,
        done.now,
        &done.exchanges,
        &done.outcome,
    );
    std::fs::write(out_file, toml).with_context(|| format!("write {}", out_file.display()))?;
    writeln!(out, "\nfixture written: {}", out_file.display())?;
    if call.case.is_some() {
        writeln!(
            out,
            "(its `case` names the case file relative to the fixture: keep them side by side)"
        )?;
    }
    Ok(exit_code(&done))
}

/// The case file as the fixture names it: relative to the fixture's folder when it is in
/// it, else its file name (copy it next to the fixture).
fn relative_case(case: &Path, out_file: &Path) -> String {
    let dir = out_file.parent().unwrap_or(Path::new("."));
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (case_abs, dir_abs) = (abs(case), abs(dir));
    match case_abs.strip_prefix(&dir_abs) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn exit_code(done: &Done) -> ExitCode {
    if done.outcome.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(args: &CallArgs) -> Result<Done> {
    let wasm = std::fs::read(&args.component)
        .with_context(|| format!("read {}", args.component.display()))?;
    let case_json = match &args.case {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
        ),
        None => None,
    };
    let network = network_spec(args)?;
    let call = CallSpec {
        operation: args.operation.name().to_string(),
        case: None,
        idempotency_key: args.idempotency_key.clone(),
        network_case_number: args.number.clone(),
        cursor: args.cursor.clone(),
    };
    let mut endpoints = Vec::new();
    for e in &network.endpoints {
        endpoints.push(e.parse().with_context(|| format!("endpoint {e:?}"))?);
    }
    let mut sandbox = NetworkSandbox::new(network.name.clone(), endpoints);
    sandbox.config = network.config.clone();
    sandbox.secrets = network.secrets.clone();
    let now = chrono::Utc::now().with_timezone(&yiwang_schema::BEIJING);
    let rt = tokio_rt()?;
    let (exchanges, outcome) = rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances: Some(2),
            ..RuntimeConfig::default()
        })?;
        let recorder = Arc::new(RecordingTransport::new(Arc::new(HttpTransport::default())));
        let mut services = Services::new(recorder.clone());
        // The bodies as the adapter wrote them, so a record shows placeholders, not secrets.
        services.keep_bodies = true;
        let adapter = runtime.load(&wasm, sandbox, services).await?;
        let outcome = fixture::call_operation(&adapter, &call, case_json.as_deref()).await?;
        let mut exchanges = recorder.exchanges();
        fixture::attach_written_bodies(&mut exchanges, &outcome.trace);
        anyhow::Ok((exchanges, outcome))
    })?;
    Ok(Done {
        call,
        network,
        now,
        exchanges,
        outcome,
    })
}

fn network_spec(args: &CallArgs) -> Result<NetworkSpec> {
    let mut secrets = BTreeMap::new();
    for (name, var) in &args.secret_env {
        let value = std::env::var(var)
            .with_context(|| format!("secret {name}: environment variable {var} is not set"))?;
        secrets.insert(name.clone(), value);
    }
    if args.endpoints.is_empty() {
        bail!("give the network's endpoint with --endpoint URL");
    }
    Ok(NetworkSpec {
        name: args.network.clone(),
        endpoints: args.endpoints.clone(),
        config: args.config.iter().cloned().collect(),
        secrets,
    })
}

/// Secrets shown as their placeholders.
fn hide(text: &str, secrets: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    let mut by_length: Vec<_> = secrets.iter().filter(|(_, v)| !v.is_empty()).collect();
    by_length.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (name, value) in by_length {
        out = out.replace(value.as_str(), &format!("${{secret:{name}}}"));
    }
    out
}

fn print_exchanges(out: &mut impl Write, done: &Done) -> Result<()> {
    let secrets = &done.network.secrets;
    for (i, e) in done.exchanges.iter().enumerate() {
        let r = &e.request;
        writeln!(out, "--> #{} {} {}", i + 1, r.method, r.uri)?;
        for (k, v) in &r.headers {
            writeln!(out, "    {k}: {}", hide(v, secrets))?;
        }
        // As the adapter wrote it (placeholders where they were, and nothing else hidden),
        // else as sent with the secret values hidden.
        let body = match &e.written_body {
            Some(written) => String::from_utf8_lossy(written).into_owned(),
            None => hide(&String::from_utf8_lossy(&r.body), secrets),
        };
        writeln!(out, "    {body}")?;
        match &e.response {
            Ok(resp) => {
                writeln!(
                    out,
                    "<-- #{} HTTP {} ({} bytes)",
                    i + 1,
                    resp.status,
                    resp.body.len()
                )?;
                for (k, v) in &resp.headers {
                    writeln!(out, "    {k}: {v}")?;
                }
                writeln!(out, "    {}", String::from_utf8_lossy(&resp.body))?;
            }
            Err(err) => writeln!(out, "<-- #{} no reply: {err}", i + 1)?,
        }
    }
    if done.exchanges.is_empty() {
        writeln!(out, "(no request was sent)")?;
    }
    Ok(())
}

fn print_outcome(out: &mut impl Write, done: &Done) -> Result<()> {
    let secrets = &done.network.secrets;
    match &done.outcome.result {
        Ok(value) => {
            let pretty = serde_json::to_string_pretty(value)?;
            writeln!(
                out,
                "result ({}):\n{}",
                done.call.operation,
                hide(&pretty, secrets)
            )?;
        }
        Err(e) => {
            let class = serde_json::to_value(e.class(done.outcome.trace.sent))?;
            let class = class.as_str().unwrap_or("?").to_string();
            writeln!(
                out,
                "error {} ({class}): {}",
                e.kind(),
                hide(&e.to_string(), secrets)
            )?;
        }
    }
    Ok(())
}
