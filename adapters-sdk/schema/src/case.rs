//! The unified case (办件): what a bureau's unified platform hands the gateway.

use chrono::{DateTime, FixedOffset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One application for one item by one applicant (办件), in the unified case schema v1.
///
/// Timestamps are RFC 3339 in Beijing time (`+08:00`): the unified schema normalizes every
/// ministry's time format to it. Identity numbers are checked by their ID type; a legacy code
/// that fails only its checksum passes with an explicit entry in `checksum_overrides`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Yiwang unified case")]
pub struct Case {
    /// Version of the unified case schema, `major.minor`; this crate reads major version 1
    /// (see `SCHEMA_VERSION`).
    #[schemars(pattern(r"^1\.[0-9]+$"), example = "1.0")]
    pub schema_version: String,
    /// The bureau's case number (办件编号), unique within the bureau.
    #[schemars(
        length(min = 1, max = 64),
        pattern(r"^[A-Za-z0-9_-]+$"),
        example = "FZ-2026-000123"
    )]
    pub case_number: String,
    /// The licensing item (事项) applied for.
    pub item: ItemRef,
    /// The approval bureau (行政审批局) that accepted the case.
    pub bureau: Bureau,
    /// The applicant (申请人).
    pub applicant: Party,
    /// The agent (代理人/经办人) acting for the applicant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Party>,
    /// Item-specific form data (one form per item); always a JSON object. Its fields are
    /// defined by the item, not by this schema. Bounded: at most 256 KiB of compact JSON,
    /// 256 keys per object, nesting depth 8 (the form is level 1), keys of at most 128 and
    /// string values of at most 10 000 characters, no control characters except tab and
    /// newline in values, no control or bidi characters in keys.
    #[schemars(extend("maxProperties" = 256))]
    pub form: Map<String, Value>,
    /// The materials (材料) submitted with the case.
    pub materials: Vec<Material>,
    /// When the applicant submitted the case (接件), Beijing time; not before 2000-01-01 and
    /// at most 300 s ahead of the gateway's clock.
    #[schemars(pattern(r"\+08:00$"), example = "2026-11-20T09:30:00+08:00")]
    pub submitted_at: DateTime<FixedOffset>,
    /// When the bureau accepted the case (受理), Beijing time; not before `submitted_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"\+08:00$"))]
    pub accepted_at: Option<DateTime<FixedOffset>>,
    /// The promised time limit (承诺时限) electronic supervision times the case against.
    pub time_limit: TimeLimit,
    /// Audited waivers for legacy identity codes that are legally valid yet fail their
    /// checksum. Each must match a field whose checksum actually fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksum_overrides: Vec<ChecksumOverride>,
}

/// A licensing item (事项) by its implementation code (实施编码) and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRef {
    /// The item's implementation code (事项编码), e.g. `SC-QYKB-001`.
    #[schemars(length(min = 1, max = crate::limits::IDENTIFIER_MAX))]
    pub code: String,
    /// The item's version (事项版本), e.g. `1.0`.
    #[schemars(length(min = 1, max = crate::limits::IDENTIFIER_MAX))]
    pub version: String,
}

/// The approval bureau (行政审批局).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bureau {
    /// The bureau's name, e.g. `福州市行政审批局`; no control or bidi characters.
    #[schemars(length(min = 1, max = crate::limits::NAME_MAX))]
    pub name: String,
    /// The bureau's unified social credit code (GB 32100).
    #[schemars(pattern(r"^[0-9A-HJ-NPQRTUWXY]{18}$"))]
    pub uscc: String,
}

/// An applicant or agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// What kind of party this is; constrains `id_type`.
    pub kind: PartyKind,
    /// The person's or organisation's name (申请人名称); no control or bidi characters.
    #[schemars(length(min = 1, max = crate::limits::NAME_MAX))]
    pub name: String,
    /// ID document type code (证件类型) from the unified table: 111 居民身份证, 113 户口簿,
    /// 414 普通护照, 513 往来港澳通行证, 990 其他, 001 统一社会信用代码, 099 其他法人证件,
    /// 516 港澳居民来往内地通行证, 999 其他自然人证件.
    #[schemars(extend("enum" = ["111", "113", "414", "513", "990", "001", "099", "516", "999"]))]
    pub id_type: String,
    /// The ID number (证件号码); checked by `id_type` (111: GB 11643, 001: GB 32100).
    #[schemars(length(min = 1, max = 64))]
    pub id_number: String,
    /// How to reach the party.
    pub contact: Contact,
    /// The legal representative (法定代表人); required for enterprises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::limits::NAME_MAX))]
    pub legal_representative: Option<String>,
}

/// Kind of party (申请人类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    /// A natural person (自然人); uses a personal ID document, never 001/099.
    NaturalPerson,
    /// An enterprise legal person (企业法人); uses 001 or 099.
    Enterprise,
    /// A non-enterprise organisation (其他组织: institutions, social organisations, …);
    /// uses 001 or 099.
    OtherOrganization,
}

impl PartyKind {
    /// The unified code, as serialized: `natural_person`, `enterprise`,
    /// `other_organization` (what adapters' code tables translate from).
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::NaturalPerson => "natural_person",
            PartyKind::Enterprise => "enterprise",
            PartyKind::OtherOrganization => "other_organization",
        }
    }
}

/// Contact details (联系方式).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Phone number (联系电话): digits and `-`, optionally a leading `+`.
    #[schemars(
        length(max = crate::limits::PHONE_MAX),
        pattern(r"^\+?[0-9-]*[0-9][0-9-]*$"),
        example = "0591-87654321"
    )]
    pub phone: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email, length(max = crate::limits::EMAIL_MAX))]
    pub email: Option<String>,
    /// Postal address (联系地址); one line, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::ADDRESS_MAX))]
    pub address: Option<String>,
}

/// One submitted material (材料): a file the gateway can fetch by `uri` and verify by `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// The material's name as listed for the item, e.g. `营业执照申请书`.
    #[schemars(length(min = 1, max = crate::limits::NAME_MAX))]
    pub name: String,
    /// Media type, e.g. `application/pdf`.
    #[schemars(
        length(max = crate::limits::MEDIA_TYPE_MAX),
        pattern(r"^[^/\s]+/[^/\s]+$"),
        example = "application/pdf"
    )]
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, 64 lowercase hex digits.
    #[schemars(pattern(r"^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// Where the content is, e.g. `oss://bureau-materials/2026/11/x.pdf` or an https URL.
    #[schemars(length(min = 1, max = crate::limits::URI_MAX))]
    pub uri: String,
}

/// A promised time limit (承诺时限).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeLimit {
    /// How many units; greater than zero.
    #[schemars(range(min = 1))]
    pub value: u32,
    /// The unit.
    pub unit: TimeLimitUnit,
}

/// Unit of a time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeLimitUnit {
    /// Working days (工作日), the usual unit.
    WorkingDays,
    /// Calendar days (自然日).
    CalendarDays,
    /// Months.
    Months,
    /// Years.
    Years,
}

/// An audited waiver: lets a legacy identity code that fails only its checksum pass.
///
/// Format rules (length, alphabet, birth date) still apply. An override whose pointer does
/// not name a field with a failing checksum is itself an error (`override_unused`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksumOverride {
    /// JSON pointer of the field whose checksum is waived, e.g. `/applicant/id_number`.
    #[schemars(
        length(max = crate::limits::POINTER_MAX),
        pattern(r"^/"),
        example = "/applicant/id_number"
    )]
    pub pointer: String,
    /// Why the code is legally valid although its checksum fails.
    #[schemars(length(min = 1, max = crate::limits::TEXT_MAX))]
    pub reason: String,
    /// Who approved the waiver (staff ID or name), for the audit trail.
    #[schemars(length(min = 1, max = crate::limits::NAME_MAX))]
    pub approved_by: String,
}
