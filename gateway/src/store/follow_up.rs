//! Status follow-up (跟踪查询): which network cases the gateway still asks
//! their network about, and when it asks next.
//!
//! A network that has no change feed and no callbacks (a lookup-only
//! service) only answers "what is the status of case X?". For such a
//! network the gateway keeps the question open itself: a case is *open for
//! follow-up* on a network once its submit there is delivered with the
//! network's case number, and until the network's view of it is final (a
//! terminal stage, a denial: see [`NetworkCase::is_final`]). The rule is a
//! pure function of the record, so every backend indexes it alike
//! ([`IndexEntry::FollowUp`](super::IndexEntry::FollowUp)), it survives a
//! kill -9 with the record, and a case leaves the index in the same atomic
//! write that records its final stage (or when retention drops it).
//!
//! When to ask next is the back-off of [`FollowUp::after_query`]: a case
//! that moved is asked again after the network's `interval-ms`; one that
//! stayed the same waits twice as long as last time, up to
//! `max-interval-ms`. A case never asked yet is due at its delivery time.

use super::Millis;
use serde::{Deserialize, Serialize};

/// The follow-up schedule of one network case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// When to ask next.
    pub next: Millis,
    /// The wait that led to `next`: doubles while the case stays unchanged.
    pub interval_ms: u64,
    /// Queries answered so far (for the case view and the tests).
    #[serde(default)]
    pub queries: u32,
}

impl FollowUp {
    /// The schedule after one answered query at `now`: `changed` = the
    /// answer brought an event the view did not have. A change resets the
    /// wait to `interval_ms`; no change doubles the last wait up to
    /// `max_interval_ms` (never below `interval_ms`).
    pub fn after_query(
        previous: Option<FollowUp>,
        changed: bool,
        interval_ms: u64,
        max_interval_ms: u64,
        now: Millis,
    ) -> FollowUp {
        let ceiling = max_interval_ms.max(interval_ms);
        let wait = match previous {
            Some(p) if !changed => p.interval_ms.saturating_mul(2).clamp(interval_ms, ceiling),
            _ => interval_ms.min(ceiling),
        };
        FollowUp {
            next: later(now, wait),
            interval_ms: wait,
            queries: previous.map_or(0, |p| p.queries).saturating_add(1),
        }
    }

    /// The schedule after a query that failed (the network or the adapter
    /// did not answer): asked again after `wait_ms`, the back-off kept.
    pub fn after_failure(previous: Option<FollowUp>, wait_ms: u64, now: Millis) -> FollowUp {
        FollowUp {
            next: later(now, wait_ms),
            interval_ms: previous.map_or(0, |p| p.interval_ms),
            queries: previous.map_or(0, |p| p.queries),
        }
    }
}

/// `wait_ms` after `now`, saturating.
fn later(now: Millis, wait_ms: u64) -> Millis {
    now.saturating_add(i64::try_from(wait_ms).unwrap_or(i64::MAX))
}

/// When a network is next asked about a case, if the case is open for
/// follow-up there: its submit there was delivered (`delivered_at`), the
/// network's number is known (`numbered`) and its view is not final; then
/// at the schedule's next time, or at the delivery when never asked.
pub fn open_at(
    delivered_at: Option<Millis>,
    numbered: bool,
    is_final: bool,
    schedule: Option<FollowUp>,
) -> Option<Millis> {
    if !numbered || is_final {
        return None;
    }
    let delivered = delivered_at?;
    Some(schedule.map_or(delivered, |f| f.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_from_delivery_until_a_final_stage() {
        let asked = FollowUp {
            next: 99,
            interval_ms: 10,
            queries: 1,
        };
        assert_eq!(open_at(None, true, false, None), None, "not delivered");
        assert_eq!(open_at(Some(7), false, false, None), None, "no number");
        assert_eq!(
            open_at(Some(7), true, false, None),
            Some(7),
            "due at its delivery"
        );
        assert_eq!(open_at(Some(7), true, false, Some(asked)), Some(99));
        assert_eq!(
            open_at(Some(7), true, true, Some(asked)),
            None,
            "a final view closes it"
        );
    }

    #[test]
    fn unchanged_answers_back_off_to_the_ceiling_and_a_change_resets() {
        let first = FollowUp::after_query(None, false, 1000, 5000, 0);
        assert_eq!(
            (first.next, first.interval_ms, first.queries),
            (1000, 1000, 1)
        );
        let second = FollowUp::after_query(Some(first), false, 1000, 5000, 1000);
        assert_eq!((second.next, second.interval_ms), (3000, 2000));
        let third = FollowUp::after_query(Some(second), false, 1000, 5000, 3000);
        assert_eq!(third.interval_ms, 4000);
        let capped = FollowUp::after_query(Some(third), false, 1000, 5000, 7000);
        assert_eq!((capped.next, capped.interval_ms), (12_000, 5000));
        let moved = FollowUp::after_query(Some(capped), true, 1000, 5000, 12_000);
        assert_eq!(
            (moved.next, moved.interval_ms, moved.queries),
            (13_000, 1000, 5)
        );
        let failed = FollowUp::after_failure(Some(moved), 250, 13_000);
        assert_eq!(
            (failed.next, failed.interval_ms, failed.queries),
            (13_250, 1000, 5)
        );
    }
}
