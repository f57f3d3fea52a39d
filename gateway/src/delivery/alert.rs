//! Alerts hold a destination's queue. A TLS alert: its TLS peer was refused
//! (bad or expired certificate, pin mismatch, or it refused our client
//! certificate); it holds until the trust material changes or an operator
//! resumes it, so nothing is retried silently against a peer that failed
//! verification. An adapter alert: the network's configured adapter failed
//! to load at start; it holds until an installed version or a reload on
//! resume gives the network an adapter, while intake keeps queueing its cases.
//! A field-mapping alert: the adapter maps form fields an item routed to it
//! does not declare (checked at start); it holds until an operator resumes.

use crate::store::{Destination, Millis, now_millis};
pub use crate::wire::AlertCause;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use yiwang_audit::{AuditLog, Entry, Kind};

/// Why and since when a destination is held.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    pub reason: String,
    pub since: Millis,
    pub cause: AlertCause,
}

/// The destinations in alert, by destination key. Raising and lifting show
/// in `yiwang_destination_alert`, the log and the audit trail.
pub struct Alerts {
    by_key: Mutex<BTreeMap<String, Alert>>,
    audit: Arc<AuditLog>,
}

impl Alerts {
    pub fn new(audit: Arc<AuditLog>) -> Alerts {
        Alerts {
            by_key: Mutex::new(BTreeMap::new()),
            audit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Alert>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The alert a destination is in, if any.
    pub fn get(&self, destination: &Destination) -> Option<Alert> {
        self.lock().get(&destination.key()).cloned()
    }

    /// What holds a destination (by destination key), if anything.
    pub fn cause_of(&self, key: &str) -> Option<AlertCause> {
        self.lock().get(key).map(|a| a.cause)
    }

    /// Put a destination into TLS alert (a second raise keeps the first reason).
    pub fn raise(&self, destination: &Destination, reason: &str) {
        let key = destination.key();
        let fresh = {
            let mut alerts = self.lock();
            let fresh = !alerts.contains_key(&key);
            alerts.entry(key.clone()).or_insert_with(|| Alert {
                reason: reason.to_string(),
                since: now_millis(),
                cause: AlertCause::Tls,
            });
            fresh
        };
        if fresh {
            tracing::error!(destination = %key, %reason, "TLS alert: the queue holds until the trust material is fixed");
            self.raised(destination, reason, AlertCause::Tls);
        }
    }

    /// Put a network into adapter alert: its adapter failed to load. A
    /// later failure (a resume that retried the load) replaces the reason.
    pub fn raise_adapter_down(&self, network: &str, reason: &str) {
        let destination = Destination::Network(network.to_string());
        {
            let mut alerts = self.lock();
            let since = alerts
                .get(&destination.key())
                .filter(|a| a.cause == AlertCause::AdapterLoad)
                .map_or_else(now_millis, |a| a.since);
            let cause = AlertCause::AdapterLoad;
            let reason = reason.to_string();
            alerts.insert(
                destination.key(),
                Alert {
                    reason,
                    since,
                    cause,
                },
            );
        }
        tracing::error!(%network, %reason, "network down: its adapter failed to load; its queue holds until a working adapter is installed or a resume loads it");
        metrics::counter!("yiwang_adapter_load_failures_total", "network" => network.to_string())
            .increment(1);
        self.raised(&destination, reason, AlertCause::AdapterLoad);
    }

    /// Put a network into field-mapping alert: its adapter reads form
    /// fields an item routed to it does not declare (see
    /// [`crate::forms::mapping`]). Held until an operator resumes it.
    pub fn raise_field_mapping(&self, network: &str, reason: &str) {
        let destination = Destination::Network(network.to_string());
        let alert = Alert {
            reason: reason.to_string(),
            since: now_millis(),
            cause: AlertCause::FieldMapping,
        };
        self.lock().insert(destination.key(), alert);
        tracing::error!(%network, %reason, "network held: its adapter's field mapping does not fit the item forms; its queue holds until an operator resumes it");
        self.raised(&destination, reason, AlertCause::FieldMapping);
    }

    /// Metric and audit record of a raised alert.
    fn raised(&self, destination: &Destination, reason: &str, cause: AlertCause) {
        let key = destination.key();
        metrics::gauge!("yiwang_destination_alert", "destination" => key.clone()).set(1.0);
        let mut entry = Entry::new(Kind::Alert)
            .detail(serde_json::json!({ "destination": key, "raised": reason, "cause": cause }));
        if let Destination::Network(n) = destination {
            entry = entry.network(n.as_str());
        }
        self.audit.record(entry);
    }

    /// Lift a destination's alert (by destination key); the alert it was in.
    /// The caller wakes its dispatcher.
    pub fn lift(&self, key: &str, why: &str) -> Option<Alert> {
        let lifted = self.lock().remove(key);
        if let Some(a) = &lifted {
            tracing::warn!(destination = %key, reason = %a.reason, cause = ?a.cause, %why, "alert lifted");
            metrics::gauge!("yiwang_destination_alert", "destination" => key.to_string()).set(0.0);
            self.audit
                .record(Entry::new(Kind::Alert).detail(serde_json::json!({
                    "destination": key, "lifted": why, "was": a.reason,
                })));
        }
        lifted
    }
}
