//! The deserialized configuration: one struct per table, each field's doc
//! comment showing its TOML syntax. Values that errors must point at are
//! `toml::Spanned`; a defaulted value has an empty span (see [`unspanned`]),
//! and errors about it point at the enclosing table.
//!
//! Unknown keys are refused by serde (`deny_unknown_fields`); the rules that
//! span several values live in `check/`.

use crate::policy::PrincipalConfig;
use crate::runtime::{Limits, RuntimeConfig};
use crate::tls::{ClientTlsConfig, ServerTlsConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// `[storage]` (or `[store]`): the durable queue, embedded (sled) or
    /// shared by replicas (PostgreSQL).
    #[serde(default, alias = "store")]
    pub storage: StorageConfig,
    /// `[deadlines]`: the deadline light (电子监察).
    #[serde(default)]
    pub deadlines: DeadlineConfig,
    /// `[runtime]`: the Wasm engine (pool size, memory ceiling, compile cache).
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[adapters]`: the publisher keys whose signatures make a component
    /// runnable (deny by default).
    #[serde(default)]
    pub adapters: AdaptersConfig,
    /// `[networks.<name>]`: one ministry network each.
    #[serde(default)]
    pub networks: BTreeMap<String, Spanned<NetworkConfig>>,
    /// `[items."<item code>"]`: which networks an item's cases go to.
    #[serde(default)]
    pub items: BTreeMap<String, Spanned<ItemConfig>>,
    /// `[code-tables.<name>]`: allowed codes and their labels, which item
    /// forms name with `"x-code-table": "<name>"`.
    #[serde(default)]
    pub code_tables: BTreeMap<String, Spanned<CodeTableConfig>>,
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
    /// Time a client has, once its headers are in, to send the whole body;
    /// a slower body is answered 408 and its slot freed
    /// (`body-timeout-ms = 10000`).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Requests one principal may have in progress at once; beyond it that
    /// principal gets 503 while others are served. Default: a quarter of
    /// `max-concurrent` (at least 1).
    #[serde(default)]
    pub max_concurrent_per_principal: Option<usize>,
    /// Requests a second one principal may start, on average; beyond it
    /// (and its burst) that principal gets 429 with `Retry-After` while
    /// others are served. 0 turns the rate budget off (benchmarks).
    #[serde(default = "default_rate_per_principal")]
    pub rate_per_principal: u32,
    /// Requests a principal may start at once above its rate. Default:
    /// twice `rate-per-principal`.
    #[serde(default)]
    pub burst_per_principal: Option<u32>,
    /// TLS handshakes in progress on the listener at once; more
    /// connections wait for one, within `header-timeout-ms`.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// TLS handshakes in progress from one source address (an IPv4
    /// address, an IPv6 /64); as many more may wait, the rest are closed.
    #[serde(default = "default_max_handshakes_per_peer")]
    pub max_handshakes_per_peer: usize,
    /// Handshakes a second one source address may start (burst: twice
    /// that); faster connections wait. 0 turns it off.
    #[serde(default = "default_handshake_rate_per_peer")]
    pub handshake_rate_per_peer: u32,
    /// Refusal records (limits, refused handshakes, malformed requests) one
    /// source may leave in the audit trail a minute; the rest are counted
    /// and the count recorded once a minute.
    #[serde(default = "default_refusal_records_per_minute")]
    pub refusal_records_per_minute: u32,
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
fn default_body_timeout() -> u64 {
    10_000
}
fn default_rate_per_principal() -> u32 {
    500
}
fn default_max_handshakes() -> usize {
    256
}
fn default_max_handshakes_per_peer() -> usize {
    64
}
fn default_handshake_rate_per_peer() -> u32 {
    100
}
fn default_refusal_records_per_minute() -> u32 {
    60
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
            body_timeout_ms: default_body_timeout(),
            max_concurrent_per_principal: None,
            rate_per_principal: default_rate_per_principal(),
            burst_per_principal: None,
            max_handshakes: default_max_handshakes(),
            max_handshakes_per_peer: default_max_handshakes_per_peer(),
            handshake_rate_per_peer: default_handshake_rate_per_peer(),
            refusal_records_per_minute: default_refusal_records_per_minute(),
            client_ca: None,
            crl: None,
        }
    }

    /// The share of `max-concurrent` one principal may hold.
    pub fn per_principal(&self) -> usize {
        self.max_concurrent_per_principal
            .unwrap_or(self.max_concurrent / 4)
            .clamp(1, self.max_concurrent.max(1))
    }

    /// The burst a principal may start above its rate.
    pub fn burst_per_principal(&self) -> u32 {
        self.burst_per_principal
            .unwrap_or(self.rate_per_principal.saturating_mul(2))
            .max(1)
    }
}

/// `[adapters]`: which adapter publishers the gateway trusts. A component
/// runs only with a detached signature by one of these keys, made for its
/// network (`yiwang adapter sign`); see `crate::publisher`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct AdaptersConfig {
    /// Public key files, 64 hex chars each
    /// (`publisher-keys = ["keys/publisher.pub"]`). None: every adapter is
    /// refused.
    pub publisher_keys: Vec<Spanned<PathBuf>>,
    /// Development only: run components that have no signature file
    /// (`allow-unsigned = true`); a signature that is there is still
    /// checked. `config check` warns about it.
    pub allow_unsigned: bool,
}

/// `[storage]`, also spelled `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// `backend = "sled"` (embedded in the data directory, the default) or
    /// `backend = "postgres"` (one database shared by every replica).
    pub backend: StorageBackend,
    /// Settled cases (every delivery done, every network final) are dropped
    /// this long after their last change (`retention-days = 90`).
    pub retention_days: u64,
    /// PostgreSQL only: `url = "postgres://yiwang@db.example:5432/yiwang"`.
    /// A password in the URL is refused unless the host is loopback (a
    /// development database): use `password-file` or `password-env`.
    pub url: Option<Spanned<String>>,
    /// PostgreSQL only: `password-file = "/run/secrets/yiwang-db"` (trailing
    /// newline dropped; relative to the configuration file).
    pub password_file: Option<Spanned<PathBuf>>,
    /// PostgreSQL only: `password-env = "YIWANG_DB_PASSWORD"`.
    pub password_env: Option<Spanned<String>>,
    /// PostgreSQL only: connections in the pool (`pool-size = 16`).
    pub pool_size: u32,
    /// PostgreSQL only: `tls-ca = "pki/db-ca.crt"`, the CA certificates
    /// (PEM) that sign the server's certificate; TLS is required when set.
    pub tls_ca: Option<Spanned<PathBuf>>,
}

/// The most connections `pool-size` may ask for (PostgreSQL's default
/// `max_connections` is 100, shared by every replica).
pub const MAX_STORE_POOL: u32 = 256;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sled,
            retention_days: 90,
            url: None,
            password_file: None,
            password_env: None,
            pool_size: 16,
            tls_ca: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageBackend {
    Sled,
    Postgres,
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
    /// How long a graceful stop waits for the calls in progress (delivery
    /// attempts, polls, requests) before it abandons the rest
    /// (`shutdown-grace-ms = 15000`).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_ms: u64,
    /// The earliest time a case's `submitted_at` and `accepted_at`, and a
    /// change's `at`, may name (`earliest-case-time =
    /// "2024-01-01T00:00:00+08:00"`, a quoted RFC 3339 time). Default and
    /// floor: 2000-01-01T00:00:00+08:00, the schema's own.
    #[serde(default)]
    pub earliest_case_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// How far ahead of this gateway's clock those times may be
    /// (`max-clock-ahead-s = 300`).
    #[serde(default = "default_max_clock_ahead")]
    pub max_clock_ahead_s: i64,
    /// Hand freed memory back to the operating system (`return-memory =
    /// true`, the default; see `gateway::memory`).
    #[serde(default = "default_true")]
    pub return_memory: bool,
    /// This gateway's name among the replicas sharing one store
    /// (`replica-id = "gw-a"`): the owner of the job leases it takes.
    /// Letters, digits, `.`, `_` and `-`, at most 64. Default: the host
    /// name and a hash of the data directory, stable across restarts.
    #[serde(default)]
    pub replica_id: Option<String>,
    /// How long a job claimed by this replica stays leased without a
    /// renewal (`lease-ms = 30000`); renewed every third of it while the
    /// call runs. After it, another replica (or this one, restarted) may
    /// take the job over, verifying before any resend.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

/// `lease-ms` bounds: long enough for two missed renewals to be a real
/// outage, short enough that a dead replica's jobs resume within minutes.
pub const LEASE_MS: std::ops::RangeInclusive<u64> = 3_000..=600_000;

fn default_lease_ms() -> u64 {
    30_000
}

fn default_true() -> bool {
    true
}

/// The most `max-clock-ahead-s` may be: a day.
pub const MAX_CLOCK_AHEAD_S: i64 = 86_400;

fn default_max_clock_ahead() -> i64 {
    300
}

/// The most a stop may wait: longer than any service manager waits.
pub const MAX_SHUTDOWN_GRACE_MS: u64 = 600_000;

fn default_shutdown_grace() -> u64 {
    15_000
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            data_dir: PathBuf::from("data"),
            shutdown_grace_ms: default_shutdown_grace(),
            earliest_case_time: None,
            max_clock_ahead_s: default_max_clock_ahead(),
            return_memory: true,
            replica_id: None,
            lease_ms: default_lease_ms(),
        }
    }
}

impl GatewaySection {
    /// The window case timestamps must fall in at `now`.
    pub fn time_window(&self, now: chrono::DateTime<chrono::Utc>) -> yiwang_schema::TimeWindow {
        let default = yiwang_schema::TimeWindow::at(now);
        yiwang_schema::TimeWindow {
            earliest: self
                .earliest_case_time
                .map_or(default.earliest, |t| t.max(default.earliest)),
            max_ahead_s: self.max_clock_ahead_s.clamp(0, MAX_CLOCK_AHEAD_S),
            ..default
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
    /// The adapter's detached signature file, relative to the config file
    /// (default: the adapter's path with `.sig` appended).
    #[serde(default)]
    pub adapter_signature: Option<Spanned<PathBuf>>,
    /// Origins the adapter may reach; the first is the primary one
    /// (`endpoints = ["https://10.1.2.3:8443"]`).
    pub endpoints: Vec<Spanned<String>>,
    /// Deliveries in flight at once to this network (`concurrency = 8`).
    #[serde(default = "default_concurrency")]
    pub concurrency: Spanned<u32>,
    /// Ministry pushes in this network's adapter at once
    /// (`callback-concurrency = 4`); more are answered 503 with `Retry-After: 1`.
    #[serde(default = "default_callback_concurrency")]
    pub callback_concurrency: Spanned<u32>,
    /// Values the adapter may read (`[networks.X.adapter-config]`): a
    /// string, or a sensitive value from the environment or a file
    /// (`app-key = { env = "TAX_APP_KEY" }`), redacted wherever shown.
    #[serde(default)]
    pub adapter_config: BTreeMap<String, Spanned<AdapterConfigValue>>,
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
    /// Status follow-up (`[networks.X.follow-up]`): the gateway asks the
    /// adapter's `query-status` about each open case of this network on a
    /// schedule. Absent = off (a network with a change feed or callbacks
    /// needs none).
    #[serde(default)]
    pub follow_up: Option<Spanned<FollowUpConfig>>,
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

/// `[networks.X.follow-up]`: ask about each open case every `interval-ms`,
/// doubling the wait while its status stays the same up to
/// `max-interval-ms`, at most `batch` cases per round.
///
/// ```toml
/// [networks.provincial-filing.follow-up]
/// interval-ms = 60000
/// max-interval-ms = 3600000
/// batch = 50
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct FollowUpConfig {
    pub interval_ms: u64,
    pub max_interval_ms: u64,
    pub batch: u32,
}

impl Default for FollowUpConfig {
    fn default() -> Self {
        FollowUpConfig {
            interval_ms: 60_000,
            max_interval_ms: 3_600_000,
            batch: 50,
        }
    }
}

/// The largest `[networks.X.follow-up] batch`: one round's cases are read
/// into memory together.
pub const MAX_FOLLOW_UP_BATCH: u32 = 1000;

fn default_concurrency() -> Spanned<u32> {
    Spanned::new(0..0, 8)
}

fn default_callback_concurrency() -> Spanned<u32> {
    Spanned::new(0..0, crate::runtime::DEFAULT_CALLBACK_CONCURRENCY)
}

impl NetworkConfig {
    /// The instance slots this network reserves in the engine's pool.
    pub fn reserved_slots(&self) -> u32 {
        crate::runtime::reserved_slots(
            *self.concurrency.get_ref(),
            *self.callback_concurrency.get_ref(),
            self.background_tasks(),
        )
    }

    /// Its background tasks that call the adapter: the poller (if it
    /// polls) and the follow-up scheduler (if it follows statuses up).
    pub fn background_tasks(&self) -> u32 {
        u32::from(self.poll_interval_ms.is_some()) + u32::from(self.follow_up.is_some())
    }

    /// Its slots, to share between every version of its adapter.
    pub fn slots(&self) -> crate::runtime::NetworkSlots {
        crate::runtime::NetworkSlots::reserving(
            *self.concurrency.get_ref(),
            *self.callback_concurrency.get_ref(),
            self.background_tasks(),
        )
    }
}

/// A default value: it has no place in the file (errors about it point at
/// the enclosing table instead).
fn unspanned<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}

/// One `[networks.X.adapter-config]` value: `mode = "fast"` (shown as it
/// is), or a sensitive one read like a secret — `app-key = { env = "VAR" }`,
/// `{ file = "path" }` (trailing newline trimmed) or `{ value = "…" }` —
/// that the adapter reads but the gateway redacts in its logs, audit trail
/// and admin API.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "expected a string, or a sensitive value { env = \"VAR\" }, { file = \"path\" } or { value = \"…\" }"
)]
pub enum AdapterConfigValue {
    Plain(String),
    Sensitive(SecretSource),
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
    /// Dead-letter a job once its calls hit a sandbox limit (CPU time,
    /// memory, stack, output, table) this many times (`limit-hits = 3`, at
    /// least 1): a call that exhausts its sandbox does so again.
    pub limit_hits: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_ms: 1000,
            max_interval_ms: 300_000,
            max_attempts: None,
            max_age_s: Some(7 * 24 * 3600),
            limit_hits: 3,
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
    /// The item's form schema (`form = "forms/SC-QYKB-001.json"`, relative
    /// to this file): a JSON Schema (draft 2020-12 subset) the case's `form`
    /// must satisfy at intake. None: the form is not checked beyond the
    /// unified schema's bounds.
    #[serde(default)]
    pub form: Option<Spanned<PathBuf>>,
}

/// `[code-tables.<name>]`: `codes = { "01" = "单位公章", "02" = "财务专用章" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CodeTableConfig {
    /// A human name (`name = "印章类型"`).
    #[serde(default)]
    pub name: Option<String>,
    /// Code → label; a form value must be one of the codes.
    pub codes: BTreeMap<String, String>,
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

/// A listener's server TLS: `[tls]` with the listener's own client CAs and
/// CRLs when it names them.
pub(crate) fn listener_tls(tls: &ServerTlsConfig, listener: &ListenerConfig) -> ServerTlsConfig {
    let mut out = tls.clone();
    if let Some(ca) = &listener.client_ca {
        out.client_ca = ca.clone();
    }
    if let Some(crl) = &listener.crl {
        out.crl = crl.clone();
    }
    out
}
