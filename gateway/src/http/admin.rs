//! The operators' API: queue, dead letters, replay, destinations, adapter
//! hot swap, lifting a network's alert, Prometheus `/metrics`; and the
//! auditors' read of the audit trail. Every route is authorized against the
//! caller's grants, and every action that changes something is audited.

use super::AppState;
use super::audit::AuditNote;
use super::problem::Problem;
use crate::delivery::admin::{self, JobFilter, ReplayRequest};
use crate::delivery::{ResumeError, VersionError};
use crate::policy::{Action, AdminOp, Caller};
use crate::publisher::{AdapterSignature, SIGNATURE_HEADER};
use crate::wire::{
    AdapterSwapped, AuditVerified, DeadLettersAnswer, DestinationsAnswer, LiftedAlert, QueueAnswer,
    ReplayAnswer, Resumed,
};
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
    super::audited(
        Router::new()
            .route("/admin/queue", get(queue))
            .route("/admin/dlq", get(dlq))
            .route("/admin/replay", post(replay))
            .route("/admin/destinations", get(destinations))
            .route("/admin/networks/{network}/adapter", put(swap_adapter))
            .route("/admin/networks/{network}/resume", post(resume))
            .route("/admin/audit", get(audit_records))
            .route("/admin/audit/verify", get(audit_verify))
            .route(
                "/admin/reports/double-entry",
                get(super::report::double_entry),
            )
            .route(
                "/admin/witness",
                get(super::witness::get).post(super::witness::post),
            )
            .route("/metrics", get(metrics))
            .route("/healthz", get(health)),
        state,
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
