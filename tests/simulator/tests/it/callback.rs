//! Archetype 5 (callbacks): the business API behind an API key, and signed pushes that are
//! retried while the receiver is down, duplicated or reordered on demand, never dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use yiwang_simulator::{DEFAULT_API_KEY, DEFAULT_PUSH_SECRET, SimConfig, Simulator};

use crate::client::{Reply, eventually, get, post_json, send, start};

const DOC: &str = include_str!("../../PROTOCOLS.md");
const FILINGS: &str = "/openapi/v1/seal-filings";

/// The fenced block right after `<!-- example: NAME -->`.
fn example(name: &str) -> &'static str {
    let marker = format!("<!-- example: {name} -->");
    let after = &DOC[DOC.find(&marker).expect("marker present") + marker.len()..];
    let body = &after[after.find("```").expect("fence opens")..];
    let start = body.find('\n').expect("fence line") + 1;
    let end = body[start..].find("```").expect("fence closes") + start;
    &body[start..end]
}

pub fn filing(request_id: &str) -> Value {
    let mut body: Value =
        serde_json::from_str(example("callback-submit")).expect("example is JSON");
    body["requestId"] = json!(request_id);
    body
}

fn quiet() -> SimConfig {
    SimConfig::callback("public-security")
        .with_stage_interval(Duration::ZERO)
        .with_push_retry(Duration::from_millis(20), Duration::from_millis(100))
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Reply {
    call_with_key(addr, method, path, body, Some(DEFAULT_API_KEY)).await
}

async fn call_with_key(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Reply {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(key) = key {
        headers.push(("X-Api-Key", key));
    }
    let bytes = body.map(Value::to_string).unwrap_or_default();
    send(addr, method, path, &headers, bytes.as_bytes())
        .await
        .expect("answered")
}

async fn submit(addr: SocketAddr, request_id: &str) -> String {
    let reply = call(addr, "POST", FILINGS, Some(&filing(request_id))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["code"], "0", "{body}");
    body["data"]["caseNo"].as_str().expect("caseNo").to_owned()
}

#[tokio::test]
async fn submit_is_idempotent_and_queryable_by_number_and_key() {
    let sim = start(quiet()).await;
    let addr = sim.addr();

    let refused = call_with_key(addr, "POST", FILINGS, Some(&filing("YW-1")), None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["code"], "A0401");
    let wrong = call_with_key(addr, "POST", FILINGS, Some(&filing("YW-1")), Some("nope")).await;
    assert_eq!(wrong.status, 401);
    assert!(sim.cases().is_empty(), "a refused key stores nothing");

    let first = call(addr, "POST", FILINGS, Some(&filing("YW-1+a"))).await;
    assert_eq!(first.status, 200);
    assert!(
        first
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let first = first.json();
    let number = first["data"]["caseNo"].as_str().expect("caseNo").to_owned();
    assert!(number.starts_with("GA") && number.len() == 16, "{number}");
    assert_eq!(first["data"]["status"], "10");
    let accepted = first["data"]["acceptTime"].as_i64().expect("epoch ms");

    let again = call(addr, "POST", FILINGS, Some(&filing("YW-1+a")))
        .await
        .json();
    assert_eq!(again["data"]["caseNo"], number.as_str());
    assert_eq!(again["data"]["acceptTime"], accepted);
    let cases = sim.cases();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].submissions, 2);
    assert_eq!(
        cases[0].unified_case_number.as_deref(),
        Some("FZGL-2026-001234")
    );
    assert_eq!(cases[0].fields["licenceNo"], "SCJGZZ00000001");

    let by_number = call(addr, "GET", &format!("{FILINGS}/{number}"), None)
        .await
        .json();
    let data = &by_number["data"];
    assert_eq!(data["status"], "10");
    assert_eq!(data["statusName"], "已接收");
    assert_eq!(data["statusTime"], accepted);
    assert_eq!(data["recordNo"], Value::Null);
    assert_eq!(data["history"].as_array().map(Vec::len), Some(1));

    // `+` is a plus sign; send it as %2B.
    let by_key = call(addr, "GET", &format!("{FILINGS}?requestId=YW-1%2Ba"), None).await;
    assert_eq!(by_key.status, 200, "{}", by_key.text());
    assert_eq!(by_key.json()["data"]["caseNo"], number.as_str());

    let unknown = call(addr, "GET", &format!("{FILINGS}?requestId=YW-404"), None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        json!({"code": "C0404", "message": "办件不存在: requestId", "field": "requestId", "data": null})
    );
    let unknown = call(addr, "GET", &format!("{FILINGS}/GA404"), None).await;
    assert_eq!(unknown.json()["field"], "caseNo");
    let no_key = call(addr, "GET", FILINGS, None).await;
    assert_eq!(
        (no_key.status, no_key.json()["code"].clone()),
        (400, json!("B0002"))
    );
    assert_eq!(
        call(addr, "DELETE", FILINGS, None).await.status,
        405,
        "wrong method"
    );
    assert_eq!(
        call(addr, "GET", "/openapi/v1/nope", None).await.status,
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn submit_checks_name_the_field() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let cases: [(&str, Value, u16, &str, &str); 8] = [
        ("licenceNo", Value::Null, 400, "B0002", "licenceNo"),
        ("applyTime", json!("2026-11-20"), 400, "B0001", "applyTime"),
        ("seals", json!([]), 400, "B0002", "seals"),
        (
            "seals",
            json!([{"sealType": "01"}, {"sealType": "07"}]),
            400,
            "B0003",
            "seals[1].sealType",
        ),
        ("uscc", json!("91350102MA2Y7K3Q6O"), 400, "B0004", "uscc"),
        ("agentIdType", Value::Null, 400, "B0002", "agentIdType"),
        ("agentIdType", json!("111"), 400, "B0003", "agentIdType"),
        (
            "materials",
            json!([{"mediaType": "application/pdf"}]),
            400,
            "B0002",
            "materials[0].name",
        ),
    ];
    for (field, value, status, code, named) in cases {
        let mut body = filing("YW-BAD");
        if value.is_null() {
            body.as_object_mut().map(|o| o.remove(field));
        } else {
            body[field] = value;
        }
        let reply = call(addr, "POST", FILINGS, Some(&body)).await;
        assert_eq!(reply.status, status, "{field}: {}", reply.text());
        let reply = reply.json();
        assert_eq!(reply["code"], code, "{field}: {reply}");
        assert_eq!(reply["field"], named, "{field}: {reply}");
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(message.ends_with(&format!(": {named}")), "{message}");
    }
    let not_json = send(
        addr,
        "POST",
        FILINGS,
        &[("X-Api-Key", DEFAULT_API_KEY)],
        b"<xml/>",
    )
    .await
    .expect("answered");
    assert_eq!(not_json.json()["code"], "B0001");

    sim.faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "uscc".into();
    });
    let rejected = call(addr, "POST", FILINGS, Some(&filing("YW-R"))).await;
    assert_eq!(rejected.status, 400);
    assert_eq!(
        rejected.json(),
        json!({"code": "B0004", "message": "字段校验不通过: uscc", "field": "uscc", "data": null})
    );
    assert!(sim.cases().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn withdraw_and_supplement_follow_the_status_rules() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let number = submit(addr, "YW-W").await;
    sim.set_status(&number, "30", Some("缺营业执照副本"))
        .expect("status set");
    let supplement = json!({"materials": [{"name": "营业执照副本"}], "note": "已补交"});
    let reply = call(
        addr,
        "POST",
        &format!("{FILINGS}/{number}/supplement"),
        Some(&supplement),
    )
    .await
    .json();
    assert_eq!(reply["data"]["status"], "40", "{reply}");
    assert_eq!(sim.case(&number).map(|c| c.supplements.len()), Some(1));

    let empty = call(
        addr,
        "POST",
        &format!("{FILINGS}/{number}/supplement"),
        Some(&json!({"materials": []})),
    )
    .await;
    assert_eq!(empty.json()["field"], "materials");

    let withdraw = json!({"reason": "申请人撤回"});
    let path = format!("{FILINGS}/{number}/withdraw");
    let reply = call(addr, "POST", &path, Some(&withdraw)).await.json();
    assert_eq!(reply["data"]["status"], "90");
    assert_eq!(reply["data"]["statusName"], "已撤回");
    let again = call(addr, "POST", &path, Some(&withdraw)).await;
    assert_eq!(again.status, 200, "withdrawing twice is safe to retry");

    let done = submit(addr, "YW-DONE").await;
    for _ in 0..5 {
        sim.advance(&done);
    }
    let case = sim.case(&done).expect("case");
    assert_eq!(case.status, "70");
    assert_eq!(case.result.as_deref(), Some("准予备案"));
    let record = case.certificate_number.expect("record number");
    assert!(record.starts_with("GAYZ") && record.len() == 14, "{record}");
    let late = call(
        addr,
        "POST",
        &format!("{FILINGS}/{done}/withdraw"),
        Some(&withdraw),
    )
    .await;
    assert_eq!(late.status, 409);
    assert_eq!(late.json()["code"], "C0409");
    sim.shutdown().await;
}

// --- pushes ------------------------------------------------------------------------------

/// One push as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("push body is JSON")
    }

    fn status(&self) -> String {
        self.json()["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn signed_correctly(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(self.timestamp.as_bytes());
        mac.update(b"\n");
        mac.update(&self.body);
        hex::encode(mac.finalize().into_bytes()) == self.signature
    }
}

/// A tiny callback receiver: records every push and answers with `status` (200 = the
/// acknowledgement `{"code":"0"}`, anything else an error page).
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let task = tokio::spawn({
            let (seen, status) = (Arc::clone(&seen), Arc::clone(&status));
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (seen, status) = (Arc::clone(&seen), Arc::clone(&status));
                    tokio::spawn(serve(tcp, seen, status));
                }
            }
        });
        Receiver {
            addr,
            seen,
            status,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/callbacks/public-security", self.addr)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }

    fn statuses(&self) -> Vec<String> {
        self.seen().iter().map(Received::status).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve requests on one connection until the peer closes it.
async fn serve(mut tcp: TcpStream, seen: Arc<Mutex<Vec<Received>>>, status: Arc<AtomicU16>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        while buf.len() < end + 4 + length {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[end + 4..end + 4 + length].to_vec();
        buf.drain(..end + 4 + length);
        seen.lock().expect("lock").push(Received {
            id: header("x-push-id"),
            timestamp: header("x-push-timestamp"),
            signature: header("x-push-signature"),
            body,
        });
        let code = status.load(Ordering::SeqCst);
        let answer = if code == 200 {
            r#"{"code":"0","message":"成功"}"#
        } else {
            "<html><body>busy</body></html>"
        };
        let reply = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if tcp.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn path_to_completion(sim: &Simulator, number: &str) {
    for _ in 0..5 {
        assert!(sim.advance(number).is_some());
    }
}

#[tokio::test]
async fn every_status_change_is_pushed_signed_in_order() {
    let receiver = Receiver::start(200).await;
    let sim = start(quiet().with_callback_url(receiver.url())).await;
    let number = submit(sim.addr(), "YW-P").await;
    path_to_completion(&sim, &number);
    assert!(
        eventually(Duration::from_secs(5), || receiver.seen().len() >= 6).await,
        "{:?}",
        sim.push_stats()
    );
    assert_eq!(receiver.statuses(), ["10", "20", "40", "50", "60", "70"]);
    let seen = receiver.seen();
    let case = sim.case(&number).expect("case");
    for (push, entry) in seen.iter().zip(&case.history) {
        assert!(push.signed_correctly(DEFAULT_PUSH_SECRET), "{push:?}");
        assert!(!push.signed_correctly("another-secret"));
        let body = push.json();
        assert_eq!(body["pushId"], push.id.as_str());
        assert_eq!(body["eventType"], "STATUS_CHANGED");
        assert_eq!(body["caseNo"], number.as_str());
        assert_eq!(body["requestId"], "YW-P");
        assert_eq!(body["unifiedCaseNo"], "FZGL-2026-001234");
        assert_eq!(body["statusName"], entry.name.as_str());
        assert_eq!(body["statusTime"], entry.at.timestamp_millis());
        let sent: i64 = push.timestamp.parse().expect("epoch ms");
        let now = chrono::Utc::now().timestamp_millis();
        assert!((now - sent).abs() < 60_000, "timestamp {sent} vs {now}");
    }
    let ids: std::collections::HashSet<&str> = seen.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "one push id per change");
    let record = case.certificate_number.expect("record number");
    assert_eq!(seen[3].json()["recordNo"], Value::Null);
    assert_eq!(seen[4].json()["recordNo"], record.as_str());
    assert_eq!(seen[5].json()["recordNo"], record.as_str());
    assert_eq!(seen[5].json()["result"], "准予备案");

    let stats = sim.push_stats().expect("a pushing network");
    assert_eq!(
        (
            stats.attempts,
            stats.acknowledged,
            stats.delivered,
            stats.pending
        ),
        (6, 6, 6, 0)
    );
    assert_eq!(stats.callback_url.as_deref(), Some(receiver.url().as_str()));
    let over_http = get(sim.addr(), "/_sim/pushes").await.json();
    assert_eq!(over_http["delivered"], 6);

    // A withdrawal is a status change too, pushed with its reason.
    let other = submit(sim.addr(), "YW-P2").await;
    call(
        sim.addr(),
        "POST",
        &format!("{FILINGS}/{other}/withdraw"),
        Some(&json!({"reason": "申请人撤回"})),
    )
    .await;
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() == 8).await);
    let last = receiver.seen()[7].json();
    assert_eq!(
        (last["status"].clone(), last["remark"].clone()),
        (json!("90"), json!("申请人撤回"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn pushes_queue_while_the_receiver_is_down_and_are_retried_until_acknowledged() {
    let receiver = Receiver::start(503).await;
    let sim = start(quiet().with_callback_url(receiver.url())).await;
    let number = submit(sim.addr(), "YW-DOWN").await;
    sim.advance(&number);
    sim.advance(&number);
    // The first push is retried (with backoff) and holds the others back.
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() >= 4).await);
    let stats = sim.push_stats().expect("stats");
    assert_eq!((stats.delivered, stats.pending), (0, 3), "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{stats:?}"
    );
    let retries = receiver.seen();
    assert!(
        retries
            .iter()
            .all(|p| p.id == retries[0].id && p.body == retries[0].body)
    );
    assert!(
        retries
            .iter()
            .all(|p| p.signed_correctly(DEFAULT_PUSH_SECRET))
    );

    receiver.status.store(200, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || sim
            .push_stats()
            .is_some_and(|s| s.pending == 0))
        .await
    );
    // Retries of one push, then the next: never out of order, never skipped.
    let mut order = receiver.statuses();
    order.dedup();
    assert_eq!(order, ["10", "20", "40"]);
    let stats = sim.push_stats().expect("stats");
    assert_eq!(stats.delivered, 3);
    assert!(stats.attempts > stats.acknowledged, "{stats:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn pushes_wait_for_a_callback_url_and_survive_a_refused_connection() {
    // A port nobody listens on: connections are refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed_url = format!("http://{}/cb", closed.local_addr().expect("addr"));
    drop(closed);
    let sim = start(quiet()).await;
    let number = submit(sim.addr(), "YW-Q").await;
    sim.advance(&number);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = sim.push_stats().expect("stats");
    assert_eq!((stats.attempts, stats.pending), (0, 2), "no URL: queued");

    sim.set_callback_url(Some(&closed_url)).expect("valid URL");
    assert!(
        eventually(Duration::from_secs(5), || sim
            .push_stats()
            .is_some_and(|s| s.attempts >= 2))
        .await
    );
    assert_eq!(sim.push_stats().map(|s| s.pending), Some(2));

    let receiver = Receiver::start(200).await;
    let set = post_json(
        sim.addr(),
        "/_sim/pushes",
        None,
        &json!({"callback_url": receiver.url()}),
    )
    .await;
    assert_eq!(set.status, 200);
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() == 2).await);
    assert_eq!(receiver.statuses(), ["10", "20"]);

    let bad = post_json(
        sim.addr(),
        "/_sim/pushes",
        None,
        &json!({"callback_url": "https://example.invalid/cb"}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(sim.set_callback_url(Some("ftp://x/")).is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_and_reorder_faults_act_on_pushes() {
    let receiver = Receiver::start(200).await;
    let sim = start(quiet().with_callback_url(receiver.url())).await;
    let set = post_json(
        sim.addr(),
        "/_sim/faults",
        None,
        &json!({"push_duplicate_next": 1}),
    )
    .await;
    assert_eq!(set.json()["push_duplicate_next"], 1);
    let number = submit(sim.addr(), "YW-DUP").await;
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() == 2).await);
    let seen = receiver.seen();
    assert_eq!(seen[0].id, seen[1].id, "the same push twice");
    assert_eq!(seen[0].body, seen[1].body);
    assert!(seen[1].signed_correctly(DEFAULT_PUSH_SECRET));
    assert_eq!(sim.faults().snapshot().push_duplicate_next, 0);

    // Held back: 20 waits until 40 has been acknowledged.
    sim.faults().update(|f| f.push_reorder_next = 1);
    sim.advance(&number);
    sim.advance(&number);
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() == 4).await);
    assert_eq!(receiver.statuses()[2..], ["40", "20"]);
    let stats = sim.push_stats().expect("stats");
    assert_eq!(
        (
            stats.attempts,
            stats.acknowledged,
            stats.delivered,
            stats.pending
        ),
        (4, 4, 3, 0)
    );

    // A business-request fault never touches pushes, and a reset forgets the queue.
    sim.faults().update(|f| f.maintenance = true);
    sim.advance(&number);
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() == 5).await);
    sim.reset();
    assert_eq!(
        sim.push_stats().map(|s| (s.attempts, s.pending)),
        Some((0, 0))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn only_callback_networks_push() {
    let sim = start(SimConfig::json_rest("market-regulation")).await;
    assert!(sim.push_stats().is_none());
    assert!(sim.set_callback_url(Some("http://127.0.0.1:1/cb")).is_err());
    assert_eq!(get(sim.addr(), "/_sim/pushes").await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn statuses_advance_by_themselves_and_are_pushed() {
    let receiver = Receiver::start(200).await;
    let sim = start(
        quiet()
            .with_stage_interval(Duration::from_millis(20))
            .with_callback_url(receiver.url()),
    )
    .await;
    let info = get(sim.addr(), "/_sim/info").await.json();
    assert_eq!(info["archetype"], "callback");
    assert_eq!(info["case_prefix"], "GA");
    submit(sim.addr(), "YW-AUTO").await;
    assert!(eventually(Duration::from_secs(5), || receiver.seen().len() == 6).await);
    assert_eq!(receiver.statuses(), ["10", "20", "40", "50", "60", "70"]);
    sim.shutdown().await;
}
