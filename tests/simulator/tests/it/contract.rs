//! The request examples in PROTOCOLS.md are accepted as documented.

use std::time::Duration;

use serde_json::Value;
use yiwang_simulator::SimConfig;

use crate::client::{between, get, login, post_json, soap, start};

const DOC: &str = include_str!("../../PROTOCOLS.md");

/// The fenced block right after `<!-- example: NAME -->`.
fn example(name: &str) -> &'static str {
    let marker = format!("<!-- example: {name} -->");
    let after = &DOC[DOC.find(&marker).expect("marker present") + marker.len()..];
    let fence = after.find("```").expect("fence opens");
    let body = &after[fence..];
    let start = body.find('\n').expect("fence line") + 1;
    let end = body[start..].find("```").expect("fence closes") + start;
    &body[start..end]
}

#[tokio::test]
async fn documented_json_submit_is_accepted() {
    let sim =
        start(SimConfig::json_rest("market-regulation").with_stage_interval(Duration::ZERO)).await;
    let body: Value = serde_json::from_str(example("json-submit")).expect("example is JSON");
    let token = login(sim.addr()).await;
    let reply = post_json(sim.addr(), "/api/case/submit", Some(&token), &body)
        .await
        .json();
    assert_eq!(reply["code"], "0000", "{reply}");
    sim.shutdown().await;
}

#[tokio::test]
async fn documented_soap_submit_and_query_are_accepted() {
    let sim = start(SimConfig::soap("housing").with_stage_interval(Duration::ZERO)).await;
    let xml = soap(sim.addr(), "urn:SubmitCase", example("soap-submit"))
        .await
        .gb18030();
    assert_eq!(between(&xml, "jg"), Some("0"), "{xml}");
    let case = &sim.cases()[0];
    assert_eq!(case.fields["cls"][0]["nr"]["bytes"], 11);
    let xml = soap(sim.addr(), "urn:QueryStatus", example("soap-query"))
        .await
        .gb18030();
    assert_eq!(between(&xml, "zt"), Some("01"), "{xml}");
    sim.shutdown().await;
}

#[tokio::test]
async fn documented_fault_defaults_match() {
    let sim = start(SimConfig::soap("housing")).await;
    let documented: Value = serde_json::from_str(example("faults")).expect("example is JSON");
    assert_eq!(get(sim.addr(), "/_sim/faults").await.json(), documented);
    sim.shutdown().await;
}
