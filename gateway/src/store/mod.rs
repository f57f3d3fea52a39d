//! Durable state behind one interface: case records with their jobs, the
//! indexes that find due work and due status follow-ups, network cursors
//! and adapter key-value data.
//!
//! The intake and the dispatchers see only [`Store`]. The embedded default is
//! [`SledStore`]; [`PostgresStore`], for several replicas on one shared
//! database, is the second implementation of the same trait (the scheduling
//! rules stay in [`record`], shared by every backend, and both pass the
//! suite in `conformance`).

mod commit;
#[cfg(test)]
pub mod conformance;
pub mod deadline;
pub mod follow_up;
pub mod leader;
pub mod lease;
#[cfg(test)]
pub mod lease_conformance;
pub mod postgres;
pub mod record;
mod sled_kv;
mod sled_leader;
mod sled_store;

pub use commit::CommitStats;

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

pub use follow_up::FollowUp;
pub use leader::Leadership;
pub use lease::{ClaimRequest, Claimed, Claims};
pub use postgres::{PostgresOptions, PostgresStore};
pub use record::{
    Attempt, AttemptOutcome, CaseClock, CaseRecord, ChangeRecord, Destination, Hold, IndexEntry,
    Job, JobKind, JobState, Lease, Light, NetworkCase,
};
pub use sled_store::SledStore;

use crate::runtime::KvStore;
use async_trait::async_trait;
use std::sync::Arc;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A storage failure. The caller cannot fix these; it reports them (503 at
/// the intake, a retry in the dispatcher) and never acknowledges the work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored record {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error(
        "the database's schema is at version {database}, newer than this binary knows ({binary}): run a gateway at least as new as the one that migrated it"
    )]
    SchemaTooNew { database: i32, binary: i32 },
}

/// One job of one case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobRef {
    pub case_number: String,
    pub job: u32,
}

/// Work that is due, and when the next work falls due.
#[derive(Debug, Default)]
pub struct Due {
    pub jobs: Vec<JobRef>,
    pub next: Option<Millis>,
}

/// A wake-up from another writer of a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueSignal {
    /// Work of this destination (its key, `network:tax`) became runnable.
    Destination(String),
    /// Signals may have been missed (the listener reconnected): look at
    /// every destination.
    All,
}

/// Network cases whose status follow-up is due, and when the next falls due.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FollowUpsDue {
    /// Unified case numbers, earliest due first.
    pub cases: Vec<String>,
    pub next: Option<Millis>,
}

/// Depth of one destination's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub destination: String,
    pub pending: u64,
    pub oldest_created_at: Option<Millis>,
}

/// A search over cases; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub item: Option<String>,
    pub network: Option<String>,
    /// A job state (`pending`, `in_flight`, `verify`, `delivered`, `dead`) any
    /// of the case's jobs (to `network`, if given) is in.
    pub state: Option<String>,
    /// Last change at or after this time.
    pub since: Option<Millis>,
    /// Last change before this time.
    pub until: Option<Millis>,
    /// Only cases of these bureaus (credit codes); none = every bureau.
    pub bureaus: Option<std::collections::BTreeSet<String>>,
    pub limit: usize,
}

/// Read-modify-write of one case. It gets the current record (if any) and
/// returns the record to store, or `None` to leave everything unchanged. It
/// may run more than once; it must not have side effects beyond its result
/// and what it records in its own captures.
pub type CaseUpdate<'a> = dyn FnMut(Option<CaseRecord>) -> Option<CaseRecord> + Send + 'a;

/// The gateway's durable state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// One case record.
    async fn case(&self, case_number: &str) -> Result<Option<CaseRecord>>;

    /// Change one case atomically (record and every index it implies) and
    /// return once the change is durable: after this returns `Ok`, a crash
    /// cannot lose it. Returns the record as stored, or `None` if `f` wrote
    /// nothing.
    async fn update(&self, case_number: &str, f: &mut CaseUpdate<'_>)
    -> Result<Option<CaseRecord>>;

    /// Up to `limit` runnable jobs of `destination` due at or before `now`,
    /// oldest due first, and the next due time after those.
    async fn due(&self, destination: &str, now: Millis, limit: usize) -> Result<Due>;

    /// Claim due work of `destination` for one replica ([`lease`]): as one
    /// atomic step per destination, count the destination's live leases
    /// (every replica's), then take up to `request.max` jobs, as many as
    /// `request.limit` leaves free: in-flight jobs whose lease expired first
    /// (they are recovered), then runnable jobs due at or before `now`,
    /// oldest due first. Each goes in flight under the caller's lease,
    /// durably, before this returns. Per-case FIFO and chained holds come
    /// from the record ([`CaseRecord::hold`]).
    async fn claim(&self, destination: &str, request: &ClaimRequest<'_>) -> Result<Claims>;

    /// Extend the lease of the claim `owner` made at `since` to `until`;
    /// `false` when the job is no longer held under that claim.
    async fn renew(&self, job: &JobRef, owner: &str, since: Millis, until: Millis) -> Result<bool> {
        let mut renewed = false;
        self.update(&job.case_number, &mut |rec| {
            let mut rec = rec?;
            renewed = lease::renew(&mut rec, job.job, owner, since, until);
            renewed.then_some(rec)
        })
        .await?;
        Ok(renewed)
    }

    /// Wake-ups from other writers of a shared store: which destination's
    /// work became runnable elsewhere (another replica's intake, settle or
    /// release). `None` for a store no other process writes (the
    /// in-process wake-ups cover it).
    fn due_signals(&self) -> Option<tokio::sync::broadcast::Receiver<DueSignal>> {
        None
    }

    /// Take or keep the leader lease of `task` for `owner` until `until`
    /// ([`leader`]): granted when no one holds it, its holder's lease
    /// expired at `now`, or it is `owner`'s already. `true` when `owner`
    /// holds it after the call.
    async fn lead(&self, task: &str, owner: &str, now: Millis, until: Millis) -> Result<bool>;

    /// Give up `task`'s lease if `owner` holds it (a clean stop), so another
    /// replica takes the task over without waiting for the expiry.
    async fn resign(&self, task: &str, owner: &str) -> Result<()>;

    /// Who holds `task`'s lease at `now`, if anyone.
    async fn leader(&self, task: &str, now: Millis) -> Result<Option<Leadership>>;

    /// Jobs marked in flight: after a restart, attempts that may have reached
    /// the ministry.
    async fn in_flight(&self) -> Result<Vec<JobRef>>;

    /// Dead letters, newest first.
    async fn dead_letters(&self, destination: Option<&str>, limit: usize) -> Result<Vec<JobRef>>;

    /// Unfinished jobs, oldest first.
    async fn pending(&self, destination: Option<&str>, limit: usize) -> Result<Vec<JobRef>>;

    /// The unified case a network's case number belongs to.
    async fn case_for_network_number(
        &self,
        network: &str,
        network_case_number: &str,
    ) -> Result<Option<String>>;

    /// Up to `limit` cases open for status follow-up on `network` (see
    /// [`follow_up`]) whose next query is due at or before `now`, earliest
    /// first, and the next due time after those.
    async fn follow_ups_due(
        &self,
        network: &str,
        now: Millis,
        limit: usize,
    ) -> Result<FollowUpsDue>;

    /// Cases whose deadline light may change at or before `now`.
    async fn deadlines_due(&self, now: Millis, limit: usize) -> Result<Vec<String>>;

    /// Cases matching `query`, most recently changed first.
    async fn search(&self, query: &CaseQuery) -> Result<Vec<CaseRecord>>;

    /// A network's change-feed cursor.
    async fn cursor(&self, network: &str) -> Result<Option<String>>;

    /// Store a cursor durably.
    async fn set_cursor(&self, network: &str, cursor: &str) -> Result<()>;

    /// Queue depth per destination.
    async fn depth(&self) -> Result<Vec<QueueDepth>>;

    /// Drop settled case records last changed before `before`; returns how many.
    async fn compact(&self, before: Millis) -> Result<usize>;

    /// Adapter key-value data, scoped per network by the caller.
    fn kv(&self) -> Arc<dyn KvStore>;

    /// Durable writes and the fsyncs that covered them.
    fn commit_stats(&self) -> CommitStats;
}

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
