//! A graceful stop under load: the calls in progress settle before the
//! audit trail closes, so every attempt has its adapter-call and outbound
//! records and none is dropped; a call that outlives `shutdown-grace-ms`
//! is abandoned, named in one `admin` record, and verified at the next
//! start, so its case is delivered exactly once.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use yiwang_audit::{AuditLog, Kind, Query, Record};
use yiwang_e2e::{Client, LISTENERS, NetworkSpec, World, delivery_state, permit_case, until};
use yiwang_gateway::store::Store;

const MR: &str = "market-regulation";
const WAIT: Duration = Duration::from_secs(60);

/// One network, no poller (its calls would share the trail with the
/// attempts under test), answering every business request after `latency_ms`;
/// the stop waits at most `grace_ms`.
async fn world(latency_ms: u64, grace_ms: u64) -> Result<(World, Client)> {
    let mr = NetworkSpec {
        poll_interval_ms: None,
        ..NetworkSpec::market_regulation(MR)
    };
    let items = format!("[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}]\n");
    let mut w = World::prepare(vec![mr], &items, "", LISTENERS).await?;
    let text = std::fs::read_to_string(&w.config_path)?.replacen(
        "data-dir = \"data\"\n",
        &format!("data-dir = \"data\"\nshutdown-grace-ms = {grace_ms}\n"),
        1,
    );
    std::fs::write(&w.config_path, text)?;
    w.sim(MR).faults().update(|f| f.latency_ms = latency_ms);
    let c = w.start_gateway().await?;
    Ok((w, c))
}

/// Submit `cases` and wait until an attempt of one of them is in flight;
/// the audit log and the store, to read after the stop.
async fn load(w: &World, c: &Client, cases: &[String]) -> Result<(Arc<AuditLog>, Arc<dyn Store>)> {
    for n in cases {
        let (status, body) = c.post("/v1/cases", &permit_case(n)?).await?;
        anyhow::ensure!(status == 202, "{n}: {status} {body}");
    }
    let delivery = &w.gateway.as_ref().context("gateway")?.delivery;
    let store = delivery.store.clone();
    until(WAIT, "an attempt in flight", || {
        let store = store.clone();
        async move { store.in_flight().await.ok().filter(|f| !f.is_empty()) }
    })
    .await?;
    Ok((delivery.audit.clone(), store))
}

fn records(w: &World, kind: Kind, case: Option<&str>) -> Vec<Record> {
    let q = Query {
        kind: Some(kind),
        case: case.map(str::to_string),
        ..Default::default()
    };
    yiwang_audit::query(&w.audit_dir(), &q)
        .filter_map(|r| r.ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_under_load_drains_every_call_and_drops_no_record() -> Result<()> {
    let (mut w, c) = world(400, 60_000).await?;
    let cases: Vec<String> = (1..=12).map(|i| format!("DRAIN-{i:04}")).collect();
    let (audit, store) = load(&w, &c, &cases).await?;
    w.stop_gateway().await;

    assert_eq!(audit.stats().write_failures, 0, "audit records dropped");
    let left = store.in_flight().await?;
    assert!(left.is_empty(), "attempts left unsettled: {left:?}");
    let report = yiwang_audit::verify(&w.audit_dir(), None)?;
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(
        records(&w, Kind::Admin, None)
            .iter()
            .all(|r| r.detail["action"] != "shutdown-abandoned"),
        "nothing outlived the grace"
    );
    let mut attempted = 0;
    for n in &cases {
        let record = store.case(n).await?.context("case stored")?;
        let attempts: usize = record.jobs.iter().map(|j| j.attempts.len()).sum();
        let calls = records(&w, Kind::AdapterCall, Some(n)).len();
        let outbound = records(&w, Kind::Outbound, Some(n)).len();
        assert_eq!(calls, attempts, "{n}: one adapter-call record per attempt");
        assert!(
            outbound >= calls,
            "{n}: {outbound} outbound for {calls} calls"
        );
        attempted += attempts;
    }
    assert!(attempted > 0, "the stop found attempts to drain");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outliving_the_grace_is_abandoned_audited_and_verified_at_restart() -> Result<()> {
    let (mut w, c) = world(600_000, 200).await?;
    let case = "GRACE-0001".to_string();
    let (audit, store) = load(&w, &c, std::slice::from_ref(&case)).await?;
    w.stop_gateway().await;

    assert_eq!(audit.stats().write_failures, 0, "audit records dropped");
    let abandoned: Vec<Record> = records(&w, Kind::Admin, None)
        .into_iter()
        .filter(|r| r.detail["action"] == "shutdown-abandoned")
        .collect();
    assert_eq!(abandoned.len(), 1, "one record of what the stop abandoned");
    let detail = &abandoned[0].detail;
    assert_eq!(detail["grace_ms"], 200);
    let names = detail["calls"].to_string();
    assert!(names.contains(&case), "the record names the job: {detail}");

    // Next start: the attempt left in flight is verified, then delivered once.
    // (On the same store: sled's lock is the process's, not the gateway's.)
    w.sim(MR).faults().update(|f| f.latency_ms = 0);
    drop(audit);
    let loaded =
        yiwang_gateway::config::Config::load(&w.config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let options = yiwang_gateway::delivery::DeliveryOptions::default();
    let gw = yiwang_gateway::serve::Gateway::start_with_store(&loaded, store, options).await?;
    w.gateway = Some(gw);
    let c = w.intake_as(&w.pki.bureau_fuzhou)?;
    c.wait_case(&case, WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    let held: Vec<_> = w.sim(MR).cases();
    assert_eq!(held.len(), 1, "the ministry holds the case once");
    assert_eq!(held[0].submissions, 1, "submitted exactly once");
    w.stop_gateway().await;
    Ok(())
}
