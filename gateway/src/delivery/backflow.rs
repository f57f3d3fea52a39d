//! Back-flow: what ministries say about cases comes back through the
//! adapter (`poll` on a schedule, `handle-callback` on a push), is matched
//! to the unified case, de-duplicated and ordered, updates the case view and
//! the cross-reference, releases chained route steps, and goes to
//! subscribers through the same durable queue.

use super::{Delivery, NetworkRuntime, notice};
use crate::runtime::{HttpRequest, HttpResponse};
use crate::store::{CaseRecord, Destination, Millis, deadline, now_millis};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use yiwang_audit::{Entry, Kind};
use yiwang_schema::{Event, NoticeBody};

/// Merge events into a network's view of the case. Duplicates (same stage
/// at the same time) are dropped; the rest are ordered by the ministry's
/// time, stage rank breaking ties, so a late-arriving earlier event never
/// moves the case backwards. Returns the events that were new.
pub fn apply_events(record: &mut CaseRecord, network: &str, events: Vec<Event>) -> Vec<Event> {
    let view = record.networks.entry(network.to_string()).or_default();
    let mut fresh = Vec::new();
    for mut e in events {
        e.case_number = Some(record.case_number.clone());
        let dup = view
            .events
            .iter()
            .chain(fresh.iter())
            .any(|old: &Event| old.stage == e.stage && old.at == e.at);
        if !dup {
            fresh.push(e);
        }
    }
    if fresh.is_empty() {
        return fresh;
    }
    view.events.extend(fresh.iter().cloned());
    view.events
        .sort_by_key(|e| (e.at.timestamp_millis(), e.stage.rank()));
    if let Some(last) = view.events.last() {
        view.stage = Some(last.stage);
        view.stage_at = Some(last.at.to_rfc3339());
        if view.network_case_number.is_none() {
            view.network_case_number = Some(last.network_case_number.clone());
        }
    }
    for e in &view.events {
        if let Some(d) = e.details.decision {
            view.decision = Some(d);
        }
        if let Some(c) = &e.details.certificate_number {
            view.certificate_number = Some(c.clone());
        }
    }
    fresh
}

/// What every change to a case ends with: notices for its new stage events
/// and the caller's other `notices`, dead letters (and notices) for chained
/// steps the change starved, the deadline light (and a notice if it moved),
/// all notices queued to subscribers, and the change time.
pub fn conclude(
    delivery: &Delivery,
    record: &mut CaseRecord,
    fresh: &[Event],
    notices: Vec<NoticeBody>,
    now: Millis,
) {
    let mut all: Vec<NoticeBody> = fresh
        .iter()
        .map(|e| notice::stage_notice(record, e))
        .collect();
    all.extend(notices);
    for id in record.fail_starved_jobs(now) {
        if let Some(j) = record.job(id)
            && let Destination::Network(n) = &j.destination
        {
            all.extend(notice::delivery_notice(record, n, &j.state));
        }
    }
    let (deadline, light) = deadline::evaluate(record, now);
    record.deadline = deadline;
    if light != record.light {
        record.light = light;
        all.push(notice::deadline_notice(record, light));
    }
    notice::enqueue(&delivery.subscribers, record, &all, now);
    record.updated_at = now;
}

/// Record events a network reported (poll or callback) against their cases.
/// Returns how many were new; events for cases this gateway does not know
/// are counted and skipped.
pub async fn record_events(
    delivery: &Delivery,
    network: &str,
    events: Vec<Event>,
) -> Result<usize, crate::store::StoreError> {
    let mut by_case: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        let case = match delivery
            .store
            .case_for_network_number(network, &e.network_case_number)
            .await?
        {
            Some(c) => Some(c),
            // An event may name the unified case itself (the ministry
            // echoes it), before the cross-reference exists.
            None => match &e.case_number {
                Some(c) if delivery.store.case(c).await?.is_some() => Some(c.clone()),
                _ => None,
            },
        };
        match case {
            Some(c) => by_case.entry(c).or_default().push(e),
            None => {
                metrics::counter!("yiwang_backflow_unmatched_total", "network" => network.to_string())
                    .increment(1);
                delivery
                    .audit
                    .record(Entry::new(Kind::Backflow).network(network).detail(
                        serde_json::json!({
                            "unmatched": true,
                            "network_case_number": e.network_case_number,
                            "case_number": e.case_number,
                            "stage": e.stage,
                        }),
                    ));
                tracing::debug!(network, network_case_number = %e.network_case_number, "event for a case this gateway did not deliver");
            }
        }
    }
    let mut total = 0;
    for (case, events) in by_case {
        let now = now_millis();
        let mut fresh_events = Vec::new();
        let stored = delivery
            .store
            .update(&case, &mut |rec| {
                let mut rec = rec?;
                let fresh = apply_events(&mut rec, network, events.clone());
                fresh_events = fresh.clone();
                if fresh.is_empty() {
                    return None;
                }
                conclude(delivery, &mut rec, &fresh, Vec::new(), now);
                Some(rec)
            })
            .await?;
        let fresh_count = fresh_events.len();
        total += fresh_count;
        audit_events(delivery, network, &case, &fresh_events);
        metrics::counter!("yiwang_backflow_events_total", "network" => network.to_string())
            .increment(fresh_count as u64);
        if let Some(rec) = stored {
            delivery.wake_record(&rec);
        }
    }
    Ok(total)
}

/// Each new event a network told about a case, for the audit trail.
pub(crate) fn audit_events(delivery: &Delivery, network: &str, case: &str, events: &[Event]) {
    for e in events {
        delivery.audit.record(
            Entry::new(Kind::Backflow)
                .network(network)
                .case(case)
                .detail(serde_json::to_value(e).unwrap_or_default()),
        );
    }
}

/// Poll one network's change feed on a schedule; the cursor is stored
/// durably after the events it covers.
pub(crate) async fn poller(delivery: Arc<Delivery>, net: Arc<NetworkRuntime>, interval_ms: u64) {
    let stop = delivery.stopping();
    loop {
        let cursor = match delivery.store.cursor(&net.name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(network = %net.name, error = %e, "cannot read poll cursor");
                None
            }
        };
        let adapter = net.versions.current();
        let report = adapter.poll(cursor.clone()).await;
        delivery.after_call(&net.name, "poll", None, adapter.digest(), &report);
        match report.result {
            Ok(poll) => {
                let n = poll.events.len();
                match record_events(&delivery, &net.name, poll.events).await {
                    Ok(fresh) => {
                        if let Some(next) = poll.next_cursor
                            && Some(&next) != cursor.as_ref()
                            && let Err(e) = delivery.store.set_cursor(&net.name, &next).await
                        {
                            tracing::error!(network = %net.name, error = %e, "cannot store poll cursor");
                        }
                        if n > 0 {
                            tracing::debug!(network = %net.name, events = n, fresh, "polled");
                        }
                    }
                    Err(e) => {
                        tracing::error!(network = %net.name, error = %e, "cannot record polled events")
                    }
                }
            }
            Err(e) => {
                metrics::counter!("yiwang_poll_failures_total", "network" => net.name.clone(), "kind" => e.kind())
                    .increment(1);
                tracing::warn!(network = %net.name, error = %e, "poll failed");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(interval_ms.max(100))) => {}
        }
    }
}

/// Why a callback was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("network `{0}` is not configured")]
    UnknownNetwork(String),
    /// Over the network's `callback-concurrency`: the ministry retries.
    #[error(transparent)]
    Busy(#[from] crate::runtime::CallbacksBusy),
    #[error("the adapter of network `{network}` refused the callback: {message}")]
    Refused { network: String, message: String },
    #[error("the adapter of network `{network}` failed on the callback: {message}")]
    Adapter { network: String, message: String },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// A ministry's push: the adapter turns it into events and the answer; the
/// events are durable before the ministry hears back.
pub async fn callback(
    delivery: &Delivery,
    network: &str,
    request: HttpRequest,
) -> Result<HttpResponse, CallbackError> {
    let net = delivery
        .networks
        .get(network)
        .ok_or_else(|| CallbackError::UnknownNetwork(network.to_string()))?;
    let adapter = net.versions.current();
    // Refused at once rather than queued: a flood of pushes must not hold
    // the network's other slots or the listener.
    let _turn = adapter.slots().try_callback(network).inspect_err(|_| {
        metrics::counter!("yiwang_callbacks_total", "network" => network.to_string(), "outcome" => "busy")
            .increment(1);
    })?;
    let report = adapter.handle_callback(request).await;
    delivery.after_call(network, "handle-callback", None, adapter.digest(), &report);
    let class = report.error_class();
    match report.result {
        Ok(outcome) => {
            metrics::counter!("yiwang_callbacks_total", "network" => network.to_string(), "outcome" => "ok")
                .increment(1);
            record_events(delivery, network, outcome.events).await?;
            Ok(outcome.response)
        }
        Err(e) => {
            metrics::counter!("yiwang_callbacks_total", "network" => network.to_string(), "outcome" => e.kind())
                .increment(1);
            let message = e.to_string();
            Err(match class {
                Some(crate::runtime::ErrorClass::Permanent) => CallbackError::Refused {
                    network: network.to_string(),
                    message,
                },
                _ => CallbackError::Adapter {
                    network: network.to_string(),
                    message,
                },
            })
        }
    }
}
