//! Backoff with full jitter, give-up rules, and the per-destination circuit
//! breaker.

use crate::config::{BreakerConfig, RetryPolicy};
use crate::store::Millis;
use rand::Rng;

/// `delay_ms` after `now`, saturating: a delay an adapter or a ministry
/// supplied never wraps a time into the past.
pub fn later(now: Millis, delay_ms: u64) -> Millis {
    now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX))
}

/// The delay before attempt `attempt + 1` (`attempt` ≥ 1 failures so far):
/// uniform in `[0, min(max, initial · 2^(attempt-1))]` (drawn from `rng`),
/// never shorter than a ministry's Retry-After, and never longer than the
/// policy's `max-interval-ms`: a Retry-After (adapter-supplied, so any
/// `u64`) is a floor up to that ceiling, not a way to park a job forever.
pub fn backoff_ms(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after_ms: Option<u64>,
    rng: &mut impl Rng,
) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let ceiling = policy
        .initial_ms
        .saturating_mul(1u64 << exp)
        .min(policy.max_interval_ms)
        .max(1);
    let jittered = rng.random_range(0..=ceiling);
    jittered
        .max(retry_after_ms.unwrap_or(0))
        .min(policy.max_interval_ms)
}

/// Why to stop retrying, if it is time to.
pub fn give_up(
    policy: &RetryPolicy,
    sends: u32,
    created_at: Millis,
    now: Millis,
) -> Option<String> {
    if let Some(max) = policy.max_attempts
        && sends >= max
    {
        return Some(format!(
            "gave up after {sends} attempts (retry.max-attempts = {max})"
        ));
    }
    if let Some(max_age) = policy.max_age_s {
        let age_s = now.saturating_sub(created_at).max(0) as u64 / 1000;
        if age_s >= max_age {
            return Some(format!(
                "gave up after {age_s} s in the queue (retry.max-age-s = {max_age})"
            ));
        }
    }
    None
}

/// Closed → (failures in a row) → open for a cooldown → one probe.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    failures: u32,
    open_until: Option<Millis>,
    probing: bool,
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Failures in a row: nothing until the cooldown ends.
    Open,
    /// The cooldown ended: one probe decides.
    HalfOpen,
}

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Up to this many calls.
    Calls(usize),
    /// Nothing until then.
    WaitUntil(Millis),
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            failures: 0,
            open_until: None,
            probing: false,
        }
    }

    pub fn admit(&mut self, now: Millis, want: usize) -> Admit {
        match self.open_until {
            None => Admit::Calls(want),
            Some(until) if now < until => Admit::WaitUntil(until),
            Some(_) if self.probing => Admit::WaitUntil(now.saturating_add(100)),
            Some(_) => {
                self.probing = true;
                Admit::Calls(1.min(want))
            }
        }
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.probing = false;
    }

    /// A failure that says the ministry (or the way to it) is unwell.
    pub fn failure(&mut self, now: Millis) {
        self.failures = self.failures.saturating_add(1);
        if self.probing || self.failures >= self.config.failures.max(1) {
            self.open_until = Some(later(now, self.config.cooldown_ms));
            self.probing = false;
        }
    }

    /// A call that says nothing about the network's health (it never
    /// started: a local shortage; or the ministry refused one case): the
    /// count stays, and a probe it was is given back so the next call
    /// probes instead of the breaker waiting forever.
    pub fn neutral(&mut self) {
        self.probing = false;
    }

    pub fn state(&self, now: Millis) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            initial_ms: 100,
            max_interval_ms: 1000,
            max_attempts: None,
            max_age_s: None,
            limit_hits: 3,
        };
        let rng = &mut rand::rng();
        for attempt in 1..40 {
            assert!(backoff_ms(&p, attempt, None, rng) <= 1000);
        }
        assert!(backoff_ms(&p, 1, Some(900), rng) >= 900);
        assert_eq!(
            backoff_ms(&p, 1, Some(5000), rng),
            1000,
            "a Retry-After beyond the ceiling waits the ceiling"
        );
        assert_eq!(backoff_ms(&p, 1, Some(u64::MAX), rng), 1000);
        assert_eq!(later(i64::MAX - 5, u64::MAX), i64::MAX);
        assert_eq!(later(-5, 10), 5);
    }

    #[test]
    fn give_up_by_attempts_or_age() {
        let p = RetryPolicy {
            initial_ms: 1,
            max_interval_ms: 1,
            max_attempts: Some(3),
            max_age_s: Some(10),
            limit_hits: 3,
        };
        assert!(give_up(&p, 2, 0, 1000).is_none());
        assert!(give_up(&p, 3, 0, 1000).unwrap().contains("3 attempts"));
        assert!(give_up(&p, 1, 0, 11_000).unwrap().contains("max-age-s"));
    }

    #[test]
    fn breaker_opens_then_probes_once() {
        let mut b = Breaker::new(BreakerConfig {
            failures: 2,
            cooldown_ms: 1000,
        });
        assert_eq!(b.admit(0, 8), Admit::Calls(8));
        b.failure(0);
        b.failure(0);
        assert_eq!(b.admit(10, 8), Admit::WaitUntil(1000));
        assert_eq!(b.admit(1000, 8), Admit::Calls(1));
        assert!(matches!(b.admit(1001, 8), Admit::WaitUntil(_)));
        b.failure(1002);
        assert_eq!(b.state(1003), BreakerState::Open);
        assert_eq!(b.state(2002), BreakerState::HalfOpen);
        assert_eq!(b.admit(2002, 8), Admit::Calls(1));
        b.success();
        assert_eq!(b.admit(2003, 8), Admit::Calls(8));
    }

    #[test]
    fn a_neutral_probe_gives_the_probe_back() {
        let mut b = Breaker::new(BreakerConfig {
            failures: 1,
            cooldown_ms: u64::MAX,
        });
        b.failure(i64::MAX - 10);
        assert_eq!(
            b.state(i64::MAX - 1),
            BreakerState::Open,
            "saturated, not wrapped"
        );
        let mut b = Breaker::new(BreakerConfig {
            failures: 1,
            cooldown_ms: 1000,
        });
        b.failure(0);
        assert_eq!(b.admit(1000, 8), Admit::Calls(1));
        assert!(matches!(b.admit(1001, 8), Admit::WaitUntil(_)));
        b.neutral();
        assert_eq!(b.admit(1002, 8), Admit::Calls(1), "the next call probes");
        assert_eq!(b.state(1002), BreakerState::HalfOpen, "still not closed");
    }
}
