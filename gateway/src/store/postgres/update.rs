//! `update` as one transaction: lock the case row, run the closure, write
//! the record and only the index rows that changed, commit. The index rows
//! are derived from the record by the rules every backend shares
//! ([`CaseRecord::index_entries`]); this file only lays them out as rows.

use super::{PgFailure, Result, StoreError};
use crate::store::CaseUpdate;
use crate::store::record::{CaseRecord, IndexEntry, JobState, Millis};
use deadpool_postgres::{GenericClient, Pool};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::types::Json;

/// How often a transaction that lost a race runs again before the caller
/// sees the failure.
pub(super) const MAX_TRIES: u32 = 8;

/// The `yiwang_job` row of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobRow {
    destination: String,
    state: &'static str,
    created_at: Millis,
    pending: bool,
    due: Option<Millis>,
    in_flight: bool,
    dead_at: Option<Millis>,
    /// The lease of an in-flight job (see `store::lease`).
    lease_owner: Option<String>,
    lease_until: Option<Millis>,
}

/// What a record puts in the tables besides itself.
#[derive(Debug, Default, PartialEq)]
struct Rows {
    jobs: BTreeMap<u32, JobRow>,
    xrefs: BTreeSet<(String, String)>,
    /// Network → when the case is next asked (status follow-up).
    follow_ups: BTreeMap<String, Millis>,
    deadline_at: Option<Millis>,
}

fn rows(record: &CaseRecord) -> Rows {
    let mut out = Rows::default();
    for job in &record.jobs {
        out.jobs.insert(
            job.id,
            JobRow {
                destination: job.destination.key(),
                state: job.state.name(),
                created_at: job.created_at,
                pending: false,
                due: None,
                in_flight: false,
                dead_at: None,
                lease_owner: match &job.state {
                    JobState::InFlight { lease, .. } => lease.as_ref().map(|l| l.owner.clone()),
                    _ => None,
                },
                lease_until: match &job.state {
                    JobState::InFlight { lease, .. } => lease.as_ref().map(|l| l.until),
                    _ => None,
                },
            },
        );
    }
    for entry in record.index_entries() {
        match entry {
            IndexEntry::Pending { job, .. } => {
                if let Some(r) = out.jobs.get_mut(&job) {
                    r.pending = true;
                }
            }
            IndexEntry::Due { job, due, .. } => {
                if let Some(r) = out.jobs.get_mut(&job) {
                    r.due = Some(due);
                }
            }
            IndexEntry::InFlight { job, .. } => {
                if let Some(r) = out.jobs.get_mut(&job) {
                    r.in_flight = true;
                }
            }
            IndexEntry::Dead { job, at, .. } => {
                if let Some(r) = out.jobs.get_mut(&job) {
                    r.dead_at = Some(at);
                }
            }
            IndexEntry::CrossRef {
                network,
                network_case_number,
            } => {
                out.xrefs.insert((network, network_case_number));
            }
            IndexEntry::FollowUp { network, at } => {
                out.follow_ups.insert(network, at);
            }
            IndexEntry::Deadline { at } => out.deadline_at = Some(at),
            IndexEntry::Updated { .. } => {}
        }
    }
    out
}

/// Run `f` on the case in one transaction, again after a lost race. Returns
/// the record as stored and whether anything was written.
pub(super) async fn update(
    pool: &Pool,
    case_number: &str,
    f: &mut CaseUpdate<'_>,
) -> Result<(Option<CaseRecord>, bool)> {
    let mut tries = 0;
    loop {
        tries += 1;
        match try_update(pool, case_number, f).await {
            Err(Failure::Pg(e)) if e.retryable() && tries < MAX_TRIES => continue,
            Err(Failure::Pg(e)) => return Err(e.into()),
            Err(Failure::Store(e)) => return Err(e),
            Ok(done) => return Ok(done),
        }
    }
}

pub(super) enum Failure {
    Pg(PgFailure),
    Store(StoreError),
}

impl<E: Into<PgFailure>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Pg(e.into())
    }
}

async fn try_update(
    pool: &Pool,
    case_number: &str,
    f: &mut CaseUpdate<'_>,
) -> std::result::Result<(Option<CaseRecord>, bool), Failure> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT record::text FROM yiwang_case WHERE case_number = $1 FOR UPDATE")
        .await?;
    let old = match tx.query_opt(&lock, &[&case_number]).await? {
        Some(row) => Some(super::queries::decode(case_number, row.get(0)).map_err(Failure::Store)?),
        None => None,
    };
    let Some(new) = f(old.clone()) else {
        return Ok((None, false));
    };
    if old.as_ref() == Some(&new) {
        return Ok((Some(new), false));
    }
    write(&tx, case_number, old.as_ref(), &new).await?;
    tx.commit().await?;
    Ok((Some(new), true))
}

/// The record and the rows that differ from the old record's.
pub(super) async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    case_number: &str,
    old: Option<&CaseRecord>,
    new: &CaseRecord,
) -> std::result::Result<(), tokio_postgres::Error> {
    let before = old.map(rows).unwrap_or_default();
    let after = rows(new);
    // A new case is a plain INSERT: when another transaction created it
    // first, the unique violation sends this one round again to see it
    // (an upsert would overwrite it unseen).
    let sql = if old.is_some() {
        "UPDATE yiwang_case SET record = $2, item = $3, bureau = $4, updated_at = $5, \
         deadline_at = $6, settled = $7 WHERE case_number = $1"
    } else {
        "INSERT INTO yiwang_case (case_number, record, item, bureau, updated_at, deadline_at, settled) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    };
    let st = tx.prepare_cached(sql).await?;
    tx.execute(
        &st,
        &[
            &case_number,
            &Json(new),
            &new.item,
            &new.bureau,
            &new.updated_at,
            &after.deadline_at,
            &new.is_settled(),
        ],
    )
    .await?;
    write_jobs(tx, case_number, &before, &after).await?;
    write_xrefs(tx, case_number, &before, &after).await?;
    write_follow_ups(tx, case_number, &before, &after).await?;
    for destination in woken(&before, &after) {
        let st = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        tx.execute(&st, &[&super::listen::CHANNEL, &destination])
            .await?;
    }
    Ok(())
}

/// The destinations whose dispatchers another replica should wake once
/// this commits: a job became runnable (or its due time moved), or an
/// attempt left flight (a concurrency slot, counted over every replica,
/// came free). PostgreSQL delivers each notification at commit, once per
/// distinct payload in a transaction.
fn woken(before: &Rows, after: &Rows) -> BTreeSet<String> {
    after
        .jobs
        .iter()
        .filter(|(id, row)| {
            let old = before.jobs.get(id);
            let due = row.due.is_some() && old.map(|o| o.due) != Some(row.due);
            let landed = old.is_some_and(|o| o.in_flight) && !row.in_flight;
            due || landed
        })
        .map(|(_, row)| row.destination.clone())
        .collect()
}

/// The follow-up rows that changed: gone ones deleted, new or moved ones
/// written.
async fn write_follow_ups(
    tx: &deadpool_postgres::Transaction<'_>,
    case_number: &str,
    before: &Rows,
    after: &Rows,
) -> std::result::Result<(), tokio_postgres::Error> {
    for network in before.follow_ups.keys() {
        if !after.follow_ups.contains_key(network) {
            let st = tx
                .prepare_cached(
                    "DELETE FROM yiwang_follow_up WHERE case_number = $1 AND network = $2",
                )
                .await?;
            tx.execute(&st, &[&case_number, network]).await?;
        }
    }
    for (network, at) in &after.follow_ups {
        if before.follow_ups.get(network) != Some(at) {
            let st = tx
                .prepare_cached(
                    "INSERT INTO yiwang_follow_up (case_number, network, at) VALUES ($1, $2, $3) \
                     ON CONFLICT (case_number, network) DO UPDATE SET at = excluded.at",
                )
                .await?;
            tx.execute(&st, &[&case_number, network, at]).await?;
        }
    }
    Ok(())
}

async fn write_jobs(
    tx: &deadpool_postgres::Transaction<'_>,
    case_number: &str,
    before: &Rows,
    after: &Rows,
) -> std::result::Result<(), tokio_postgres::Error> {
    let gone: Vec<i32> = before
        .jobs
        .keys()
        .filter(|id| !after.jobs.contains_key(id))
        .map(|id| *id as i32)
        .collect();
    if !gone.is_empty() {
        let st = tx
            .prepare_cached("DELETE FROM yiwang_job WHERE case_number = $1 AND job = ANY($2)")
            .await?;
        tx.execute(&st, &[&case_number, &gone]).await?;
    }
    let changed: Vec<(&u32, &JobRow)> = after
        .jobs
        .iter()
        .filter(|(id, row)| before.jobs.get(id) != Some(row))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    // One statement for every changed row, whatever their number.
    let st = tx
        .prepare_cached(
            "INSERT INTO yiwang_job (case_number, job, destination, state, created_at, pending, due, in_flight, dead_at, lease_owner, lease_until) \
             SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[], $5::int8[], $6::bool[], $7::int8[], $8::bool[], $9::int8[], $10::text[], $11::int8[]) \
             ON CONFLICT (case_number, job) DO UPDATE SET destination = excluded.destination, \
             state = excluded.state, created_at = excluded.created_at, pending = excluded.pending, \
             due = excluded.due, in_flight = excluded.in_flight, dead_at = excluded.dead_at, \
             lease_owner = excluded.lease_owner, lease_until = excluded.lease_until",
        )
        .await?;
    let ids: Vec<i32> = changed.iter().map(|(id, _)| **id as i32).collect();
    let destinations: Vec<&str> = changed
        .iter()
        .map(|(_, r)| r.destination.as_str())
        .collect();
    let states: Vec<&str> = changed.iter().map(|(_, r)| r.state).collect();
    let created: Vec<i64> = changed.iter().map(|(_, r)| r.created_at).collect();
    let pending: Vec<bool> = changed.iter().map(|(_, r)| r.pending).collect();
    let due: Vec<Option<i64>> = changed.iter().map(|(_, r)| r.due).collect();
    let in_flight: Vec<bool> = changed.iter().map(|(_, r)| r.in_flight).collect();
    let dead: Vec<Option<i64>> = changed.iter().map(|(_, r)| r.dead_at).collect();
    let owners: Vec<Option<&str>> = changed
        .iter()
        .map(|(_, r)| r.lease_owner.as_deref())
        .collect();
    let until: Vec<Option<i64>> = changed.iter().map(|(_, r)| r.lease_until).collect();
    tx.execute(
        &st,
        &[
            &case_number,
            &ids,
            &destinations,
            &states,
            &created,
            &pending,
            &due,
            &in_flight,
            &dead,
            &owners,
            &until,
        ],
    )
    .await?;
    Ok(())
}

async fn write_xrefs(
    tx: &deadpool_postgres::Transaction<'_>,
    case_number: &str,
    before: &Rows,
    after: &Rows,
) -> std::result::Result<(), tokio_postgres::Error> {
    for (network, number) in before.xrefs.difference(&after.xrefs) {
        let st = tx
            .prepare_cached(
                "DELETE FROM yiwang_xref WHERE network = $1 AND network_case_number = $2 AND case_number = $3",
            )
            .await?;
        tx.execute(&st, &[network, number, &case_number]).await?;
    }
    for (network, number) in after.xrefs.difference(&before.xrefs) {
        let st = tx
            .prepare_cached(
                "INSERT INTO yiwang_xref (network, network_case_number, case_number) VALUES ($1, $2, $3) \
                 ON CONFLICT (network, network_case_number) DO UPDATE SET case_number = excluded.case_number",
            )
            .await?;
        tx.execute(&st, &[network, number, &case_number]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Destination, JobKind};

    /// A claim changes one job row; the rows of the other jobs stay as
    /// they were (so `update` writes one row, not the case's every row).
    #[test]
    fn a_state_change_touches_only_its_job_row() {
        let mut r = CaseRecord::blank("C1");
        for n in ["a", "b"] {
            r.push_job(
                Destination::Network(n.into()),
                JobKind::Submit {
                    after: vec![],
                    inputs: Default::default(),
                },
                5,
            );
        }
        let before = rows(&r);
        assert_eq!(before.jobs[&1].due, Some(5));
        assert!(before.jobs[&1].pending && !before.jobs[&1].in_flight);
        r.job_mut(1).expect("job 1").state = JobState::InFlight {
            since: 6,
            verifying: false,
            lease: Some(crate::store::Lease {
                owner: "replica-a".into(),
                until: 99,
            }),
        };
        let after = rows(&r);
        let changed: Vec<u32> = after
            .jobs
            .iter()
            .filter(|(id, row)| before.jobs.get(id) != Some(row))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(changed, [1]);
        assert_eq!(after.jobs[&1].due, None);
        assert!(after.jobs[&1].in_flight && after.jobs[&1].pending);
        assert_eq!(after.jobs[&1].state, "in_flight");
        assert_eq!(after.jobs[&1].lease_owner.as_deref(), Some("replica-a"));
        assert_eq!(after.jobs[&1].lease_until, Some(99));
        assert!(woken(&before, &after).is_empty(), "a claim wakes nobody");
        // Settling job 1 frees a slot of network:a; job 2 was due all along.
        let mut settled = r.clone();
        settled.job_mut(1).expect("job 1").state = JobState::Pending { due: 50 };
        assert_eq!(
            woken(&after, &rows(&settled)),
            BTreeSet::from(["network:a".to_string()])
        );
    }
}
