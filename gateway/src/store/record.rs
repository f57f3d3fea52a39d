//! The durable record of one case: the case as accepted, its jobs (one
//! queue entry per delivery to a network or subscriber), and what each
//! network said back. Every rule about what may run next lives here as a
//! pure function of the record, so every storage backend schedules alike.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yiwang_schema::{Decision, Event, Stage};

pub use super::Millis;

/// Where a job goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Destination {
    /// A ministry network, through its adapter.
    Network(String),
    /// A subscriber webhook (the unified platform, a regulator).
    Subscriber(String),
}

impl Destination {
    /// `network:tax`, `subscriber:platform`: the key of the destination's queue.
    pub fn key(&self) -> String {
        match self {
            Destination::Network(n) => format!("network:{n}"),
            Destination::Subscriber(s) => format!("subscriber:{s}"),
        }
    }

    pub fn parse_key(key: &str) -> Option<Destination> {
        match key.split_once(':')? {
            ("network", n) => Some(Destination::Network(n.to_string())),
            ("subscriber", s) => Some(Destination::Subscriber(s.to_string())),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Destination::Network(n) | Destination::Subscriber(n) => n,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// What a job delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// The case itself. `after` are networks whose results it needs;
    /// `inputs` maps an input name to `<network>.<result field>`.
    Submit {
        #[serde(default)]
        after: Vec<String>,
        #[serde(default)]
        inputs: BTreeMap<String, String>,
    },
    /// A bureau-side change (the `CaseChange` as JSON).
    Change { change_json: String },
    /// A notice to a subscriber (JSON body).
    Notify { body: serde_json::Value },
}

/// Who holds an in-flight job, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The replica id (`[gateway] replica-id`).
    pub owner: String,
    /// Expiry (ms since the Unix epoch): after it, another replica may
    /// recover the job.
    pub until: Millis,
}

impl Lease {
    pub fn is_live(&self, now: Millis) -> bool {
        self.until > now
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run at or after `due` (once earlier jobs and dependencies allow).
    Pending {
        due: Millis,
    },
    /// The last attempt may have reached the ministry: ask before resending.
    Verify {
        due: Millis,
    },
    /// An attempt started at `since` and has not been settled. After a crash
    /// this means "may have been sent".
    InFlight {
        since: Millis,
        verifying: bool,
        /// The replica running it and until when (see [`super::lease`]);
        /// none in records written before leases existed (then expired).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<Lease>,
    },
    Delivered {
        at: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_case_number: Option<String>,
    },
    Dead {
        at: Millis,
        reason: String,
    },
}

impl JobState {
    pub fn is_finished(&self) -> bool {
        matches!(self, JobState::Delivered { .. } | JobState::Dead { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending { .. } => "pending",
            JobState::Verify { .. } => "verify",
            JobState::InFlight { .. } => "in_flight",
            JobState::Delivered { .. } => "delivered",
            JobState::Dead { .. } => "dead",
        }
    }
}

/// One try at a job, kept for the dead-letter report and the case view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Millis,
    pub elapsed_ms: u64,
    pub outcome: AttemptOutcome,
    /// Stable error kind (`adapter_permanent`, `limit_cpu_time`, `http_503`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The adapter version (sha256) that ran, for network jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// A status query settling an ambiguous attempt, not a send.
    #[serde(default)]
    pub verify: bool,
    /// The gateway could not start the call (a local resource shortage):
    /// kept so the wait is visible, never counted against the job's
    /// retries, limit hits or give-up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

/// What one attempt came to, as kept in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    Retryable,
    Permanent,
    Ambiguous,
    /// A verify query found the case: delivered without a resend.
    Found,
    /// A verify query found nothing: resent.
    NotFound,
}

impl AttemptOutcome {
    /// The name as stored and shown (`delivered`, `not_found`, …).
    pub fn name(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retryable => "retryable",
            AttemptOutcome::Permanent => "permanent",
            AttemptOutcome::Ambiguous => "ambiguous",
            AttemptOutcome::Found => "found",
            AttemptOutcome::NotFound => "not_found",
        }
    }

    /// The attempt reached its aim (sent, or found already there).
    pub fn succeeded(self) -> bool {
        matches!(self, AttemptOutcome::Delivered | AttemptOutcome::Found)
    }
}

/// One queue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Sequence number within the case; jobs to one destination run in this order.
    pub id: u32,
    pub destination: Destination,
    pub kind: JobKind,
    /// Stable across retries, restarts and replays: ministries deduplicate on it.
    pub idempotency_key: String,
    pub created_at: Millis,
    pub state: JobState,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Run with this adapter version (sha256) instead of the network's current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// When an operator last replayed this job: retry limits count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<Millis>,
}

impl Job {
    /// The attempts retry limits count: since the job was created or last
    /// replayed, local shortages aside.
    pub fn counted(&self) -> impl Iterator<Item = &Attempt> {
        let from = self.replayed_at.unwrap_or(Millis::MIN);
        self.attempts
            .iter()
            .filter(move |a| !a.local && a.at >= from)
    }

    /// Sends (not verify queries) since the job was created or last replayed.
    pub fn sends(&self) -> u32 {
        self.counted().filter(|a| !a.verify).count() as u32
    }

    /// Every counted attempt (sends and verify queries): what backoff grows with.
    pub fn tries(&self) -> u32 {
        self.counted().count() as u32
    }

    /// Where retry age counts from.
    pub fn age_origin(&self) -> Millis {
        self.replayed_at.unwrap_or(self.created_at)
    }
}

/// What one network knows about the case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkCase {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_case_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_number: Option<String>,
    /// Every distinct event, ordered by stage then time.
    #[serde(default)]
    pub events: Vec<Event>,
    /// The status follow-up schedule, once the gateway has asked the
    /// network about the case (see [`super::follow_up`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<super::follow_up::FollowUp>,
}

impl NetworkCase {
    /// A chained route's result field: `network_case_number`,
    /// `certificate_number` or `decision`.
    pub fn result_field(&self, field: &str) -> Option<String> {
        match field {
            "network_case_number" => self.network_case_number.clone(),
            "certificate_number" => self.certificate_number.clone(),
            "decision" => self.decision.map(|d| d.as_str().to_string()),
            _ => None,
        }
    }

    /// Whether the network will not move this case any further.
    pub fn is_final(&self) -> bool {
        self.stage.is_some_and(Stage::is_terminal) || self.decision == Some(Decision::Denied)
    }
}

/// Deadline light (电子监察): one home in the schema crate, since notices publish it.
pub use yiwang_schema::Light;

/// A bureau-side change as received, for idempotent re-posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub digest: String,
    pub at: Millis,
    pub jobs: Vec<u32>,
}

/// Everything durable about one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case_number: String,
    pub item: String,
    /// The case as accepted (unified schema JSON).
    pub case_json: String,
    /// sha256 of the canonical case JSON: same number + same digest = same case.
    pub digest: String,
    /// Who submitted it: the principal its client certificate maps to.
    pub principal: String,
    /// The accepting bureau's credit code: which principals may read and change it.
    #[serde(default)]
    pub bureau: String,
    pub accepted_at: Millis,
    pub updated_at: Millis,
    pub next_job: u32,
    pub jobs: Vec<Job>,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkCase>,
    #[serde(default)]
    pub changes: Vec<ChangeRecord>,
    /// The promised time limit the deadline light runs against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<CaseClock>,
    /// The deadline (ms) as last computed (pauses push it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Millis>,
    pub light: Light,
}

/// The promised time limit (承诺时限) of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseClock {
    /// When the clock started (the case's acceptance).
    pub start: Millis,
    pub value: u32,
    pub unit: yiwang_schema::TimeLimitUnit,
    /// The light turns yellow this long before the deadline.
    pub yellow_ms: i64,
}

/// Why a pending job cannot run yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// An earlier job to the same destination is not delivered (per-case FIFO).
    Behind { job: u32, dead: bool },
    /// A chained route: the network's result is not there yet.
    WaitingFor { network: String, field: String },
}

/// Index entries derived from a record. Backends keep these so they can
/// find due work, in-flight work and dead letters without reading every case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IndexEntry {
    /// Not finished; ordered by creation for depth and oldest-pending age.
    Pending {
        destination: String,
        created_at: Millis,
        job: u32,
    },
    /// Runnable at `due`.
    Due {
        destination: String,
        due: Millis,
        job: u32,
    },
    InFlight {
        destination: String,
        job: u32,
    },
    Dead {
        destination: String,
        at: Millis,
        job: u32,
    },
    /// Network case number → this case.
    CrossRef {
        network: String,
        network_case_number: String,
    },
    /// Open for status follow-up on `network`: next asked at `at`
    /// (see [`super::follow_up`]).
    FollowUp {
        network: String,
        at: Millis,
    },
    /// The next time the deadline light may change.
    Deadline {
        at: Millis,
    },
    /// For search and retention: when the record last changed.
    Updated {
        at: Millis,
    },
}

impl CaseRecord {
    /// When `network` is next asked about this case, if the case is open
    /// for status follow-up there ([`super::follow_up`]); `view` is the
    /// network's view of the case.
    pub fn follow_up_at(&self, network: &str, view: &NetworkCase) -> Option<Millis> {
        let delivered = self.submit_delivered_at(network);
        let numbered = view.network_case_number.is_some();
        super::follow_up::open_at(delivered, numbered, view.is_final(), view.follow_up)
    }

    /// When this case's submit to `network` was delivered, if it was.
    pub fn submit_delivered_at(&self, network: &str) -> Option<Millis> {
        let destination = Destination::Network(network.to_string());
        self.jobs.iter().find_map(|j| match (&j.kind, &j.state) {
            (JobKind::Submit { .. }, JobState::Delivered { at, .. })
                if j.destination == destination =>
            {
                Some(*at)
            }
            _ => None,
        })
    }

    /// A record with no case content and no jobs, for the intake to fill
    /// (and for tests and fuzz targets).
    pub fn blank(case_number: &str) -> CaseRecord {
        CaseRecord {
            case_number: case_number.to_string(),
            item: String::new(),
            case_json: "{}".into(),
            digest: String::new(),
            principal: String::new(),
            bureau: String::new(),
            accepted_at: 0,
            updated_at: 0,
            next_job: 1,
            jobs: Vec::new(),
            networks: BTreeMap::new(),
            changes: Vec::new(),
            clock: None,
            deadline: None,
            light: Light::Green,
        }
    }

    pub fn job(&self, id: u32) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    pub fn job_mut(&mut self, id: u32) -> Option<&mut Job> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    /// Add a job; its idempotency key is derived from the case, destination
    /// and sequence number, so it never changes.
    pub fn push_job(&mut self, destination: Destination, kind: JobKind, now: Millis) -> u32 {
        let id = self.next_job;
        self.next_job += 1;
        let idempotency_key = idempotency_key(&self.case_number, &destination, id);
        self.jobs.push(Job {
            id,
            destination,
            kind,
            idempotency_key,
            created_at: now,
            state: JobState::Pending { due: now },
            attempts: Vec::new(),
            adapter: None,
            replayed_at: None,
        });
        id
    }

    /// Whether a pending job may run now, and if not, why.
    pub fn hold(&self, job: &Job) -> Option<Hold> {
        if let Some(earlier) = self
            .jobs
            .iter()
            .filter(|j| j.destination == job.destination && j.id < job.id)
            .find(|j| !matches!(j.state, JobState::Delivered { .. }))
        {
            return Some(Hold::Behind {
                job: earlier.id,
                dead: matches!(earlier.state, JobState::Dead { .. }),
            });
        }
        if let JobKind::Submit { after, inputs } = &job.kind {
            for network in after {
                let upstream = self.networks.get(network);
                let delivered = self.jobs.iter().any(|j| {
                    j.destination == Destination::Network(network.clone())
                        && matches!(j.kind, JobKind::Submit { .. })
                        && matches!(j.state, JobState::Delivered { .. })
                });
                if !delivered {
                    return Some(Hold::WaitingFor {
                        network: network.clone(),
                        field: "delivery".into(),
                    });
                }
                for source in inputs.values() {
                    let Some((from, field)) = source.split_once('.') else {
                        continue;
                    };
                    if from == network && upstream.and_then(|u| u.result_field(field)).is_none() {
                        return Some(Hold::WaitingFor {
                            network: network.clone(),
                            field: field.to_string(),
                        });
                    }
                }
            }
        }
        None
    }

    /// The input values a chained submit receives.
    pub fn inputs_for(&self, job: &Job) -> Vec<(String, String)> {
        let JobKind::Submit { inputs, .. } = &job.kind else {
            return Vec::new();
        };
        inputs
            .iter()
            .filter_map(|(name, source)| {
                let (from, field) = source.split_once('.')?;
                let value = self.networks.get(from)?.result_field(field)?;
                Some((name.clone(), value))
            })
            .collect()
    }

    /// Chained submits whose upstream network finished without the result
    /// they need can never run: dead-letter them with the reason.
    pub fn fail_starved_jobs(&mut self, now: Millis) -> Vec<u32> {
        let mut starved = Vec::new();
        for job in &self.jobs {
            let JobState::Pending { .. } = job.state else {
                continue;
            };
            if let Some(Hold::WaitingFor { network, field }) = self.hold(job) {
                let Some(up) = self.networks.get(&network) else {
                    continue;
                };
                if up.is_final() && field != "delivery" {
                    let stage = up.stage.map(Stage::as_str).unwrap_or("decided");
                    starved.push((
                        job.id,
                        format!(
                            "upstream network `{network}` ended at stage `{stage}` without `{field}`, which this step needs"
                        ),
                    ));
                }
            }
        }
        let ids = starved.iter().map(|(id, _)| *id).collect();
        for (id, reason) in starved {
            if let Some(job) = self.job_mut(id) {
                job.state = JobState::Dead { at: now, reason };
            }
        }
        ids
    }

    /// Every index entry this record implies.
    pub fn index_entries(&self) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for job in &self.jobs {
            let destination = job.destination.key();
            if !job.state.is_finished() {
                out.push(IndexEntry::Pending {
                    destination: destination.clone(),
                    created_at: job.created_at,
                    job: job.id,
                });
            }
            match &job.state {
                JobState::Pending { due } | JobState::Verify { due } => {
                    if self.hold(job).is_none() {
                        out.push(IndexEntry::Due {
                            destination,
                            due: *due,
                            job: job.id,
                        });
                    }
                }
                JobState::InFlight { .. } => out.push(IndexEntry::InFlight {
                    destination,
                    job: job.id,
                }),
                JobState::Dead { at, .. } => out.push(IndexEntry::Dead {
                    destination,
                    at: *at,
                    job: job.id,
                }),
                JobState::Delivered { .. } => {}
            }
        }
        for (network, view) in &self.networks {
            if let Some(n) = &view.network_case_number {
                out.push(IndexEntry::CrossRef {
                    network: network.clone(),
                    network_case_number: n.clone(),
                });
            }
            let delivered = self.submit_delivered_at(network);
            let numbered = view.network_case_number.is_some();
            let open =
                super::follow_up::open_at(delivered, numbered, view.is_final(), view.follow_up);
            if let Some(at) = open {
                out.push(IndexEntry::FollowUp {
                    network: network.clone(),
                    at,
                });
            }
        }
        if let Some(at) = super::deadline::next_check(self) {
            out.push(IndexEntry::Deadline { at });
        }
        out.push(IndexEntry::Updated {
            at: self.updated_at,
        });
        out.sort();
        out.dedup();
        out
    }

    /// Whether every job is finished and every network is final: retention
    /// may drop the record once it is old enough.
    pub fn is_settled(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Delivered { .. }))
            && self.networks.values().all(NetworkCase::is_final)
    }
}

/// Stable, readable, bounded: `<case>-<destination>-<seq>`, hashed when it
/// would be longer than 64 characters (some ministries cap the field).
pub fn idempotency_key(case_number: &str, destination: &Destination, seq: u32) -> String {
    let readable = format!("{case_number}-{}-{seq}", destination.name());
    if readable.len() <= 64 {
        return readable;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{case_number}\n{}\n{seq}", destination.key()).as_bytes());
    format!("YW-{}", &hex::encode(digest)[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CaseRecord {
        CaseRecord {
            item: "I".into(),
            principal: "anonymous".into(),
            ..CaseRecord::blank("C1")
        }
    }

    #[test]
    fn a_change_waits_behind_its_submit_and_a_dead_submit_blocks_it() {
        let mut r = record();
        let net = Destination::Network("a".into());
        let submit = r.push_job(
            net.clone(),
            JobKind::Submit {
                after: vec![],
                inputs: BTreeMap::new(),
            },
            0,
        );
        let change = r.push_job(
            net.clone(),
            JobKind::Change {
                change_json: "{}".into(),
            },
            0,
        );
        let due: Vec<_> = r
            .index_entries()
            .into_iter()
            .filter(|e| matches!(e, IndexEntry::Due { .. }))
            .collect();
        assert_eq!(due.len(), 1, "only the submit is due: {due:?}");
        let c = r.job(change).cloned().unwrap();
        assert_eq!(
            r.hold(&c),
            Some(Hold::Behind {
                job: submit,
                dead: false
            })
        );
        r.job_mut(submit).unwrap().state = JobState::Dead {
            at: 1,
            reason: "x".into(),
        };
        assert_eq!(
            r.hold(&c),
            Some(Hold::Behind {
                job: submit,
                dead: true
            })
        );
        r.job_mut(submit).unwrap().state = JobState::Delivered {
            at: 2,
            network_case_number: Some("N".into()),
        };
        assert_eq!(r.hold(&c), None);
    }

    #[test]
    fn a_chained_submit_waits_for_the_upstream_result_field() {
        let mut r = record();
        let a = r.push_job(
            Destination::Network("a".into()),
            JobKind::Submit {
                after: vec![],
                inputs: BTreeMap::new(),
            },
            0,
        );
        let b = r.push_job(
            Destination::Network("b".into()),
            JobKind::Submit {
                after: vec!["a".into()],
                inputs: BTreeMap::from([("licence-number".into(), "a.certificate_number".into())]),
            },
            0,
        );
        let jb = r.job(b).cloned().unwrap();
        assert!(matches!(r.hold(&jb), Some(Hold::WaitingFor { field, .. }) if field == "delivery"));
        r.job_mut(a).unwrap().state = JobState::Delivered {
            at: 1,
            network_case_number: Some("A-1".into()),
        };
        r.networks
            .entry("a".into())
            .or_default()
            .network_case_number = Some("A-1".into());
        assert!(
            matches!(r.hold(&jb), Some(Hold::WaitingFor { field, .. }) if field == "certificate_number")
        );
        r.networks.get_mut("a").unwrap().certificate_number = Some("LIC-9".into());
        assert_eq!(r.hold(&jb), None);
        assert_eq!(
            r.inputs_for(&jb),
            vec![("licence-number".to_string(), "LIC-9".to_string())]
        );
    }

    #[test]
    fn an_upstream_that_ends_without_the_field_starves_its_dependants() {
        let mut r = record();
        let a = r.push_job(
            Destination::Network("a".into()),
            JobKind::Submit {
                after: vec![],
                inputs: BTreeMap::new(),
            },
            0,
        );
        let b = r.push_job(
            Destination::Network("b".into()),
            JobKind::Submit {
                after: vec!["a".into()],
                inputs: BTreeMap::from([("n".into(), "a.certificate_number".into())]),
            },
            0,
        );
        r.job_mut(a).unwrap().state = JobState::Delivered {
            at: 1,
            network_case_number: Some("A-1".into()),
        };
        r.networks.entry("a".into()).or_default().stage = Some(Stage::Rejected);
        assert_eq!(r.fail_starved_jobs(5), vec![b]);
        assert!(
            matches!(&r.job(b).unwrap().state, JobState::Dead { reason, .. } if reason.contains("rejected"))
        );
    }

    #[test]
    fn idempotency_keys_are_stable_and_bounded() {
        let d = Destination::Network("tax".into());
        assert_eq!(idempotency_key("C-1", &d, 3), "C-1-tax-3");
        let long = "X".repeat(64);
        let k = idempotency_key(&long, &d, 3);
        assert!(k.len() <= 64 && k.starts_with("YW-"));
        assert_eq!(k, idempotency_key(&long, &d, 3));
    }
}
