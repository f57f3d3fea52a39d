use super::*;
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use tower::ServiceExt;
use yiwang_audit::{AuditConfig, AuditLog, Kind, Query, Record};

/// A router behind the fairness layer: one principal's share is one
/// request, and a body has 200 ms.
fn router(log: Arc<AuditLog>) -> (Router, Arc<Fairness>) {
    let mut cfg = ListenerConfig::new("127.0.0.1:0");
    cfg.max_concurrent_per_principal = Some(1);
    cfg.body_timeout_ms = 200;
    cfg.max_body_bytes = 16;
    let fairness = Fairness::new(&cfg, Refusals::new("intake", &cfg, log));
    let router = Router::new()
        .route("/v1/cases", post(|body: Bytes| async move { body }))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&fairness),
            layer,
        ));
    (router, fairness)
}

fn caller(subject: &str) -> Arc<Caller> {
    Arc::new(Caller {
        subject: subject.into(),
        ..Caller::anonymous()
    })
}

/// A body that sends nothing, ever (headers in, a lying length, a stall).
struct Stall;

impl hyper::body::Body for Stall {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Pending
    }
}

fn stalled() -> Body {
    Body::new(Stall)
}

async fn call(router: &Router, who: &str, body: Body) -> Response {
    let mut req = Request::post("/v1/cases")
        .body(body)
        .unwrap_or_else(|e| panic!("request: {e}"));
    req.extensions_mut().insert(caller(who));
    router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {})
}

async fn text(answer: Response) -> String {
    let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&body).into_owned()
}

fn limit_records(dir: &std::path::Path) -> Vec<Record> {
    yiwang_audit::query(dir, &Query::default())
        .filter_map(Result::ok)
        .filter(|r| r.kind == Kind::Limit)
        .collect()
}

/// A `limit` record as (principal, limit, status).
fn refusal(r: &Record) -> (Option<&str>, Option<&str>, Option<u64>) {
    (
        r.principal.as_deref(),
        r.detail["limit"].as_str(),
        r.detail["status"].as_u64(),
    )
}

fn held(f: &Fairness, principal: &str) -> usize {
    let held = f.held.lock().unwrap_or_else(|p| p.into_inner());
    held.get(principal).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_audited_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log =
        AuditLog::open(dir.path(), &AuditConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let (router, fairness) = router(Arc::clone(&log));

    let answer = call(&router, "A", stalled()).await;
    assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    let said = text(answer).await;
    assert!(said.contains("body-timeout-ms (200 ms)"), "{said}");
    assert_eq!(held(&fairness, "unmapped:A"), 0, "the slot is given back");
    let next = call(&router, "A", Body::from("{}")).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the principal is served again"
    );

    let too_large = call(&router, "A", Body::from("x".repeat(17))).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);

    log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    let recs = limit_records(dir.path());
    let limits: Vec<_> = recs.iter().map(|r| r.detail["limit"].clone()).collect();
    assert_eq!(limits, ["body-timeout-ms", "max-body-bytes"], "{recs:?}");
    assert_eq!(recs[0].principal.as_deref(), Some("unmapped:A"));
    assert_eq!(recs[0].detail["status"], 408);
    assert_eq!(recs[1].detail["status"], 413);
}

#[tokio::test]
async fn a_principal_beyond_its_share_is_refused_while_another_is_served() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log =
        AuditLog::open(dir.path(), &AuditConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let (router, fairness) = router(Arc::clone(&log));

    // A's first request stalls its body and holds A's whole share.
    let staller = tokio::spawn({
        let router = router.clone();
        async move { call(&router, "A", stalled()).await.status() }
    });
    for _ in 0..1000 {
        if held(&fairness, "unmapped:A") == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(held(&fairness, "unmapped:A"), 1, "the stall holds A's slot");

    let refused = call(&router, "A", Body::from("{}")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.headers().get(http::header::RETRY_AFTER),
        Some(&http::HeaderValue::from_static("1"))
    );
    let said = text(refused).await;
    assert!(
        said.contains("\"overloaded\"") || said.contains("/overloaded"),
        "{said}"
    );
    assert!(said.contains("max-concurrent-per-principal"), "{said}");

    let other = call(&router, "B", Body::from("{}")).await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another principal is served"
    );

    let stall_end = staller.await.unwrap_or_else(|e| panic!("staller: {e}"));
    assert_eq!(stall_end, StatusCode::REQUEST_TIMEOUT);

    log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    let recs = limit_records(dir.path());
    let seen: Vec<_> = recs
        .iter()
        .map(|r| (r.principal.clone(), r.detail["limit"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                Some("unmapped:A".to_string()),
                "max-concurrent-per-principal".into()
            ),
            (Some("unmapped:A".to_string()), "body-timeout-ms".into()),
        ]
    );
}

#[tokio::test]
async fn headers_beyond_64_kib_are_answered_431_and_audited() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log =
        AuditLog::open(dir.path(), &AuditConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let (router, _) = router(Arc::clone(&log));
    let with_header = |len: usize| {
        let mut req = Request::post("/v1/cases")
            .header("x-filler", "a".repeat(len))
            .body(Body::from("{}"))
            .unwrap_or_else(|e| panic!("request: {e}"));
        req.extensions_mut().insert(caller("A"));
        router.clone().oneshot(req)
    };
    // Just under the cap (with the request line) passes; just over is 431.
    let under = with_header(MAX_HEADER_BYTES - 100).await;
    assert_eq!(under.map(|r| r.status()).ok(), Some(StatusCode::OK));
    let over = with_header(MAX_HEADER_BYTES).await;
    let over = over.unwrap_or_else(|e| match e {});
    assert_eq!(over.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let said = text(over).await;
    assert!(said.contains("65536 bytes (64 KiB)"), "{said}");

    log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    let recs = limit_records(dir.path());
    let limits: Vec<_> = recs.iter().map(|r| r.detail["limit"].clone()).collect();
    assert_eq!(limits, ["max-header-bytes"], "{recs:?}");
    assert_eq!(recs[0].detail["status"], 431);
}

#[tokio::test]
async fn a_refusal_by_the_global_limits_is_audited() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log =
        AuditLog::open(dir.path(), &AuditConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let mut cfg = ListenerConfig::new("127.0.0.1:0");
    cfg.request_timeout_ms = 1;
    // A handler that never answers: the request timeout ends it.
    let router = super::super::with_limits(
        Router::new().route("/v1/cases", post(std::future::pending::<()>)),
        &cfg,
        &Refusals::new("intake", &cfg, Arc::clone(&log)),
    );
    let refused = call(&router, "B", Body::from("{}")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

    log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    let recs = limit_records(dir.path());
    let seen: Vec<_> = recs.iter().map(refusal).collect();
    assert_eq!(
        seen,
        [(Some("unmapped:B"), Some("request-timeout-ms"), Some(503))],
        "{recs:?}"
    );
}

#[tokio::test]
async fn max_concurrent_counts_the_whole_listener_and_its_refusal_is_audited() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log =
        AuditLog::open(dir.path(), &AuditConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let mut cfg = ListenerConfig::new("127.0.0.1:0");
    cfg.max_concurrent = 1;
    cfg.body_timeout_ms = 60_000;
    let router = super::super::with_limits(
        Router::new()
            .route("/v1/cases", post(|body: Bytes| async move { body }))
            .route("/v1/other", post(|| async { "other" })),
        &cfg,
        &Refusals::new("intake", &cfg, Arc::clone(&log)),
    );
    // A's stall holds the listener's only slot; B, on another route, is
    // refused (bounded retries until the stall has taken the slot).
    let staller = tokio::spawn({
        let router = router.clone();
        async move { call(&router, "A", stalled()).await.status() }
    });
    let mut refused = StatusCode::OK;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
        let mut req = Request::post("/v1/other")
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("request: {e}"));
        req.extensions_mut().insert(caller("B"));
        let answer = router.clone().oneshot(req).await;
        refused = answer.map_or(StatusCode::OK, |a| a.status());
        if refused == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
    }
    assert_eq!(refused, StatusCode::SERVICE_UNAVAILABLE);
    staller.abort();

    log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    let recs = limit_records(dir.path());
    let seen: Vec<_> = recs
        .iter()
        .map(|r| (r.principal.as_deref(), r.detail["limit"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [(Some("unmapped:B"), Some("max-concurrent"))],
        "{recs:?}"
    );
}

#[tokio::test]
async fn a_principal_over_its_rate_gets_429_with_retry_after_while_another_is_served() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log =
        AuditLog::open(dir.path(), &AuditConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let mut cfg = ListenerConfig::new("127.0.0.1:0");
    cfg.rate_per_principal = 1;
    cfg.burst_per_principal = Some(3);
    let router = super::super::with_limits(
        Router::new().route("/v1/cases", post(|body: Bytes| async move { body })),
        &cfg,
        &Refusals::new("intake", &cfg, Arc::clone(&log)),
    );
    for _ in 0..3 {
        assert_eq!(
            call(&router, "A", Body::from("{}")).await.status(),
            StatusCode::OK
        );
    }
    let refused = call(&router, "A", Body::from("{}")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let said = text(refused).await;
    assert!(
        said.contains("unmapped:A started more than 1 requests a second (bursts of 3)"),
        "{said}"
    );
    // Another principal has its own budget.
    assert_eq!(
        call(&router, "B", Body::from("{}")).await.status(),
        StatusCode::OK
    );

    log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    let recs = limit_records(dir.path());
    let seen: Vec<_> = recs.iter().map(refusal).collect();
    assert_eq!(
        seen,
        [(Some("unmapped:A"), Some("rate-per-principal"), Some(429))]
    );
}
