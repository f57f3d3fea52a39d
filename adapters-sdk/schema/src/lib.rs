//! The unified case schema v1 (Case, Event, CaseChange), the subscriber notices, their validation rules and the published JSON Schema.
//!
//! One home, read by the gateway and by adapters compiled to `wasm32-wasip2`: pure code, no
//! I/O, no clock, no threads. Start at [`parse_case`]; rule names are in [`rule`]. What an HTTP
//! status and a `Retry-After` header mean for a retry is in [`http_status`], shared by the
//! gateway and the SDK. Two values both sides of the sandbox share live here too: [`BEIJING`],
//! the one offset, and [`Sha256Digest`], the one way a SHA-256 is computed and spelled.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bounds;
mod case;
mod change;
mod digest;
mod error;
mod event;
pub mod http_status;
pub mod ids;
mod json_schema;
mod limits;
mod notice;
mod parse;
mod validate;

pub use bounds::TimeWindow;
pub use case::{
    Bureau, Case, ChecksumOverride, Contact, ItemRef, Material, Party, PartyKind, TimeLimit,
    TimeLimitUnit,
};
pub use change::{CaseChange, ChangeKind};
pub use digest::{ParseDigestError, Sha256Digest};
pub use error::{ParseCodeError, ValidationError, ValidationErrors, rule};
pub use event::{Decision, Event, EventDetails, Stage};
pub use ids::{IdError, IdType};
pub use json_schema::{
    case_change_json_schema, case_json_schema, event_json_schema, notice_json_schema,
};
pub use notice::{
    DeadlineNotice, DeliveryNotice, DeliveryOutcome, Light, Notice, NoticeBody, StageNotice,
};
pub use parse::{
    ValidatedCase, parse_case, parse_case_at, parse_case_change, parse_event, read_case,
};

/// The version of the unified case schema this crate writes; it reads any `1.x`.
pub const SCHEMA_VERSION: &str = "1.0";

/// Beijing time, UTC+08:00 (China Standard Time; no daylight saving since 1991): the only
/// offset the unified schema accepts on timestamps, and the zone every ministry writes in.
///
/// ```
/// assert_eq!(yiwang_schema::BEIJING.local_minus_utc(), 8 * 3600);
/// ```
pub const BEIJING: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    // 8 h is within ±24 h; evaluated at compile time, so this can never panic at run time.
    None => panic!("UTC+08:00 is a valid offset"),
};

/// `Result` with this crate's error, the full list of validation problems.
pub type Result<T, E = ValidationErrors> = std::result::Result<T, E>;
