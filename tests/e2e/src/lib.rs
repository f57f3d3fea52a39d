//! A whole gateway on loopback against simulated ministry networks: the
//! harness the end-to-end tests and the demo share. It generates a PKI
//! (`yiwang-pki`), writes a real configuration file, starts the gateway the
//! way `yiwang serve` does, and talks to it over mutually authenticated TLS:
//! clients present certificates mapped to principals, the gateway presents
//! its own client certificate to each simulated ministry (which requires
//! it), and ministries push to the callback listener with theirs.

pub mod live;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yiwang_gateway::tls::ClientTlsConfig;
use yiwang_gateway::transport::{GatewayTransport, HttpTransport, OutboundRequest, Transport};
pub use yiwang_pki::{IssuedFiles, Pki};
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
    /// Calls in flight at once (`concurrency`).
    pub concurrency: u32,
    /// `[breaker]`: failures in a row that open it, and how long it stays open.
    pub breaker: (u32, u64),
    /// `[limits] send-timeout-ms`: how long one request to the ministry may take.
    pub send_timeout_ms: u64,
    /// Extra TOML lines for `[networks.<name>]` (limits, retry, breaker tables go after).
    pub extra: String,
    /// `[retry] max-interval-ms` (the backoff ceiling).
    pub retry_max_interval_ms: u64,
    /// Extra TOML lines for `[networks.<name>.retry]`.
    pub retry_extra: String,
    /// `[limits] wall-time-ms`: how long one adapter call may take.
    pub wall_time_ms: u64,
    /// Extra TOML lines for `[networks.<name>.limits]`.
    pub limits_extra: String,
}

impl NetworkSpec {
    /// A network at its defaults: no secrets, no adapter configuration, no
    /// polling, 4 calls at once, a 3-failure / 300 ms breaker, 2 s sends.
    fn new(name: &str, sim: SimConfig, adapter: &str) -> Self {
        NetworkSpec {
            name: name.into(),
            sim,
            adapter: adapter.into(),
            secrets: BTreeMap::new(),
            adapter_config: BTreeMap::new(),
            poll_interval_ms: None,
            concurrency: 4,
            breaker: (3, 300),
            send_timeout_ms: 2000,
            extra: String::new(),
            retry_max_interval_ms: 400,
            retry_extra: String::new(),
            wall_time_ms: 10_000,
            limits_extra: String::new(),
        }
    }

    /// The hostile test adapter in `mode` (plugins/testing/hostile), with a
    /// JSON REST simulator as its only endpoint.
    pub fn hostile(name: &str, mode: &str) -> Self {
        Self::new(
            name,
            SimConfig::json_rest(name),
            yiwang_artifacts::HOSTILE_ADAPTER,
        )
        .with_config("mode", mode)
    }

    /// One `adapter-config` value.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.adapter_config.insert(key.into(), value.into());
        self
    }

    /// One line (`key = value`) added to `[networks.<name>.retry]`.
    pub fn with_retry(mut self, line: &str) -> Self {
        self.retry_extra.push_str(line);
        self.retry_extra.push('\n');
        self
    }

    pub fn with_wall_time_ms(mut self, ms: u64) -> Self {
        self.wall_time_ms = ms;
        self
    }

    /// One line (`key = value`) added to `[networks.<name>.limits]`.
    pub fn with_limits(mut self, line: &str) -> Self {
        self.limits_extra.push_str(line);
        self.limits_extra.push('\n');
        self
    }

    /// Archetype 1 (JSON REST + token) with the market-regulation adapter.
    pub fn market_regulation(name: &str) -> Self {
        let sim = SimConfig::json_rest(name);
        let (u, p) = sim.credentials.clone();
        NetworkSpec {
            secrets: BTreeMap::from([("username".into(), u), ("password".into(), p)]),
            poll_interval_ms: Some(200),
            ..Self::new(name, sim, yiwang_artifacts::MARKET_REGULATION)
        }
    }

    /// Archetype 2 (SOAP, GB18030) with the housing-construction adapter.
    pub fn housing_construction(name: &str) -> Self {
        Self::new(
            name,
            SimConfig::soap(name),
            yiwang_artifacts::HOUSING_CONSTRUCTION,
        )
    }

    /// Archetype 3 (signed open-API) with the tax adapter.
    pub fn tax(name: &str) -> Self {
        let sim = SimConfig::signed_api(name);
        NetworkSpec {
            secrets: BTreeMap::from([("app-secret".into(), sim.app_secret.clone())]),
            adapter_config: BTreeMap::from([("app-key".into(), sim.app_key.clone())]),
            poll_interval_ms: Some(200),
            ..Self::new(name, sim, yiwang_artifacts::TAX)
        }
    }

    /// Archetype 5 (pushes) with the public-security adapter; the
    /// simulator's push URL is set once the gateway listens.
    pub fn public_security(name: &str) -> Self {
        let sim = SimConfig::callback(name);
        NetworkSpec {
            secrets: BTreeMap::from([
                ("api-key".into(), sim.api_key.clone()),
                ("push-secret".into(), sim.push_secret.clone()),
            ]),
            ..Self::new(name, sim, yiwang_artifacts::PUBLIC_SECURITY)
        }
    }

    /// Archetype 6 (lookup-only SOAP behind WS-Security) with the
    /// provincial-filing adapter: a PasswordDigest the host computes over
    /// the secret password (the simulator accepts nothing else, and checks
    /// the nonce is fresh and Created in its window), the username in
    /// adapter-config; statuses followed up every 100 ms (backing off to 400 ms).
    pub fn provincial_filing(name: &str) -> Self {
        let sim = SimConfig::lookup_only(name);
        let (u, p) = sim.credentials.clone();
        let follow_up = format!(
            "[networks.{name}.follow-up]\ninterval-ms = 100\nmax-interval-ms = 400\nbatch = 10"
        );
        NetworkSpec {
            secrets: BTreeMap::from([("password".into(), p)]),
            adapter_config: BTreeMap::from([("username".into(), u)]),
            ..Self::new(name, sim, yiwang_artifacts::PROVINCIAL_FILING)
        }
        .with_extra(&follow_up)
    }

    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub fn with_breaker(mut self, failures: u32, cooldown_ms: u64) -> Self {
        self.breaker = (failures, cooldown_ms);
        self
    }

    pub fn with_send_timeout_ms(mut self, ms: u64) -> Self {
        self.send_timeout_ms = ms;
        self
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

/// The principals every test world has: the Fuzhou bureau and the platform
/// (every item, every bureau), an operator with every admin grant, an
/// auditor, and each network's ministry (its own callbacks).
pub fn default_principals(networks: &[&str]) -> String {
    let mut out = String::from(
        r#"[principals.fuzhou-bureau]
role = "bureau"
match = { subject-cn = "fuzhou-bureau", san-uri = "yiwang://bureau/fuzhou" }
items = ["*"]
bureaus = ["*"]
[principals.platform]
role = "platform"
match = { subject-cn = "unified-platform" }
items = ["*"]
bureaus = ["*"]
[principals.ops]
role = "operator"
match = { subject-cn = "ops-1" }
admin = ["read", "replay", "adapter-reload", "resume"]
[principals.audit]
role = "auditor"
match = { subject-cn = "audit-1" }
"#,
    );
    for n in networks {
        out.push_str(&format!(
            "[principals.{n}-push]
role = \"ministry\"
match = {{ subject-cn = \"{cn}\", san-uri = \"{uri}\" }}
network = \"{n}\"
",
            cn = yiwang_pki::network_push_cn(n),
            uri = yiwang_pki::network_push_uri(n),
        ));
    }
    out
}

/// The gateway's `[tls]`: its server certificate, and the bureau CA (with
/// its CRL) for every listener unless the listener names its own.
pub const TLS: &str = r#"[tls]
cert = "pki/gateway.crt"
key = "pki/gateway.key"
client-ca = ["pki/bureau-ca.crt"]
crl = ["pki/bureau-ca.crl"]
reload-interval-ms = 200
"#;

/// `[adapters]` trusting the publisher key [`sign_adapters`] writes beside
/// the configuration file.
pub const ADAPTERS: &str = "[adapters]\npublisher-keys = [\"publisher.pub\"]\n";

/// Sign every network's adapter of the configuration at `config_path` for
/// that network, into its signature file (`adapter-signature`, else
/// `<adapter>.sig`), with the private half of the first trusted publisher
/// key (`X.pub` → `X.key`; both made if missing): the adapters of a test
/// world ship as a release does, signed. Runs anywhere (inside a runtime
/// or not): the versions are read on a thread of its own.
pub fn sign_adapters(config_path: &Path) -> Result<()> {
    use yiwang_gateway::publisher::PublisherKey;
    // The key first: `config check` refuses a trusted key file that is missing.
    let text = std::fs::read_to_string(config_path)?;
    let table: toml::Table = toml::from_str(&text)?;
    let first = table
        .get("adapters")
        .and_then(|a| a.get("publisher-keys"))
        .and_then(|k| k.get(0))
        .and_then(|k| k.as_str())
        .context("the configuration trusts no publisher key ([adapters] publisher-keys)")?;
    let public = config_path.parent().unwrap_or(Path::new(".")).join(first);
    let key_path = public.with_extension("key");
    let key = if key_path.exists() {
        PublisherKey::read(&key_path)?
    } else {
        let key = PublisherKey::generate();
        key.write(&key_path, &public)?;
        key
    };
    let loaded =
        yiwang_gateway::config::Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for (name, net) in &loaded.config.networks {
        let net = net.get_ref();
        let adapter = loaded.adapter_path(net);
        let wasm =
            std::fs::read(&adapter).with_context(|| format!("read {}", adapter.display()))?;
        let sig = key.sign(name, &reported_version(wasm.clone())?, &wasm);
        let path = loaded.adapter_signature_path(net);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, sig.to_text())?;
    }
    Ok(())
}

/// A hot swap's signature header for `wasm` on `network`, signed with the
/// publisher key [`sign_adapters`] wrote in `dir`.
pub fn signature_header(dir: &Path, network: &str, wasm: &[u8]) -> Result<(String, String)> {
    use base64::Engine as _;
    let key = yiwang_gateway::publisher::PublisherKey::read(&dir.join("publisher.key"))?;
    let sig = key.sign(network, &reported_version(wasm.to_vec())?, wasm);
    let value = base64::engine::general_purpose::STANDARD.encode(sig.to_text());
    Ok((
        yiwang_gateway::publisher::SIGNATURE_HEADER.to_string(),
        value,
    ))
}

/// The version a component reports (each component described once per
/// process).
fn reported_version(wasm: Vec<u8>) -> Result<String> {
    static SEEN: std::sync::OnceLock<Mutex<BTreeMap<String, String>>> = std::sync::OnceLock::new();
    let sha = yiwang_schema::Sha256Digest::of(&wasm).to_string();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(v) = seen.lock().unwrap_or_else(|p| p.into_inner()).get(&sha) {
        return Ok(v.clone());
    }
    let version = std::thread::spawn(move || -> Result<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let runtime =
                yiwang_gateway::runtime::Runtime::new(yiwang_gateway::runtime::RuntimeConfig {
                    max_instances: Some(2),
                    ..Default::default()
                })?;
            // Bytes that are no component sign as "0": they fail to load
            // after their signature checks out, as a test of that wants.
            let version = yiwang_gateway::delivery::reported_version(&runtime, &wasm).await;
            Ok(version.unwrap_or_else(|_| "0".into()))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("describing an adapter panicked"))??;
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sha, version.clone());
    Ok(version)
}

/// The configuration text for networks at their simulators' addresses,
/// with the PKI of [`Pki::generate`] in `pki/` next to the file.
/// `principals` empty = [`default_principals`].
pub fn config_text(
    networks: &[(NetworkSpec, String)],
    items: &str,
    subscribers: &str,
    listeners: &str,
    principals: &str,
) -> String {
    let mut out = String::new();
    out.push_str("[gateway]\ndata-dir = \"data\"\n\n");
    out.push_str(listeners);
    out.push('\n');
    out.push_str(TLS);
    out.push_str("\n[runtime]\n\n");
    out.push_str(ADAPTERS);
    out.push('\n');
    if principals.is_empty() {
        let names: Vec<&str> = networks.iter().map(|(s, _)| s.name.as_str()).collect();
        out.push_str(&default_principals(&names));
    } else {
        out.push_str(principals);
    }
    out.push('\n');
    for (spec, url) in networks {
        let n = &spec.name;
        out.push_str(&format!(
            "[networks.{n}]\nadapter = {}\nadapter-signature = \"signatures/{n}.sig\"\nendpoints = [{}]\nconcurrency = {}\n",
            toml_str(&spec.adapter),
            toml_str(url),
            spec.concurrency
        ));
        if let Some(ms) = spec.poll_interval_ms {
            out.push_str(&format!("poll-interval-ms = {ms}\n"));
        }
        out.push_str(&format!(
            "[networks.{n}.tls]\nca = [\"pki/{n}-ca.crt\"]\ncert = \"pki/gateway-to-{n}.crt\"\nkey = \"pki/gateway-to-{n}.key\"\nserver-name = {}\n",
            toml_str(&yiwang_pki::network_server_name(n))
        ));
        out.push_str(&format!(
            "[networks.{n}.retry]\ninitial-ms = 50\nmax-interval-ms = {}\n{}",
            spec.retry_max_interval_ms, spec.retry_extra
        ));
        out.push_str(&format!(
            "[networks.{n}.breaker]\nfailures = {}\ncooldown-ms = {}\n",
            spec.breaker.0, spec.breaker.1
        ));
        out.push_str(&format!(
            "[networks.{n}.limits]\nsend-timeout-ms = {}\nwall-time-ms = {}\n{}",
            spec.send_timeout_ms, spec.wall_time_ms, spec.limits_extra
        ));
        if !spec.secrets.is_empty() {
            out.push_str(&format!("[networks.{n}.secrets]\n"));
            for (k, v) in &spec.secrets {
                out.push_str(&format!("{k} = {{ value = {} }}\n", toml_str(v)));
            }
        }
        if !spec.adapter_config.is_empty() {
            out.push_str(&format!("[networks.{n}.adapter-config]\n"));
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

/// Start a network's simulator over mTLS: it presents its server
/// certificate (for `<net>.zwfw.internal` only), requires the gateway's
/// client certificate from its own CA, and pushes (archetype 5) with its
/// ministry certificate, trusting the gateway's CA.
pub async fn start_simulator(
    name: &str,
    pki: &Pki,
    sim: SimConfig,
    addr: &str,
) -> Result<Simulator> {
    let net = pki
        .network(name)
        .with_context(|| format!("no PKI for network {name}"))?;
    let cfg = sim
        .with_tls(
            net.server.issued.cert_pem.clone(),
            net.server.issued.key_pem.clone(),
            net.ca.ca.cert_pem().to_string(),
        )
        .with_push_tls(
            pki.gateway_ca.ca.cert_pem().to_string(),
            net.push_client.issued.cert_pem.clone(),
            net.push_client.issued.key_pem.clone(),
        );
    Simulator::start(cfg, addr.parse()?).await
}

/// JSON over HTTPS to the gateway, as one principal (its client certificate).
#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: Arc<dyn Transport>,
}

/// The key a client's TLS identity is registered under in its transport.
const CLIENT: &str = "client";

impl Client {
    /// A client presenting `identity`, trusting the gateway's CA.
    pub fn new(base: impl Into<String>, pki: &Pki, identity: &IssuedFiles) -> Result<Self> {
        Self::with_files(
            base,
            &pki.gateway_ca.cert_path,
            &identity.cert_path,
            &identity.key_path,
        )
    }

    /// A client presenting the certificate and key in these files.
    pub fn with_files(base: impl Into<String>, ca: &Path, cert: &Path, key: &Path) -> Result<Self> {
        Self::with_tls(
            base,
            &ClientTlsConfig {
                ca: vec![ca.to_path_buf()],
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                pin_sha256: Vec::new(),
                crl: Vec::new(),
                server_name: None,
            },
        )
    }

    /// A client with this TLS configuration (e.g. a server-name override).
    pub fn with_tls(base: impl Into<String>, tls: &ClientTlsConfig) -> Result<Self> {
        let http = GatewayTransport::new(Duration::from_secs(2));
        http.add(CLIENT, tls)
            .map_err(|e| anyhow::anyhow!("client identity {}: {e}", tls.cert.display()))?;
        Ok(Client {
            base: base.into(),
            http: Arc::new(http),
        })
    }

    /// A client without TLS (to show the gateway refuses it).
    pub fn plaintext(base: impl Into<String>) -> Self {
        Client {
            base: base.into(),
            http: Arc::new(HttpTransport::new(Duration::from_secs(2))),
        }
    }

    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        self.request_with(method, path, content_type, &[], body)
            .await
    }

    /// [`Client::request`] with extra headers.
    pub async fn request_with(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        extra: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        headers.extend(extra.iter().cloned());
        let resp = self
            .http
            .send(OutboundRequest {
                network: CLIENT.into(),
                method,
                uri: format!("{}{path}", self.base).parse()?,
                headers,
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

/// Spawn `yiwang serve` as prepared in `cmd` (program, arguments,
/// environment) and wait until its intake listens. Returns the child and how
/// long that took; the child's stdout keeps being drained so it never blocks.
pub fn spawn_serving(mut cmd: std::process::Command) -> Result<(std::process::Child, Duration)> {
    use std::io::{BufRead, BufReader};
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("spawn the gateway")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("intake listening") => break,
            Some(Ok(_)) => continue,
            _ => {
                let status = child.wait()?;
                bail!("the gateway exited before listening: {status}");
            }
        }
    }
    let ready = started.elapsed();
    std::thread::spawn(move || for _ in lines {});
    Ok((child, ready))
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

/// Ask `f` until it answers `Some` (polling), and return the answer.
pub async fn until<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A received notice: its `Idempotency-Key` header and JSON body.
pub type Notice = (Option<String>, Value);

/// A webhook receiver (the unified platform's event endpoint) that records
/// every notice and can fail the first ones. It serves mTLS with its own
/// small PKI, as a platform would: a server certificate from its CA, and it
/// requires a client certificate from the same CA, which it issued to the
/// gateway ([`Webhook::tls_toml`] is the gateway's side of that).
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Notice>>>,
    pub fail_next: Arc<Mutex<u32>>,
    /// CNs of the client certificates that connected.
    pub clients: Arc<Mutex<Vec<String>>>,
    /// Where its CA and the gateway's client certificate are.
    pub pki_dir: PathBuf,
    _tmp: Option<Arc<tempfile::TempDir>>,
}

impl Webhook {
    pub async fn start() -> Result<Webhook> {
        Self::start_at("127.0.0.1:0", "/events").await
    }

    /// Listen on `addr`; `path` only shapes the advertised URL.
    pub async fn start_at(addr: &str, path: &str) -> Result<Webhook> {
        Self::start_in(addr, path, None).await
    }

    /// [`Webhook::start_at`], writing its PKI into `dir` (else a temporary folder).
    pub async fn start_in(addr: &str, path: &str, dir: Option<&Path>) -> Result<Webhook> {
        use http_body_util::BodyExt;
        use std::net::{IpAddr, Ipv4Addr};
        let tmp = match dir {
            Some(_) => None,
            None => Some(Arc::new(tempfile::tempdir()?)),
        };
        let pki_dir = match (&tmp, dir) {
            (Some(t), _) => t.path().to_path_buf(),
            (None, Some(d)) => d.to_path_buf(),
            (None, None) => bail!("unreachable: no folder for the webhook's PKI"),
        };
        let ca = yiwang_pki::Ca::try_new("platform-ca")?;
        ca.write(&pki_dir, "platform-ca")?;
        let server = ca.try_issue(&yiwang_pki::CertSpec::server(
            "platform-webhook",
            &["localhost"],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ))?;
        let client = ca.try_issue(&yiwang_pki::CertSpec::client(yiwang_pki::GATEWAY_CLIENT_CN))?;
        client.write(&pki_dir, "gateway-to-platform")?;
        let tls =
            yiwang_pki::server_config(&server.cert_pem, &server.key_pem, Some(ca.cert_pem()))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("webhook receiver: bind {addr}"))?;
        let url = format!("https://{}{path}", listener.local_addr()?);
        let hook = Webhook {
            url,
            received: Arc::default(),
            fail_next: Arc::default(),
            clients: Arc::default(),
            pki_dir,
            _tmp: tmp,
        };
        let h = hook.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let h = h.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    if let Some(cn) = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| yiwang_gateway::tls::peer_identity(c).ok())
                        .and_then(|id| id.subject_cn)
                    {
                        h.clients.lock().unwrap_or_else(|p| p.into_inner()).push(cn);
                    }
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

    /// The gateway's `[subscribers.<name>.tls]` table for this receiver.
    pub fn tls_toml(&self, subscriber: &str) -> String {
        let p = |f: &str| toml_str(&self.pki_dir.join(f).display().to_string());
        format!(
            "[subscribers.{subscriber}.tls]\nca = [{}]\ncert = {}\nkey = {}\n",
            p("platform-ca.crt"),
            p("gateway-to-platform.crt"),
            p("gateway-to-platform.key")
        )
    }

    pub fn notices(&self) -> Vec<Notice> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Simulators, a PKI, a config file and a gateway in one temporary folder.
pub struct World {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub sims: BTreeMap<String, Simulator>,
    pub config_path: PathBuf,
    pub gateway: Option<yiwang_gateway::serve::Gateway>,
}

impl World {
    /// Start the simulators and write the configuration (default
    /// principals); the gateway is not started.
    pub async fn prepare(
        networks: Vec<NetworkSpec>,
        items: &str,
        subscribers: &str,
        listeners: &str,
    ) -> Result<World> {
        Self::prepare_with(networks, items, subscribers, listeners, "").await
    }

    /// [`World::prepare`] with these `[principals]` (empty = the default ones).
    pub async fn prepare_with(
        networks: Vec<NetworkSpec>,
        items: &str,
        subscribers: &str,
        listeners: &str,
        principals: &str,
    ) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        let pki = Pki::generate(&dir.path().join("pki"), &names)?;
        let mut sims = BTreeMap::new();
        let mut placed = Vec::new();
        for spec in networks {
            let sim = start_simulator(&spec.name, &pki, spec.sim.clone(), "127.0.0.1:0").await?;
            placed.push((spec.clone(), sim.base_url()));
            sims.insert(spec.name.clone(), sim);
        }
        let text = config_text(&placed, items, subscribers, listeners, principals);
        let config_path = dir.path().join("yiwang.toml");
        std::fs::write(&config_path, text)?;
        sign_adapters(&config_path)?;
        Ok(World {
            dir,
            pki,
            sims,
            config_path,
            gateway: None,
        })
    }

    /// Start the gateway in this process; the client is the Fuzhou bureau.
    pub async fn start_gateway(&mut self) -> Result<Client> {
        let loaded = yiwang_gateway::config::Config::load(&self.config_path)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let gw = yiwang_gateway::serve::Gateway::start(
            &loaded,
            yiwang_gateway::delivery::DeliveryOptions::default(),
        )
        .await?;
        let base = format!("https://{}", gw.intake_addr);
        self.gateway = Some(gw);
        Client::new(base, &self.pki, &self.pki.bureau_fuzhou)
    }

    /// A client of the intake listener presenting `identity`.
    pub fn intake_as(&self, identity: &IssuedFiles) -> Result<Client> {
        let gw = self.gateway.as_ref().context("gateway not started")?;
        Client::new(format!("https://{}", gw.intake_addr), &self.pki, identity)
    }

    /// A client of the admin listener presenting `identity`.
    pub fn admin_as(&self, identity: &IssuedFiles) -> Result<Client> {
        let gw = self.gateway.as_ref().context("gateway not started")?;
        let addr = gw.admin_addr.context("no admin listener")?;
        Client::new(format!("https://{addr}"), &self.pki, identity)
    }

    /// The admin API as the operator.
    pub fn admin(&self) -> Option<Client> {
        self.admin_as(&self.pki.operator).ok()
    }

    /// The callback listener's URL for a network's pushes.
    pub fn callback_url(&self, network: &str) -> Option<String> {
        let addr = self.gateway.as_ref()?.callback_addr?;
        Some(format!("https://{addr}/v1/callbacks/{network}"))
    }

    pub fn sim(&self, name: &str) -> &Simulator {
        &self.sims[name]
    }

    /// The gateway's audit trail folder.
    pub fn audit_dir(&self) -> PathBuf {
        self.dir.path().join("data/audit")
    }

    pub async fn stop_gateway(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await;
        }
    }
}

/// Default listeners: intake and admin on ephemeral ports (trusting the
/// bureau CA), callbacks trusting the ministries' CA.
pub const LISTENERS: &str = "[listeners]\nintake = { addr = \"127.0.0.1:0\" }\nadmin = { addr = \"127.0.0.1:0\" }\ncallbacks = { addr = \"127.0.0.1:0\", client-ca = [\"pki/ministry-ca.crt\"], crl = [\"pki/ministry-ca.crl\"] }\n";
