//! The `/_sim/*` control API.

use std::time::Duration;

use serde_json::json;
use yiwang_simulator::SimConfig;

use crate::client::{get, login, post_json, start};
use crate::json_rest::submission;

#[tokio::test]
async fn control_api_lists_advances_forces_and_resets() {
    let sim =
        start(SimConfig::json_rest("market-regulation").with_stage_interval(Duration::ZERO)).await;
    let addr = sim.addr();
    let info = get(addr, "/_sim/info").await.json();
    assert_eq!(info["archetype"], "json-rest");
    assert_eq!(info["name"], "market-regulation");

    let token = login(addr).await;
    let r = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-K"))
        .await
        .json();
    let bjbh = r["data"]["bjbh"].as_str().expect("bjbh").to_owned();

    let cases = get(addr, "/_sim/cases").await.json();
    assert_eq!(cases[0]["ministry_case_number"], bjbh.as_str());
    assert_eq!(cases[0]["idempotency_key"], "YW-K");
    assert_eq!(cases[0]["fields"]["sqrmc"], "张三");
    assert_eq!(cases[0]["history"][0]["code"], "1");
    assert_eq!(
        get(addr, &format!("/_sim/cases/{bjbh}")).await.json()["status"],
        "1"
    );
    assert_eq!(get(addr, "/_sim/cases/NOPE").await.status, 404);

    let adv = post_json(
        addr,
        &format!("/_sim/cases/{bjbh}/advance"),
        None,
        &json!({}),
    )
    .await;
    assert_eq!(adv.json()["status"], "3");
    let forced = post_json(
        addr,
        &format!("/_sim/cases/{bjbh}/status"),
        None,
        &json!({"status": "4", "reason": "不属于受理范围"}),
    )
    .await;
    assert_eq!(forced.status, 200);
    let case = sim.case(&bjbh).expect("case");
    assert_eq!(case.status, "4");
    assert_eq!(case.result.as_deref(), Some("不属于受理范围"));
    let terminal = post_json(
        addr,
        &format!("/_sim/cases/{bjbh}/advance"),
        None,
        &json!({}),
    )
    .await;
    assert_eq!(terminal.status, 409);
    let bad = post_json(
        addr,
        &format!("/_sim/cases/{bjbh}/status"),
        None,
        &json!({"status": "02"}),
    )
    .await;
    assert_eq!(bad.status, 400);

    let typo = post_json(addr, "/_sim/faults", None, &json!({"fail_nxt": 1})).await;
    assert_eq!(typo.status, 400);
    let out_of_range = post_json(addr, "/_sim/faults", None, &json!({"fail_status": 200})).await;
    assert_eq!(out_of_range.status, 400);

    post_json(addr, "/_sim/faults", None, &json!({"garbage_next": 3})).await;
    let reset = post_json(addr, "/_sim/reset", None, &json!({})).await;
    assert_eq!(reset.status, 200);
    assert!(sim.cases().is_empty());
    assert_eq!(sim.faults().snapshot().garbage_next, 0);
    // Tokens survive a reset; numbering goes on.
    let r = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-K"))
        .await
        .json();
    assert_eq!(r["code"], "0000");
    assert_ne!(r["data"]["bjbh"], bjbh.as_str());
    sim.shutdown().await;
}
