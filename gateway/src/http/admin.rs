//! The operators' API: queue, dead letters, replay, destinations, adapter
//! hot swap, lifting a network's alert, Prometheus `/metrics`; and the
//! auditors' read of the audit trail. Every route is authorized against the
//! caller's grants, and every action that changes something is audited.

use super::AppState;
use super::audit::AuditNote;
use super::openapi::{Describe, Edge, NetworkPath, finish, op};
use super::problem::Problem;
use crate::delivery::admin::{self, JobFilter, ReplayRequest};
use crate::delivery::{ResumeError, VersionError};
use crate::policy::{Action, AdminOp, Caller};
use crate::publisher::{AdapterSignature, SIGNATURE_HEADER};
use crate::wire::{
    AdapterSwapped, AuditVerified, DeadLettersAnswer, DestinationsAnswer, LiftedAlert, QueueAnswer,
    ReplayAnswer, Resumed,
};
use aide::axum::ApiRouter;
use aide::transform::TransformOperation;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn router(state: AppState) -> Router {
    let api = finish(routes(), Edge::Admin).0;
    let router = api
        .merge(super::console::assets())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::console::same_origin,
        ));
    super::audited(router, state)
}

/// The routes, each with its description (see [`super::openapi`]); the
/// console's JSON endpoints among them (its pages are not API).
pub(super) fn routes() -> ApiRouter<AppState> {
    let read = "Requires the `read` admin grant.";
    super::console::routes()
        .route("/admin/queue", get(queue))
        .api_route_docs(
            "/admin/queue",
            op("get", TAG, "listQueue", |o| {
                o.summary("Jobs not yet delivered (oldest first)")
                    .description(read)
                    .input::<Query<JobFilter>>()
                    .response_with::<200, Json<QueueAnswer>, _>(|r| r.description("The jobs."))
            }),
        )
        .route("/admin/dlq", get(dlq))
        .api_route_docs(
            "/admin/dlq",
            op("get", TAG, "listDeadLetters", |o| {
                o.summary("Dead letters, with their attempts and the case")
                    .description(read)
                    .input::<Query<JobFilter>>()
                    .response_with::<200, Json<DeadLettersAnswer>, _>(|r| {
                        r.description("The dead letters.")
                    })
            }),
        )
        .route("/admin/replay", post(replay))
        .api_route_docs("/admin/replay", op("post", TAG, "replay", describe_replay))
        .route("/admin/destinations", get(destinations))
        .api_route_docs(
            "/admin/destinations",
            op("get", TAG, "listDestinations", |o| {
                o.summary("Every network and subscriber: queue depth, adapter, alert")
                    .description(read)
                    .response_with::<200, Json<DestinationsAnswer>, _>(|r| {
                        r.description("Keyed `network:<name>` / `subscriber:<name>`.")
                    })
            }),
        )
        .route("/admin/networks/{network}/adapter", put(swap_adapter))
        .api_route_docs(
            "/admin/networks/{network}/adapter",
            op("put", TAG, "swapAdapter", describe_swap),
        )
        .route("/admin/networks/{network}/resume", post(resume))
        .api_route_docs(
            "/admin/networks/{network}/resume",
            op("post", TAG, "resumeNetwork", describe_resume),
        )
        .route("/admin/audit", get(audit_records))
        .api_route_docs("/admin/audit", op("get", TAG, "queryAudit", describe_audit))
        .route("/admin/audit/verify", get(audit_verify))
        .api_route_docs(
            "/admin/audit/verify",
            op("get", TAG, "verifyAudit", |o| {
                o.summary("Verify the whole audit chain now")
                    .description("Auditors.")
                    .response_with::<200, Json<AuditVerified>, _>(|r| {
                        r.description("The verifier's report and its verdict.")
                    })
            }),
        )
        .route(
            "/admin/reports/double-entry",
            get(super::report::double_entry),
        )
        .api_route_docs(
            "/admin/reports/double-entry",
            op("get", TAG, "getDoubleEntryReport", super::report::describe),
        )
        .route(
            "/admin/witness",
            get(super::witness::get).post(super::witness::post),
        )
        .api_route_docs(
            "/admin/witness",
            op("get", TAG, "getWitness", super::witness::describe_get),
        )
        .api_route_docs(
            "/admin/witness",
            op("post", TAG, "postWitness", super::witness::describe_post),
        )
        .route("/metrics", get(metrics))
        .api_route_docs(
            "/metrics",
            op("get", TAG, "getMetrics", |o| {
                o.summary("Prometheus metrics")
                    .description(read)
                    .raw_answer(200, "text/plain", "The Prometheus text format (0.0.4).")
                    .problem(
                        404,
                        "Metrics are not enabled in this process (`not-found`).",
                    )
            }),
        )
        .route("/healthz", get(health))
        .api_route_docs(
            "/healthz",
            op("get", TAG, "getHealth", |o| {
                o.summary("Liveness (any principal)")
                    .raw_answer(200, "text/plain", "`ok`.")
            }),
        )
}

const TAG: &str = "admin";

fn describe_replay(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Put dead letters (or chosen jobs) back in the queue, spaced to a rate")
        .description("Requires the `replay` admin grant. Audited with the operator.")
        .input::<Json<ReplayRequest>>()
        .response_with::<200, Json<ReplayAnswer>, _>(|r| r.description("The replayed jobs."))
        .problem(
            400,
            "The body is not a replay request (`bad-replay-request`) or the replay was \
             refused (`replay-refused`: bad rate, unknown adapter version, bad signature…).",
        )
}

fn describe_swap(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Hot swap: install a signed adapter version for a network")
        .description(
            "Requires the `adapter-reload` admin grant. The body is the component; the \
             `X-Yiwang-Adapter-Signature` header its publisher signature (base64 of the \
             signature file). Audited, refusals too.",
        )
        .input::<Path<NetworkPath>>()
        .raw_body(
            "application/octet-stream",
            "The adapter component's bytes (wasm32-wasip2); the Content-Type is not read.",
        )
        .response_with::<200, Json<AdapterSwapped>, _>(|r| {
            r.description("Installed; new jobs use it.")
        })
        .problem(
            422,
            "The adapter was refused (`adapter-refused`; the detail names the check: \
             unsigned, unknown key, bad signature, signed for another network, not loadable).",
        )
}

fn describe_resume(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Lift a network's alert so its held queue moves again")
        .description("Requires the `resume` admin grant. Audited.")
        .input::<Path<NetworkPath>>()
        .response_with::<200, Json<Resumed>, _>(|r| {
            r.description("Resumed; the alert lifted, if there was one.")
        })
        .problem(404, "No such network (`not-found`).")
        .problem(
            422,
            "The network's adapter still fails to load (`adapter-load-failed`).",
        )
}

fn describe_audit(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Audit records matching a query, as JSON lines (oldest first)")
        .description("Auditors. The read itself is audited.")
        .input::<Query<AuditParams>>()
        .raw_answer(
            200,
            "application/x-ndjson",
            "One audit record per line (docs/security-model.md has the record format).",
        )
}

type Who = Extension<Arc<Caller>>;

async fn health(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<&'static str, Problem> {
    state.authorize(&caller, Action::Health, None, None).await?;
    Ok("ok")
}

async fn queue(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<Json<QueueAnswer>, Problem> {
    state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await?;
    let Query(f) = q?;
    let jobs = admin::queue(&state.delivery, &f).await?;
    Ok(Json(QueueAnswer { jobs }))
}

async fn dlq(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<Json<DeadLettersAnswer>, Problem> {
    state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await?;
    let Query(f) = q?;
    let dead_letters = admin::dead_letters(&state.delivery, &f).await?;
    Ok(Json(DeadLettersAnswer { dead_letters }))
}

async fn replay(
    State(state): State<AppState>,
    Extension(caller): Who,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<(AuditNote, Json<ReplayAnswer>), Problem> {
    let Json(req) = body.map_err(|e| Problem::bad_request("bad-replay-request", e.body_text()))?;
    state
        .authorize(
            &caller,
            Action::Admin(AdminOp::Replay),
            req.case_number.as_deref(),
            req.network.as_deref(),
        )
        .await?;
    let out = admin::replay(&state.delivery, &req).await?;
    let note = AuditNote::action(
        AdminOp::Replay,
        req.network.as_deref(),
        json!({
            "case_number": req.case_number,
            "job": req.job,
            "limit": req.limit,
            "adapter": req.adapter_sha256,
            "result": out,
        }),
    );
    Ok((note, Json(out)))
}

async fn destinations(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Json<DestinationsAnswer>, Problem> {
    state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await?;
    Ok(Json(admin::destinations(&state.delivery).await?))
}

/// Hot swap: the body is the component, [`SIGNATURE_HEADER`] its publisher
/// signature. A refusal (unsigned, unknown key, bad signature, signed for
/// another network, bytes not the signed ones) is answered 422 naming the
/// check, and audited with the operator, the network and the sha256.
async fn swap_adapter(
    State(state): State<AppState>,
    Extension(caller): Who,
    Path(network): Path<String>,
    headers: http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(AuditNote, Json<AdapterSwapped>), Response> {
    state
        .authorize(
            &caller,
            Action::Admin(AdminOp::AdapterReload),
            None,
            Some(&network),
        )
        .await
        .map_err(IntoResponse::into_response)?;
    let wasm =
        body.map_err(|e| Problem::bad_request("unreadable-body", e.to_string()).into_response())?;
    let sha256 = yiwang_schema::Sha256Digest::of(&wasm).to_string();
    let refused = |check: &str, reason: String| {
        let note = AuditNote::action(
            AdminOp::AdapterReload,
            Some(&network),
            json!({ "refused": { "sha256": sha256, "check": check, "reason": reason }, "bytes": wasm.len() }),
        );
        let problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "adapter-refused",
            "Adapter refused",
        )
        .detail(reason);
        (note, problem).into_response()
    };
    let sig = match signature_header(&headers) {
        Ok(sig) => sig,
        Err(reason) => return Err(refused("malformed-signature", reason)),
    };
    match state.delivery.install(&network, &wasm, sig).await {
        Ok(digest) => {
            let note = AuditNote::action(
                AdminOp::AdapterReload,
                Some(&network),
                json!({ "adapter": digest, "bytes": wasm.len() }),
            );
            let swapped = AdapterSwapped {
                network,
                adapter: digest,
            };
            Ok((note, Json(swapped)))
        }
        Err(e) => {
            let check = match &e {
                VersionError::Refused { refusal, .. } => refusal.check(),
                _ => "load",
            };
            Err(refused(check, e.to_string()))
        }
    }
}

/// The signature a hot swap carries, if any.
fn signature_header(headers: &http::HeaderMap) -> Result<Option<AdapterSignature>, String> {
    use base64::Engine as _;
    let Some(value) = headers.get(SIGNATURE_HEADER) else {
        return Ok(None);
    };
    let text = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .map_err(|e| format!("header {SIGNATURE_HEADER}: not base64: {e}"))?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("header {SIGNATURE_HEADER}: not UTF-8 text"))?;
    AdapterSignature::parse(&text)
        .map(Some)
        .map_err(|e| format!("header {SIGNATURE_HEADER}: {e}"))
}

/// Lift a network's TLS alert (after the operator fixed trust roots, pins
/// or certificates) so its held queue moves again; a network whose adapter
/// failed to load retries loading it (422 naming the failure if it still fails).
async fn resume(
    State(state): State<AppState>,
    Extension(caller): Who,
    Path(network): Path<String>,
) -> Result<(AuditNote, Json<Resumed>), Problem> {
    state
        .authorize(
            &caller,
            Action::Admin(AdminOp::Resume),
            None,
            Some(&network),
        )
        .await?;
    let lifted = state.delivery.resume(&network).await.map_err(|e| match e {
        ResumeError::UnknownDestination(_) => Problem::not_found(e.to_string()),
        ResumeError::AdapterLoad { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "adapter-load-failed",
            "The network's adapter still fails to load",
        )
        .detail(e.to_string()),
    })?;
    let lifted_alert = lifted.map(|a| LiftedAlert {
        reason: a.reason,
        since: a.since,
        cause: a.cause,
    });
    let note = AuditNote::action(
        AdminOp::Resume,
        Some(&network),
        json!({ "lifted_alert": lifted_alert }),
    );
    Ok((
        note,
        Json(Resumed {
            network,
            lifted_alert,
        }),
    ))
}

async fn metrics(State(state): State<AppState>, Extension(caller): Who) -> Response {
    if let Err(p) = state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await
    {
        return p.into_response();
    }
    match &state.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => Problem::not_found("metrics are not enabled in this process").into_response(),
    }
}

/// `GET /admin/audit` query parameters.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    /// Records about this case number.
    case: Option<String>,
    /// Records of this principal.
    principal: Option<String>,
    /// Records about this network.
    network: Option<String>,
    /// Records of this kind (`intake`, `delivery`, `admin`, `denial`…).
    kind: Option<String>,
    /// At or after this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    until: Option<String>,
    /// At most this many records (default 10000; clamped to 1–1000000).
    limit: Option<usize>,
}

/// Auditors: the trail's records matching a query, as JSON lines (oldest
/// first, at most `limit`, default 10000). The read itself is audited.
async fn audit_records(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<(AuditNote, Response), Problem> {
    state
        .authorize(&caller, Action::ReadAudit, None, None)
        .await?;
    let Query(p) = q?;
    let kind = p
        .kind
        .as_deref()
        .map(|k| {
            k.parse::<yiwang_audit::Kind>().map_err(|e| {
                Problem::bad_request("bad-parameter", format!("query parameter `kind`: {e}"))
            })
        })
        .transpose()?;
    let query = yiwang_audit::Query {
        case: p.case.clone(),
        principal: p.principal.clone(),
        network: p.network.clone(),
        kind,
        since: super::time_param("since", p.since.as_ref())?,
        until: super::time_param("until", p.until.as_ref())?,
    };
    let limit = p.limit.unwrap_or(10_000).clamp(1, 1_000_000);
    let dir = state.audit().dir().to_path_buf();
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        for r in yiwang_audit::query(&dir, &query).take(limit) {
            match r {
                Ok(rec) => {
                    out.push_str(&serde_json::to_string(&rec).unwrap_or_default());
                    out.push('\n');
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    })
    .await??;
    let note = AuditNote::read(
        None,
        Some(json!({ "audit_query": {
            "case": p.case, "principal": p.principal, "network": p.network,
            "kind": p.kind, "since": p.since, "until": p.until, "limit": limit,
        }})),
    );
    Ok((
        note,
        ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response(),
    ))
}

/// Auditors: verify the whole chain now (as `yiwang audit verify` does).
async fn audit_verify(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Json<AuditVerified>, Problem> {
    state
        .authorize(&caller, Action::ReadAudit, None, None)
        .await?;
    let dir = state.audit().dir().to_path_buf();
    let report = tokio::task::spawn_blocking(move || yiwang_audit::verify(&dir, None)).await??;
    let intact = report.broken.is_none();
    let report = match serde_json::to_value(&report) {
        Ok(Value::Object(fields)) => fields,
        _ => Default::default(),
    };
    Ok(Json(AuditVerified { report, intact }))
}
