//! P6's load: cases at a steady rate (open loop: a case every 1/rate
//! seconds whatever the answers), each timed at the intake (`202`) and, for
//! the healthy network, until its ministry stored it.

use super::attack::{HEALTHY_ITEM, NEIGHBOUR_ITEM};
use crate::load::{ms, percentile_index};
use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use yiwang_e2e::{Client, case_json, permit_case};
use yiwang_simulator::Simulator;

/// When the healthy ministry stored each case, by unified case number.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<HashMap<String, DateTime<Utc>>>>);

impl Arrivals {
    /// Record every case `sim` stores from now on (until the task is aborted).
    pub fn follow(sim: &Simulator) -> (Arrivals, JoinHandle<()>) {
        let arrivals = Arrivals::default();
        let mut rx = sim.arrivals();
        let map = arrivals.0.clone();
        let task = tokio::spawn(async move {
            while let Ok(a) = rx.recv().await {
                if let Some(number) = a.unified_case_number {
                    let at = a.received_at.with_timezone(&Utc);
                    map.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(number, at);
                }
            }
        });
        (arrivals, task)
    }

    pub fn get(&self, number: &str) -> Option<DateTime<Utc>> {
        self.lock().get(number).copied()
    }

    /// Cases stored in `[from, to)`.
    pub fn count_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        self.lock()
            .values()
            .filter(|t| **t >= from && **t < to)
            .count() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The cases of both networks: the healthy network's item and the neighbour's.
#[derive(Clone)]
pub struct Cases {
    healthy: Value,
    neighbour: Value,
}

impl Cases {
    pub fn load() -> Result<Cases> {
        let healthy = case_json("enterprise-establishment.json", "P6")?;
        let neighbour = permit_case("P6")?;
        for (case, item) in [(&healthy, HEALTHY_ITEM), (&neighbour, NEIGHBOUR_ITEM)] {
            if case["item"]["code"] != item {
                bail!("the P6 case for {item} has item {}", case["item"]["code"]);
            }
        }
        Ok(Cases { healthy, neighbour })
    }

    fn with_number(&self, healthy: bool, number: &str) -> Value {
        let mut case = if healthy {
            &self.healthy
        } else {
            &self.neighbour
        }
        .clone();
        case["case_number"] = Value::String(number.to_string());
        case
    }

    /// Post one case and wait for its `202`; the intake's latency.
    pub async fn post(&self, intake: &Client, healthy: bool, number: &str) -> Result<Duration> {
        let case = self.with_number(healthy, number);
        let t = Instant::now();
        match intake.post("/v1/cases", &case).await? {
            (202, _) => Ok(t.elapsed()),
            (s, body) => bail!("intake answered {s} for {number}: {body}"),
        }
    }
}

/// The steady load of one run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Healthy cases per second (and as many for the neighbour, if any).
    pub rate: f64,
    /// Load before the window: the networks reach their steady state.
    pub settle: Duration,
    /// The measured window.
    pub window: Duration,
    /// After the window, how long the healthy cases sent in it may take to arrive.
    pub drain: Duration,
    /// How long a gateway may take to listen.
    pub start_within: Duration,
}

/// One healthy case sent in the window.
struct Sent {
    number: String,
    at: DateTime<Utc>,
    intake: Result<Duration>,
}

/// What one run's window measured.
#[derive(Debug, Default)]
pub struct Measured {
    pub sent: u64,
    pub intake: Vec<Duration>,
    pub intake_errors: u64,
    pub first_error: Option<String>,
    /// Per accepted case: intake request to ministry storage; `true` when it
    /// had not arrived by the end of the drain (then the wait so far, a lower bound).
    pub delivery: Vec<(Duration, bool)>,
    /// Healthy cases the ministry stored during the window, per second.
    pub throughput: f64,
    /// Gateway CPU time during the window, in cores (CPU seconds per second).
    pub cpu_cores: f64,
}

impl Measured {
    pub fn undelivered(&self) -> u64 {
        self.delivery.iter().filter(|(_, late)| *late).count() as u64
    }
}

/// Run the load: `settle` then `window` of ticks, each posting one healthy
/// case (timed when in the window) and, with `neighbour`, one neighbour
/// case; then wait for the window's cases to arrive. `cpu` reads the
/// gateway's CPU time.
pub async fn run(
    load: Load,
    cases: &Cases,
    intake: &Client,
    arrivals: &Arrivals,
    neighbour: bool,
    cpu: impl Fn() -> Duration,
) -> Result<Measured> {
    if load.rate <= 0.0 || !load.rate.is_finite() {
        bail!(
            "the rate must be a positive number of cases per second, not {}",
            load.rate
        );
    }
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / load.rate));
    let start = Instant::now();
    let (mut window_start, mut cpu_start) = (None, Duration::ZERO);
    let mut posts: Vec<JoinHandle<Sent>> = Vec::new();
    let mut background: Vec<JoinHandle<Result<Duration>>> = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < load.settle + load.window {
        ticks.tick().await;
        let in_window = start.elapsed() >= load.settle;
        if in_window && window_start.is_none() {
            window_start = Some(Utc::now());
            cpu_start = cpu();
        }
        let number = format!("P6-H{i:06}");
        let (c, client) = (cases.clone(), intake.clone());
        if in_window {
            posts.push(tokio::spawn(async move {
                let at = Utc::now();
                let intake = c.post(&client, true, &number).await;
                Sent { number, at, intake }
            }));
        } else {
            background.push(tokio::spawn(
                async move { c.post(&client, true, &number).await },
            ));
        }
        if neighbour {
            let (c, client) = (cases.clone(), intake.clone());
            let number = format!("P6-N{i:06}");
            background.push(tokio::spawn(async move {
                c.post(&client, false, &number).await
            }));
        }
        i += 1;
    }
    let window_end = Utc::now();
    let cpu_cores = (cpu().saturating_sub(cpu_start)).as_secs_f64() / load.window.as_secs_f64();
    let window_start = window_start.unwrap_or(window_end);
    let mut m = Measured {
        cpu_cores,
        ..Measured::default()
    };
    let mut accepted = Vec::new();
    for p in posts {
        let s = p.await?;
        m.sent += 1;
        match s.intake {
            Ok(d) => {
                m.intake.push(d);
                accepted.push((s.number, s.at));
            }
            Err(e) => {
                m.intake_errors += 1;
                m.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let deadline = Instant::now() + load.drain;
    while Instant::now() < deadline && accepted.iter().any(|(n, _)| arrivals.get(n).is_none()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = Utc::now();
    m.delivery = accepted
        .iter()
        .map(|(n, sent)| match arrivals.get(n) {
            Some(at) => (since(*sent, at), false),
            None => (since(*sent, now), true),
        })
        .collect();
    let seconds = since(window_start, window_end).as_secs_f64();
    m.throughput = if seconds > 0.0 {
        arrivals.count_between(window_start, window_end) as f64 / seconds
    } else {
        0.0
    };
    for b in background {
        b.abort();
    }
    Ok(m)
}

fn since(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// A percentile of samples some of which are lower bounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bound {
    pub value: Duration,
    /// The sample is a lower bound (a case that had not arrived).
    pub at_least: bool,
}

impl Bound {
    pub fn ms(self) -> f64 {
        ms(self.value)
    }

    pub fn show(self) -> String {
        format!("{}{:.1}", if self.at_least { "≥ " } else { "" }, self.ms())
    }
}

/// The `p`th percentile (nearest rank) of `samples`.
pub fn percentile(samples: &[(Duration, bool)], p: usize) -> Bound {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.get(percentile_index(sorted.len().max(1), p)) {
        Some((value, at_least)) => Bound {
            value: *value,
            at_least: *at_least,
        },
        None => Bound::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_say_when_they_are_lower_bounds() {
        let mut samples: Vec<(Duration, bool)> = (1..=98)
            .map(|i| (Duration::from_millis(i), false))
            .collect();
        samples.push((Duration::from_millis(5000), true));
        samples.push((Duration::from_millis(4000), true));
        let p50 = percentile(&samples, 50);
        assert_eq!(
            (p50.value, p50.at_least),
            (Duration::from_millis(50), false)
        );
        let p99 = percentile(&samples, 99);
        assert_eq!(
            (p99.value, p99.at_least),
            (Duration::from_millis(4000), true)
        );
        assert_eq!(p99.show(), "≥ 4000.0");
        assert_eq!(percentile(&[], 50).value, Duration::ZERO);
    }

    #[test]
    fn both_cases_carry_their_own_item() {
        let cases = Cases::load().unwrap();
        assert_eq!(cases.with_number(true, "A")["item"]["code"], HEALTHY_ITEM);
        let n = cases.with_number(false, "B");
        assert_eq!(
            (n["item"]["code"].as_str(), n["case_number"].as_str()),
            (Some(NEIGHBOUR_ITEM), Some("B"))
        );
    }
}
