//! The unified case schema v1 (Case, Event, CaseChange), the subscriber notices, their validation rules and the published JSON Schema.
//!
//! One home, read by the gateway and by adapters compiled to `wasm32-wasip2`: pure code, no
//! I/O, no clock, no threads. Start at [`parse_case`]; rule names are in [`rule`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod case;
mod change;
mod error;
mod event;
pub mod ids;
mod json_schema;
mod notice;
mod parse;
mod validate;

pub use case::{
    Bureau, Case, ChecksumOverride, Contact, ItemRef, Material, Party, PartyKind, TimeLimit,
    TimeLimitUnit,
};
pub use change::{CaseChange, ChangeKind};
pub use error::{ParseCodeError, ValidationError, ValidationErrors, rule};
pub use event::{Decision, Event, EventDetails, Stage};
pub use ids::{IdError, IdType};
pub use json_schema::{
    case_change_json_schema, case_json_schema, event_json_schema, notice_json_schema,
};
pub use notice::{
    DeadlineNotice, DeliveryNotice, DeliveryOutcome, Light, Notice, NoticeBody, StageNotice,
};
pub use parse::{ValidatedCase, parse_case, parse_case_change, parse_event};

/// The version of the unified case schema this crate writes; it reads any `1.x`.
pub const SCHEMA_VERSION: &str = "1.0";

/// `Result` with this crate's error, the full list of validation problems.
pub type Result<T, E = ValidationErrors> = std::result::Result<T, E>;
