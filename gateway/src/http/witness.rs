//! This gateway as a witness of another's audit trail: `POST /admin/witness`
//! takes one signed checkpoint (from a principal granted `witness`, or an
//! auditor) and `GET /admin/witness[?trail=ID]` answers what is held, the
//! file `yiwang audit verify --witness` reads. The store and its rules
//! (append-only per trail id, a seq going backwards or a conflicting
//! checkpoint refused) are the audit crate's [`WitnessStore`]; this is its
//! edge. A refused fork is also raised as an `alert` record: someone holds
//! the pushing gateway's key, or its trail was rewritten.

use super::AppState;
use super::audit::AuditNote;
use super::openapi::Describe;
use super::problem::Problem;
use crate::policy::{Action, AdminOp, Caller};
use aide::transform::TransformOperation;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Query, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use yiwang_audit::{Accepted, CheckpointPush, Entry, Kind, WitnessDoc, WitnessError};

type Who = Extension<Arc<Caller>>;

/// `POST /admin/witness`, as the API description states it.
pub(super) fn describe_post(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Hold one signed checkpoint of another gateway's audit trail")
        .description("Requires the `witness` admin grant (or the auditor role). Audited.")
        .input::<Json<CheckpointPush>>()
        .response_with::<200, Json<Accepted>, _>(|r| r.description("Held (`new`: first time)."))
        .problem(400, "The body is not a checkpoint push (`bad-checkpoint`).")
        .problem(
            409,
            "The checkpoint goes backwards or forks from what the witness holds \
             (`witness-conflict`); also raised as an alert.",
        )
        .problem(
            422,
            "The checkpoint does not stand on its own (`bad-checkpoint`: bad key, not a \
             checkpoint line, hash or signature wrong).",
        )
}

/// `GET /admin/witness`, as the API description states it.
pub(super) fn describe_get(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary(
        "What this gateway holds as a witness (the file `yiwang audit verify --witness` reads)",
    )
    .description("Requires the `witness` admin grant (or the auditor role).")
    .input::<Query<HeldQuery>>()
    .response_with::<200, Json<WitnessDoc>, _>(|r| r.description("The held trails."))
}

/// `POST /admin/witness`: hold one checkpoint.
pub(super) async fn post(
    State(state): State<AppState>,
    Extension(caller): Who,
    body: Result<Json<CheckpointPush>, JsonRejection>,
) -> Result<(AuditNote, Json<Accepted>), Problem> {
    state
        .authorize(&caller, Action::Witness, None, None)
        .await?;
    let Json(push) = body.map_err(|e| Problem::bad_request("bad-checkpoint", e.body_text()))?;
    let store = state.witness.clone();
    let by = caller.name();
    let now = chrono::Utc::now().to_rfc3339();
    let pushed = push.clone();
    let accepted = tokio::task::spawn_blocking(move || store.accept(&pushed, &by, &now)).await?;
    match accepted {
        Ok(accepted) => {
            let note = AuditNote::action(
                AdminOp::Witness,
                None,
                json!({"trail-id": accepted.trail_id, "seq": accepted.seq, "new": accepted.new}),
            );
            Ok((note, Json(accepted)))
        }
        Err(WitnessError::Refused(refusal)) => {
            let reason = refusal.to_string();
            tracing::error!(principal = %caller.name(), %reason, "witness refused a checkpoint");
            metrics::counter!("yiwang_witness_refused_total").increment(1);
            if refusal.is_conflict() {
                state.audit().record(
                    Entry::new(Kind::Alert)
                        .principal(caller.name())
                        .detail(json!({"witness": "checkpoint refused", "reason": reason})),
                );
                Err(Problem::new(
                    StatusCode::CONFLICT,
                    "witness-conflict",
                    "The checkpoint conflicts with what the witness holds",
                )
                .detail(reason))
            } else {
                Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad-checkpoint",
                    "The checkpoint does not stand on its own",
                )
                .detail(reason))
            }
        }
        Err(WitnessError::Audit(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HeldQuery {
    /// One trail (its id); default all.
    trail: Option<String>,
}

/// `GET /admin/witness[?trail=ID]`: what is held.
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<HeldQuery>, QueryRejection>,
) -> Result<(AuditNote, Json<WitnessDoc>), Problem> {
    state
        .authorize(&caller, Action::Witness, None, None)
        .await?;
    let Query(q) = q?;
    let store = state.witness.clone();
    let trail = q.trail.clone();
    let doc = tokio::task::spawn_blocking(move || store.held(trail.as_deref())).await??;
    let note = AuditNote::read(None, Some(json!({"witness": q.trail})));
    Ok((note, Json(doc)))
}
