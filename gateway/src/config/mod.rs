//! The gateway's TOML configuration: listeners, storage, networks (endpoints,
//! adapter, limits, retry policy, concurrency), and items → routes.
//!
//! Unknown keys are errors, and every error names `file:line:col`. The
//! annotated reference is `config/yiwang.example.toml`.

use crate::policy::{Policy, PrincipalConfig};
use crate::runtime::{Limits, RuntimeConfig};
use crate::tls::{ClientTlsConfig, ServerTlsConfig};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;
use yiwang_audit::AuditConfig;

/// A whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `[gateway]`: where state lives.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// `[listeners]`: the intake, callback and admin HTTP listeners.
    #[serde(default)]
    pub listeners: Listeners,
    /// `[tls]`: the gateway's server certificate and the CAs whose client
    /// certificates every listener requires (mTLS only; no plaintext listener).
    pub tls: Option<Spanned<ServerTlsConfig>>,
    /// `[principals.<name>]`: client certificates → roles and grants.
    #[serde(default)]
    pub principals: BTreeMap<String, Spanned<PrincipalConfig>>,
    /// `[audit]`: the tamper-evident audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[storage]`: the durable queue.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `[deadlines]`: the deadline light (电子监察).
    #[serde(default)]
    pub deadlines: DeadlineConfig,
    /// `[runtime]`: the Wasm engine (pool size, memory ceiling, compile cache).
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[networks.<name>]`: one ministry network each.
    #[serde(default)]
    pub networks: BTreeMap<String, Spanned<NetworkConfig>>,
    /// `[items."<item code>"]`: which networks an item's cases go to.
    #[serde(default)]
    pub items: BTreeMap<String, Spanned<ItemConfig>>,
    /// `[subscribers.<name>]`: webhooks that receive case events
    /// (the unified platform; a supervising regulator for 审管分离).
    #[serde(default)]
    pub subscribers: BTreeMap<String, Spanned<SubscriberConfig>>,
}

/// `[listeners]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Listeners {
    /// The bureau platform's API (`/v1/cases`).
    pub intake: ListenerConfig,
    /// Ministry pushes (`/v1/callbacks/<network>`); none disables callbacks.
    pub callbacks: Option<ListenerConfig>,
    /// Operators: queue, dead letters, replay, adapter reload, `/metrics`.
    pub admin: Option<ListenerConfig>,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            intake: ListenerConfig::new("127.0.0.1:8440"),
            callbacks: None,
            admin: None,
        }
    }
}

/// One HTTP listener and the limits every request on it is held to
/// (`intake = { addr = "0.0.0.0:8440", max-body-bytes = 4194304 }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerConfig {
    pub addr: std::net::SocketAddr,
    /// Larger request bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Requests taking longer get 503 (`request-timeout-ms = 30000`).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Requests served at once; more are refused at once with 503 (load shedding).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Time a client has to send its request headers (slow clients are cut off).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// CAs whose client certificates this listener accepts, instead of
    /// `[tls] client-ca` (e.g. the ministries' CA on the callback listener).
    #[serde(default)]
    pub client_ca: Option<Vec<PathBuf>>,
    /// CRLs for this listener, instead of `[tls] crl`.
    #[serde(default)]
    pub crl: Option<Vec<PathBuf>>,
}

fn default_max_body() -> usize {
    4 << 20
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_max_concurrent() -> usize {
    256
}
fn default_header_timeout() -> u64 {
    10_000
}

impl ListenerConfig {
    pub fn new(addr: &str) -> Self {
        ListenerConfig {
            addr: addr
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            max_body_bytes: default_max_body(),
            request_timeout_ms: default_request_timeout(),
            max_concurrent: default_max_concurrent(),
            header_timeout_ms: default_header_timeout(),
            client_ca: None,
            crl: None,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// `sled` (embedded, the default). PostgreSQL is planned.
    pub backend: StorageBackend,
    /// Settled cases (every delivery done, every network final) are dropped
    /// this long after their last change (`retention-days = 90`).
    pub retention_days: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sled,
            retention_days: 90,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageBackend {
    Sled,
}

/// `[deadlines]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct DeadlineConfig {
    /// The light turns yellow this long before the deadline (`yellow-hours = 24`).
    pub yellow_hours: u64,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        DeadlineConfig { yellow_hours: 24 }
    }
}

/// `[subscribers.<name>]`: a webhook receiving case events as JSON
/// through the same durable queue as deliveries to networks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SubscriberConfig {
    /// `url = "https://platform.example/yiwang/events"`
    pub url: Spanned<String>,
    /// Which notices: `stage` (a network moved the case), `delivery`
    /// (delivered to or dead-lettered for a network), `deadline` (the light
    /// changed). Default: all.
    #[serde(default = "all_notices")]
    pub events: Vec<Spanned<String>>,
    /// Only cases of these items; empty = all.
    #[serde(default)]
    pub items: Vec<String>,
    #[serde(default = "default_subscriber_concurrency")]
    pub concurrency: u32,
    #[serde(default = "unspanned")]
    pub retry: Spanned<RetryPolicy>,
    /// Request timeout (`timeout-ms = 10000`).
    #[serde(default = "default_subscriber_timeout")]
    pub timeout_ms: u64,
    /// mTLS to the receiver (`[subscribers.X.tls]`); required for https.
    #[serde(default)]
    pub tls: Option<Spanned<ClientTlsConfig>>,
    /// Allow an `http://` url (a lab set-up only; never across a network).
    #[serde(default)]
    pub plaintext: bool,
}

/// The notice kinds a subscriber can ask for.
pub const NOTICE_KINDS: &[&str] = &["stage", "delivery", "deadline"];

fn all_notices() -> Vec<Spanned<String>> {
    NOTICE_KINDS
        .iter()
        .map(|k| Spanned::new(0..0, k.to_string()))
        .collect()
}
fn default_subscriber_concurrency() -> u32 {
    4
}
fn default_subscriber_timeout() -> u64 {
    10_000
}

/// `[gateway]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GatewaySection {
    /// Where the queue, key-value store and compile cache live
    /// (`data-dir = "/var/lib/yiwang"`), relative to the config file.
    pub data_dir: PathBuf,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            data_dir: PathBuf::from("data"),
        }
    }
}

/// `[networks.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkConfig {
    /// The adapter component (`adapter = "adapters/market_regulation.wasm"`),
    /// relative to the config file.
    pub adapter: Spanned<PathBuf>,
    /// Optional pin: the adapter file must have this sha256 (hex).
    #[serde(default)]
    pub adapter_sha256: Option<Spanned<String>>,
    /// Origins the adapter may reach; the first is the primary one
    /// (`endpoints = ["https://10.1.2.3:8443"]`).
    pub endpoints: Vec<Spanned<String>>,
    /// Deliveries in flight at once to this network (`concurrency = 8`).
    #[serde(default = "default_concurrency")]
    pub concurrency: Spanned<u32>,
    /// Values the adapter may read (`[networks.X.adapter-config]`).
    #[serde(default)]
    pub adapter_config: BTreeMap<String, String>,
    /// Values the adapter may use but never read (`username = { env = "MR_USER" }`).
    #[serde(default)]
    pub secrets: BTreeMap<String, Spanned<SecretSource>>,
    /// Resource limits per adapter call (`[networks.X.limits]`).
    #[serde(default = "unspanned")]
    pub limits: Spanned<Limits>,
    /// Retry policy (`[networks.X.retry]`).
    #[serde(default = "unspanned")]
    pub retry: Spanned<RetryPolicy>,
    /// How often to poll the network's change feed; none disables polling
    /// (`poll-interval-ms = 30000`).
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// Circuit breaker (`[networks.X.breaker]`).
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// mTLS to the ministry (`[networks.X.tls]`): its CA, the gateway's
    /// client certificate for it, an optional key pin and server name.
    /// Required for `https://` endpoints.
    #[serde(default)]
    pub tls: Option<Spanned<ClientTlsConfig>>,
    /// Allow `http://` endpoints (a lab set-up only; never across a network).
    #[serde(default)]
    pub plaintext: bool,
}

/// `[networks.X.breaker]`: after `failures` failed attempts in a row the
/// network's queue pauses for `cooldown-ms`, then one probe decides.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct BreakerConfig {
    pub failures: u32,
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cooldown_ms: 10_000,
        }
    }
}

fn default_concurrency() -> Spanned<u32> {
    Spanned::new(0..0, 8)
}

/// A default value: it has no place in the file (errors about it point at
/// the enclosing table instead).
fn unspanned<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}

/// The value's place, or `outer`'s when the value was defaulted.
fn place<T>(value: &Spanned<T>, outer: &std::ops::Range<usize>) -> std::ops::Range<usize> {
    let span = value.span();
    if span.is_empty() { outer.clone() } else { span }
}

/// Where a secret comes from. Plain `value` is for demos and tests only.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum SecretSource {
    /// An environment variable of the gateway process.
    Env(String),
    /// A file readable by the gateway only (trailing newline trimmed).
    File(PathBuf),
    /// Written in the config itself.
    Value(String),
}

/// `[networks.X.retry]`: exponential backoff with full jitter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RetryPolicy {
    /// First backoff (`initial-ms = 1000`).
    pub initial_ms: u64,
    /// Backoff ceiling (`max-interval-ms = 300000`).
    pub max_interval_ms: u64,
    /// Give up after this many attempts (`max-attempts = 50`); none = no cap.
    pub max_attempts: Option<u32>,
    /// Give up after this long since acceptance (`max-age-s = 604800`).
    pub max_age_s: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_ms: 1000,
            max_interval_ms: 300_000,
            max_attempts: None,
            max_age_s: Some(7 * 24 * 3600),
        }
    }
}

/// `[items."<code>"]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ItemConfig {
    /// A human name (`name = "企业开办"`).
    #[serde(default)]
    pub name: Option<String>,
    /// The networks a case of this item goes to, in order of dependency.
    pub route: Vec<Spanned<RouteStep>>,
}

/// One network of a route (`{ network = "tax", after = ["market-regulation"],
/// inputs = { licence-number = "market-regulation.certificate_number" } }`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteStep {
    pub network: Spanned<String>,
    /// Networks whose delivery must finish first (earlier steps of this route).
    #[serde(default)]
    pub after: Vec<Spanned<String>>,
    /// Result fields of earlier networks passed to this one:
    /// input name → `<network>.<field>`, field one of [`RESULT_FIELDS`].
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<String>>,
}

/// What an upstream network's result can feed into a chained route.
pub const RESULT_FIELDS: &[&str] = &["network_case_number", "certificate_number", "decision"];

/// A problem at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem in a file, each with its place.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                e.line,
                e.col,
                e.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Byte offset → 1-based line and column (in characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

struct Problems<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Problems<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            line,
            col,
            message: message.into(),
        });
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

impl Config {
    /// Read, parse and check a file; relative paths in it resolve against
    /// its folder.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![ConfigError {
                line: 0,
                col: 0,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<LoadedConfig, ConfigErrors> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let fail = |errors| ConfigErrors {
            file: path.to_path_buf(),
            errors,
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            fail(vec![ConfigError {
                line,
                col,
                message: e.message().trim().to_string(),
            }])
        })?;
        let mut p = Problems {
            text,
            errors: Vec::new(),
        };
        config.check(&mut p, &base);
        if p.errors.is_empty() {
            Ok(LoadedConfig { config, base })
        } else {
            p.errors.sort_by_key(|e| (e.line, e.col));
            Err(fail(p.errors))
        }
    }

    fn check(&self, p: &mut Problems<'_>, base: &Path) {
        match &self.tls {
            None => p.at(
                0..0,
                "[tls] is missing: every listener is mutually authenticated TLS \
                 (cert, key and client-ca; see config/yiwang.example.toml)",
            ),
            Some(tls) => {
                let span = tls.span();
                let tls = tls.get_ref();
                let mut listeners = vec![("intake", &self.listeners.intake)];
                listeners.extend(self.listeners.callbacks.iter().map(|l| ("callbacks", l)));
                listeners.extend(self.listeners.admin.iter().map(|l| ("admin", l)));
                for (listener, l) in listeners {
                    let server = listener_tls(tls, l);
                    let what = format!("[tls] for the {listener} listener");
                    must_exist(p, base, &span, &what, "cert", &server.cert);
                    must_exist(p, base, &span, &what, "key", &server.key);
                    if server.client_ca.is_empty() {
                        p.at(
                            span.clone(),
                            format!("{what}: client-ca is empty; no client could connect"),
                        );
                    }
                    for f in server.client_ca.iter() {
                        must_exist(p, base, &span, &what, "client-ca", f);
                    }
                    for f in server.crl.iter() {
                        must_exist(p, base, &span, &what, "crl", f);
                    }
                }
            }
        }
        let networks: BTreeSet<&str> = self.networks.keys().map(String::as_str).collect();
        for (name, problem) in Policy::check_config(
            self.principals.iter().map(|(n, c)| (n, c.get_ref())),
            &networks,
        ) {
            let span = self.principals.get(&name).map(|c| c.span()).unwrap_or(0..0);
            p.at(span, problem);
        }
        for problem in self.audit.check() {
            p.at(0..0, format!("[audit]: {problem}"));
        }
        for (name, net) in &self.networks {
            let span = net.span();
            let net = net.get_ref();
            if !valid_name(name) {
                p.at(
                    span.clone(),
                    format!("network name {name:?}: use lowercase letters, digits and '-'"),
                );
            }
            let adapter = base.join(net.adapter.get_ref());
            if !adapter.is_file() {
                p.at(
                    net.adapter.span(),
                    format!(
                        "network `{name}`: adapter {} does not exist",
                        adapter.display()
                    ),
                );
            }
            if let Some(pin) = &net.adapter_sha256 {
                let hex = pin.get_ref();
                if hex.len() != 64
                    || !hex
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                {
                    p.at(
                        pin.span(),
                        format!("network `{name}`: adapter-sha256 must be 64 lowercase hex digits"),
                    );
                }
            }
            if net.endpoints.is_empty() {
                p.at(span.clone(), format!("network `{name}`: endpoints is empty; an adapter must be able to reach its network"));
            }
            for e in &net.endpoints {
                match e.get_ref().parse::<http::Uri>() {
                    Ok(uri)
                        if matches!(uri.scheme_str(), Some("http" | "https"))
                            && uri.authority().is_some() => {}
                    _ => p.at(
                        e.span(),
                        format!(
                            "network `{name}`: endpoint {:?} is not an absolute http(s) URL",
                            e.get_ref()
                        ),
                    ),
                }
            }
            check_origin_security(
                p,
                base,
                &format!("network `{name}`"),
                &span,
                net.endpoints.iter(),
                net.tls.as_ref(),
                net.plaintext,
            );
            if *net.concurrency.get_ref() == 0 {
                p.at(
                    place(&net.concurrency, &span),
                    format!("network `{name}`: concurrency must be at least 1"),
                );
            }
            let limits = net.limits.get_ref();
            if limits.memory_bytes > self.runtime.max_memory_bytes {
                p.at(
                    place(&net.limits, &span),
                    format!(
                        "network `{name}`: limits.memory-bytes {} is over runtime.max-memory-bytes {}",
                        limits.memory_bytes, self.runtime.max_memory_bytes
                    ),
                );
            }
            if limits.cpu_time.is_zero() || limits.wall_time < limits.cpu_time {
                p.at(
                    place(&net.limits, &span),
                    format!("network `{name}`: need 0 < cpu-time-ms <= wall-time-ms"),
                );
            }
            let retry = net.retry.get_ref();
            if retry.initial_ms == 0 || retry.max_interval_ms < retry.initial_ms {
                p.at(
                    place(&net.retry, &span),
                    format!("network `{name}`: need 0 < retry.initial-ms <= retry.max-interval-ms"),
                );
            }
        }
        for (name, sub) in &self.subscribers {
            let span = sub.span();
            let sub = sub.get_ref();
            if !valid_name(name) {
                p.at(
                    span.clone(),
                    format!("subscriber name {name:?}: use lowercase letters, digits and '-'"),
                );
            }
            match sub.url.get_ref().parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.authority().is_some() => {}
                _ => p.at(
                    sub.url.span(),
                    format!(
                        "subscriber `{name}`: url {:?} is not an absolute http(s) URL",
                        sub.url.get_ref()
                    ),
                ),
            }
            check_origin_security(
                p,
                base,
                &format!("subscriber `{name}`"),
                &span,
                std::iter::once(&sub.url),
                sub.tls.as_ref(),
                sub.plaintext,
            );
            for kind in &sub.events {
                if !NOTICE_KINDS.contains(&kind.get_ref().as_str()) {
                    p.at(
                        place(kind, &span),
                        format!(
                            "subscriber `{name}`: event kind `{}` is not one of {}",
                            kind.get_ref(),
                            NOTICE_KINDS.join(", ")
                        ),
                    );
                }
            }
            if sub.concurrency == 0 {
                p.at(
                    span.clone(),
                    format!("subscriber `{name}`: concurrency must be at least 1"),
                );
            }
            let retry = sub.retry.get_ref();
            if retry.initial_ms == 0 || retry.max_interval_ms < retry.initial_ms {
                p.at(
                    place(&sub.retry, &span),
                    format!(
                        "subscriber `{name}`: need 0 < retry.initial-ms <= retry.max-interval-ms"
                    ),
                );
            }
        }
        for (code, item) in &self.items {
            let span = item.span();
            let item = item.get_ref();
            if item.route.is_empty() {
                p.at(
                    span.clone(),
                    format!(
                        "item `{code}`: route is empty; a case must reach at least one network"
                    ),
                );
            }
            let mut earlier: BTreeSet<&str> = BTreeSet::new();
            for step in &item.route {
                let step = step.get_ref();
                let network = step.network.get_ref().as_str();
                if !self.networks.contains_key(network) {
                    p.at(step.network.span(), format!("item `{code}`: route names network `{network}`, which is not configured"));
                }
                if earlier.contains(network) {
                    p.at(
                        step.network.span(),
                        format!("item `{code}`: network `{network}` appears twice in the route"),
                    );
                }
                for dep in &step.after {
                    if !earlier.contains(dep.get_ref().as_str()) {
                        p.at(
                            dep.span(),
                            format!(
                                "item `{code}`: `{network}` waits for `{}`, which is not an earlier step of this route",
                                dep.get_ref()
                            ),
                        );
                    }
                }
                for (input, source) in &step.inputs {
                    let (from, field) = source.get_ref().split_once('.').unwrap_or(("", ""));
                    if !step.after.iter().any(|a| a.get_ref() == from) {
                        p.at(
                            source.span(),
                            format!(
                                "item `{code}`: input `{input}` of `{network}` reads from `{from}`, which `{network}` does not wait for (add it to `after`)"
                            ),
                        );
                    }
                    if !RESULT_FIELDS.contains(&field) {
                        p.at(
                            source.span(),
                            format!(
                                "item `{code}`: input `{input}`: field `{field}` is not one of {}",
                                RESULT_FIELDS.join(", ")
                            ),
                        );
                    }
                }
                earlier.insert(network);
            }
        }
    }
}

/// A listener's server TLS: `[tls]` with the listener's own client CAs and
/// CRLs when it names them.
fn listener_tls(tls: &ServerTlsConfig, listener: &ListenerConfig) -> ServerTlsConfig {
    let mut out = tls.clone();
    if let Some(ca) = &listener.client_ca {
        out.client_ca = ca.clone();
    }
    if let Some(crl) = &listener.crl {
        out.crl = crl.clone();
    }
    out
}

fn must_exist(
    p: &mut Problems<'_>,
    base: &Path,
    span: &std::ops::Range<usize>,
    what: &str,
    key: &str,
    file: &Path,
) {
    let path = base.join(file);
    if !path.is_file() {
        p.at(
            span.clone(),
            format!("{what}: {key} file {} does not exist", path.display()),
        );
    }
}

/// `https://` needs `[… .tls]` (the peer's CA and our client certificate);
/// `http://` needs an explicit `plaintext = true`.
fn check_origin_security<'a>(
    p: &mut Problems<'_>,
    base: &Path,
    what: &str,
    span: &std::ops::Range<usize>,
    origins: impl Iterator<Item = &'a Spanned<String>>,
    tls: Option<&Spanned<ClientTlsConfig>>,
    plaintext: bool,
) {
    for origin in origins {
        match origin.get_ref().parse::<http::Uri>().ok().as_ref().and_then(|u| u.scheme_str()) {
            Some("https") if tls.is_none() => p.at(
                origin.span(),
                format!(
                    "{what}: {} is https but there is no tls table (the peer's CA, the gateway's client certificate and key)",
                    origin.get_ref()
                ),
            ),
            Some("http") if !plaintext => p.at(
                origin.span(),
                format!(
                    "{what}: {} is plaintext http; use https with a tls table, or set plaintext = true for a lab set-up",
                    origin.get_ref()
                ),
            ),
            _ => {}
        }
    }
    if let Some(tls) = tls {
        let at = place(tls, span);
        let c = tls.get_ref();
        if c.ca.is_empty() {
            p.at(
                at.clone(),
                format!(
                    "{what}: tls.ca is empty; name the peer's CA (the system store is never used)"
                ),
            );
        }
        for f in &c.ca {
            must_exist(p, base, &at, what, "tls.ca", f);
        }
        must_exist(p, base, &at, what, "tls.cert", &c.cert);
        must_exist(p, base, &at, what, "tls.key", &c.key);
        for pin in &c.pin_sha256 {
            use base64::Engine as _;
            let ok = base64::engine::general_purpose::STANDARD
                .decode(pin)
                .map(|b| b.len() == 32)
                .unwrap_or(false);
            if !ok {
                p.at(
                    at.clone(),
                    format!("{what}: tls.pin-sha256 {pin:?} is not the base64 of a sha256 digest"),
                );
            }
        }
    }
}

/// A checked configuration and the folder its relative paths resolve against.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub base: PathBuf,
}

impl LoadedConfig {
    /// The data directory, resolved.
    pub fn data_dir(&self) -> PathBuf {
        self.base.join(&self.config.gateway.data_dir)
    }

    /// An adapter's path, resolved.
    pub fn adapter_path(&self, network: &NetworkConfig) -> PathBuf {
        self.base.join(network.adapter.get_ref())
    }

    /// A listener's server TLS with every path resolved.
    pub fn server_tls(&self, listener: &ListenerConfig) -> Option<ServerTlsConfig> {
        let tls = self.config.tls.as_ref()?;
        let mut out = listener_tls(tls.get_ref(), listener);
        out.cert = self.base.join(&out.cert);
        out.key = self.base.join(&out.key);
        for f in out.client_ca.iter_mut().chain(out.crl.iter_mut()) {
            *f = self.base.join(&*f);
        }
        Some(out)
    }

    /// A client TLS table with every path resolved.
    pub fn client_tls(&self, tls: &ClientTlsConfig) -> ClientTlsConfig {
        let mut out = tls.clone();
        out.cert = self.base.join(&out.cert);
        out.key = self.base.join(&out.key);
        for f in out.ca.iter_mut() {
            *f = self.base.join(&*f);
        }
        out
    }

    /// The audit trail's folder (`[audit] dir`, default `<data-dir>/audit`).
    pub fn audit_dir(&self) -> PathBuf {
        match &self.config.audit.dir {
            Some(d) => self.base.join(d),
            None => self.data_dir().join("audit"),
        }
    }

    /// The audit settings with key paths resolved.
    pub fn audit_config(&self) -> AuditConfig {
        let mut out = self.config.audit.clone();
        out.dir = Some(self.audit_dir());
        out.signing_key_file = out.signing_key_file.map(|f| self.base.join(f));
        out.body_key_file = out.body_key_file.map(|f| self.base.join(f));
        out
    }

    /// The authorization policy of `[principals]`.
    pub fn policy(&self) -> Policy {
        Policy::new(self.config.principals.iter().map(|(n, c)| (n, c.get_ref())))
    }

    /// Resolve a network's secrets; a missing variable or file names the
    /// network and the secret, never its value.
    pub fn resolve_secrets(
        &self,
        network: &str,
        net: &NetworkConfig,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (name, source) in &net.secrets {
            let value = match source.get_ref() {
                SecretSource::Env(var) => std::env::var(var)
                    .map_err(|_| format!("network `{network}`: secret `{name}`: environment variable {var} is not set"))?,
                SecretSource::File(file) => std::fs::read_to_string(self.base.join(file))
                    .map_err(|e| format!("network `{network}`: secret `{name}`: {}: {e}", file.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                SecretSource::Value(v) => v.clone(),
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}
