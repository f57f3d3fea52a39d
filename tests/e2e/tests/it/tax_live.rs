//! The tax adapter against a live signed open-API simulator (archetype 3): every request is
//! signed by the host with a secret the adapter never sees, the licence number chained from
//! market regulation arrives as `yyzzbh`, resubmits are idempotent, statuses and the change
//! feed come back as normalized events, and every signing and transport failure lands in the
//! class the README promises.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use yiwang_e2e::live::{
    Settled, failure, field, lost_replies_are_settled_by_idem, ok, runtime, services, simulator,
    stages,
};
use yiwang_gateway::runtime::{
    AdapterError, CallError, CallReport, CaseChange, ErrorClass, FixedClock, LoadedAdapter,
    MemoryKv, NetworkSandbox, Runtime, Services, Submission, SystemRandom,
};
use yiwang_gateway::transport::HttpTransport;
use yiwang_schema::{Decision, Stage};
use yiwang_simulator::{SimConfig, Simulator};

const TAX: &str = "tax";
const CASE_NUMBER: &str = "FZGL-2026-001234";
const LICENCE: &str = "SCJGZZ00000001";

/// Real HTTP and a fresh kv, with the host clock frozen at `now_ms`.
fn services_at(now_ms: i64) -> Services {
    Services {
        transport: Arc::new(HttpTransport::default()),
        kv: Arc::new(MemoryKv::default()),
        clock: Arc::new(FixedClock(now_ms)),
        keep_bodies: false,
        random: Arc::new(SystemRandom),
    }
}

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

/// The tax adapter for `sim`, configured with `app_key` and signing with `secret`.
async fn load_with(
    rt: &Runtime,
    sim: &Simulator,
    app_key: Option<&str>,
    secret: &str,
    services: Services,
) -> Result<LoadedAdapter> {
    let mut sandbox = NetworkSandbox::new(TAX, vec![sim.base_url().parse()?]);
    if let Some(key) = app_key {
        sandbox.config.insert("app-key".into(), key.into());
    }
    sandbox.secrets.insert("app-secret".into(), secret.into());
    // The held-connection fault waits for the client to give up.
    sandbox.limits.send_timeout = Duration::from_millis(1500);
    Ok(rt
        .load(
            &yiwang_artifacts::read(yiwang_artifacts::TAX),
            sandbox,
            services,
        )
        .await?)
}

/// With the simulator's own app key and secret.
async fn load(rt: &Runtime, sim: &Simulator, services: Services) -> Result<LoadedAdapter> {
    let cfg = sim.config();
    load_with(rt, sim, Some(&cfg.app_key), &cfg.app_secret, services).await
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn enterprise_case() -> Result<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    read(&root.join("adapters-sdk/schema/testdata/enterprise-establishment.json"))
}

fn submission(case_json: &str, key: &str, licence: Option<&str>) -> Submission {
    Submission {
        case_json: case_json.to_owned(),
        idempotency_key: key.to_owned(),
        inputs: licence
            .map(|l| vec![("licence-number".to_owned(), l.to_owned())])
            .unwrap_or_default(),
    }
}

/// Submits the enterprise case with the licence number input.
async fn submit_to(
    adapter: &LoadedAdapter,
    case: &str,
    key: &str,
) -> CallReport<yiwang_gateway::runtime::NormalizedReceipt> {
    adapter
        .submit(CASE_NUMBER, submission(case, key, Some(LICENCE)))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tax_delivers_tracks_and_polls_a_signed_case() -> Result<()> {
    let sim = simulator(SimConfig::signed_api(TAX)).await?;
    let rt = runtime()?;
    let svc = services();
    let adapter = load(&rt, &sim, svc.clone()).await?;
    assert_eq!(adapter.descriptor().network_kind, "signed-open-api");
    let case = enterprise_case()?;

    let receipt = ok(
        adapter
            .submit(CASE_NUMBER, submission(&case, "K-SW-1", Some(LICENCE)))
            .await,
        "submit",
    )?;
    let number = receipt.network_case_number.clone();
    assert!(number.starts_with("SW"), "{number}");
    assert_eq!(stages(&receipt.events), [Stage::Received]);
    assert_eq!(field(&sim, &number, "qqlsh"), Some("K-SW-1".into()));
    assert_eq!(field(&sim, &number, "yyzzbh"), Some(LICENCE.into()));
    assert_eq!(
        field(&sim, &number, "nsrmc"),
        Some("福州闽江数字科技有限公司".into())
    );
    assert_eq!(field(&sim, &number, "nsrlx"), Some("10".into()));
    assert_eq!(field(&sim, &number, "zjlx"), Some("101".into()));
    assert_eq!(
        field(&sim, &number, "nsrsbh"),
        Some("91350102MA2Y7K3Q67".into())
    );
    // 2026-11-20T09:30:00+08:00 in epoch milliseconds, as a JSON number.
    assert_eq!(
        field(&sim, &number, "sqsj"),
        Some(1_795_138_200_000_i64.into())
    );
    assert!(
        svc.kv.get(TAX, "nonce-seq").is_some(),
        "the nonce counter is kept"
    );

    // A retry of the same delivery: same number, still one case.
    let again = ok(
        adapter
            .submit(CASE_NUMBER, submission(&case, "K-SW-1", Some(LICENCE)))
            .await,
        "resubmit",
    )?;
    assert_eq!(again.network_case_number, number);
    assert_eq!(again.events[0].at, receipt.events[0].at);
    assert_eq!(sim.cases().len(), 1);
    assert_eq!(sim.cases()[0].submissions, 2);

    for _ in 0..3 {
        sim.advance(&number).context("advance")?;
    }
    let events = ok(
        adapter.query_status(Some(CASE_NUMBER), &number).await,
        "query",
    )?;
    assert_eq!(
        stages(&events),
        [
            Stage::Received,
            Stage::Accepted,
            Stage::UnderReview,
            Stage::Completed
        ]
    );
    for e in &events {
        assert_eq!(*e.at.offset(), yiwang_schema::BEIJING, "{e:?}");
    }
    let done = events.last().context("events")?;
    assert_eq!(done.details.decision, Some(Decision::Approved));
    assert_eq!(done.details.reason.as_deref(), Some("准予登记"));
    let certificate = sim
        .case(&number)
        .and_then(|c| c.certificate_number)
        .context("tax registration number issued")?;
    assert_eq!(
        done.details.certificate_number.as_deref(),
        Some(certificate.as_str())
    );
    assert_eq!(events[0].at, receipt.events[0].at);

    // By idempotency key: the same history, with the real number.
    let by_key = ok(adapter.query_status(None, "idem:K-SW-1").await, "idem")?;
    assert_eq!(stages(&by_key), stages(&events));
    assert_eq!(by_key[0].network_case_number, number);

    // The change feed tells the same story; a second poll from its cursor is empty.
    let polled = ok(adapter.poll(None).await, "poll")?;
    assert_eq!(stages(&polled.events), stages(&events));
    let cursor = polled.next_cursor.context("cursor")?;
    let idle = ok(adapter.poll(Some(cursor.clone())).await, "poll again")?;
    assert!(idle.events.is_empty(), "{:?}", idle.events);
    assert_eq!(idle.next_cursor, Some(cursor.clone()));

    // A denial after a supplement request comes through the feed as decided/denied.
    let second = ok(
        adapter
            .submit(
                "FZGL-2026-001235",
                submission(&case, "K-SW-2", Some(LICENCE)),
            )
            .await,
        "submit 2",
    )?;
    let n2 = second.network_case_number;
    sim.advance(&n2);
    sim.set_status(&n2, "3100", Some("缺少财务负责人信息"))?;
    sim.advance(&n2);
    sim.set_status(&n2, "4100", Some("经营地址与登记信息不符"))?;
    let polled = ok(adapter.poll(Some(cursor)).await, "poll after denial")?;
    assert_eq!(
        stages(&polled.events),
        [
            Stage::Received,
            Stage::Accepted,
            Stage::SupplementRequested,
            Stage::UnderReview,
            Stage::Decided
        ]
    );
    let last = polled.events.last().context("events")?;
    assert_eq!(last.details.decision, Some(Decision::Denied));
    assert_eq!(
        last.details.reason.as_deref(),
        Some("经营地址与登记信息不符")
    );
    assert_eq!(last.details.certificate_number, None);
    sim.shutdown().await;
    Ok(())
}

/// The enterprise-establishment chain: market regulation issues the licence, its number is
/// handed to the tax network as the `licence-number` input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_regulation_licence_number_feeds_the_tax_registration() -> Result<()> {
    let market = simulator(SimConfig::json_rest("market-regulation")).await?;
    let tax = simulator(SimConfig::signed_api(TAX)).await?;
    let rt = runtime()?;
    let mut sandbox = NetworkSandbox::new("market-regulation", vec![market.base_url().parse()?]);
    let (user, password) = &market.config().credentials;
    sandbox.secrets.insert("username".into(), user.clone());
    sandbox.secrets.insert("password".into(), password.clone());
    let mr = rt
        .load(
            &yiwang_artifacts::read(yiwang_artifacts::MARKET_REGULATION),
            sandbox,
            services(),
        )
        .await?;
    let sw = load(&rt, &tax, services()).await?;
    let case = enterprise_case()?;

    let registered = ok(
        mr.submit(CASE_NUMBER, submission(&case, "K-CHAIN-mr", None))
            .await,
        "market-regulation submit",
    )?;
    while market.advance(&registered.network_case_number).is_some() {}
    let events = ok(
        mr.query_status(Some(CASE_NUMBER), &registered.network_case_number)
            .await,
        "market-regulation query",
    )?;
    let licence = events
        .last()
        .and_then(|e| e.details.certificate_number.clone())
        .context("licence issued")?;

    let receipt = ok(
        sw.submit(CASE_NUMBER, submission(&case, "K-CHAIN-sw", Some(&licence)))
            .await,
        "tax submit",
    )?;
    assert_eq!(
        field(&tax, &receipt.network_case_number, "yyzzbh"),
        Some(licence.into())
    );
    market.shutdown().await;
    tax.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tax_failures_are_classified() -> Result<()> {
    let sim = simulator(SimConfig::signed_api(TAX)).await?;
    let rt = runtime()?;
    let adapter = load(&rt, &sim, services()).await?;
    let case = enterprise_case()?;
    let submit =
        |key: &'static str| adapter.submit(CASE_NUMBER, submission(&case, key, Some(LICENCE)));

    // No licence number from the route: permanent, naming the input, nothing sent.
    let report = adapter
        .submit(CASE_NUMBER, submission(&case, "K-NOLICENCE", None))
        .await;
    assert!(report.trace.exchanges.is_empty(), "nothing is sent");
    let (err, class) = failure(report, "submit without licence")?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("`licence-number`"), "{err}");

    sim.faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "fjxx[1].fjmc".into();
    });
    let (err, class) = failure(submit("K-REJECT").await, "rejected submit")?;
    assert_eq!(class, ErrorClass::Permanent);
    match err {
        CallError::Adapter(AdapterError::Permanent(r)) => {
            assert_eq!(r.field.as_deref(), Some("/materials/1/name"));
            assert_eq!(r.code.as_deref(), Some("SW2004"));
        }
        other => bail!("expected a permanent rejection, got {other}"),
    }

    let Settled {
        found,
        stored,
        resent: _,
    } = lost_replies_are_settled_by_idem(&sim, &adapter, &submit).await?;
    assert_eq!(stages(&found), [Stage::Received]);
    assert_eq!(sim.cases().len(), 1, "only K-HELD was stored");

    let (_, class) = failure(
        adapter.query_status(None, "SW19990101999999").await,
        "unknown case",
    )?;
    assert_eq!(class, ErrorClass::Permanent);

    let change = CaseChange {
        network_case_number: stored.ministry_case_number.clone(),
        change_json: serde_json::json!({"case_number": CASE_NUMBER,
            "kind": {"kind": "withdraw", "reason": "撤回"}, "at": "2026-11-21T10:00:00+08:00"})
        .to_string(),
        idempotency_key: "chg-1".into(),
    };
    let report = adapter.update(CASE_NUMBER, change).await;
    assert!(report.trace.exchanges.is_empty(), "nothing is sent");
    let (_, class) = failure(report, "update")?;
    assert_eq!(class, ErrorClass::Permanent);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_failures_are_classified() -> Result<()> {
    let sim = simulator(SimConfig::signed_api(TAX)).await?;
    let rt = runtime()?;
    let case = enterprise_case()?;
    let secret = sim.config().app_secret.clone();
    let code_of = |err: &CallError| match err {
        CallError::Adapter(AdapterError::Permanent(r)) => r.code.clone(),
        _ => None,
    };

    // The wrong secret: GW1005, permanent.
    let wrong = load_with(&rt, &sim, Some("yiwang-app"), "guessed", services()).await?;
    let (err, class) = failure(submit_to(&wrong, &case, "K-SIG").await, "wrong secret")?;
    assert_eq!(class, ErrorClass::Permanent);
    assert_eq!(code_of(&err).as_deref(), Some("GW1005"), "{err}");

    // An app key the gateway does not know: GW1002, permanent, naming the configuration.
    let stranger = load_with(&rt, &sim, Some("someone-else"), &secret, services()).await?;
    let (err, class) = failure(
        submit_to(&stranger, &case, "K-KEY").await,
        "unknown app key",
    )?;
    assert_eq!(class, ErrorClass::Permanent);
    assert_eq!(code_of(&err).as_deref(), Some("GW1002"), "{err}");
    assert!(err.to_string().contains("`app-key`"), "{err}");

    // No app key configured at all: permanent, nothing sent.
    let unconfigured = load_with(&rt, &sim, None, &secret, services()).await?;
    let report = submit_to(&unconfigured, &case, "K-NOKEY").await;
    assert!(report.trace.exchanges.is_empty());
    let (err, class) = failure(report, "no app key")?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("`app-key` is not set"), "{err}");

    // A host clock ten minutes slow: GW1003, retryable, and the message shows the skew.
    let slow = load(&rt, &sim, services_at(now_ms()? - 600_000)).await?;
    let (err, class) = failure(submit_to(&slow, &case, "K-CLOCK").await, "slow clock")?;
    assert_eq!(class, ErrorClass::Retryable);
    assert!(err.to_string().contains("host clock differs"), "{err}");
    assert!(sim.cases().is_empty(), "refused requests store nothing");

    // Two adapters with fresh counters and the same frozen clock derive the same first
    // nonce: the second is refused as a replay and resends once with the next one.
    let at = now_ms()?;
    let first = load(&rt, &sim, services_at(at)).await?;
    ok(submit_to(&first, &case, "K-NONCE").await, "first")?;
    let twin = load(&rt, &sim, services_at(at)).await?;
    let report = submit_to(&twin, &case, "K-NONCE").await;
    assert_eq!(report.trace.exchanges.len(), 2, "refused once, resent once");
    let resent = ok(report, "twin")?;
    assert_eq!(
        resent.network_case_number,
        sim.cases()[0].ministry_case_number
    );
    // A third twin finds both nonces used: retryable, nothing done.
    let third = load(&rt, &sim, services_at(at)).await?;
    let (err, class) = failure(submit_to(&third, &case, "K-NONCE").await, "third twin")?;
    assert_eq!(class, ErrorClass::Retryable);
    assert!(err.to_string().contains("replay"), "{err}");
    assert_eq!(sim.cases()[0].submissions, 2);
    sim.shutdown().await;
    Ok(())
}
