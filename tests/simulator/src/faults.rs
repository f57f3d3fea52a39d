//! Fault switches: the failure behaviours of real ministry networks, on demand.

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock;

/// The fault switches of one simulated network, as `GET /_sim/faults` shows them.
///
/// Counters (`*_next`) count business requests (anything not under `/_sim/`) and go down by
/// one for each request they act on. When several are set, one request consumes at most one
/// of them, in this order: `maintenance` (consumes nothing), `reset_next`, `fail_next`,
/// `garbage_next`, `reject_next`, `accept_then_timeout_next`. The `push_*` counters count
/// archetype-5 pushes instead and never act on business requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Milliseconds added before every business reply (also before a reset).
    pub latency_ms: u64,
    /// The next N business requests get `fail_status` and an HTML error page.
    pub fail_next: u32,
    /// HTTP status for `fail_next` (400–599).
    pub fail_status: u16,
    /// The next N business requests are read, then the TCP connection is reset (RST).
    pub reset_next: u32,
    /// The next N business requests are processed (a submit stores the case) but never
    /// answered: the connection is held until the client gives up or 120 s pass.
    pub accept_then_timeout_next: u32,
    /// The next N business requests get HTTP 200 with an HTML page instead of the protocol body.
    pub garbage_next: u32,
    /// While true, every business request gets 503, `Retry-After: 2` and a maintenance page.
    pub maintenance: bool,
    /// The next N business requests get a business rejection naming `reject_field`.
    pub reject_next: u32,
    /// The field named by `reject_next` rejections.
    pub reject_field: String,
    /// Archetype 5: the next N acknowledged pushes are sent once more (same push id and body,
    /// signed afresh), as a vendor does that did not see the acknowledgement.
    pub push_duplicate_next: u32,
    /// Archetype 5: the next N pushes are held back and sent right after the push queued
    /// behind them (alone after 2 s if none comes), so the receiver sees them out of order.
    pub push_reorder_next: u32,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_next: 0,
            fail_status: 503,
            reset_next: 0,
            accept_then_timeout_next: 0,
            garbage_next: 0,
            maintenance: false,
            reject_next: 0,
            reject_field: "zjhm".to_owned(),
            push_duplicate_next: 0,
            push_reorder_next: 0,
        }
    }
}

/// A partial update, the body of `POST /_sim/faults`: fields left out keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPatch {
    pub latency_ms: Option<u64>,
    pub fail_next: Option<u32>,
    pub fail_status: Option<u16>,
    pub reset_next: Option<u32>,
    pub accept_then_timeout_next: Option<u32>,
    pub garbage_next: Option<u32>,
    pub maintenance: Option<bool>,
    pub reject_next: Option<u32>,
    pub reject_field: Option<String>,
    pub push_duplicate_next: Option<u32>,
    pub push_reorder_next: Option<u32>,
}

/// What one business request suffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultAction {
    Maintenance,
    Reset,
    Fail(StatusCode),
    Garbage,
    Reject(String),
    AcceptThenTimeout,
}

/// Shared, thread-safe fault switches; the same object the HTTP control API changes.
#[derive(Debug, Default)]
pub struct Faults {
    settings: Mutex<FaultSettings>,
}

impl Faults {
    /// The current switches.
    pub fn snapshot(&self) -> FaultSettings {
        lock(&self.settings).clone()
    }

    /// Change switches in place: `sim.faults().update(|f| f.fail_next = 2)`.
    pub fn update(&self, change: impl FnOnce(&mut FaultSettings)) {
        change(&mut lock(&self.settings));
    }

    /// Apply a partial update (what `POST /_sim/faults` does) and return the result.
    pub fn apply(&self, patch: FaultPatch) -> Result<FaultSettings> {
        if let Some(status) = patch.fail_status
            && !(400..=599).contains(&status)
        {
            return Err(Error::InvalidFault {
                field: "fail_status",
                reason: format!("{status} is not an HTTP error status (400-599)"),
            });
        }
        if let Some(field) = &patch.reject_field
            && field.trim().is_empty()
        {
            return Err(Error::InvalidFault {
                field: "reject_field",
                reason: "must name a field".to_owned(),
            });
        }
        let mut s = lock(&self.settings);
        let p = patch;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = p.$f { s.$f = v; } )* };
        }
        set!(
            latency_ms,
            fail_next,
            fail_status,
            reset_next,
            accept_then_timeout_next,
            garbage_next,
            maintenance,
            reject_next,
            reject_field,
            push_duplicate_next,
            push_reorder_next
        );
        Ok(s.clone())
    }

    /// Switch every fault off.
    pub fn clear(&self) {
        *lock(&self.settings) = FaultSettings::default();
    }

    /// Decide the fate of one business request, consuming at most one counter.
    pub(crate) fn take(&self) -> (Duration, Option<FaultAction>) {
        let mut s = lock(&self.settings);
        let latency = Duration::from_millis(s.latency_ms);
        let action = if s.maintenance {
            Some(FaultAction::Maintenance)
        } else if s.reset_next > 0 {
            s.reset_next -= 1;
            Some(FaultAction::Reset)
        } else if s.fail_next > 0 {
            s.fail_next -= 1;
            let status =
                StatusCode::from_u16(s.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some(FaultAction::Fail(status))
        } else if s.garbage_next > 0 {
            s.garbage_next -= 1;
            Some(FaultAction::Garbage)
        } else if s.reject_next > 0 {
            s.reject_next -= 1;
            Some(FaultAction::Reject(s.reject_field.clone()))
        } else if s.accept_then_timeout_next > 0 {
            s.accept_then_timeout_next -= 1;
            Some(FaultAction::AcceptThenTimeout)
        } else {
            None
        };
        (latency, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_consumed_one_per_request_in_order() {
        let faults = Faults::default();
        faults.update(|f| {
            f.reset_next = 1;
            f.fail_next = 1;
            f.fail_status = 502;
        });
        assert_eq!(faults.take().1, Some(FaultAction::Reset));
        assert_eq!(
            faults.take().1,
            Some(FaultAction::Fail(StatusCode::BAD_GATEWAY))
        );
        assert_eq!(faults.take().1, None);
    }

    #[test]
    fn maintenance_consumes_no_counter() {
        let faults = Faults::default();
        faults.update(|f| {
            f.maintenance = true;
            f.garbage_next = 1;
        });
        assert_eq!(faults.take().1, Some(FaultAction::Maintenance));
        assert_eq!(faults.snapshot().garbage_next, 1);
    }

    #[test]
    fn patch_keeps_unnamed_fields_and_checks_ranges() {
        let faults = Faults::default();
        faults.update(|f| f.latency_ms = 7);
        let after = faults
            .apply(FaultPatch {
                fail_next: Some(2),
                ..FaultPatch::default()
            })
            .ok();
        assert_eq!(
            after.as_ref().map(|s| (s.latency_ms, s.fail_next)),
            Some((7, 2))
        );
        assert!(
            faults
                .apply(FaultPatch {
                    fail_status: Some(200),
                    ..FaultPatch::default()
                })
                .is_err()
        );
    }
}
