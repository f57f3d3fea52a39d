//! The bureau platform's API: submit a case, post a change, read a case,
//! search cases.

use super::AppState;
use super::problem::Problem;
use crate::delivery::intake::{Accepted, IntakeError};
use crate::delivery::view;
use crate::policy::{Action, Caller, Policy, Scope};
use crate::store::CaseQuery;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use yiwang_audit::{Entry, Kind};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/cases", post(submit).get(search))
        .route("/v1/cases/{case_number}", get(case))
        .route("/v1/cases/{case_number}/events", post(change))
        .with_state(state)
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

/// Audit an intake-side request (principal, case, body digest, answer)
/// before answering; a request that cannot be audited is answered 503.
async fn audited(
    state: &AppState,
    kind: Kind,
    caller: &Caller,
    case: Option<&str>,
    body: Option<Bytes>,
    result: Result<Response, Problem>,
) -> Response {
    let entry = Entry::new(kind).principal(caller.name()).about(case, None);
    match state
        .record_answer(entry, body, super::status_of(&result))
        .await
    {
        Ok(()) => result.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "intake request could not be audited");
            Problem::unavailable(format!("the request could not be audited: {e}")).into_response()
        }
    }
}

async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let raw = body.as_ref().ok().cloned();
    let mut case_number = None;
    let result = submit_case(&state, &caller, &headers, body, &mut case_number).await;
    audited(
        &state,
        Kind::Intake,
        &caller,
        case_number.as_deref(),
        raw,
        result,
    )
    .await
}

async fn submit_case(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    case_number: &mut Option<String>,
) -> Result<Response, Problem> {
    let body = json_body(headers, body)?;
    let validated =
        yiwang_schema::parse_case(&body).map_err(|e| intake_problem(IntakeError::Invalid(e)))?;
    if !validated.overrides_applied.is_empty() {
        tracing::warn!(case = %validated.case.case_number, overrides = ?validated.overrides_applied, "case carries checksum overrides");
    }
    let case = validated.case;
    *case_number = Some(case.case_number.clone());
    state
        .authorize(
            caller,
            Action::Submit {
                item: &case.item.code,
                bureau: &case.bureau.uscc,
            },
            Some(&case.case_number),
            None,
        )
        .await?;
    let accepted = state
        .engine
        .accept(case, &caller.name())
        .await
        .map_err(intake_problem)?;
    tracing::info!(case = %accepted.record.case_number, item = %accepted.record.item, created = accepted.created, principal = %caller.name(), "case accepted");
    Ok(accepted_response(&accepted))
}

/// A stored case, if the caller may see it (else the denial, audited).
async fn owned_case(
    state: &AppState,
    caller: &Caller,
    case_number: &str,
    write: bool,
) -> Result<crate::store::CaseRecord, Problem> {
    let rec = state
        .engine
        .store
        .case(case_number)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    let Some(rec) = rec else {
        // Only callers that may use cases at all learn whether it exists.
        state
            .authorize(caller, Action::Search, Some(case_number), None)
            .await?;
        return Err(Problem::not_found(format!(
            "case {case_number} is not known to this gateway"
        )));
    };
    state
        .authorize(
            caller,
            Action::Case {
                bureau: &rec.bureau,
                write,
            },
            Some(case_number),
            None,
        )
        .await?;
    Ok(rec)
}

async fn change(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(case_number): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let raw = body.as_ref().ok().cloned();
    let result = async {
        let body = json_body(&headers, body)?;
        owned_case(&state, &caller, &case_number, true).await?;
        let accepted = state
            .engine
            .change(&case_number, &body)
            .await
            .map_err(intake_problem)?;
        Ok(accepted_response(&accepted))
    }
    .await;
    audited(
        &state,
        Kind::Change,
        &caller,
        Some(&case_number),
        raw,
        result,
    )
    .await
}

async fn case(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(case_number): Path<String>,
) -> Result<Response, Problem> {
    let rec = owned_case(&state, &caller, &case_number, false).await?;
    state.audit().record(
        Entry::new(Kind::Read)
            .principal(caller.name())
            .case(case_number),
    );
    Ok(Json(view::case_view(&rec)).into_response())
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

/// A search as the audit trail records it.
fn search_detail(q: &CaseQuery) -> serde_json::Value {
    json!({
        "item": q.item, "network": q.network, "state": q.state,
        "since": q.since, "until": q.until, "limit": q.limit,
    })
}

const JOB_STATES: &[&str] = &["pending", "verify", "in_flight", "delivered", "dead"];

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    state.authorize(&caller, Action::Search, None, None).await?;
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
        since: super::time_param("since", p.since.as_ref())?.map(|t| t.timestamp_millis()),
        until: super::time_param("until", p.until.as_ref())?.map(|t| t.timestamp_millis()),
        // A bureau sees its own bureaus' cases only.
        bureaus: match Policy::case_scope(&caller) {
            Scope::All => None,
            Scope::Only(set) => Some(set),
        },
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let found = state
        .engine
        .store
        .search(&query)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    let cases: Vec<_> = found.iter().map(view::case_summary).collect();
    state.audit().record(
        Entry::new(Kind::Read)
            .principal(caller.name())
            .detail(json!({ "search": search_detail(&query), "results": cases.len() })),
    );
    Ok(Json(json!({ "cases": cases })).into_response())
}
