//! The delivery service: accepts cases and bureau changes into the store,
//! runs one dispatcher per destination (each ministry network, each
//! subscriber), brings ministry events back (poll and callback), keeps the
//! deadline light, and answers case and queue queries.
//!
//! Read top-down: [`Engine::accept`] turns a case into one job per route
//! step; [`dispatch`] runs jobs under each destination's concurrency limit,
//! breaker and retry policy; [`backflow`] records what ministries answer and
//! releases chained steps; [`notice`] tells subscribers; [`deadline`] keeps
//! the light.

pub mod admin;
pub mod backflow;
pub mod deadline;
pub mod dispatch;
pub mod notice;
pub mod retry;
pub mod view;

use crate::config::{LoadedConfig, RetryPolicy, SubscriberConfig};
use crate::runtime::{
    AdapterSlot, LoadError, LoadedAdapter, NetworkSandbox, Runtime, RuntimeConfig, Services,
    SystemClock,
};
use crate::store::{
    CaseClock, CaseRecord, ChangeRecord, Destination, JobKind, Light, Millis, Store, StoreError,
    now_millis,
};
use crate::transport::{GatewayTransport, Transport};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};
use yiwang_audit::{AuditLog, Entry, Kind};
use yiwang_schema::ValidationErrors;

/// A network as the engine runs it.
pub struct NetworkRuntime {
    pub name: String,
    pub slot: AdapterSlot,
    /// Other loaded versions by sha256 (replays pinned to a version).
    versions: Mutex<HashMap<String, Arc<LoadedAdapter>>>,
    sandbox: NetworkSandbox,
    services: Services,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub breaker: crate::config::BreakerConfig,
    pub poll_interval_ms: Option<u64>,
}

/// A subscriber as the engine runs it.
pub struct Subscriber {
    pub name: String,
    pub url: String,
    pub notices: Vec<String>,
    pub items: Vec<String>,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub timeout_ms: u64,
}

/// One step of an item's route.
#[derive(Debug, Clone)]
pub struct RouteStep {
    pub network: String,
    pub after: Vec<String>,
    pub inputs: BTreeMap<String, String>,
}

/// Why the intake refused a request.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the body is not a valid case")]
    Invalid(ValidationErrors),
    #[error("item `{code}` has no route in this gateway's configuration")]
    UnknownItem { code: String },
    #[error(
        "case {case_number} was already accepted with different content (sha256 {existing}); a corrected case needs a new case number or a change event"
    )]
    Conflict {
        case_number: String,
        existing: String,
    },
    #[error("case {case_number} is not known to this gateway")]
    UnknownCase { case_number: String },
    #[error("the change names case {in_body}, but was posted to case {in_path}")]
    CaseMismatch { in_path: String, in_body: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The outcome of an accepted intake.
#[derive(Debug)]
pub struct Accepted {
    pub record: CaseRecord,
    /// False when the same case was accepted before (nothing new was queued).
    pub created: bool,
    /// The jobs this request created (or created the first time).
    pub jobs: Vec<u32>,
}

/// What an intake write found: the same request again (the stored record
/// and the jobs it created the first time), or new work (its jobs).
enum Repeat {
    Seen(Box<CaseRecord>, Vec<u32>),
    New(Vec<u32>),
}

/// Everything the engine needs besides the config.
#[derive(Default)]
pub struct EngineOptions {
    /// Overrides the configuration's `[runtime]` section when set.
    pub runtime: Option<RuntimeConfig>,
    /// Carries adapters' requests to ministries and notices to subscribers;
    /// none = mTLS per network and subscriber as configured.
    pub transport: Option<Arc<dyn Transport>>,
}

/// A destination whose TLS peer was refused (bad or expired certificate,
/// pin mismatch, or it refused our client certificate): its queue holds
/// until the trust material changes or an operator resumes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    pub reason: String,
    pub since: Millis,
}

/// The delivery service.
pub struct Engine {
    pub store: Arc<dyn Store>,
    runtime: Runtime,
    pub networks: BTreeMap<String, Arc<NetworkRuntime>>,
    pub subscribers: BTreeMap<String, Arc<Subscriber>>,
    routes: BTreeMap<String, Vec<RouteStep>>,
    wake: HashMap<String, Arc<Notify>>,
    webhook: Arc<dyn Transport>,
    /// The mTLS transport when the engine built it (reloads lift alerts).
    tls_transport: Option<Arc<GatewayTransport>>,
    /// Destinations in TLS alert, by destination key.
    alerts: Mutex<BTreeMap<String, Alert>>,
    /// The tamper-evident audit trail.
    pub audit: Arc<AuditLog>,
    data_dir: PathBuf,
    yellow_ms: i64,
    retention_ms: i64,
    shutdown: watch::Sender<bool>,
}

/// A destination key from a network name or `subscriber:<name>` (the names
/// the admin API and the transport use).
fn destination_key(name: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        Destination::Network(name.to_string()).key()
    }
}

/// sha256 hex of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Engine {
    /// Load every network's adapter and get ready; nothing runs until [`Engine::start`].
    pub async fn build(
        config: &LoadedConfig,
        store: Arc<dyn Store>,
        options: EngineOptions,
    ) -> anyhow::Result<Arc<Engine>> {
        let cfg = &config.config;
        // `[runtime]` from the file; a test may still override it.
        let mut runtime_config = options
            .runtime
            .clone()
            .unwrap_or_else(|| cfg.runtime.clone());
        if runtime_config.cache_dir.is_none() {
            runtime_config.cache_dir = Some(config.data_dir().join("compiled"));
        }
        let runtime = Runtime::new(runtime_config)?;
        let audit_dir = config.audit_dir();
        let audit = AuditLog::open(&audit_dir, &config.audit_config())
            .map_err(|e| anyhow::anyhow!("audit trail {}: {e}", audit_dir.display()))?;
        // mTLS out: one client per network and subscriber, each with its own
        // trust roots and client certificate.
        let (transport, tls_transport): (Arc<dyn Transport>, _) = match &options.transport {
            Some(t) => (t.clone(), None),
            None => {
                let t = Arc::new(GatewayTransport::new(std::time::Duration::from_secs(3)));
                for (name, net) in &cfg.networks {
                    if let Some(tls) = &net.get_ref().tls {
                        t.add(name, &config.client_tls(tls.get_ref()))
                            .map_err(|e| anyhow::anyhow!("network `{name}`: tls: {e}"))?;
                    }
                }
                for (name, sub) in &cfg.subscribers {
                    if let Some(tls) = &sub.get_ref().tls {
                        t.add(
                            &Destination::Subscriber(name.clone()).key(),
                            &config.client_tls(tls.get_ref()),
                        )
                        .map_err(|e| anyhow::anyhow!("subscriber `{name}`: tls: {e}"))?;
                    }
                }
                (t.clone() as Arc<dyn Transport>, Some(t))
            }
        };
        let mut networks = BTreeMap::new();
        let mut wake = HashMap::new();
        for (name, net) in &cfg.networks {
            let net = net.get_ref();
            let path = config.adapter_path(net);
            let wasm = std::fs::read(&path).map_err(|e| {
                anyhow::anyhow!(
                    "network `{name}`: cannot read adapter {}: {e}",
                    path.display()
                )
            })?;
            if let Some(pin) = &net.adapter_sha256 {
                let actual = sha256_hex(&wasm);
                if &actual != pin.get_ref() {
                    anyhow::bail!(
                        "network `{name}`: adapter {} has sha256 {actual}, but adapter-sha256 pins {}",
                        path.display(),
                        pin.get_ref()
                    );
                }
            }
            let secrets = config
                .resolve_secrets(name, net)
                .map_err(anyhow::Error::msg)?;
            let endpoints = net
                .endpoints
                .iter()
                .map(|e| e.get_ref().parse::<http::Uri>())
                .collect::<Result<Vec<_>, _>>()?;
            let sandbox = NetworkSandbox {
                network: name.clone(),
                endpoints,
                config: net.adapter_config.clone(),
                secrets,
                limits: net.limits.get_ref().clone(),
            };
            let services = Services {
                transport: transport.clone(),
                kv: store.kv(),
                clock: Arc::new(SystemClock),
                keep_bodies: cfg.audit.keep_bodies,
            };
            let adapter = runtime
                .load(&wasm, sandbox.clone(), services.clone())
                .await?;
            tracing::info!(
                network = %name,
                adapter = %adapter.descriptor().name,
                version = %adapter.descriptor().version,
                sha256 = &adapter.digest()[..12],
                "adapter loaded"
            );
            keep_version(&config.data_dir(), adapter.digest(), &wasm);
            networks.insert(
                name.clone(),
                Arc::new(NetworkRuntime {
                    name: name.clone(),
                    slot: AdapterSlot::new(adapter),
                    versions: Mutex::new(HashMap::new()),
                    sandbox,
                    services,
                    retry: net.retry.get_ref().clone(),
                    concurrency: *net.concurrency.get_ref() as usize,
                    breaker: net.breaker.clone(),
                    poll_interval_ms: net.poll_interval_ms,
                }),
            );
            wake.insert(
                Destination::Network(name.clone()).key(),
                Arc::new(Notify::new()),
            );
        }
        let mut subscribers = BTreeMap::new();
        for (name, sub) in &cfg.subscribers {
            let sub: &SubscriberConfig = sub.get_ref();
            subscribers.insert(
                name.clone(),
                Arc::new(Subscriber {
                    name: name.clone(),
                    url: sub.url.get_ref().clone(),
                    notices: sub.events.iter().map(|e| e.get_ref().clone()).collect(),
                    items: sub.items.clone(),
                    retry: sub.retry.get_ref().clone(),
                    concurrency: sub.concurrency as usize,
                    timeout_ms: sub.timeout_ms,
                }),
            );
            wake.insert(
                Destination::Subscriber(name.clone()).key(),
                Arc::new(Notify::new()),
            );
        }
        let routes = cfg
            .items
            .iter()
            .map(|(code, item)| {
                let steps = item
                    .get_ref()
                    .route
                    .iter()
                    .map(|s| {
                        let s = s.get_ref();
                        RouteStep {
                            network: s.network.get_ref().clone(),
                            after: s.after.iter().map(|a| a.get_ref().clone()).collect(),
                            inputs: s
                                .inputs
                                .iter()
                                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                                .collect(),
                        }
                    })
                    .collect();
                (code.clone(), steps)
            })
            .collect();
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Engine {
            store,
            runtime,
            networks,
            subscribers,
            routes,
            wake,
            webhook: transport,
            tls_transport,
            alerts: Mutex::new(BTreeMap::new()),
            audit,
            data_dir: config.data_dir(),
            yellow_ms: cfg.deadlines.yellow_hours as i64 * 3_600_000,
            retention_ms: cfg.storage.retention_days as i64 * 86_400_000,
            shutdown,
        }))
    }

    /// Recover attempts a crash interrupted, then run every dispatcher,
    /// poller and monitor until [`Engine::stop`].
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let recovered = dispatch::recover(self).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "attempts interrupted by a stop were found; each is verified with the ministry before any resend"
            );
        }
        let mut tasks = Vec::new();
        for key in self.wake.keys() {
            if let Some(dest) = Destination::parse_key(key) {
                tasks.push(tokio::spawn(dispatch::run(self.clone(), dest)));
            }
        }
        for net in self.networks.values() {
            if let Some(ms) = net.poll_interval_ms {
                tasks.push(tokio::spawn(backflow::poller(
                    self.clone(),
                    net.clone(),
                    ms,
                )));
            }
        }
        tasks.push(tokio::spawn(backflow::deadline_monitor(self.clone())));
        tasks.push(tokio::spawn(housekeeping(self.clone())));
        if let Some(t) = &self.tls_transport {
            // New trust material for a destination lifts its alert.
            let engine = Arc::downgrade(self);
            tasks.push(t.watch(
                std::time::Duration::from_secs(5),
                self.stopping(),
                move |key: &str| {
                    if let Some(engine) = engine.upgrade() {
                        engine.lift_alert(&destination_key(key), "its TLS files changed");
                    }
                },
            ));
        }
        self.audit
            .record(Entry::new(Kind::Start).detail(serde_json::json!({
                "networks": self.networks.keys().collect::<Vec<_>>(),
                "version": env!("CARGO_PKG_VERSION"),
            })));
        Ok(tasks)
    }

    /// What follows every adapter call: the call goes to the audit trail,
    /// and each request it sent to its network with the reply (method,
    /// endpoint, status, sizes, sha256 of both bodies; the bodies themselves
    /// only when the trail keeps bodies, then encrypted); a TLS peer refusal
    /// on the way puts the network in alert.
    pub(crate) fn after_call<T>(
        &self,
        network: &str,
        call: &str,
        case: Option<&str>,
        adapter: &str,
        report: &crate::runtime::CallReport<T>,
    ) {
        let (outcome, error) = match &report.result {
            Ok(_) => ("ok", None),
            Err(e) => (e.kind(), Some(e.to_string())),
        };
        let trace = &report.trace;
        self.audit.record(
            Entry::new(Kind::AdapterCall)
                .about(case, Some(network))
                .detail(serde_json::json!({
                    "call": call,
                    "adapter": adapter,
                    "outcome": outcome,
                    "error": error,
                    "elapsed_ms": report.elapsed.as_millis() as u64,
                    "requests": trace.exchanges.len(),
                    "violations": trace.violations.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>(),
                })),
        );
        for x in &trace.exchanges {
            let mut entry = Entry::new(Kind::Outbound)
                .about(case, Some(network))
                .detail(serde_json::to_value(x).unwrap_or_default());
            if let Some((request, response)) = &x.bodies {
                entry = entry
                    .body("request", request.to_vec())
                    .body("response", response.to_vec());
            }
            self.audit.record(entry);
        }
        if let Some(reason) = &trace.peer_rejected {
            self.raise_alert(
                &Destination::Network(network.to_string()),
                &format!("TLS peer refused: {reason}"),
            );
        }
    }

    /// The TLS alert a destination is in, if any.
    pub fn alert(&self, destination: &Destination) -> Option<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&destination.key())
            .cloned()
    }

    /// Put a destination into TLS alert: its queue holds (nothing is retried
    /// silently against a peer that failed verification), the alert shows in
    /// `/admin/destinations` and `yiwang_destination_alert`, and the audit
    /// trail records it.
    pub(crate) fn raise_alert(&self, destination: &Destination, reason: &str) {
        let key = destination.key();
        let fresh = {
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = !alerts.contains_key(&key);
            alerts.entry(key.clone()).or_insert_with(|| Alert {
                reason: reason.to_string(),
                since: now_millis(),
            });
            fresh
        };
        if fresh {
            tracing::error!(destination = %key, %reason, "TLS alert: the queue holds until the trust material is fixed");
            metrics::gauge!("yiwang_destination_alert", "destination" => key.clone()).set(1.0);
            let mut entry = Entry::new(Kind::Alert)
                .detail(serde_json::json!({ "destination": key, "raised": reason }));
            if let Destination::Network(n) = destination {
                entry = entry.network(n.as_str());
            }
            self.audit.record(entry);
        }
    }

    /// Lift a destination's alert (by destination key); its queue moves again.
    fn lift_alert(&self, key: &str, why: &str) -> Option<Alert> {
        let lifted = self
            .alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(a) = &lifted {
            tracing::warn!(destination = %key, reason = %a.reason, %why, "TLS alert lifted");
            metrics::gauge!("yiwang_destination_alert", "destination" => key.to_string()).set(0.0);
            self.audit
                .record(Entry::new(Kind::Alert).detail(serde_json::json!({
                    "destination": key, "lifted": why, "was": a.reason,
                })));
        }
        if let Some(n) = self.wake.get(key) {
            n.notify_one();
        }
        lifted
    }

    /// Operator: lift a network's (or `subscriber:<name>`'s) alert. None if
    /// no such destination; else the alert that was lifted, if any.
    pub fn resume(&self, name: &str) -> Option<Option<Alert>> {
        let key = destination_key(name);
        if !self.wake.contains_key(&key) {
            return None;
        }
        Some(self.lift_alert(&key, "an operator resumed it"))
    }

    /// Ask every background task to stop.
    pub fn stop(&self) {
        self.shutdown.send_replace(true);
        for n in self.wake.values() {
            n.notify_one();
        }
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Wake a destination's dispatcher (new or newly runnable work).
    pub fn wake(&self, destination: &Destination) {
        if let Some(n) = self.wake.get(&destination.key()) {
            n.notify_one();
        }
    }

    pub(crate) fn wake_handle(&self, destination: &Destination) -> Option<Arc<Notify>> {
        self.wake.get(&destination.key()).cloned()
    }

    /// Wake every destination a record has unfinished work for.
    pub(crate) fn wake_record(&self, record: &CaseRecord) {
        for job in &record.jobs {
            if !job.state.is_finished() {
                self.wake(&job.destination);
            }
        }
    }

    /// The configured route of an item.
    pub fn route(&self, item: &str) -> Option<&[RouteStep]> {
        self.routes.get(item).map(Vec::as_slice)
    }

    /// The adapter a job runs with: its pinned version, else the network's current one.
    pub(crate) async fn adapter_for(
        &self,
        network: &NetworkRuntime,
        pinned: Option<&str>,
    ) -> Result<Arc<LoadedAdapter>, String> {
        let Some(digest) = pinned else {
            return Ok(network.slot.current());
        };
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "adapter version {digest:?} is not a sha256 (64 lowercase hex digits)"
            ));
        }
        let current = network.slot.current();
        if current.digest() == digest {
            return Ok(current);
        }
        if let Some(a) = network
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(a.clone());
        }
        let path = self
            .data_dir
            .join("adapters")
            .join(format!("{digest}.wasm"));
        let wasm = std::fs::read(&path).map_err(|e| {
            format!(
                "adapter version {} is not available ({}: {e})",
                &digest[..12.min(digest.len())],
                path.display()
            )
        })?;
        let adapter = self
            .load_version(network, &wasm)
            .await
            .map_err(|e| e.to_string())?;
        Ok(adapter)
    }

    /// Load another version of a network's adapter (kept on disk by hash so
    /// replays pinned to it survive a restart).
    pub async fn load_version(
        &self,
        network: &NetworkRuntime,
        wasm: &[u8],
    ) -> Result<Arc<LoadedAdapter>, LoadError> {
        let adapter = Arc::new(self.load_kept(network, wasm).await?);
        network
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(adapter.digest().to_string(), adapter.clone());
        Ok(adapter)
    }

    /// Load a component in the network's sandbox and keep its bytes by hash.
    async fn load_kept(
        &self,
        network: &NetworkRuntime,
        wasm: &[u8],
    ) -> Result<LoadedAdapter, LoadError> {
        let adapter = self
            .runtime
            .load(wasm, network.sandbox.clone(), network.services.clone())
            .await?;
        keep_version(&self.data_dir, adapter.digest(), wasm);
        Ok(adapter)
    }

    /// Make a loaded version the network's current adapter (hot swap).
    pub async fn install(&self, network: &str, wasm: &[u8]) -> Result<String, String> {
        let net = self
            .networks
            .get(network)
            .ok_or_else(|| format!("network `{network}` is not configured"))?;
        let adapter = self.load_kept(net, wasm).await.map_err(|e| e.to_string())?;
        let digest = adapter.digest().to_string();
        let old = net.slot.swap(adapter);
        tracing::info!(
            network,
            from = &old.digest()[..12],
            to = &digest[..12],
            "adapter swapped"
        );
        self.wake(&Destination::Network(network.to_string()));
        Ok(digest)
    }

    /// Accept a case: validate, route, and store it with one job per route
    /// step in one durable write.
    pub async fn accept(
        &self,
        case: yiwang_schema::Case,
        principal: &str,
    ) -> Result<Accepted, IntakeError> {
        let code = case.item.code.clone();
        let steps = self
            .route(&code)
            .ok_or(IntakeError::UnknownItem { code: code.clone() })?
            .to_vec();
        let canonical = serde_json::to_string(&case)
            .map_err(|e| IntakeError::Store(StoreError::Backend(format!("serialize case: {e}"))))?;
        let digest = sha256_hex(canonical.as_bytes());
        let now = now_millis();
        let start = case
            .accepted_at
            .map(|t| t.timestamp_millis())
            .unwrap_or(now);
        let clock = CaseClock {
            start,
            value: case.time_limit.value,
            unit: case.time_limit.unit,
            yellow_ms: self.yellow_ms,
        };
        let case_number = case.case_number.clone();
        let mut outcome: Option<Result<Repeat, IntakeError>> = None;
        let stored = self
            .store
            .update(&case_number, &mut |existing| match existing {
                Some(r) if r.digest == digest => {
                    let jobs = r
                        .jobs
                        .iter()
                        .filter(|j| matches!(j.kind, JobKind::Submit { .. }))
                        .map(|j| j.id)
                        .collect();
                    outcome = Some(Ok(Repeat::Seen(Box::new(r), jobs)));
                    None
                }
                Some(r) => {
                    outcome = Some(Err(IntakeError::Conflict {
                        case_number: case_number.clone(),
                        existing: r.digest.clone(),
                    }));
                    None
                }
                None => {
                    let mut r = CaseRecord {
                        case_number: case_number.clone(),
                        item: code.clone(),
                        case_json: canonical.clone(),
                        digest: digest.clone(),
                        principal: principal.to_string(),
                        bureau: case.bureau.uscc.clone(),
                        accepted_at: now,
                        updated_at: now,
                        next_job: 1,
                        jobs: Vec::new(),
                        networks: BTreeMap::new(),
                        changes: Vec::new(),
                        clock: Some(clock),
                        deadline: None,
                        light: Light::Green,
                    };
                    let jobs = steps
                        .iter()
                        .map(|s| {
                            r.push_job(
                                Destination::Network(s.network.clone()),
                                JobKind::Submit {
                                    after: s.after.clone(),
                                    inputs: s.inputs.clone(),
                                },
                                now,
                            )
                        })
                        .collect();
                    let (deadline, light) = deadline::evaluate(&r, now);
                    r.deadline = deadline;
                    r.light = light;
                    outcome = Some(Ok(Repeat::New(jobs)));
                    Some(r)
                }
            })
            .await?;
        let accepted = self.accepted(&case_number, outcome, stored)?;
        if accepted.created {
            metrics::counter!("yiwang_intake_accepted_total", "item" => code.clone()).increment(1);
        } else {
            metrics::counter!("yiwang_intake_duplicates_total").increment(1);
        }
        Ok(accepted)
    }

    /// Accept a bureau-side change: one job per network the case was routed
    /// to, each after that network's earlier jobs for the case.
    pub async fn change(&self, case_number: &str, body: &[u8]) -> Result<Accepted, IntakeError> {
        let change = yiwang_schema::parse_case_change(body).map_err(IntakeError::Invalid)?;
        if change.case_number != case_number {
            return Err(IntakeError::CaseMismatch {
                in_path: case_number.to_string(),
                in_body: change.case_number,
            });
        }
        let change_json = serde_json::to_string(&change)
            .map_err(|e| IntakeError::Store(StoreError::Backend(e.to_string())))?;
        let digest = sha256_hex(change_json.as_bytes());
        let now = now_millis();
        let mut outcome: Option<Result<Repeat, IntakeError>> = None;
        let stored = self
            .store
            .update(case_number, &mut |existing| {
                let Some(mut r) = existing else {
                    outcome = Some(Err(IntakeError::UnknownCase {
                        case_number: case_number.to_string(),
                    }));
                    return None;
                };
                if let Some(seen) = r.changes.iter().find(|c| c.digest == digest) {
                    let jobs = seen.jobs.clone();
                    outcome = Some(Ok(Repeat::Seen(Box::new(r), jobs)));
                    return None;
                }
                let networks: Vec<String> = r
                    .jobs
                    .iter()
                    .filter(|j| matches!(j.kind, JobKind::Submit { .. }))
                    .filter_map(|j| match &j.destination {
                        Destination::Network(n) => Some(n.clone()),
                        Destination::Subscriber(_) => None,
                    })
                    .collect();
                let jobs: Vec<u32> = networks
                    .into_iter()
                    .map(|n| {
                        r.push_job(
                            Destination::Network(n),
                            JobKind::Change {
                                change_json: change_json.clone(),
                            },
                            now,
                        )
                    })
                    .collect();
                r.changes.push(ChangeRecord {
                    digest: digest.clone(),
                    at: now,
                    jobs: jobs.clone(),
                });
                r.updated_at = now;
                outcome = Some(Ok(Repeat::New(jobs)));
                Some(r)
            })
            .await?;
        self.accepted(case_number, outcome, stored)
    }

    /// What an intake write decided, as the answer: a new write wakes the
    /// dispatchers of its jobs; a repeat answers from the record it read.
    fn accepted(
        &self,
        case_number: &str,
        outcome: Option<Result<Repeat, IntakeError>>,
        stored: Option<CaseRecord>,
    ) -> Result<Accepted, IntakeError> {
        let unknown = || IntakeError::UnknownCase {
            case_number: case_number.to_string(),
        };
        match outcome.ok_or_else(unknown)?? {
            Repeat::Seen(record, jobs) => Ok(Accepted {
                record: *record,
                created: false,
                jobs,
            }),
            Repeat::New(jobs) => {
                let record = stored.ok_or_else(unknown)?;
                self.wake_record(&record);
                Ok(Accepted {
                    record,
                    created: true,
                    jobs,
                })
            }
        }
    }
}

/// Keep an adapter's bytes by hash so a replay pinned to it can load it
/// again after a restart.
fn keep_version(data_dir: &std::path::Path, digest: &str, wasm: &[u8]) {
    let dir = data_dir.join("adapters");
    let path = dir.join(format!("{digest}.wasm"));
    if path.exists() {
        return;
    }
    let write = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!("{digest}.tmp"));
        std::fs::write(&tmp, wasm)?;
        std::fs::rename(&tmp, &path)
    });
    if let Err(e) = write {
        tracing::warn!(path = %path.display(), error = %e, "could not keep adapter version");
    }
}

/// Periodic chores: retention and queue gauges.
async fn housekeeping(engine: Arc<Engine>) {
    let mut stop = engine.stopping();
    let mut last_compact: Millis = 0;
    loop {
        let now = now_millis();
        if let Ok(depths) = engine.store.depth().await {
            for d in depths {
                metrics::gauge!("yiwang_queue_depth", "destination" => d.destination.clone())
                    .set(d.pending as f64);
                let age = d
                    .oldest_created_at
                    .map(|t| (now - t).max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics::gauge!("yiwang_queue_oldest_pending_seconds", "destination" => d.destination)
                    .set(age);
            }
        }
        let stats = engine.store.commit_stats();
        metrics::counter!("yiwang_store_durable_writes_total").absolute(stats.writes);
        metrics::counter!("yiwang_store_fsyncs_total").absolute(stats.fsyncs);
        if now - last_compact > 3_600_000 {
            last_compact = now;
            match engine.store.compact(now - engine.retention_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "retention: settled cases compacted"),
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
