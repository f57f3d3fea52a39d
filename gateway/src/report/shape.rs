//! The double-entry report as the admin API answers it (and as the CLI, the
//! demo and the console read it): shapes only, so a renamed field fails to
//! compile in every reader instead of drifting.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the store's figures are grouped in time (by the case's acceptance,
/// Beijing time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// `2026-12-07`.
    #[default]
    Day,
    /// `2026-12`.
    Month,
    /// One row per bureau for the whole range (`total`).
    Total,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::Total => "total",
        }
    }
}

/// `GET /admin/reports/double-entry`: what staff no longer key twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DoubleEntryReport {
    /// Cases accepted at or after this time (RFC 3339, Beijing time).
    pub since: String,
    /// ... and before this time, if given.
    pub until: Option<String>,
    /// Only this bureau's cases (credit code), if given.
    pub bureau: Option<String>,
    pub period: Period,
    /// Per item: the fields each network of its route needs, from the
    /// field mappings its adapter declares, against the fields the unified
    /// case carries once.
    pub items: Vec<ItemFields>,
    /// From the store: per period and bureau, the keyings saved and the
    /// results that flowed back (periods oldest first, then by bureau).
    pub rows: Vec<KeyingRow>,
    /// The sum of `rows`.
    pub total: Keyings,
    /// Case records read from the store.
    pub cases_read: u64,
    /// The store held more cases in the range than one report reads
    /// ([`crate::report::MAX_CASES`]): the figures cover the most recently
    /// changed ones only; narrow the range.
    pub truncated: bool,
}

/// One item's route, field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemFields {
    pub item: String,
    pub networks: Vec<NetworkFields>,
    /// The unified fields (JSON pointers) the route's networks are filled
    /// from: keyed once, into the unified case. A pointer inside another
    /// one listed (`/form/business_scope` inside `/form`) is not listed; of
    /// a ministry field's alternative sources, only the first is.
    pub unified_fields: Vec<String>,
    /// Σ over the networks of `keyed`: the ministry fields staff keyed
    /// before, per case (a `[*]` field once, as for one material).
    pub keyed_into_networks: u64,
    /// Σ over the networks of their `inputs`: results staff copied from one
    /// network's answer into the next network's form.
    pub passed_along: u64,
    /// `unified_fields.len()`.
    pub keyed_once: u64,
    /// `keyed_into_networks + passed_along − keyed_once`.
    pub saved_per_case: i64,
}

/// What one network of a route needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkFields {
    pub network: String,
    /// Whether the adapter declares its field mappings. An adapter that
    /// declares none (or a network whose adapter is not loaded) counts for
    /// nothing, and `note` says why.
    pub declared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `name version` of the adapter whose declaration this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Each ministry field, with the unified fields it is filled from.
    pub fields: Vec<MinistryField>,
    /// Results of upstream networks this step receives (a chained route):
    /// fields staff keyed by hand from another network's answer.
    pub inputs: Vec<PassedInput>,
    /// `fields.len()`: the ministry fields staff keyed into this network
    /// (0 when not declared).
    pub keyed: u64,
}

/// One field of a ministry's form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MinistryField {
    /// As the ministry names it (`sqrmc`, `clxx[*].clmc`); `[*]` is once per
    /// element of a list (per material).
    pub ministry: String,
    /// JSON pointers into the unified case (several: alternatives).
    pub unified: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_table: Option<String>,
}

/// A chained route's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PassedInput {
    /// The input's name (`licence-number`).
    pub name: String,
    /// `<network>.<result field>` it is filled from.
    pub from: String,
}

/// The figures of one period and bureau.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyingRow {
    /// `2026-12-07`, `2026-12` or `total`.
    pub period: String,
    /// The bureau's credit code.
    pub bureau: String,
    #[serde(flatten)]
    pub keyings: Keyings,
}

/// Keyings saved and results flowed back, summed over cases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Keyings {
    pub cases: u64,
    /// Ministry fields the delivered submissions filled from the case (each
    /// material's fields once per material; absent optional fields not
    /// counted): what staff would have keyed into each network.
    pub keyed_into_networks: u64,
    /// The unified fields those were filled from: keyed once.
    pub keyed_once: u64,
    /// Upstream results handed to the next network of a chained route
    /// (a licence number to tax): keyed by hand before, by nobody now.
    pub passed_along: u64,
    /// `keyed_into_networks + passed_along − keyed_once`.
    pub keyings_saved: i64,
    /// Ministry case numbers that came back into the case record.
    pub ministry_case_numbers: u64,
    /// Stage changes (received, accepted, decided…) that came back.
    pub stage_changes: u64,
    pub decisions: u64,
    pub certificate_numbers: u64,
    /// The sum of the four above: what staff no longer copy back.
    pub results_flowed_back: u64,
    /// Deliveries not counted because their network's adapter declares no
    /// field mappings (or is not loaded).
    pub deliveries_not_counted: u64,
}

impl Keyings {
    /// Add another tally to this one.
    pub fn add(&mut self, other: &Keyings) {
        self.cases += other.cases;
        self.keyed_into_networks += other.keyed_into_networks;
        self.keyed_once += other.keyed_once;
        self.passed_along += other.passed_along;
        self.keyings_saved += other.keyings_saved;
        self.ministry_case_numbers += other.ministry_case_numbers;
        self.stage_changes += other.stage_changes;
        self.decisions += other.decisions;
        self.certificate_numbers += other.certificate_numbers;
        self.results_flowed_back += other.results_flowed_back;
        self.deliveries_not_counted += other.deliveries_not_counted;
    }
}
