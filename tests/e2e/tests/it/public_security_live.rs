//! The public-security adapter (archetype 5, callbacks) against a live simulated network:
//! submits arrive with the licence number passed on from market regulation, resubmits are
//! idempotent, and the ministry's real pushes, received by a small HTTP endpoint standing in
//! for the gateway's callback route, become events through `handle-callback`. Tampered,
//! forged and stale pushes are refused with no events, and the ministry keeps retrying
//! what was not acknowledged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use yiwang_e2e::live::{
    Settled, failure, lost_replies_are_settled_by_idem, ok, runtime, services, stages,
};
use yiwang_gateway::runtime::{
    AdapterError, CallError, CaseChange, ErrorClass, FixedClock, Header, HttpRequest,
    LoadedAdapter, NetworkSandbox, Runtime, Services, Submission,
};
use yiwang_schema::{Decision, Event, Stage};
use yiwang_simulator::{SimConfig, Simulator};

const NETWORK: &str = "public-security";
/// The market-regulation licence number the route passes on.
const LICENCE: &str = "SCJGZZ00000001";
const CASE_NUMBER: &str = "FZGL-2026-001234";

/// The adapter for `sim`'s network with the simulator's API key and push secret as the
/// network's secrets.
async fn load(rt: &Runtime, sim: &Simulator, services: Services) -> Result<LoadedAdapter> {
    load_with_push_secret(rt, sim, services, &sim.config().push_secret).await
}

async fn load_with_push_secret(
    rt: &Runtime,
    sim: &Simulator,
    services: Services,
    push_secret: &str,
) -> Result<LoadedAdapter> {
    let mut sandbox = NetworkSandbox::new(NETWORK, vec![sim.base_url().parse()?]);
    sandbox
        .secrets
        .insert("api-key".into(), sim.config().api_key.clone());
    sandbox
        .secrets
        .insert("push-secret".into(), push_secret.to_owned());
    sandbox.limits.send_timeout = Duration::from_millis(1500);
    Ok(rt
        .load(
            &yiwang_artifacts::read(yiwang_artifacts::PUBLIC_SECURITY),
            sandbox,
            services,
        )
        .await?)
}

/// A simulator that moves only when the test says so and retries pushes quickly.
async fn simulator(cfg: SimConfig) -> Result<Simulator> {
    Simulator::start(
        cfg.with_stage_interval(Duration::ZERO)
            .with_push_retry(Duration::from_millis(20), Duration::from_millis(200)),
        "127.0.0.1:0".parse()?,
    )
    .await
}

fn enterprise_case() -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../adapters-sdk/schema/testdata/enterprise-establishment.json");
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

fn submission(case_json: &str, key: &str) -> Submission {
    Submission {
        case_json: case_json.to_owned(),
        idempotency_key: key.to_owned(),
        inputs: vec![("licence-number".to_owned(), LICENCE.to_owned())],
    }
}

/// Poll `check` every 10 ms until it holds; false after 5 s.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

// --- a stand-in for the gateway's callback endpoint ----------------------------------------

/// One push as it arrived, and what the adapter made of it.
#[derive(Debug, Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The answer the ministry got.
    status: u16,
    events: Vec<Event>,
    error: Option<String>,
}

impl Delivery {
    fn request(&self) -> HttpRequest {
        request(&self.headers, self.body.clone())
    }
}

fn request(headers: &[(String, String)], body: Vec<u8>) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: "/callbacks/public-security".into(),
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        body,
    }
}

/// Receives the ministry's pushes over HTTP, hands each to the adapter's `handle-callback`
/// and answers with the outcome's response (HTTP 500 when the call fails, so the ministry
/// keeps the push), as the gateway's callback route will.
struct CallbackEndpoint {
    addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    task: JoinHandle<()>,
}

impl CallbackEndpoint {
    async fn start(adapter: Arc<LoadedAdapter>) -> Result<CallbackEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let deliveries = Arc::clone(&deliveries);
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    tokio::spawn(serve(tcp, Arc::clone(&adapter), Arc::clone(&deliveries)));
                }
            }
        });
        Ok(CallbackEndpoint {
            addr,
            deliveries,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://{}/callbacks/public-security", self.addr)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Events of the pushes the adapter accepted, in arrival order.
    fn events(&self) -> Vec<Event> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.status == 200)
            .flat_map(|d| d.events)
            .collect()
    }
}

impl Drop for CallbackEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads HTTP/1.1 requests off one connection (keep-alive) until the peer closes it.
async fn serve(
    mut tcp: TcpStream,
    adapter: Arc<LoadedAdapter>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[end + 4..end + 4 + length].to_vec();
        buf.drain(..end + 4 + length);

        let report = adapter
            .handle_callback(request(&headers, body.clone()))
            .await;
        let (status, answer, events, error) = match report.result {
            Ok(outcome) => (
                outcome.response.status,
                outcome.response.body,
                outcome.events,
                None,
            ),
            Err(e) => (
                500,
                b"{\"code\":\"500\"}".to_vec(),
                Vec::new(),
                Some(e.to_string()),
            ),
        };
        deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Delivery {
                headers,
                body,
                status,
                events,
                error,
            });
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if tcp.write_all(head.as_bytes()).await.is_err() || tcp.write_all(&answer).await.is_err() {
            return;
        }
    }
}

// --- tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_idempotently_and_turns_real_pushes_into_events() -> Result<()> {
    let sim = simulator(SimConfig::callback(NETWORK)).await?;
    let rt = runtime()?;
    let adapter = Arc::new(load(&rt, &sim, services()).await?);
    assert_eq!(adapter.descriptor().network_kind, "json-apikey-callback");
    let endpoint = CallbackEndpoint::start(Arc::clone(&adapter)).await?;
    sim.set_callback_url(Some(&endpoint.url()))?;
    let case = enterprise_case()?;

    let receipt = ok(
        adapter
            .submit(CASE_NUMBER, submission(&case, "K-GA-1"))
            .await,
        "submit",
    )?;
    let number = receipt.network_case_number.clone();
    assert!(number.starts_with("GA"), "{number}");
    assert_eq!(stages(&receipt.events), [Stage::Received]);
    let stored = sim.case(&number).context("the case is stored")?;
    assert_eq!(stored.fields["licenceNo"], LICENCE);
    assert_eq!(stored.fields["requestId"], "K-GA-1");
    assert_eq!(stored.fields["uscc"], "91350102MA2Y7K3Q67");
    assert_eq!(stored.fields["legalRep"], "陈建华");
    assert_eq!(stored.fields["applyTime"], 1_795_138_200_000_i64);
    assert_eq!(stored.fields["seals"][2]["sealType"], "03");
    assert_eq!(stored.fields["agentIdType"], "1");

    // A retry of the same delivery lands on the same case.
    let again = ok(
        adapter
            .submit(CASE_NUMBER, submission(&case, "K-GA-1"))
            .await,
        "resubmit",
    )?;
    assert_eq!(again.network_case_number, number);
    assert_eq!(sim.cases().len(), 1);
    assert_eq!(sim.case(&number).map(|c| c.submissions), Some(2));

    // Every status change comes back as a push, accepted and acknowledged.
    for _ in 0..5 {
        sim.advance(&number).context("advance")?;
    }
    assert!(
        eventually(|| sim.push_stats().is_some_and(|s| s.delivered == 6)).await,
        "{:?} {:?}",
        sim.push_stats(),
        endpoint.deliveries()
    );
    let pushed = endpoint.events();
    assert_eq!(
        stages(&pushed),
        [
            Stage::Received,
            Stage::Accepted,
            Stage::UnderReview,
            Stage::Decided,
            Stage::CertificateIssued,
            Stage::Completed
        ]
    );
    let record = sim
        .case(&number)
        .and_then(|c| c.certificate_number)
        .context("record number")?;
    for e in &pushed {
        assert_eq!(e.network, NETWORK);
        assert_eq!(e.network_case_number, number);
        assert_eq!(e.case_number.as_deref(), Some(CASE_NUMBER));
        assert_eq!(*e.at.offset(), yiwang_schema::BEIJING);
    }
    let done = pushed.last().context("events")?;
    assert_eq!(
        done.details.certificate_number.as_deref(),
        Some(record.as_str())
    );
    assert_eq!(done.details.decision, Some(Decision::Approved));
    assert_eq!(done.details.raw_status.as_deref(), Some("70"));
    assert_eq!(
        pushed[0].at, receipt.events[0].at,
        "the push and the receipt agree"
    );
    assert!(endpoint.deliveries().iter().all(|d| d.status == 200));
    let stats = sim.push_stats().context("stats")?;
    assert_eq!((stats.attempts, stats.pending), (6, 0), "{stats:?}");

    // The query tells the same story, by number and by idempotency key.
    let queried = ok(
        adapter.query_status(Some(CASE_NUMBER), &number).await,
        "query",
    )?;
    assert_eq!(stages(&queried), stages(&pushed));
    assert_eq!(queried.last(), pushed.last(), "the same completed event");
    let by_key = ok(
        adapter.query_status(None, "idem:K-GA-1").await,
        "idem query",
    )?;
    assert_eq!(by_key.len(), 6);
    let missing = ok(
        adapter.query_status(None, "idem:K-NEVER").await,
        "idem query, unknown key",
    )?;
    assert!(missing.is_empty());

    // A withdrawal by idempotency key; its push carries the reason.
    let second = ok(
        adapter
            .submit("FZGL-2026-001235", submission(&case, "K-GA-2"))
            .await,
        "submit 2",
    )?;
    let change = CaseChange {
        network_case_number: "idem:K-GA-2".into(),
        change_json: serde_json::json!({"case_number": "FZGL-2026-001235",
            "kind": {"kind": "withdraw", "reason": "申请人主动撤回"},
            "at": "2026-11-21T10:00:00+08:00"})
        .to_string(),
        idempotency_key: "chg-1".into(),
    };
    let withdrawn = ok(adapter.update("FZGL-2026-001235", change).await, "withdraw")?;
    assert_eq!(stages(&withdrawn), [Stage::Withdrawn]);
    assert_eq!(
        sim.case(&second.network_case_number).map(|c| c.status),
        Some("90".into())
    );
    assert!(eventually(|| endpoint.events().len() == 8).await);
    let last = endpoint.events().pop().context("withdraw push")?;
    assert_eq!(last.stage, Stage::Withdrawn);
    assert_eq!(last.details.reason.as_deref(), Some("申请人主动撤回"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_forged_and_stale_pushes_are_refused_and_retried() -> Result<()> {
    let sim = simulator(SimConfig::callback(NETWORK)).await?;
    let rt = runtime()?;
    let adapter = Arc::new(load(&rt, &sim, services()).await?);
    let endpoint = CallbackEndpoint::start(Arc::clone(&adapter)).await?;
    sim.set_callback_url(Some(&endpoint.url()))?;
    let case = enterprise_case()?;
    let number = ok(
        adapter
            .submit(CASE_NUMBER, submission(&case, "K-GA-T"))
            .await,
        "submit",
    )?
    .network_case_number;
    assert!(eventually(|| endpoint.events().len() == 1).await);
    let genuine = endpoint.deliveries().remove(0);
    assert_eq!(genuine.status, 200);

    // The same push with its status changed on the way: 401, no events.
    let text = String::from_utf8(genuine.body.clone())?;
    assert!(text.contains("\"status\":\"10\""), "{text}");
    let tampered = text.replace("\"status\":\"10\"", "\"status\":\"70\"");
    let mut forged = genuine.request();
    forged.body = tampered.into_bytes();
    let outcome = ok(adapter.handle_callback(forged).await, "tampered push")?;
    assert_eq!(outcome.response.status, 401);
    assert!(outcome.events.is_empty());

    // Without a signature at all: 401.
    let mut unsigned = genuine.request();
    unsigned
        .headers
        .retain(|h| !h.name.eq_ignore_ascii_case("x-push-signature"));
    let outcome = ok(adapter.handle_callback(unsigned).await, "unsigned push")?;
    assert_eq!(outcome.response.status, 401);
    assert!(outcome.events.is_empty());

    // The genuine push replayed ten minutes later: 403.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let later = i64::try_from(now.as_millis())? + 10 * 60_000;
    let mut clock_ahead = services();
    clock_ahead.clock = Arc::new(FixedClock(later));
    let replaying = load(&rt, &sim, clock_ahead).await?;
    let outcome = ok(
        replaying.handle_callback(genuine.request()).await,
        "replayed push",
    )?;
    assert_eq!(outcome.response.status, 403);
    assert!(outcome.events.is_empty());
    // … while the same push is still accepted now (a duplicate: the same event again).
    let outcome = ok(
        adapter.handle_callback(genuine.request()).await,
        "duplicate",
    )?;
    assert_eq!(outcome.response.status, 200);
    assert_eq!(outcome.events, genuine.events);

    // A gateway holding the wrong push secret refuses every real push; the ministry keeps
    // them and retries, and once the secret is right they all arrive, in order.
    let wrong = Arc::new(load_with_push_secret(&rt, &sim, services(), "not-the-secret").await?);
    let refusing = CallbackEndpoint::start(wrong).await?;
    sim.set_callback_url(Some(&refusing.url()))?;
    sim.advance(&number).context("advance")?;
    sim.advance(&number).context("advance")?;
    assert!(eventually(|| refusing.deliveries().len() >= 3).await);
    assert!(
        refusing
            .deliveries()
            .iter()
            .all(|d| d.status == 401 && d.events.is_empty() && d.error.is_none()),
        "refused as outcomes (a 401 answer), not as failed calls"
    );
    let stats = sim.push_stats().context("stats")?;
    assert_eq!(stats.pending, 2, "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("401"))
    );

    sim.set_callback_url(Some(&endpoint.url()))?;
    assert!(eventually(|| sim.push_stats().is_some_and(|s| s.pending == 0)).await);
    assert_eq!(
        stages(&endpoint.events()),
        [Stage::Received, Stage::Accepted, Stage::UnderReview]
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_pushes_keep_their_own_times() -> Result<()> {
    let sim = simulator(SimConfig::callback(NETWORK)).await?;
    let rt = runtime()?;
    let adapter = Arc::new(load(&rt, &sim, services()).await?);
    let endpoint = CallbackEndpoint::start(Arc::clone(&adapter)).await?;
    sim.set_callback_url(Some(&endpoint.url()))?;
    let case = enterprise_case()?;

    sim.faults().update(|f| f.push_duplicate_next = 1);
    let number = ok(
        adapter
            .submit(CASE_NUMBER, submission(&case, "K-GA-D"))
            .await,
        "submit",
    )?
    .network_case_number;
    assert!(eventually(|| endpoint.events().len() == 2).await);
    let events = endpoint.events();
    assert_eq!(
        events[0], events[1],
        "a duplicate push is the same event again"
    );

    sim.faults().update(|f| f.push_reorder_next = 1);
    sim.advance(&number).context("advance")?;
    // Apart by a few milliseconds, so the two status times differ.
    tokio::time::sleep(Duration::from_millis(5)).await;
    sim.advance(&number).context("advance")?;
    assert!(eventually(|| endpoint.events().len() == 4).await);
    let late = &endpoint.events()[2..];
    assert_eq!(stages(late), [Stage::UnderReview, Stage::Accepted]);
    assert!(
        late[1].at < late[0].at,
        "the late push keeps the time the status changed"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_classified() -> Result<()> {
    let sim = simulator(SimConfig::callback(NETWORK)).await?;
    let rt = runtime()?;
    let adapter = load(&rt, &sim, services()).await?;
    let case = enterprise_case()?;
    let submit = |key: &'static str| adapter.submit(CASE_NUMBER, submission(&case, key));

    // No licence number from upstream: refused before anything is sent.
    let mut bare = submission(&case, "K-NOLIC");
    bare.inputs.clear();
    let report = adapter.submit(CASE_NUMBER, bare).await;
    assert!(!report.trace.sent, "nothing sent");
    let (err, class) = failure(report, "submit without a licence number")?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("licence-number"), "{err}");

    sim.faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "uscc".into();
    });
    let (err, class) = failure(submit("K-REJECT").await, "rejected submit")?;
    assert_eq!(class, ErrorClass::Permanent);
    match err {
        CallError::Adapter(AdapterError::Permanent(r)) => {
            assert_eq!(r.field.as_deref(), Some("/applicant/id_number"));
            assert_eq!(r.code.as_deref(), Some("B0004"));
        }
        other => bail!("expected a permanent rejection, got {other}"),
    }

    let Settled {
        found: _,
        stored: _,
        resent,
    } = lost_replies_are_settled_by_idem(&sim, &adapter, &submit).await?;

    // Withdrawing a completed filing is not allowed.
    let done = resent.network_case_number;
    for _ in 0..5 {
        sim.advance(&done).context("advance")?;
    }
    let change = CaseChange {
        network_case_number: done.clone(),
        change_json: serde_json::json!({"case_number": CASE_NUMBER,
            "kind": {"kind": "withdraw", "reason": "太晚了"}, "at": "2026-11-21T10:00:00+08:00"})
        .to_string(),
        idempotency_key: "chg-late".into(),
    };
    let (err, class) = failure(adapter.update(CASE_NUMBER, change).await, "late withdraw")?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("C0409"), "{err}");

    // A wrong API key: permanent, naming the secret to fix.
    let mut sandbox = NetworkSandbox::new(NETWORK, vec![sim.base_url().parse()?]);
    sandbox.secrets.insert("api-key".into(), "wrong".into());
    let locked_out = rt
        .load(
            &yiwang_artifacts::read(yiwang_artifacts::PUBLIC_SECURITY),
            sandbox,
            services(),
        )
        .await?;
    let (err, class) = failure(
        locked_out
            .submit(CASE_NUMBER, submission(&case, "K-KEY"))
            .await,
        "submit with a wrong key",
    )?;
    assert_eq!(class, ErrorClass::Permanent);
    assert!(err.to_string().contains("api-key"), "{err}");
    // A push the host cannot check (no `push-secret`): an error, so the ministry keeps it.
    let genuine = HttpRequest {
        method: "POST".into(),
        url: "/cb".into(),
        headers: vec![
            Header {
                name: "X-Push-Timestamp".into(),
                value: "1".into(),
            },
            Header {
                name: "X-Push-Signature".into(),
                value: "00".repeat(32),
            },
        ],
        body: b"{}".to_vec(),
    };
    let (err, _) = failure(
        locked_out.handle_callback(genuine).await,
        "push without a push secret",
    )?;
    assert!(err.to_string().contains("push-secret"), "{err}");
    sim.shutdown().await;
    Ok(())
}
