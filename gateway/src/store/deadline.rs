//! The deadline light (电子监察): green from acceptance, yellow within the
//! configured window before the promised deadline, red once overdue, done
//! when every network finished. Supplement requests and special procedures
//! stop the clock until the network moves the case on.

use super::{CaseClock, CaseRecord, JobState, Light, Millis};
use chrono::{DateTime, Datelike, Duration, FixedOffset, Months, TimeZone, Weekday};
use yiwang_schema::{BEIJING, Stage, TimeLimitUnit};

/// The deadline before pauses: `start` plus the time limit. Working days
/// skip Saturdays and Sundays (public holidays are not modelled: the light
/// is then early, never late).
pub fn nominal_deadline(clock: &CaseClock) -> Millis {
    let Some(start) = BEIJING.timestamp_millis_opt(clock.start).single() else {
        return clock.start;
    };
    let n = clock.value;
    let end: DateTime<FixedOffset> = match clock.unit {
        TimeLimitUnit::CalendarDays => start + Duration::days(i64::from(n)),
        TimeLimitUnit::WorkingDays => {
            let mut d = start;
            let mut left = n;
            while left > 0 {
                d += Duration::days(1);
                if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                    left -= 1;
                }
            }
            d
        }
        TimeLimitUnit::Months => start.checked_add_months(Months::new(n)).unwrap_or(start),
        TimeLimitUnit::Years => start
            .checked_add_months(Months::new(n.saturating_mul(12)))
            .unwrap_or(start),
    };
    end.timestamp_millis()
}

/// Time during which the clock was stopped, up to `now`, merged across networks.
pub fn paused_ms(record: &CaseRecord, now: Millis) -> i64 {
    let mut intervals: Vec<(Millis, Millis)> = Vec::new();
    for net in record.networks.values() {
        let mut open: Option<Millis> = None;
        for e in &net.events {
            let at = e.at.timestamp_millis();
            match (open, e.stage) {
                (None, Stage::SupplementRequested | Stage::SpecialProcedureStarted) => {
                    open = Some(at)
                }
                (Some(_), Stage::SupplementRequested | Stage::SpecialProcedureStarted) => {}
                (Some(from), _) => {
                    intervals.push((from, at));
                    open = None;
                }
                (None, _) => {}
            }
        }
        if let Some(from) = open {
            intervals.push((from, now.max(from)));
        }
    }
    intervals.sort();
    let mut total = 0;
    let mut current: Option<(Millis, Millis)> = None;
    for (a, b) in intervals {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((a, b)) = current {
        total += b - a;
    }
    total
}

/// Whether the case is finished everywhere: every delivery to a network
/// done and every network at a final stage.
pub fn finished(record: &CaseRecord) -> bool {
    let mut networks = record.jobs.iter().filter_map(|j| match &j.destination {
        super::Destination::Network(n) => Some((n, j)),
        super::Destination::Subscriber(_) => None,
    });
    let mut any = false;
    let all = networks.all(|(n, j)| {
        any = true;
        matches!(j.state, JobState::Delivered { .. })
            && record.networks.get(n).is_some_and(|v| v.is_final())
    });
    any && all
}

/// The deadline and light at `now`.
pub fn evaluate(record: &CaseRecord, now: Millis) -> (Option<Millis>, Light) {
    let Some(clock) = &record.clock else {
        return (None, Light::Green);
    };
    let deadline = nominal_deadline(clock) + paused_ms(record, now);
    let light = if finished(record) {
        Light::Done
    } else if now > deadline {
        Light::Red
    } else if now > deadline - clock.yellow_ms {
        Light::Yellow
    } else {
        Light::Green
    };
    (Some(deadline), light)
}

/// When the stored light may next change (for the monitor's index).
pub fn next_check(record: &CaseRecord) -> Option<Millis> {
    let deadline = record.deadline?;
    let yellow = record.clock.as_ref()?.yellow_ms;
    match record.light {
        Light::Green => Some(deadline - yellow),
        Light::Yellow => Some(deadline + 1),
        Light::Red | Light::Done => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NetworkCase;
    use std::collections::BTreeMap;

    fn ms(s: &str) -> Millis {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn record(start: &str, value: u32, unit: TimeLimitUnit) -> CaseRecord {
        CaseRecord {
            case_number: "C".into(),
            item: "I".into(),
            case_json: "{}".into(),
            digest: String::new(),
            principal: "p".into(),
            bureau: String::new(),
            accepted_at: ms(start),
            updated_at: ms(start),
            next_job: 1,
            jobs: vec![],
            networks: BTreeMap::new(),
            changes: vec![],
            clock: Some(CaseClock {
                start: ms(start),
                value,
                unit,
                yellow_ms: 24 * 3600 * 1000,
            }),
            deadline: None,
            light: Light::Green,
        }
    }

    #[test]
    fn working_days_skip_the_weekend() {
        // Friday 2026-11-20 10:00 + 3 working days = Wednesday 2026-11-25 10:00.
        let r = record("2026-11-20T10:00:00+08:00", 3, TimeLimitUnit::WorkingDays);
        assert_eq!(
            nominal_deadline(r.clock.as_ref().unwrap()),
            ms("2026-11-25T10:00:00+08:00")
        );
    }

    #[test]
    fn the_light_goes_green_yellow_red() {
        let r = record("2026-11-20T10:00:00+08:00", 3, TimeLimitUnit::CalendarDays);
        assert_eq!(
            evaluate(&r, ms("2026-11-21T10:00:00+08:00")).1,
            Light::Green
        );
        assert_eq!(
            evaluate(&r, ms("2026-11-22T12:00:00+08:00")).1,
            Light::Yellow
        );
        assert_eq!(evaluate(&r, ms("2026-11-23T10:00:01+08:00")).1, Light::Red);
    }

    #[test]
    fn a_supplement_request_stops_the_clock() {
        let mut r = record("2026-11-20T10:00:00+08:00", 3, TimeLimitUnit::CalendarDays);
        let ev = |stage, at: &str| yiwang_schema::Event {
            case_number: None,
            network: "a".into(),
            network_case_number: "N".into(),
            stage,
            at: DateTime::parse_from_rfc3339(at).unwrap(),
            details: Default::default(),
            raw_ref: None,
        };
        r.networks.insert(
            "a".into(),
            NetworkCase {
                events: vec![
                    ev(Stage::SupplementRequested, "2026-11-21T10:00:00+08:00"),
                    ev(Stage::UnderReview, "2026-11-23T10:00:00+08:00"),
                ],
                ..Default::default()
            },
        );
        // Two days paused: the deadline moves from the 23rd to the 25th.
        let (deadline, light) = evaluate(&r, ms("2026-11-23T12:00:00+08:00"));
        assert_eq!(deadline, Some(ms("2026-11-25T10:00:00+08:00")));
        assert_eq!(light, Light::Green);
    }
}
