//! The bureau platform's API: submit a case, post a change, read a case,
//! search cases.

use super::AppState;
use super::audit::AuditNote;
use super::openapi::{CasePath, Describe, Edge, finish, op};
use super::problem::Problem;
use crate::delivery::intake::{Accepted, IntakeError};
use crate::delivery::view;
use crate::policy::{Action, Caller, Policy, Scope};
use crate::store::CaseQuery;
use crate::wire::{AcceptedAnswer, AcceptedDelivery, CaseView, Links, QueueState, SearchAnswer};
use aide::axum::ApiRouter;
use aide::transform::TransformOperation;
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
use yiwang_audit::Kind;
use yiwang_schema::Case;

pub fn router(state: AppState) -> Router {
    super::audited(finish(routes(), Edge::Intake).0, state)
}

/// The routes, each with its description (see [`super::openapi`]).
pub(super) fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .route("/v1/cases", post(submit).get(search))
        .api_route_docs("/v1/cases", op("post", TAG, "submitCase", describe_submit))
        .api_route_docs("/v1/cases", op("get", TAG, "searchCases", describe_search))
        .route("/v1/cases/{case_number}", get(case))
        .api_route_docs(
            "/v1/cases/{case_number}",
            op("get", TAG, "getCase", |o| {
                o.summary("A case's state across every network")
                    .input::<Path<CasePath>>()
                    .response_with::<200, Json<CaseView>, _>(|r| r.description("The case."))
                    .problem(404, "No such case (`not-found`).")
            }),
        )
        .route("/v1/cases/{case_number}/events", post(change))
        .api_route_docs(
            "/v1/cases/{case_number}/events",
            op("post", TAG, "postCaseChange", describe_change),
        )
}

const TAG: &str = "intake";

fn describe_submit(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Submit a case once; it is delivered to every network of its item's route")
        .input::<Json<Case>>()
        .response_with::<202, Json<AcceptedAnswer>, _>(|r| {
            r.description(
                "Accepted (stored and audited) and queued; `duplicate` when the same case \
                 was accepted before. `Location` names the case.",
            )
        })
        .problem(
            409,
            "The case number was used for a different case (`case-conflict`).",
        )
        .problem(
            415,
            "The body is not `application/json` (`unsupported-media-type`).",
        )
        .problem(
            422,
            "The case does not satisfy the unified case schema or its item's form \
             (`invalid-case`: every problem in `errors`, each with its JSON pointer, rule and \
             message; a form rule also names its `keyword_location` in the item's form \
             schema) or its item has no route (`unknown-item`).",
        )
}

fn describe_search(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Search cases (a bureau sees its own bureaus' cases only)")
        .input::<Query<SearchParams>>()
        .response_with::<200, Json<SearchAnswer>, _>(|r| r.description("The cases found."))
}

fn describe_change(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Post a change to a case; it is delivered to the networks that hold it")
        .input::<Path<CasePath>>()
        .input::<Json<yiwang_schema::CaseChange>>()
        .response_with::<202, Json<AcceptedAnswer>, _>(|r| {
            r.description(
                "Accepted and queued; `duplicate` when the same change was posted before.",
            )
        })
        .problem(404, "No such case (`not-found`).")
        .problem(
            415,
            "The body is not `application/json` (`unsupported-media-type`).",
        )
        .problem(
            422,
            "The change does not satisfy the case change schema (`invalid-case`) or names \
             another case (`case-mismatch`).",
        )
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

fn accepted_response(a: &Accepted) -> Response {
    let rec = &a.record;
    let deliveries = a
        .jobs
        .iter()
        .filter_map(|id| rec.job(*id))
        .map(|j| AcceptedDelivery {
            network: j.destination.name().to_string(),
            job: j.id,
            idempotency_key: j.idempotency_key.clone(),
            state: view::job_view(rec, j).state,
        })
        .collect();
    let location = format!("/v1/cases/{}", rec.case_number);
    let body = AcceptedAnswer {
        case_number: rec.case_number.clone(),
        accepted_at: view::rfc3339(rec.accepted_at),
        duplicate: !a.created,
        deliveries,
        links: Links {
            self_: location.clone(),
        },
    };
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A case submission: audited with the case number once the body names one.
async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (AuditNote, Result<Response, Problem>) {
    let note = AuditNote::request(Kind::Intake, body.as_ref().ok().cloned());
    let case = match read_case(&state, &headers, body) {
        Ok(case) => case,
        Err(p) => return (note, Err(p)),
    };
    let note = note.case(&case.case_number);
    match submit_case(&state, &caller, case).await {
        Ok(accepted) => {
            let answer = accepted_response(&accepted);
            (note.then(announce(&accepted, &caller)), Ok(answer))
        }
        Err(p) => (note, Err(p)),
    }
}

/// The "case accepted" log line and the acceptance counters, said by the
/// audit layer only once the intake record is durable, so that logs and
/// metrics never count an acceptance the trail does not hold.
fn announce(accepted: &Accepted, caller: &Caller) -> impl Fn() + Send + Sync + 'static {
    let case = accepted.record.case_number.clone();
    let item = accepted.record.item.clone();
    let created = accepted.created;
    let principal = caller.name();
    move || {
        if created {
            metrics::counter!("yiwang_intake_accepted_total", "item" => item.clone()).increment(1);
        } else {
            metrics::counter!("yiwang_intake_duplicates_total").increment(1);
        }
        tracing::info!(%case, %item, created, %principal, "case accepted");
    }
}

/// The case in a submission's body, validated against the unified case
/// schema and its item's form together: every problem of both in one answer
/// (the time window included: the gateway's clock and configured window;
/// accepting checks the window again).
fn read_case(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Case, Problem> {
    let body = json_body(headers, body)?;
    let case = yiwang_schema::read_case(&body).map_err(IntakeError::Invalid)?;
    let unified = case.validate_at(&state.delivery.time_window());
    let form = state.forms.check(&case);
    let overrides = crate::forms::verdict(&case, unified, form).map_err(|invalid| {
        if !invalid.form.is_empty() {
            // Only configured items have forms: the label stays bounded.
            let item = case.item.code.clone();
            metrics::counter!("yiwang_intake_form_refusals_total", "item" => item).increment(1);
        }
        Problem::invalid_case(&invalid)
    })?;
    if !overrides.is_empty() {
        tracing::warn!(case = %case.case_number, ?overrides, "case carries checksum overrides");
    }
    Ok(case)
}

async fn submit_case(state: &AppState, caller: &Caller, case: Case) -> Result<Accepted, Problem> {
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
    Ok(state.delivery.accept(case, &caller.name()).await?)
}

/// A stored case, if the caller may see it (else the denial, audited).
async fn owned_case(
    state: &AppState,
    caller: &Caller,
    case_number: &str,
    write: bool,
) -> Result<crate::store::CaseRecord, Problem> {
    let Some(rec) = state.delivery.store.case(case_number).await? else {
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
) -> (AuditNote, Result<Response, Problem>) {
    let note = AuditNote::request(Kind::Change, body.as_ref().ok().cloned()).case(&case_number);
    let result = async {
        let body = json_body(&headers, body)?;
        owned_case(&state, &caller, &case_number, true).await?;
        let accepted = state.delivery.change(&case_number, &body).await?;
        Ok(accepted_response(&accepted))
    }
    .await;
    (note, result)
}

async fn case(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(case_number): Path<String>,
) -> Result<(AuditNote, Json<CaseView>), Problem> {
    let rec = owned_case(&state, &caller, &case_number, false).await?;
    Ok((
        AuditNote::read(Some(&case_number), None),
        Json(view::case_view(&rec)),
    ))
}

/// `GET /v1/cases` query parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// Cases of this item code.
    item: Option<String>,
    /// Cases routed to this configured network.
    network: Option<String>,
    /// Cases with a job in this state.
    #[schemars(with = "Option<QueueState>")]
    state: Option<String>,
    /// Accepted at or after this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    since: Option<String>,
    /// Accepted before this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    until: Option<String>,
    /// At most this many cases (default 100; clamped to 1–1000).
    limit: Option<usize>,
}

/// A search as the audit trail records it.
fn search_detail(q: &CaseQuery) -> serde_json::Value {
    json!({
        "item": q.item, "network": q.network, "state": q.state,
        "since": q.since, "until": q.until, "limit": q.limit,
    })
}

/// A `state` query parameter: one of the queue's state names.
fn state_param(s: &str) -> Result<QueueState, Problem> {
    QueueState::ALL
        .into_iter()
        .find(|d| d.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<_> = QueueState::ALL.iter().map(|d| d.as_str()).collect();
            Problem::bad_request(
                "bad-parameter",
                format!(
                    "query parameter `state`: {s:?} is not one of {}",
                    names.join(", ")
                ),
            )
        })
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<(AuditNote, Json<SearchAnswer>), Problem> {
    state.authorize(&caller, Action::Search, None, None).await?;
    let Query(p) = params?;
    let job_state = p.state.as_deref().map(state_param).transpose()?;
    if let Some(n) = &p.network
        && !state.delivery.networks.contains_key(n)
    {
        return Err(Problem::bad_request(
            "bad-parameter",
            format!("query parameter `network`: `{n}` is not a configured network"),
        ));
    }
    let query = CaseQuery {
        item: p.item.clone(),
        network: p.network.clone(),
        state: job_state.map(|s| s.as_str().to_string()),
        since: super::time_param("since", p.since.as_ref())?.map(|t| t.timestamp_millis()),
        until: super::time_param("until", p.until.as_ref())?.map(|t| t.timestamp_millis()),
        // A bureau sees its own bureaus' cases only.
        bureaus: match Policy::case_scope(&caller) {
            Scope::All => None,
            Scope::Only(set) => Some(set),
        },
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let found = state.delivery.store.search(&query).await?;
    let cases: Vec<_> = found.iter().map(view::case_summary).collect();
    let detail = json!({ "search": search_detail(&query), "results": cases.len() });
    Ok((
        AuditNote::read(None, Some(detail)),
        Json(SearchAnswer { cases }),
    ))
}
