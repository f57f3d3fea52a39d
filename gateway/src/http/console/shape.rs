//! What the console's own endpoints answer (`/admin/console/*`), and how a
//! case record becomes its timeline and open cases their deadline summary.
//! Shapes and pure functions only: the handlers (`api.rs`) read the store
//! and the audit trail and hand the records here.

use crate::delivery::view::{self, rfc3339};
use crate::store::{CaseRecord, Destination, Job, JobKind, JobState, Light, Millis};
use crate::wire::{AdapterView, AlertView, CaseSummary, CaseView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /admin/console/session`: who the console is talking to and what
/// its buttons may do (the admin API decides each action again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleSession {
    pub principal: String,
    /// `operator` or `auditor`.
    pub role: String,
    pub may: ConsoleGrants,
}

/// What the caller's grants allow, page by page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleGrants {
    /// Replay dead letters (`replay` grant).
    pub replay: bool,
    /// Lift a network's alert (`resume` grant).
    pub resume: bool,
    /// Read, verify and export the audit trail (auditors).
    pub audit: bool,
}

/// Where a network's circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerView {
    /// Calls flow.
    Closed,
    /// Failures in a row: no calls until the cooldown ends.
    Open,
    /// The cooldown ended: one probe decides.
    HalfOpen,
}

/// A network's health, as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No alert, breaker closed.
    Ok,
    /// Its breaker is open or probing.
    Degraded,
    /// In alert: its queue is held until an operator resumes it.
    Alert,
    /// Its adapter failed to load and none was installed since.
    Down,
}

/// One adapter hot swap (or refused swap) from the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdapterSwap {
    pub at: String,
    /// The operator who asked.
    pub principal: Option<String>,
    /// The installed version's sha256 (none when refused).
    pub adapter: Option<String>,
    /// Why it was refused, if it was.
    pub refused: Option<String>,
}

/// One network on the console's Networks page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkStatus {
    pub name: String,
    pub health: Health,
    pub breaker: BreakerView,
    pub alert: Option<AlertView>,
    /// Jobs not yet delivered.
    pub pending: u64,
    /// Age of the oldest unfinished job, in seconds.
    pub oldest_pending_s: Option<i64>,
    /// Delivery calls (submit, update, status query) that succeeded in the
    /// last hour, from the audit trail.
    pub deliveries_last_hour: u64,
    /// ... and that failed.
    pub failures_last_hour: u64,
    pub adapter: Option<AdapterView>,
    /// Hot swaps of its adapter, newest first.
    pub swaps: Vec<AdapterSwap>,
}

/// `GET /admin/console/networks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworksStatus {
    pub networks: Vec<NetworkStatus>,
}

/// A case in a console list: the search line plus whose it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleCase {
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// The accepting bureau's unified social credit code.
    pub bureau: String,
    /// The principal that submitted it.
    pub principal: String,
    pub deadline: Option<String>,
}

/// `GET /admin/console/cases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleCases {
    pub cases: Vec<ConsoleCase>,
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// The case was accepted.
    Intake,
    /// The bureau posted a change.
    Change,
    /// A delivery attempt (`class` is its outcome).
    Attempt,
    /// A job was delivered (the ministry case number, if any, in the message).
    Delivered,
    /// A job was given up: a dead letter.
    Dead,
    /// A chained route handed a network's results to the next one.
    Handoff,
    /// A back-flow stage from the ministry.
    Stage,
    /// A notice to a subscriber.
    Notice,
    /// The promised deadline.
    Deadline,
}

/// One line of a case's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    pub at: Option<String>,
    pub kind: TimelineKind,
    /// The network (or `subscriber:<name>`) it concerns.
    pub network: Option<String>,
    /// An attempt's outcome (`delivered`, `retryable`, `permanent`…) or
    /// error kind; a stage's name.
    pub class: Option<String>,
    pub message: String,
    #[serde(skip)]
    pub millis: Millis,
}

/// `GET /admin/console/cases/{case_number}`: the case view and its
/// timeline across every network, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseTimeline {
    pub bureau: String,
    pub case: CaseView,
    pub timeline: Vec<TimelineEntry>,
}

/// One item and bureau on the Deadlines page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineGroup {
    pub item: String,
    pub bureau: String,
    pub green: u64,
    pub yellow: u64,
    pub red: u64,
}

/// `GET /admin/console/deadlines`: open cases' lights per item and bureau
/// (groups with red first), and the red cases, the most overdue first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineSummary {
    pub groups: Vec<DeadlineGroup>,
    pub red: Vec<ConsoleCase>,
    /// Open cases counted.
    pub cases: u64,
    /// True when more open cases exist than were read (`limit`).
    pub truncated: bool,
}

/// A case as a console list line.
pub fn console_case(rec: &CaseRecord) -> ConsoleCase {
    ConsoleCase {
        summary: view::case_summary(rec),
        bureau: rec.bureau.clone(),
        principal: rec.principal.clone(),
        deadline: rec.deadline.and_then(rfc3339),
    }
}

/// The lights of open cases, grouped; red first, then yellow, then by name.
pub fn deadline_summary(records: &[CaseRecord], truncated: bool) -> DeadlineSummary {
    let mut groups: BTreeMap<(String, String), DeadlineGroup> = BTreeMap::new();
    let mut red: Vec<&CaseRecord> = Vec::new();
    let mut cases = 0;
    for rec in records.iter().filter(|r| r.light != Light::Done) {
        cases += 1;
        let g = groups
            .entry((rec.item.clone(), rec.bureau.clone()))
            .or_insert_with(|| DeadlineGroup {
                item: rec.item.clone(),
                bureau: rec.bureau.clone(),
                green: 0,
                yellow: 0,
                red: 0,
            });
        match rec.light {
            Light::Green => g.green += 1,
            Light::Yellow => g.yellow += 1,
            Light::Red => {
                g.red += 1;
                red.push(rec);
            }
            Light::Done => {}
        }
    }
    let mut groups: Vec<DeadlineGroup> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse((g.red, g.yellow)));
    red.sort_by_key(|r| r.deadline.unwrap_or(Millis::MAX));
    DeadlineSummary {
        groups,
        red: red.into_iter().map(console_case).collect(),
        cases,
        truncated,
    }
}

/// A case's timeline: intake, changes, every job's attempts and end, the
/// chained hand-offs of its route, the ministries' stages, its deadline.
pub fn timeline(rec: &CaseRecord) -> Vec<TimelineEntry> {
    let mut out = vec![entry(
        rec.accepted_at,
        TimelineKind::Intake,
        None,
        None,
        format!("item {} accepted from {}", rec.item, rec.principal),
    )];
    for c in &rec.changes {
        let jobs: Vec<String> = c.jobs.iter().map(u32::to_string).collect();
        let msg = format!("change {} queued as job(s) {}", c.digest, jobs.join(", "));
        out.push(entry(c.at, TimelineKind::Change, None, None, msg));
    }
    for job in &rec.jobs {
        job_entries(job, &mut out);
        out.extend(handoff(rec, job));
    }
    for (name, net) in &rec.networks {
        for e in &net.events {
            let mut msg = format!("{} ({})", e.stage.label_zh(), e.network_case_number);
            if let Some(reason) = &e.details.reason {
                msg.push_str(&format!(": {reason}"));
            }
            let at = e.at.timestamp_millis();
            let class = Some(e.stage.as_str().to_string());
            out.push(entry(at, TimelineKind::Stage, Some(name), class, msg));
        }
    }
    if let Some(deadline) = rec.deadline {
        let light = serde_json::to_value(rec.light).unwrap_or_default();
        let class = light.as_str().map(str::to_string);
        let msg = "promised time limit (承诺时限)".to_string();
        out.push(entry(deadline, TimelineKind::Deadline, None, class, msg));
    }
    out.sort_by_key(|e| e.millis);
    out
}

fn entry(
    at: Millis,
    kind: TimelineKind,
    network: Option<&str>,
    class: Option<String>,
    message: String,
) -> TimelineEntry {
    TimelineEntry {
        at: rfc3339(at),
        kind,
        network: network.map(str::to_string),
        class,
        message,
        millis: at,
    }
}

/// A job's attempts and, if it ended, how.
fn job_entries(job: &Job, out: &mut Vec<TimelineEntry>) {
    let (dest, notice) = match &job.destination {
        Destination::Network(n) => (n.clone(), false),
        Destination::Subscriber(_) => (job.destination.key(), true),
    };
    let dest = Some(dest.as_str());
    for a in &job.attempts {
        let what = if a.verify { "status query" } else { "attempt" };
        let kind = a
            .kind
            .as_deref()
            .map(|k| format!(" [{k}]"))
            .unwrap_or_default();
        let mut msg = format!("job {} {what}{kind}", job.id);
        if !a.message.is_empty() {
            msg.push_str(&format!(": {}", a.message));
        }
        let k = if notice {
            TimelineKind::Notice
        } else {
            TimelineKind::Attempt
        };
        out.push(entry(a.at, k, dest, Some(a.outcome.name().into()), msg));
    }
    match &job.state {
        JobState::Delivered {
            at,
            network_case_number,
        } => {
            let msg = match network_case_number {
                Some(n) => format!("job {} delivered; ministry case number {n}", job.id),
                None => format!("job {} delivered", job.id),
            };
            let k = if notice {
                TimelineKind::Notice
            } else {
                TimelineKind::Delivered
            };
            out.push(entry(*at, k, dest, Some("delivered".into()), msg));
        }
        JobState::Dead { at, reason } => {
            let msg = format!("job {} is a dead letter: {reason}", job.id);
            out.push(entry(
                *at,
                TimelineKind::Dead,
                dest,
                Some("dead".into()),
                msg,
            ));
        }
        _ => {}
    }
}

/// A chained job's hand-off: the results it took from the networks it
/// waited for (as its job records them), when it first ran (none before).
fn handoff(rec: &CaseRecord, job: &Job) -> Option<TimelineEntry> {
    let (JobKind::Submit { after, inputs }, Destination::Network(network)) =
        (&job.kind, &job.destination)
    else {
        return None;
    };
    if after.is_empty() {
        return None;
    }
    let first = job.attempts.first()?.at;
    let inputs: Vec<String> = inputs
        .iter()
        .map(|(input, source)| {
            let value = source
                .split_once('.')
                .and_then(|(net, field)| rec.networks.get(net).and_then(|c| c.result_field(field)));
            format!("{input} ← {source} = {}", value.as_deref().unwrap_or("?"))
        })
        .collect();
    let what = if inputs.is_empty() {
        "after delivery".to_string()
    } else {
        inputs.join("; ")
    };
    let msg = format!("{} → {network}: {what}", after.join(", "));
    Some(entry(
        first,
        TimelineKind::Handoff,
        Some(network),
        None,
        msg,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(case_number: &str, item: &str, bureau: &str, light: Light) -> CaseRecord {
        let json = serde_json::json!({
            "case_number": case_number, "item": item, "case_json": "{}", "digest": "d",
            "principal": "fuzhou-bureau", "bureau": bureau, "accepted_at": 1_000,
            "updated_at": 1_000, "next_job": 0, "jobs": [], "light": light,
            "deadline": 5_000,
        });
        serde_json::from_value(json).expect("a record")
    }

    #[test]
    fn deadlines_put_red_groups_first_and_leave_finished_cases_out() {
        let recs = vec![
            record("A", "ITEM-1", "B1", Light::Green),
            record("B", "ITEM-2", "B1", Light::Red),
            record("C", "ITEM-1", "B1", Light::Yellow),
            record("D", "ITEM-3", "B2", Light::Done),
        ];
        let s = deadline_summary(&recs, false);
        assert_eq!(s.cases, 3);
        assert_eq!(s.groups.len(), 2, "{:?}", s.groups);
        assert_eq!((s.groups[0].item.as_str(), s.groups[0].red), ("ITEM-2", 1));
        assert_eq!((s.groups[1].green, s.groups[1].yellow), (1, 1));
        assert_eq!(s.red.len(), 1);
        assert_eq!(s.red[0].summary.case_number, "B");
    }

    #[test]
    fn a_timeline_starts_with_the_intake_and_ends_with_the_deadline() {
        let rec = record("A", "ITEM-1", "B1", Light::Green);
        let t = timeline(&rec);
        let kinds: Vec<TimelineKind> = t.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [TimelineKind::Intake, TimelineKind::Deadline]);
        assert_eq!(t[1].class.as_deref(), Some("green"));
    }

    #[test]
    fn a_chained_job_hands_off_the_result_it_took() {
        let mut rec = record("A", "SC-QYKB-001", "B1", Light::Green);
        let job = |id: u32, network: &str, kind: serde_json::Value, at: i64| {
            serde_json::from_value::<Job>(serde_json::json!({
                "id": id, "destination": {"kind": "network", "name": network},
                "kind": kind, "idempotency_key": format!("k{id}"), "created_at": 1_000,
                "state": {"state": "delivered", "at": at + 10, "network_case_number": format!("N{id}")},
                "attempts": [{"at": at, "elapsed_ms": 5, "outcome": "delivered"}],
            }))
            .expect("a job")
        };
        rec.jobs = vec![
            job(1, "mr", serde_json::json!({"kind": "submit"}), 2_000),
            job(
                2,
                "tax",
                serde_json::json!({"kind": "submit", "after": ["mr"],
                    "inputs": {"licence-number": "mr.certificate_number"}}),
                3_000,
            ),
        ];
        rec.networks.insert(
            "mr".into(),
            serde_json::from_value(serde_json::json!({"certificate_number": "LIC-9"}))
                .expect("a network case"),
        );
        let t = timeline(&rec);
        let handoffs: Vec<&TimelineEntry> = t
            .iter()
            .filter(|e| e.kind == TimelineKind::Handoff)
            .collect();
        assert_eq!(handoffs.len(), 1, "{t:#?}");
        assert_eq!(handoffs[0].network.as_deref(), Some("tax"));
        assert_eq!(
            handoffs[0].message,
            "mr → tax: licence-number ← mr.certificate_number = LIC-9"
        );
        let delivered: Vec<&str> = t
            .iter()
            .filter(|e| e.kind == TimelineKind::Delivered)
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(
            delivered,
            [
                "job 1 delivered; ministry case number N1",
                "job 2 delivered; ministry case number N2"
            ]
        );
    }
}
