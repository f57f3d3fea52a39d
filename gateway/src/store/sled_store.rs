//! The embedded backend: one sled tree holds case records, their derived
//! index entries and cursors, so one atomic batch changes a case and every
//! index together; a group committer makes the batch durable.
//!
//! Key layout (`\0` separates parts; times are 16 hex digits):
//! - `c\0<case>` → the [`CaseRecord`] as JSON
//! - `i\0<kind>\0…\0<case>[\0<job>]` → index entries ([`IndexEntry`]);
//!   `i\0o\0<network>\0<at>\0<case>` → open for status follow-up
//! - `q\0<network>` → a poll cursor
//! - `k\0<network>\0<key>` → adapter key-value data (separate tree)
//! - `u\0<network>` → that network's kv usage (same tree; see `sled_kv`)

use super::commit::GroupCommit;
use super::record::{CaseRecord, IndexEntry, Millis};
use super::sled_kv::SledKv;
use super::sled_leader;
use super::{
    CaseQuery, CaseUpdate, ClaimRequest, Claims, CommitStats, Due, FollowUpsDue, JobRef,
    Leadership, QueueDepth, Result, Store, StoreError, lease,
};
use crate::runtime::KvStore;
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

const STRIPES: usize = 256;

/// sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    leaders: sled::Tree,
    kv: Arc<SledKv>,
    commit: GroupCommit,
    /// Serializes read-modify-write of one case (sled is single-process).
    stripes: Vec<Mutex<()>>,
    /// Unfinished jobs per destination (kept in memory, rebuilt at open).
    depth: Mutex<HashMap<String, u64>>,
    /// One claim at a time per destination: the count of live leases and
    /// the claims it allows are one step.
    claims: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn hex16(t: Millis) -> String {
    format!("{:016x}", t.max(0) as u64)
}

fn parse_hex16(s: &str) -> Option<Millis> {
    u64::from_str_radix(s, 16).ok().map(|v| v as Millis)
}

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn case_key(case: &str) -> Vec<u8> {
    key(&["c", case])
}

/// Key and value of an index entry.
fn entry_kv(case: &str, e: &IndexEntry) -> (Vec<u8>, Vec<u8>) {
    let job = |j: u32| format!("{j:08x}");
    match e {
        IndexEntry::Pending {
            destination,
            created_at,
            job: j,
        } => (
            key(&["i", "p", destination, &hex16(*created_at), case, &job(*j)]),
            vec![],
        ),
        IndexEntry::Due {
            destination,
            due,
            job: j,
        } => (
            key(&["i", "d", destination, &hex16(*due), case, &job(*j)]),
            vec![],
        ),
        IndexEntry::InFlight {
            destination,
            job: j,
        } => (key(&["i", "f", destination, case, &job(*j)]), vec![]),
        IndexEntry::Dead {
            destination,
            at,
            job: j,
        } => (
            key(&["i", "x", destination, &hex16(*at), case, &job(*j)]),
            vec![],
        ),
        IndexEntry::CrossRef {
            network,
            network_case_number,
        } => (
            key(&["i", "r", network, network_case_number]),
            case.as_bytes().to_vec(),
        ),
        IndexEntry::FollowUp { network, at } => {
            (key(&["i", "o", network, &hex16(*at), case]), vec![])
        }
        IndexEntry::Deadline { at } => (key(&["i", "t", &hex16(*at), case]), vec![]),
        IndexEntry::Updated { at } => (key(&["i", "u", &hex16(*at), case]), vec![]),
    }
}

/// The last two parts of an index key: case number and job.
fn job_ref(k: &[u8]) -> Option<JobRef> {
    let s = std::str::from_utf8(k).ok()?;
    let mut parts = s.rsplitn(3, '\0');
    let job = u32::from_str_radix(parts.next()?, 16).ok()?;
    let case_number = parts.next()?.to_string();
    Some(JobRef { case_number, job })
}

fn last_part(k: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(k).ok()?;
    s.rsplit('\0').next().map(str::to_string)
}

impl SledStore {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
        let db = sled::Config::new()
            .path(dir.join("queue"))
            // Durability comes from the group committer's explicit flushes.
            .flush_every_ms(None)
            .open()
            .map_err(|e| backend(format!("cannot open {}: {e}", dir.join("queue").display())))?;
        let tree = db.open_tree("yiwang").map_err(backend)?;
        let kv_tree = db.open_tree("adapter-kv").map_err(backend)?;
        let leaders = db.open_tree("leaders").map_err(backend)?;
        let flush_db = db.clone();
        let commit = GroupCommit::start(move || {
            flush_db
                .flush()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .map_err(backend)?;
        let mut depth: HashMap<String, u64> = HashMap::new();
        for entry in tree.scan_prefix(key(&["i", "p", ""])) {
            let (k, _) = entry.map_err(backend)?;
            if let Some(dest) = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.split('\0').nth(2))
            {
                *depth.entry(dest.to_string()).or_default() += 1;
            }
        }
        Ok(SledStore {
            db,
            tree,
            leaders,
            kv: Arc::new(SledKv::open(kv_tree)?),
            commit,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            depth: Mutex::new(depth),
            claims: Mutex::default(),
        })
    }

    /// Read-modify-write of one case under its stripe lock, not yet
    /// durable: the record as stored (`None`: `f` wrote nothing) and
    /// whether anything was written.
    fn apply(
        &self,
        case_number: &str,
        f: &mut CaseUpdate<'_>,
    ) -> Result<(Option<CaseRecord>, bool)> {
        let _guard = self
            .stripe(case_number)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let old = self.read_case(case_number)?;
        let Some(new) = f(old.clone()) else {
            return Ok((None, false));
        };
        if old.as_ref() == Some(&new) {
            return Ok((Some(new), false));
        }
        self.write_case(old.as_ref(), &new)?;
        Ok((Some(new), true))
    }

    fn claim_lock(&self, destination: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(destination.to_string()).or_default().clone()
    }

    /// A destination's in-flight jobs: how many hold a live lease, the
    /// next of those leases to expire, and the jobs whose lease expired.
    fn leases(
        &self,
        destination: &str,
        now: Millis,
    ) -> Result<(usize, Option<Millis>, Vec<JobRef>)> {
        let mut live = 0;
        let mut next: Option<Millis> = None;
        let mut expired = Vec::new();
        for r in self.scan_refs(key(&["i", "f", destination, ""]), usize::MAX, false)? {
            let Some(rec) = self.read_case(&r.case_number)? else {
                continue;
            };
            match rec.job(r.job).and_then(|j| lease::lease_until(&j.state)) {
                Some(until) if until > now => {
                    live += 1;
                    next = Some(next.map_or(until, |n| n.min(until)));
                }
                Some(_) => expired.push(r),
                None => {}
            }
        }
        Ok((live, next, expired))
    }

    fn stripe(&self, case: &str) -> &Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        case.hash(&mut h);
        &self.stripes[(h.finish() as usize) % STRIPES]
    }

    fn read_case(&self, case: &str) -> Result<Option<CaseRecord>> {
        let Some(bytes) = self.tree.get(case_key(case)).map_err(backend)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: format!("case {case}"),
                message: e.to_string(),
            })
    }

    fn scan_refs(&self, prefix: Vec<u8>, limit: usize, reverse: bool) -> Result<Vec<JobRef>> {
        let iter = self.tree.scan_prefix(prefix);
        let mut out = Vec::new();
        let mut push = |r: sled::Result<(sled::IVec, sled::IVec)>| -> Result<bool> {
            let (k, _) = r.map_err(backend)?;
            if let Some(j) = job_ref(&k) {
                out.push(j);
            }
            Ok(out.len() >= limit)
        };
        if reverse {
            for r in iter.rev() {
                if push(r)? {
                    break;
                }
            }
        } else {
            for r in iter {
                if push(r)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Apply one case change and its index diff in one atomic batch.
    fn write_case(&self, old: Option<&CaseRecord>, new: &CaseRecord) -> Result<()> {
        let case = new.case_number.as_str();
        let before: BTreeSet<IndexEntry> = old
            .map(|r| r.index_entries().into_iter().collect())
            .unwrap_or_default();
        let after: BTreeSet<IndexEntry> = new.index_entries().into_iter().collect();
        let mut batch = sled::Batch::default();
        let mut depth_delta: HashMap<String, i64> = HashMap::new();
        for gone in before.difference(&after) {
            batch.remove(entry_kv(case, gone).0);
            if let IndexEntry::Pending { destination, .. } = gone {
                *depth_delta.entry(destination.clone()).or_default() -= 1;
            }
        }
        for added in after.difference(&before) {
            let (k, v) = entry_kv(case, added);
            batch.insert(k, v);
            if let IndexEntry::Pending { destination, .. } = added {
                *depth_delta.entry(destination.clone()).or_default() += 1;
            }
        }
        let json = serde_json::to_vec(new).map_err(backend)?;
        batch.insert(case_key(case), json);
        self.tree.apply_batch(batch).map_err(backend)?;
        let mut depth = self.depth.lock().unwrap_or_else(|p| p.into_inner());
        for (dest, d) in depth_delta {
            let v = depth.entry(dest).or_default();
            *v = (*v as i64 + d).max(0) as u64;
        }
        Ok(())
    }

    fn delete_case(&self, record: &CaseRecord) -> Result<()> {
        let case = record.case_number.as_str();
        let mut batch = sled::Batch::default();
        for e in record.index_entries() {
            batch.remove(entry_kv(case, &e).0);
        }
        batch.remove(case_key(case));
        self.tree.apply_batch(batch).map_err(backend)
    }
}

#[async_trait]
impl Store for SledStore {
    async fn case(&self, case_number: &str) -> Result<Option<CaseRecord>> {
        self.read_case(case_number)
    }

    async fn update(
        &self,
        case_number: &str,
        f: &mut CaseUpdate<'_>,
    ) -> Result<Option<CaseRecord>> {
        let (stored, wrote) = self.apply(case_number, f)?;
        if wrote {
            self.commit.durable().await?;
        }
        Ok(stored)
    }

    async fn due(&self, destination: &str, now: Millis, limit: usize) -> Result<Due> {
        let prefix = key(&["i", "d", destination, ""]);
        let mut due = Due::default();
        for r in self.tree.scan_prefix(&prefix) {
            let (k, _) = r.map_err(backend)?;
            let at = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| s.split('\0').nth(3))
                .and_then(parse_hex16)
                .unwrap_or(0);
            if at > now || due.jobs.len() >= limit {
                due.next = Some(at);
                break;
            }
            if let Some(j) = job_ref(&k) {
                due.jobs.push(j);
            }
        }
        Ok(due)
    }

    async fn claim(&self, destination: &str, request: &ClaimRequest<'_>) -> Result<Claims> {
        let lock = self.claim_lock(destination);
        let _one_at_a_time = lock.lock().await;
        let now = request.now;
        let (live, expires, expired) = self.leases(destination, now)?;
        let free = request.limit.saturating_sub(live).min(request.max);
        let due = self.due(destination, now, free).await?;
        // Like PostgreSQL's: the next due time after now, or lease expiry
        // (work due now but over the limit waits for a slot to come free).
        let due_next = due.next.filter(|at| *at > now);
        let mut claims = Claims {
            next: [due_next, expires].into_iter().flatten().min(),
            ..Claims::default()
        };
        for r in expired.into_iter().chain(due.jobs) {
            if claims.jobs.len() >= free {
                break;
            }
            let mut claimed = None;
            self.apply(&r.case_number, &mut |rec| {
                let mut rec = rec?;
                claimed = lease::claim(&mut rec, r.job, request);
                claimed.is_some().then_some(rec)
            })?;
            claims.jobs.extend(claimed);
        }
        // One flush makes every claim durable before anything is sent.
        if !claims.jobs.is_empty() {
            self.commit.durable().await?;
        }
        claims.live = live + claims.jobs.len();
        Ok(claims)
    }

    async fn in_flight(&self) -> Result<Vec<JobRef>> {
        self.scan_refs(key(&["i", "f", ""]), usize::MAX, false)
    }

    async fn lead(&self, task: &str, owner: &str, now: Millis, until: Millis) -> Result<bool> {
        sled_leader::lead(&self.leaders, task, owner, now, until)
    }

    async fn resign(&self, task: &str, owner: &str) -> Result<()> {
        sled_leader::resign(&self.leaders, task, owner)
    }

    async fn leader(&self, task: &str, now: Millis) -> Result<Option<Leadership>> {
        sled_leader::leader(&self.leaders, task, now)
    }

    async fn dead_letters(&self, destination: Option<&str>, limit: usize) -> Result<Vec<JobRef>> {
        let prefix = match destination {
            Some(d) => key(&["i", "x", d, ""]),
            None => key(&["i", "x", ""]),
        };
        // Newest first within each destination (keys order by destination,
        // then time).
        let mut refs = self.scan_refs(prefix, usize::MAX, false)?;
        refs.reverse();
        refs.truncate(limit);
        Ok(refs)
    }

    async fn pending(&self, destination: Option<&str>, limit: usize) -> Result<Vec<JobRef>> {
        let prefix = match destination {
            Some(d) => key(&["i", "p", d, ""]),
            None => key(&["i", "p", ""]),
        };
        self.scan_refs(prefix, limit, false)
    }

    async fn case_for_network_number(
        &self,
        network: &str,
        network_case_number: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .tree
            .get(key(&["i", "r", network, network_case_number]))
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn follow_ups_due(
        &self,
        network: &str,
        now: Millis,
        limit: usize,
    ) -> Result<FollowUpsDue> {
        let mut out = FollowUpsDue::default();
        for r in self.tree.scan_prefix(key(&["i", "o", network, ""])) {
            let (k, _) = r.map_err(backend)?;
            let s = String::from_utf8_lossy(&k).into_owned();
            let mut parts = s.split('\0').skip(3);
            let at = parts.next().and_then(parse_hex16).unwrap_or(0);
            if at > now || out.cases.len() >= limit {
                out.next = Some(at);
                break;
            }
            if let Some(case) = parts.next() {
                out.cases.push(case.to_string());
            }
        }
        Ok(out)
    }

    async fn deadlines_due(&self, now: Millis, limit: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(key(&["i", "t", ""])) {
            let (k, _) = r.map_err(backend)?;
            let s = String::from_utf8_lossy(&k).into_owned();
            let mut parts = s.split('\0').skip(2);
            let at = parts.next().and_then(parse_hex16).unwrap_or(0);
            if at > now || out.len() >= limit {
                break;
            }
            if let Some(case) = parts.next() {
                out.push(case.to_string());
            }
        }
        Ok(out)
    }

    async fn search(&self, query: &CaseQuery) -> Result<Vec<CaseRecord>> {
        let limit = if query.limit == 0 { 100 } else { query.limit };
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for r in self.tree.scan_prefix(key(&["i", "u", ""])).rev() {
            let (k, _) = r.map_err(backend)?;
            let s = String::from_utf8_lossy(&k).into_owned();
            let mut parts = s.split('\0').skip(2);
            let at = parts.next().and_then(parse_hex16).unwrap_or(0);
            if query.until.is_some_and(|u| at >= u) {
                continue;
            }
            if query.since.is_some_and(|since| at < since) {
                break;
            }
            let Some(case) = parts.next() else { continue };
            if !seen.insert(case.to_string()) {
                continue;
            }
            let Some(record) = self.read_case(case)? else {
                continue;
            };
            if query.item.as_ref().is_some_and(|i| *i != record.item) {
                continue;
            }
            if query
                .bureaus
                .as_ref()
                .is_some_and(|b| !b.contains(&record.bureau))
            {
                continue;
            }
            let network = query.network.as_deref();
            let touches_network = |d: &super::Destination| {
                network.is_none_or(|n| *d == super::Destination::Network(n.to_string()))
            };
            if network.is_some() && !record.jobs.iter().any(|j| touches_network(&j.destination)) {
                continue;
            }
            if let Some(state) = &query.state
                && !record
                    .jobs
                    .iter()
                    .any(|j| touches_network(&j.destination) && j.state.name() == state)
            {
                continue;
            }
            out.push(record);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn cursor(&self, network: &str) -> Result<Option<String>> {
        Ok(self
            .tree
            .get(key(&["q", network]))
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn set_cursor(&self, network: &str, cursor: &str) -> Result<()> {
        self.tree
            .insert(key(&["q", network]), cursor.as_bytes())
            .map_err(backend)?;
        self.commit.durable().await
    }

    async fn depth(&self) -> Result<Vec<QueueDepth>> {
        let counts: Vec<(String, u64)> = self
            .depth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut out = Vec::new();
        for (destination, pending) in counts {
            let oldest = match self
                .tree
                .scan_prefix(key(&["i", "p", &destination, ""]))
                .next()
            {
                Some(r) => {
                    let (k, _) = r.map_err(backend)?;
                    std::str::from_utf8(&k)
                        .ok()
                        .and_then(|s| s.split('\0').nth(3))
                        .and_then(parse_hex16)
                }
                None => None,
            };
            out.push(QueueDepth {
                destination,
                pending,
                oldest_created_at: oldest,
            });
        }
        out.sort_by(|a, b| a.destination.cmp(&b.destination));
        Ok(out)
    }

    async fn compact(&self, before: Millis) -> Result<usize> {
        let mut candidates = Vec::new();
        for r in self.tree.scan_prefix(key(&["i", "u", ""])) {
            let (k, _) = r.map_err(backend)?;
            let s = String::from_utf8_lossy(&k).into_owned();
            let mut parts = s.split('\0').skip(2);
            let at = parts.next().and_then(parse_hex16).unwrap_or(0);
            if at >= before {
                break;
            }
            if let Some(case) = last_part(&k) {
                candidates.push(case);
            }
        }
        let mut removed = 0;
        for case in candidates {
            let _guard = self.stripe(&case).lock().unwrap_or_else(|p| p.into_inner());
            if let Some(record) = self.read_case(&case)?
                && record.updated_at < before
                && record.is_settled()
            {
                self.delete_case(&record)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    fn kv(&self) -> Arc<dyn KvStore> {
        self.kv.clone()
    }

    fn commit_stats(&self) -> CommitStats {
        self.commit.stats()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let _ = self.db.flush();
    }
}

#[cfg(test)]
mod conformance {
    use super::*;

    crate::store_conformance!(|dir: &Path| {
        Arc::new(SledStore::open(dir).expect("open the sled store")) as Arc<dyn Store>
    });
}
