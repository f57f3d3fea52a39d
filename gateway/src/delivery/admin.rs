//! Operator actions on the queue: list it, inspect dead letters, replay
//! them (one, or by filter, rate-limited, optionally with another adapter
//! version), and the state of each destination.

use super::{Engine, view};
use crate::store::{Destination, JobRef, JobState, now_millis};
use serde::Deserialize;
use serde_json::{Value, json};

/// Which jobs a listing or replay covers.
#[derive(Debug, Clone, Default, Deserialize)]
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
}

/// A replay request.
#[derive(Debug, Clone, Default, Deserialize)]
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
}

async fn refs_to_views(
    engine: &Engine,
    refs: Vec<JobRef>,
    filter: &JobFilter,
    dead: bool,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for r in refs {
        if filter
            .case_number
            .as_ref()
            .is_some_and(|c| *c != r.case_number)
            || filter.job.is_some_and(|j| j != r.job)
        {
            continue;
        }
        let Some(record) = engine
            .store
            .case(&r.case_number)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let Some(job) = record.job(r.job) else {
            continue;
        };
        let mut v = if dead {
            view::dead_letter(&record, job)
        } else {
            let mut v = view::job_view(&record, job);
            v["case_number"] = json!(record.case_number);
            v
        };
        if filter
            .state
            .as_ref()
            .is_some_and(|s| v["state"] != json!(s))
        {
            continue;
        }
        v["case_number"] = json!(record.case_number);
        out.push(v);
        if out.len() >= filter.limit() {
            break;
        }
    }
    Ok(out)
}

/// Unfinished jobs, oldest first.
pub async fn queue(engine: &Engine, filter: &JobFilter) -> Result<Vec<Value>, String> {
    let refs = engine
        .store
        .pending(filter.destination().as_deref(), 100_000)
        .await
        .map_err(|e| e.to_string())?;
    refs_to_views(engine, refs, filter, false).await
}

/// Dead letters, with the case, the adapter version and every attempt.
pub async fn dead_letters(engine: &Engine, filter: &JobFilter) -> Result<Vec<Value>, String> {
    let refs = engine
        .store
        .dead_letters(filter.destination().as_deref(), 100_000)
        .await
        .map_err(|e| e.to_string())?;
    refs_to_views(engine, refs, filter, true).await
}

/// Put dead letters back in the queue, spaced to the rate.
pub async fn replay(engine: &Engine, req: &ReplayRequest) -> Result<Value, String> {
    let filter = &JobFilter {
        network: req.network.clone(),
        case_number: req.case_number.clone(),
        job: req.job,
        state: None,
        limit: req.limit,
    };
    if filter.network.is_none() && filter.case_number.is_none() {
        return Err(
            "name a network or a case_number to replay (replaying everything at once is refused)"
                .into(),
        );
    }
    let mut pin = req.adapter_sha256.clone();
    if let Some(b64) = &req.adapter_wasm_base64 {
        use base64::Engine as _;
        let wasm = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("adapter_wasm_base64: {e}"))?;
        let network = filter
            .network
            .as_ref()
            .ok_or("a new adapter version needs the network it is for")?;
        let net = engine
            .networks
            .get(network)
            .ok_or_else(|| format!("network `{network}` is not configured"))?;
        let adapter = engine
            .load_version(net, &wasm)
            .await
            .map_err(|e| e.to_string())?;
        if pin.as_ref().is_some_and(|p| p != adapter.digest()) {
            return Err(format!(
                "adapter_sha256 {} does not match the uploaded component ({})",
                pin.unwrap_or_default(),
                adapter.digest()
            ));
        }
        pin = Some(adapter.digest().to_string());
    } else if let (Some(digest), Some(network)) = (&pin, &filter.network) {
        let net = engine
            .networks
            .get(network)
            .ok_or_else(|| format!("network `{network}` is not configured"))?;
        engine
            .adapter_for(net, Some(digest))
            .await
            .map_err(|e| e.to_string())?;
    }
    let rate = req.rate_per_second.unwrap_or(10.0);
    if !(rate > 0.0 && rate.is_finite()) {
        return Err("rate_per_second must be a positive number".into());
    }
    let refs = engine
        .store
        .dead_letters(filter.destination().as_deref(), 100_000)
        .await
        .map_err(|e| e.to_string())?;
    let now = now_millis();
    let mut replayed = Vec::new();
    for r in refs {
        if filter
            .case_number
            .as_ref()
            .is_some_and(|c| *c != r.case_number)
            || filter.job.is_some_and(|j| j != r.job)
        {
            continue;
        }
        if replayed.len() >= filter.limit() {
            break;
        }
        let due = now + (replayed.len() as f64 * 1000.0 / rate) as i64;
        let pin = pin.clone();
        let updated = engine
            .store
            .update(&r.case_number, &mut |rec| {
                let mut rec = rec?;
                let job = rec.job_mut(r.job)?;
                let JobState::Dead { .. } = job.state else {
                    return None;
                };
                // A submit that may have reached the ministry is asked about
                // before anything is sent again.
                let maybe_sent = matches!(job.kind, crate::store::JobKind::Submit { .. })
                    && job
                        .attempts
                        .iter()
                        .any(|a| a.outcome == crate::store::AttemptOutcome::Ambiguous);
                job.state = if maybe_sent {
                    JobState::Verify { due }
                } else {
                    JobState::Pending { due }
                };
                job.replayed_at = Some(now);
                if pin.is_some() {
                    job.adapter = pin.clone();
                }
                rec.updated_at = now;
                Some(rec)
            })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(rec) = updated {
            engine.wake_record(&rec);
            replayed.push(
                json!({"case_number": r.case_number, "job": r.job, "due": view::rfc3339(due)}),
            );
        }
    }
    tracing::info!(count = replayed.len(), adapter = ?pin, "dead letters replayed");
    Ok(json!({ "replayed": replayed, "adapter": pin }))
}

/// Each destination: queue depth, oldest pending age, adapter version.
pub async fn destinations(engine: &Engine) -> Result<Value, String> {
    let depth = engine.store.depth().await.map_err(|e| e.to_string())?;
    let now = now_millis();
    let mut out = serde_json::Map::new();
    for (name, net) in &engine.networks {
        let key = Destination::Network(name.clone()).key();
        let d = depth.iter().find(|d| d.destination == key);
        let adapter = net.versions.current();
        out.insert(
            key,
            json!({
                "pending": d.map(|d| d.pending).unwrap_or(0),
                "oldest_pending_s": d.and_then(|d| d.oldest_created_at).map(|t| (now - t) / 1000),
                "adapter": {
                    "name": adapter.descriptor().name,
                    "version": adapter.descriptor().version,
                    "sha256": adapter.digest(),
                },
                "concurrency": net.concurrency,
                "alert": engine.alert(&Destination::Network(name.clone())).map(|a| json!({
                    "reason": a.reason, "since": view::rfc3339(a.since),
                })),
            }),
        );
    }
    for name in engine.subscribers.keys() {
        let key = Destination::Subscriber(name.clone()).key();
        let d = depth.iter().find(|d| d.destination == key);
        out.insert(
            key,
            json!({
                "pending": d.map(|d| d.pending).unwrap_or(0),
                "oldest_pending_s": d.and_then(|d| d.oldest_created_at).map(|t| (now - t) / 1000),
                "alert": engine.alert(&Destination::Subscriber(name.clone())).map(|a| json!({
                    "reason": a.reason, "since": view::rfc3339(a.since),
                })),
            }),
        );
    }
    Ok(Value::Object(out))
}
