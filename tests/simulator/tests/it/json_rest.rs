//! Archetype 1 (JSON REST with login token).

use std::time::Duration;

use serde_json::{Value, json};
use yiwang_simulator::SimConfig;

use crate::client::{eventually, login, post_json, start};

pub fn submission(ywlsh: &str) -> Value {
    json!({
        "ywlsh": ywlsh,
        "bjbh_tyjg": "370100-20240305-000123",
        "sxbm": "370100-SCJG-001",
        "sxbb": "2.0",
        "sqrlx": "0",
        "sqrmc": "张三",
        "bjsqrzjlxdm": "111",
        "zjhm": "11010519491231002X",
        "lxdh": "13800138000",
        "sqsj": "2024-03-05 09:30:00",
        "bdxx": {"jyfw": "图书零售"},
        "clxx": [{"clmc": "申请书", "clgs": "application/pdf", "sha256": "00", "dz": "https://materials.example.invalid/1"}]
    })
}

fn quiet() -> SimConfig {
    SimConfig::json_rest("market-regulation").with_stage_interval(Duration::ZERO)
}

fn is_case_number(n: &str, prefix: &str) -> bool {
    n.len() == prefix.len() + 14
        && n.starts_with(prefix)
        && n[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn login_submit_query_and_idempotent_resubmit() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;

    let first = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-1")).await;
    assert_eq!(first.status, 200);
    assert!(
        first
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let first = first.json();
    assert_eq!(first["code"], "0000", "{first}");
    assert_eq!(first["msg"], "成功");
    let bjbh = first["data"]["bjbh"].as_str().expect("bjbh").to_owned();
    assert!(is_case_number(&bjbh, "SCJG"), "{bjbh}");
    let slsj = first["data"]["slsj"].as_str().expect("slsj");
    assert_eq!(slsj.len(), 19, "{slsj}");

    let again = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-1"))
        .await
        .json();
    assert_eq!(again["data"]["bjbh"], bjbh.as_str());
    assert_eq!(again["data"]["slsj"], slsj);
    let cases = sim.cases();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].submissions, 2);
    assert_eq!(cases[0].idempotency_key, "YW-1");
    assert_eq!(
        cases[0].unified_case_number.as_deref(),
        Some("370100-20240305-000123")
    );
    assert_eq!(cases[0].fields["sqrmc"], "张三");
    assert_eq!(cases[0].fields["bdxx"]["jyfw"], "图书零售");

    let by_number = post_json(
        addr,
        "/api/case/query",
        Some(&token),
        &json!({"bjbh": bjbh}),
    )
    .await
    .json();
    assert_eq!(by_number["code"], "0000");
    let data = &by_number["data"];
    assert_eq!(data["bjzt"], "1");
    assert_eq!(data["ztmc"], "已接件");
    assert_eq!(data["bljg"], Value::Null);
    assert_eq!(data["zzbh"], Value::Null);
    assert_eq!(data["ztsj"].as_str().map(str::len), Some(14));
    assert_eq!(data["lsjl"].as_array().map(Vec::len), Some(1));

    let by_key = post_json(
        addr,
        "/api/case/query",
        Some(&token),
        &json!({"ywlsh": "YW-1"}),
    )
    .await
    .json();
    assert_eq!(by_key["data"]["bjbh"], bjbh.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn login_and_token_errors() {
    let sim = start(quiet().with_token_ttl(Duration::from_millis(300))).await;
    let addr = sim.addr();
    let wrong = post_json(
        addr,
        "/api/auth/login",
        None,
        &json!({"username": "yiwang", "password": "nope"}),
    )
    .await
    .json();
    assert_eq!(
        wrong,
        json!({"code": "1001", "msg": "用户名或密码错误", "data": null})
    );

    let expired = json!({"code": "1002", "msg": "令牌无效或已过期", "data": null});
    let none = post_json(addr, "/api/case/submit", None, &submission("YW-T")).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.json(), expired);
    let unknown = post_json(
        addr,
        "/api/case/submit",
        Some("feedface"),
        &submission("YW-T"),
    )
    .await;
    assert_eq!(unknown.json(), expired);

    let token = login(addr).await;
    let ok = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-T")).await;
    assert_eq!(ok.json()["code"], "0000");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let late = post_json(
        addr,
        "/api/case/query",
        Some(&token),
        &json!({"ywlsh": "YW-T"}),
    )
    .await;
    assert_eq!(late.json(), expired);
    assert_eq!(sim.cases().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn each_business_error_code() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    let submit = |body: Value| {
        let token = token.clone();
        async move {
            post_json(addr, "/api/case/submit", Some(&token), &body)
                .await
                .json()
        }
    };

    let mut body = submission("YW-E");
    body["sqrmc"] = json!("  ");
    let r = submit(body).await;
    assert_eq!(r["code"], "2001");
    assert_eq!(r["msg"], "缺少必填字段: sqrmc");
    assert_eq!(r["data"]["zdmc"], "sqrmc");

    let mut body = submission("YW-E");
    body.as_object_mut().map(|o| o.remove("ywlsh"));
    assert_eq!(submit(body).await["data"]["zdmc"], "ywlsh");

    let mut body = submission("YW-E");
    body["sqrlx"] = json!("1");
    let r = submit(body).await;
    assert_eq!(
        (r["code"].clone(), r["data"]["zdmc"].clone()),
        (json!("2001"), json!("tyshxydm"))
    );

    let mut body = submission("YW-E");
    body["sqsj"] = json!("20240305093000");
    let r = submit(body).await;
    assert_eq!(r["code"], "2003");
    assert_eq!(r["data"]["zdmc"], "sqsj");

    let mut body = submission("YW-E");
    body["bjsqrzjlxdm"] = json!("112");
    assert_eq!(submit(body).await["code"], "2004");

    let mut body = submission("YW-E");
    body["sqrlx"] = json!("3");
    assert_eq!(submit(body).await["code"], "2005");

    let mut body = submission("YW-E");
    body["zjhm"] = json!(110105);
    assert_eq!(submit(body).await["code"], "2002");

    let mut body = submission("YW-E");
    body["clxx"] = json!([{"clgs": "application/pdf"}]);
    let r = submit(body).await;
    assert_eq!(r["data"]["zdmc"], "clxx[0].clmc");

    let raw = crate::client::send(
        addr,
        "POST",
        "/api/case/submit",
        &[("X-Auth-Token", &token)],
        b"{not json",
    )
    .await
    .expect("answered")
    .json();
    assert_eq!(raw["code"], "2002");

    let unknown = post_json(
        addr,
        "/api/case/query",
        Some(&token),
        &json!({"bjbh": "SCJG0"}),
    )
    .await
    .json();
    assert_eq!(unknown["code"], "3001");
    assert!(
        sim.cases().is_empty(),
        "rejected submits must not be stored"
    );

    // An enterprise with its credit code and a set-B ID type is fine.
    let mut body = submission("YW-OK");
    body["sqrlx"] = json!("1");
    body["bjsqrzjlxdm"] = json!("001");
    body["tyshxydm"] = json!("9144030071526726XG");
    assert_eq!(submit(body).await["code"], "0000");
    sim.shutdown().await;
}

#[tokio::test]
async fn withdraw_supplement_and_terminal_states() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    let call = |path: &'static str, body: Value| {
        let token = token.clone();
        async move { post_json(addr, path, Some(&token), &body).await.json() }
    };
    let a = call("/api/case/submit", submission("YW-A")).await["data"]["bjbh"].clone();
    let b = call("/api/case/submit", submission("YW-B")).await["data"]["bjbh"].clone();

    let no_reason = call("/api/case/withdraw", json!({"bjbh": a})).await;
    assert_eq!(no_reason["data"]["zdmc"], "yy");
    let w = call(
        "/api/case/withdraw",
        json!({"bjbh": a, "ywlsh": "YW-A", "yy": "申请人撤回"}),
    )
    .await;
    assert_eq!(w["code"], "0000", "{w}");
    assert_eq!(w["data"]["bjzt"], "12");
    assert_eq!(w["data"]["ztmc"], "撤回");
    let again = call("/api/case/withdraw", json!({"bjbh": a, "yy": "重试"})).await;
    assert_eq!(again["code"], "0000");
    let a_case = sim.case(a.as_str().expect("bjbh")).expect("case a");
    assert_eq!(
        a_case.history.len(),
        2,
        "a repeated withdraw changes nothing"
    );
    assert_eq!(a_case.history[1].note.as_deref(), Some("申请人撤回"));

    let b_num = b.as_str().expect("bjbh");
    sim.set_status(b_num, "6", Some("缺少房屋租赁合同"))
        .expect("status 6 exists");
    let s = call(
        "/api/case/supplement",
        json!({"bjbh": b, "ywlsh": "YW-B", "clxx": [{"clmc": "房屋租赁合同", "dz": "https://materials.example.invalid/2"}]}),
    )
    .await;
    assert_eq!(s["data"]["bjzt"], "8", "{s}");
    let b_case = sim.case(b_num).expect("case b");
    assert_eq!(b_case.supplements.len(), 1);
    let empty = call("/api/case/supplement", json!({"bjbh": b, "clxx": []})).await;
    assert_eq!(empty["data"]["zdmc"], "clxx");

    assert_eq!(sim.advance(b_num).as_deref(), Some("11"));
    let done = call("/api/case/query", json!({"bjbh": b})).await;
    assert_eq!(done["data"]["bljg"], "准予许可");
    let zzbh = done["data"]["zzbh"].as_str().expect("zzbh").to_owned();
    assert!(zzbh.starts_with("SCJGZZ") && zzbh.len() == 14, "{zzbh}");
    assert_eq!(sim.advance(b_num), None, "11 is terminal");
    let late = call("/api/case/withdraw", json!({"bjbh": b, "yy": "晚了"})).await;
    assert_eq!(late["code"], "3002");
    let late = call(
        "/api/case/supplement",
        json!({"bjbh": b, "clxx": [{"clmc": "x"}]}),
    )
    .await;
    assert_eq!(late["code"], "3002");
    let mismatch = call("/api/case/query", json!({"bjbh": b, "ywlsh": "YW-A"})).await;
    assert_eq!(mismatch["code"], "3001");
    sim.shutdown().await;
}

#[tokio::test]
async fn statuses_advance_automatically_and_stop_at_the_end() {
    let cfg =
        SimConfig::json_rest("market-regulation").with_stage_interval(Duration::from_millis(40));
    let sim = start(cfg).await;
    let addr = sim.addr();
    let token = login(addr).await;
    let r = post_json(
        addr,
        "/api/case/submit",
        Some(&token),
        &submission("YW-AUTO"),
    )
    .await;
    let bjbh = r.json()["data"]["bjbh"].as_str().expect("bjbh").to_owned();
    let finished = eventually(Duration::from_secs(10), || {
        sim.case(&bjbh).is_some_and(|c| c.status == "11")
    })
    .await;
    assert!(finished, "{:?}", sim.case(&bjbh));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let case = sim.case(&bjbh).expect("case");
    let codes: Vec<&str> = case.history.iter().map(|h| h.code.as_str()).collect();
    assert_eq!(codes, ["1", "3", "8", "11"]);
    assert_eq!(case.result.as_deref(), Some("准予许可"));
    assert!(case.certificate_number.is_some());

    // Paused at 补正: the clock leaves it alone.
    let r = post_json(
        addr,
        "/api/case/submit",
        Some(&token),
        &submission("YW-PAUSE"),
    )
    .await;
    let paused = r.json()["data"]["bjbh"].as_str().expect("bjbh").to_owned();
    sim.set_status(&paused, "6", None).expect("status 6");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.case(&paused).map(|c| c.status), Some("6".to_owned()));
    sim.shutdown().await;
}

#[tokio::test]
async fn changes_feed_pages_with_a_cursor() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let token = login(addr).await;
    let changes = |since: Value, limit: u64| {
        let token = token.clone();
        async move {
            post_json(
                addr,
                "/api/case/changes",
                Some(&token),
                &json!({"since": since, "limit": limit}),
            )
            .await
            .json()
        }
    };
    let a = post_json(addr, "/api/case/submit", Some(&token), &submission("YW-C1"))
        .await
        .json();
    let a = a["data"]["bjbh"].as_str().expect("bjbh").to_owned();
    post_json(addr, "/api/case/submit", Some(&token), &submission("YW-C2")).await;

    let all = changes(json!(""), 100).await;
    assert_eq!(all["code"], "0000");
    let list = all["data"]["changes"].as_array().expect("changes");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["bjbh"], a.as_str());
    assert_eq!(list[0]["bjzt"], "1");
    assert_eq!(list[0]["ztmc"], "已接件");
    assert_eq!(list[1]["ywlsh"], "YW-C2");
    assert_eq!(all["data"]["has_more"], false);
    let cursor = all["data"]["cursor"].clone();

    sim.advance(&a);
    let next = changes(cursor.clone(), 100).await;
    let list = next["data"]["changes"].as_array().expect("changes");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["bjbh"].as_str(), list[0]["bjzt"].as_str()),
        (Some(a.as_str()), Some("3"))
    );
    let cursor2 = next["data"]["cursor"].clone();
    assert_ne!(cursor2, cursor);

    let idle = changes(cursor2.clone(), 100).await;
    assert_eq!(idle["data"]["changes"], json!([]));
    assert_eq!(idle["data"]["cursor"], cursor2);

    let page = changes(json!(""), 1).await;
    assert_eq!(page["data"]["changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["data"]["has_more"], true);
    let rest = changes(page["data"]["cursor"].clone(), 100).await;
    assert_eq!(rest["data"]["changes"].as_array().map(Vec::len), Some(2));

    let bad = changes(json!("not-a-cursor"), 10).await;
    assert_eq!(bad["code"], "2002");
    assert_eq!(bad["data"]["zdmc"], "since");
    sim.shutdown().await;
}
