//! `yiwang-sim`: run simulated ministry networks on this machine until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use yiwang_simulator::{Archetype, SimConfig, Simulator};

/// Simulated ministry private networks (审批专网) for the Yiwang demo, tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "yiwang-sim", version)]
struct Cli {
    /// One network: `name=NAME,archetype=json-rest|soap|signed-api|callback|lookup-only,addr=IP:PORT[,prefix=CASEPREFIX]`.
    /// Archetype `callback` also takes `callback=http://HOST:PORT/PATH`, where its status
    /// changes are pushed (`https://` needs the push TLS files). Archetype `signed-api` also
    /// takes `app-key=KEY,app-secret=SECRET` (default `yiwang-app` and a demo secret).
    /// Archetype `lookup-only` takes `password-text=true` to accept PasswordText. Any
    /// network takes `tls-cert=`, `tls-key=`, `client-ca=`, `push-ca=`, `push-cert=`,
    /// `push-key=` (PEM files) over the flags of the same names. Repeat for more networks.
    #[arg(long = "network", required = true, value_parser = parse_network)]
    networks: Vec<NetworkSpec>,

    /// Milliseconds between automatic status advances (0 = never).
    #[arg(long, default_value_t = 2000)]
    stage_interval_ms: u64,

    /// Serve mutual TLS with this server certificate (PEM); needs --tls-key and --client-ca.
    /// A network's own `tls-cert=`, `tls-key=`, `client-ca=` take precedence.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,

    /// Require client certificates issued by this CA (PEM): the gateway's for the network.
    #[arg(long, value_name = "PEM")]
    client_ca: Option<PathBuf>,

    /// Archetype 5: trust https:// callback receivers whose certificate comes from this CA
    /// (PEM: the gateway's CA); needs --push-cert and --push-key.
    #[arg(long, value_name = "PEM")]
    push_ca: Option<PathBuf>,

    /// Archetype 5: the client certificate pushes present (PEM).
    #[arg(long, value_name = "PEM")]
    push_cert: Option<PathBuf>,

    /// Archetype 5: its private key (PEM).
    #[arg(long, value_name = "PEM")]
    push_key: Option<PathBuf>,

    /// A directory written by `yiwang-pki`: every network serves mutual TLS with
    /// `<name>-server.crt`/`.key`, requires clients from `<name>-ca.crt`, and pushes with
    /// `ministry-<name>.crt`/`.key` trusting `gateway-ca.crt`, unless given otherwise.
    #[arg(long, value_name = "DIR")]
    pki: Option<PathBuf>,
}

/// The TLS files of one network, each from its spec, else the flags, else `--pki`.
#[derive(Debug, Clone, Default)]
struct TlsFiles {
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    push_ca: Option<PathBuf>,
    push_cert: Option<PathBuf>,
    push_key: Option<PathBuf>,
}

impl TlsFiles {
    /// Fill what is missing from `other`.
    fn or(self, other: TlsFiles) -> TlsFiles {
        TlsFiles {
            tls_cert: self.tls_cert.or(other.tls_cert),
            tls_key: self.tls_key.or(other.tls_key),
            client_ca: self.client_ca.or(other.client_ca),
            push_ca: self.push_ca.or(other.push_ca),
            push_cert: self.push_cert.or(other.push_cert),
            push_key: self.push_key.or(other.push_key),
        }
    }

    fn from_pki(dir: &Path, network: &str) -> TlsFiles {
        let paths = yiwang_pki::NetworkPaths::new(dir, network);
        TlsFiles {
            tls_cert: Some(paths.server_cert),
            tls_key: Some(paths.server_key),
            client_ca: Some(paths.ca_cert),
            push_ca: Some(paths.gateway_ca_cert),
            push_cert: Some(paths.push_cert),
            push_key: Some(paths.push_key),
        }
    }

    /// Apply to `cfg`: each group is all or nothing.
    fn apply(&self, mut cfg: SimConfig) -> anyhow::Result<SimConfig> {
        match (&self.tls_cert, &self.tls_key, &self.client_ca) {
            (None, None, None) => {}
            (Some(cert), Some(key), Some(ca)) => {
                cfg = cfg.with_tls(read(cert)?, read(key)?, read(ca)?);
            }
            _ => bail!(
                "network {}: TLS needs a certificate, its key and a client CA",
                cfg.name
            ),
        }
        match (&self.push_ca, &self.push_cert, &self.push_key) {
            (None, None, None) => {}
            (Some(ca), Some(cert), Some(key)) => {
                cfg = cfg.with_push_tls(read(ca)?, read(cert)?, read(key)?);
            }
            _ => bail!(
                "network {}: push TLS needs a CA, a client certificate and its key",
                cfg.name
            ),
        }
        Ok(cfg)
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
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
    /// Archetype 6: accept PasswordText too.
    password_text: bool,
    /// TLS files given in the spec itself.
    tls: TlsFiles,
}

fn parse_network(spec: &str) -> anyhow::Result<NetworkSpec> {
    let (mut name, mut archetype, mut addr, mut prefix) = (None, None, None, None);
    let mut callback = None;
    let mut password_text = false;
    let (mut app_key, mut app_secret) = (None, None);
    let mut tls = TlsFiles::default();
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
            "password-text" => {
                password_text = value
                    .parse()
                    .with_context(|| format!("password-text {value:?}: true or false"))?
            }
            "tls-cert" => tls.tls_cert = Some(value.into()),
            "tls-key" => tls.tls_key = Some(value.into()),
            "client-ca" => tls.client_ca = Some(value.into()),
            "push-ca" => tls.push_ca = Some(value.into()),
            "push-cert" => tls.push_cert = Some(value.into()),
            "push-key" => tls.push_key = Some(value.into()),
            other => bail!(
                "unknown key {other:?} (expected name, archetype, addr, prefix, callback, app-key, app-secret, password-text, tls-cert, tls-key, client-ca, push-ca, push-cert, push-key)"
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
        password_text,
        tls,
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
    let flags = TlsFiles {
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        client_ca: cli.client_ca.clone(),
        push_ca: cli.push_ca.clone(),
        push_cert: cli.push_cert.clone(),
        push_key: cli.push_key.clone(),
    };
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
        cfg = cfg.with_password_text(spec.password_text);
        if spec.app_key.is_some() || spec.app_secret.is_some() {
            let key = spec.app_key.unwrap_or_else(|| cfg.app_key.clone());
            let secret = spec.app_secret.unwrap_or_else(|| cfg.app_secret.clone());
            cfg = cfg.with_app_credentials(key, secret);
        }
        let mut files = spec.tls.clone().or(flags.clone());
        if let Some(dir) = &cli.pki {
            files = files.or(TlsFiles::from_pki(dir, &spec.name));
        }
        cfg = files.apply(cfg)?;
        if let Some(ca) = &files.client_ca {
            tracing::info!(
                network = %spec.name,
                client_ca = %ca.display(),
                "mutual TLS: client certificates required"
            );
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
