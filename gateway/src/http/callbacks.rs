//! Ministry pushes: `POST /v1/callbacks/{network}` goes to that network's
//! adapter (`handle-callback`); its events are stored before the ministry
//! gets the adapter's answer.

use super::AppState;
use super::problem::Problem;
use crate::delivery::backflow::{self, CallbackError};
use crate::policy::{Action, Caller};
use crate::runtime::{Header, HttpRequest};
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use std::sync::Arc;
use yiwang_audit::{Entry, Kind};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/callbacks/{network}", post(callback))
        .with_state(state)
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
) -> Response {
    let raw = body.as_ref().ok().cloned();
    let result = take(&state, &caller, &network, method, uri, headers, body).await;
    let entry = Entry::new(Kind::Callback)
        .principal(caller.name())
        .network(network.as_str());
    if let Err(e) = state
        .record_answer(entry, raw, super::status_of(&result))
        .await
    {
        tracing::error!(error = %e, "callback could not be audited");
        return Problem::unavailable(format!("the callback could not be audited: {e}"))
            .retry_after(60)
            .into_response();
    }
    result.into_response()
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
    match backflow::callback(&state.engine, network, request).await {
        Ok(resp) => {
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
        Err(e @ CallbackError::UnknownNetwork(_)) => Err(Problem::not_found(e.to_string())),
        // An authentic push the adapter cannot use yet (unknown status code,
        // unreadable body) must not be lost: 503 asks the ministry to keep it
        // and retry, and a fixed adapter (hot swap) takes it then.
        Err(e @ CallbackError::Refused { .. }) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "callback-refused",
            "The callback could not be taken",
        )
        .detail(e.to_string())
        .retry_after(60)),
        Err(e @ CallbackError::Adapter { .. }) => Err(Problem::unavailable(e.to_string())),
        Err(CallbackError::Store(e)) => Err(Problem::unavailable(format!(
            "the callback's events were not stored: {e}"
        ))),
    }
}
