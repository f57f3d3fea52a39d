//! A rate budget per key (principal or source address): GCRA from
//! `governor`, answering how long to wait when a key is over its budget,
//! and forgetting keys gone quiet so the map stays as small as the set of
//! active clients.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Quiet keys are forgotten once every this many checks.
const FORGET_EVERY: u32 = 1024;

pub(crate) struct Budget {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU32,
}

impl Budget {
    /// `per_second` on average with bursts of `burst` (at least 1 each).
    pub(crate) fn per_second(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self::of(Quota::per_second(rate).allow_burst(burst))
    }

    /// `per_minute` a minute, all of them available at once.
    pub(crate) fn per_minute(per_minute: u32) -> Self {
        Self::of(Quota::per_minute(
            NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
        ))
    }

    fn of(quota: Quota) -> Self {
        Budget {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU32::new(0),
        }
    }

    /// Spend one unit of `key`'s budget, or the wait until one is available.
    pub(crate) fn spend(&self, key: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_spends_its_burst_then_waits_and_other_keys_are_untouched() {
        let b = Budget::per_second(1, 3);
        for _ in 0..3 {
            assert_eq!(b.spend("a"), Ok(()));
        }
        let wait = b.spend("a").err().unwrap_or_else(|| panic!("not refused"));
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(b.spend("b"), Ok(()));
    }

    #[test]
    fn a_per_minute_budget_holds_that_many() {
        let b = Budget::per_minute(5);
        let spent = (0..100).filter(|_| b.spend("x").is_ok()).count();
        assert_eq!(spent, 5);
    }
}
