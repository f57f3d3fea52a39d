//! Helpers for testing one adapter against its live simulator (no gateway):
//! load it, read call reports, and the lost-reply scenario every adapter
//! must settle the same way.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use yiwang_gateway::runtime::{
    AdapterError, CallError, CallReport, ErrorClass, LoadedAdapter, NormalizedReceipt, Runtime,
    RuntimeConfig, Services,
};
use yiwang_gateway::transport::HttpTransport;
use yiwang_schema::{Event, Stage};
use yiwang_simulator::{SimCase, SimConfig, Simulator};

/// A small runtime for one test.
pub fn runtime() -> Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig {
        max_instances: Some(8),
        ..RuntimeConfig::default()
    })?)
}

/// A simulator that only moves when the test says so.
pub async fn simulator(cfg: SimConfig) -> Result<Simulator> {
    Simulator::start(
        cfg.with_stage_interval(Duration::ZERO),
        "127.0.0.1:0".parse()?,
    )
    .await
}

/// Real HTTP, an in-memory kv, the system clock.
pub fn services() -> Services {
    Services::new(Arc::new(HttpTransport::default()))
}

/// The call's value; fails the test with `what` if it failed.
pub fn ok<T>(report: CallReport<T>, what: &str) -> Result<T> {
    report
        .result
        .map_err(|e| anyhow::anyhow!("{what} failed: {e}"))
}

/// The call's error and its class; fails the test if the call succeeded.
pub fn failure<T: std::fmt::Debug>(
    report: CallReport<T>,
    what: &str,
) -> Result<(CallError, ErrorClass)> {
    let class = report.error_class();
    match (report.result, class) {
        (Err(e), Some(class)) => Ok((e, class)),
        (other, _) => bail!("{what} should have failed, got {other:?}"),
    }
}

pub fn stages(events: &[Event]) -> Vec<Stage> {
    events.iter().map(|e| e.stage).collect()
}

/// A stored field of one simulator case.
pub fn field(sim: &Simulator, number: &str, name: &str) -> Option<Value> {
    sim.case(number).and_then(|c| c.fields.get(name).cloned())
}

/// What [`lost_replies_are_settled_by_idem`] leaves for the caller to check.
#[derive(Debug)]
pub struct Settled {
    /// `query-status("idem:K-HELD")` after the held submit.
    pub found: Vec<Event>,
    /// The case the held submit created in the simulator.
    pub stored: SimCase,
    /// The resend with the same key.
    pub resent: NormalizedReceipt,
}

/// The failure classes every adapter promises for its submit, caused in
/// its simulator: maintenance is retryable (Retry-After 2 s); an HTML page
/// or a reset after reading is ambiguous, and `idem:` then finds nothing;
/// a held reply after storing is ambiguous, `idem:` finds the case, and the
/// resend with the same key lands on it. `submit(key)` submits with key `key`.
pub async fn lost_replies_are_settled_by_idem<F, Fut>(
    sim: &Simulator,
    adapter: &LoadedAdapter,
    submit: F,
) -> Result<Settled>
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = CallReport<NormalizedReceipt>>,
{
    sim.faults().update(|f| f.maintenance = true);
    let (err, class) = failure(submit("K-MAINT").await, "submit in maintenance")?;
    assert_eq!(class, ErrorClass::Retryable);
    assert!(
        matches!(&err, CallError::Adapter(AdapterError::Retryable(r)) if r.retry_after_ms == Some(2000)),
        "{err}"
    );
    sim.faults().update(|f| f.maintenance = false);

    sim.faults().update(|f| f.garbage_next = 1);
    let (_, class) = failure(submit("K-GARBAGE").await, "submit answered with HTML")?;
    assert_eq!(class, ErrorClass::Ambiguous);

    // Reset after reading: nothing stored, and the idem: lookup says so.
    sim.faults().update(|f| f.reset_next = 1);
    let (_, class) = failure(submit("K-RESET").await, "reset submit")?;
    assert_eq!(class, ErrorClass::Ambiguous);
    let none = ok(
        adapter.query_status(None, "idem:K-RESET").await,
        "idem query after reset",
    )?;
    assert!(none.is_empty(), "{none:?}");

    // Stored but never answered: the idem: lookup finds the case and its number, and
    // the resend with the same key lands on the same case.
    sim.faults().update(|f| f.accept_then_timeout_next = 1);
    let (_, class) = failure(submit("K-HELD").await, "held submit")?;
    assert_eq!(class, ErrorClass::Ambiguous);
    let found = ok(
        adapter.query_status(None, "idem:K-HELD").await,
        "idem query after timeout",
    )?;
    let stored = sim
        .cases()
        .into_iter()
        .find(|c| c.idempotency_key == "K-HELD")
        .context("K-HELD stored")?;
    assert_eq!(
        found.first().map(|e| e.network_case_number.as_str()),
        Some(stored.ministry_case_number.as_str())
    );
    let resent = ok(submit("K-HELD").await, "resend")?;
    assert_eq!(resent.network_case_number, stored.ministry_case_number);
    Ok(Settled {
        found,
        stored,
        resent,
    })
}
