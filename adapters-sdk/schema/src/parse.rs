//! Parsing JSON into the schema types, with structural errors reported as pointer + rule.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::error::{escape, rule};
use crate::{Case, CaseChange, ChecksumOverride, Event, ValidationError, ValidationErrors};

/// A case that parsed and passed [`Case::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCase {
    /// The case.
    pub case: Case,
    /// The checksum overrides that waived a failing checksum; the gateway records them in
    /// the audit trail.
    pub overrides_applied: Vec<ChecksumOverride>,
}

/// Parses and validates a case from JSON.
///
/// A structural problem (syntax, wrong type, unknown or missing field) stops parsing and is
/// the only error reported, with its pointer and rule `json_syntax`, `json_type`,
/// `unknown_field`, `required`, `code_table` or `timestamp_format`. A case that parses is
/// then validated and every semantic problem is reported at once.
pub fn parse_case(json: &[u8]) -> Result<ValidatedCase, ValidationErrors> {
    let case: Case = from_json(json)?;
    let overrides_applied = case.validate()?;
    Ok(ValidatedCase {
        case,
        overrides_applied,
    })
}

/// [`parse_case`] with the timestamps also checked against the caller's clock
/// ([`Case::validate_at`]): what an intake that knows the time calls.
pub fn parse_case_at(
    json: &[u8],
    window: &crate::TimeWindow,
) -> Result<ValidatedCase, ValidationErrors> {
    let case: Case = from_json(json)?;
    let overrides_applied = case.validate_at(window)?;
    Ok(ValidatedCase {
        case,
        overrides_applied,
    })
}

/// Parses a case from JSON without validating it: the structural step of [`parse_case`] alone
/// (its first structural problem is the only error). For a caller that adds its own rules
/// (the gateway's item forms) and reports them together with [`Case::validate_at`]'s.
pub fn read_case(json: &[u8]) -> Result<Case, ValidationErrors> {
    Ok(from_json(json)?)
}

/// Parses and validates an event from JSON (see [`parse_case`] for how errors are reported).
pub fn parse_event(json: &[u8]) -> Result<Event, ValidationErrors> {
    let event: Event = from_json(json)?;
    event.validate()?;
    Ok(event)
}

/// Parses and validates a case change from JSON (see [`parse_case`] for how errors are
/// reported).
pub fn parse_case_change(json: &[u8]) -> Result<CaseChange, ValidationErrors> {
    let change: CaseChange = from_json(json)?;
    change.validate()?;
    Ok(change)
}

/// Deserializes with the path to the first structural error kept.
fn from_json<T: DeserializeOwned>(json: &[u8]) -> Result<T, ValidationError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = to_pointer(e.path());
        structural_error(pointer, e.inner())
    })?;
    de.end().map_err(|e| structural_error(String::new(), &e))?;
    Ok(value)
}

/// Fields that hold timestamps: a data error there is a timestamp format problem.
const TIMESTAMP_FIELDS: &[&str] = &["submitted_at", "accepted_at", "at"];

fn structural_error(pointer: String, e: &serde_json::Error) -> ValidationError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; keep the location in a friendlier form.
    let text = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(head, _)| head);
    let location = if e.line() > 0 {
        format!(" (line {}, column {})", e.line(), e.column())
    } else {
        String::new()
    };
    if !e.is_data() {
        let message = if e.is_eof() {
            format!("the JSON ends too early: {text}{location}")
        } else {
            format!("not valid JSON: {text}{location}")
        };
        return ValidationError::new(pointer, rule::JSON_SYNTAX, message);
    }
    if let Some(field) = backticked(text, "missing field `") {
        let pointer = format!("{pointer}/{}", escape(field));
        return ValidationError::new(
            pointer,
            rule::REQUIRED,
            format!("required field `{field}` is missing{location}"),
        );
    }
    if let Some(field) = backticked(text, "unknown field `") {
        // serde_path_to_error already put the unknown key in the path.
        let pointer = if pointer.ends_with(&format!("/{}", escape(field))) {
            pointer
        } else {
            format!("{pointer}/{}", escape(field))
        };
        return ValidationError::new(pointer, rule::UNKNOWN_FIELD, format!("{text}{location}"));
    }
    if text.starts_with("unknown variant") {
        return ValidationError::new(pointer, rule::CODE_TABLE, format!("{text}{location}"));
    }
    let last = pointer.rsplit('/').next().unwrap_or("");
    if !text.starts_with("invalid type") && TIMESTAMP_FIELDS.contains(&last) {
        return ValidationError::new(
            pointer,
            rule::TIMESTAMP_FORMAT,
            format!(
                "not an RFC 3339 timestamp with offset, e.g. 2026-11-20T09:30:00+08:00: {text}{location}"
            ),
        );
    }
    ValidationError::new(pointer, rule::JSON_TYPE, format!("{text}{location}"))
}

/// The text between `prefix` and the next backtick.
fn backticked<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?;
    rest.split_once('`').map(|(field, _)| field)
}

fn to_pointer(path: &serde_path_to_error::Path) -> String {
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&escape(key));
            }
            // Enum variants and unknown segments are not JSON locations.
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}
