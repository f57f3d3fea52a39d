//! The JSON the HTTP API answers with, as types: every answer of the intake and
//! admin APIs and the problem report. Clients (the bureau platform, operators'
//! scripts, the console) read these field names, so a rename here is a wire
//! change; being types, a drift fails to compile instead of shipping.
//!
//! This module holds shapes only and imports nothing above the store, so the
//! views (`delivery::view`, `delivery::admin`) and the edges (`http`) both
//! build on it. Subscriber webhook bodies are published contracts and live in
//! `yiwang_schema` (`Notice`), beside the case schema.
//!
//! Times are RFC 3339 in Beijing time (`null` only for a time out of range).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use yiwang_schema::{Decision, Event, Light, Stage};

/// What a job delivers, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKindName {
    Submit,
    Change,
    Notice,
}

/// Where a job stands, as operators and the bureau see it (finer than the
/// stored state: a pending job may be blocked, waiting or retrying).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobProgress {
    /// Not tried yet; it runs when its turn comes.
    Pending,
    /// Behind an earlier job to the same destination that is a dead letter.
    Blocked,
    /// Waiting for another network's result (a chained route).
    Waiting,
    /// Tried and failed; the next attempt is scheduled.
    Retrying,
    /// The last attempt may have reached the ministry: it is asked first.
    Verifying,
    /// An attempt is running.
    InFlight,
    Delivered,
    Dead,
}

impl JobProgress {
    /// Every value, for parsing and listing.
    pub const ALL: [JobProgress; 8] = [
        JobProgress::Pending,
        JobProgress::Blocked,
        JobProgress::Waiting,
        JobProgress::Retrying,
        JobProgress::Verifying,
        JobProgress::InFlight,
        JobProgress::Delivered,
        JobProgress::Dead,
    ];

    /// The name as it appears in JSON (and in `?state=` filters).
    pub fn as_str(self) -> &'static str {
        match self {
            JobProgress::Pending => "pending",
            JobProgress::Blocked => "blocked",
            JobProgress::Waiting => "waiting",
            JobProgress::Retrying => "retrying",
            JobProgress::Verifying => "verifying",
            JobProgress::InFlight => "in_flight",
            JobProgress::Delivered => "delivered",
            JobProgress::Dead => "dead",
        }
    }
}

/// A job's stored state, as the search filter `GET /v1/cases?state=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    Pending,
    Verify,
    InFlight,
    Delivered,
    Dead,
}

impl QueueState {
    /// Every value, in life order.
    pub const ALL: [QueueState; 5] = [
        QueueState::Pending,
        QueueState::Verify,
        QueueState::InFlight,
        QueueState::Delivered,
        QueueState::Dead,
    ];

    /// The name as it appears in JSON and in the store's search.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::Pending => "pending",
            QueueState::Verify => "verify",
            QueueState::InFlight => "in_flight",
            QueueState::Delivered => "delivered",
            QueueState::Dead => "dead",
        }
    }
}

/// One job (`GET /v1/cases/{id}`, `/admin/queue`, accepted deliveries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobView {
    pub job: u32,
    /// `network:<name>` or `subscriber:<name>`.
    pub destination: String,
    pub kind: JobKindName,
    pub idempotency_key: String,
    pub created_at: Option<String>,
    /// How many attempts were made (sends and verify queries).
    pub attempts: usize,
    pub state: JobProgress,
    /// What a `blocked` or `waiting` job waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// When a `retrying` or `verifying` job runs next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// When an `in_flight` attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_case_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<String>,
    /// Why a `dead` job was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The latest failed attempt of a job not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// The adapter version (sha256) the job is pinned to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// The latest failed attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LastError {
    pub at: Option<String>,
    /// The attempt's outcome: `retryable`, `permanent`, `ambiguous`, `not_found`.
    pub class: String,
    /// The stable error kind (`adapter_permanent`, `http_503`…).
    pub kind: Option<String>,
    pub message: String,
}

/// A network's part of a case view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkView {
    /// The job that speaks for the network now (the first unfinished, else the last).
    pub delivery: Option<JobView>,
    pub network_case_number: Option<String>,
    pub stage: Option<Stage>,
    /// The stage's Chinese name.
    pub stage_zh: Option<String>,
    pub stage_at: Option<String>,
    pub decision: Option<Decision>,
    pub certificate_number: Option<String>,
    pub events: Vec<Event>,
    pub jobs: Vec<JobView>,
    /// The status follow-up of this network case, once the gateway has
    /// asked about it (`[networks.X.follow-up]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUpView>,
}

/// Where a network case's status follow-up stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FollowUpView {
    /// Queries answered so far.
    pub queries: u32,
    /// When the network is asked next; none once the case is final there.
    pub next_at: Option<String>,
    /// The current wait between two queries (doubles while unchanged).
    pub interval_ms: u64,
}

/// A case's deadline light.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineView {
    pub light: Light,
    pub deadline: Option<String>,
}

/// `GET /v1/cases/{case_number}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseView {
    pub case_number: String,
    pub item: String,
    pub principal: String,
    pub accepted_at: Option<String>,
    pub updated_at: Option<String>,
    pub content_sha256: String,
    pub deadline: DeadlineView,
    pub networks: BTreeMap<String, NetworkView>,
    /// Notice jobs to subscribers.
    pub notices: Vec<JobView>,
}

/// A network in a search result line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkSummary {
    pub state: JobProgress,
    pub stage: Option<Stage>,
}

/// A line of `GET /v1/cases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseSummary {
    pub case_number: String,
    pub item: String,
    pub accepted_at: Option<String>,
    pub updated_at: Option<String>,
    pub light: Light,
    pub networks: BTreeMap<String, NetworkSummary>,
}

/// `GET /v1/cases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchAnswer {
    pub cases: Vec<CaseSummary>,
}

/// A delivery queued by an accepted case or change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptedDelivery {
    pub network: String,
    pub job: u32,
    pub idempotency_key: String,
    pub state: JobProgress,
}

/// Links of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub self_: String,
}

/// `202` to `POST /v1/cases` and `POST /v1/cases/{case_number}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptedAnswer {
    pub case_number: String,
    pub accepted_at: Option<String>,
    /// True when the same case was accepted before (nothing new was queued).
    pub duplicate: bool,
    pub deliveries: Vec<AcceptedDelivery>,
    pub links: Links,
}

/// A job in `GET /admin/queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueEntry {
    pub case_number: String,
    #[serde(flatten)]
    pub job: JobView,
}

/// `GET /admin/queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueAnswer {
    pub jobs: Vec<QueueEntry>,
}

/// One attempt in a dead letter's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttemptView {
    pub at: Option<String>,
    pub elapsed_ms: u64,
    /// `delivered`, `retryable`, `permanent`, `ambiguous`, `found`, `not_found`.
    pub outcome: String,
    pub kind: Option<String>,
    pub message: String,
    pub adapter: Option<String>,
    /// A status query settling an ambiguous attempt, not a send.
    pub verify: bool,
}

/// A dead letter with everything needed to decide on a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    pub case_number: String,
    pub item: String,
    #[serde(flatten)]
    pub job: JobView,
    pub attempt_log: Vec<AttemptView>,
    /// The case as accepted (unified case schema).
    pub case: Value,
}

/// `GET /admin/dlq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLettersAnswer {
    pub dead_letters: Vec<DeadLetter>,
}

/// A job put back in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplayedJob {
    pub case_number: String,
    pub job: u32,
    /// When it falls due (replays are spaced to the requested rate).
    pub due: Option<String>,
}

/// `POST /admin/replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplayAnswer {
    pub replayed: Vec<ReplayedJob>,
    /// The adapter version (sha256) the replayed jobs are pinned to, if any.
    pub adapter: Option<String>,
}

/// The adapter a network runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdapterView {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A destination's TLS (or peer-rejection) alert, or a network's adapter
/// alert (its adapter failed to load), which holds its queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertView {
    pub reason: String,
    pub since: Option<String>,
    /// What raised it (absent from answers of gateways before adapter alerts: `tls`).
    #[serde(default)]
    pub cause: AlertCause,
}

/// What put a destination in alert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertCause {
    /// Its TLS peer was refused, or refused us.
    #[default]
    Tls,
    /// The network's configured adapter failed to load: it is down.
    AdapterLoad,
    /// The adapter maps a form field that the form of an item routed to
    /// the network does not declare (checked at start).
    FieldMapping,
}

/// One destination in `GET /admin/destinations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DestinationView {
    pub pending: u64,
    /// Age of the oldest unfinished job, in seconds.
    pub oldest_pending_s: Option<i64>,
    /// Networks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterView>,
    /// Networks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    pub alert: Option<AlertView>,
}

/// `GET /admin/destinations`: keyed `network:<name>` / `subscriber:<name>`.
pub type DestinationsAnswer = BTreeMap<String, DestinationView>;

/// `PUT /admin/networks/{network}/adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdapterSwapped {
    pub network: String,
    /// The new version's sha256.
    pub adapter: String,
}

/// `POST /admin/networks/{network}/resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resumed {
    pub network: String,
    /// The alert that was lifted (`null` when there was none).
    pub lifted_alert: Option<LiftedAlert>,
}

/// An alert as it stood when lifted (times in milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiftedAlert {
    pub reason: String,
    pub since: i64,
    #[serde(default)]
    pub cause: AlertCause,
}

/// `GET /admin/audit/verify`: the verifier's report plus its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditVerified {
    /// The fields of the audit verifier's report (records, checkpoints, seqs, hash, broken…).
    #[serde(flatten)]
    pub report: Map<String, Value>,
    /// True when no record is broken.
    pub intact: bool,
}

/// A field-level error in a problem report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// JSON pointer to the field, e.g. `/applicant/id_number`, or
    /// `/form/investment_amount` for a field of the item's form.
    pub pointer: String,
    /// The rule's stable name (the unified schema's rule table).
    pub rule: String,
    pub message: String,
    /// For a rule of the item's form schema: the keyword that failed, as a
    /// JSON pointer into that schema (`/properties/investment_amount/minimum`).
    /// Absent for the unified case schema's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword_location: Option<String>,
}

/// Every refusal: an `application/problem+json` body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProblemBody {
    /// `https://yiwang.dev/problems/<kind>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_their_json() {
        for p in JobProgress::ALL {
            assert_eq!(
                serde_json::to_value(p).unwrap_or_default(),
                Value::String(p.as_str().into())
            );
        }
        for q in QueueState::ALL {
            assert_eq!(
                serde_json::to_value(q).unwrap_or_default(),
                Value::String(q.as_str().into())
            );
        }
    }

    #[test]
    fn renamed_fields_keep_their_wire_names() {
        let links = serde_json::to_value(Links {
            self_: "/v1/cases/C".into(),
        })
        .unwrap_or_default();
        assert_eq!(links, serde_json::json!({"self": "/v1/cases/C"}));
        let schema = serde_json::to_value(schemars::schema_for!(ProblemBody)).unwrap_or_default();
        assert!(
            schema["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|f| f == "type")),
            "{schema}"
        );
    }
}
