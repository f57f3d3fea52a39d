//! "Audited before answered", as one layer around every edge's routes.
//!
//! A handler that must leave a record returns an [`AuditNote`] beside its
//! answer (`(note, result)`); the note rides in the response's extensions
//! and says what only the handler knows: the record's kind, the case, the
//! network, the request body, the action's detail. The layer takes the note
//! out, adds who asked (the connection's [`Caller`]) and the status actually
//! answered, and writes the record. For requests that change state (intake,
//! change, callback, admin actions) the write is durable before the answer
//! leaves, and a request that cannot be audited is answered 503 instead: a
//! client must never see a success the trail does not hold. Reads are
//! recorded without waiting for the disk. A handler that returns no note
//! leaves no record (a refused admin action changed nothing; denials are
//! recorded where the policy decides them).
//!
//! What a handler wants said about a success (the "case accepted" log line,
//! the acceptance counters) rides in the note too ([`AuditNote::then`]) and
//! is said only once the record is durable: a kill between the two leaves
//! the trail holding one more acceptance than the logs, never one fewer, so
//! logs and metrics never count what the trail does not hold.

use super::problem::Problem;
use crate::policy::{AdminOp, Caller};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use bytes::Bytes;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use yiwang_audit::{AuditError, AuditLog, Entry, Kind};

/// What a handler tells the audit layer about its request.
#[derive(Debug, Clone)]
pub(crate) struct AuditNote {
    kind: Kind,
    case: Option<String>,
    network: Option<String>,
    detail: Detail,
    /// The request body: its sha256 and size are recorded (the bytes too,
    /// encrypted, when the trail keeps bodies).
    request: Option<Bytes>,
    /// Durable before the answer (else recorded in the background).
    durable: bool,
    /// Said once the record is written.
    then: Option<Then>,
}

/// What to say (log, count) once the record is written.
#[derive(Clone)]
struct Then(Arc<dyn Fn() + Send + Sync>);

impl Then {
    fn say(then: Option<Then>) {
        if let Some(Then(say)) = then {
            say();
        }
    }
}

impl std::fmt::Debug for Then {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Then(..)")
    }
}

/// A record's `detail`.
#[derive(Debug, Clone)]
enum Detail {
    /// The status the request was answered: `{"status": 202}`.
    AnswerStatus,
    /// What the handler said.
    Given(Value),
    /// Nothing to add (`{}`).
    Empty,
}

impl AuditNote {
    /// A request that hands work to the gateway (intake, change, callback):
    /// recorded durably with its body and the status it was answered.
    pub(crate) fn request(kind: Kind, body: Option<Bytes>) -> Self {
        AuditNote {
            kind,
            case: None,
            network: None,
            detail: Detail::AnswerStatus,
            request: body,
            durable: true,
            then: None,
        }
    }

    /// An operator action that changed something, recorded durably.
    pub(crate) fn action(op: AdminOp, network: Option<&str>, detail: Value) -> Self {
        AuditNote {
            kind: Kind::Admin,
            case: None,
            network: network.map(str::to_string),
            detail: Detail::Given(json!({ "operation": op.as_str(), "detail": detail })),
            request: None,
            durable: true,
            then: None,
        }
    }

    /// A read (a case, a search, the audit trail itself).
    pub(crate) fn read(case: Option<&str>, detail: Option<Value>) -> Self {
        AuditNote {
            kind: Kind::Read,
            case: case.map(str::to_string),
            network: None,
            detail: detail.map_or(Detail::Empty, Detail::Given),
            request: None,
            durable: false,
            then: None,
        }
    }

    pub(crate) fn case(mut self, case: &str) -> Self {
        self.case = Some(case.to_string());
        self
    }

    pub(crate) fn network(mut self, network: &str) -> Self {
        self.network = Some(network.to_string());
        self
    }

    /// Say something (a log line, a counter) once the record is written:
    /// after its fsync for a durable note, never if it could not be.
    pub(crate) fn then(mut self, say: impl Fn() + Send + Sync + 'static) -> Self {
        self.then = Some(Then(Arc::new(say)));
        self
    }

    /// The record, once the principal and the answer are known.
    fn entry(self, principal: Option<String>, status: http::StatusCode) -> Entry {
        let mut entry = Entry::new(self.kind).about(self.case.as_deref(), self.network.as_deref());
        if let Some(p) = principal {
            entry = entry.principal(p);
        }
        match self.detail {
            Detail::AnswerStatus => entry = entry.detail(json!({ "status": status.as_u16() })),
            Detail::Given(detail) => entry = entry.detail(detail),
            Detail::Empty => {}
        }
        if let Some(body) = self.request {
            entry = entry.body("request", body.to_vec());
        }
        entry
    }

    /// The answer when the record could not be written.
    fn unaudited(kind: Kind, e: &AuditError) -> Problem {
        match kind {
            Kind::Callback => {
                Problem::unavailable(format!("the callback could not be audited: {e}"))
                    .retry_after(60)
            }
            Kind::Admin => Problem::unavailable(format!("the action could not be audited: {e}")),
            _ => Problem::unavailable(format!("the request could not be audited: {e}")),
        }
    }
}

/// Returning `(note, answer)` from a handler puts the note in the answer.
impl IntoResponseParts for AuditNote {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Infallible> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// The layer: `axum::middleware::from_fn_with_state(audit_log, audit::layer)`.
pub(crate) async fn layer(State(log): State<Arc<AuditLog>>, req: Request, next: Next) -> Response {
    let principal = req.extensions().get::<Arc<Caller>>().map(|c| c.name());
    let mut answer = next.run(req).await;
    let Some(mut note) = answer.extensions_mut().remove::<AuditNote>() else {
        return answer;
    };
    let (kind, durable, then) = (note.kind, note.durable, note.then.take());
    let entry = note.entry(principal, answer.status());
    if !durable {
        log.record(entry);
        Then::say(then);
        return answer;
    }
    match log.append(entry).await {
        Ok(_) => {
            Then::say(then);
            answer
        }
        Err(e) => {
            tracing::error!(kind = %kind, error = %e, "a request could not be audited");
            AuditNote::unaudited(kind, &e).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use http::StatusCode;
    use tower::ServiceExt;
    use yiwang_audit::{AuditConfig, Query, Record};

    /// A router whose handlers leave the notes the real edges leave.
    fn router(log: Arc<AuditLog>) -> Router {
        Router::new()
            .route(
                "/intake",
                post(|body: Bytes| async move {
                    let note = AuditNote::request(Kind::Intake, Some(body)).case("C-1");
                    (note, Err::<(), _>(Problem::not_found("no such case")))
                }),
            )
            .route(
                "/action",
                post(|| async {
                    let note = AuditNote::action(AdminOp::Resume, Some("tax"), json!({"x": 1}));
                    (note, "done")
                }),
            )
            .route("/silent", post(|| async { "nothing to record" }))
            .layer(axum::middleware::from_fn_with_state(log, layer))
    }

    async fn call(router: &Router, path: &str, body: &'static str) -> Response {
        let mut req = Request::post(path)
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("request: {e}"));
        req.extensions_mut().insert(Arc::new(Caller::anonymous()));
        router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {})
    }

    fn records(dir: &std::path::Path) -> Vec<Record> {
        yiwang_audit::query(dir, &Query::default())
            .filter_map(Result::ok)
            .filter(|r| matches!(r.kind, Kind::Intake | Kind::Admin))
            .collect()
    }

    #[tokio::test]
    async fn the_record_holds_what_the_handler_said_and_the_status_answered() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = AuditLog::open(dir.path(), &AuditConfig::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        let router = router(Arc::clone(&log));

        assert_eq!(call(&router, "/intake", "{}").await.status(), 404);
        assert_eq!(call(&router, "/action", "").await.status(), 200);
        assert_eq!(call(&router, "/silent", "").await.status(), 200);

        let recs = records(dir.path());
        assert_eq!(
            recs.len(),
            2,
            "one record per noted request, none for the silent one"
        );
        let intake = &recs[0];
        assert_eq!(intake.kind, Kind::Intake);
        assert_eq!(intake.principal.as_deref(), Some("unmapped:anonymous"));
        assert_eq!(intake.case.as_deref(), Some("C-1"));
        assert_eq!(intake.detail, json!({"status": 404}));
        assert_eq!(intake.bodies.len(), 1, "the request body's digest is kept");
        let action = &recs[1];
        assert_eq!(action.kind, Kind::Admin);
        assert_eq!(action.network.as_deref(), Some("tax"));
        assert_eq!(
            action.detail,
            json!({"operation": AdminOp::Resume.as_str(), "detail": {"x": 1}})
        );
    }

    #[tokio::test]
    async fn what_a_success_says_follows_its_durable_record() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = AuditLog::open(dir.path(), &AuditConfig::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        // Each time the handler's "case accepted" is said: the intake
        // records then on disk.
        let said: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
        let (trail, heard) = (dir.path().to_path_buf(), Arc::clone(&said));
        let accept = move || {
            let (trail, heard) = (trail.clone(), Arc::clone(&heard));
            async move {
                let note = AuditNote::request(Kind::Intake, None)
                    .case("C-2")
                    .then(move || {
                        let on_disk = records(&trail).len();
                        heard
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(on_disk);
                    });
                (note, "accepted")
            }
        };
        let router = Router::new().route("/intake", post(accept)).layer(
            axum::middleware::from_fn_with_state(Arc::clone(&log), layer),
        );
        let said_now = || said.lock().unwrap_or_else(|p| p.into_inner()).clone();

        assert_eq!(call(&router, "/intake", "").await.status(), 200);
        assert_eq!(said_now(), [1], "said once, after its record was on disk");
        log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
        let refused = call(&router, "/intake", "").await.status();
        assert_eq!(refused, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            said_now(),
            [1],
            "not said when the record could not be written"
        );
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_audited_is_not_answered_with_success() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = AuditLog::open(dir.path(), &AuditConfig::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        let router = router(Arc::clone(&log));
        log.close().await.unwrap_or_else(|e| panic!("close: {e}"));

        let answer = call(&router, "/action", "").await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("the action could not be audited"), "{text}");
        // A request without a note does not depend on the trail.
        assert_eq!(call(&router, "/silent", "").await.status(), 200);
    }
}
