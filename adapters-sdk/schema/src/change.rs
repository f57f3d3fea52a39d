//! Bureau-side changes to a case already delivered: supplements and withdrawals.

use chrono::{DateTime, FixedOffset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Material;

/// A change the bureau makes to a case after it was delivered to the ministry networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Yiwang case change")]
pub struct CaseChange {
    /// The unified case number the change applies to.
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub case_number: String,
    /// What changed.
    pub kind: ChangeKind,
    /// When the bureau made the change, Beijing time.
    #[schemars(pattern(r"\+08:00$"), example = "2026-11-21T14:00:00+08:00")]
    pub at: DateTime<FixedOffset>,
}

/// What a case change does, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeKind {
    /// 补正: the applicant added the materials a `supplement_requested` event asked for.
    Supplement {
        /// The added materials; at least one.
        #[schemars(length(min = 1))]
        materials: Vec<Material>,
        /// A note from bureau staff.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(max = crate::limits::TEXT_MAX))]
        note: Option<String>,
    },
    /// 撤回: the applicant withdrew the case.
    Withdraw {
        /// Why the case was withdrawn.
        #[schemars(length(min = 1, max = crate::limits::TEXT_MAX))]
        reason: String,
    },
}
