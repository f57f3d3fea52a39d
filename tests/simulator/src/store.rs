//! One network's in-memory case store: cases, their status history, and the change log.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::time;

/// One case as the ministry network holds it (what `GET /_sim/cases` lists).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimCase {
    /// The number this network gave the case (`bjbh` / `ywh`).
    pub ministry_case_number: String,
    /// The gateway's idempotency key (`ywlsh` / `lsh`).
    pub idempotency_key: String,
    /// The bureau's unified case number (`bjbh_tyjg` / `tybh`), if sent.
    pub unified_case_number: Option<String>,
    /// The fields of the first accepted submit, as parsed from the wire. SOAP fields are
    /// strings, `cls` an array of objects; an inline material (`nr`) is kept as
    /// `{"bytes": n, "sha256": hex}` rather than its content.
    pub fields: Map<String, Value>,
    /// Current status code, in this archetype's code set.
    pub status: String,
    /// Name of the current status (`ztmc`).
    pub status_name: String,
    /// Every status the case has had, oldest first.
    pub history: Vec<StatusEntry>,
    /// Outcome text: `bljg` (archetype 1) or `yj` (archetype 2).
    pub result: Option<String>,
    /// Licence / certificate number (`zzbh` / `zsbh`), once issued.
    pub certificate_number: Option<String>,
    /// When the case was received (Beijing time).
    pub received_at: DateTime<FixedOffset>,
    /// How many submits carried this idempotency key (1 = delivered exactly once).
    pub submissions: u32,
    /// Materials added later by supplement requests, in arrival order.
    pub supplements: Vec<Value>,
    /// How many status lookups asked about this case (archetype 6 counts them).
    pub lookups: u32,
}

/// One status change of a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEntry {
    pub code: String,
    pub name: String,
    pub at: DateTime<FixedOffset>,
    /// Reason given with a withdrawal or a control-API status change.
    pub note: Option<String>,
}

/// The status codes of one archetype and how a case moves through them.
#[derive(Debug)]
pub(crate) struct StatusModel {
    /// Every code with its name (`ztmc`).
    pub codes: &'static [(&'static str, &'static str)],
    pub initial: &'static str,
    /// Successor of each code for `advance`; a code with none is terminal.
    pub transitions: &'static [(&'static str, &'static str)],
    /// Codes where the clock stops: only `advance` or an applicant action moves them on.
    pub paused: &'static [&'static str],
    pub withdrawn: &'static str,
    /// Codes that set the outcome text, with the text used when no reason is given.
    pub results: &'static [(&'static str, &'static str)],
    /// The code at which a certificate number is issued.
    pub certificate_at: &'static str,
    pub certificate_number: fn(prefix: &str, seq: u64, at: &DateTime<FixedOffset>) -> String,
}

impl StatusModel {
    pub fn name(&self, code: &str) -> Option<&'static str> {
        self.codes.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
    }

    fn code(&self, code: &str) -> Option<&'static str> {
        self.codes.iter().find(|(c, _)| *c == code).map(|(c, _)| *c)
    }

    pub fn next(&self, code: &str) -> Option<&'static str> {
        self.transitions
            .iter()
            .find(|(from, _)| *from == code)
            .map(|(_, to)| *to)
    }

    pub fn is_terminal(&self, code: &str) -> bool {
        self.next(code).is_none()
    }

    fn auto_next(&self, code: &str) -> Option<&'static str> {
        if self.paused.contains(&code) {
            None
        } else {
            self.next(code)
        }
    }
}

/// One change in the order it happened, for the incremental poll.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub seq: u64,
    pub ministry_case_number: String,
    pub idempotency_key: String,
    pub entry: StatusEntry,
    pub result: Option<String>,
    pub certificate_number: Option<String>,
}

struct Slot {
    case: SimCase,
    due: Option<Instant>,
}

pub(crate) struct Store {
    model: &'static StatusModel,
    prefix: String,
    stage_interval: Duration,
    slots: Vec<Slot>,
    by_number: HashMap<String, usize>,
    by_key: HashMap<String, usize>,
    /// Automatic advances, soonest first; stale entries are skipped when popped.
    schedule: BinaryHeap<Reverse<(Instant, usize)>>,
    changes: Vec<Change>,
    // Numbers keep rising across `clear` so a number is never reused within a run.
    case_seq: u64,
    cert_seq: u64,
    change_seq: u64,
    /// Every newly stored case, as it is stored (for benchmarks that wait
    /// for each case to arrive).
    arrivals: tokio::sync::broadcast::Sender<Arrival>,
}

/// A case the network has just stored.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub unified_case_number: Option<String>,
    pub idempotency_key: String,
    pub received_at: DateTime<FixedOffset>,
}

impl Store {
    pub fn new(model: &'static StatusModel, prefix: String, stage_interval: Duration) -> Self {
        Self {
            model,
            prefix,
            stage_interval,
            slots: Vec::new(),
            by_number: HashMap::new(),
            by_key: HashMap::new(),
            schedule: BinaryHeap::new(),
            changes: Vec::new(),
            case_seq: 0,
            cert_seq: 0,
            change_seq: 0,
            arrivals: tokio::sync::broadcast::channel(1 << 16).0,
        }
    }

    pub fn model(&self) -> &'static StatusModel {
        self.model
    }

    /// Store a new case, or count a repeat of a known idempotency key.
    /// Returns the case and whether it was created.
    pub fn submit(
        &mut self,
        key: &str,
        unified: Option<String>,
        fields: Map<String, Value>,
        now: Instant,
    ) -> (SimCase, bool) {
        if let Some(&idx) = self.by_key.get(key) {
            let case = &mut self.slots[idx].case;
            case.submissions += 1;
            return (case.clone(), false);
        }
        let at = time::now();
        self.case_seq += 1;
        let number = format!("{}{}{:06}", self.prefix, time::day(&at), self.case_seq);
        let initial = self.model.initial;
        let case = SimCase {
            ministry_case_number: number.clone(),
            idempotency_key: key.to_owned(),
            unified_case_number: unified,
            fields,
            status: String::new(),
            status_name: String::new(),
            history: Vec::new(),
            result: None,
            certificate_number: None,
            received_at: at,
            submissions: 1,
            supplements: Vec::new(),
            lookups: 0,
        };
        let idx = self.slots.len();
        self.slots.push(Slot { case, due: None });
        self.by_number.insert(number, idx);
        self.by_key.insert(key.to_owned(), idx);
        self.apply_status(idx, initial, None, at, now);
        let case = self.slots[idx].case.clone();
        // Nobody listening is the normal case.
        let _ = self.arrivals.send(Arrival {
            unified_case_number: case.unified_case_number.clone(),
            idempotency_key: case.idempotency_key.clone(),
            received_at: case.received_at,
        });
        (case, true)
    }

    pub fn index_of_number(&self, number: &str) -> Option<usize> {
        self.by_number.get(number).copied()
    }

    pub fn index_of_key(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    pub fn case(&self, idx: usize) -> Option<&SimCase> {
        self.slots.get(idx).map(|s| &s.case)
    }

    pub fn case_by_number(&self, number: &str) -> Option<&SimCase> {
        self.index_of_number(number).and_then(|i| self.case(i))
    }

    /// New cases from now on.
    pub fn arrivals(&self) -> tokio::sync::broadcast::Receiver<Arrival> {
        self.arrivals.subscribe()
    }

    /// How many cases are stored.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    pub fn snapshot(&self) -> Vec<SimCase> {
        self.slots.iter().map(|s| s.case.clone()).collect()
    }

    /// Move a case to `code` (any code in the table). Returns false for an unknown code.
    pub fn set_status(
        &mut self,
        idx: usize,
        code: &str,
        note: Option<String>,
        now: Instant,
    ) -> bool {
        match self.model.code(code) {
            Some(code) if idx < self.slots.len() => {
                self.apply_status(idx, code, note, time::now(), now);
                true
            }
            _ => false,
        }
    }

    /// Move a case one step along its path; `None` at a terminal status.
    pub fn advance(&mut self, idx: usize, now: Instant) -> Option<String> {
        let current = &self.slots.get(idx)?.case.status;
        let next = self.model.next(current)?;
        self.apply_status(idx, next, None, time::now(), now);
        Some(next.to_owned())
    }

    pub fn record_lookup(&mut self, idx: usize) {
        if let Some(slot) = self.slots.get_mut(idx) {
            slot.case.lookups += 1;
        }
    }

    pub fn record_supplement(&mut self, idx: usize, materials: Value) {
        if let Some(slot) = self.slots.get_mut(idx) {
            slot.case.supplements.push(materials);
        }
    }

    /// Soonest pending automatic advance.
    pub fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, idx))) = self.schedule.peek().copied() {
            if self.slots.get(idx).and_then(|s| s.due) == Some(at) {
                return Some(at);
            }
            self.schedule.pop();
        }
        None
    }

    /// Apply every automatic advance due by `now`; returns how many happened.
    pub fn advance_due(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        while let Some(Reverse((at, idx))) = self.schedule.peek().copied() {
            if at > now {
                break;
            }
            self.schedule.pop();
            let Some(slot) = self.slots.get(idx) else {
                continue;
            };
            if slot.due != Some(at) {
                continue;
            }
            match self.model.auto_next(&slot.case.status) {
                Some(next) => {
                    self.apply_status(idx, next, None, time::now(), now);
                    moved += 1;
                }
                None => self.slots[idx].due = None,
            }
        }
        moved
    }

    /// Changes with a sequence number above `after`, at most `limit`, and whether more remain.
    pub fn changes_after(&self, after: u64, limit: usize) -> (&[Change], bool) {
        let start = self.changes.partition_point(|c| c.seq <= after);
        let rest = &self.changes[start..];
        let take = rest.len().min(limit);
        (&rest[..take], rest.len() > take)
    }

    /// Forget every case and change (numbers keep rising).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.by_number.clear();
        self.by_key.clear();
        self.schedule.clear();
        self.changes.clear();
    }

    fn apply_status(
        &mut self,
        idx: usize,
        code: &'static str,
        note: Option<String>,
        at: DateTime<FixedOffset>,
        now: Instant,
    ) {
        let model = self.model;
        let name = model.name(code).unwrap_or_default();
        if code == model.certificate_at && self.slots[idx].case.certificate_number.is_none() {
            self.cert_seq += 1;
            let number = (model.certificate_number)(&self.prefix, self.cert_seq, &at);
            self.slots[idx].case.certificate_number = Some(number);
        }
        let slot = &mut self.slots[idx];
        let case = &mut slot.case;
        if let Some((_, default)) = model.results.iter().find(|(c, _)| *c == code) {
            case.result = Some(note.clone().unwrap_or_else(|| (*default).to_owned()));
        }
        case.status = code.to_owned();
        case.status_name = name.to_owned();
        let entry = StatusEntry {
            code: code.to_owned(),
            name: name.to_owned(),
            at,
            note,
        };
        case.history.push(entry.clone());
        slot.due = if self.stage_interval.is_zero() || model.auto_next(code).is_none() {
            None
        } else {
            Some(now + self.stage_interval)
        };
        if let Some(due) = slot.due {
            self.schedule.push(Reverse((due, idx)));
        }
        self.change_seq += 1;
        self.changes.push(Change {
            seq: self.change_seq,
            ministry_case_number: case.ministry_case_number.clone(),
            idempotency_key: case.idempotency_key.clone(),
            entry,
            result: case.result.clone(),
            certificate_number: case.certificate_number.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MODEL: StatusModel = StatusModel {
        codes: &[("1", "a"), ("2", "b"), ("3", "c"), ("9", "paused")],
        initial: "1",
        transitions: &[("1", "2"), ("2", "3"), ("9", "2")],
        paused: &["9"],
        withdrawn: "3",
        results: &[("3", "ok")],
        certificate_at: "3",
        certificate_number: |p, seq, _| format!("{p}C{seq}"),
    };

    fn store(interval_ms: u64) -> Store {
        Store::new(&MODEL, "T".into(), Duration::from_millis(interval_ms))
    }

    #[test]
    fn same_key_is_one_case() {
        let mut s = store(0);
        let now = Instant::now();
        let (a, created_a) = s.submit("k1", None, Map::new(), now);
        let (b, created_b) = s.submit("k1", None, Map::new(), now);
        assert!(created_a && !created_b);
        assert_eq!(a.ministry_case_number, b.ministry_case_number);
        assert_eq!(b.submissions, 2);
        assert_eq!(s.snapshot().len(), 1);
    }

    #[test]
    fn automatic_advance_follows_the_path_and_stops() {
        let mut s = store(10);
        let t0 = Instant::now();
        let (case, _) = s.submit("k", None, Map::new(), t0);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(s.advance_due(t0 + Duration::from_millis(5)), 0);
        assert_eq!(s.advance_due(t0 + Duration::from_millis(10)), 1);
        assert_eq!(s.advance_due(t0 + Duration::from_millis(20)), 1);
        assert_eq!(s.next_due(), None);
        let done = s.case_by_number(&case.ministry_case_number).cloned();
        let done = done.map(|c| (c.status, c.result, c.certificate_number));
        assert_eq!(
            done,
            Some(("3".into(), Some("ok".into()), Some("TC1".into())))
        );
    }

    #[test]
    fn paused_status_waits_for_manual_advance() {
        let mut s = store(10);
        let t0 = Instant::now();
        s.submit("k", None, Map::new(), t0);
        assert!(s.set_status(0, "9", Some("why".into()), t0));
        assert_eq!(s.next_due(), None);
        assert_eq!(s.advance(0, t0).as_deref(), Some("2"));
        assert!(s.next_due().is_some());
        assert!(!s.set_status(0, "77", None, t0));
    }

    #[test]
    fn changes_page_by_sequence() {
        let mut s = store(0);
        let now = Instant::now();
        s.submit("a", None, Map::new(), now);
        s.submit("b", None, Map::new(), now);
        s.advance(0, now);
        let (page, more) = s.changes_after(0, 2);
        assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(more);
        let (page, more) = s.changes_after(2, 10);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].entry.code, "2");
        assert!(!more);
    }
}
