//! The double-entry report (二次采录): what keying a case once saves.
//!
//! Before the gateway, bureau staff keyed each case again into every
//! ministry network's own form, and copied each ministry's answers (its case
//! number, stage, decision, certificate number) back by hand, and into the
//! next network of a chained route. This report measures what no longer
//! happens, from two sources only, so every figure can be traced:
//!
//! - what each network's adapter **declares** it fills from the unified
//!   case (`describe`'s `field-mappings`, see docs/adapter-contract.md) and
//!   the item routes of the configuration: per item, the fields each
//!   network needs against the fields the unified case carries once;
//! - the **case records** in the store: per period and bureau, the keyings
//!   saved (per case, the declared fields the case actually filled in each
//!   network it was delivered to) and the results that flowed back.
//!
//! Nothing is estimated: an adapter that declares no mappings is reported
//! as not declared and its deliveries as not counted. The arithmetic is
//! [`count`] (pure, unit-tested over hand-made records); this module reads
//! the declarations and the store; [`render`] prints it for people. The
//! admin API (`GET /admin/reports/double-entry`) answers [`DoubleEntryReport`],
//! which the CLI (`yiwang report double-entry`), the demo and the console read.

pub mod count;
pub mod render;
mod shape;

pub use count::{Declaration, Declarations, Row};
pub use shape::{
    DoubleEntryReport, ItemFields, KeyingRow, Keyings, MinistryField, NetworkFields, PassedInput,
    Period,
};

use crate::delivery::Delivery;
use crate::delivery::view::rfc3339;
use crate::runtime::Descriptor;
use crate::store::{CaseQuery, Millis, StoreError};
use std::collections::BTreeSet;

/// The most case records one report reads; more in the range sets
/// `truncated` (narrow the range or the bureau).
pub const MAX_CASES: usize = 20_000;

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleEntryQuery {
    /// Cases accepted at or after this time.
    pub since: Millis,
    /// ... and before this one.
    pub until: Option<Millis>,
    /// Only this bureau's cases (credit code).
    pub bureau: Option<String>,
    pub period: Period,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report could not read the store: {0}")]
    Store(#[from] StoreError),
    #[error("`until` ({until}) must be after `since` ({since})")]
    EmptyRange { since: String, until: String },
}

/// What each configured network's current adapter declares.
pub fn declarations(delivery: &Delivery) -> Declarations {
    delivery
        .networks
        .iter()
        .map(|(name, network)| {
            let current = network.versions.current();
            (
                name.clone(),
                declaration(current.as_ref().map(|a| a.descriptor())),
            )
        })
        .collect()
}

/// What an adapter's `describe` declares (none: no adapter is loaded).
pub fn declaration(descriptor: Option<&Descriptor>) -> Declaration {
    let Some(d) = descriptor else {
        return Declaration::NotLoaded;
    };
    let adapter = format!("{} {}", d.name, d.version);
    let rows: Vec<Row> = d
        .field_mappings
        .iter()
        .map(|m| Row {
            unified: m.unified.clone(),
            ministry: m.ministry.clone(),
            code_table: m.code_table.clone(),
        })
        .collect();
    if rows.is_empty() {
        Declaration::Empty { adapter }
    } else {
        Declaration::Declared { adapter, rows }
    }
}

/// The report over the cases accepted in the query's range.
pub async fn double_entry(
    delivery: &Delivery,
    query: &DoubleEntryQuery,
) -> Result<DoubleEntryReport, ReportError> {
    let time = |t: Millis| rfc3339(t).unwrap_or_else(|| t.to_string());
    if let Some(until) = query.until.filter(|u| *u <= query.since) {
        return Err(ReportError::EmptyRange {
            since: time(query.since),
            until: time(until),
        });
    }
    let declared = declarations(delivery);
    let items = delivery
        .routes()
        .iter()
        .map(|(item, route)| count::item_fields(item, route, &declared))
        .collect();
    // A case accepted in the range changed at or after its acceptance, so
    // searching by last change from `since` finds every one of them.
    let search = CaseQuery {
        since: Some(query.since),
        bureaus: query.bureau.as_ref().map(|b| BTreeSet::from([b.clone()])),
        limit: MAX_CASES + 1,
        ..CaseQuery::default()
    };
    let mut records = delivery.store.search(&search).await?;
    let truncated = records.len() > MAX_CASES;
    records.truncate(MAX_CASES);
    let (rows, total) = count::tally(
        &records,
        &declared,
        (query.since, query.until),
        query.bureau.as_deref(),
        query.period,
    );
    Ok(DoubleEntryReport {
        since: time(query.since),
        until: query.until.map(time),
        bureau: query.bureau.clone(),
        period: query.period,
        items,
        rows,
        total,
        cases_read: records.len() as u64,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FieldMapping;

    fn descriptor(field_mappings: Vec<FieldMapping>) -> Descriptor {
        Descriptor {
            name: "tax".into(),
            version: "0.1.0".into(),
            network_kind: "signed-open-api".into(),
            items: Vec::new(),
            contract_version: "1.0.0".into(),
            field_mappings,
        }
    }

    #[test]
    fn an_adapter_without_mappings_is_loaded_but_not_declared() {
        assert_eq!(declaration(None), Declaration::NotLoaded);
        assert_eq!(
            declaration(Some(&descriptor(Vec::new()))),
            Declaration::Empty {
                adapter: "tax 0.1.0".into()
            }
        );
        let mapping = FieldMapping {
            unified: "/applicant/name".into(),
            ministry: "nsrmc".into(),
            code_table: None,
            note: Some("dropped: the report does not read notes".into()),
        };
        assert_eq!(
            declaration(Some(&descriptor(vec![mapping]))),
            Declaration::Declared {
                adapter: "tax 0.1.0".into(),
                rows: vec![Row {
                    unified: "/applicant/name".into(),
                    ministry: "nsrmc".into(),
                    code_table: None,
                }],
            }
        );
    }
}
