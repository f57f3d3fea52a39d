//! Operator actions on the queue: list it, inspect dead letters, replay
//! them (one, or by filter, rate-limited, optionally with another adapter
//! version), and the state of each destination.

use super::{Delivery, VersionError, view};
use crate::store::{
    AttemptOutcome, CaseRecord, Destination, Job, JobKind, JobRef, JobState, Millis, StoreError,
    now_millis,
};
use crate::wire::{
    AdapterView, AlertView, DeadLetter, DestinationView, DestinationsAnswer, JobProgress,
    QueueEntry, ReplayAnswer, ReplayedJob,
};
use serde::Deserialize;

/// Why an operator action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store failed: nothing was changed, the action may be retried.
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("name a network or a case_number to replay (replaying everything at once is refused)")]
    Unbounded,
    #[error("adapter_wasm_base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("a new adapter version needs the network it is for")]
    AdapterWithoutNetwork,
    #[error("network `{0}` is not configured")]
    UnknownNetwork(String),
    /// The adapter version is malformed, missing or does not load.
    #[error("{0}")]
    Version(#[from] VersionError),
    #[error("adapter_sha256 {pinned} does not match the uploaded component ({uploaded})")]
    DigestMismatch { pinned: String, uploaded: String },
    #[error("rate_per_second must be a positive number")]
    BadRate,
}

/// Which jobs a listing or replay covers.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    /// A network name (or `subscriber:<name>` for a subscriber).
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub job: Option<u32>,
    /// Only jobs in this state (listing only).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

impl JobFilter {
    fn destination(&self) -> Option<String> {
        self.network.as_ref().map(|n| {
            if n.contains(':') {
                n.clone()
            } else {
                Destination::Network(n.clone()).key()
            }
        })
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 10_000)
    }

    /// Whether a job matches the filter's case number and job number.
    fn selects(&self, r: &JobRef) -> bool {
        self.case_number
            .as_ref()
            .is_none_or(|c| *c == r.case_number)
            && self.job.is_none_or(|j| j == r.job)
    }
}

/// A replay request.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub job: Option<u32>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// At most this many replayed jobs fall due per second (default 10).
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Replay with this adapter version (sha256 of a version the gateway
    /// has loaded before, or of `adapter_wasm_base64`).
    #[serde(default)]
    pub adapter_sha256: Option<String>,
    /// A new adapter version to load for the replay (base64 of the component).
    #[serde(default)]
    pub adapter_wasm_base64: Option<String>,
    /// Its publisher signature (the signature file's JSON object).
    #[serde(default)]
    pub adapter_signature: Option<crate::publisher::AdapterSignature>,
}

/// The jobs of `refs` the filter selects, each viewed by `view`.
async fn select<T>(
    delivery: &Delivery,
    refs: Vec<JobRef>,
    filter: &JobFilter,
    view: impl Fn(&CaseRecord, &Job) -> T,
    state_of: impl Fn(&T) -> JobProgress,
) -> Result<Vec<T>, AdminError> {
    let mut out = Vec::new();
    for r in refs {
        if !filter.selects(&r) {
            continue;
        }
        let Some(record) = delivery.store.case(&r.case_number).await? else {
            continue;
        };
        let Some(job) = record.job(r.job) else {
            continue;
        };
        let v = view(&record, job);
        if filter
            .state
            .as_deref()
            .is_some_and(|s| state_of(&v).as_str() != s)
        {
            continue;
        }
        out.push(v);
        if out.len() >= filter.limit() {
            break;
        }
    }
    Ok(out)
}

/// Unfinished jobs, oldest first.
pub async fn queue(delivery: &Delivery, filter: &JobFilter) -> Result<Vec<QueueEntry>, AdminError> {
    let refs = delivery
        .store
        .pending(filter.destination().as_deref(), 100_000)
        .await?;
    let view = |record: &CaseRecord, job: &Job| QueueEntry {
        case_number: record.case_number.clone(),
        job: view::job_view(record, job),
    };
    select(delivery, refs, filter, view, |v| v.job.state).await
}

/// Dead letters, with the case, the adapter version and every attempt.
pub async fn dead_letters(
    delivery: &Delivery,
    filter: &JobFilter,
) -> Result<Vec<DeadLetter>, AdminError> {
    let refs = delivery
        .store
        .dead_letters(filter.destination().as_deref(), 100_000)
        .await?;
    select(delivery, refs, filter, view::dead_letter, |v| v.job.state).await
}

/// Put dead letters back in the queue, spaced to the rate.
pub async fn replay(delivery: &Delivery, req: &ReplayRequest) -> Result<ReplayAnswer, AdminError> {
    let filter = &JobFilter {
        network: req.network.clone(),
        case_number: req.case_number.clone(),
        job: req.job,
        state: None,
        limit: req.limit,
    };
    if filter.network.is_none() && filter.case_number.is_none() {
        return Err(AdminError::Unbounded);
    }
    let pin = replay_pin(delivery, req).await?;
    let rate = req.rate_per_second.unwrap_or(10.0);
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(AdminError::BadRate);
    }
    let refs = delivery
        .store
        .dead_letters(filter.destination().as_deref(), 100_000)
        .await?;
    let now = now_millis();
    let mut replayed = Vec::new();
    for r in refs {
        if !filter.selects(&r) {
            continue;
        }
        if replayed.len() >= filter.limit() {
            break;
        }
        let due = now.saturating_add((replayed.len() as f64 * 1000.0 / rate) as i64);
        if requeue(delivery, &r, due, now, pin.as_deref()).await? {
            replayed.push(ReplayedJob {
                case_number: r.case_number.clone(),
                job: r.job,
                due: view::rfc3339(due),
            });
        }
    }
    tracing::info!(count = replayed.len(), adapter = ?pin, "dead letters replayed");
    Ok(ReplayAnswer {
        replayed,
        adapter: pin,
    })
}

/// The adapter version a replay pins its jobs to: a new one uploaded with
/// the request (loaded now), or one the gateway has run before.
async fn replay_pin(
    delivery: &Delivery,
    req: &ReplayRequest,
) -> Result<Option<String>, AdminError> {
    let pin = req.adapter_sha256.clone();
    if let Some(b64) = &req.adapter_wasm_base64 {
        use base64::Engine as _;
        let wasm = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
        let network = req
            .network
            .as_ref()
            .ok_or(AdminError::AdapterWithoutNetwork)?;
        let net = delivery
            .networks
            .get(network)
            .ok_or_else(|| AdminError::UnknownNetwork(network.clone()))?;
        let sig = req.adapter_signature.as_ref();
        let adapter = delivery.load_version(net, &wasm, sig).await?;
        if let Some(p) = pin.filter(|p| p != adapter.digest()) {
            return Err(AdminError::DigestMismatch {
                pinned: p,
                uploaded: adapter.digest().to_string(),
            });
        }
        return Ok(Some(adapter.digest().to_string()));
    }
    if let (Some(digest), Some(network)) = (&pin, &req.network) {
        let net = delivery
            .networks
            .get(network)
            .ok_or_else(|| AdminError::UnknownNetwork(network.clone()))?;
        delivery.adapter_for(net, Some(digest)).await?;
    }
    Ok(pin)
}

/// Put one dead letter back in the queue, due at `due`; false if it is no
/// longer dead.
async fn requeue(
    delivery: &Delivery,
    r: &JobRef,
    due: Millis,
    now: Millis,
    pin: Option<&str>,
) -> Result<bool, AdminError> {
    let updated = delivery
        .store
        .update(&r.case_number, &mut |rec| {
            let mut rec = rec?;
            let job = rec.job_mut(r.job)?;
            let JobState::Dead { .. } = job.state else {
                return None;
            };
            // A submit that may have reached the ministry is asked about
            // before anything is sent again.
            let maybe_sent = matches!(job.kind, JobKind::Submit { .. })
                && job
                    .attempts
                    .iter()
                    .any(|a| a.outcome == AttemptOutcome::Ambiguous);
            job.state = if maybe_sent {
                JobState::Verify { due }
            } else {
                JobState::Pending { due }
            };
            job.replayed_at = Some(now);
            if let Some(pin) = pin {
                job.adapter = Some(pin.to_string());
            }
            rec.updated_at = now;
            Some(rec)
        })
        .await?;
    let Some(rec) = updated else {
        return Ok(false);
    };
    delivery.wake_record(&rec);
    Ok(true)
}

/// Each destination: queue depth, oldest pending age, adapter version.
pub async fn destinations(delivery: &Delivery) -> Result<DestinationsAnswer, AdminError> {
    let depth = delivery.store.depth().await?;
    let now = now_millis();
    let view = |destination: &Destination| {
        let key = destination.key();
        let d = depth.iter().find(|d| d.destination == key);
        DestinationView {
            pending: d.map(|d| d.pending).unwrap_or(0),
            oldest_pending_s: d
                .and_then(|d| d.oldest_created_at)
                .map(|t| (now - t) / 1000),
            adapter: None,
            concurrency: None,
            alert: delivery.alerts.get(destination).map(|a| AlertView {
                reason: a.reason,
                since: view::rfc3339(a.since),
                cause: a.cause,
            }),
        }
    };
    let mut out = DestinationsAnswer::new();
    for (name, net) in &delivery.networks {
        let destination = Destination::Network(name.clone());
        // A network down (its adapter failed to load) shows no adapter and its alert.
        let adapter = net.versions.current();
        let v = DestinationView {
            adapter: adapter.map(|adapter| AdapterView {
                name: adapter.descriptor().name.clone(),
                version: adapter.descriptor().version.clone(),
                sha256: adapter.digest().to_string(),
            }),
            concurrency: Some(net.concurrency),
            ..view(&destination)
        };
        out.insert(destination.key(), v);
    }
    for name in delivery.subscribers.keys() {
        let destination = Destination::Subscriber(name.clone());
        out.insert(destination.key(), view(&destination));
    }
    Ok(out)
}
