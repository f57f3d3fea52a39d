//! Every refusal is an `application/problem+json` body (RFC 9457) saying
//! what was wrong and why; this is the one place HTTP errors are shaped.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// A problem report.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A stable slug: `invalid-case`, `unknown-item`, `case-conflict`…
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
    /// Field-level errors: `{"pointer": "/applicant/id_number", "rule": …, "message": …}`.
    pub errors: Vec<Value>,
    pub retry_after_s: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            title: title.into(),
            detail: String::new(),
            errors: Vec::new(),
            retry_after_s: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn errors(mut self, errors: Vec<Value>) -> Self {
        self.errors = errors;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(what)
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, kind, "Bad request").detail(detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .detail(detail)
        .retry_after(5)
    }

    pub fn body(&self) -> Value {
        let mut v = json!({
            "type": format!("https://yiwang.dev/problems/{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
        });
        if !self.detail.is_empty() {
            v["detail"] = json!(self.detail);
        }
        if !self.errors.is_empty() {
            v["errors"] = json!(self.errors);
        }
        v
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        metrics::counter!("yiwang_http_rejections_total", "reason" => self.kind).increment(1);
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// tower errors (load shedding, timeouts) as problems.
pub async fn overload(err: tower::BoxError) -> Problem {
    if err.is::<tower::load_shed::error::Overloaded>() {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Too many requests in progress",
        )
        .detail("the gateway is at its concurrency limit; retry shortly")
        .retry_after(1)
    } else if err.is::<tower::timeout::error::Elapsed>() {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "The request took too long",
        )
        .detail("the request was not completed within the listener's request-timeout-ms; an intake may be retried safely with the same body")
        .retry_after(1)
    } else {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
        .detail(err.to_string())
    }
}
