//! Case events: what a ministry network says happened to a case, in the unified stage vocabulary.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ParseCodeError;

/// A normalized event from a ministry network (one status change of one case there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Yiwang case event")]
pub struct Event {
    /// The unified case number, when known (the ministry message carries it, or the gateway
    /// filled it in from `network_case_number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub case_number: Option<String>,
    /// The ministry network's name as configured in the gateway, e.g. `fj-scjg`.
    #[schemars(length(min = 1))]
    pub network: String,
    /// The network's own case number (required: the gateway finds the case by it).
    #[schemars(length(min = 1, max = 128))]
    pub network_case_number: String,
    /// The unified stage the event moves the case to.
    pub stage: Stage,
    /// When it happened there: RFC 3339 with an offset (adapters normalize to `+08:00`).
    #[schemars(example = "2026-11-20T09:30:00+08:00")]
    pub at: DateTime<FixedOffset>,
    /// Stage-specific details.
    #[serde(default)]
    pub details: EventDetails,
    /// Reference to the raw ministry message kept for audit, e.g. `sha256:<64 hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ref: Option<String>,
}

/// Stage-specific details of an event; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDetails {
    /// Why (rejection, withdrawal, denial, special procedure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Materials the applicant must add (stage `supplement_requested`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplement: Vec<String>,
    /// The decision (stage `decided`, sometimes `completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The certificate number (证照编号), once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_number: Option<String>,
    /// The ministry's own status code, e.g. `"3"`, for audit and debugging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_status: Option<String>,
}

/// A stage of the case lifecycle (shared/DOMAIN.md), the vocabulary every vendor's status
/// codes are normalized into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// 接件: the case was received.
    Received,
    /// 受理: the case was accepted.
    Accepted,
    /// 不予受理: the case was not accepted (terminal).
    Rejected,
    /// 补正: the applicant must add material; the clock pauses.
    SupplementRequested,
    /// 审查: under review.
    UnderReview,
    /// 现场踏勘: site inspection.
    SiteInspection,
    /// 决定: decided (see the event's `decision`).
    Decided,
    /// 制证: certificate issued.
    CertificateIssued,
    /// 办结: completed (terminal).
    Completed,
    /// 撤回: withdrawn (terminal).
    Withdrawn,
    /// 特别程序开始: a special procedure (expert review, hearing) started; the clock pauses.
    SpecialProcedureStarted,
    /// 特别程序结束: the special procedure ended.
    SpecialProcedureEnded,
}

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 12] = [
        Stage::Received,
        Stage::Accepted,
        Stage::Rejected,
        Stage::SupplementRequested,
        Stage::UnderReview,
        Stage::SpecialProcedureStarted,
        Stage::SpecialProcedureEnded,
        Stage::SiteInspection,
        Stage::Decided,
        Stage::CertificateIssued,
        Stage::Completed,
        Stage::Withdrawn,
    ];

    /// Lifecycle order, used to order and deduplicate out-of-order events:
    /// received (1) < accepted = rejected (2) < supplement_requested (3) < under_review =
    /// special_procedure_started = special_procedure_ended (4) < site_inspection (5) <
    /// decided (6) < certificate_issued (7) < completed (8) < withdrawn (9).
    ///
    /// Equal ranks do not order two stages: callers break ties by `at`.
    pub fn rank(self) -> u8 {
        match self {
            Stage::Received => 1,
            Stage::Accepted | Stage::Rejected => 2,
            Stage::SupplementRequested => 3,
            Stage::UnderReview | Stage::SpecialProcedureStarted | Stage::SpecialProcedureEnded => 4,
            Stage::SiteInspection => 5,
            Stage::Decided => 6,
            Stage::CertificateIssued => 7,
            Stage::Completed => 8,
            Stage::Withdrawn => 9,
        }
    }

    /// Whether nothing follows this stage: rejected, completed, withdrawn.
    ///
    /// A `decided` event with a `denied` decision is final too, but that is a decision
    /// detail, not a stage.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Rejected | Stage::Completed | Stage::Withdrawn)
    }

    /// The Chinese name used in deployed systems (接件, 受理, …).
    pub fn label_zh(self) -> &'static str {
        match self {
            Stage::Received => "接件",
            Stage::Accepted => "受理",
            Stage::Rejected => "不予受理",
            Stage::SupplementRequested => "补正",
            Stage::UnderReview => "审查",
            Stage::SiteInspection => "现场踏勘",
            Stage::Decided => "决定",
            Stage::CertificateIssued => "制证",
            Stage::Completed => "办结",
            Stage::Withdrawn => "撤回",
            Stage::SpecialProcedureStarted => "特别程序开始",
            Stage::SpecialProcedureEnded => "特别程序结束",
        }
    }

    /// The snake_case name used in JSON, e.g. `supplement_requested`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Accepted => "accepted",
            Stage::Rejected => "rejected",
            Stage::SupplementRequested => "supplement_requested",
            Stage::UnderReview => "under_review",
            Stage::SiteInspection => "site_inspection",
            Stage::Decided => "decided",
            Stage::CertificateIssued => "certificate_issued",
            Stage::Completed => "completed",
            Stage::Withdrawn => "withdrawn",
            Stage::SpecialProcedureStarted => "special_procedure_started",
            Stage::SpecialProcedureEnded => "special_procedure_ended",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = ParseCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseCodeError {
                table: "stage",
                value: s.to_owned(),
                allowed: Stage::ALL.map(Stage::as_str).join(", "),
            })
    }
}

/// The outcome of a `decided` stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// 准予: approved.
    Approved,
    /// 不予: denied (final).
    Denied,
}

impl Decision {
    /// The wire name: `approved`, `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Denied => "denied",
        }
    }

    /// The Chinese name (准予 / 不予).
    pub fn label_zh(self) -> &'static str {
        match self {
            Decision::Approved => "准予",
            Decision::Denied => "不予",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_round_trip_through_display_fromstr_and_serde() {
        for st in Stage::ALL {
            assert_eq!(st.to_string().parse::<Stage>(), Ok(st));
            let json = serde_json::to_string(&st).unwrap_or_default();
            assert_eq!(json, format!("\"{st}\""));
        }
        let err = "done".parse::<Stage>().err();
        assert!(err.is_some_and(|e| e.to_string().contains("supplement_requested")));
    }

    #[test]
    fn ranks_follow_the_lifecycle() {
        use Stage::*;
        let chain = [
            Received,
            Accepted,
            SupplementRequested,
            UnderReview,
            SiteInspection,
            Decided,
            CertificateIssued,
            Completed,
            Withdrawn,
        ];
        for w in chain.windows(2) {
            assert!(w[0].rank() < w[1].rank(), "{} !< {}", w[0], w[1]);
        }
        assert_eq!(Accepted.rank(), Rejected.rank());
        assert_eq!(SpecialProcedureStarted.rank(), UnderReview.rank());
        assert_eq!(SpecialProcedureEnded.rank(), UnderReview.rank());
        assert!(Stage::ALL.iter().all(|s| s.rank() <= Withdrawn.rank()));
        let terminal: Vec<Stage> = Stage::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, vec![Rejected, Completed, Withdrawn]);
        assert_eq!(SupplementRequested.label_zh(), "补正");
    }
}
