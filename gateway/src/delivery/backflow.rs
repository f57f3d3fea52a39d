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

/// The most events one network keeps about one case. A real case has a
/// few dozen; an adapter inventing new content on every poll is refused
/// beyond this, so it cannot grow a record without bound.
pub const MAX_EVENTS_PER_NETWORK: usize = 200;

/// Why an event a network told was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The case has no job on this network: the network may not speak of it.
    OtherCase,
    /// The event names another network case number than the one this
    /// network already gave for the case.
    OtherNumber,
    /// The network already told [`MAX_EVENTS_PER_NETWORK`] events about the case.
    TooMany,
}

impl Refusal {
    /// The metrics label (`reason`).
    pub fn name(self) -> &'static str {
        match self {
            Refusal::OtherCase => "other_case",
            Refusal::OtherNumber => "other_number",
            Refusal::TooMany => "too_many",
        }
    }

    /// The violation named in the audit trail.
    pub fn violation(self) -> &'static str {
        match self {
            Refusal::OtherCase => "backflow_other_case",
            Refusal::OtherNumber => "backflow_other_number",
            Refusal::TooMany => "backflow_event_cap",
        }
    }
}

/// An event refused, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub event: Event,
    pub why: Refusal,
}

/// What merging a network's events into a case did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Events the network's view did not have yet, now stored.
    pub fresh: Vec<Event>,
    /// Events the network may not tell about this case: not stored.
    pub refused: Vec<Refused>,
}

/// Two events are one when they say the same thing: same stage, number and
/// details, whatever time the adapter stamped on them (and whatever raw
/// message it cites: a re-sent ministry message has a new hash).
fn same_content(a: &Event, b: &Event) -> bool {
    a.stage == b.stage && a.network_case_number == b.network_case_number && a.details == b.details
}

/// Merge events a network told into its view of the case, confined to what
/// that network may say: only about a case with a job on it, only under the
/// network case number it gave (once known), at most
/// [`MAX_EVENTS_PER_NETWORK`]. Duplicates (same content, see
/// [`same_content`]) are dropped; the rest are ordered by the ministry's
/// time, stage rank breaking ties, so a late-arriving earlier event never
/// moves the case backwards. A refused event leaves the record untouched.
pub fn apply_events(record: &mut CaseRecord, network: &str, events: Vec<Event>) -> Applied {
    let mut applied = Applied::default();
    let destination = Destination::Network(network.to_string());
    if !record.jobs.iter().any(|j| j.destination == destination) {
        applied.refused = events
            .into_iter()
            .map(|event| Refused {
                event,
                why: Refusal::OtherCase,
            })
            .collect();
        return applied;
    }
    let case_number = record.case_number.clone();
    let view = record.networks.entry(network.to_string()).or_default();
    let mut known = view.network_case_number.clone();
    for mut e in events {
        e.case_number = Some(case_number.clone());
        e.network = network.to_string();
        let why = if known.as_ref().is_some_and(|n| *n != e.network_case_number) {
            Some(Refusal::OtherNumber)
        } else if view
            .events
            .iter()
            .chain(applied.fresh.iter())
            .any(|old| same_content(old, &e))
        {
            continue;
        } else if view.events.len() + applied.fresh.len() >= MAX_EVENTS_PER_NETWORK {
            Some(Refusal::TooMany)
        } else {
            None
        };
        match why {
            Some(why) => applied.refused.push(Refused { event: e, why }),
            None => {
                known.get_or_insert_with(|| e.network_case_number.clone());
                applied.fresh.push(e);
            }
        }
    }
    if applied.fresh.is_empty() {
        return applied;
    }
    view.network_case_number = known;
    view.events.extend(applied.fresh.iter().cloned());
    view.events
        .sort_by_key(|e| (e.at.timestamp_millis(), e.stage.rank()));
    if let Some(last) = view.events.last() {
        view.stage = Some(last.stage);
        view.stage_at = Some(last.at.to_rfc3339());
    }
    for e in &view.events {
        if let Some(d) = e.details.decision {
            view.decision = Some(d);
        }
        if let Some(c) = &e.details.certificate_number {
            view.certificate_number = Some(c.clone());
        }
    }
    applied
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
/// Returns how many were new. An event is matched through the network's
/// case-number cross-reference, else through the unified case number it
/// names; [`apply_events`] then confines it to a case with a job on this
/// network, under the number the network gave. Events for cases this
/// gateway does not know are counted and skipped; refused ones are
/// counted, audited as a violation and skipped.
pub async fn record_events(
    delivery: &Delivery,
    network: &str,
    events: Vec<Event>,
) -> Result<usize, crate::store::StoreError> {
    let mut by_case: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        match match_case(delivery, network, &e).await? {
            Some(c) => by_case.entry(c).or_default().push(e),
            None => unmatched(delivery, network, &e),
        }
    }
    let mut total = 0;
    for (case, events) in by_case {
        let now = now_millis();
        let mut applied = Applied::default();
        let stored = delivery
            .store
            .update(&case, &mut |rec| {
                let mut rec = rec?;
                applied = apply_events(&mut rec, network, events.clone());
                if applied.fresh.is_empty() {
                    return None;
                }
                conclude(delivery, &mut rec, &applied.fresh, Vec::new(), now);
                Some(rec)
            })
            .await?;
        total += applied.fresh.len();
        refuse(delivery, network, &case, &applied.refused);
        audit_events(delivery, network, &case, &applied.fresh);
        metrics::counter!("yiwang_backflow_events_total", "network" => network.to_string())
            .increment(applied.fresh.len() as u64);
        if let Some(rec) = stored {
            delivery.wake_record(&rec);
        }
    }
    Ok(total)
}

/// The case an event is about: by the network's own number (the
/// cross-reference), else by the unified number it names (the ministry
/// echoes it) if this gateway holds that case.
async fn match_case(
    delivery: &Delivery,
    network: &str,
    e: &Event,
) -> Result<Option<String>, crate::store::StoreError> {
    if let Some(c) = delivery
        .store
        .case_for_network_number(network, &e.network_case_number)
        .await?
    {
        return Ok(Some(c));
    }
    match &e.case_number {
        Some(c) if delivery.store.case(c).await?.is_some() => Ok(Some(c.clone())),
        _ => Ok(None),
    }
}

/// An event about a case this gateway does not know.
fn unmatched(delivery: &Delivery, network: &str, e: &Event) {
    metrics::counter!("yiwang_backflow_unmatched_total", "network" => network.to_string())
        .increment(1);
    delivery.audit.record(
        Entry::new(Kind::Backflow)
            .network(network)
            .detail(serde_json::json!({
                "unmatched": true,
                "network_case_number": e.network_case_number,
                "case_number": e.case_number,
                "stage": e.stage,
            })),
    );
    tracing::debug!(network, network_case_number = %e.network_case_number, "event for a case this gateway did not deliver");
}

/// Events a network may not tell about a case: each counted; audited as a
/// violation naming the network (`yiwang audit query --kind alert
/// --network <name>`) and logged, once per case and reason for the batch
/// (an adapter that floods refused events cannot flood the trail with
/// them); never stored, never sent on.
pub(crate) fn refuse(delivery: &Delivery, network: &str, case: &str, refused: &[Refused]) {
    let mut by_reason: BTreeMap<&'static str, (Refusal, Vec<&Event>)> = BTreeMap::new();
    for r in refused {
        metrics::counter!("yiwang_backflow_refused_total", "network" => network.to_string(), "reason" => r.why.name())
            .increment(1);
        by_reason
            .entry(r.why.name())
            .or_insert_with(|| (r.why, Vec::new()))
            .1
            .push(&r.event);
    }
    for (why, events) in by_reason.into_values() {
        let first = events
            .first()
            .map(|e| (e.network_case_number.as_str(), e.stage));
        delivery
            .audit
            .record(Entry::new(Kind::Alert).network(network).case(case).detail(
                serde_json::json!({
                    "violation": why.violation(),
                    "events": events.len(),
                    "network_case_number": first.map(|f| f.0),
                    "stage": first.map(|f| f.1),
                }),
            ));
        tracing::warn!(
            network,
            case,
            violation = why.violation(),
            events = events.len(),
            network_case_number = first.map(|f| f.0).unwrap_or(""),
            "back-flow events refused: the network may not tell this about the case"
        );
    }
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
        // Abandoned by a stop, or the network is down: no more polls.
        let what = format!("poll of network {}", net.name);
        if let None | Some(None) = delivery.drain.run(what, poll_once(&delivery, &net)).await {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(interval_ms.max(100))) => {}
        }
    }
}

/// One poll: ask the adapter for new events, record them, move the
/// cursor. `None` when the network has no adapter (it is down).
async fn poll_once(delivery: &Delivery, net: &NetworkRuntime) -> Option<()> {
    let cursor = match delivery.store.cursor(&net.name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(network = %net.name, error = %e, "cannot read poll cursor");
            None
        }
    };
    // A network down (no adapter) has no poller; one starts when it comes up.
    let adapter = net.versions.current()?;
    let report = adapter.poll(cursor.clone()).await;
    delivery.after_call(&net.name, "poll", None, adapter.digest(), &report);
    match report.result {
        Ok(poll) => {
            let n = poll.events.len();
            match record_events(delivery, &net.name, poll.events).await {
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
            if e.kind() == super::outcome::LOCAL_SHORTAGE {
                metrics::counter!("yiwang_local_shortage_total", "network" => net.name.clone())
                    .increment(1);
            }
            tracing::warn!(network = %net.name, error = %e, "poll failed");
        }
    }
    Some(())
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
    let Some(adapter) = net.versions.current() else {
        let message = super::VersionError::NotLoaded(network.to_string()).to_string();
        let network = network.to_string();
        return Err(CallbackError::Adapter { network, message });
    };
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
