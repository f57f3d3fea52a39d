//! Fault switches, over HTTP and in-process.

use std::io::ErrorKind;
use std::time::Duration;

use serde_json::json;
use yiwang_simulator::SimConfig;

use crate::client::{between, get, login, post_json, soap, start, try_post_json, try_soap};
use crate::json_rest::submission;
use crate::soap::submit_xml;

fn quiet() -> SimConfig {
    SimConfig::json_rest("market-regulation").with_stage_interval(Duration::ZERO)
}

#[tokio::test]
async fn reset_next_resets_the_connection_then_recovers() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    let set = post_json(addr, "/_sim/faults", None, &json!({"reset_next": 1})).await;
    assert_eq!(set.status, 200);
    assert_eq!(set.json()["reset_next"], 1);

    let err = try_post_json(addr, "/api/case/submit", Some(&token), &submission("YW-R"))
        .await
        .expect_err("the connection is reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(sim.cases().is_empty(), "a reset request is not processed");
    assert_eq!(sim.faults().snapshot().reset_next, 0);

    let ok = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-R")).await;
    assert_eq!(ok.json()["code"], "0000");
    sim.shutdown().await;
}

#[tokio::test]
async fn accept_then_timeout_stores_the_case_but_never_answers() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    sim.faults().update(|f| f.accept_then_timeout_next = 1);

    let attempt = tokio::time::timeout(
        Duration::from_millis(500),
        try_post_json(
            addr,
            "/api/case/submit",
            Some(&token),
            &submission("YW-HOLD"),
        ),
    )
    .await;
    assert!(attempt.is_err(), "no reply expected, got {attempt:?}");
    let cases = sim.cases();
    assert_eq!(
        cases.len(),
        1,
        "the ministry has the case even though no reply came"
    );
    assert_eq!(cases[0].idempotency_key, "YW-HOLD");

    // The adapter asks whether its submit landed, then a resubmit stays exactly-once.
    let q = post_json(
        addr,
        "/api/case/query",
        Some(&token),
        &json!({"ywlsh": "YW-HOLD"}),
    )
    .await;
    assert_eq!(
        q.json()["data"]["bjbh"],
        cases[0].ministry_case_number.as_str()
    );
    let again = post_json(
        addr,
        "/api/case/submit",
        Some(&token),
        &submission("YW-HOLD"),
    )
    .await;
    assert_eq!(
        again.json()["data"]["bjbh"],
        cases[0].ministry_case_number.as_str()
    );
    assert_eq!(sim.cases().len(), 1);
    // Shutdown must not wait for the held connection's 120 s.
    tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .expect("shutdown drops held connections");
}

#[tokio::test]
async fn garbage_next_answers_200_with_html() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    sim.faults().update(|f| f.garbage_next = 1);
    let reply = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-G")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert_eq!(reply.text(), "<html><body>系统繁忙</body></html>");
    assert!(sim.cases().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn maintenance_answers_503_with_retry_after_and_spares_control() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    post_json(
        addr,
        "/_sim/faults",
        None,
        &json!({"maintenance": true, "fail_next": 1}),
    )
    .await;
    for _ in 0..2 {
        let reply = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-M")).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("2"));
        assert!(reply.text().contains("维护中"));
    }
    let login_too = post_json(addr, "/api/auth/login", None, &json!({})).await;
    assert_eq!(login_too.status, 503);

    let faults = get(addr, "/_sim/faults").await;
    assert_eq!(faults.status, 200, "control API is never faulted");
    assert_eq!(
        faults.json()["fail_next"],
        1,
        "maintenance consumes no counter"
    );
    assert_eq!(get(addr, "/_sim/cases").await.json(), json!([]));

    post_json(
        addr,
        "/_sim/faults",
        None,
        &json!({"maintenance": false, "fail_next": 0}),
    )
    .await;
    let ok = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-M")).await;
    assert_eq!(ok.json()["code"], "0000");
    sim.shutdown().await;
}

#[tokio::test]
async fn fail_next_counts_down() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    let set = post_json(
        addr,
        "/_sim/faults",
        None,
        &json!({"fail_next": 2, "fail_status": 502}),
    )
    .await;
    assert_eq!(set.json()["fail_next"], 2);
    for left in [1, 0] {
        let reply = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-F")).await;
        assert_eq!(reply.status, 502);
        assert!(reply.text().contains("<html>"));
        assert_eq!(get(addr, "/_sim/faults").await.json()["fail_next"], left);
    }
    let ok = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-F")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(sim.cases().len(), 1);

    sim.faults().update(|f| f.fail_next = 1);
    let default_status = post_json(
        addr,
        "/api/case/query",
        Some(&token),
        &json!({"ywlsh": "YW-F"}),
    )
    .await;
    assert_eq!(default_status.status, 502, "fail_status stays as last set");
    sim.shutdown().await;
}

#[tokio::test]
async fn reject_next_names_the_field_in_both_archetypes() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    post_json(
        addr,
        "/_sim/faults",
        None,
        &json!({"reject_next": 1, "reject_field": "lxdh"}),
    )
    .await;
    let r = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-J"))
        .await
        .json();
    assert_eq!(r["code"], "2001");
    assert_eq!(r["msg"], "字段校验不通过: lxdh");
    assert_eq!(r["data"]["zdmc"], "lxdh");
    assert!(sim.cases().is_empty());
    sim.shutdown().await;

    let housing = start(SimConfig::soap("housing").with_stage_interval(Duration::ZERO)).await;
    housing.faults().update(|f| f.reject_next = 1);
    let reply = soap(
        housing.addr(),
        "urn:SubmitCase",
        &submit_xml("LSH-J", "张三", None),
    )
    .await;
    assert_eq!(reply.status, 500);
    let xml = reply.gb18030();
    assert_eq!(between(&xml, "faultcode"), Some("soap:Client"));
    assert_eq!(between(&xml, "zdmc"), Some("zjhm"));
    assert!(housing.cases().is_empty());
    housing.shutdown().await;
}

#[tokio::test]
async fn soap_network_faults_too() {
    let sim = start(SimConfig::soap("housing").with_stage_interval(Duration::ZERO)).await;
    sim.faults().update(|f| f.reset_next = 1);
    let err = try_soap(
        sim.addr(),
        "urn:SubmitCase",
        &submit_xml("LSH-R", "张三", None),
    )
    .await
    .expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    let ok = soap(
        sim.addr(),
        "urn:SubmitCase",
        &submit_xml("LSH-R", "张三", None),
    )
    .await;
    assert_eq!(ok.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_delays_business_replies_only() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    sim.faults().update(|f| f.latency_ms = 200);
    let started = std::time::Instant::now();
    login(addr).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    sim.shutdown().await;
}
