//! The delivery service: accepts cases and bureau changes into the store,
//! runs one dispatcher per destination (each ministry network, each
//! subscriber), brings ministry events back (poll and callback), keeps the
//! deadline light, and answers case and queue queries.
//!
//! Read top-down: [`build`] turns the configuration into running networks
//! and subscribers, [`start`] spawns the tasks; [`intake`] turns a case into
//! one job per [`route`] step; [`dispatch`] runs jobs under each
//! destination's concurrency limit, breaker and retry policy, through
//! [`call`] (a network's adapter) or [`webhook`] (a subscriber), and
//! [`settle`] decides what each [`outcome`] does to the job; [`backflow`]
//! records what ministries answer and releases chained steps, and
//! [`follow_up`] asks lookup-only networks about their open cases; [`notice`]
//! builds what subscribers hear; [`alert`] holds a destination whose TLS
//! peer was refused or whose adapter failed to load; [`versions`] keeps
//! adapter versions and hot swaps (each checked against its publisher
//! signature), and [`active`] which of them a restart keeps; [`drain`] holds the calls in progress
//! that a graceful stop lets settle before the audit trail closes; [`lease`]
//! is this replica's side of job leases (renewal, recovery at start).

pub mod active;
pub mod admin;
pub mod alert;
pub mod backflow;
pub mod build;
pub mod call;
pub mod dispatch;
pub mod drain;
pub mod follow_up;
pub mod intake;
pub mod leader;
pub mod lease;
pub mod monitor;
pub mod notice;
pub mod outcome;
pub mod retry;
pub mod route;
pub mod settle;
pub mod start;
pub mod versions;
pub mod view;
pub mod webhook;
pub mod witness;

pub use alert::{Alert, Alerts};
pub use lease::Replica;
pub use route::{RouteStep, Routes};
pub use versions::{ConfiguredAdapter, Started, VersionError, Versions, reported_version};

use crate::config::{BreakerConfig, FollowUpConfig, RetryPolicy};
use crate::runtime::{LoadedAdapter, Runtime, RuntimeConfig};
use crate::store::{CaseRecord, Destination, Store};
use crate::transport::{GatewayTransport, Transport};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yiwang_audit::{AuditLog, Entry, Kind};

/// Everything the delivery service needs besides the config.
#[derive(Default)]
pub struct DeliveryOptions {
    /// Overrides the configuration's `[runtime]` section when set.
    pub runtime: Option<RuntimeConfig>,
    /// Carries adapters' requests to ministries and notices to subscribers;
    /// none = mTLS per network and subscriber as configured.
    pub transport: Option<Arc<dyn Transport>>,
}

/// A network as the delivery service runs it.
pub struct NetworkRuntime {
    pub name: String,
    /// Its adapter: the current version and the others replays pin.
    pub versions: Versions,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub breaker: BreakerConfig,
    pub poll_interval_ms: Option<u64>,
    /// Set once its poller runs (a network down starts it when it comes up).
    poller_started: AtomicBool,
    /// Status follow-up of its open cases (`[networks.X.follow-up]`).
    pub follow_up: Option<FollowUpConfig>,
    /// Set once its follow-up scheduler runs.
    follow_up_started: AtomicBool,
    /// Its circuit breaker, shared by the dispatcher and the follow-up.
    circuit: Arc<Mutex<retry::Breaker>>,
}

impl NetworkRuntime {
    /// Down: its configured adapter failed to load and none was installed since.
    pub fn is_down(&self) -> bool {
        self.versions.current().is_none()
    }

    /// Where its circuit breaker stands now (the console shows it).
    pub fn breaker_state(&self) -> retry::BreakerState {
        let b = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        b.state(crate::store::now_millis())
    }
}

/// Why an operator's resume did not bring a destination back.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("network {0} is not configured")]
    UnknownDestination(String),
    /// The network was down and its configured adapter still fails to load.
    #[error("{reason}")]
    AdapterLoad { network: String, reason: String },
}

/// A subscriber as the delivery service runs it.
pub struct Subscriber {
    pub name: String,
    pub url: String,
    pub notices: Vec<String>,
    pub items: Vec<String>,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub timeout_ms: u64,
}

/// The delivery service: the state every room of it shares.
pub struct Delivery {
    pub store: Arc<dyn Store>,
    /// This gateway among the replicas sharing the store (job leases).
    pub replica: Replica,
    runtime: Runtime,
    pub networks: BTreeMap<String, Arc<NetworkRuntime>>,
    pub subscribers: BTreeMap<String, Arc<Subscriber>>,
    routes: Routes,
    wake: HashMap<String, Arc<Notify>>,
    webhook: Arc<dyn Transport>,
    /// The mTLS transport when the delivery service built it (reloads lift alerts).
    tls_transport: Option<Arc<GatewayTransport>>,
    /// Destinations in alert (TLS, or a network's adapter failed to load).
    pub alerts: Alerts,
    /// The tamper-evident audit trail.
    pub audit: Arc<AuditLog>,
    /// Where its signed checkpoints are pushed (`[audit.witness.*]`).
    witnesses: Vec<Arc<witness::Witness>>,
    yellow_ms: i64,
    /// `[gateway] earliest-case-time` and `max-clock-ahead-s` (its `now`
    /// is replaced at each use: [`Delivery::time_window`]).
    window: yiwang_schema::TimeWindow,
    retention_ms: i64,
    /// Cancelled when the service stops; every loop watches it.
    shutdown: CancellationToken,
    /// Every background task, so a stop can wait for them all.
    tasks: TaskTracker,
    /// The calls a stop drains (attempts, polls, requests), then abandons.
    pub drain: Arc<drain::Drain>,
}

impl Delivery {
    /// Ask every background task to stop.
    pub fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
    }

    /// Cancelled once the service stops.
    pub fn stopping(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The tracker every background task runs on (the listeners too).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// After [`Delivery::stop`]: wait until every tracked task has ended.
    pub async fn stopped(&self) {
        self.tasks.wait().await;
    }

    /// After [`Delivery::stop`]: let the loops end and the calls in
    /// progress settle, for at most `grace`; then abandon the calls still
    /// running, with one `admin` audit record naming them. How many were
    /// abandoned. The audit trail may close once this returns.
    pub async fn drained(&self, grace: Duration) -> usize {
        let begun = Instant::now();
        let deadline = begun + grace;
        let _ = tokio::time::timeout_at(deadline, self.tasks.wait()).await;
        let abandoned = self.drain.finish(deadline).await;
        self.tasks.wait().await;
        let drain_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
        if abandoned.is_empty() {
            tracing::info!(drain_ms, "stopped: every call in progress settled");
        } else {
            tracing::warn!(drain_ms, abandoned = abandoned.len(), calls = ?abandoned,
                "stopped: calls still running after the shutdown grace were abandoned; each attempt is verified before any resend at the next start");
            self.audit
                .record(Entry::new(Kind::Admin).detail(serde_json::json!({
                    "action": "shutdown-abandoned",
                    "grace_ms": u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                    "abandoned": abandoned.len(),
                    "calls": abandoned,
                })));
        }
        abandoned.len()
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
        self.routes.get(item)
    }

    /// Every item's configured route.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Lift the alert of a network (or `subscriber:<name>`) and wake its
    /// dispatcher. None if no such destination; else the alert that was
    /// lifted, if any. A network that is down keeps its alert: only an
    /// adapter (installed, or loaded by [`Delivery::resume`]) lifts it.
    pub fn lift_alert(&self, name: &str, why: &str) -> Option<Option<Alert>> {
        let key = destination_key(name);
        let wake = self.wake.get(&key)?;
        if let Some(Destination::Network(n)) = Destination::parse_key(&key)
            && self.networks.get(&n).is_some_and(|net| net.is_down())
        {
            return Some(None);
        }
        let lifted = self.alerts.lift(&key, why);
        wake.notify_one();
        Some(lifted)
    }

    /// The adapter a job runs with: its pinned version, else the network's current one.
    pub(crate) async fn adapter_for(
        &self,
        network: &NetworkRuntime,
        pinned: Option<&str>,
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        network.versions.for_job(&self.runtime, pinned).await
    }

    /// Load another version of a network's adapter (its signature
    /// checked), for replays pinned to it.
    pub async fn load_version(
        &self,
        network: &NetworkRuntime,
        wasm: &[u8],
        sig: Option<&crate::publisher::AdapterSignature>,
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        let absent = "the replay request (adapter_signature)";
        network
            .versions
            .load(&self.runtime, wasm, sig, absent)
            .await
    }

    /// An `alert` audit record of a component refused for a network (which
    /// check failed, on which sha256), at start or at a resume; a hot
    /// swap's refusal is recorded by the admin API with its operator.
    pub(crate) fn audit_refusal(&self, network: &str, e: &VersionError) {
        if let VersionError::Refused {
            sha256, refusal, ..
        } = e
        {
            self.audit.record(
                Entry::new(Kind::Alert)
                    .network(network)
                    .detail(serde_json::json!({
                        "adapter_refused": { "sha256": sha256, "check": refusal.check(), "reason": refusal.to_string() },
                    })),
            );
        }
    }

    /// The outcome of loading a network's adapter at start or at a resume:
    /// a swapped version set aside is an `alert` record; a failure takes
    /// the network down (its refusal audited).
    pub(crate) fn adapter_loaded(&self, network: &str, loaded: &Result<Started, VersionError>) {
        match loaded {
            Ok(started) => {
                if let Some(why) = &started.swap_set_aside {
                    self.audit.record(
                        Entry::new(Kind::Alert)
                            .network(network)
                            .detail(serde_json::json!({ "adapter_swap_set_aside": why, "adapter": started.sha256 })),
                    );
                }
            }
            Err(e) => {
                self.audit_refusal(network, e);
                self.alerts
                    .raise_adapter_down(network, &format!("adapter failed to load: {e}"));
            }
        }
    }
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
