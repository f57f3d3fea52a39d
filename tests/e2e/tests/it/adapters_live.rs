//! The market-regulation and housing-construction adapters against live simulated ministry
//! networks: the mapped fields arrive intact, resubmits are idempotent, statuses come back as
//! normalized events, and every failure mode lands in the class the docs promise, including
//! the ambiguous submit resolved by `query-status("idem:<key>")`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use yiwang_e2e::live::{
    Settled, failure, field, lost_replies_are_settled_by_idem, ok, runtime, services, simulator,
    stages,
};
use yiwang_gateway::runtime::{
    AdapterError, CallError, CaseChange, ErrorClass, LoadedAdapter, NetworkSandbox, Runtime,
    Services, Submission,
};
use yiwang_schema::{Decision, Event, Stage};
use yiwang_simulator::{SimConfig, Simulator};

const MARKET: &str = "market-regulation";
const HOUSING: &str = "housing-construction";

/// The adapter for `sim`'s network, with the simulator's credentials as the network's
/// secrets and a short send timeout (the held-connection fault waits for the client).
async fn load(
    rt: &Runtime,
    wasm: &str,
    sim: &Simulator,
    services: Services,
) -> Result<LoadedAdapter> {
    let mut sandbox = NetworkSandbox::new(sim.config().name.clone(), vec![sim.base_url().parse()?]);
    let (user, password) = &sim.config().credentials;
    sandbox.secrets.insert("username".into(), user.clone());
    sandbox.secrets.insert("password".into(), password.clone());
    sandbox.limits.send_timeout = Duration::from_millis(1500);
    Ok(rt
        .load(&yiwang_artifacts::read(wasm), sandbox, services)
        .await?)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn enterprise_case() -> Result<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    read(&root.join("adapters-sdk/schema/testdata/enterprise-establishment.json"))
}

/// The housing adapter's example case, checked against the unified schema first.
fn construction_case() -> Result<String> {
    let path = Path::new(yiwang_artifacts::PLUGINS_DIR)
        .join("housing-construction/fixtures/construction-permit.json");
    let json = read(&path)?;
    if let Err(errors) = yiwang_schema::parse_case(json.as_bytes()) {
        bail!("{} is not a valid unified case: {errors}", path.display());
    }
    Ok(json)
}

fn submission(case_json: &str, key: &str) -> Submission {
    Submission {
        case_json: case_json.to_owned(),
        idempotency_key: key.to_owned(),
        inputs: vec![],
    }
}

fn change(number: &str, case_number: &str, kind: Value) -> CaseChange {
    let json = serde_json::json!({"case_number": case_number, "kind": kind, "at": "2026-11-21T10:00:00+08:00"});
    CaseChange {
        network_case_number: number.to_owned(),
        change_json: json.to_string(),
        idempotency_key: format!("chg-{number}"),
    }
}

fn assert_beijing(events: &[Event]) {
    for e in events {
        assert_eq!(*e.at.offset(), yiwang_schema::BEIJING, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_regulation_delivers_tracks_and_changes_a_case() -> Result<()> {
    let sim = simulator(SimConfig::json_rest(MARKET)).await?;
    let rt = runtime()?;
    let svc = services();
    let adapter = load(&rt, yiwang_artifacts::MARKET_REGULATION, &sim, svc.clone()).await?;
    assert_eq!(adapter.descriptor().network_kind, "json-rest-token");
    let case = enterprise_case()?;

    let receipt = ok(
        adapter
            .submit("FZGL-2026-001234", submission(&case, "K-MR-1"))
            .await,
        "submit",
    )?;
    let number = receipt.network_case_number.clone();
    assert_eq!(stages(&receipt.events), [Stage::Received]);
    assert_eq!(
        field(&sim, &number, "sqrmc"),
        Some("福州闽江数字科技有限公司".into())
    );
    assert_eq!(field(&sim, &number, "ywlsh"), Some("K-MR-1".into()));
    assert_eq!(field(&sim, &number, "sqrlx"), Some("1".into()));
    assert_eq!(
        field(&sim, &number, "tyshxydm"),
        Some("91350102MA2Y7K3Q67".into())
    );
    assert_eq!(
        field(&sim, &number, "sqsj"),
        Some("2026-11-20 09:30:00".into())
    );
    assert!(
        svc.kv.get(MARKET, "login-token").is_some(),
        "the token is cached"
    );

    // A retry of the same delivery: same number, still one case.
    let again = ok(
        adapter
            .submit("FZGL-2026-001234", submission(&case, "K-MR-1"))
            .await,
        "resubmit",
    )?;
    assert_eq!(again.network_case_number, number);
    assert_eq!(sim.cases().len(), 1);

    for _ in 0..3 {
        sim.advance(&number).context("advance")?;
    }
    let events = ok(
        adapter
            .query_status(Some("FZGL-2026-001234"), &number)
            .await,
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
    assert_beijing(&events);
    let done = events.last().context("events")?;
    assert_eq!(done.details.decision, Some(Decision::Approved));
    assert_eq!(
        done.details.certificate_number,
        sim.case(&number).and_then(|c| c.certificate_number)
    );
    assert_eq!(done.details.raw_status.as_deref(), Some("11"));
    assert_eq!(
        events[0].at, receipt.events[0].at,
        "the receipt's event is the first status"
    );

    // The change feed tells the same story, and a second poll from its cursor is empty.
    let polled = ok(adapter.poll(None).await, "poll")?;
    assert_eq!(stages(&polled.events), stages(&events));
    let cursor = polled.next_cursor.context("cursor")?;
    let idle = ok(adapter.poll(Some(cursor.clone())).await, "poll again")?;
    assert!(idle.events.is_empty(), "{:?}", idle.events);
    assert_eq!(idle.next_cursor, Some(cursor));

    // Supplement at 补正 moves the case on; withdraw ends it.
    let second = ok(
        adapter
            .submit("FZGL-2026-001235", submission(&case, "K-MR-2"))
            .await,
        "submit 2",
    )?;
    let n2 = second.network_case_number;
    sim.set_status(&n2, "6", Some("缺少股东身份证明"))?;
    let material = serde_json::json!({"name": "股东身份证明", "media_type": "application/pdf", "size": 1024,
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "uri": "oss://m/03.pdf"});
    let supplemented = ok(
        adapter
            .update(
                "FZGL-2026-001235",
                change(
                    &n2,
                    "FZGL-2026-001235",
                    serde_json::json!({"kind": "supplement", "materials": [material]}),
                ),
            )
            .await,
        "supplement",
    )?;
    assert_eq!(stages(&supplemented), [Stage::UnderReview]);
    assert_eq!(sim.case(&n2).map(|c| c.supplements.len()), Some(1));
    let withdrawn = ok(
        adapter
            .update(
                "FZGL-2026-001235",
                change(
                    &n2,
                    "FZGL-2026-001235",
                    serde_json::json!({"kind": "withdraw", "reason": "申请人主动撤回"}),
                ),
            )
            .await,
        "withdraw",
    )?;
    assert_eq!(stages(&withdrawn), [Stage::Withdrawn]);
    assert_eq!(
        withdrawn[0].details.reason.as_deref(),
        Some("申请人主动撤回")
    );
    assert_eq!(sim.case(&n2).map(|c| c.status), Some("12".into()));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_regulation_failures_are_classified() -> Result<()> {
    let sim = simulator(SimConfig::json_rest(MARKET)).await?;
    let rt = runtime()?;
    let svc = services();
    let adapter = load(&rt, yiwang_artifacts::MARKET_REGULATION, &sim, svc.clone()).await?;
    let case = enterprise_case()?;
    let submit = |key: &'static str| adapter.submit("FZGL-2026-001234", submission(&case, key));

    // A revoked token (cached, not expired by the clock): one re-login, then success.
    svc.kv.set(
        MARKET,
        "login-token",
        br#"{"token":"00000000000000000000000000000000","expires_at_ms":99999999999999}"#,
    )?;
    let first = ok(submit("K-OK").await, "submit after re-login")?;
    assert_eq!(sim.cases().len(), 1);

    sim.faults().update(|f| f.reject_next = 1);
    let (err, class) = failure(submit("K-REJECT").await, "rejected submit")?;
    assert_eq!(class, ErrorClass::Permanent);
    match err {
        CallError::Adapter(AdapterError::Permanent(r)) => {
            assert_eq!(r.field.as_deref(), Some("/applicant/id_number"));
            assert_eq!(r.code.as_deref(), Some("2001"));
        }
        other => bail!("expected a permanent rejection, got {other}"),
    }

    let Settled {
        found,
        stored: _,
        resent: _,
    } = lost_replies_are_settled_by_idem(&sim, &adapter, &submit).await?;
    assert_eq!(stages(&found), [Stage::Received]);
    assert_eq!(sim.cases().len(), 2, "only K-OK and K-HELD were stored");

    // Unknown ministry number; and a withdraw the status does not allow.
    let (_, class) = failure(
        adapter.query_status(None, "SCJG19990101999999").await,
        "unknown case",
    )?;
    assert_eq!(class, ErrorClass::Permanent);
    for _ in 0..3 {
        sim.advance(&first.network_case_number);
    }
    let withdraw = change(
        &first.network_case_number,
        "FZGL-2026-001234",
        serde_json::json!({"kind": "withdraw", "reason": "撤回"}),
    );
    let (_, class) = failure(
        adapter.update("FZGL-2026-001234", withdraw).await,
        "withdraw a completed case",
    )?;
    assert_eq!(class, ErrorClass::Permanent);

    // Wrong credentials: permanent, for the operator.
    let mut bad = NetworkSandbox::new(MARKET, vec![sim.base_url().parse()?]);
    bad.secrets.insert("username".into(), "yiwang".into());
    bad.secrets.insert("password".into(), "wrong".into());
    let bad = rt
        .load(
            &yiwang_artifacts::read(yiwang_artifacts::MARKET_REGULATION),
            bad,
            services(),
        )
        .await?;
    let (err, class) = failure(
        bad.submit("FZGL-2026-001234", submission(&case, "K-BAD"))
            .await,
        "bad login",
    )?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("1001"), "{err}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housing_construction_delivers_and_tracks_a_case_in_gb18030() -> Result<()> {
    let sim = simulator(SimConfig::soap(HOUSING)).await?;
    let rt = runtime()?;
    let adapter = load(
        &rt,
        yiwang_artifacts::HOUSING_CONSTRUCTION,
        &sim,
        services(),
    )
    .await?;
    assert_eq!(adapter.descriptor().network_kind, "soap11-gb18030");
    let case = construction_case()?;

    let receipt = ok(
        adapter
            .submit("FZGL-2026-003579", submission(&case, "K-ZJ-1"))
            .await,
        "submit",
    )?;
    let number = receipt.network_case_number.clone();
    assert_eq!(stages(&receipt.events), [Stage::Received]);
    // 𠮷 is a four-byte GB18030 sequence: it arrives intact only if the whole chain is GB18030.
    assert_eq!(
        field(&sim, &number, "sqrmc"),
        Some("福州𠮷祥置业有限公司".into())
    );
    assert_eq!(
        field(&sim, &number, "xmmc"),
        Some("鼓楼区温泉街道榕城花园3号住宅楼".into())
    );
    assert_eq!(field(&sim, &number, "sqrlx"), Some("2".into()));
    assert_eq!(field(&sim, &number, "zjlx"), Some("001".into()));
    assert_eq!(field(&sim, &number, "sqsj"), Some("20261123100000".into()));
    assert_eq!(field(&sim, &number, "lsh"), Some("K-ZJ-1".into()));
    let materials = field(&sim, &number, "cls").context("cls")?;
    assert_eq!(materials[1]["mc"], "建设工程规划许可证");

    let again = ok(
        adapter
            .submit("FZGL-2026-003579", submission(&case, "K-ZJ-1"))
            .await,
        "resubmit",
    )?;
    assert_eq!(again.network_case_number, number);
    assert_eq!(sim.cases().len(), 1);

    while sim.advance(&number).is_some() {}
    let events = ok(
        adapter
            .query_status(Some("FZGL-2026-003579"), &number)
            .await,
        "query",
    )?;
    assert_eq!(
        stages(&events),
        [
            Stage::Received,
            Stage::Accepted,
            Stage::UnderReview,
            Stage::SiteInspection,
            Stage::Decided,
            Stage::CertificateIssued,
            Stage::Completed
        ]
    );
    assert_beijing(&events);
    let certificate = sim
        .case(&number)
        .and_then(|c| c.certificate_number)
        .context("certificate issued")?;
    assert_eq!(events[4].details.decision, Some(Decision::Approved));
    assert_eq!(events[4].details.reason.as_deref(), Some("准予许可"));
    assert_eq!(
        events[5].details.certificate_number.as_deref(),
        Some(certificate.as_str())
    );
    let done = events.last().context("events")?;
    assert_eq!(done.details.decision, Some(Decision::Approved));
    assert_eq!(
        done.details.certificate_number.as_deref(),
        Some(certificate.as_str())
    );

    // A denial after a supplement request: decided/denied with the opinion, no certificate.
    let denied = ok(
        adapter
            .submit("FZGL-2026-003580", submission(&case, "K-ZJ-2"))
            .await,
        "submit 2",
    )?;
    let n2 = denied.network_case_number;
    sim.advance(&n2);
    sim.set_status(&n2, "04", Some("缺少施工图审查合格书"))?;
    sim.advance(&n2);
    sim.set_status(&n2, "08", Some("施工图审查未通过"))?;
    let events = ok(
        adapter
            .query_status(None, &format!("idem:{}", "K-ZJ-2"))
            .await,
        "query by idem",
    )?;
    assert_eq!(
        stages(&events),
        [
            Stage::Received,
            Stage::Accepted,
            Stage::SupplementRequested,
            Stage::UnderReview,
            Stage::Decided
        ]
    );
    let last = events.last().context("events")?;
    assert_eq!(last.network_case_number, n2);
    assert_eq!(last.details.decision, Some(Decision::Denied));
    assert_eq!(last.details.reason.as_deref(), Some("施工图审查未通过"));
    assert_eq!(last.details.certificate_number, None);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housing_construction_failures_are_classified() -> Result<()> {
    let sim = simulator(SimConfig::soap(HOUSING)).await?;
    let rt = runtime()?;
    let adapter = load(
        &rt,
        yiwang_artifacts::HOUSING_CONSTRUCTION,
        &sim,
        services(),
    )
    .await?;
    let case = construction_case()?;
    let submit = |key: &'static str| adapter.submit("FZGL-2026-003579", submission(&case, key));

    sim.faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "cls/cl[2]/zy".into();
    });
    let (err, class) = failure(submit("K-REJECT").await, "rejected submit")?;
    assert_eq!(class, ErrorClass::Permanent);
    match err {
        CallError::Adapter(AdapterError::Permanent(r)) => {
            assert_eq!(r.field.as_deref(), Some("/materials/1/sha256"));
            assert_eq!(r.code.as_deref(), Some("E1004"));
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

    let number = stored.ministry_case_number;
    let withdrawn = ok(
        adapter
            .update(
                "FZGL-2026-003579",
                change(
                    &number,
                    "FZGL-2026-003579",
                    serde_json::json!({"kind": "withdraw", "reason": "建设单位撤回"}),
                ),
            )
            .await,
        "withdraw",
    )?;
    assert_eq!(stages(&withdrawn), [Stage::Withdrawn]);
    assert_eq!(sim.case(&number).map(|c| c.status), Some("10".into()));

    let material = serde_json::json!({"name": "施工图审查合格书", "media_type": "application/pdf", "size": 1,
        "sha256": "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35", "uri": "oss://m/3.pdf"});
    let report = adapter
        .update(
            "FZGL-2026-003579",
            change(
                &number,
                "FZGL-2026-003579",
                serde_json::json!({"kind": "supplement", "materials": [material]}),
            ),
        )
        .await;
    assert!(
        report.trace.exchanges.is_empty(),
        "nothing is sent for an unsupported supplement"
    );
    let (err, class) = failure(report, "supplement")?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("no supplement operation"), "{err}");

    let (_, class) = failure(
        adapter.query_status(None, "ZJ19990101999999").await,
        "unknown case",
    )?;
    assert_eq!(class, ErrorClass::Permanent);
    sim.shutdown().await;
    Ok(())
}
