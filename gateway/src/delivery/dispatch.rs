//! One dispatcher per destination: takes due jobs from the store, runs them
//! under the destination's concurrency limit and circuit breaker, and
//! settles each attempt durably (delivered, retry later, verify, dead).
//!
//! The rule for attempts that may have reached a ministry (a lost reply, a
//! crash mid-call, a replica whose lease expired): before any resend, ask
//! the adapter's `query-status` with `idem:<idempotency key>`. Found →
//! delivered with the ministry's number; not found → resend with the same key.
//!
//! Jobs are claimed from the store under this replica's lease (see
//! [`super::lease`]): several replicas may run dispatchers for the same
//! destination, and the store gives each job to one of them, within the
//! destination's concurrency limit counted over every replica.

use super::outcome::{FailureKind, Outcome};
use super::retry::{Admit, Breaker, BreakerState};
use super::settle::{Attempted, settle};
use super::{Delivery, backflow, call, lease, webhook};
use crate::config::BreakerConfig;
use crate::runtime::ErrorClass;
use crate::store::{ClaimRequest, Claimed, Destination, Job, JobRef, JobState, Millis, now_millis};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// One destination's dispatcher: its limits and what it is running.
struct Dispatcher {
    delivery: Arc<Delivery>,
    destination: Destination,
    key: String,
    wake: Arc<Notify>,
    /// The destination's concurrency limit, over every replica.
    concurrency: usize,
    /// This replica's share of it: the attempts it runs at once.
    permits: Arc<Semaphore>,
    breaker: Arc<Mutex<Breaker>>,
}

/// The dispatcher loop of one destination.
pub(crate) async fn run(delivery: Arc<Delivery>, destination: Destination) {
    // A network's breaker is shared with its status follow-up.
    let (concurrency, breaker) = match &destination {
        Destination::Network(n) => match delivery.networks.get(n) {
            Some(net) => (net.concurrency, net.circuit.clone()),
            None => return,
        },
        Destination::Subscriber(s) => match delivery.subscribers.get(s) {
            Some(sub) => (
                sub.concurrency,
                Arc::new(Mutex::new(Breaker::new(BreakerConfig::default()))),
            ),
            None => return,
        },
    };
    let Some(wake) = delivery.wake_handle(&destination) else {
        return;
    };
    let d = Dispatcher {
        key: destination.key(),
        concurrency: concurrency.max(1),
        permits: Arc::new(Semaphore::new(concurrency.max(1))),
        breaker,
        delivery,
        destination,
        wake,
    };
    let stop = d.delivery.stopping();
    loop {
        if stop.is_cancelled() {
            return;
        }
        let notified = d.wake.notified();
        // A destination in TLS alert holds its queue until the operator
        // fixes the trust material (a reload lifts it) or resumes it.
        let wait = if d.delivery.alerts.get(&d.destination).is_some() {
            5_000
        } else {
            let next = d.start_due().await;
            next.map(|t| t.saturating_sub(now_millis()).clamp(0, 5_000) as u64)
                .unwrap_or(5_000)
        };
        // Sleep until the next due job, a wake-up, or a periodic re-check.
        tokio::select! {
            () = stop.cancelled() => return,
            () = notified => {}
            () = tokio::time::sleep(Duration::from_millis(wait.max(1))) => {}
        }
    }
}

impl Dispatcher {
    /// Claim and start as many due jobs as the breaker, the free permits and
    /// the destination's global limit allow; when to look again.
    async fn start_due(&self) -> Option<Millis> {
        let now = now_millis();
        let free = self.permits.available_permits();
        let (admit, open) = {
            let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
            (b.admit(now, free), b.state(now) == BreakerState::Open)
        };
        metrics::gauge!("yiwang_breaker_open", "destination" => self.key.clone()).set(if open {
            1.0
        } else {
            0.0
        });
        let n = match admit {
            Admit::WaitUntil(t) => return Some(t),
            Admit::Calls(0) => return None,
            Admit::Calls(n) => n,
        };
        // Permits first: a job claimed is a job this replica can start.
        let permits: Vec<_> = (0..n)
            .map_while(|_| self.permits.clone().try_acquire_owned().ok())
            .collect();
        let replica = &self.delivery.replica;
        let request = ClaimRequest {
            owner: &replica.id,
            now,
            until: replica.lease_until(now),
            limit: self.concurrency,
            max: permits.len(),
        };
        let claims = match self.delivery.store.claim(&self.key, &request).await {
            Ok(claims) => claims,
            Err(e) => {
                tracing::error!(destination = %self.key, error = %e, "cannot claim from the queue");
                give_back_probe(&self.breaker);
                return Some(now.saturating_add(1000));
            }
        };
        metrics::gauge!("yiwang_leases_live", "destination" => self.key.clone())
            .set(claims.live as f64);
        if claims.jobs.is_empty() {
            give_back_probe(&self.breaker);
        }
        for (claimed, permit) in claims.jobs.into_iter().zip(permits) {
            self.spawn_attempt(claimed, permit);
        }
        claims.next
    }

    /// Run a claimed job on the drain, holding one of this replica's permits.
    fn spawn_attempt(&self, claimed: Claimed, permit: OwnedSemaphorePermit) {
        if let Some(from) = &claimed.recovered {
            metrics::counter!("yiwang_leases_recovered_total", "destination" => self.key.clone())
                .increment(1);
            tracing::warn!(case = %claimed.job.case_number, job = claimed.job.job, destination = %self.key, from = %from,
                "took over an attempt whose lease expired; it is verified with the ministry before any resend");
        }
        let delivery = self.delivery.clone();
        let breaker = self.breaker.clone();
        let wake = self.wake.clone();
        let destination = self.destination.clone();
        let what = format!(
            "{} job {} → {}",
            claimed.job.case_number, claimed.job.job, self.key
        );
        self.delivery.drain.spawn(what, async move {
            attempt(&delivery, &destination, &claimed, &breaker).await;
            drop(permit);
            wake.notify_one();
        });
    }
}

/// Run one claimed attempt of one job, its lease renewed while the call
/// runs, and settle it.
async fn attempt(
    delivery: &Delivery,
    destination: &Destination,
    claimed: &Claimed,
    breaker: &Mutex<Breaker>,
) {
    let Some(job) = claimed.job() else {
        give_back_probe(breaker);
        return;
    };
    let verifying = claimed.verifying;
    let renewal = lease::keep(delivery.store.clone(), &delivery.replica, claimed);
    let clock = Instant::now();
    let (outcome, adapter) = match destination {
        Destination::Network(name) => match delivery.networks.get(name) {
            Some(net) => call::network(delivery, net, &claimed.record, job, verifying).await,
            None => {
                let message = format!("network `{name}` is no longer configured");
                (
                    Outcome::permanent(FailureKind::UnknownNetwork, message),
                    None,
                )
            }
        },
        Destination::Subscriber(name) => match delivery.subscribers.get(name) {
            Some(sub) => (webhook::send(delivery, sub, job).await, None),
            None => {
                let message = format!("subscriber `{name}` is no longer configured");
                (
                    Outcome::permanent(FailureKind::UnknownSubscriber, message),
                    None,
                )
            }
        },
    };
    drop(renewal);
    let attempted = Attempted {
        job: claimed.job.job,
        verifying,
        started_at: claimed.since,
        elapsed_ms: clock.elapsed().as_millis() as u64,
        adapter,
        owner: delivery.replica.id.clone(),
    };
    judge(destination, &outcome, breaker);
    let label = outcome.attempt_outcome(false).name();
    metrics::counter!("yiwang_attempts_total", "destination" => destination.key(), "outcome" => label)
        .increment(1);
    // A network's alert is raised after its adapter call (`Delivery::after_call`);
    // a subscriber has no adapter, so its own refused peer raises it here.
    if let (Destination::Subscriber(_), Outcome::Failed(f)) = (destination, &outcome)
        && f.kind == FailureKind::PeerRejected
    {
        delivery.alerts.raise(destination, &f.message);
    }
    persist(delivery, destination, &claimed.job, &attempted, &outcome).await;
}

/// What an attempt tells the destination's breaker. A local shortage (the
/// gateway could not start the call) and a permanent refusal of one case
/// say nothing about the network's health: neither opens nor closes it.
/// A call the breaker admitted did not start (nothing due, the job already
/// running or moved on, the queue unreadable): if it was the half-open
/// probe, give it back, or the breaker would wait for a probe that never ends.
fn give_back_probe(breaker: &Mutex<Breaker>) {
    breaker.lock().unwrap_or_else(|p| p.into_inner()).neutral();
}

fn judge(destination: &Destination, outcome: &Outcome, breaker: &Mutex<Breaker>) {
    let mut b = breaker.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Outcome::Failed(f) if f.kind.is_local_shortage() => {
            b.neutral();
            drop(b);
            metrics::counter!("yiwang_local_shortage_total", "network" => destination.name().to_string())
                .increment(1);
            tracing::warn!(destination = %destination, error = %f.message, "local shortage: the gateway could not start the call; not counted against the network");
        }
        Outcome::Failed(f) if f.class == ErrorClass::Permanent => b.neutral(),
        Outcome::Failed(_) => b.failure(now_millis()),
        _ => b.success(),
    }
}

/// Settle an attempt in one durable write with everything it implies
/// (events, notices, released chained steps, the deadline light).
async fn persist(
    delivery: &Delivery,
    destination: &Destination,
    job_ref: &JobRef,
    attempted: &Attempted,
    outcome: &Outcome,
) {
    let policy = match destination {
        Destination::Network(n) => delivery.networks.get(n).map(|n| n.retry.clone()),
        Destination::Subscriber(s) => delivery.subscribers.get(s).map(|s| s.retry.clone()),
    }
    .unwrap_or_default();
    let now = now_millis();
    let mut fresh_events = Vec::new();
    let mut refused = Vec::new();
    let mut apply = |rec: Option<crate::store::CaseRecord>| {
        let mut rec = rec?;
        let settled = settle(&mut rec, attempted, outcome, &policy, now, &mut rand::rng())?;
        fresh_events = settled.fresh.clone();
        refused = settled.refused.clone();
        backflow::conclude(delivery, &mut rec, &settled.fresh, settled.notices, now);
        Some(rec)
    };
    // A settle that cannot be written leaves the job in flight; try again a
    // few times before leaving it to the restart recovery.
    let mut result = delivery
        .store
        .update(&job_ref.case_number, &mut apply)
        .await;
    for _ in 0..5 {
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = delivery
            .store
            .update(&job_ref.case_number, &mut apply)
            .await;
    }
    let record = match result {
        Ok(Some(rec)) => rec,
        Ok(None) => {
            lease::lost(
                job_ref,
                "settling found the job no longer in flight under this claim",
            );
            return;
        }
        Err(e) => {
            // The attempt stays in flight in the store: once its lease
            // expires, it is verified before any resend.
            tracing::error!(case = %job_ref.case_number, error = %e, "cannot settle attempt");
            return;
        }
    };
    if let Destination::Network(net) = destination {
        backflow::refuse(delivery, net, &record.case_number, &refused);
        backflow::audit_events(delivery, net, &record.case_number, &fresh_events);
    }
    if let Some(j) = record.job(job_ref.job) {
        report(destination, &record.case_number, j, fresh_events.len());
    }
    delivery.wake_record(&record);
}

/// The log line and counters of a settled attempt.
fn report(destination: &Destination, case: &str, j: &Job, events: usize) {
    match &j.state {
        JobState::Dead { reason, .. } => {
            metrics::counter!("yiwang_dead_letters_total", "destination" => destination.key())
                .increment(1);
            tracing::warn!(case = %case, destination = %destination, job = j.id, reason = %reason, "dead letter");
        }
        JobState::Delivered {
            network_case_number,
            ..
        } => {
            metrics::counter!("yiwang_deliveries_total", "destination" => destination.key(), "outcome" => "delivered")
                .increment(1);
            tracing::info!(case = %case, destination = %destination, job = j.id, network_case_number = ?network_case_number, events, "delivered");
        }
        other => {
            let error = j.attempts.last().map(|a| a.message.as_str()).unwrap_or("");
            tracing::info!(case = %case, destination = %destination, job = j.id, state = other.name(), error = %error, "attempt failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::outcome::Failure;

    fn failed(class: ErrorClass, kind: &'static str) -> Outcome {
        Outcome::Failed(Failure {
            class,
            kind: FailureKind::Call(kind),
            message: format!("{kind} happened"),
            retry_after_ms: None,
        })
    }

    #[test]
    fn a_local_shortage_neither_opens_nor_holds_the_breaker() {
        let net = Destination::Network("healthy".into());
        let breaker = Mutex::new(Breaker::new(BreakerConfig {
            failures: 1,
            cooldown_ms: 60_000,
        }));
        for _ in 0..10 {
            judge(
                &net,
                &failed(ErrorClass::Retryable, "instantiate"),
                &breaker,
            );
        }
        let now = now_millis();
        let mut b = breaker.lock().expect("breaker");
        assert_eq!(b.state(now), BreakerState::Closed);
        assert_eq!(b.admit(now, 8), Admit::Calls(8));
        drop(b);
        // The same count of the network's own failures opens it.
        judge(
            &net,
            &failed(ErrorClass::Retryable, "limit_cpu_time"),
            &breaker,
        );
        let b = breaker.lock().expect("breaker");
        assert_eq!(b.state(now_millis()), BreakerState::Open);
    }

    #[test]
    fn a_probe_that_met_a_local_shortage_is_given_back() {
        let net = Destination::Network("healthy".into());
        let breaker = Mutex::new(Breaker::new(BreakerConfig {
            failures: 1,
            cooldown_ms: 0,
        }));
        judge(&net, &failed(ErrorClass::Retryable, "not_sent"), &breaker);
        let now = now_millis().saturating_add(1);
        assert_eq!(
            breaker.lock().expect("breaker").admit(now, 8),
            Admit::Calls(1),
            "the probe"
        );
        judge(
            &net,
            &failed(ErrorClass::Retryable, "instantiate"),
            &breaker,
        );
        assert_eq!(
            breaker.lock().expect("breaker").admit(now, 8),
            Admit::Calls(1),
            "another probe, not a wait for ever"
        );
    }
}
