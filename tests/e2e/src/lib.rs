//! A whole gateway on loopback against simulated ministry networks: the
//! harness the end-to-end tests and the demo share. It writes a real
//! configuration file, starts the gateway the way `yiwang serve` does, and
//! talks to it over HTTP.

pub mod live;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yiwang_gateway::transport::{HttpTransport, OutboundRequest, Transport};
use yiwang_simulator::{SimConfig, Simulator};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A test case file from the schema's testdata, with a fresh case number.
pub fn case_json(file: &str, case_number: &str) -> Result<Value> {
    let path = root().join("adapters-sdk/schema/testdata").join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut v: Value = serde_json::from_str(&text)?;
    v["case_number"] = Value::String(case_number.to_string());
    Ok(v)
}

/// The housing adapter's construction-permit case (item `ZJ-SGXK-001`), which
/// every example adapter accepts, with a fresh case number.
pub fn permit_case(case_number: &str) -> Result<Value> {
    let path = root().join("plugins/housing-construction/fixtures/construction-permit.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut v: Value = serde_json::from_str(&text)?;
    v["case_number"] = Value::String(case_number.to_string());
    Ok(v)
}

/// How one network of a test world is set up.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub name: String,
    pub sim: SimConfig,
    /// Path of the adapter component.
    pub adapter: String,
    pub secrets: BTreeMap<String, String>,
    pub adapter_config: BTreeMap<String, String>,
    pub poll_interval_ms: Option<u64>,
    /// Extra TOML lines for `[networks.<name>]` (limits, retry, breaker tables go after).
    pub extra: String,
}

impl NetworkSpec {
    /// Archetype 1 (JSON REST + token) with the market-regulation adapter.
    pub fn market_regulation(name: &str) -> Self {
        let sim = SimConfig::json_rest(name);
        let (u, p) = sim.credentials.clone();
        NetworkSpec {
            name: name.into(),
            adapter: yiwang_artifacts::MARKET_REGULATION.into(),
            secrets: BTreeMap::from([("username".into(), u), ("password".into(), p)]),
            adapter_config: BTreeMap::new(),
            poll_interval_ms: Some(200),
            extra: String::new(),
            sim,
        }
    }

    /// Archetype 2 (SOAP, GB18030) with the housing-construction adapter.
    pub fn housing_construction(name: &str) -> Self {
        NetworkSpec {
            name: name.into(),
            sim: SimConfig::soap(name),
            adapter: yiwang_artifacts::HOUSING_CONSTRUCTION.into(),
            secrets: BTreeMap::new(),
            adapter_config: BTreeMap::new(),
            poll_interval_ms: None,
            extra: String::new(),
        }
    }

    /// Archetype 3 (signed open-API) with the tax adapter.
    pub fn tax(name: &str) -> Self {
        let sim = SimConfig::signed_api(name);
        NetworkSpec {
            name: name.into(),
            adapter: yiwang_artifacts::TAX.into(),
            secrets: BTreeMap::from([("app-secret".into(), sim.app_secret.clone())]),
            adapter_config: BTreeMap::from([("app-key".into(), sim.app_key.clone())]),
            poll_interval_ms: Some(200),
            extra: String::new(),
            sim,
        }
    }

    /// Archetype 5 (pushes) with the public-security adapter; the
    /// simulator's push URL is set once the gateway listens.
    pub fn public_security(name: &str) -> Self {
        let sim = SimConfig::callback(name);
        NetworkSpec {
            name: name.into(),
            adapter: yiwang_artifacts::PUBLIC_SECURITY.into(),
            secrets: BTreeMap::from([
                ("api-key".into(), sim.api_key.clone()),
                ("push-secret".into(), sim.push_secret.clone()),
            ]),
            adapter_config: BTreeMap::new(),
            poll_interval_ms: None,
            extra: String::new(),
            sim,
        }
    }

    pub fn with_extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The configuration text for networks at their simulators' addresses.
pub fn config_text(
    networks: &[(NetworkSpec, String)],
    items: &str,
    subscribers: &str,
    listeners: &str,
) -> String {
    let mut out = String::new();
    out.push_str("[gateway]\ndata-dir = \"data\"\n\n");
    out.push_str(listeners);
    out.push_str("\n[runtime]\nmax-instances = 64\n\n");
    for (spec, url) in networks {
        out.push_str(&format!(
            "[networks.{}]\nadapter = {}\nendpoints = [{}]\nconcurrency = 4\n",
            spec.name,
            toml_str(&spec.adapter),
            toml_str(url)
        ));
        if let Some(ms) = spec.poll_interval_ms {
            out.push_str(&format!("poll-interval-ms = {ms}\n"));
        }
        out.push_str(&format!(
            "[networks.{}.retry]\ninitial-ms = 50\nmax-interval-ms = 400\n",
            spec.name
        ));
        out.push_str(&format!(
            "[networks.{}.breaker]\nfailures = 3\ncooldown-ms = 300\n",
            spec.name
        ));
        out.push_str(&format!(
            "[networks.{}.limits]\nsend-timeout-ms = 2000\nwall-time-ms = 10000\n",
            spec.name
        ));
        if !spec.secrets.is_empty() {
            out.push_str(&format!("[networks.{}.secrets]\n", spec.name));
            for (k, v) in &spec.secrets {
                out.push_str(&format!("{k} = {{ value = {} }}\n", toml_str(v)));
            }
        }
        if !spec.adapter_config.is_empty() {
            out.push_str(&format!("[networks.{}.adapter-config]\n", spec.name));
            for (k, v) in &spec.adapter_config {
                out.push_str(&format!("{k} = {}\n", toml_str(v)));
            }
        }
        out.push_str(&spec.extra);
        out.push('\n');
    }
    out.push_str(items);
    out.push('\n');
    out.push_str(subscribers);
    out
}

/// JSON over HTTP to the gateway.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: HttpTransport,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            base: base.into(),
            http: HttpTransport::new(Duration::from_secs(2)),
        }
    }

    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let resp = self
            .http
            .send(OutboundRequest {
                network: "test".into(),
                method,
                uri: format!("{}{path}", self.base).parse()?,
                headers: vec![("content-type".into(), content_type.into())],
                body: body.into(),
                timeout: Duration::from_secs(30),
                max_response_bytes: 64 << 20,
            })
            .await?;
        let v = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).into_owned()));
        Ok((resp.status, v))
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.request(
            http::Method::POST,
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.request(http::Method::GET, path, "application/json", Vec::new())
            .await
    }

    /// `GET /v1/cases/{case}` until `done` holds (or time runs out).
    pub async fn wait_case(
        &self,
        case: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            if let Ok((200, v)) = self.get(&format!("/v1/cases/{case}")).await {
                if done(&v) {
                    return Ok(v);
                }
                last = v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "case {case} did not reach the expected state in {timeout:?}; last view:\n{}",
            serde_json::to_string_pretty(&last).unwrap_or_default()
        )
    }
}

/// The delivery state of `network` in a case view.
pub fn delivery_state(view: &Value, network: &str) -> String {
    view["networks"][network]["delivery"]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Wait until `f` holds, polling.
pub async fn eventually(timeout: Duration, what: &str, f: impl Fn() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// A received notice: its `Idempotency-Key` header and JSON body.
pub type Notice = (Option<String>, Value);

/// A webhook receiver that records every notice (and can fail the first ones).
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Notice>>>,
    pub fail_next: Arc<Mutex<u32>>,
}

impl Webhook {
    pub async fn start() -> Result<Webhook> {
        Self::start_at("127.0.0.1:0", "/events").await
    }

    /// Listen on `addr`; `path` only shapes the advertised URL.
    pub async fn start_at(addr: &str, path: &str) -> Result<Webhook> {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("webhook receiver: bind {addr}"))?;
        let url = format!("http://{}{path}", listener.local_addr()?);
        let hook = Webhook {
            url,
            received: Arc::default(),
            fail_next: Arc::default(),
        };
        let h = hook.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let h = h.clone();
                            async move {
                                let key = req
                                    .headers()
                                    .get("idempotency-key")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string);
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let fail = {
                                    let mut f =
                                        h.fail_next.lock().unwrap_or_else(|p| p.into_inner());
                                    if *f > 0 {
                                        *f -= 1;
                                        true
                                    } else {
                                        false
                                    }
                                };
                                let status = if fail {
                                    503
                                } else {
                                    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                    h.received
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .push((key, v));
                                    200
                                };
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                                        .unwrap_or_default(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(hook)
    }

    pub fn notices(&self) -> Vec<Notice> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Simulators, a config file and a gateway in one temporary folder.
pub struct World {
    pub dir: tempfile::TempDir,
    pub sims: BTreeMap<String, Simulator>,
    pub config_path: PathBuf,
    pub gateway: Option<yiwang_gateway::serve::Gateway>,
}

impl World {
    /// Start the simulators and write the configuration; the gateway is not started.
    pub async fn prepare(
        networks: Vec<NetworkSpec>,
        items: &str,
        subscribers: &str,
        listeners: &str,
    ) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let mut sims = BTreeMap::new();
        let mut placed = Vec::new();
        for spec in networks {
            let sim = Simulator::start(spec.sim.clone(), "127.0.0.1:0".parse()?).await?;
            placed.push((spec.clone(), sim.base_url()));
            sims.insert(spec.name.clone(), sim);
        }
        let text = config_text(&placed, items, subscribers, listeners);
        let config_path = dir.path().join("yiwang.toml");
        std::fs::write(&config_path, text)?;
        Ok(World {
            dir,
            sims,
            config_path,
            gateway: None,
        })
    }

    /// Start the gateway in this process.
    pub async fn start_gateway(&mut self) -> Result<Client> {
        let loaded = yiwang_gateway::config::Config::load(&self.config_path)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let gw = yiwang_gateway::serve::Gateway::start(
            &loaded,
            yiwang_gateway::delivery::EngineOptions::default(),
        )
        .await?;
        let client = Client::new(format!("http://{}", gw.intake_addr));
        self.gateway = Some(gw);
        Ok(client)
    }

    pub fn admin(&self) -> Option<Client> {
        self.gateway
            .as_ref()
            .and_then(|g| g.admin_addr)
            .map(|a| Client::new(format!("http://{a}")))
    }

    pub fn sim(&self, name: &str) -> &Simulator {
        &self.sims[name]
    }

    pub async fn stop_gateway(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await;
        }
    }
}

/// Default listeners: intake and admin on ephemeral ports.
pub const LISTENERS: &str = "[listeners]\nintake = { addr = \"127.0.0.1:0\" }\nadmin = { addr = \"127.0.0.1:0\" }\ncallbacks = { addr = \"127.0.0.1:0\" }\n";
