//! The delivery service over a real store, adapters isolated from each
//! other's cases and from the gateway's time:
//!
//! - back-flow confinement: an event a network's poll or callback tells
//!   about a case never routed to it is refused (record untouched, no
//!   notice queued, audited as a violation naming the network), and an
//!   event repeated with a new timestamp is stored once. The events go
//!   straight into `record_events`, the path both poll and callback take,
//!   so these tests do not depend on any adapter's behaviour;
//! - poison calls: a job whose adapter loops or hoards memory on every call
//!   is dead-lettered after `retry.limit-hits` hits, with the limit and the
//!   count, while a healthy network beside it delivers;
//! - the intake clock: a case dated ahead of the gateway's clock is refused
//!   naming the field and rule, and nothing is stored;
//! - leader leases: two replicas on one store run each singleton (deadline
//!   monitor, retention, a network's poller) on one of them at a time, and
//!   the other takes it over when the leader stops.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yiwang_gateway::config::Config;
use yiwang_gateway::delivery::backflow::record_events;
use yiwang_gateway::delivery::{Delivery, DeliveryOptions};
use yiwang_gateway::store::{CaseRecord, Destination, JobKind, JobState, SledStore, Store};
use yiwang_gateway::transport::{SendFuture, Transport, TransportError};
use yiwang_schema::{Event, Stage};

/// Nothing reaches a ministry in these tests.
struct Nowhere;

impl Transport for Nowhere {
    fn send(&self, _: yiwang_gateway::transport::OutboundRequest) -> SendFuture {
        Box::pin(async { Err(TransportError::NotSent("no network in this test".into())) })
    }
}

use yiwang_gateway::delivery::intake::IntakeError;

const TLS: &str = r#"
[gateway]
data-dir = "data"

[tls]
cert = "pki/gateway.crt"
key = "pki/gateway.key"
client-ca = ["pki/bureau-ca.crt"]
"#;

const BACKFLOW: &str = r#"
[networks.market-regulation]
adapter = "adapters/market_regulation.wasm"
endpoints = ["http://127.0.0.1:9001"]
plaintext = true

[networks.housing-construction]
adapter = "adapters/housing_construction.wasm"
endpoints = ["http://127.0.0.1:9002"]
plaintext = true

[items."SC-QYKB-001"]
route = [{ network = "market-regulation" }]

[subscribers.platform]
url = "http://127.0.0.1:9003/events"
plaintext = true
"#;

/// A delivery service (built, not started) over a fresh store in `dir`,
/// configured with `networks`.
async fn service(dir: &Path, networks: &str) -> Arc<Delivery> {
    service_in(dir, TLS, networks).await
}

/// [`service`] with its own `[gateway]` and `[tls]` tables.
async fn service_in(dir: &Path, head: &str, networks: &str) -> Arc<Delivery> {
    service_on(dir, head, networks, None).await
}

/// [`service_in`] over `store` (another replica's too) instead of its own.
async fn service_on(
    dir: &Path,
    head: &str,
    networks: &str,
    store: Option<Arc<dyn Store>>,
) -> Arc<Delivery> {
    std::fs::create_dir(dir.join("adapters")).expect("mkdir");
    for (from, to) in [
        (
            yiwang_artifacts::MARKET_REGULATION,
            "market_regulation.wasm",
        ),
        (
            yiwang_artifacts::HOUSING_CONSTRUCTION,
            "housing_construction.wasm",
        ),
        (yiwang_artifacts::HOSTILE_ADAPTER, "hostile.wasm"),
    ] {
        std::fs::copy(from, dir.join("adapters").join(to)).expect("copy adapter");
    }
    yiwang_pki::Pki::generate(
        &dir.join("pki"),
        &["market-regulation", "housing-construction"],
    )
    .expect("pki");
    let publisher = crate::publish::Publisher::in_dir(dir);
    let trust = crate::publish::TRUST;
    std::fs::write(dir.join("yiwang.toml"), format!("{head}{trust}{networks}"))
        .expect("write config");
    let config = Config::load(&dir.join("yiwang.toml")).unwrap_or_else(|e| panic!("{e}"));
    crate::publish::sign_networks(&publisher, &config).await;
    let store: Arc<dyn Store> = store.unwrap_or_else(|| {
        Arc::new(SledStore::open(&config.data_dir().join("store")).expect("store"))
    });
    let options = DeliveryOptions {
        runtime: None,
        transport: Some(Arc::new(Nowhere)),
    };
    Delivery::build(&config, store, options)
        .await
        .expect("build")
}

/// Store case `case` with one submit job to `network`.
async fn case_for(delivery: &Delivery, case: &str, network: &str) {
    let mut record = CaseRecord::blank(case);
    record.item = "SC-QYKB-001".into();
    let submit = JobKind::Submit {
        after: Vec::new(),
        inputs: Default::default(),
    };
    let now = yiwang_gateway::store::now_millis();
    record.push_job(Destination::Network(network.into()), submit, now);
    delivery
        .store
        .update(case, &mut |_| Some(record.clone()))
        .await
        .expect("store the case");
}

/// The backflow service with case C-100 routed to market regulation only.
async fn backflow_service(dir: &Path) -> Arc<Delivery> {
    let delivery = service(dir, BACKFLOW).await;
    case_for(&delivery, "C-100", "market-regulation").await;
    delivery
}

fn event(network_case_number: &str, at: &str) -> Event {
    Event {
        case_number: Some("C-100".into()),
        network: "market-regulation".into(),
        network_case_number: network_case_number.into(),
        stage: Stage::Completed,
        at: chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339"),
        details: yiwang_schema::EventDetails {
            certificate_number: Some("FORGED-CERT".into()),
            decision: Some(yiwang_schema::Decision::Denied),
            ..Default::default()
        },
        raw_ref: None,
    }
}

async fn record(delivery: &Delivery) -> CaseRecord {
    case(delivery, "C-100").await
}

async fn case(delivery: &Delivery, case: &str) -> CaseRecord {
    delivery
        .store
        .case(case)
        .await
        .expect("read")
        .expect("the case")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cannot_tell_about_a_case_never_routed_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivery = backflow_service(dir.path()).await;
    let before = record(&delivery).await;
    let mut second = event("HC-1", "2026-11-20T09:40:00+08:00");
    second.stage = Stage::Decided;
    let fresh = record_events(
        &delivery,
        "housing-construction",
        vec![event("HC-1", "2026-11-20T09:30:00+08:00"), second],
    )
    .await
    .expect("record");
    assert_eq!(fresh, 0);
    let after = record(&delivery).await;
    assert_eq!(after, before, "the record is untouched");
    assert!(
        !after
            .jobs
            .iter()
            .any(|j| matches!(j.destination, Destination::Subscriber(_))),
        "no notice queued"
    );
    // Audited as a violation naming the network (`yiwang audit query
    // --kind alert --network housing-construction`).
    delivery.audit.checkpoint().await.expect("checkpoint");
    let query = yiwang_audit::Query {
        kind: Some(yiwang_audit::Kind::Alert),
        network: Some("housing-construction".into()),
        ..Default::default()
    };
    let found: Vec<_> = yiwang_audit::query(delivery.audit.dir(), &query)
        .filter_map(Result::ok)
        .collect();
    assert_eq!(found.len(), 1, "one record for the batch: {found:?}");
    assert_eq!(found[0].detail["events"], 2);
    assert_eq!(found[0].detail["violation"], "backflow_other_case");
    assert_eq!(found[0].detail["network_case_number"], "HC-1");
    assert_eq!(found[0].case.as_deref(), Some("C-100"));

    // The network it was routed to may tell, and a notice goes out.
    let fresh = record_events(
        &delivery,
        "market-regulation",
        vec![event("MR-1", "2026-11-20T09:30:00+08:00")],
    )
    .await
    .expect("record");
    assert_eq!(fresh, 1);
    let after = record(&delivery).await;
    assert_eq!(after.networks["market-regulation"].events.len(), 1);
    assert!(!after.networks.contains_key("housing-construction"));
    assert!(
        after
            .jobs
            .iter()
            .any(|j| matches!(j.destination, Destination::Subscriber(_))),
        "the platform hears of the real event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_told_again_with_a_new_time_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivery = backflow_service(dir.path()).await;
    let first = record_events(
        &delivery,
        "market-regulation",
        vec![event("MR-1", "2026-11-20T09:30:00+08:00")],
    )
    .await
    .expect("record");
    assert_eq!(first, 1);
    let once = record(&delivery).await;
    for at in ["2026-11-20T09:31:00+08:00", "2026-11-21T10:00:00+08:00"] {
        let again = record_events(&delivery, "market-regulation", vec![event("MR-1", at)])
            .await
            .expect("record");
        assert_eq!(again, 0, "{at}");
    }
    assert_eq!(record(&delivery).await, once, "nothing stored, no notice");
    // Once the network's number is known, another number is refused.
    let other = record_events(
        &delivery,
        "market-regulation",
        vec![event("MR-2", "2026-11-22T09:30:00+08:00")],
    )
    .await
    .expect("record");
    assert_eq!(other, 0);
    assert_eq!(record(&delivery).await, once);
}

/// Networks of the hostile adapter: two poison ones (a loop, a memory
/// hoard) and a healthy one beside them.
const POISON: &str = r#"
[networks.spinner]
adapter = "adapters/hostile.wasm"
adapter-signature = "adapters/hostile.spinner.sig"
endpoints = ["http://127.0.0.1:9001"]
plaintext = true
adapter-config = { mode = "loop" }
limits = { cpu-time-ms = 50, wall-time-ms = 5000 }
retry = { initial-ms = 1, max-interval-ms = 20, limit-hits = 3 }

[networks.hoarder]
adapter = "adapters/hostile.wasm"
adapter-signature = "adapters/hostile.hoarder.sig"
endpoints = ["http://127.0.0.1:9002"]
plaintext = true
adapter-config = { mode = "memory" }
limits = { memory-bytes = 16777216 }
retry = { initial-ms = 1, max-interval-ms = 20, limit-hits = 2 }

[networks.healthy]
adapter = "adapters/hostile.wasm"
adapter-signature = "adapters/hostile.healthy.sig"
endpoints = ["http://127.0.0.1:9003"]
plaintext = true
adapter-config = { mode = "echo" }
"#;

/// Wait (bounded, not measured) until `case`'s first job is finished.
async fn finished(delivery: &Delivery, name: &str) -> yiwang_gateway::store::Job {
    for _ in 0..600 {
        let r = case(delivery, name).await;
        if r.jobs[0].state.is_finished() {
            return r.jobs[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name}: the job never finished: {:?}",
        case(delivery, name).await.jobs[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_call_is_dead_lettered_after_its_limit_hits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivery = service(dir.path(), POISON).await;
    for (case, network) in [
        ("C-SPIN", "spinner"),
        ("C-HOARD", "hoarder"),
        ("C-OK", "healthy"),
    ] {
        case_for(&delivery, case, network).await;
    }
    delivery.start().await.expect("start");
    for (case, limit, hits) in [
        ("C-SPIN", "limit_cpu_time", 3),
        ("C-HOARD", "limit_memory", 2),
    ] {
        let job = finished(&delivery, case).await;
        let JobState::Dead { reason, .. } = &job.state else {
            panic!("{case}: dead, not {:?}", job.state)
        };
        assert!(
            reason.starts_with(&format!("adapter hit a sandbox limit {hits} times")),
            "{case}: {reason}"
        );
        assert!(
            reason.contains(&format!("last: {limit}")),
            "{case}: {reason}"
        );
        assert_eq!(job.attempts.len(), hits, "{case}: one attempt per hit");
        assert!(
            job.attempts
                .iter()
                .all(|a| a.kind.as_deref() == Some(limit)),
            "{case}: {:?}",
            job.attempts
        );
    }
    let healthy = finished(&delivery, "C-OK").await;
    assert!(
        matches!(healthy.state, JobState::Delivered { .. }),
        "the healthy neighbour delivers: {:?}",
        healthy.state
    );
    delivery.stop();
    delivery.stopped().await;
}

/// A network whose adapter writes a sensitive config value (read from a
/// file) into its log, a request URL and its rejection.
const LEAKY: &str = r#"
[networks.leaky]
adapter = "adapters/hostile.wasm"
adapter-signature = "adapters/hostile.leaky.sig"
endpoints = ["http://127.0.0.1:9004"]
plaintext = true
adapter-config = { mode = "leak-config", api-token = { file = "token.txt" } }
"#;

/// The dead letter (what the admin API and the case view show) names the
/// rejection with the value redacted, and no file the gateway wrote — its
/// store, its audit trail — holds the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_config_value_reaches_no_dead_letter_audit_record_or_store() {
    const TOKEN: &str = "TOKEN-5f2a9c";
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token.txt"), format!("{TOKEN}\n")).expect("token");
    let delivery = service(dir.path(), LEAKY).await;
    case_for(&delivery, "C-LEAK", "leaky").await;
    delivery.start().await.expect("start");
    let job = finished(&delivery, "C-LEAK").await;
    let JobState::Dead { reason, .. } = &job.state else {
        panic!("dead, not {:?}", job.state)
    };
    assert!(
        reason.contains("token [redacted:api-token] refused"),
        "{reason}"
    );
    delivery.stop();
    delivery.stopped().await;
    let mut files = vec![dir.path().to_path_buf()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for e in std::fs::read_dir(&path).expect("read dir") {
                files.push(e.expect("entry").path());
            }
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "token.txt" {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "{} holds the sensitive value",
            path.display()
        );
        scanned += 1;
    }
    assert!(scanned > 5, "the store and the audit trail were scanned");
}

/// The enterprise example case (item SC-QYKB-001, routed by `BACKFLOW`).
const ENTERPRISE: &str =
    include_str!("../../../adapters-sdk/schema/testdata/enterprise-establishment.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_dated_ahead_of_the_gateway_clock_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivery = service(dir.path(), BACKFLOW).await;
    let mut case: yiwang_schema::Case = serde_json::from_str(ENTERPRISE).expect("the example");
    case.accepted_at = None;
    let ahead = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    case.submitted_at = ahead.with_timezone(&yiwang_schema::BEIJING);
    match delivery.accept(case.clone(), "bureau").await {
        Err(yiwang_gateway::delivery::intake::IntakeError::Invalid(e)) => assert!(
            e.contains("/submitted_at", yiwang_schema::rule::TIMESTAMP_RANGE),
            "{e}"
        ),
        other => panic!("expected a timestamp_range refusal, got {other:?}"),
    }
    let stored = delivery.store.case(&case.case_number).await.expect("read");
    assert!(stored.is_none(), "a refused case is not stored");
    // The same case dated now is accepted.
    case.submitted_at = chrono::Utc::now().with_timezone(&yiwang_schema::BEIJING);
    delivery
        .accept(case.clone(), "bureau")
        .await
        .expect("accepted");
    let stored = delivery.store.case(&case.case_number).await.expect("read");
    assert!(stored.is_some(), "an accepted case is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_narrows_the_time_window_by_its_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = TLS.replace(
        "data-dir = \"data\"",
        "data-dir = \"data\"\nearliest-case-time = \"2026-01-01T00:00:00+08:00\"\n\
         max-clock-ahead-s = 0",
    );
    let delivery = service_in(dir.path(), &head, BACKFLOW).await;
    let mut case: yiwang_schema::Case = serde_json::from_str(ENTERPRISE).expect("the example");
    case.accepted_at = None;
    let refused = |e: &yiwang_schema::ValidationErrors, says: &str| {
        e.contains("/submitted_at", yiwang_schema::rule::TIMESTAMP_RANGE)
            && e.to_string().contains(says)
    };
    // Before the configured earliest time (the schema alone allows 2025).
    case.submitted_at =
        chrono::DateTime::parse_from_rfc3339("2025-12-31T23:59:59+08:00").expect("time");
    match delivery.accept(case.clone(), "bureau").await {
        Err(IntakeError::Invalid(e)) => assert!(refused(&e, "2026-01-01T00:00:00+08:00"), "{e}"),
        other => panic!("expected a timestamp_range refusal, got {other:?}"),
    }
    // A minute ahead: the default 300 s would allow it, 0 does not.
    case.submitted_at = (chrono::Utc::now() + chrono::TimeDelta::seconds(60))
        .with_timezone(&yiwang_schema::BEIJING);
    match delivery.accept(case.clone(), "bureau").await {
        Err(IntakeError::Invalid(e)) => assert!(refused(&e, "at most 0 s allowed"), "{e}"),
        other => panic!("expected a timestamp_range refusal, got {other:?}"),
    }
    assert!(
        delivery
            .store
            .case(&case.case_number)
            .await
            .expect("read")
            .is_none()
    );
    delivery.stop();
    delivery.stopped().await;
}

/// Who leads `task` now, asked until `want` answers or a minute passes.
async fn leader_becomes(store: &dyn Store, task: &str, want: &str) {
    for _ in 0..600 {
        let now = yiwang_gateway::store::now_millis();
        let held = store.leader(task, now).await.expect("leader");
        if held.as_ref().is_some_and(|l| l.owner == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{task} never came to {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn singletons_run_on_one_replica_and_pass_on_when_it_stops() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared: Arc<dyn Store> =
        Arc::new(SledStore::open(&a_dir.path().join("shared-store")).expect("store"));
    let head = |id: &str| {
        TLS.replace(
            "data-dir = \"data\"",
            &format!("data-dir = \"data\"\nreplica-id = \"{id}\"\nlease-ms = 3000"),
        )
    };
    let polled = BACKFLOW.replace(
        "endpoints = [\"http://127.0.0.1:9001\"]",
        "endpoints = [\"http://127.0.0.1:9001\"]\npoll-interval-ms = 60000",
    );
    let tasks = ["deadlines", "retention", "poll:market-regulation"];
    let a = service_on(a_dir.path(), &head("gw-a"), &polled, Some(shared.clone())).await;
    a.start().await.expect("start a");
    for task in tasks {
        leader_becomes(&*shared, task, "gw-a").await;
    }
    let b = service_on(b_dir.path(), &head("gw-b"), &polled, Some(shared.clone())).await;
    b.start().await.expect("start b");
    // Two of b's beats (a third of lease-ms each): it asks, and is refused.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let now = yiwang_gateway::store::now_millis();
    for task in tasks {
        let held = shared.leader(task, now).await.expect("leader");
        assert_eq!(
            held.map(|l| l.owner).as_deref(),
            Some("gw-a"),
            "{task} stays with its leader"
        );
    }
    a.stop();
    a.stopped().await;
    for task in tasks {
        leader_becomes(&*shared, task, "gw-b").await;
    }
    b.stop();
    b.stopped().await;
    let now = yiwang_gateway::store::now_millis();
    for task in tasks {
        assert!(
            shared.leader(task, now).await.expect("leader").is_none(),
            "{task} given up at the stop"
        );
    }
}
