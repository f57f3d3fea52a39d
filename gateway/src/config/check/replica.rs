//! `[gateway] replica-id` and `lease-ms`: the name a replica's job leases
//! carry (shown in logs and metrics, compared by every replica sharing the
//! store) and how long a lease holds without renewal.

use super::Problems;
use crate::config::types::{Config, LEASE_MS};

/// At most this long: it is stored with every lease.
const MAX_REPLICA_ID: usize = 64;

/// Letters, digits, `.`, `_`, `-`; 1 to 64 of them.
pub(in crate::config) fn valid_replica_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REPLICA_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(super) fn check(config: &Config, p: &mut Problems<'_>) {
    let g = &config.gateway;
    if let Some(id) = &g.replica_id
        && !valid_replica_id(id)
    {
        p.at(
            p.key_span("replica-id"),
            format!(
                "gateway.replica-id {id:?} must be 1 to {MAX_REPLICA_ID} letters, digits, '.', '_' or '-' (every replica sharing the store needs its own)"
            ),
        );
    }
    if !LEASE_MS.contains(&g.lease_ms) {
        p.at(
            p.key_span("lease-ms"),
            format!(
                "gateway.lease-ms {} is outside {}..={}: a shorter lease is lost to a brief database pause, a longer one leaves a dead replica's jobs waiting (the default is 30000)",
                g.lease_ms,
                LEASE_MS.start(),
                LEASE_MS.end()
            ),
        );
    }
}
