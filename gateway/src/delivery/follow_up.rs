//! Status follow-up: the gateway asks a network about its open cases.
//!
//! A lookup-only ministry (no change feed, no callbacks) tells nothing
//! unless asked. For a network with `[networks.X.follow-up]`, one task per
//! network asks the adapter's `query-status` about each case the store
//! keeps open for follow-up there ([`crate::store::follow_up`]: delivered
//! with the network's number, not final), a batch per round, earliest due
//! first. The adapter keeps no list of open cases; the gateway does,
//! durably, in the same atomic write as the case.
//!
//! Why this shape:
//! - The answer goes through the one back-flow gate,
//!   [`backflow::apply_events`]: confined to this network's case, under the
//!   number it gave, de-duplicated by content (stage, number, details — not
//!   time: a lookup-only ministry stamps every answer with the query time),
//!   capped. So an unchanged status records nothing, notifies no one, and
//!   only moves the schedule (the wait doubles up to `max-interval-ms`).
//! - A final stage takes the case out of the index in the write that
//!   records it: no query follows.
//! - Each call is an adapter call like any other: the network's sandbox
//!   limits, one of its reserved instance slots (the scheduler makes one
//!   call at a time), its circuit breaker (shared with its dispatcher: an
//!   open breaker pauses follow-up, a failed follow-up counts against it),
//!   and the audit trail ([`Delivery::after_call`]). A network held in alert
//!   is not asked.
//! - The schedule is durable: a kill -9 mid-round loses at most the answer
//!   to a read-only question, which is asked again at the next start.

use super::backflow::{self, Applied};
use super::{Delivery, NetworkRuntime};
use crate::config::FollowUpConfig;
use crate::runtime::{CallError, ErrorClass, LoadedAdapter};
use crate::store::{Destination, FollowUp, Millis, StoreError, now_millis};
use std::sync::Arc;
use std::time::Duration;
use yiwang_schema::Event;

/// The shortest wait between two rounds.
const MIN_WAIT_MS: u64 = 100;

/// What one follow-up came to (the `outcome` label of
/// `yiwang_follow_ups_total` for the ones that called the adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The answer brought a stage or details the case view did not have.
    Changed,
    /// The same status again: nothing recorded, the wait doubles.
    Unchanged,
    /// The network does not know its own number (an empty answer).
    NotFound,
    /// The call failed (the adapter's error kind is logged and audited).
    Failed,
    /// Not asked: the case is no longer open (final, or gone).
    Skipped,
    /// Not asked: the network's breaker holds calls until then.
    Held(Millis),
}

impl Asked {
    pub fn name(self) -> &'static str {
        match self {
            Asked::Changed => "changed",
            Asked::Unchanged => "unchanged",
            Asked::NotFound => "not_found",
            Asked::Failed => "failed",
            Asked::Skipped => "skipped",
            Asked::Held(_) => "held",
        }
    }
}

/// One network's follow-up task: rounds until the service stops or the
/// network goes down (a network that comes up starts it again).
pub(crate) async fn scheduler(
    delivery: Arc<Delivery>,
    net: Arc<NetworkRuntime>,
    policy: FollowUpConfig,
) {
    let stop = delivery.stopping();
    loop {
        let what = format!("status follow-up of network {}", net.name);
        let wait = match delivery
            .drain
            .run(what, round(&delivery, &net, &policy))
            .await
        {
            Some(Some(wait)) => wait,
            // Abandoned by a stop, or the network is down.
            None | Some(None) => return,
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

/// One round: ask about the cases due now, at most `batch`; how long to
/// wait before the next. `None` when the network is down.
async fn round(delivery: &Delivery, net: &NetworkRuntime, policy: &FollowUpConfig) -> Option<u64> {
    let adapter = net.versions.current()?;
    let destination = Destination::Network(net.name.clone());
    if delivery.alerts.get(&destination).is_some() {
        return Some(policy.interval_ms);
    }
    let now = now_millis();
    let batch = policy.batch.max(1) as usize;
    let due = match delivery.store.follow_ups_due(&net.name, now, batch).await {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(network = %net.name, error = %e, "cannot read the cases due for follow-up");
            return Some(policy.interval_ms);
        }
    };
    let full = due.cases.len() >= batch;
    for case in &due.cases {
        if delivery.stopping().is_cancelled() {
            break;
        }
        match ask(delivery, net, &adapter, case, policy).await {
            Ok(Asked::Held(until)) => return Some(wait_until(Some(until), now_millis(), policy)),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(network = %net.name, case, error = %e, "cannot record a follow-up answer");
            }
        }
    }
    if full {
        return Some(MIN_WAIT_MS);
    }
    Some(wait_until(due.next, now_millis(), policy))
}

/// Until the next case falls due, at most one interval (new deliveries
/// are due at once), at least [`MIN_WAIT_MS`].
fn wait_until(next: Option<Millis>, now: Millis, policy: &FollowUpConfig) -> u64 {
    let ceiling = policy.interval_ms.max(MIN_WAIT_MS);
    next.map_or(ceiling, |t| {
        u64::try_from(t.saturating_sub(now)).unwrap_or(0)
    })
    .clamp(MIN_WAIT_MS, ceiling)
}

/// Ask the adapter about one case and record what it says. A case no
/// longer open (final, or gone) is skipped without a call; the breaker is
/// asked just before the call, so an admitted probe always gets a verdict.
async fn ask(
    delivery: &Delivery,
    net: &NetworkRuntime,
    adapter: &LoadedAdapter,
    case: &str,
    policy: &FollowUpConfig,
) -> Result<Asked, StoreError> {
    let Some(record) = delivery.store.case(case).await? else {
        return Ok(Asked::Skipped);
    };
    let view = record.networks.get(&net.name);
    let number = view
        .filter(|v| record.follow_up_at(&net.name, v).is_some())
        .and_then(|v| v.network_case_number.clone());
    let Some(number) = number else {
        return Ok(Asked::Skipped);
    };
    if let Err(until) = net.admit_follow_up(now_millis()) {
        return Ok(Asked::Held(until));
    }
    let report = adapter.query_status(Some(case), &number).await;
    delivery.after_call(
        &net.name,
        "query-status",
        Some(case),
        adapter.digest(),
        &report,
    );
    let class = report.error_class();
    net.judge_follow_up(&report.result, class, now_millis());
    let asked = match report.result {
        Ok(events) if events.is_empty() => {
            schedule(delivery, net, case, Vec::new(), policy).await?;
            Asked::NotFound
        }
        Ok(events) => schedule(delivery, net, case, events, policy).await?,
        Err(e) => {
            let wait = match &e {
                CallError::Adapter(crate::runtime::AdapterError::Retryable(r)) => {
                    r.retry_after_ms.unwrap_or(policy.interval_ms)
                }
                _ => policy.interval_ms,
            }
            .clamp(
                policy.interval_ms,
                policy.max_interval_ms.max(policy.interval_ms),
            );
            tracing::warn!(network = %net.name, case, kind = e.kind(), error = %e, "status follow-up failed");
            failed(delivery, net, case, wait).await?;
            Asked::Failed
        }
    };
    metrics::counter!("yiwang_follow_ups_total", "network" => net.name.clone(), "outcome" => asked.name())
        .increment(1);
    Ok(asked)
}

/// Record an answer: its events through the back-flow gate, the schedule
/// backed off or reset, one durable write. A change concludes like any
/// back-flow (notices, chained steps, the deadline light).
async fn schedule(
    delivery: &Delivery,
    net: &NetworkRuntime,
    case: &str,
    events: Vec<Event>,
    policy: &FollowUpConfig,
) -> Result<Asked, StoreError> {
    let now = now_millis();
    let mut applied = Applied::default();
    let stored = delivery
        .store
        .update(case, &mut |rec| {
            let mut rec = rec?;
            applied = backflow::apply_events(&mut rec, &net.name, events.clone());
            let changed = !applied.fresh.is_empty();
            let view = rec.networks.get_mut(&net.name)?;
            view.follow_up = Some(FollowUp::after_query(
                view.follow_up,
                changed,
                policy.interval_ms,
                policy.max_interval_ms,
                now,
            ));
            if changed {
                backflow::conclude(delivery, &mut rec, &applied.fresh, Vec::new(), now);
            }
            Some(rec)
        })
        .await?;
    backflow::refuse(delivery, &net.name, case, &applied.refused);
    backflow::audit_events(delivery, &net.name, case, &applied.fresh);
    metrics::counter!("yiwang_backflow_events_total", "network" => net.name.clone())
        .increment(applied.fresh.len() as u64);
    if let Some(rec) = stored {
        delivery.wake_record(&rec);
    }
    Ok(if applied.fresh.is_empty() {
        Asked::Unchanged
    } else {
        Asked::Changed
    })
}

/// A failed query: asked again after `wait_ms`, the back-off kept.
async fn failed(
    delivery: &Delivery,
    net: &NetworkRuntime,
    case: &str,
    wait_ms: u64,
) -> Result<(), StoreError> {
    let now = now_millis();
    delivery
        .store
        .update(case, &mut |rec| {
            let mut rec = rec?;
            let view = rec.networks.get_mut(&net.name)?;
            view.follow_up = Some(FollowUp::after_failure(view.follow_up, wait_ms, now));
            Some(rec)
        })
        .await?;
    Ok(())
}

impl NetworkRuntime {
    /// Whether the network's breaker lets a follow-up call through now;
    /// else when it may.
    fn admit_follow_up(&self, now: Millis) -> Result<(), Millis> {
        let mut b = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        match b.admit(now, 1) {
            super::retry::Admit::Calls(n) if n > 0 => Ok(()),
            super::retry::Admit::Calls(_) => Err(now),
            super::retry::Admit::WaitUntil(t) => Err(t),
        }
    }

    /// What a follow-up call tells the network's breaker: like a delivery,
    /// a local shortage or a refusal of one case says nothing about the
    /// network's health.
    fn judge_follow_up<T>(
        &self,
        result: &Result<T, CallError>,
        class: Option<ErrorClass>,
        now: Millis,
    ) {
        let mut b = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => b.success(),
            Err(e) if e.kind() == super::outcome::LOCAL_SHORTAGE => b.neutral(),
            Err(_) if class == Some(ErrorClass::Permanent) => b.neutral(),
            Err(_) => b.failure(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CaseRecord, JobKind};
    use yiwang_schema::Stage;

    /// A lookup-only ministry stamps every answer with the time of the
    /// query: the same status asked again is no change, a new one is.
    #[test]
    fn the_same_status_at_a_later_query_time_is_no_change() {
        let mut r = CaseRecord::blank("C1");
        let kind = JobKind::Submit {
            after: vec![],
            inputs: Default::default(),
        };
        r.push_job(Destination::Network("p".into()), kind, 0);
        let answer = |stage, at: &str| Event {
            network: "p".into(),
            network_case_number: "P-1".into(),
            case_number: None,
            stage,
            at: chrono::DateTime::parse_from_rfc3339(at).expect("time"),
            details: Default::default(),
            raw_ref: None,
        };
        let first = answer(Stage::Received, "2026-12-07T10:00:00+08:00");
        assert_eq!(
            backflow::apply_events(&mut r, "p", vec![first]).fresh.len(),
            1
        );
        let again = answer(Stage::Received, "2026-12-07T10:05:00+08:00");
        let applied = backflow::apply_events(&mut r, "p", vec![again]);
        assert!(applied.fresh.is_empty() && applied.refused.is_empty());
        let moved = answer(Stage::UnderReview, "2026-12-07T10:10:00+08:00");
        assert_eq!(
            backflow::apply_events(&mut r, "p", vec![moved]).fresh.len(),
            1
        );
        assert_eq!(r.networks["p"].events.len(), 2);
        assert_eq!(r.networks["p"].stage, Some(Stage::UnderReview));
    }

    fn policy() -> FollowUpConfig {
        FollowUpConfig {
            interval_ms: 1000,
            max_interval_ms: 8000,
            batch: 10,
        }
    }

    #[test]
    fn the_wait_is_until_the_next_due_case_within_one_interval() {
        let p = policy();
        assert_eq!(wait_until(None, 0, &p), 1000, "nothing open: one interval");
        assert_eq!(wait_until(Some(400), 0, &p), 400);
        assert_eq!(
            wait_until(Some(50_000), 0, &p),
            1000,
            "new deliveries come within one interval"
        );
        assert_eq!(
            wait_until(Some(-5), 0, &p),
            MIN_WAIT_MS,
            "overdue: at once, not busily"
        );
    }
}
