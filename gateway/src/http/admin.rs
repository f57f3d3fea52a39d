//! The operators' API: queue, dead letters, replay, destinations, adapter
//! hot swap, and Prometheus `/metrics`.

use super::AppState;
use super::problem::Problem;
use crate::delivery::admin::{self, JobFilter, ReplayRequest};
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::json;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/queue", get(queue))
        .route("/admin/dlq", get(dlq))
        .route("/admin/replay", post(replay))
        .route("/admin/destinations", get(destinations))
        .route("/admin/networks/{network}/adapter", put(swap_adapter))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

fn filter(q: Result<Query<JobFilter>, QueryRejection>) -> Result<JobFilter, Problem> {
    q.map(|Query(f)| f)
        .map_err(|e| Problem::bad_request("bad-parameter", e.body_text()))
}

async fn queue(
    State(state): State<AppState>,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<Response, Problem> {
    let f = filter(q)?;
    let jobs = admin::queue(&state.engine, &f)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(json!({ "jobs": jobs })).into_response())
}

async fn dlq(
    State(state): State<AppState>,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<Response, Problem> {
    let f = filter(q)?;
    let jobs = admin::dead_letters(&state.engine, &f)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(json!({ "dead_letters": jobs })).into_response())
}

async fn replay(
    State(state): State<AppState>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| Problem::bad_request("bad-replay-request", e.body_text()))?;
    let out = admin::replay(&state.engine, &req)
        .await
        .map_err(|e| Problem::bad_request("replay-refused", e))?;
    Ok(Json(out).into_response())
}

async fn destinations(State(state): State<AppState>) -> Result<Response, Problem> {
    let out = admin::destinations(&state.engine)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(out).into_response())
}

async fn swap_adapter(
    State(state): State<AppState>,
    Path(network): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let wasm = body.map_err(|e| Problem::bad_request("unreadable-body", e.to_string()))?;
    let digest = state.engine.install(&network, &wasm).await.map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "adapter-refused",
            "Adapter refused",
        )
        .detail(e)
    })?;
    Ok(Json(json!({ "network": network, "adapter": digest })).into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => Problem::not_found("metrics are not enabled in this process").into_response(),
    }
}
