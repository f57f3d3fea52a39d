//! The console's JSON endpoints on the admin listener (`/admin/console/*`):
//! what its pages read that the admin API did not answer as one document
//! (the caller's grants, the networks' health, a multi-criteria case search,
//! a case's timeline, dead letters, deadlines). Read-only, for auditors and
//! operators granted `read` ([`Action::Console`]); every action the console
//! offers (replay, resume) goes through the admin API's own routes, with
//! their grants, rate limits and audit records.

use super::shape::{
    self, AdapterSwap, BreakerView, CaseTimeline, ConsoleCases, ConsoleGrants, ConsoleSession,
    DeadlineSummary, Health, NetworkStatus, NetworksStatus,
};
use crate::delivery::admin::{self, JobFilter};
use crate::delivery::retry::BreakerState;
use crate::delivery::view;
use crate::http::AppState;
use crate::http::audit::AuditNote;
use crate::http::openapi::{CasePath, Describe, op};
use crate::http::problem::Problem;
use crate::policy::{Action, AdminOp, Caller};
use crate::store::CaseQuery;
use crate::wire::{DeadLettersAnswer, QueueState};
use aide::axum::ApiRouter;
use aide::transform::TransformOperation;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const TAG: &str = "admin";
const WHO: &str = "Auditors, and operators granted `read`.";

type Who = Extension<Arc<Caller>>;

/// The console's routes, each with its description.
pub(crate) fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .route("/admin/console/session", get(session))
        .api_route_docs(
            "/admin/console/session",
            op("get", TAG, "getConsoleSession", |o| {
                o.summary("Who the console talks to, and what its buttons may do")
                    .description(WHO)
                    .response_with::<200, Json<ConsoleSession>, _>(|r| {
                        r.description("The session.")
                    })
            }),
        )
        .route("/admin/console/networks", get(networks))
        .api_route_docs(
            "/admin/console/networks",
            op("get", TAG, "getConsoleNetworks", |o| {
                o.summary("Every network: health, breaker, alert, queue, last hour, adapter swaps")
                    .description(WHO)
                    .response_with::<200, Json<NetworksStatus>, _>(|r| {
                        r.description("The networks, by name.")
                    })
            }),
        )
        .route("/admin/console/cases", get(cases))
        .api_route_docs(
            "/admin/console/cases",
            op("get", TAG, "searchConsoleCases", describe_cases),
        )
        .route("/admin/console/cases/{case_number}", get(case_timeline))
        .api_route_docs(
            "/admin/console/cases/{case_number}",
            op("get", TAG, "getConsoleCaseTimeline", |o| {
                o.summary("One case's timeline across every network")
                    .description(WHO)
                    .input::<Path<CasePath>>()
                    .response_with::<200, Json<CaseTimeline>, _>(|r| {
                        r.description("The case view and its timeline, oldest first.")
                    })
                    .problem(404, "No such case (`not-found`).")
            }),
        )
        .route("/admin/console/dead-letters", get(dead_letters))
        .api_route_docs(
            "/admin/console/dead-letters",
            op("get", TAG, "listConsoleDeadLetters", |o| {
                o.summary("Dead letters, with their attempts (read-only; replay is /admin/replay)")
                    .description(WHO)
                    .input::<Query<JobFilter>>()
                    .response_with::<200, Json<DeadLettersAnswer>, _>(|r| {
                        r.description("The dead letters, newest first.")
                    })
            }),
        )
        .route("/admin/console/deadlines", get(deadlines))
        .api_route_docs(
            "/admin/console/deadlines",
            op("get", TAG, "getConsoleDeadlines", |o| {
                o.summary("Open cases' deadline lights per item and bureau, red first")
                    .description(WHO)
                    .response_with::<200, Json<DeadlineSummary>, _>(|r| {
                        r.description("The groups and the red cases.")
                    })
            }),
        )
}

fn describe_cases(o: TransformOperation<'_>) -> TransformOperation<'_> {
    o.summary("Search cases by number, item, bureau, network, state and time")
        .description(WHO)
        .input::<Query<CaseParams>>()
        .response_with::<200, Json<ConsoleCases>, _>(|r| {
            r.description("Matching cases, most recently changed first.")
        })
}

async fn session(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Json<ConsoleSession>, Problem> {
    state
        .authorize(&caller, Action::Console, None, None)
        .await?;
    let may = |a: Action<'_>| state.policy.check(&caller, a).is_ok();
    let role = caller
        .principal
        .as_ref()
        .map(|p| p.role.as_str().to_string())
        .unwrap_or_default();
    Ok(Json(ConsoleSession {
        principal: caller.name(),
        role,
        may: ConsoleGrants {
            replay: may(Action::Admin(AdminOp::Replay)),
            resume: may(Action::Admin(AdminOp::Resume)),
            audit: may(Action::ReadAudit),
        },
    }))
}

/// Per network: successful and failed delivery calls in the last hour, and
/// the adapter swaps, from the audit trail.
#[derive(Default)]
struct FromTrail {
    last_hour: BTreeMap<String, (u64, u64)>,
    swaps: BTreeMap<String, Vec<AdapterSwap>>,
}

/// How long a reading of the trail serves the Networks page: the trail is
/// read whole (one pass), so at most this often however many consoles poll.
const TRAIL_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// The last reading of the trail, and of which directory when.
type TrailCache = Option<(std::path::PathBuf, std::time::Instant, Arc<FromTrail>)>;
static TRAIL: std::sync::Mutex<TrailCache> = std::sync::Mutex::new(None);

/// The trail's figures, read again once the last reading is older than
/// [`TRAIL_FRESH`].
async fn trail(dir: std::path::PathBuf) -> Result<Arc<FromTrail>, Problem> {
    let cached = TRAIL.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some((d, at, t)) = cached
        && d == dir
        && at.elapsed() < TRAIL_FRESH
    {
        return Ok(t);
    }
    let read = {
        let dir = dir.clone();
        Arc::new(tokio::task::spawn_blocking(move || read_trail(&dir)).await??)
    };
    *TRAIL.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((dir, std::time::Instant::now(), Arc::clone(&read)));
    Ok(read)
}

fn read_trail(dir: &std::path::Path) -> Result<FromTrail, yiwang_audit::AuditError> {
    use yiwang_audit::Kind;
    let mut out = FromTrail::default();
    let hour_ago = chrono::Utc::now().fixed_offset() - chrono::Duration::hours(1);
    for r in yiwang_audit::query(dir, &yiwang_audit::Query::default()) {
        let r = r?;
        let Some(net) = r.network.clone() else {
            continue;
        };
        match r.kind {
            Kind::AdapterCall if r.at >= hour_ago => {
                let call = r.detail["call"].as_str().unwrap_or_default();
                if !matches!(call, "submit" | "update" | "query_status") {
                    continue;
                }
                let counts = out.last_hour.entry(net).or_default();
                if r.detail["outcome"] == "ok" {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
            }
            Kind::Admin if r.detail["operation"] == "adapter-reload" => {
                let d = &r.detail["detail"];
                out.swaps.entry(net).or_default().insert(
                    0,
                    AdapterSwap {
                        at: r.at.to_rfc3339(),
                        principal: r.principal.clone(),
                        adapter: d["adapter"].as_str().map(str::to_string),
                        refused: d["refused"]["reason"].as_str().map(str::to_string),
                    },
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn networks(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Json<NetworksStatus>, Problem> {
    state
        .authorize(&caller, Action::Console, None, None)
        .await?;
    let destinations = admin::destinations(&state.delivery).await?;
    let trail = trail(state.audit().dir().to_path_buf()).await?;
    let mut networks = Vec::new();
    for (name, net) in &state.delivery.networks {
        let Some(d) = destinations.get(&format!("network:{name}")) else {
            continue;
        };
        let breaker = match net.breaker_state() {
            BreakerState::Closed => BreakerView::Closed,
            BreakerState::Open => BreakerView::Open,
            BreakerState::HalfOpen => BreakerView::HalfOpen,
        };
        let health = match (&d.alert, breaker) {
            _ if net.is_down() => Health::Down,
            (Some(_), _) => Health::Alert,
            (None, BreakerView::Closed) => Health::Ok,
            (None, _) => Health::Degraded,
        };
        let (deliveries, failures) = trail.last_hour.get(name).copied().unwrap_or_default();
        networks.push(NetworkStatus {
            name: name.clone(),
            health,
            breaker,
            alert: d.alert.clone(),
            pending: d.pending,
            oldest_pending_s: d.oldest_pending_s,
            deliveries_last_hour: deliveries,
            failures_last_hour: failures,
            adapter: d.adapter.clone(),
            swaps: trail.swaps.get(name).cloned().unwrap_or_default(),
        });
    }
    Ok(Json(NetworksStatus { networks }))
}

/// `GET /admin/console/cases` query parameters; every one narrows.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseParams {
    /// This case number exactly.
    case_number: Option<String>,
    /// Cases of this item code.
    item: Option<String>,
    /// Cases of this bureau (unified social credit code).
    bureau: Option<String>,
    /// Cases with a job to this network.
    network: Option<String>,
    /// Cases with a job in this state (`pending`, `verify`, `in_flight`,
    /// `delivered`, `dead`).
    state: Option<QueueState>,
    /// Last changed at or after this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    since: Option<String>,
    /// Last changed before this time (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    until: Option<String>,
    /// At most this many cases (default 100; clamped to 1–1000).
    limit: Option<usize>,
}

async fn cases(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<CaseParams>, QueryRejection>,
) -> Result<(AuditNote, Json<ConsoleCases>), Problem> {
    state
        .authorize(&caller, Action::Console, None, None)
        .await?;
    let Query(p) = q?;
    let query = CaseQuery {
        item: p.item.clone(),
        network: p.network.clone(),
        state: p.state.map(|s| s.as_str().to_string()),
        since: crate::http::time_param("since", p.since.as_ref())?.map(|t| t.timestamp_millis()),
        until: crate::http::time_param("until", p.until.as_ref())?.map(|t| t.timestamp_millis()),
        bureaus: p.bureau.clone().map(|b| [b].into_iter().collect()),
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let found = match &p.case_number {
        // One case: it must also fit every other criterion given.
        Some(n) => {
            let one = state.delivery.store.case(n).await?;
            one.into_iter().filter(|r| fits(r, &query)).collect()
        }
        None => state.delivery.store.search(&query).await?,
    };
    let cases: Vec<_> = found.iter().map(shape::console_case).collect();
    let detail = json!({ "console_search": {
        "case_number": p.case_number, "item": p.item, "bureau": p.bureau,
        "network": p.network, "state": query.state, "since": p.since, "until": p.until,
    }, "results": cases.len() });
    Ok((
        AuditNote::read(None, Some(detail)),
        Json(ConsoleCases { cases }),
    ))
}

/// Whether a record found by its number fits the rest of a search.
fn fits(r: &crate::store::CaseRecord, q: &CaseQuery) -> bool {
    let on = |j: &crate::store::Job| {
        q.network
            .as_ref()
            .is_none_or(|n| j.destination == crate::store::Destination::Network(n.clone()))
    };
    let state_ok = q
        .state
        .as_ref()
        .is_none_or(|s| r.jobs.iter().filter(|j| on(j)).any(|j| j.state.name() == s));
    let network_ok = q.network.is_none() || r.jobs.iter().any(on);
    q.item.as_ref().is_none_or(|i| *i == r.item)
        && q.bureaus.as_ref().is_none_or(|b| b.contains(&r.bureau))
        && q.since.is_none_or(|t| r.updated_at >= t)
        && q.until.is_none_or(|t| r.updated_at < t)
        && network_ok
        && state_ok
}

async fn case_timeline(
    State(state): State<AppState>,
    Extension(caller): Who,
    Path(case_number): Path<String>,
) -> Result<(AuditNote, Json<CaseTimeline>), Problem> {
    state
        .authorize(&caller, Action::Console, Some(&case_number), None)
        .await?;
    let Some(rec) = state.delivery.store.case(&case_number).await? else {
        return Err(Problem::not_found(format!("no case {case_number}")));
    };
    let answer = CaseTimeline {
        bureau: rec.bureau.clone(),
        case: view::case_view(&rec),
        timeline: shape::timeline(&rec),
    };
    Ok((AuditNote::read(Some(&case_number), None), Json(answer)))
}

async fn dead_letters(
    State(state): State<AppState>,
    Extension(caller): Who,
    q: Result<Query<JobFilter>, QueryRejection>,
) -> Result<(AuditNote, Json<DeadLettersAnswer>), Problem> {
    state
        .authorize(&caller, Action::Console, None, None)
        .await?;
    let Query(f) = q?;
    let dead_letters = admin::dead_letters(&state.delivery, &f).await?;
    let detail = json!({ "console_dead_letters": {
        "network": f.network, "case_number": f.case_number, "results": dead_letters.len(),
    }});
    Ok((
        AuditNote::read(f.case_number.as_deref(), Some(detail)),
        Json(DeadLettersAnswer { dead_letters }),
    ))
}

/// How many open cases the Deadlines page reads at most.
const DEADLINE_SCAN: usize = 10_000;

async fn deadlines(
    State(state): State<AppState>,
    Extension(caller): Who,
) -> Result<Json<DeadlineSummary>, Problem> {
    state
        .authorize(&caller, Action::Console, None, None)
        .await?;
    let query = CaseQuery {
        limit: DEADLINE_SCAN,
        ..Default::default()
    };
    let found = state.delivery.store.search(&query).await?;
    let truncated = found.len() >= DEADLINE_SCAN;
    Ok(Json(shape::deadline_summary(&found, truncated)))
}
