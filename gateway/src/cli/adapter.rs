//! `yiwang adapter …`: build a plugin, run it against its recorded fixtures
//! (no network), print what a component says about itself, call a live
//! endpoint once and record the exchange as a fixture (`call`, `record`; see
//! `adapter_call`), and make and check publisher signatures (`keygen`,
//! `sign`, `verify`; see `crate::publisher`).

use super::adapter_call::CallArgs;
use super::tokio_rt;
use crate::fixture;
use crate::runtime::{Runtime, RuntimeConfig};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

#[derive(Subcommand)]
pub(super) enum AdapterCmd {
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
    /// Make a new adapter crate outside this repository (its own workspace, lock file,
    /// release profile and fixtures) that builds and passes `yiwang adapter test` as made.
    New {
        /// The adapter's package name (lower-case, digits, '-').
        name: String,
        /// The network's shape to start from.
        #[arg(long, value_enum)]
        archetype: super::adapter_new::Archetype,
        /// Where to create it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The adapter SDK to build against (default: $YIWANG_SDK, else the SDK this
        /// binary was built with).
        #[arg(long, env = "YIWANG_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Make one operation (submit, query-status, poll) against a live endpoint through
    /// the gateway's transport and sandbox, and print the exchange and the result.
    Call(CallArgs),
    /// As `call`, then write the exchange as a fixture file (masks suggested for the
    /// parts that look volatile; secrets replaced by stand-ins).
    Record {
        #[command(flatten)]
        call: CallArgs,
        /// The fixture file to write.
        #[arg(long)]
        out: PathBuf,
        /// The fixture's description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Make an adapter publisher key pair: `<out>.key` (private, 0600) and
    /// `<out>.pub` (for `[adapters] publisher-keys`).
    Keygen {
        /// The files' path without extension.
        #[arg(long, default_value = "publisher")]
        out: PathBuf,
    },
    /// Sign a component for one network: writes `<component>.sig`.
    Sign {
        /// The publisher's private key file.
        #[arg(long)]
        key: PathBuf,
        /// The network the component is released for.
        #[arg(long)]
        network: String,
        /// The version to sign (default: the one the component's `describe`
        /// reports; the gateway refuses a component reporting another).
        #[arg(long)]
        version: Option<String>,
        /// Where to write the signature (default `<component>.sig`).
        #[arg(long)]
        out: Option<PathBuf>,
        component: PathBuf,
    },
    /// Check a component's signature as the gateway does at start and at a
    /// hot swap; exit 1 naming the check that failed.
    Verify {
        /// A trusted publisher public key file (repeat for several).
        #[arg(long = "publisher-key", required = true)]
        publisher_keys: Vec<PathBuf>,
        /// The network it is to run on.
        #[arg(long)]
        network: String,
        /// The signature file (default `<component>.sig`).
        #[arg(long)]
        signature: Option<PathBuf>,
        component: PathBuf,
    },
}

/// Run one `yiwang adapter` command.
pub(super) fn run(cmd: AdapterCmd) -> Result<ExitCode> {
    match cmd {
        AdapterCmd::Test {
            plugin_dir,
            component,
            only,
        } => adapter_test(&plugin_dir, component, only),
        AdapterCmd::Describe { component } => adapter_describe(&component),
        AdapterCmd::New {
            name,
            archetype,
            dir,
            sdk,
        } => super::adapter_new::new(&name, archetype, dir, sdk),
        AdapterCmd::Call(args) => super::adapter_call::call(&args),
        AdapterCmd::Record {
            call,
            out,
            description,
        } => super::adapter_call::record(&call, &out, description.as_deref()),
        AdapterCmd::Keygen { out } => super::adapter_sign::keygen(&out),
        AdapterCmd::Sign {
            key,
            network,
            version,
            out,
            component,
        } => super::adapter_sign::sign(&key, &network, version, out, &component),
        AdapterCmd::Verify {
            publisher_keys,
            network,
            signature,
            component,
        } => super::adapter_sign::verify(&publisher_keys, &network, signature, &component),
    }
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
            max_instances: Some(4),
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
    let name = package_name(plugin_dir)?.replace('-', "_");
    let mut found = None;
    for message in cargo_metadata::Message::parse_stream(&out.stdout[..]) {
        let message = message.context("read cargo's build messages")?;
        if let cargo_metadata::Message::CompilerArtifact(artifact) = message
            && artifact.target.name == name
        {
            found = artifact
                .filenames
                .into_iter()
                .rfind(|f| f.extension() == Some("wasm"))
                .map(PathBuf::from)
                .or(found);
        }
    }
    found.with_context(|| format!("cargo built no .wasm for {name} (is it a cdylib?)"))
}

/// `package.name` of the plugin's Cargo.toml.
fn package_name(plugin_dir: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(plugin_dir.join("Cargo.toml"))
        .context("read the plugin's Cargo.toml")?;
    let package: toml::Table =
        toml::from_str(&manifest).context("parse the plugin's Cargo.toml")?;
    package
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .context("the plugin's Cargo.toml has no package.name")
}

fn adapter_describe(component: &Path) -> Result<ExitCode> {
    let wasm = std::fs::read(component).with_context(|| format!("read {}", component.display()))?;
    let descriptor = super::component::describe(&wasm)?;
    println!("{}", serde_json::to_string_pretty(&descriptor)?);
    Ok(ExitCode::SUCCESS)
}
