//! The console in a real browser (headless Chromium over WebDriver, doing
//! mTLS with the principal's own certificate, see [`super::browser`]), as
//! the auditor and as the operator, against a live gateway and simulated
//! networks: every page draws with no console error, the search finds a
//! case and opens its timeline, a dead letter is replayed from the console
//! and delivered (the replay audited naming the operator), and the auditor
//! can neither press replay nor call it. Screenshots of every page land in
//! `target/console-screenshots/`.

use super::browser::Browser;
use anyhow::{Context, Result, ensure};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use yiwang_e2e::{
    LISTENERS, NetworkSpec, World, delivery_state, permit_case, signature_header, until,
};

const MR: &str = "market-regulation";
const ZJ: &str = "housing-construction";
const WAIT: Duration = Duration::from_secs(30);

/// Every page, and the element that says it drew (for each role).
const PAGES: &[(&str, &str, &str)] = &[
    ("networks", "networks-table", "networks-table"),
    ("cases", "cases-table", "cases-table"),
    ("dead-letters", "dead-letters-table", "dead-letters-table"),
    ("deadlines", "open-cases", "open-cases"),
    ("audit", "audit-auditors-only", "audit-intact"),
    ("report", "report-cases", "report-cases"),
];

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| yiwang_e2e::root().join("target"));
    target.join("console-screenshots")
}

/// Two networks with a fan-out item; market regulation does not poll, so a
/// one-shot fault hits the submit it is meant for.
async fn world() -> Result<World> {
    let items = format!(
        "[items.\"ZJ-SGXK-001\"]\nname = \"施工许可\"\nroute = [{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\" }}]\n"
    );
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        poll_interval_ms: None,
        ..mr
    };
    let zj = NetworkSpec::housing_construction(ZJ);
    let mut w = World::prepare(vec![mr, zj], &items, "", LISTENERS).await?;
    w.start_gateway().await?;
    Ok(w)
}

/// Open every page, wait for it to draw, save its screenshot, and find no
/// error in the browser's console.
async fn every_page(b: &Browser, origin: &str, role: &str) -> Result<()> {
    for (page, operator_ready, auditor_ready) in PAGES {
        let ready = if role == "operator" {
            operator_ready
        } else {
            auditor_ready
        };
        b.page(origin, page, ready)
            .await
            .with_context(|| format!("{role}: page {page}"))?;
        b.screenshot(&screenshots(), &format!("{role}-{page}"))
            .await?;
        let errors = b.console_errors().await?;
        ensure!(
            errors.is_empty(),
            "{role}: page {page} logged errors: {errors:#?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_the_operator_and_the_auditor_in_a_real_browser() -> Result<()> {
    let w = world().await?;
    let bureau = w.intake_as(&w.pki.bureau_fuzhou)?;
    // A first case is delivered everywhere (and logs the adapter in).
    assert_eq!(
        bureau.post("/v1/cases", &permit_case("CON-0001")?).await?.0,
        202
    );
    bureau
        .wait_case("CON-0001", WAIT, |v| {
            delivery_state(v, MR) == "delivered" && delivery_state(v, ZJ) == "delivered"
        })
        .await?;
    // The second is refused by market regulation: a dead letter.
    w.sim(MR).faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "sqrmc".into();
    });
    assert_eq!(
        bureau.post("/v1/cases", &permit_case("CON-0002")?).await?.0,
        202
    );
    bureau
        .wait_case("CON-0002", WAIT, |v| delivery_state(v, MR) == "dead")
        .await?;
    let admin = w
        .gateway
        .as_ref()
        .and_then(|g| g.admin_addr)
        .context("admin")?;
    let origin = format!("https://{admin}");
    hot_swaps_are_listed(&w).await?;
    bureaus_get_no_console(&w).await?;
    other_sites_cannot_act_through_the_browser(&w).await?;

    auditor_reads_and_cannot_replay(&w, &origin).await?;
    operator_finds_and_replays(&w, &origin).await?;
    bureau
        .wait_case("CON-0002", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    // The replay went through the admin API: audited, naming the operator.
    let q = yiwang_audit::Query {
        kind: Some(yiwang_audit::Kind::Admin),
        principal: Some("ops".into()),
        ..Default::default()
    };
    let replays = yiwang_audit::query(&w.audit_dir(), &q)
        .filter_map(Result::ok)
        .filter(|r| r.detail["operation"] == "replay")
        .filter(|r| r.detail["detail"]["case_number"] == "CON-0002")
        .count();
    assert_eq!(replays, 1, "one audited replay by ops");
    Ok(())
}

/// A hot swap and a refused one show on the Networks page's data, newest
/// first, with the operator who asked.
async fn hot_swaps_are_listed(w: &World) -> Result<()> {
    let ops = w.admin().context("admin")?;
    let wasm = std::fs::read(yiwang_artifacts::HOUSING_CONSTRUCTION)?;
    let path = format!("/admin/networks/{ZJ}/adapter");
    let header = signature_header(w.dir.path(), ZJ, &wasm)?;
    let put = |headers: Vec<(String, String)>| {
        let (ops, path, wasm) = (&ops, &path, wasm.clone());
        async move {
            ops.request_with(http::Method::PUT, path, "application/wasm", &headers, wasm)
                .await
        }
    };
    let (status, body) = put(vec![header]).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(vec![]).await?;
    assert_eq!(status, 422, "an unsigned swap is refused: {body}");
    let (status, nets) = ops.get("/admin/console/networks").await?;
    assert_eq!(status, 200, "{nets}");
    let zj = nets["networks"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == ZJ))
        .cloned()
        .context("housing construction listed")?;
    let swaps = zj["swaps"].as_array().cloned().unwrap_or_default();
    assert_eq!(swaps.len(), 2, "{zj}");
    assert!(swaps[0]["refused"].is_string(), "newest first: {zj}");
    let sha = yiwang_schema::Sha256Digest::of(&wasm).to_string();
    assert_eq!(swaps[1]["adapter"], json!(sha), "{zj}");
    assert!(swaps.iter().all(|s| s["principal"] == "ops"), "{zj}");
    Ok(())
}

/// A bureau and the platform are principals of the admin listener's CA,
/// not console users: the pages and the console's data are refused.
async fn bureaus_get_no_console(w: &World) -> Result<()> {
    for who in [&w.pki.bureau_fuzhou, &w.pki.platform] {
        let c = w.admin_as(who)?;
        for path in [
            "/console/",
            "/console/app.js",
            "/admin/console/session",
            "/admin/console/cases",
        ] {
            let (status, body) = c.get(path).await?;
            assert_eq!(status, 403, "{path}: {body}");
        }
    }
    Ok(())
}

/// A page of another site cannot make the operator's browser (which
/// presents the certificate to anyone who asks) resume a network: the
/// cross-origin post is refused and audited; the same post from a client
/// that is no browser goes through.
async fn other_sites_cannot_act_through_the_browser(w: &World) -> Result<()> {
    let ops = w.admin().context("admin")?;
    let path = format!("/admin/networks/{MR}/resume");
    let forged = [("origin".to_string(), "https://evil.example".to_string())];
    let (status, body) = ops
        .request_with(http::Method::POST, &path, "text/plain", &forged, Vec::new())
        .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["type"], "https://yiwang.dev/problems/cross-origin",
        "{body}"
    );
    let (status, body) = ops
        .request_with(http::Method::POST, &path, "text/plain", &[], Vec::new())
        .await?;
    assert_eq!(status, 200, "{body}");
    let q = yiwang_audit::Query {
        kind: Some(yiwang_audit::Kind::Denial),
        principal: Some("ops".into()),
        ..Default::default()
    };
    let refused = yiwang_audit::query(&w.audit_dir(), &q)
        .filter_map(Result::ok)
        .filter(|r| {
            r.detail["rule"]
                .as_str()
                .is_some_and(|r| r.contains("evil.example"))
        })
        .count();
    assert_eq!(refused, 1, "the cross-origin post is audited");
    Ok(())
}

async fn auditor_reads_and_cannot_replay(w: &World, origin: &str) -> Result<()> {
    let b = Browser::start(&w.pki, &w.pki.auditor, origin).await?;
    every_page(&b, origin, "auditor").await?;
    b.page(origin, "dead-letters", "dead-letters-table").await?;
    b.client
        .wait()
        .at_most(super::browser::PAGE_WAIT)
        .for_element(fantoccini::Locator::Css(
            "[data-testid^=\"dead-CON-0002-\"]",
        ))
        .await?;
    // The audit page queries the trail (its first records shown).
    b.page(origin, "audit", "audit-query").await?;
    b.click("audit-run").await?;
    b.wait("audit-table").await?;
    b.page(origin, "dead-letters", "dead-letters-table").await?;
    let button = b.wait("replay-selected").await?;
    assert!(
        !button.is_enabled().await?,
        "the auditor's replay is disabled"
    );
    b.wait("read-only").await?;
    b.close().await?;
    // Nor does the API let the auditor replay.
    let (status, body) = w
        .admin_as(&w.pki.auditor)?
        .post("/admin/replay", &json!({ "case_number": "CON-0002" }))
        .await?;
    assert_eq!(status, 403, "{body}");
    Ok(())
}

async fn operator_finds_and_replays(w: &World, origin: &str) -> Result<()> {
    let b = Browser::start(&w.pki, &w.pki.operator, origin).await?;
    every_page(&b, origin, "operator").await?;
    // The search finds a case by its number; its timeline opens.
    b.page(origin, "cases", "case-search").await?;
    b.wait("search-case_number")
        .await?
        .send_keys("CON-0001")
        .await?;
    b.click("search-submit").await?;
    b.click("case-CON-0001").await?;
    b.wait("timeline-CON-0001").await?;
    // The timeline refreshes itself: read it whole, again if it was redrawn.
    let (number, timeline) = until(
        WAIT,
        "the timeline to show the ministry case number",
        || async {
            let number = b.text(&format!("ministry-number-{MR}")).await?;
            let timeline = b.text("timeline").await?;
            (number != "—" && timeline.contains(&number)).then_some((number, timeline))
        },
    )
    .await?;
    ensure!(
        timeline.contains("intake") || timeline.contains("受理"),
        "{timeline}"
    );
    ensure!(!number.is_empty());
    b.screenshot(&screenshots(), "operator-case-timeline")
        .await?;
    // Replay the dead letter from the console, confirming.
    b.page(origin, "dead-letters", "dead-letters-table").await?;
    b.click_css("[data-testid^=\"select-CON-0002-\"]").await?;
    b.click("replay-selected").await?;
    b.click("confirm-ok").await?;
    let result = b.wait("replay-result").await?;
    until(WAIT, "the console to report the replay", || {
        let result = result.clone();
        async move { result.text().await.ok().filter(|t| t.ends_with(": 1")) }
    })
    .await?;
    b.screenshot(&screenshots(), "operator-dead-letters-replayed")
        .await?;
    // English on request: the labels change, the page stays.
    b.click("lang-toggle").await?;
    until(WAIT, "English labels", || async {
        b.text("nav-dead-letters")
            .await
            .filter(|t| t == "Dead letters")
    })
    .await?;
    b.screenshot(&screenshots(), "operator-dead-letters-english")
        .await?;
    let errors = b.console_errors().await?;
    ensure!(errors.is_empty(), "operator: errors: {errors:#?}");
    b.close().await
}
