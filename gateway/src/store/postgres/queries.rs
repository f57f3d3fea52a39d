//! The read side: each query answers from an indexed range of
//! `yiwang_job` or `yiwang_case`, ordered exactly as the embedded backend
//! orders its keys (destination, time, case, job), so both backends give
//! the same answer to the same question.

use super::{PgFailure, Result};
use crate::store::{
    CaseQuery, CaseRecord, Due, FollowUpsDue, JobRef, Millis, QueueDepth, StoreError,
};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

/// A record as stored (JSON text).
pub(super) fn decode(case_number: &str, json: &str) -> Result<CaseRecord> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        key: format!("case {case_number}"),
        message: e.to_string(),
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn rows(
    c: &ClientWrapper,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(PgFailure::from)?;
    Ok(c.query(&st, params).await.map_err(PgFailure::from)?)
}

fn job_refs(rows: Vec<Row>) -> Vec<JobRef> {
    rows.iter()
        .map(|r| JobRef {
            case_number: r.get(0),
            job: r.get::<_, i32>(1) as u32,
        })
        .collect()
}

pub(super) async fn case(c: &ClientWrapper, case_number: &str) -> Result<Option<CaseRecord>> {
    let found = rows(
        c,
        "SELECT record::text FROM yiwang_case WHERE case_number = $1",
        &[&case_number],
    )
    .await?;
    match found.first() {
        Some(row) => decode(case_number, row.get(0)).map(Some),
        None => Ok(None),
    }
}

pub(super) async fn due(
    c: &ClientWrapper,
    destination: &str,
    now: Millis,
    max: usize,
) -> Result<Due> {
    // One row past the limit tells when the next work falls due.
    let found = rows(
        c,
        "SELECT case_number, job, due FROM yiwang_job WHERE destination = $1 AND due IS NOT NULL \
         ORDER BY due, case_number, job LIMIT $2",
        &[&destination, &limit(max).saturating_add(1)],
    )
    .await?;
    let mut due = Due::default();
    for row in found {
        let at: i64 = row.get(2);
        if at > now || due.jobs.len() >= max {
            due.next = Some(at);
            break;
        }
        due.jobs.push(JobRef {
            case_number: row.get(0),
            job: row.get::<_, i32>(1) as u32,
        });
    }
    Ok(due)
}

pub(super) async fn in_flight(c: &ClientWrapper) -> Result<Vec<JobRef>> {
    let found = rows(
        c,
        "SELECT case_number, job FROM yiwang_job WHERE in_flight \
         ORDER BY destination, case_number, job",
        &[],
    )
    .await?;
    Ok(job_refs(found))
}

pub(super) async fn dead_letters(
    c: &ClientWrapper,
    destination: Option<&str>,
    max: usize,
) -> Result<Vec<JobRef>> {
    let found = rows(
        c,
        "SELECT case_number, job FROM yiwang_job \
         WHERE dead_at IS NOT NULL AND ($1::text IS NULL OR destination = $1) \
         ORDER BY destination DESC, dead_at DESC, case_number DESC, job DESC LIMIT $2",
        &[&destination, &limit(max)],
    )
    .await?;
    Ok(job_refs(found))
}

pub(super) async fn pending(
    c: &ClientWrapper,
    destination: Option<&str>,
    max: usize,
) -> Result<Vec<JobRef>> {
    let found = rows(
        c,
        "SELECT case_number, job FROM yiwang_job \
         WHERE pending AND ($1::text IS NULL OR destination = $1) \
         ORDER BY destination, created_at, case_number, job LIMIT $2",
        &[&destination, &limit(max)],
    )
    .await?;
    Ok(job_refs(found))
}

pub(super) async fn deadlines_due(
    c: &ClientWrapper,
    now: Millis,
    max: usize,
) -> Result<Vec<String>> {
    let found = rows(
        c,
        "SELECT case_number FROM yiwang_case WHERE deadline_at <= $1 \
         ORDER BY deadline_at, case_number LIMIT $2",
        &[&now, &limit(max)],
    )
    .await?;
    Ok(found.iter().map(|r| r.get(0)).collect())
}

/// The cases due for status follow-up on `network`, earliest first, and
/// when the next one after them is due.
pub(super) async fn follow_ups_due(
    c: &ClientWrapper,
    network: &str,
    now: Millis,
    max: usize,
) -> Result<FollowUpsDue> {
    // One row more than asked: the first beyond the batch says when to come back.
    let found = rows(
        c,
        "SELECT case_number, at FROM yiwang_follow_up WHERE network = $1 \
         ORDER BY at, case_number LIMIT $2",
        &[&network, &limit(max.saturating_add(1))],
    )
    .await?;
    let mut out = FollowUpsDue::default();
    for row in &found {
        let at: Millis = row.get(1);
        if at > now || out.cases.len() >= max {
            out.next = Some(at);
            break;
        }
        out.cases.push(row.get(0));
    }
    Ok(out)
}

pub(super) async fn search(c: &ClientWrapper, q: &CaseQuery) -> Result<Vec<CaseRecord>> {
    let max = if q.limit == 0 { 100 } else { q.limit };
    let network = q
        .network
        .as_ref()
        .map(|n| crate::store::Destination::Network(n.clone()).key());
    let bureaus: Option<Vec<String>> = q.bureaus.as_ref().map(|b| b.iter().cloned().collect());
    let found = rows(
        c,
        "SELECT c.case_number, c.record::text FROM yiwang_case c \
         WHERE ($1::text IS NULL OR c.item = $1) \
           AND ($2::text[] IS NULL OR c.bureau = ANY($2)) \
           AND ($3::int8 IS NULL OR c.updated_at >= $3) \
           AND ($4::int8 IS NULL OR c.updated_at < $4) \
           AND (($5::text IS NULL AND $6::text IS NULL) OR EXISTS ( \
                SELECT 1 FROM yiwang_job j WHERE j.case_number = c.case_number \
                AND ($5::text IS NULL OR j.destination = $5) \
                AND ($6::text IS NULL OR j.state = $6))) \
         ORDER BY c.updated_at DESC, c.case_number DESC LIMIT $7",
        &[
            &q.item,
            &bureaus,
            &q.since,
            &q.until,
            &network,
            &q.state,
            &limit(max),
        ],
    )
    .await?;
    found.iter().map(|r| decode(r.get(0), r.get(1))).collect()
}

pub(super) async fn depth(c: &ClientWrapper) -> Result<Vec<QueueDepth>> {
    let found = rows(
        c,
        "SELECT destination, count(*), min(created_at) FROM yiwang_job WHERE pending \
         GROUP BY destination ORDER BY destination",
        &[],
    )
    .await?;
    Ok(found
        .iter()
        .map(|r| QueueDepth {
            destination: r.get(0),
            pending: r.get::<_, i64>(1) as u64,
            oldest_created_at: r.get(2),
        })
        .collect())
}
