//! The double-entry arithmetic, as pure functions of what the adapters
//! declare, the routes and the case records (no store, no clock), so every
//! figure the report shows can be checked by hand against a record.
//!
//! Why these rules:
//! - A ministry field counts once per case (per material for `[*]` fields)
//!   when the unified field it is filled from is present in the case: an
//!   absent optional field was keyed by nobody, before or now. Two rows for
//!   one ministry field (tax's `scjydz` from the registered address, else the
//!   contact address) are one field, filled from the first of them present
//!   in the case; in the per-item listing, its first row is its source.
//! - Only delivered submissions count: a network the case never reached
//!   saved nobody anything.
//! - A unified field counts once per case however many networks read it;
//!   one inside another counted field (`/form/business_scope` inside
//!   `/form`) is part of it. Counting the enclosing object as one field
//!   under-counts the savings rather than over-counting them.
//! - A row's condition written in its note ("when id_type is 001") is not
//!   evaluated: the row counts whenever its unified field is present.
//! - A network whose adapter declares no mappings counts for nothing and is
//!   reported as not counted, never guessed.

use super::shape::{
    ItemFields, KeyingRow, Keyings, MinistryField, NetworkFields, PassedInput, Period,
};
use crate::delivery::RouteStep;
use crate::store::{CaseRecord, Destination, JobKind, JobState, Millis};
use chrono::TimeZone;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One declared row: which unified field fills which ministry field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// JSON pointer into the unified case; `*` stands for every element.
    pub unified: String,
    pub ministry: String,
    pub code_table: Option<String>,
}

/// What a network's adapter declares about its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declaration {
    /// `adapter` is `name version` as its `describe` says.
    Declared { adapter: String, rows: Vec<Row> },
    /// The adapter is loaded and declares no field mappings.
    Empty { adapter: String },
    /// No adapter is loaded for the network (it is down).
    NotLoaded,
}

/// Declarations by network name.
pub type Declarations = BTreeMap<String, Declaration>;

/// One item's route, field by field, from the declarations.
pub fn item_fields(item: &str, route: &[RouteStep], declared: &Declarations) -> ItemFields {
    let mut unified = BTreeSet::new();
    let networks: Vec<NetworkFields> = route
        .iter()
        .map(|step| {
            let inputs = step
                .inputs
                .iter()
                .map(|(name, from)| PassedInput {
                    name: name.clone(),
                    from: from.clone(),
                })
                .collect();
            let mut n = NetworkFields {
                network: step.network.clone(),
                declared: false,
                note: None,
                adapter: None,
                fields: Vec::new(),
                inputs,
                keyed: 0,
            };
            match declared.get(&step.network) {
                Some(Declaration::Declared { adapter, rows }) => {
                    n.declared = true;
                    n.adapter = Some(adapter.clone());
                    n.fields = ministry_fields(rows);
                    n.keyed = n.fields.len() as u64;
                    // A field's first source; the others stand in when it is absent.
                    unified.extend(n.fields.iter().filter_map(|f| f.unified.first().cloned()));
                }
                Some(Declaration::Empty { adapter }) => {
                    n.adapter = Some(adapter.clone());
                    n.note = Some("not declared: the adapter declares no field mappings".into());
                }
                Some(Declaration::NotLoaded) | None => {
                    n.note = Some("not declared: no adapter is loaded for this network".into());
                }
            }
            n
        })
        .collect();
    let unified_fields = outermost(&unified);
    let keyed_into_networks: u64 = networks.iter().map(|n| n.keyed).sum();
    let passed_along: u64 = networks
        .iter()
        .filter(|n| n.declared)
        .map(|n| n.inputs.len() as u64)
        .sum();
    let keyed_once = unified_fields.len() as u64;
    ItemFields {
        item: item.to_string(),
        networks,
        unified_fields,
        keyed_into_networks,
        passed_along,
        keyed_once,
        saved_per_case: saved(keyed_into_networks, passed_along, keyed_once),
    }
}

/// The declared rows grouped by ministry field, in declaration order.
fn ministry_fields(rows: &[Row]) -> Vec<MinistryField> {
    let mut fields: Vec<MinistryField> = Vec::new();
    for row in rows {
        match fields.iter_mut().find(|f| f.ministry == row.ministry) {
            Some(f) => {
                if !f.unified.contains(&row.unified) {
                    f.unified.push(row.unified.clone());
                }
                if f.code_table.is_none() {
                    f.code_table.clone_from(&row.code_table);
                }
            }
            None => fields.push(MinistryField {
                ministry: row.ministry.clone(),
                unified: vec![row.unified.clone()],
                code_table: row.code_table.clone(),
            }),
        }
    }
    fields
}

fn saved(keyed: u64, passed: u64, once: u64) -> i64 {
    let before = i64::try_from(keyed.saturating_add(passed)).unwrap_or(i64::MAX);
    before - i64::try_from(once).unwrap_or(i64::MAX)
}

/// One case's figures.
pub fn case_keyings(record: &CaseRecord, declared: &Declarations) -> Keyings {
    let mut k = Keyings {
        cases: 1,
        ..Keyings::default()
    };
    let case: Option<Value> = serde_json::from_str(&record.case_json).ok();
    let mut unified = BTreeSet::new();
    for job in &record.jobs {
        let (Destination::Network(network), JobKind::Submit { inputs, .. }) =
            (&job.destination, &job.kind)
        else {
            continue;
        };
        if !matches!(job.state, JobState::Delivered { .. }) {
            continue;
        }
        match (declared.get(network), &case) {
            (Some(Declaration::Declared { rows, .. }), Some(case)) => {
                let mut keyed = BTreeSet::new();
                // Rows for one ministry field are alternatives: the first
                // present one is its source.
                let mut filled: BTreeSet<&str> = BTreeSet::new();
                for row in rows {
                    if filled.contains(row.ministry.as_str()) {
                        continue;
                    }
                    for (indexes, pointer) in resolve(case, &row.unified) {
                        keyed.insert(concrete_ministry(&row.ministry, &indexes));
                        unified.insert(pointer);
                        filled.insert(&row.ministry);
                    }
                }
                k.keyed_into_networks += keyed.len() as u64;
                k.passed_along += inputs.len() as u64;
            }
            _ => k.deliveries_not_counted += 1,
        }
    }
    k.keyed_once = outermost(&unified).len() as u64;
    k.keyings_saved = saved(k.keyed_into_networks, k.passed_along, k.keyed_once);
    for n in record.networks.values() {
        k.ministry_case_numbers += u64::from(n.network_case_number.is_some());
        k.stage_changes += n.events.len() as u64;
        k.decisions += u64::from(n.decision.is_some());
        k.certificate_numbers += u64::from(n.certificate_number.is_some());
    }
    k.results_flowed_back =
        k.ministry_case_numbers + k.stage_changes + k.decisions + k.certificate_numbers;
    k
}

/// The cases accepted in `[since, until)` (and of `bureau`, if given),
/// summed per period and bureau; and the total.
pub fn tally<'a>(
    records: impl IntoIterator<Item = &'a CaseRecord>,
    declared: &Declarations,
    range: (Millis, Option<Millis>),
    bureau: Option<&str>,
    period: Period,
) -> (Vec<KeyingRow>, Keyings) {
    let (since, until) = range;
    let mut rows: BTreeMap<(String, String), Keyings> = BTreeMap::new();
    let mut total = Keyings::default();
    for r in records {
        let in_range = r.accepted_at >= since && until.is_none_or(|u| r.accepted_at < u);
        if !in_range || bureau.is_some_and(|b| b != r.bureau) {
            continue;
        }
        let k = case_keyings(r, declared);
        total.add(&k);
        rows.entry((period_key(r.accepted_at, period), r.bureau.clone()))
            .or_default()
            .add(&k);
    }
    let rows = rows
        .into_iter()
        .map(|((period, bureau), keyings)| KeyingRow {
            period,
            bureau,
            keyings,
        })
        .collect();
    (rows, total)
}

/// The period a time falls in, in Beijing time.
pub fn period_key(at: Millis, period: Period) -> String {
    let Some(t) = yiwang_schema::BEIJING.timestamp_millis_opt(at).single() else {
        return "out-of-range".into();
    };
    match period {
        Period::Day => t.format("%Y-%m-%d").to_string(),
        Period::Month => t.format("%Y-%m").to_string(),
        Period::Total => "total".into(),
    }
}

/// Every value a pointer with `*` segments reaches in `case` that is
/// present (not null, not an empty string, list or object): the element
/// indexes `*` took and the concrete pointer.
fn resolve(case: &Value, pointer: &str) -> Vec<(Vec<usize>, String)> {
    let mut found: Vec<(Vec<usize>, String, &Value)> = vec![(Vec::new(), String::new(), case)];
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        let mut next = Vec::new();
        for (indexes, path, value) in found {
            match (segment.as_str(), value) {
                ("*", Value::Array(list)) => {
                    for (i, element) in list.iter().enumerate() {
                        let mut indexes = indexes.clone();
                        indexes.push(i);
                        next.push((indexes, format!("{path}/{i}"), element));
                    }
                }
                (_, Value::Object(map)) => {
                    if let Some(v) = map.get(&segment) {
                        next.push((indexes, format!("{path}/{raw}"), v));
                    }
                }
                (_, Value::Array(list)) => {
                    if let Some(v) = segment.parse::<usize>().ok().and_then(|i| list.get(i)) {
                        next.push((indexes, format!("{path}/{raw}"), v));
                    }
                }
                _ => {}
            }
        }
        found = next;
    }
    found
        .into_iter()
        .filter(|(_, _, v)| present(v))
        .map(|(indexes, path, _)| (indexes, path))
        .collect()
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// The ministry field for these element indexes: each `[*]` takes the next
/// index; indexes left over (a list field the ministry names without `[*]`,
/// like `cls/cl/mc`) are appended, so each material is its own field.
fn concrete_ministry(ministry: &str, indexes: &[usize]) -> String {
    let mut out = String::new();
    let mut rest = ministry;
    let mut left = indexes.iter();
    while let Some((before, after)) = rest.split_once("[*]") {
        out.push_str(before);
        match left.next() {
            Some(i) => out.push_str(&format!("[{i}]")),
            None => out.push_str("[*]"),
        }
        rest = after;
    }
    out.push_str(rest);
    for i in left {
        out.push_str(&format!("[{i}]"));
    }
    out
}

/// The pointers not inside another one of the set.
fn outermost(pointers: &BTreeSet<String>) -> Vec<String> {
    pointers
        .iter()
        .filter(|p| {
            !pointers.iter().any(|q| {
                q != *p
                    && p.strip_prefix(q.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
        })
        .cloned()
        .collect()
}

#[cfg(test)]
#[path = "count_tests.rs"]
mod tests;
