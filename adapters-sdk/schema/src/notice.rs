//! Notices: the webhook bodies the gateway POSTs to subscribers (the unified platform, a
//! regulator) when a case moves, a delivery finishes or the deadline light changes.
//!
//! They live beside [`Case`](crate::Case) and [`Event`] because subscribers read them as a
//! published contract (`docs/schema/notice.schema.json`), not as a gateway detail: a field
//! renamed here fails the schema test before it reaches a receiver.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Event, EventDetails, Stage};

/// One webhook body as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Yiwang notice")]
pub struct Notice {
    /// The notice's idempotency key, also sent as the `Idempotency-Key` header: the same
    /// notice resent after a crash or a lost reply carries the same id, so a receiver drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_id: Option<String>,
    /// What happened (the `type` field names which).
    #[serde(flatten)]
    pub body: NoticeBody,
}

/// What a notice says, told apart by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NoticeBody {
    /// A network moved the case to a stage.
    Stage(StageNotice),
    /// A delivery to a network finished (delivered or dead-lettered).
    Delivery(DeliveryNotice),
    /// The case's deadline light changed.
    Deadline(DeadlineNotice),
}

impl NoticeBody {
    /// The notice kind subscribers choose in their configuration (`notices = [...]`):
    /// `stage`, `delivery` or `deadline`.
    pub fn kind(&self) -> &'static str {
        match self {
            NoticeBody::Stage(_) => "stage",
            NoticeBody::Delivery(_) => "delivery",
            NoticeBody::Deadline(_) => "deadline",
        }
    }
}

/// `type: stage`: a network moved the case to a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageNotice {
    /// The unified case number.
    pub case_number: String,
    /// The item (事项) code of the case.
    pub item: String,
    /// The network that reported the stage.
    pub network: String,
    /// The network's own case number.
    pub network_case_number: String,
    /// The unified stage.
    pub stage: Stage,
    /// The stage's Chinese name (接件, 受理, …).
    pub stage_zh: String,
    /// When it happened there (RFC 3339 with offset).
    pub at: String,
    /// Stage-specific details.
    pub details: EventDetails,
}

impl StageNotice {
    /// The notice of an event of a case.
    pub fn new(case_number: &str, item: &str, e: &Event) -> Self {
        StageNotice {
            case_number: case_number.to_owned(),
            item: item.to_owned(),
            network: e.network.clone(),
            network_case_number: e.network_case_number.clone(),
            stage: e.stage,
            stage_zh: e.stage.label_zh().to_owned(),
            at: e.at.to_rfc3339(),
            details: e.details.clone(),
        }
    }
}

/// `type: delivery`: a delivery to a network finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryNotice {
    /// The unified case number.
    pub case_number: String,
    /// The item (事项) code of the case.
    pub item: String,
    /// The network the case was delivered to.
    pub network: String,
    /// How the delivery ended (the `state` field names which).
    #[serde(flatten)]
    pub outcome: DeliveryOutcome,
}

/// How a delivery ended, told apart by its `state` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The ministry took the case.
    Delivered {
        /// The network's case number (`null` when the network gave none).
        network_case_number: Option<String>,
    },
    /// Given up: a dead letter an operator may replay.
    Dead {
        /// Why.
        reason: String,
    },
}

/// `type: deadline`: the case's deadline light changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineNotice {
    /// The unified case number.
    pub case_number: String,
    /// The item (事项) code of the case.
    pub item: String,
    /// The light now.
    pub light: Light,
    /// The deadline as now computed (RFC 3339, Beijing time), if the case has a time limit.
    pub deadline: Option<String>,
}

/// The deadline light (电子监察) of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Light {
    /// Well within the promised time limit.
    Green,
    /// Close to the deadline.
    Yellow,
    /// Past the deadline.
    Red,
    /// Every network finished: the clock stopped.
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        serde_json::from_value(json!({
            "network": "tax",
            "network_case_number": "T-1",
            "stage": "accepted",
            "at": "2026-11-20T09:30:00+08:00",
        }))
        .unwrap_or_else(|e| panic!("test event: {e}"))
    }

    #[test]
    fn a_notice_is_flat_json_with_its_type_and_id() {
        let notice = Notice {
            notice_id: Some("n-1".into()),
            body: NoticeBody::Stage(StageNotice::new("C1", "item-1", &event())),
        };
        let v = serde_json::to_value(&notice).unwrap_or_default();
        assert_eq!(
            v,
            json!({
                "notice_id": "n-1",
                "type": "stage",
                "case_number": "C1",
                "item": "item-1",
                "network": "tax",
                "network_case_number": "T-1",
                "stage": "accepted",
                "stage_zh": "受理",
                "at": "2026-11-20T09:30:00+08:00",
                "details": {},
            })
        );
        let back: Notice = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, notice);
    }

    #[test]
    fn delivery_and_deadline_notices_keep_their_field_names() {
        let delivery = NoticeBody::Delivery(DeliveryNotice {
            case_number: "C1".into(),
            item: "i".into(),
            network: "tax".into(),
            outcome: DeliveryOutcome::Dead {
                reason: "gave up".into(),
            },
        });
        assert_eq!(
            serde_json::to_value(&delivery).unwrap_or_default(),
            json!({"type": "delivery", "case_number": "C1", "item": "i", "network": "tax",
                   "state": "dead", "reason": "gave up"})
        );
        let notice = Notice {
            notice_id: Some("n-2".into()),
            body: delivery.clone(),
        };
        let back: Notice =
            serde_json::from_value(serde_json::to_value(&notice).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, notice, "both tags read back");
        let delivered = DeliveryOutcome::Delivered {
            network_case_number: None,
        };
        assert_eq!(
            serde_json::to_value(&delivered).unwrap_or_default(),
            json!({"state": "delivered", "network_case_number": null}),
            "a delivery without a network case number says so"
        );
        let deadline = NoticeBody::Deadline(DeadlineNotice {
            case_number: "C1".into(),
            item: "i".into(),
            light: Light::Yellow,
            deadline: None,
        });
        assert_eq!(
            serde_json::to_value(&deadline).unwrap_or_default(),
            json!({"type": "deadline", "case_number": "C1", "item": "i", "light": "yellow",
                   "deadline": null})
        );
        assert_eq!(delivery.kind(), "delivery");
        assert_eq!(deadline.kind(), "deadline");
    }
}
