//! One dispatcher per destination: takes due jobs from the store, runs them
//! under the destination's concurrency limit and circuit breaker, and
//! settles each attempt durably (delivered, retry later, verify, dead).
//!
//! The rule for attempts that may have reached a ministry (a lost reply, a
//! crash mid-call): before any resend, ask the adapter's `query-status` with
//! `idem:<idempotency key>`. Found → delivered with the ministry's number;
//! not found → resend with the same key.

use super::retry::{Admit, Breaker, backoff_ms, give_up};
use super::{Engine, NetworkRuntime, backflow, notice};
use crate::runtime::{CallError, ErrorClass, Submission};
use crate::store::{
    Attempt, CaseRecord, Destination, Job, JobKind, JobRef, JobState, Millis, now_millis,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The failure kind of a TLS peer refusal (see [`Engine::raise_alert`]).
pub(crate) const PEER_REJECTED: &str = "peer_rejected";

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Delivered; for a submit, the ministry's case number and the events its
    /// reply already told.
    Delivered {
        network_case_number: Option<String>,
        events: Vec<yiwang_schema::Event>,
    },
    /// A verify query found nothing: resend now.
    NotFound,
    Failed {
        class: ErrorClass,
        kind: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
}

impl Outcome {
    /// `delivered`, `not_found`, `retryable`, `permanent`, `ambiguous`.
    fn class_label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::NotFound => "not_found",
            Outcome::Failed { class, .. } => match class {
                ErrorClass::Retryable => "retryable",
                ErrorClass::Permanent => "permanent",
                ErrorClass::Ambiguous => "ambiguous",
            },
        }
    }
}

/// After a restart: every attempt left in flight may have reached the
/// ministry. Submits are verified before any resend; changes and notices
/// carry idempotency keys and are simply sent again.
pub(crate) async fn recover(engine: &Engine) -> anyhow::Result<usize> {
    let refs = engine.store.in_flight().await?;
    let now = now_millis();
    for r in &refs {
        engine
            .store
            .update(&r.case_number, &mut |rec| {
                let mut rec = rec?;
                let job = rec.job_mut(r.job)?;
                let JobState::InFlight { .. } = job.state else {
                    return None;
                };
                job.state = match job.kind {
                    JobKind::Submit { .. } => JobState::Verify { due: now },
                    _ => JobState::Pending { due: now },
                };
                Some(rec)
            })
            .await?;
    }
    Ok(refs.len())
}

/// The dispatcher loop of one destination.
pub(crate) async fn run(engine: Arc<Engine>, destination: Destination) {
    let (concurrency, breaker_cfg) = match &destination {
        Destination::Network(n) => match engine.networks.get(n) {
            Some(net) => (net.concurrency, net.breaker.clone()),
            None => return,
        },
        Destination::Subscriber(s) => match engine.subscribers.get(s) {
            Some(sub) => (sub.concurrency, crate::config::BreakerConfig::default()),
            None => return,
        },
    };
    let Some(wake) = engine.wake_handle(&destination) else {
        return;
    };
    let key = destination.key();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let breaker = Arc::new(Mutex::new(Breaker::new(breaker_cfg)));
    let claimed: Arc<Mutex<HashSet<JobRef>>> = Arc::default();
    let mut stop = engine.stopping();
    loop {
        if *stop.borrow() {
            return;
        }
        let notified = wake.notified();
        // A network in TLS alert holds its queue until the operator fixes
        // the trust material (a reload lifts it) or resumes it.
        if engine.alert(&destination).is_some() {
            tokio::select! {
                _ = stop.changed() => return,
                () = notified => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        let now = now_millis();
        let free = permits.available_permits();
        let (admit, open) = {
            let mut b = breaker.lock().unwrap_or_else(|p| p.into_inner());
            (b.admit(now, free), b.state(now) == "open")
        };
        metrics::gauge!("yiwang_breaker_open", "destination" => key.clone()).set(if open {
            1.0
        } else {
            0.0
        });
        let mut sleep_until: Option<Millis> = None;
        match admit {
            Admit::WaitUntil(t) => sleep_until = Some(t),
            Admit::Calls(0) => {}
            Admit::Calls(n) => {
                let in_claim = claimed.lock().unwrap_or_else(|p| p.into_inner()).len();
                match engine.store.due(&key, now, n + in_claim).await {
                    Ok(due) => {
                        let mut started = 0;
                        for job in due.jobs {
                            if started >= n {
                                break;
                            }
                            if !claimed
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(job.clone())
                            {
                                continue;
                            }
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                claimed
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&job);
                                break;
                            };
                            started += 1;
                            let engine = engine.clone();
                            let claimed = claimed.clone();
                            let breaker = breaker.clone();
                            let wake = wake.clone();
                            let destination = destination.clone();
                            tokio::spawn(async move {
                                attempt(&engine, &destination, &job, &breaker).await;
                                claimed
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&job);
                                drop(permit);
                                wake.notify_one();
                            });
                        }
                        sleep_until = due.next;
                    }
                    Err(e) => {
                        tracing::error!(destination = %key, error = %e, "cannot read the queue");
                        sleep_until = Some(now + 1000);
                    }
                }
            }
        }
        // Sleep until the next due job, a wake-up, or a periodic re-check.
        let wait = sleep_until
            .map(|t| (t - now_millis()).clamp(0, 5_000) as u64)
            .unwrap_or(5_000);
        tokio::select! {
            _ = stop.changed() => return,
            () = notified => {}
            () = tokio::time::sleep(Duration::from_millis(wait.max(1))) => {}
        }
    }
}

/// Run one attempt of one job and settle it.
async fn attempt(
    engine: &Engine,
    destination: &Destination,
    job_ref: &JobRef,
    breaker: &Mutex<Breaker>,
) {
    let started_at = now_millis();
    // Mark the attempt in flight, durably, before anything leaves the gateway.
    let mut claimed: Option<(Job, bool)> = None;
    let begun = engine
        .store
        .update(&job_ref.case_number, &mut |rec| {
            let mut rec = rec?;
            if rec.job(job_ref.job).is_some_and(|j| rec.hold(j).is_some()) {
                return None;
            }
            let job = rec.job_mut(job_ref.job)?;
            let verifying = match job.state {
                JobState::Pending { due } if due <= started_at + 50 => false,
                JobState::Verify { due } if due <= started_at + 50 => true,
                _ => return None,
            };
            job.state = JobState::InFlight {
                since: started_at,
                verifying,
            };
            claimed = Some((job.clone(), verifying));
            Some(rec)
        })
        .await;
    let record = match begun {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(case = %job_ref.case_number, error = %e, "cannot mark attempt in flight");
            return;
        }
    };
    let Some((job, verifying)) = claimed else {
        return;
    };
    let clock = Instant::now();
    let (outcome, adapter_digest) = match destination {
        Destination::Network(name) => match engine.networks.get(name) {
            Some(net) => call_network(engine, net, &record, &job, verifying).await,
            None => (
                Outcome::Failed {
                    class: ErrorClass::Permanent,
                    kind: "unknown_network".into(),
                    message: format!("network `{name}` is no longer configured"),
                    retry_after_ms: None,
                },
                None,
            ),
        },
        Destination::Subscriber(name) => match engine.subscribers.get(name) {
            Some(sub) => (notice::send(engine, sub, &job).await, None),
            None => (
                Outcome::Failed {
                    class: ErrorClass::Permanent,
                    kind: "unknown_subscriber".into(),
                    message: format!("subscriber `{name}` is no longer configured"),
                    retry_after_ms: None,
                },
                None,
            ),
        },
    };
    let elapsed_ms = clock.elapsed().as_millis() as u64;
    {
        let mut b = breaker.lock().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Outcome::Failed {
                class: ErrorClass::Permanent,
                ..
            } => {}
            Outcome::Failed { .. } => b.failure(now_millis()),
            _ => b.success(),
        }
    }
    metrics::counter!("yiwang_attempts_total", "destination" => destination.key(), "outcome" => outcome.class_label())
        .increment(1);
    // A network's alert is raised after its adapter call (`Engine::after_call`);
    // a subscriber has no adapter, so its own refused peer raises it here.
    if let (Destination::Subscriber(_), Outcome::Failed { kind, message, .. }) =
        (destination, &outcome)
        && kind == PEER_REJECTED
    {
        engine.raise_alert(destination, message);
    }
    settle(
        engine,
        destination,
        job_ref,
        verifying,
        outcome,
        adapter_digest,
        started_at,
        elapsed_ms,
    )
    .await;
}

/// Call the network's adapter for one job.
async fn call_network(
    engine: &Engine,
    net: &NetworkRuntime,
    record: &CaseRecord,
    job: &Job,
    verifying: bool,
) -> (Outcome, Option<String>) {
    let adapter = match engine.adapter_for(net, job.adapter.as_deref()).await {
        Ok(a) => a,
        Err(message) => {
            return (
                Outcome::Failed {
                    class: ErrorClass::Permanent,
                    kind: "adapter_version_missing".into(),
                    message,
                    retry_after_ms: None,
                },
                job.adapter.clone(),
            );
        }
    };
    let digest = Some(adapter.digest().to_string());
    let case = record.case_number.as_str();
    let network_case_number = record
        .networks
        .get(&net.name)
        .and_then(|n| n.network_case_number.clone());
    let timer = Instant::now();
    let (outcome, kind) = match (&job.kind, verifying) {
        (JobKind::Submit { .. }, true) => {
            let reference = format!("idem:{}", job.idempotency_key);
            let report = adapter.query_status(Some(case), &reference).await;
            engine.after_call(
                &net.name,
                "query-status",
                Some(case),
                adapter.digest(),
                &report,
            );
            let class = report.error_class();
            (
                match report.result {
                    Ok(events) if events.is_empty() => Outcome::NotFound,
                    Ok(events) => Outcome::Delivered {
                        network_case_number: events.first().map(|e| e.network_case_number.clone()),
                        events,
                    },
                    Err(e) => failed(&e, class, true, report.trace.peer_rejected.as_deref()),
                },
                "query_status",
            )
        }
        (JobKind::Submit { .. }, false) => {
            let submission = Submission {
                case_json: record.case_json.clone(),
                idempotency_key: job.idempotency_key.clone(),
                inputs: record.inputs_for(job),
            };
            let report = adapter.submit(case, submission).await;
            engine.after_call(&net.name, "submit", Some(case), adapter.digest(), &report);
            let class = report.error_class();
            (
                match report.result {
                    Ok(receipt) => Outcome::Delivered {
                        network_case_number: Some(receipt.network_case_number),
                        events: receipt.events,
                    },
                    Err(e) => failed(&e, class, false, report.trace.peer_rejected.as_deref()),
                },
                "submit",
            )
        }
        (JobKind::Change { change_json }, _) => match network_case_number {
            None => (
                Outcome::Failed {
                    class: ErrorClass::Permanent,
                    kind: "no_network_case_number".into(),
                    message: format!(
                        "network `{}` never returned a case number for {case}; the change cannot be addressed",
                        net.name
                    ),
                    retry_after_ms: None,
                },
                "update",
            ),
            Some(n) => {
                let change = crate::runtime::CaseChange {
                    network_case_number: n.clone(),
                    change_json: change_json.clone(),
                    idempotency_key: job.idempotency_key.clone(),
                };
                let report = adapter.update(case, change).await;
                engine.after_call(&net.name, "update", Some(case), adapter.digest(), &report);
                let class = report.error_class();
                (
                    match report.result {
                        Ok(events) => Outcome::Delivered {
                            network_case_number: Some(n),
                            events,
                        },
                        // A change carries its idempotency key: resending
                        // after a lost reply is safe, so ambiguous = retry.
                        Err(e) => {
                            match failed(&e, class, false, report.trace.peer_rejected.as_deref()) {
                                Outcome::Failed {
                                    class: ErrorClass::Ambiguous,
                                    kind,
                                    message,
                                    retry_after_ms,
                                } => Outcome::Failed {
                                    class: ErrorClass::Retryable,
                                    kind,
                                    message,
                                    retry_after_ms,
                                },
                                other => other,
                            }
                        }
                    },
                    "update",
                )
            }
        },
        (JobKind::Notify { .. }, _) => (
            Outcome::Failed {
                class: ErrorClass::Permanent,
                kind: "misrouted".into(),
                message: "a notice was queued for a network".into(),
                retry_after_ms: None,
            },
            "none",
        ),
    };
    metrics::histogram!("yiwang_adapter_call_seconds", "network" => net.name.clone(), "call" => kind)
        .record(timer.elapsed().as_secs_f64());
    if let Outcome::Failed { kind: k, .. } = &outcome
        && !k.starts_with("adapter_")
    {
        metrics::counter!("yiwang_adapter_failures_total", "network" => net.name.clone(), "kind" => k.clone())
            .increment(1);
    }
    (outcome, digest)
}

/// A failed call as an outcome. A TLS peer refusal (the ministry's
/// certificate failed verification or its pin, or it refused ours) is its
/// own kind: it raises the network's alert and holds its queue.
fn failed(
    e: &CallError,
    class: Option<ErrorClass>,
    verifying: bool,
    peer_rejected: Option<&str>,
) -> Outcome {
    if let Some(reason) = peer_rejected {
        return Outcome::Failed {
            class: ErrorClass::Retryable,
            kind: PEER_REJECTED.into(),
            message: format!("TLS peer refused: {reason}"),
            retry_after_ms: None,
        };
    }
    let retry_after_ms = match e {
        CallError::Adapter(crate::runtime::AdapterError::Retryable(r)) => r.retry_after_ms,
        _ => None,
    };
    let mut class = class.unwrap_or(ErrorClass::Retryable);
    // A failed verify query sent nothing that could create a case: it is
    // asked again later, whatever the class says about its own request.
    if verifying && class == ErrorClass::Ambiguous {
        class = ErrorClass::Retryable;
    }
    Outcome::Failed {
        class,
        kind: e.kind().to_string(),
        message: e.to_string(),
        retry_after_ms,
    }
}

/// Record an attempt and move the job on; apply any events it brought.
#[allow(clippy::too_many_arguments)]
async fn settle(
    engine: &Engine,
    destination: &Destination,
    job_ref: &JobRef,
    verifying: bool,
    outcome: Outcome,
    adapter: Option<String>,
    started_at: Millis,
    elapsed_ms: u64,
) {
    let policy = match destination {
        Destination::Network(n) => engine.networks.get(n).map(|n| n.retry.clone()),
        Destination::Subscriber(s) => engine.subscribers.get(s).map(|s| s.retry.clone()),
    }
    .unwrap_or_default();
    let network = match destination {
        Destination::Network(n) => Some(n.clone()),
        Destination::Subscriber(_) => None,
    };
    let now = now_millis();
    let (kind, message) = match &outcome {
        Outcome::Delivered { .. } => (None, String::new()),
        Outcome::NotFound => (
            None,
            "the ministry has no case under this idempotency key; resending".to_string(),
        ),
        Outcome::Failed { kind, message, .. } => (Some(kind.clone()), message.clone()),
    };
    let label = match &outcome {
        Outcome::Delivered { .. } if verifying => "found",
        other => other.class_label(),
    };
    let attempt = Attempt {
        at: started_at,
        elapsed_ms,
        outcome: label.to_string(),
        kind,
        message: message.clone(),
        adapter,
        verify: verifying,
    };
    let mut fresh_events = Vec::new();
    let mut apply = |rec: Option<CaseRecord>| {
        let mut rec = rec?;
        let j = rec.job_mut(job_ref.job)?;
        if !matches!(j.state, JobState::InFlight { .. }) {
            return None;
        }
        j.attempts.push(attempt.clone());
        let sends = j.sends();
        let tries = j.tries();
        let created_at = j.age_origin();
        let mut delivered_events = Vec::new();
        j.state = match &outcome {
            Outcome::Delivered {
                network_case_number,
                events,
            } => {
                delivered_events = events.clone();
                JobState::Delivered {
                    at: now,
                    network_case_number: network_case_number.clone(),
                }
            }
            Outcome::NotFound => JobState::Pending { due: now },
            Outcome::Failed {
                class: ErrorClass::Permanent,
                message,
                ..
            } => JobState::Dead {
                at: now,
                reason: message.clone(),
            },
            Outcome::Failed {
                class,
                message,
                retry_after_ms,
                ..
            } => match give_up(&policy, sends, created_at, now) {
                Some(why) => JobState::Dead {
                    at: now,
                    reason: format!("{why}; last error: {message}"),
                },
                None => {
                    let delay = backoff_ms(&policy, tries.max(1), *retry_after_ms) as i64;
                    if *class == ErrorClass::Ambiguous || verifying {
                        JobState::Verify { due: now + delay }
                    } else {
                        JobState::Pending { due: now + delay }
                    }
                }
            },
        };
        let state = j.state.clone();
        let kind = j.kind.clone();
        // What the network now knows about the case.
        if let (
            Some(net),
            JobState::Delivered {
                network_case_number: Some(n),
                ..
            },
        ) = (&network, &state)
        {
            rec.networks
                .entry(net.clone())
                .or_default()
                .network_case_number = Some(n.clone());
        }
        let mut fresh = Vec::new();
        if let Some(net) = &network {
            fresh = backflow::apply_events(&mut rec, net, delivered_events);
        }
        fresh_events = fresh.clone();
        // A finished submit is a delivery outcome subscribers hear about.
        let mut notices = Vec::new();
        if let Some(net) = &network
            && matches!(kind, JobKind::Submit { .. })
            && state.is_finished()
        {
            notices.push(("delivery".into(), notice::delivery_body(&rec, net, &state)));
        }
        backflow::conclude(engine, &mut rec, &fresh, notices, now);
        Some(rec)
    };
    // A settle that cannot be written leaves the job in flight; try again a
    // few times before leaving it to the restart recovery.
    let mut result = engine.store.update(&job_ref.case_number, &mut apply).await;
    for _ in 0..5 {
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = engine.store.update(&job_ref.case_number, &mut apply).await;
    }
    match result {
        Ok(Some(rec)) => {
            if let Some(net) = &network {
                backflow::audit_events(engine, net, &rec.case_number, &fresh_events);
            }
            if let Some(j) = rec.job(job_ref.job) {
                match &j.state {
                    JobState::Dead { reason, .. } => {
                        metrics::counter!("yiwang_dead_letters_total", "destination" => destination.key())
                            .increment(1);
                        tracing::warn!(case = %rec.case_number, destination = %destination, job = j.id, reason = %reason, "dead letter");
                    }
                    JobState::Delivered {
                        network_case_number,
                        ..
                    } => {
                        metrics::counter!("yiwang_deliveries_total", "destination" => destination.key(), "outcome" => "delivered")
                            .increment(1);
                        tracing::info!(case = %rec.case_number, destination = %destination, job = j.id, network_case_number = ?network_case_number, events = fresh_events.len(), "delivered");
                    }
                    other => {
                        tracing::info!(case = %rec.case_number, destination = %destination, job = j.id, state = other.name(), error = %message, "attempt failed; will retry");
                    }
                }
            }
            engine.wake_record(&rec);
        }
        Ok(None) => {}
        Err(e) => {
            // The attempt stays in flight in the store: the next start
            // verifies it before any resend.
            tracing::error!(case = %job_ref.case_number, error = %e, "cannot settle attempt");
        }
    }
}
