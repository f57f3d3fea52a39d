//! The operators' API: queue, dead letters, replay, destinations, adapter
//! hot swap, lifting a network's TLS alert, Prometheus `/metrics`; and the
//! auditors' read of the audit trail. Every route is authorized against the
//! caller's grants, and every action that changes something is audited.

use super::AppState;
use super::problem::Problem;
use crate::delivery::admin::{self, JobFilter, ReplayRequest};
use crate::policy::{Action, AdminOp, Caller};
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;
use yiwang_audit::{Entry, Kind};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/queue", get(queue))
        .route("/admin/dlq", get(dlq))
        .route("/admin/replay", post(replay))
        .route("/admin/destinations", get(destinations))
        .route("/admin/networks/{network}/adapter", put(swap_adapter))
        .route("/admin/networks/{network}/resume", post(resume))
        .route("/admin/audit", get(audit_records))
        .route("/admin/audit/verify", get(audit_verify))
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .with_state(state)
}

type Who = Extension<Arc<Caller>>;

/// An admin action that changed something, for the audit trail (durable
/// before the answer goes out).
async fn audit_action(
    state: &AppState,
    caller: &Caller,
    op: AdminOp,
    network: Option<&str>,
    detail: Value,
) -> Result<(), Problem> {
    let entry = Entry::new(Kind::Admin)
        .principal(caller.name())
        .about(None, network)
        .detail(json!({ "operation": op.as_str(), "detail": detail }));
    state
        .audit()
        .append(entry)
        .await
        .map(|_| ())
        .map_err(|e| Problem::unavailable(format!("the action could not be audited: {e}")))
}

async fn health(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<&'static str, Problem> {
    state.authorize(&caller, Action::Health, None, None).await?;
    Ok("ok")
}

fn filter(q: Result<Query<JobFilter>, QueryRejection>) -> Result<JobFilter, Problem> {
    q.map(|Query(f)| f)
        .map_err(|e| Problem::bad_request("bad-parameter", e.body_text()))
}

async fn queue(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<Response, Problem> {
    state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await?;
    let f = filter(q)?;
    let jobs = admin::queue(&state.engine, &f)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(json!({ "jobs": jobs })).into_response())
}

async fn dlq(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<Response, Problem> {
    state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await?;
    let f = filter(q)?;
    let jobs = admin::dead_letters(&state.engine, &f)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(json!({ "dead_letters": jobs })).into_response())
}

async fn replay(
    State(state): State<AppState>,
    Extension(caller): Who,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| Problem::bad_request("bad-replay-request", e.body_text()))?;
    state
        .authorize(
            &caller,
            Action::Admin(AdminOp::Replay),
            req.case_number.as_deref(),
            req.network.as_deref(),
        )
        .await?;
    let out = admin::replay(&state.engine, &req)
        .await
        .map_err(|e| Problem::bad_request("replay-refused", e))?;
    audit_action(
        &state,
        &caller,
        AdminOp::Replay,
        req.network.as_deref(),
        json!({
            "case_number": req.case_number,
            "job": req.job,
            "limit": req.limit,
            "adapter": req.adapter_sha256,
            "result": out,
        }),
    )
    .await?;
    Ok(Json(out).into_response())
}

async fn destinations(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Response, Problem> {
    state
        .authorize(&caller, Action::Admin(AdminOp::Read), None, None)
        .await?;
    let out = admin::destinations(&state.engine)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(out).into_response())
}

async fn swap_adapter(
    State(state): State<AppState>,
    Extension(caller): Who,
    Path(network): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    state
        .authorize(
            &caller,
            Action::Admin(AdminOp::AdapterReload),
            None,
            Some(&network),
        )
        .await?;
    let wasm = body.map_err(|e| Problem::bad_request("unreadable-body", e.to_string()))?;
    let digest = state.engine.install(&network, &wasm).await.map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "adapter-refused",
            "Adapter refused",
        )
        .detail(e.to_string())
    })?;
    audit_action(
        &state,
        &caller,
        AdminOp::AdapterReload,
        Some(&network),
        json!({ "adapter": digest, "bytes": wasm.len() }),
    )
    .await?;
    Ok(Json(json!({ "network": network, "adapter": digest })).into_response())
}

/// Lift a network's TLS alert (after the operator fixed trust roots, pins
/// or certificates) so its held queue moves again.
async fn resume(
    State(state): State<AppState>,
    Extension(caller): Who,
    Path(network): Path<String>,
) -> Result<Response, Problem> {
    state
        .authorize(
            &caller,
            Action::Admin(AdminOp::Resume),
            None,
            Some(&network),
        )
        .await?;
    let Some(lifted) = state.engine.resume(&network) else {
        return Err(Problem::not_found(format!(
            "network {network} is not configured"
        )));
    };
    audit_action(
        &state,
        &caller,
        AdminOp::Resume,
        Some(&network),
        json!({ "lifted_alert": lifted }),
    )
    .await?;
    Ok(Json(json!({ "network": network, "lifted_alert": lifted })).into_response())
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
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    case: Option<String>,
    principal: Option<String>,
    network: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

/// Auditors: the trail's records matching a query, as JSON lines (oldest
/// first, at most `limit`, default 10000). The read itself is audited.
async fn audit_records(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, Problem> {
    state
        .authorize(&caller, Action::ReadAudit, None, None)
        .await?;
    let Query(p) = q.map_err(|e| Problem::bad_request("bad-parameter", e.body_text()))?;
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
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Problem::unavailable(e.to_string()))?
    .map_err(Problem::unavailable)?;
    state
        .audit()
        .record(
            Entry::new(Kind::Read)
                .principal(caller.name())
                .detail(json!({ "audit_query": {
                    "case": p.case, "principal": p.principal, "network": p.network,
                    "kind": p.kind, "since": p.since, "until": p.until, "limit": limit,
                }})),
        );
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}

/// Auditors: verify the whole chain now (as `yiwang audit verify` does).
async fn audit_verify(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Response, Problem> {
    state
        .authorize(&caller, Action::ReadAudit, None, None)
        .await?;
    let dir = state.audit().dir().to_path_buf();
    let report = tokio::task::spawn_blocking(move || yiwang_audit::verify(&dir, None))
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    v["intact"] = json!(report.broken.is_none());
    Ok(Json(v).into_response())
}
