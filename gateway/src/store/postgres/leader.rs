//! Leader leases in PostgreSQL: one conditional upsert takes or keeps a task's lease
//! (free, expired, or already the caller's), so two replicas can never both hold it.

use super::{PgFailure, Result};
use crate::store::Millis;
use crate::store::leader::Leadership;
use deadpool_postgres::ClientWrapper;

pub(super) async fn lead(
    client: &ClientWrapper,
    task: &str,
    owner: &str,
    now: Millis,
    until: Millis,
) -> Result<bool> {
    let row = client
        .query_opt(
            "INSERT INTO yiwang_leader (task, owner, lease_until) VALUES ($1, $2, $4) \
             ON CONFLICT (task) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until \
             WHERE yiwang_leader.owner = EXCLUDED.owner OR yiwang_leader.lease_until <= $3 \
             RETURNING owner",
            &[&task, &owner, &now, &until],
        )
        .await
        .map_err(PgFailure::from)?;
    Ok(row.is_some())
}

pub(super) async fn resign(client: &ClientWrapper, task: &str, owner: &str) -> Result<()> {
    client
        .execute(
            "DELETE FROM yiwang_leader WHERE task = $1 AND owner = $2",
            &[&task, &owner],
        )
        .await
        .map_err(PgFailure::from)?;
    Ok(())
}

pub(super) async fn leader(
    client: &ClientWrapper,
    task: &str,
    now: Millis,
) -> Result<Option<Leadership>> {
    let row = client
        .query_opt(
            "SELECT owner, lease_until FROM yiwang_leader WHERE task = $1 AND lease_until > $2",
            &[&task, &now],
        )
        .await
        .map_err(PgFailure::from)?;
    Ok(row.map(|r| Leadership {
        owner: r.get(0),
        until: r.get(1),
    }))
}
