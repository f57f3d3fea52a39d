//! Archetype 3 (signed open-API gateway): signatures, replays, clock skew, and the tax
//! registration protocol behind them.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use yiwang_simulator::{Archetype, DEFAULT_APP_KEY, DEFAULT_APP_SECRET, SimConfig};

use crate::client::{Reply, eventually, get, send, start};

const SUBMIT: &str = "/openapi/tax/v1/registrations";
const STATUS: &str = "/openapi/tax/v1/registrations/status";
const CHANGES: &str = "/openapi/tax/v1/registrations/changes";
const DOC: &str = include_str!("../../PROTOCOLS.md");

fn quiet() -> SimConfig {
    SimConfig::signed_api("tax").with_stage_interval(Duration::ZERO)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A fresh nonce for every request of the test run.
fn nonce() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("test-nonce-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The canonical string, written from PROTOCOLS.md rather than from the simulator's code.
fn canonical(method: &str, target: &str, key: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|s| s.split_once('=').unwrap_or((s, "")))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body_hash = hex::encode(Sha256::digest(body));
    format!(
        "{method}\n{path}\n{}\n{key}\n{ts}\n{nonce}\n{body_hash}",
        query.join("&")
    )
}

fn hmac_hex(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// One request's signature headers, each of which a test may replace or drop.
#[derive(Clone)]
struct Signed {
    key: String,
    secret: String,
    ts: String,
    nonce: String,
    /// Replaces the computed `X-Sign` when set.
    sign: Option<String>,
    /// Header left out.
    drop: Option<&'static str>,
}

impl Signed {
    fn new() -> Self {
        Self {
            key: DEFAULT_APP_KEY.to_owned(),
            secret: DEFAULT_APP_SECRET.to_owned(),
            ts: now_ms().to_string(),
            nonce: nonce(),
            sign: None,
            drop: None,
        }
    }

    async fn send(&self, addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Reply {
        self.try_send(addr, method, target, body)
            .await
            .expect("answered")
    }

    async fn try_send(
        &self,
        addr: SocketAddr,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let text = canonical(method, target, &self.key, &self.ts, &self.nonce, body);
        let sign = self
            .sign
            .clone()
            .unwrap_or_else(|| hmac_hex(&self.secret, &text));
        let headers = [
            ("Content-Type", "application/json;charset=UTF-8"),
            ("X-App-Key", self.key.as_str()),
            ("X-Timestamp", self.ts.as_str()),
            ("X-Nonce", self.nonce.as_str()),
            ("X-Sign", sign.as_str()),
        ];
        let headers: Vec<(&str, &str)> = headers
            .into_iter()
            .filter(|(name, _)| Some(*name) != self.drop)
            .collect();
        send(addr, method, target, &headers, body).await
    }
}

async fn submit(addr: SocketAddr, body: &Value) -> Value {
    Signed::new()
        .send(addr, "POST", SUBMIT, body.to_string().as_bytes())
        .await
        .json()
}

async fn get_signed(addr: SocketAddr, target: &str) -> Value {
    Signed::new().send(addr, "GET", target, b"").await.json()
}

pub fn registration(qqlsh: &str) -> Value {
    json!({
        "qqlsh": qqlsh,
        "tybh": "370100-20261121-000125",
        "sxbm": "370100-SW-003",
        "sxbb": "1.0",
        "nsrlx": "10",
        "nsrmc": "济南泉城书店有限公司",
        "zjlx": "101",
        "zjhm": "9144030071526726XG",
        "nsrsbh": "9144030071526726XG",
        "yyzzbh": "SCJGZZ00000001",
        "fddbr": "张三",
        "lxdh": "13800138000",
        "scjydz": "济南市历下区泉城路1号",
        "jyfw": "图书零售",
        "sqsj": 1_795_224_600_000_i64,
        "fjxx": [{"fjmc": "营业执照副本", "wjlx": "application/pdf", "sha256": "00", "url": "https://materials.example.invalid/3"}]
    })
}

fn is_case_number(n: &str) -> bool {
    n.len() == 16 && n.starts_with("SW") && n[2..].bytes().all(|b| b.is_ascii_digit())
}

/// The fenced block right after `<!-- example: NAME -->`.
fn example(name: &str) -> &'static str {
    let marker = format!("<!-- example: {name} -->");
    let after = &DOC[DOC.find(&marker).expect("marker present") + marker.len()..];
    let body = &after[after.find("```").expect("fence opens")..];
    let start = body.find('\n').expect("fence line") + 1;
    let end = body[start..].find("```").expect("fence closes") + start;
    &body[start..end]
}

#[tokio::test]
async fn archetype_name_defaults_and_info() {
    assert_eq!(
        "signed-api".parse::<Archetype>().ok(),
        Some(Archetype::SignedApi)
    );
    assert!(Archetype::ALL.contains(&Archetype::SignedApi));
    let cfg = SimConfig::new(Archetype::SignedApi, "tax");
    assert_eq!(cfg.case_prefix, "SW");
    assert_eq!(cfg.app_key, "yiwang-app");
    let sim = start(quiet()).await;
    let info = get(sim.addr(), "/_sim/info").await.json();
    assert_eq!(info["archetype"], "signed-api");
    assert_eq!(info["case_prefix"], "SW");
    assert_eq!(info["statuses"][0]["code"], "1000");
    sim.shutdown().await;
}

#[tokio::test]
async fn documented_submit_is_accepted_when_signed_now() {
    let sim = start(quiet()).await;
    let body: Value = serde_json::from_str(example("signed-submit")).expect("example is JSON");
    let reply = submit(sim.addr(), &body).await;
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["code"], "SW0000");
    let case = &sim.cases()[0];
    assert_eq!(case.fields["yyzzbh"], "SCJGZZ00000001");
    assert_eq!(case.fields["sqsj"], 1_795_224_600_000_i64);
    sim.shutdown().await;
}

#[tokio::test]
async fn submit_query_and_idempotent_resubmit() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let first = Signed::new()
        .send(
            addr,
            "POST",
            SUBMIT,
            registration("YW/1 +x").to_string().as_bytes(),
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    let first = first.json();
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["message"], "成功");
    let slbh = first["data"]["slbh"].as_str().expect("slbh").to_owned();
    assert!(is_case_number(&slbh), "{slbh}");
    let slsj = first["data"]["slsj"].as_i64().expect("slsj is a number");
    assert!((now_ms() - slsj).abs() < 60_000, "{slsj}");

    let again = submit(addr, &registration("YW/1 +x")).await;
    assert_eq!(again["data"], first["data"]);
    let cases = sim.cases();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].submissions, 2);
    assert_eq!(cases[0].idempotency_key, "YW/1 +x");
    assert_eq!(
        cases[0].unified_case_number.as_deref(),
        Some("370100-20261121-000125")
    );
    assert_eq!(cases[0].fields["nsrmc"], "济南泉城书店有限公司");

    let by_number = get_signed(addr, &format!("{STATUS}?slbh={slbh}")).await;
    assert_eq!(by_number["success"], true, "{by_number}");
    let data = &by_number["data"];
    assert_eq!(data["ztdm"], "1000");
    assert_eq!(data["ztmc"], "已提交");
    assert_eq!(data["ztsj"], slsj);
    assert_eq!(data["bljg"], Value::Null);
    assert_eq!(data["swdjzh"], Value::Null);
    assert_eq!(data["lsjl"].as_array().map(Vec::len), Some(1));

    // The key travels percent-encoded; the signature covers the encoded form.
    let by_key = get_signed(addr, &format!("{STATUS}?qqlsh=YW%2F1%20%2Bx")).await;
    assert_eq!(by_key["data"]["slbh"], slbh.as_str(), "{by_key}");
    let both = get_signed(addr, &format!("{STATUS}?qqlsh=YW%2F1%20%2Bx&slbh={slbh}")).await;
    assert_eq!(both["data"]["slbh"], slbh.as_str());
    let mismatch = get_signed(addr, &format!("{STATUS}?qqlsh=other&slbh={slbh}")).await;
    assert_eq!(mismatch["code"], "SW3001");
    let unknown = get_signed(addr, &format!("{STATUS}?qqlsh=never-sent")).await;
    assert_eq!(
        unknown,
        json!({"success": false, "code": "SW3001", "message": "办件不存在: qqlsh", "data": {"field": "qqlsh"}})
    );
    let neither = get_signed(addr, STATUS).await;
    assert_eq!(neither["code"], "SW2001");
    assert_eq!(neither["data"]["field"], "slbh");
    let bad_escape = get_signed(addr, &format!("{STATUS}?qqlsh=%zz")).await;
    assert_eq!(bad_escape["code"], "SW2002");
    assert_eq!(bad_escape["data"]["field"], "qqlsh");
    sim.shutdown().await;
}

#[tokio::test]
async fn each_signature_failure_has_its_code() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let body = registration("YW-SIG").to_string();
    let refused = |reply: Reply| {
        assert_eq!(reply.status, 401, "{}", reply.text());
        let v = reply.json();
        assert_eq!(v["success"], false);
        (
            v["code"].as_str().unwrap_or_default().to_owned(),
            v["data"]["field"].as_str().unwrap_or_default().to_owned(),
            v,
        )
    };

    for header in ["X-App-Key", "X-Timestamp", "X-Nonce", "X-Sign"] {
        let mut s = Signed::new();
        s.drop = Some(header);
        let (code, field, v) = refused(s.send(addr, "POST", SUBMIT, body.as_bytes()).await);
        assert_eq!((code.as_str(), field.as_str()), ("GW1001", header), "{v}");
        assert_eq!(v["message"], format!("缺少签名参数: {header}"));
    }

    let mut s = Signed::new();
    s.key = "someone-else".into();
    let (code, field, _) = refused(s.send(addr, "POST", SUBMIT, body.as_bytes()).await);
    assert_eq!((code.as_str(), field.as_str()), ("GW1002", "X-App-Key"));

    for bad in ["1.7e12", "-1795224600000", "soon", "1234567890123456"] {
        let mut s = Signed::new();
        s.ts = bad.into();
        let (code, field, _) = refused(s.send(addr, "POST", SUBMIT, body.as_bytes()).await);
        assert_eq!((code.as_str(), field.as_str()), ("GW1001", "X-Timestamp"));
    }

    // Six minutes either way is too far; the reply shows the server's clock.
    for skew in [-360_000_i64, 360_000] {
        let mut s = Signed::new();
        s.ts = (now_ms() + skew).to_string();
        let (code, field, v) = refused(s.send(addr, "POST", SUBMIT, body.as_bytes()).await);
        assert_eq!((code.as_str(), field.as_str()), ("GW1003", "X-Timestamp"));
        let server = v["data"]["server_time"].as_i64().expect("server_time");
        assert!((server - now_ms()).abs() < 10_000, "{v}");
    }
    // Four and a half minutes is within the window.
    let mut s = Signed::new();
    s.ts = (now_ms() - 270_000).to_string();
    let late_but_fine = s.send(addr, "GET", STATUS, b"").await;
    assert_eq!(late_but_fine.status, 200);
    assert_eq!(late_but_fine.json()["code"], "SW2001");

    let mut s = Signed::new();
    s.nonce = "x".repeat(65);
    let (code, field, _) = refused(s.send(addr, "POST", SUBMIT, body.as_bytes()).await);
    assert_eq!((code.as_str(), field.as_str()), ("GW1001", "X-Nonce"));

    let mut s = Signed::new();
    s.secret = "not-the-secret".into();
    let (code, field, v) = refused(s.send(addr, "POST", SUBMIT, body.as_bytes()).await);
    assert_eq!((code.as_str(), field.as_str()), ("GW1005", "X-Sign"));
    assert_eq!(v["message"], "签名校验失败: X-Sign");

    // The signature covers the body and the query: changing either after signing breaks it.
    let s = Signed::new();
    let text = canonical("POST", SUBMIT, &s.key, &s.ts, &s.nonce, body.as_bytes());
    let mut tampered = s.clone();
    tampered.sign = Some(hmac_hex(&s.secret, &text));
    let other_body = registration("YW-SIG-2").to_string();
    let (code, _, _) = refused(
        tampered
            .send(addr, "POST", SUBMIT, other_body.as_bytes())
            .await,
    );
    assert_eq!(code, "GW1005");
    let s = Signed::new();
    let text = canonical(
        "GET",
        &format!("{STATUS}?slbh=A"),
        &s.key,
        &s.ts,
        &s.nonce,
        b"",
    );
    let mut tampered = s.clone();
    tampered.sign = Some(hmac_hex(&s.secret, &text));
    let (code, _, _) = refused(
        tampered
            .send(addr, "GET", &format!("{STATUS}?slbh=B"), b"")
            .await,
    );
    assert_eq!(code, "GW1005");
    // Upper-case hex is the same signature.
    let s = Signed::new();
    let text = canonical("GET", STATUS, &s.key, &s.ts, &s.nonce, b"");
    let mut upper = s.clone();
    upper.sign = Some(hmac_hex(&s.secret, &text).to_uppercase());
    assert_eq!(upper.send(addr, "GET", STATUS, b"").await.status, 200);

    assert!(sim.cases().is_empty(), "refused requests store nothing");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_replayed_nonce_is_refused_but_a_refused_request_keeps_its_nonce() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let body = registration("YW-REPLAY").to_string();
    let s = Signed::new();
    assert_eq!(
        s.send(addr, "POST", SUBMIT, body.as_bytes()).await.json()["code"],
        "SW0000"
    );
    let replay = s.send(addr, "POST", SUBMIT, body.as_bytes()).await;
    assert_eq!(replay.status, 401);
    let replay = replay.json();
    assert_eq!(replay["code"], "GW1004", "{replay}");
    assert_eq!(replay["data"]["field"], "X-Nonce");
    assert_eq!(sim.cases()[0].submissions, 1, "the replay reached nothing");

    // A forged request with a nonce does not burn it for the real client.
    let mut forged = Signed::new();
    forged.secret = "guess".into();
    let real = Signed {
        secret: DEFAULT_APP_SECRET.to_owned(),
        ..forged.clone()
    };
    assert_eq!(
        forged.send(addr, "GET", STATUS, b"").await.json()["code"],
        "GW1005"
    );
    assert_eq!(
        real.send(addr, "GET", STATUS, b"").await.json()["code"],
        "SW2001"
    );
    // A business refusal did use the nonce up.
    assert_eq!(
        real.send(addr, "GET", STATUS, b"").await.json()["code"],
        "GW1004"
    );

    // Nonces outlive a data reset; the same nonce stays refused.
    sim.reset();
    assert_eq!(
        s.send(addr, "POST", SUBMIT, body.as_bytes()).await.json()["code"],
        "GW1004"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn custom_app_credentials() {
    let sim = start(quiet().with_app_credentials("tax-portal", "s3cr3t")).await;
    let addr = sim.addr();
    let mut s = Signed::new();
    assert_eq!(
        s.send(addr, "GET", STATUS, b"").await.json()["code"],
        "GW1002"
    );
    s.nonce = nonce();
    s.key = "tax-portal".into();
    s.secret = "s3cr3t".into();
    assert_eq!(
        s.send(addr, "GET", STATUS, b"").await.json()["code"],
        "SW2001"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn each_business_error_code() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let check = |reply: Value, code: &str, field: Option<&str>| {
        assert_eq!(reply["success"], false, "{reply}");
        assert_eq!(reply["code"], code, "{reply}");
        if let Some(field) = field {
            assert_eq!(reply["data"]["field"], field, "{reply}");
            let msg = reply["message"].as_str().unwrap_or_default();
            assert!(msg.ends_with(&format!(": {field}")), "{msg}");
        }
    };

    let raw = Signed::new().send(addr, "POST", SUBMIT, b"{nope").await;
    assert_eq!(raw.status, 200);
    check(raw.json(), "SW2002", None);

    for field in [
        "qqlsh", "tybh", "sxbm", "sxbb", "nsrlx", "nsrmc", "zjlx", "zjhm", "yyzzbh", "lxdh",
        "scjydz", "sqsj",
    ] {
        let mut body = registration("YW-E");
        body.as_object_mut().map(|o| o.remove(field));
        check(submit(addr, &body).await, "SW2001", Some(field));
    }
    let mut body = registration("YW-E");
    body["nsrmc"] = json!("   ");
    check(submit(addr, &body).await, "SW2001", Some("nsrmc"));
    let mut body = registration("YW-E");
    body["zjhm"] = json!(9144030071_i64);
    check(submit(addr, &body).await, "SW2002", Some("zjhm"));

    let mut body = registration("YW-E");
    body["nsrlx"] = json!("1");
    check(submit(addr, &body).await, "SW2003", Some("nsrlx"));
    let mut body = registration("YW-E");
    body["zjlx"] = json!("001");
    check(submit(addr, &body).await, "SW2003", Some("zjlx"));

    for field in ["nsrsbh", "fddbr"] {
        let mut body = registration("YW-E");
        body.as_object_mut().map(|o| o.remove(field));
        check(submit(addr, &body).await, "SW2001", Some(field));
    }
    let mut body = registration("YW-E");
    body["nsrsbh"] = json!("91350102MA2Y7K3QI7");
    check(submit(addr, &body).await, "SW2004", Some("nsrsbh"));
    for bad in [json!("2026-11-21 09:30:00"), json!(-1), json!(1.5)] {
        let mut body = registration("YW-E");
        body["sqsj"] = bad;
        check(submit(addr, &body).await, "SW2004", Some("sqsj"));
    }
    let mut body = registration("YW-E");
    body["fjxx"] = json!([{"wjlx": "application/pdf"}]);
    check(submit(addr, &body).await, "SW2001", Some("fjxx[0].fjmc"));
    let mut body = registration("YW-E");
    body["fjxx"] = json!({"fjmc": "x"});
    check(submit(addr, &body).await, "SW2002", Some("fjxx"));
    assert!(sim.cases().is_empty(), "rejected submits are not stored");

    // A natural person needs neither nsrsbh nor fddbr.
    let mut body = registration("YW-PERSON");
    body["nsrlx"] = json!("20");
    body["zjlx"] = json!("201");
    body["zjhm"] = json!("11010519491231002X");
    for field in ["nsrsbh", "fddbr"] {
        body.as_object_mut().map(|o| o.remove(field));
    }
    assert_eq!(submit(addr, &body).await["code"], "SW0000");
    assert_eq!(sim.cases().len(), 1);

    // Wrong method, unknown path.
    assert_eq!(
        Signed::new().send(addr, "GET", SUBMIT, b"").await.status,
        405
    );
    assert_eq!(
        Signed::new().send(addr, "POST", STATUS, b"").await.status,
        405
    );
    assert_eq!(
        Signed::new()
            .send(addr, "GET", "/openapi/tax/v2/x", b"")
            .await
            .status,
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn statuses_advance_to_a_tax_registration_number() {
    let sim =
        start(SimConfig::signed_api("tax").with_stage_interval(Duration::from_millis(40))).await;
    let addr = sim.addr();
    let r = submit(addr, &registration("YW-AUTO")).await;
    let slbh = r["data"]["slbh"].as_str().expect("slbh").to_owned();
    let finished = eventually(Duration::from_secs(10), || {
        sim.case(&slbh).is_some_and(|c| c.status == "4000")
    })
    .await;
    assert!(finished, "{:?}", sim.case(&slbh));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let q = get_signed(addr, &format!("{STATUS}?slbh={slbh}")).await;
    let data = &q["data"];
    let codes: Vec<&str> = data["lsjl"]
        .as_array()
        .expect("lsjl")
        .iter()
        .filter_map(|h| h["ztdm"].as_str())
        .collect();
    assert_eq!(codes, ["1000", "2000", "3000", "4000"]);
    assert_eq!(data["ztmc"], "登记完成");
    assert_eq!(data["bljg"], "准予登记");
    let number = data["swdjzh"].as_str().expect("swdjzh");
    assert!(number.starts_with("SWDJ") && number.len() == 16, "{number}");
    assert!(data["ztsj"].as_i64().is_some());

    // 待补正 is paused: the clock leaves it alone until advance moves it back to review.
    let r = submit(addr, &registration("YW-PAUSE")).await;
    let paused = r["data"]["slbh"].as_str().expect("slbh").to_owned();
    sim.set_status(&paused, "3100", Some("缺少财务负责人信息"))
        .expect("3100 exists");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.case(&paused).map(|c| c.status), Some("3100".into()));
    assert_eq!(sim.advance(&paused).as_deref(), Some("3000"));

    // Denial and voiding are control-API only and terminal.
    let r = submit(addr, &registration("YW-DENY")).await;
    let denied = r["data"]["slbh"].as_str().expect("slbh").to_owned();
    sim.set_status(&denied, "4100", None).expect("4100 exists");
    let c = sim.case(&denied).expect("case");
    assert_eq!(c.result.as_deref(), Some("不予登记"));
    assert_eq!(c.certificate_number, None);
    assert_eq!(sim.advance(&denied), None);
    sim.set_status(&denied, "9000", Some("重复登记"))
        .expect("9000");
    assert!(sim.set_status(&denied, "11", None).is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn change_feed_pages_with_a_cursor() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let a = submit(addr, &registration("YW-C1")).await["data"]["slbh"]
        .as_str()
        .expect("slbh")
        .to_owned();
    submit(addr, &registration("YW-C2")).await;

    let all = get_signed(addr, CHANGES).await;
    assert_eq!(all["code"], "SW0000", "{all}");
    let list = all["data"]["changes"].as_array().expect("changes");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["slbh"], a.as_str());
    assert_eq!(list[0]["ztdm"], "1000");
    assert_eq!(list[0]["ztmc"], "已提交");
    assert!(list[0]["ztsj"].as_i64().is_some());
    assert_eq!(list[1]["qqlsh"], "YW-C2");
    assert_eq!(all["data"]["has_more"], false);
    let cursor = all["data"]["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();

    for _ in 0..3 {
        sim.advance(&a);
    }
    let next = get_signed(addr, &format!("{CHANGES}?limit=100&cursor={cursor}")).await;
    let list = next["data"]["changes"].as_array().expect("changes");
    let codes: Vec<&str> = list.iter().filter_map(|c| c["ztdm"].as_str()).collect();
    assert_eq!(codes, ["2000", "3000", "4000"]);
    assert_eq!(list[2]["bljg"], "准予登记");
    assert!(list[2]["swdjzh"].as_str().is_some());
    assert_eq!(list[1]["swdjzh"], Value::Null);
    let cursor2 = next["data"]["next_cursor"].clone();
    assert_ne!(cursor2, json!(cursor));

    let idle = get_signed(
        addr,
        &format!("{CHANGES}?cursor={}", cursor2.as_str().expect("cursor")),
    )
    .await;
    assert_eq!(idle["data"]["changes"], json!([]));
    assert_eq!(idle["data"]["next_cursor"], cursor2);

    let page = get_signed(addr, &format!("{CHANGES}?cursor=&limit=1")).await;
    assert_eq!(page["data"]["changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["data"]["has_more"], true);
    let rest = get_signed(
        addr,
        &format!(
            "{CHANGES}?cursor={}",
            page["data"]["next_cursor"].as_str().expect("cursor")
        ),
    )
    .await;
    assert_eq!(rest["data"]["changes"].as_array().map(Vec::len), Some(4));

    let bad = get_signed(addr, &format!("{CHANGES}?cursor=abc")).await;
    assert_eq!(bad["code"], "SW2002");
    assert_eq!(bad["data"]["field"], "cursor");
    let bad = get_signed(addr, &format!("{CHANGES}?limit=many")).await;
    assert_eq!(bad["data"]["field"], "limit");
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_act_before_the_signature_is_checked() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let body = registration("YW-F").to_string();

    sim.faults().update(|f| f.maintenance = true);
    let r = Signed::new()
        .send(addr, "POST", SUBMIT, body.as_bytes())
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("2"));
    sim.faults().update(|f| f.maintenance = false);

    sim.faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "nsrsbh".into();
    });
    let r = Signed::new()
        .send(addr, "POST", SUBMIT, body.as_bytes())
        .await
        .json();
    assert_eq!(
        r,
        json!({"success": false, "code": "SW2004", "message": "字段校验不通过: nsrsbh", "data": {"field": "nsrsbh"}})
    );

    sim.faults().update(|f| f.garbage_next = 1);
    let r = Signed::new()
        .send(addr, "POST", SUBMIT, body.as_bytes())
        .await;
    assert_eq!((r.status, r.text().contains("系统繁忙")), (200, true));

    sim.faults().update(|f| f.reset_next = 1);
    let err = Signed::new()
        .try_send(addr, "POST", SUBMIT, body.as_bytes())
        .await
        .expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(sim.cases().is_empty());

    // Processed, never answered: the case exists and the key finds it.
    sim.faults().update(|f| f.accept_then_timeout_next = 1);
    let held = tokio::time::timeout(
        Duration::from_millis(300),
        Signed::new().try_send(addr, "POST", SUBMIT, body.as_bytes()),
    )
    .await;
    assert!(held.is_err(), "no reply comes");
    assert_eq!(sim.cases().len(), 1);
    let found = get_signed(addr, &format!("{STATUS}?qqlsh=YW-F")).await;
    assert_eq!(
        found["data"]["slbh"],
        sim.cases()[0].ministry_case_number.as_str()
    );
    sim.shutdown().await;
}
