//! Code-table mapping between unified codes and a ministry's codes, with an explicit per-table policy for unknown codes.
//!
//! Every table states, for each direction, what happens to a code it does not list:
//! [`Unknown::Reject`], [`Unknown::Default`] or [`Unknown::PassThrough`]. There is no implicit
//! behaviour: a vendor code silently passed through, or silently turned into "other", is a
//! wrong record in a licensing system, so the choice is written down where the table is.

use std::fmt;

use thiserror::Error;
use yiwang_schema::{Decision, Stage};

/// What a table does with a code it does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Fail with [`UnknownCode`], which names the table, the code and the allowed codes.
    Reject,
    /// Map to this code (a code of the *target* side of the lookup).
    Default(&'static str),
    /// Return the input unchanged (for tables where both sides share a vocabulary and the
    /// vendor is known to accept codes the table does not list).
    PassThrough,
}

/// Which way a lookup went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Unified code → ministry code.
    ToMinistry,
    /// Ministry code → unified code.
    ToUnified,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ToMinistry => "unified",
            Direction::ToUnified => "ministry",
        })
    }
}

/// A code a table does not list, under [`Unknown::Reject`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown {direction} code {code:?} in code table {table:?} (allowed: {})",
    allowed.join(", ")
)]
pub struct UnknownCode {
    /// The table's name.
    pub table: &'static str,
    /// The code as received.
    pub code: String,
    /// The side the code was looked up on ([`Direction::ToMinistry`] means `code` is a
    /// unified code).
    pub direction: Direction,
    /// The codes the table accepts on that side, in table order, without duplicates.
    pub allowed: Vec<&'static str>,
}

/// One row: (unified code, ministry code, label).
pub type CodeRow = (&'static str, &'static str, &'static str);

/// A named table mapping unified codes to one ministry's codes and back.
///
/// Lookups are exact (no trimming, case-sensitive). Several unified codes may map to one
/// ministry code; the reverse lookup then returns the **first** row with that ministry code,
/// so put the canonical row first.
///
/// ```
/// use yiwang_adapter_sdk::codes::{CodeTable, Unknown};
/// static GENDER: CodeTable = CodeTable::new(
///     "gender_mf",
///     &[("1", "M", "男"), ("2", "F", "女")],
///     Unknown::Reject,
///     Unknown::Default("9"),
/// );
/// assert_eq!(GENDER.to_ministry("2").unwrap(), "F");
/// assert_eq!(GENDER.to_unified("X").unwrap(), "9");
/// assert!(GENDER.to_ministry("3").unwrap_err().to_string().contains("gender_mf"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeTable {
    name: &'static str,
    rows: &'static [CodeRow],
    unknown_unified: Unknown,
    unknown_ministry: Unknown,
}

impl CodeTable {
    /// A table called `name` (used in errors and audit) with its rows and the policy for
    /// unknown codes in each direction: `unknown_unified` applies in [`to_ministry`]
    /// (an unlisted unified code), `unknown_ministry` in [`to_unified`].
    ///
    /// [`to_ministry`]: CodeTable::to_ministry
    /// [`to_unified`]: CodeTable::to_unified
    pub const fn new(
        name: &'static str,
        rows: &'static [CodeRow],
        unknown_unified: Unknown,
        unknown_ministry: Unknown,
    ) -> Self {
        CodeTable {
            name,
            rows,
            unknown_unified,
            unknown_ministry,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The rows: (unified code, ministry code, label).
    pub fn rows(&self) -> &'static [CodeRow] {
        self.rows
    }

    /// The policy for an unlisted unified code (used by [`CodeTable::to_ministry`]).
    pub fn unknown_unified(&self) -> Unknown {
        self.unknown_unified
    }

    /// The policy for an unlisted ministry code (used by [`CodeTable::to_unified`]).
    pub fn unknown_ministry(&self) -> Unknown {
        self.unknown_ministry
    }

    /// Maps a unified code to the ministry's code, applying the table's policy if unlisted.
    pub fn to_ministry<'a>(&self, unified: &'a str) -> Result<&'a str, UnknownCode> {
        match self.rows.iter().find(|(u, _, _)| *u == unified) {
            Some((_, ministry, _)) => Ok(ministry),
            None => self.unknown(unified, Direction::ToMinistry),
        }
    }

    /// Maps a ministry code to the unified code, applying the table's policy if unlisted.
    pub fn to_unified<'a>(&self, ministry: &'a str) -> Result<&'a str, UnknownCode> {
        match self.rows.iter().find(|(_, m, _)| *m == ministry) {
            Some((unified, _, _)) => Ok(unified),
            None => self.unknown(ministry, Direction::ToUnified),
        }
    }

    /// The label of a listed unified code.
    pub fn label(&self, unified: &str) -> Option<&'static str> {
        self.rows
            .iter()
            .find(|(u, _, _)| *u == unified)
            .map(|(_, _, label)| *label)
    }

    /// The codes accepted on one side, in table order, without duplicates.
    pub fn allowed(&self, direction: Direction) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::with_capacity(self.rows.len());
        for (u, m, _) in self.rows {
            let code = match direction {
                Direction::ToMinistry => *u,
                Direction::ToUnified => *m,
            };
            if !out.contains(&code) {
                out.push(code);
            }
        }
        out
    }

    fn unknown<'a>(&self, code: &'a str, direction: Direction) -> Result<&'a str, UnknownCode> {
        let policy = match direction {
            Direction::ToMinistry => self.unknown_unified,
            Direction::ToUnified => self.unknown_ministry,
        };
        match policy {
            Unknown::Reject => Err(UnknownCode {
                table: self.name,
                code: code.to_owned(),
                direction,
                allowed: self.allowed(direction),
            }),
            Unknown::Default(default) => Ok(default),
            Unknown::PassThrough => Ok(code),
        }
    }
}

static ID_TYPE_SET_B: CodeTable = CodeTable::new(
    "id_type_set_b",
    &[
        // Set B is the vendor's own vocabulary: identity, and listed first so the reverse
        // lookup returns the set-B code itself.
        ("001", "001", "统一社会信用代码"),
        ("099", "099", "其他法人证件"),
        ("516", "516", "港澳居民来往内地通行证"),
        ("999", "999", "其他自然人证件"),
        // Set A is for natural persons; set B has no resident-ID, household-register,
        // passport or mainland-permit code, so each becomes 999 其他自然人证件 (the ID number
        // still tells them apart). 513 往来港澳通行证 (a mainland resident's permit to go to
        // HK/Macau) is NOT 516 (an HK/Macau resident's permit to come to the mainland):
        // different holders, different document, so it is 999 as well.
        ("111", "999", "居民身份证"),
        ("113", "999", "户口簿"),
        ("414", "999", "普通护照"),
        ("513", "999", "往来港澳通行证"),
        ("990", "999", "其他"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// ID document types for a vendor that only knows code set B (001, 099, 516, 999).
///
/// Set-B codes map to themselves; every set-A code (111 居民身份证, 113 户口簿, 414 普通护照,
/// 513 往来港澳通行证, 990 其他) maps to `999` 其他自然人证件, because set B has no finer code for
/// natural persons. `513` deliberately does not map to `516`: they are different permits held
/// by different people. The mapping is lossy, so the reverse lookup of `999` gives `999`,
/// never `111`. Unknown codes are rejected in both directions: an unlisted unified code is a
/// schema bug, an unlisted vendor code a contract change to look at.
///
/// ```
/// use yiwang_adapter_sdk::codes::id_type_set_b;
/// assert_eq!(id_type_set_b().to_ministry("111").unwrap(), "999");
/// assert_eq!(id_type_set_b().to_ministry("001").unwrap(), "001");
/// assert_eq!(id_type_set_b().to_unified("999").unwrap(), "999");
/// ```
pub fn id_type_set_b() -> &'static CodeTable {
    &ID_TYPE_SET_B
}

static APPLICANT_KIND_012: CodeTable = CodeTable::new(
    "applicant_kind_012",
    &[
        ("natural_person", "0", "自然人"),
        ("enterprise", "1", "企业法人"),
        ("other_organization", "2", "其他组织"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// Applicant kind (the unified `PartyKind` names) for interfaces that write it as
/// `0` natural person / `1` enterprise / `2` other organisation. Rejects unknown values both
/// ways.
///
/// ```
/// use yiwang_adapter_sdk::codes::applicant_kind_012;
/// assert_eq!(applicant_kind_012().to_ministry("enterprise").unwrap(), "1");
/// assert_eq!(applicant_kind_012().to_unified("0").unwrap(), "natural_person");
/// ```
pub fn applicant_kind_012() -> &'static CodeTable {
    &APPLICANT_KIND_012
}

/// One vendor status code and the unified stage (and decision) it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRow {
    /// The vendor's status code, e.g. `"3"`.
    pub code: &'static str,
    /// The unified stage.
    pub stage: Stage,
    /// The decision, when the code implies one (e.g. "办结(通过)" → approved).
    pub decision: Option<Decision>,
    /// The vendor's label, e.g. `"已受理"`.
    pub label: &'static str,
}

impl StatusRow {
    /// A row; `const` so tables can be `static`.
    pub const fn new(
        code: &'static str,
        stage: Stage,
        decision: Option<Decision>,
        label: &'static str,
    ) -> Self {
        StatusRow {
            code,
            stage,
            decision,
            label,
        }
    }
}

/// What a [`StatusTable`] does with a status code it does not list.
///
/// There is no pass-through: a stage is a closed vocabulary, and the vendor's raw code is
/// kept anyway (in the event's `raw_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownStatus {
    /// Fail with [`UnknownCode`] naming the table, the code and the listed codes.
    Reject,
    /// Map to this stage and decision (the result's `defaulted` is `true`).
    Default(Stage, Option<Decision>),
}

/// The result of a [`StatusTable`] lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedStatus {
    /// The unified stage.
    pub stage: Stage,
    /// The decision, if the code implies one.
    pub decision: Option<Decision>,
    /// True when the code was not listed and [`UnknownStatus::Default`] supplied the stage.
    pub defaulted: bool,
}

impl MappedStatus {
    /// The same stage and decision as the WIT contract's types, for building a
    /// [`crate::Event`] (`crate::event(number, status.wit_stage(), at)`).
    pub fn wit_stage(&self) -> crate::Stage {
        wit_stage(self.stage)
    }

    /// The decision as the WIT contract's type.
    pub fn wit_decision(&self) -> Option<crate::Decision> {
        self.decision.map(wit_decision)
    }
}

/// Converts a unified-schema stage to the WIT contract's stage (same variants; the match is
/// exhaustive both ways, so a stage added on one side only fails to compile here).
pub fn wit_stage(stage: Stage) -> crate::Stage {
    use crate::Stage as W;
    match stage {
        Stage::Received => W::Received,
        Stage::Accepted => W::Accepted,
        Stage::Rejected => W::Rejected,
        Stage::SupplementRequested => W::SupplementRequested,
        Stage::UnderReview => W::UnderReview,
        Stage::SiteInspection => W::SiteInspection,
        Stage::Decided => W::Decided,
        Stage::CertificateIssued => W::CertificateIssued,
        Stage::Completed => W::Completed,
        Stage::Withdrawn => W::Withdrawn,
        Stage::SpecialProcedureStarted => W::SpecialProcedureStarted,
        Stage::SpecialProcedureEnded => W::SpecialProcedureEnded,
    }
}

/// Converts a unified-schema decision to the WIT contract's decision.
pub fn wit_decision(decision: Decision) -> crate::Decision {
    match decision {
        Decision::Approved => crate::Decision::Approved,
        Decision::Denied => crate::Decision::Denied,
    }
}

/// A named table mapping one vendor's status codes to unified stages.
///
/// ```
/// use yiwang_adapter_sdk::codes::{status_jinan, MappedStatus};
/// use yiwang_schema::{Decision, Stage};
/// let s = status_jinan().map("11").unwrap();
/// assert_eq!((s.stage, s.decision), (Stage::Completed, Some(Decision::Approved)));
/// assert!(status_jinan().map("2").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusTable {
    name: &'static str,
    rows: &'static [StatusRow],
    unknown: UnknownStatus,
}

impl StatusTable {
    /// A table called `name` with its rows and its policy for unlisted codes.
    pub const fn new(
        name: &'static str,
        rows: &'static [StatusRow],
        unknown: UnknownStatus,
    ) -> Self {
        StatusTable {
            name,
            rows,
            unknown,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The rows.
    pub fn rows(&self) -> &'static [StatusRow] {
        self.rows
    }

    /// Maps a vendor status code (exact match) to a stage, applying the policy if unlisted.
    pub fn map(&self, code: &str) -> Result<MappedStatus, UnknownCode> {
        if let Some(row) = self.rows.iter().find(|row| row.code == code) {
            return Ok(MappedStatus {
                stage: row.stage,
                decision: row.decision,
                defaulted: false,
            });
        }
        match self.unknown {
            UnknownStatus::Reject => Err(UnknownCode {
                table: self.name,
                code: code.to_owned(),
                direction: Direction::ToUnified,
                allowed: self.rows.iter().map(|row| row.code).collect(),
            }),
            UnknownStatus::Default(stage, decision) => Ok(MappedStatus {
                stage,
                decision,
                defaulted: true,
            }),
        }
    }

    /// The vendor's label for a listed code.
    pub fn label(&self, code: &str) -> Option<&'static str> {
        self.rows
            .iter()
            .find(|row| row.code == code)
            .map(|row| row.label)
    }
}

static STATUS_JINAN: StatusTable = StatusTable::new(
    "status_jinan",
    &[
        StatusRow::new("1", Stage::Received, None, "已接件"),
        StatusRow::new("3", Stage::Accepted, None, "已受理"),
        StatusRow::new("4", Stage::Rejected, None, "不受理"),
        StatusRow::new("6", Stage::SupplementRequested, None, "补正"),
        StatusRow::new("8", Stage::UnderReview, None, "部门开始办理"),
        StatusRow::new("9", Stage::SpecialProcedureStarted, None, "特别程序开始"),
        StatusRow::new("10", Stage::SpecialProcedureEnded, None, "特别程序结束"),
        StatusRow::new(
            "11",
            Stage::Completed,
            Some(Decision::Approved),
            "办结(通过)",
        ),
    ],
    UnknownStatus::Reject,
);

/// The status codes of the Jinan deployment in shared/DOMAIN.md: 1 已接件, 3 已受理, 4 不受理,
/// 6 补正, 8 部门开始办理 (under review), 9/10 特别程序 start/end, 11 办结(通过) (completed,
/// approved). Unlisted codes (2, 5, 7, …) are rejected.
pub fn status_jinan() -> &'static StatusTable {
    &STATUS_JINAN
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: &[CodeRow] = &[("a", "1", "A"), ("b", "2", "B"), ("c", "2", "C")];

    #[test]
    fn listed_codes_map_both_ways() {
        let t = CodeTable::new("t", ROWS, Unknown::Reject, Unknown::Reject);
        let cases = [("a", "1"), ("b", "2"), ("c", "2")];
        for (unified, ministry) in cases {
            assert_eq!(t.to_ministry(unified), Ok(ministry));
        }
        // Many-to-one: the first row wins on the way back.
        assert_eq!(t.to_unified("2"), Ok("b"));
        assert_eq!(t.label("c"), Some("C"));
        assert_eq!(t.label("z"), None);
    }

    #[test]
    fn unknown_under_each_policy() {
        let cases: &[(Unknown, Result<&str, ()>)] = &[
            (Unknown::Reject, Err(())),
            (Unknown::Default("9"), Ok("9")),
            (Unknown::PassThrough, Ok("zz")),
        ];
        for (policy, want) in cases {
            let t = CodeTable::new("t", ROWS, *policy, *policy);
            for result in [t.to_ministry("zz"), t.to_unified("zz")] {
                assert_eq!(result.map_err(|_| ()), *want, "{policy:?}");
            }
        }
    }

    #[test]
    fn policies_are_per_direction() {
        let t = CodeTable::new("t", ROWS, Unknown::Reject, Unknown::PassThrough);
        assert!(t.to_ministry("zz").is_err());
        assert_eq!(t.to_unified("zz"), Ok("zz"));
    }

    #[test]
    fn reject_names_table_code_and_allowed() {
        let t = CodeTable::new("vendor_x_gender", ROWS, Unknown::Reject, Unknown::Reject);
        let err = t.to_ministry("d").expect_err("unlisted");
        assert_eq!(
            err,
            UnknownCode {
                table: "vendor_x_gender",
                code: "d".to_owned(),
                direction: Direction::ToMinistry,
                allowed: vec!["a", "b", "c"],
            }
        );
        assert_eq!(
            err.to_string(),
            r#"unknown unified code "d" in code table "vendor_x_gender" (allowed: a, b, c)"#
        );
        let err = t.to_unified("3").expect_err("unlisted");
        assert_eq!(err.allowed, vec!["1", "2"]);
        assert_eq!(err.direction, Direction::ToUnified);
    }

    #[test]
    fn lookups_are_exact() {
        let t = CodeTable::new("t", ROWS, Unknown::Reject, Unknown::Reject);
        for code in [" a", "A", "a ", ""] {
            assert!(t.to_ministry(code).is_err(), "{code:?}");
        }
    }

    #[test]
    fn id_type_set_b_table() {
        let t = id_type_set_b();
        let cases = [
            ("111", "999"),
            ("113", "999"),
            ("414", "999"),
            ("513", "999"),
            ("990", "999"),
            ("001", "001"),
            ("099", "099"),
            ("516", "516"),
            ("999", "999"),
        ];
        for (unified, ministry) in cases {
            assert_eq!(t.to_ministry(unified), Ok(ministry), "{unified}");
            assert_eq!(
                t.to_unified(ministry),
                Ok(ministry),
                "reverse of {ministry}"
            );
        }
        // Every unified ID type is covered.
        for id_type in yiwang_schema::IdType::ALL {
            assert!(t.to_ministry(id_type.code()).is_ok(), "{id_type}");
        }
        assert_eq!(
            t.allowed(Direction::ToUnified),
            vec!["001", "099", "516", "999"]
        );
        let err = t.to_unified("111").expect_err("111 is not a set-B code");
        assert_eq!(err.table, "id_type_set_b");
        assert!(err.to_string().contains("001, 099, 516, 999"), "{err}");
    }

    #[test]
    fn applicant_kind_table() {
        let t = applicant_kind_012();
        let cases = [
            (yiwang_schema::PartyKind::NaturalPerson, "0"),
            (yiwang_schema::PartyKind::Enterprise, "1"),
            (yiwang_schema::PartyKind::OtherOrganization, "2"),
        ];
        for (kind, code) in cases {
            let unified = serde_json::to_value(kind).expect("serializes");
            let unified = unified.as_str().expect("a string");
            assert_eq!(t.to_ministry(unified), Ok(code));
            assert_eq!(t.to_unified(code), Ok(unified));
        }
        assert!(t.to_unified("3").is_err());
        assert!(t.to_ministry("legal_person").is_err());
    }

    #[test]
    fn status_tables() {
        let t = status_jinan();
        let cases = [
            ("1", Stage::Received, None),
            ("3", Stage::Accepted, None),
            ("4", Stage::Rejected, None),
            ("6", Stage::SupplementRequested, None),
            ("8", Stage::UnderReview, None),
            ("9", Stage::SpecialProcedureStarted, None),
            ("10", Stage::SpecialProcedureEnded, None),
            ("11", Stage::Completed, Some(Decision::Approved)),
        ];
        for (code, stage, decision) in cases {
            assert_eq!(
                t.map(code),
                Ok(MappedStatus {
                    stage,
                    decision,
                    defaulted: false
                }),
                "{code}"
            );
        }
        let err = t.map("7").expect_err("unlisted");
        assert_eq!((err.table, err.code.as_str()), ("status_jinan", "7"));
        assert!(
            err.to_string().contains("1, 3, 4, 6, 8, 9, 10, 11"),
            "{err}"
        );
        assert_eq!(t.label("6"), Some("补正"));
        let completed = t.map("11").expect("listed");
        assert!(matches!(completed.wit_stage(), crate::Stage::Completed));
        assert!(matches!(
            completed.wit_decision(),
            Some(crate::Decision::Approved)
        ));
        for stage in Stage::ALL {
            // Same names on both sides of the contract.
            let wit = format!("{:?}", wit_stage(stage)).to_lowercase();
            let wit = wit.rsplit("::").next().unwrap_or_default();
            assert_eq!(wit, stage.as_str().replace('_', ""), "{stage}");
        }

        static LENIENT: StatusTable = StatusTable::new(
            "lenient",
            &[StatusRow::new("A", Stage::Accepted, None, "受理")],
            UnknownStatus::Default(Stage::UnderReview, None),
        );
        assert_eq!(
            LENIENT.map("Q"),
            Ok(MappedStatus {
                stage: Stage::UnderReview,
                decision: None,
                defaulted: true
            })
        );
    }
}
