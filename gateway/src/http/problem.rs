//! Every refusal is an `application/problem+json` body (RFC 9457) saying
//! what was wrong and why; this is the one place HTTP errors are shaped.

use crate::delivery::admin::AdminError;
use crate::delivery::backflow::CallbackError;
use crate::delivery::intake::IntakeError;
use crate::forms::Invalid;
use crate::store::StoreError;
use crate::wire::{FieldError, ProblemBody};
use axum::extract::rejection::QueryRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use yiwang_audit::AuditError;

/// A problem report.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A stable slug: `invalid-case`, `unknown-item`, `case-conflict`…
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
    /// Field-level errors: `{"pointer": "/applicant/id_number", "rule": …, "message": …}`.
    pub errors: Vec<FieldError>,
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

    pub fn errors(mut self, errors: Vec<FieldError>) -> Self {
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

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            type_: format!("https://yiwang.dev/problems/{}", self.kind),
            title: self.title.clone(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

fn field_error(pointer: &str, rule: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.to_string(),
        rule: rule.to_string(),
        message: message.into(),
        keyword_location: None,
    }
}

impl Problem {
    /// A case that breaks the unified case schema, its item's form, or
    /// both: every problem, each naming its field (and, for a form rule,
    /// the keyword of the form schema that failed).
    pub fn invalid_case(invalid: &Invalid) -> Self {
        let unified = invalid
            .unified
            .iter()
            .map(|e| field_error(&e.pointer, e.rule, e.message.clone()));
        let form = invalid.form.iter().map(|p| FieldError {
            keyword_location: Some(p.keyword_location.clone()),
            ..field_error(&p.error.pointer, p.error.rule, p.error.message.clone())
        });
        let capped = if invalid.form.len() >= crate::forms::MAX_PROBLEMS {
            format!(" (the form's first {} listed)", crate::forms::MAX_PROBLEMS)
        } else {
            String::new()
        };
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-case",
            "The case does not satisfy the unified case schema or its item's form",
        )
        .detail(format!(
            "{} problem(s){capped}; each names the field (JSON pointer) and the rule",
            invalid.len()
        ))
        .errors(unified.chain(form).collect())
    }
}

impl From<IntakeError> for Problem {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Invalid(errors) => Problem::invalid_case(&Invalid {
                unified: errors.0,
                form: Vec::new(),
            }),
            IntakeError::UnknownItem { code } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-item",
                "The item has no route",
            )
            .detail(format!(
                "item `{code}` has no route in this gateway's configuration"
            ))
            .errors(vec![field_error(
                "/item/code",
                "routed_item",
                format!("`{code}` is not a configured item"),
            )]),
            e @ IntakeError::Conflict { .. } => Problem::new(
                StatusCode::CONFLICT,
                "case-conflict",
                "Case number already used",
            )
            .detail(e.to_string()),
            e @ IntakeError::UnknownCase { .. } => Problem::not_found(e.to_string()),
            e @ IntakeError::CaseMismatch { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "case-mismatch",
                "The change is for another case",
            )
            .detail(e.to_string())
            .errors(vec![field_error(
                "/case_number",
                "matches_path",
                e.to_string(),
            )]),
            IntakeError::Store(e) => {
                tracing::error!(error = %e, "intake could not store");
                Problem::unavailable(format!("the case was not stored: {e}"))
            }
        }
    }
}

impl From<CallbackError> for Problem {
    fn from(e: CallbackError) -> Self {
        match e {
            e @ CallbackError::UnknownNetwork(_) => Problem::not_found(e.to_string()),
            e @ CallbackError::Busy(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "callbacks-busy",
                "The network's callbacks are all in progress",
            )
            .detail(e.to_string())
            .retry_after(1),
            // An authentic push the adapter cannot use yet (unknown status
            // code, unreadable body) must not be lost: 503 asks the ministry
            // to keep it and retry, and a fixed adapter (hot swap) takes it then.
            e @ CallbackError::Refused { .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "callback-refused",
                "The callback could not be taken",
            )
            .detail(e.to_string())
            .retry_after(60),
            e @ CallbackError::Adapter { .. } => Problem::unavailable(e.to_string()),
            CallbackError::Store(e) => {
                Problem::unavailable(format!("the callback's events were not stored: {e}"))
            }
        }
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(e) => e.into(),
            e => Problem::bad_request("replay-refused", e.to_string()),
        }
    }
}

/// The store failed: nothing was decided, the client may retry.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Problem::unavailable(e.to_string())
    }
}

/// A query string that does not fit the endpoint's parameters.
impl From<QueryRejection> for Problem {
    fn from(e: QueryRejection) -> Self {
        Problem::bad_request("bad-parameter", e.body_text())
    }
}

/// The audit trail could not be read.
impl From<AuditError> for Problem {
    fn from(e: AuditError) -> Self {
        Problem::unavailable(e.to_string())
    }
}

/// A blocking task (audit trail reads) that panicked or was cancelled.
impl From<tokio::task::JoinError> for Problem {
    fn from(e: tokio::task::JoinError) -> Self {
        Problem::unavailable(e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_problem_body_is_rfc_9457_with_field_errors() {
        let p = Problem::from(IntakeError::UnknownItem { code: "x-1".into() });
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            serde_json::to_value(p.body()).unwrap_or_default(),
            json!({
                "type": "https://yiwang.dev/problems/unknown-item",
                "title": "The item has no route",
                "status": 422,
                "detail": "item `x-1` has no route in this gateway's configuration",
                "errors": [{"pointer": "/item/code", "rule": "routed_item",
                            "message": "`x-1` is not a configured item"}],
            })
        );
        let bare = Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed");
        assert_eq!(
            serde_json::to_value(bare.body()).unwrap_or_default(),
            json!({"type": "https://yiwang.dev/problems/forbidden", "title": "Not allowed",
                   "status": 403}),
            "empty detail and errors are left out"
        );
    }

    #[test]
    fn an_invalid_case_lists_unified_and_form_problems_with_form_keywords() {
        let invalid = Invalid {
            unified: vec![yiwang_schema::ValidationError::new(
                "/bureau/uscc",
                "uscc_checksum",
                "bad",
            )],
            form: vec![crate::forms::FormProblem {
                error: yiwang_schema::ValidationError::new("/form/amount", "minimum", "-1"),
                keyword_location: "/properties/amount/minimum".into(),
            }],
        };
        let p = Problem::invalid_case(&invalid);
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        let body = serde_json::to_value(p.body()).unwrap_or_default();
        assert_eq!(
            body["detail"],
            json!("2 problem(s); each names the field (JSON pointer) and the rule")
        );
        assert_eq!(
            body["errors"],
            json!([
                {"pointer": "/bureau/uscc", "rule": "uscc_checksum", "message": "bad"},
                {"pointer": "/form/amount", "rule": "minimum", "message": "-1",
                 "keyword_location": "/properties/amount/minimum"},
            ])
        );
    }

    #[test]
    fn a_store_failure_is_retryable_and_a_refused_replay_is_the_callers() {
        let store = Problem::from(AdminError::Store(StoreError::Backend("disk".into())));
        assert_eq!(store.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(store.retry_after_s, Some(5));
        let refused = Problem::from(AdminError::BadRate);
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.kind, "replay-refused");
        assert_eq!(refused.detail, "rate_per_second must be a positive number");
    }

    #[test]
    fn a_callback_over_the_networks_share_is_503_retry_after_1_naming_it() {
        let busy = crate::runtime::NetworkSlots::new(1, 0, false)
            .try_callback("tax")
            .expect_err("no callback turns");
        let p = Problem::from(CallbackError::Busy(busy));
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p.retry_after_s, Some(1));
        assert_eq!(p.kind, "callbacks-busy");
        assert!(p.detail.contains("network `tax`"), "{}", p.detail);
        let resp = p.into_response();
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
