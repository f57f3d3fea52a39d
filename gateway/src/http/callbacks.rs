//! Ministry pushes: `POST /v1/callbacks/{network}` goes to that network's
//! adapter (`handle-callback`); its events are stored before the ministry
//! gets the adapter's answer.

use super::AppState;
use super::audit::AuditNote;
use super::openapi::{Describe, Edge, NetworkPath, finish, op};
use super::problem::Problem;
use crate::delivery::backflow;
use crate::policy::{Action, Caller};
use crate::runtime::{Header, HttpRequest};
use aide::axum::ApiRouter;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use std::sync::Arc;
use yiwang_audit::Kind;

pub fn router(state: AppState) -> Router {
    super::audited(finish(routes(), Edge::Callbacks).0, state)
}

/// The route, with its description (see [`super::openapi`]).
pub(super) fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .route("/v1/callbacks/{network}", post(callback))
        .api_route_docs(
            "/v1/callbacks/{network}",
            op("post", "callbacks", "postCallback", |o| {
                o.summary("A ministry's push for its own network, taken by that network's adapter")
                    .input::<Path<NetworkPath>>()
                    .raw_body(
                        "*/*",
                        "The ministry's own push format, as its adapter reads it.",
                    )
                    .raw_answer(
                        200,
                        "*/*",
                        "The adapter's answer to the ministry (status, headers and body are \
                         the adapter's; the events were stored first).",
                    )
                    .problem(404, "No such network (`not-found`).")
                    .problem(
                        503,
                        "The network's callbacks are all in progress (`callbacks-busy`), the \
                         adapter could not take this push yet (`callback-refused`: keep it and \
                         retry), or its events could not be stored.",
                    )
            }),
        )
}

/// Every push is authorized (a ministry posts for its own network only)
/// and audited with its body digest and the answer it got.
async fn callback(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(network): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (AuditNote, Result<Response, Problem>) {
    let note = AuditNote::request(Kind::Callback, body.as_ref().ok().cloned()).network(&network);
    let result = take(&state, &caller, &network, method, uri, headers, body).await;
    (note, result)
}

async fn take(
    state: &AppState,
    caller: &Caller,
    network: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    // A ministry posts for its own (configured) network only, so a push
    // for an unknown network is refused here too, before any adapter runs.
    state
        .authorize(caller, Action::Callback { network }, None, Some(network))
        .await?;
    let body = body.map_err(|e| {
        Problem::new(e.status(), "unreadable-body", "Unreadable callback body")
            .detail(e.to_string())
    })?;
    let request = HttpRequest {
        method: method.to_string(),
        url: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| Header {
                name: k.as_str().to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect(),
        body: body.to_vec(),
    };
    let resp = backflow::callback(&state.delivery, network, request).await?;
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
    let mut out = (status, resp.body).into_response();
    for h in resp.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_str(&h.value),
        ) {
            out.headers_mut().insert(k, v);
        }
    }
    Ok(out)
}
