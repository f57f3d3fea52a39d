//! Leader leases: one replica at a time runs each singleton task.
//!
//! Some work must happen once however many replicas share the store: a network's poller
//! (two would fetch the same change feed), its status follow-up, the deadline monitor
//! (notices sent once), retention (compacting settled cases). Each runs under a *leader lease* named after the
//! task (`poll:tax`, `follow-up:provincial-filing`, `deadlines`, `retention`): a row
//! holding the leader's replica id and an expiry. A replica takes the lease when it is free
//! or expired, keeps it by renewing before it expires, and gives it up at a clean stop so
//! another replica takes over at once; when its holder dies, the lease expires and another
//! replica takes the task over. The runner is `delivery::leader`.
//!
//! As with job leases ([`super::lease`]), replicas compare expiries with their own clocks:
//! keep them within a small fraction of `lease-ms` of each other.

use super::Millis;
use serde::{Deserialize, Serialize};

/// Who leads a task, and until when (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    pub owner: String,
    pub until: Millis,
}

/// The rule every backend applies: `owner` may take or keep the lease at `now` when no one
/// holds it, its holder's lease expired, or it is already `owner`'s.
pub fn may_lead(current: Option<&Leadership>, owner: &str, now: Millis) -> bool {
    current.is_none_or(|c| c.owner == owner || c.until <= now)
}

/// The task names (one home for them: the runner and the admin API use these).
pub fn poll_task(network: &str) -> String {
    format!("poll:{network}")
}

pub fn follow_up_task(network: &str) -> String {
    format!("follow-up:{network}")
}

pub const DEADLINES_TASK: &str = "deadlines";
pub const RETENTION_TASK: &str = "retention";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_expired_or_own_may_be_led_and_a_live_other_may_not() {
        let held = Leadership {
            owner: "a".into(),
            until: 100,
        };
        assert!(may_lead(None, "b", 0));
        assert!(may_lead(Some(&held), "a", 50), "its own, renewed");
        assert!(!may_lead(Some(&held), "b", 99), "live, another's");
        assert!(may_lead(Some(&held), "b", 100), "expired");
    }
}
