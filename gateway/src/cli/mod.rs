//! `yiwang`: the gateway's command line (the binary is a thin `main` over
//! [`main`], so end-to-end tests can run the same code as a process).
//!
//! Here: the top-level commands, dispatch, and the commands that are one
//! call each (`serve`, `config check`, `case validate`, `schema`). The
//! adapter tools are in `adapter`, the admin API's client in `queue` (and
//! `report`, which uses it).

mod adapter;
mod adapter_call;
mod adapter_new;
mod adapter_sign;
mod component;
mod queue;
mod report;
mod store;
mod witness;

use adapter::AdapterCmd;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use queue::QueueCmd;
use report::ReportCmd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use store::StoreCmd;

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
    /// Reports of a running gateway (through its admin API): what keying a
    /// case once saves.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Migrate or check the store a configuration names (PostgreSQL
    /// schema versions; the embedded store has none).
    #[command(subcommand)]
    Store(StoreCmd),
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
    quiet_on_closed_stdout();
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

/// A reader that stops early (`yiwang adapter describe x.wasm | head -1`) closes the pipe;
/// Rust ignores SIGPIPE, so the next `println!` panics with "failed printing to stdout:
/// Broken pipe". That is no failure of ours: exit quietly and successfully instead. One hook
/// for every command, so no command has to route its output through a special writer. (The
/// signal itself is left ignored: `serve` must survive peers that hang up.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_closed_stdout(message) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether a panic message is std's report of writing to a closed stdout.
fn is_closed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout")
        && message.contains(&std::io::Error::from_raw_os_error(libc::EPIPE).to_string())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Top::Adapter(cmd) => adapter::run(cmd),
        Top::Case(CaseCmd::Validate { file }) => case_validate(&file),
        Top::Config(ConfigCmd::Check { file }) => config_check(&file),
        Top::Serve { config } => serve(&config),
        Top::Queue(cmd) => queue::run(cmd),
        Top::Report(cmd) => report::run(cmd),
        Top::Store(cmd) => store::run(cmd),
        Top::Audit(cmd) => Ok(ExitCode::from(
            u8::try_from(yiwang_audit::cli::run_with(cmd, Some(&witness::Fetcher))?).unwrap_or(2),
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

/// A runtime for the commands that do async work.
fn tokio_rt() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio")
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
            if !loaded.forms.is_empty() {
                let items: Vec<&str> = loaded.forms.items().collect();
                println!(
                    "  forms: {} checked at intake ({} code tables)",
                    items.join(", "),
                    c.code_tables.len()
                );
            }
            for warning in loaded.warnings() {
                println!("  warning: {warning}");
            }
            for (name, net) in &c.networks {
                if let Err(e) = loaded.resolve_secrets(name, net.get_ref()) {
                    println!("  note: {e} (needed when the gateway starts)");
                }
                if let Err(e) = loaded.resolve_adapter_config(name, net.get_ref()) {
                    println!("  note: {e} (needed when the gateway starts)");
                }
            }
            if let Err(e @ crate::config::StoreConfigError::PasswordEnv { .. }) =
                loaded.postgres_options()
            {
                println!("  note: {e} (needed when the gateway starts)");
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
            crate::serve::Gateway::start(&loaded, crate::delivery::DeliveryOptions::default())
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

#[cfg(test)]
mod tests {
    use super::is_closed_stdout;

    #[test]
    fn only_a_closed_stdout_is_taken_for_one() {
        let closed = format!(
            "failed printing to stdout: {}",
            std::io::Error::from_raw_os_error(libc::EPIPE)
        );
        assert!(is_closed_stdout(&closed), "{closed}");
        assert!(!is_closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_closed_stdout("index out of bounds"));
    }
}
