//! A closed-loop load generator and the statistics every benchmark prints.
//!
//! `concurrency` workers each send one request, wait for its answer, and
//! send the next, until a count or a duration is reached: the offered load
//! adapts to the server, so the figure is what the server sustains at that
//! concurrency, not what a fixed arrival rate would queue up.

use anyhow::Result;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a closed loop stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many requests in all.
    Count(u64),
    /// No new request after this long.
    Elapsed(Duration),
}

/// What a closed loop measured.
#[derive(Debug, Default)]
pub struct Run {
    /// Latency of every successful request.
    pub latencies: Vec<Duration>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Run {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        per_second(self.latencies.len() as u64, self.elapsed)
    }

    pub fn stats(&self) -> Stats {
        Stats::of(self.latencies.clone())
    }

    /// Fail loudly if anything failed: a benchmark of errors is no benchmark.
    pub fn check(&self, what: &str) -> Result<()> {
        match &self.first_error {
            None => Ok(()),
            Some(e) => anyhow::bail!("{what}: {} requests failed; first: {e}", self.errors),
        }
    }
}

/// Run `request(i)` for i = 0, 1, 2, … from `concurrency` workers.
pub async fn closed_loop<F, Fut>(concurrency: usize, until: Until, request: F) -> Run
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let run = Arc::new(Mutex::new(Run::default()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (request, next, run) = (request.clone(), next.clone(), run.clone());
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let more = match until {
                    Until::Count(n) => i < n,
                    Until::Elapsed(d) => start.elapsed() < d,
                };
                if !more {
                    break;
                }
                let t = Instant::now();
                match request(i).await {
                    Ok(()) => mine.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            let mut r = run.lock().unwrap_or_else(|p| p.into_inner());
            r.latencies.extend(mine);
            r.errors += errors;
            if r.first_error.is_none() {
                r.first_error = first_error;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let mut out = std::mem::take(&mut *run.lock().unwrap_or_else(|p| p.into_inner()));
    out.elapsed = start.elapsed();
    out
}

/// Latency summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub p50: Duration,
    pub p99: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        samples.sort();
        let n = samples.len();
        Stats {
            p50: samples[percentile_index(n, 50)],
            p99: samples[percentile_index(n, 99)],
        }
    }
}

/// The nearest-rank index of the `p`th percentile in `n` sorted samples.
pub fn percentile_index(n: usize, p: usize) -> usize {
    (n * p).div_ceil(100).clamp(1, n) - 1
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        count as f64 / elapsed.as_secs_f64()
    }
}

/// Milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `a / b`, or 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Stats::of(samples);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        let one = Stats::of(vec![Duration::from_millis(7)]);
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert_eq!(Stats::of(Vec::new()).p99, Duration::ZERO);
    }

    #[tokio::test]
    async fn a_closed_loop_makes_exactly_the_requests_asked_and_counts_failures() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let run = closed_loop(4, Until::Count(10), move |i| {
            let s = s.clone();
            async move {
                s.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                if i == 3 {
                    anyhow::bail!("request {i} refused");
                }
                Ok(())
            }
        })
        .await;
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!((run.latencies.len(), run.errors), (9, 1));
        let err = run.check("demo").unwrap_err().to_string();
        assert!(err.contains("request 3 refused"), "{err}");
    }
}
