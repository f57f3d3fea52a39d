//! The bureau platform's API: submit a case, post a change, read a case,
//! search cases.

use super::AppState;
use super::problem::Problem;
use crate::delivery::{Accepted, IntakeError, view};
use crate::store::CaseQuery;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/cases", post(submit).get(search))
        .route("/v1/cases/{case_number}", get(case))
        .route("/v1/cases/{case_number}/events", post(change))
        .with_state(state)
}

/// The principal of a request. Until mTLS maps certificates to principals
/// (issue 4), every caller is `anonymous`.
fn principal(_headers: &HeaderMap) -> String {
    "anonymous".to_string()
}

/// A body, or the problem with it (too large, unreadable, not JSON).
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Problem> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            )
            .detail(format!("{e}; the listener's max-body-bytes limits it"))
        } else {
            Problem::bad_request("unreadable-body", e.to_string())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !(mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail(format!(
            "send the case as application/json (got {:?})",
            if content_type.is_empty() {
                "no Content-Type"
            } else {
                content_type
            }
        )));
    }
    Ok(body)
}

pub(crate) fn intake_problem(e: IntakeError) -> Problem {
    match e {
        IntakeError::Invalid(errors) => {
            let n = errors.len();
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-case",
                "The case does not satisfy the unified case schema",
            )
            .detail(format!("{n} problem(s); each names the field (JSON pointer) and the rule"))
            .errors(
                errors
                    .0
                    .iter()
                    .map(|e| json!({"pointer": e.pointer, "rule": e.rule, "message": e.message}))
                    .collect(),
            )
        }
        IntakeError::UnknownItem { code } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-item",
            "The item has no route",
        )
        .detail(format!("item `{code}` has no route in this gateway's configuration"))
        .errors(vec![json!({"pointer": "/item/code", "rule": "routed_item", "message": format!("`{code}` is not a configured item")})]),
        e @ IntakeError::Conflict { .. } => {
            Problem::new(StatusCode::CONFLICT, "case-conflict", "Case number already used")
                .detail(e.to_string())
        }
        e @ IntakeError::UnknownCase { .. } => Problem::not_found(e.to_string()),
        e @ IntakeError::CaseMismatch { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "case-mismatch",
            "The change is for another case",
        )
        .detail(e.to_string())
        .errors(vec![json!({"pointer": "/case_number", "rule": "matches_path", "message": e.to_string()})]),
        IntakeError::Store(e) => {
            tracing::error!(error = %e, "intake could not store");
            Problem::unavailable(format!("the case was not stored: {e}"))
        }
    }
}

fn accepted_response(a: &Accepted) -> Response {
    let rec = &a.record;
    let deliveries: Vec<_> = a
        .jobs
        .iter()
        .filter_map(|id| rec.job(*id))
        .map(|j| {
            let v = view::job_view(rec, j);
            json!({
                "network": j.destination.name(),
                "job": j.id,
                "idempotency_key": j.idempotency_key,
                "state": v["state"],
            })
        })
        .collect();
    let location = format!("/v1/cases/{}", rec.case_number);
    let body = json!({
        "case_number": rec.case_number,
        "accepted_at": view::rfc3339(rec.accepted_at),
        "duplicate": !a.created,
        "deliveries": deliveries,
        "links": {"self": location},
    });
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = json_body(&headers, body)?;
    let accepted = state
        .engine
        .accept(&body, &principal(&headers))
        .await
        .map_err(intake_problem)?;
    tracing::info!(case = %accepted.record.case_number, item = %accepted.record.item, created = accepted.created, "case accepted");
    Ok(accepted_response(&accepted))
}

async fn change(
    State(state): State<AppState>,
    Path(case_number): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = json_body(&headers, body)?;
    let accepted = state
        .engine
        .change(&case_number, &body)
        .await
        .map_err(intake_problem)?;
    Ok(accepted_response(&accepted))
}

async fn case(
    State(state): State<AppState>,
    Path(case_number): Path<String>,
) -> Result<Response, Problem> {
    match state.engine.store.case(&case_number).await {
        Ok(Some(rec)) => Ok(Json(view::case_view(&rec)).into_response()),
        Ok(None) => Err(Problem::not_found(format!(
            "case {case_number} is not known to this gateway"
        ))),
        Err(e) => Err(Problem::unavailable(e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    item: Option<String>,
    network: Option<String>,
    state: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

const JOB_STATES: &[&str] = &["pending", "verify", "in_flight", "delivered", "dead"];

fn time_param(name: &str, v: Option<&String>) -> Result<Option<i64>, Problem> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                Problem::bad_request(
                    "bad-parameter",
                    format!("query parameter `{name}`: {s:?} is not an RFC 3339 time ({e})"),
                )
            })
    })
    .transpose()
}

async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::bad_request("bad-parameter", e.body_text()))?;
    if let Some(s) = &p.state
        && !JOB_STATES.contains(&s.as_str())
    {
        return Err(Problem::bad_request(
            "bad-parameter",
            format!(
                "query parameter `state`: {s:?} is not one of {}",
                JOB_STATES.join(", ")
            ),
        ));
    }
    if let Some(n) = &p.network
        && !state.engine.networks.contains_key(n)
    {
        return Err(Problem::bad_request(
            "bad-parameter",
            format!("query parameter `network`: `{n}` is not a configured network"),
        ));
    }
    let query = CaseQuery {
        item: p.item.clone(),
        network: p.network.clone(),
        state: p.state.clone(),
        since: time_param("since", p.since.as_ref())?,
        until: time_param("until", p.until.as_ref())?,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let found = state
        .engine
        .store
        .search(&query)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    Ok(Json(json!({
        "cases": found.iter().map(view::case_summary).collect::<Vec<_>>(),
    }))
    .into_response())
}
