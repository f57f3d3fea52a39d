//! `claim` as one transaction per destination, shared by every replica:
//!
//! 1. `pg_advisory_xact_lock` on the destination: claims of one destination
//!    run one at a time across replicas, so the count of live leases and the
//!    claims it allows cannot interleave (the concurrency limit is global);
//! 2. count the destination's live leases (`yiwang_job_lease`);
//! 3. pick candidates: in-flight jobs whose lease expired, then runnable
//!    jobs due now (`yiwang_job_due`; a held job has no due row, so per-case
//!    FIFO and chained holds come with the index);
//! 4. lock the candidates' case rows (`FOR UPDATE`, in case-number order,
//!    so two claims never wait on each other in a circle), re-check each job
//!    under the lock with the rule every backend shares ([`lease::claim`]),
//!    in candidate order, and write each changed record and its rows like
//!    `update`.
//!
//! The candidates are read before their case rows are locked; the re-check
//! under the lock is what decides, so a job another transaction moved in
//! between is simply not claimed.

use super::update::{Failure, MAX_TRIES, write};
use super::{PgFailure, Result};
use crate::store::lease;
use crate::store::{CaseRecord, ClaimRequest, Claims, JobRef, Millis};
use deadpool_postgres::{GenericClient, Pool};
use std::collections::BTreeMap;

/// The advisory lock class of claims (the key is the destination's hash).
const CLAIM_LOCK: i32 = 0x7977_636c; // "ywcl"

pub(super) async fn claim(
    pool: &Pool,
    destination: &str,
    request: &ClaimRequest<'_>,
) -> Result<Claims> {
    let mut tries = 0;
    loop {
        tries += 1;
        match try_claim(pool, destination, request).await {
            Err(Failure::Pg(e)) if e.retryable() && tries < MAX_TRIES => continue,
            Err(Failure::Pg(e)) => return Err(e.into()),
            Err(Failure::Store(e)) => return Err(e),
            Ok(claims) => return Ok(claims),
        }
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn try_claim(
    pool: &Pool,
    destination: &str,
    request: &ClaimRequest<'_>,
) -> std::result::Result<Claims, Failure> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let now = request.now;
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&lock, &[&CLAIM_LOCK, &destination]).await?;
    let live = tx
        .prepare_cached(
            "SELECT count(*) FROM yiwang_job \
             WHERE destination = $1 AND in_flight AND lease_until > $2",
        )
        .await?;
    let live = tx
        .query_one(&live, &[&destination, &now])
        .await?
        .get::<_, i64>(0);
    let live = usize::try_from(live).unwrap_or(usize::MAX);
    let free = request.limit.saturating_sub(live).min(request.max);
    let mut claims = Claims {
        next: next(&tx, destination, now).await?,
        live,
        ..Claims::default()
    };
    if free == 0 {
        return Ok(claims);
    }
    let candidates = candidates(&tx, destination, now, free).await?;
    let locked = lock_cases(&tx, &candidates).await?;
    let mut records = locked.clone();
    let mut written: BTreeMap<String, CaseRecord> = BTreeMap::new();
    for r in &candidates {
        let Some(record) = records.get_mut(&r.case_number) else {
            continue;
        };
        if let Some(c) = lease::claim(record, r.job, request) {
            claims.jobs.push(c);
            written.insert(r.case_number.clone(), record.clone());
        }
    }
    for (case_number, new) in &written {
        write(&tx, case_number, locked.get(case_number), new).await?;
        // Each claim carries the record as stored, with every claim of its
        // case made in this transaction.
        for c in claims
            .jobs
            .iter_mut()
            .filter(|c| &c.job.case_number == case_number)
        {
            c.record = new.clone();
        }
    }
    tx.commit().await?;
    claims.live = live + claims.jobs.len();
    Ok(claims)
}

/// Lock the candidates' case rows, in case-number order (so two claims
/// never wait on each other in a circle); their records.
async fn lock_cases(
    tx: &deadpool_postgres::Transaction<'_>,
    candidates: &[JobRef],
) -> std::result::Result<BTreeMap<String, CaseRecord>, Failure> {
    let numbers: Vec<&str> = candidates.iter().map(|r| r.case_number.as_str()).collect();
    let st = tx
        .prepare_cached(
            "SELECT case_number, record::text FROM yiwang_case WHERE case_number = ANY($1) \
             ORDER BY case_number FOR UPDATE",
        )
        .await?;
    let mut out = BTreeMap::new();
    for row in tx.query(&st, &[&numbers]).await? {
        let number: String = row.get(0);
        let record = super::queries::decode(&number, row.get(1)).map_err(Failure::Store)?;
        out.insert(number, record);
    }
    Ok(out)
}

/// Expired leases first (oldest expiry first), then due work, oldest due
/// first; at most `max` of each.
async fn candidates(
    tx: &deadpool_postgres::Transaction<'_>,
    destination: &str,
    now: Millis,
    max: usize,
) -> std::result::Result<Vec<JobRef>, PgFailure> {
    let st = tx
        .prepare_cached(
            "(SELECT case_number, job, 0 AS k, coalesce(lease_until, 0) AS at FROM yiwang_job \
               WHERE destination = $1 AND in_flight AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY lease_until NULLS FIRST, case_number, job LIMIT $3) \
             UNION ALL \
             (SELECT case_number, job, 1 AS k, due AS at FROM yiwang_job \
               WHERE destination = $1 AND due <= $2 \
               ORDER BY due, case_number, job LIMIT $3) \
             ORDER BY k, at, case_number, job LIMIT $3",
        )
        .await?;
    let rows = tx.query(&st, &[&destination, &now, &count(max)]).await?;
    Ok(rows
        .iter()
        .map(|r| JobRef {
            case_number: r.get(0),
            job: r.get::<_, i32>(1) as u32,
        })
        .collect())
}

/// When to look again: the next due time or lease expiry after `now`.
async fn next(
    tx: &deadpool_postgres::Transaction<'_>,
    destination: &str,
    now: Millis,
) -> std::result::Result<Option<Millis>, PgFailure> {
    let st = tx
        .prepare_cached(
            "SELECT least( \
               (SELECT min(due) FROM yiwang_job WHERE destination = $1 AND due > $2), \
               (SELECT min(lease_until) FROM yiwang_job \
                 WHERE destination = $1 AND in_flight AND lease_until > $2))",
        )
        .await?;
    Ok(tx.query_one(&st, &[&destination, &now]).await?.get(0))
}
