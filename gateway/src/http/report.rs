//! `GET /admin/reports/double-entry`: the double-entry report
//! ([`crate::report`]) for auditors and operators granted `read`. The
//! answer is the console's data source and what `yiwang report
//! double-entry` prints; the read is audited with its parameters.

use super::AppState;
use super::audit::AuditNote;
use super::openapi::Describe;
use super::problem::Problem;
use crate::policy::{Action, Caller};
use crate::report::{self, DoubleEntryQuery, DoubleEntryReport, Period, ReportError};
use aide::transform::TransformOperation;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use serde_json::json;
use std::sync::Arc;

/// The query parameters.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    /// Cases accepted at or after this time (RFC 3339); required.
    since: String,
    /// ... and before this time (RFC 3339).
    until: Option<String>,
    /// Only this bureau's cases (credit code).
    bureau: Option<String>,
    /// `day` (default), `month` or `total`.
    period: Option<Period>,
}

/// The operation's description (see [`super::openapi`]).
pub(super) fn describe(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("The double-entry report: keyings saved and results that flowed back")
        .description(
            "Auditors, and operators granted `read`. Audited with its parameters. The \
             console's data source and what `yiwang report double-entry` prints.",
        )
        .input::<Query<Params>>()
        .response_with::<200, Json<DoubleEntryReport>, _>(|r| r.description("The report."))
        .problem(
            400,
            "A parameter is not valid (`bad-parameter`): a time that is not RFC 3339, an \
             empty range, an unknown period or parameter.",
        )
}

impl From<ReportError> for Problem {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Store(e) => e.into(),
            e @ ReportError::EmptyRange { .. } => {
                Problem::bad_request("bad-parameter", e.to_string())
            }
        }
    }
}

pub(super) async fn double_entry(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<(AuditNote, Json<DoubleEntryReport>), Problem> {
    state
        .authorize(&caller, Action::ReadReport, None, None)
        .await?;
    let Query(p) = q?;
    let millis = |name: &str, v: Option<&String>| {
        super::time_param(name, v).map(|t| t.map(|t| t.timestamp_millis()))
    };
    let since = millis("since", Some(&p.since))?.unwrap_or_default();
    let query = DoubleEntryQuery {
        since,
        until: millis("until", p.until.as_ref())?,
        bureau: p.bureau.clone(),
        period: p.period.unwrap_or_default(),
    };
    let answer = report::double_entry(&state.delivery, &query).await?;
    let note = AuditNote::read(
        None,
        Some(json!({ "double_entry_report": {
            "since": p.since, "until": p.until, "bureau": p.bureau,
            "period": query.period.as_str(), "cases": answer.total.cases,
        }})),
    );
    Ok((note, Json(answer)))
}
