//! Validation errors: a JSON pointer, a stable rule name and a specific message per problem.

use std::fmt;

use serde::Serialize;

/// Stable rule names carried by [`ValidationError::rule`].
///
/// They are part of the HTTP API: clients match on them, so a name is never changed or
/// reused once published (add new ones instead). `README.md` lists them all.
pub mod rule {
    /// The input is not well-formed JSON (or has trailing data).
    pub const JSON_SYNTAX: &str = "json_syntax";
    /// A value has the wrong JSON type (e.g. `form` is not an object, `size` is a string).
    pub const JSON_TYPE: &str = "json_type";
    /// An object has a field the schema does not define.
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// A required field is missing.
    pub const REQUIRED: &str = "required";
    /// A value is not in its code table (ID type, party kind, stage, time-limit unit, …).
    pub const CODE_TABLE: &str = "code_table";
    /// A timestamp is not RFC 3339 with an offset.
    pub const TIMESTAMP_FORMAT: &str = "timestamp_format";
    /// A case timestamp is not in Beijing time (+08:00).
    pub const TIMEZONE: &str = "timezone";
    /// `accepted_at` is before `submitted_at`.
    pub const TIMESTAMP_ORDER: &str = "timestamp_order";
    /// `schema_version` is not `1.x`.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// A string that must have content is empty (or only whitespace), or a list that must
    /// have entries is empty.
    pub const NOT_EMPTY: &str = "not_empty";
    /// A string is longer than allowed.
    pub const MAX_LENGTH: &str = "max_length";
    /// A case number uses characters other than `A-Z a-z 0-9 - _`.
    pub const CASE_NUMBER_FORMAT: &str = "case_number_format";
    /// A number must be greater than zero.
    pub const POSITIVE: &str = "positive";
    /// Resident ID number: not 18 characters, or not 17 digits and a digit/X.
    pub const RESIDENT_ID_FORMAT: &str = "resident_id_format";
    /// Resident ID number: characters 7–14 are not a real date on or after 1900-01-01.
    pub const RESIDENT_ID_BIRTH_DATE: &str = "resident_id_birth_date";
    /// Resident ID number: wrong GB 11643 check character (waivable by an override).
    pub const RESIDENT_ID_CHECKSUM: &str = "resident_id_checksum";
    /// USCC: not 18 characters of the GB 32100 alphabet.
    pub const USCC_FORMAT: &str = "uscc_format";
    /// USCC: wrong GB 32100 check character (waivable by an override).
    pub const USCC_CHECKSUM: &str = "uscc_checksum";
    /// USCC: the embedded organisation code (characters 9–17) fails GB 11714 (waivable by an
    /// override).
    pub const USCC_ORG_CODE_CHECKSUM: &str = "uscc_org_code_checksum";
    /// The party kind does not fit the ID type (an enterprise with a resident ID, …).
    pub const PARTY_KIND_ID_TYPE: &str = "party_kind_id_type";
    /// A phone number has characters other than digits, `-` and a leading `+`.
    pub const PHONE_FORMAT: &str = "phone_format";
    /// An e-mail address is not `local@domain`.
    pub const EMAIL_FORMAT: &str = "email_format";
    /// A SHA-256 digest is not 64 lowercase hex digits.
    pub const SHA256_FORMAT: &str = "sha256_format";
    /// A media type has no `/` (`application/pdf`).
    pub const MEDIA_TYPE_FORMAT: &str = "media_type_format";
    /// A checksum override names a field that has no failing checksum (or repeats one).
    pub const OVERRIDE_UNUSED: &str = "override_unused";

    /// A text field holds a control character its field does not allow (C0, DEL, C1; tab
    /// and newline are allowed in free text only).
    pub const CONTROL_CHARACTER: &str = "control_character";
    /// A name or identifier holds a bidi embedding, override or isolate (U+202A–U+202E,
    /// U+2066–U+2069).
    pub const BIDI_CONTROL: &str = "bidi_control";
    /// A form object has more keys than allowed.
    pub const MAX_KEYS: &str = "max_keys";
    /// The form is nested deeper than allowed.
    pub const MAX_DEPTH: &str = "max_depth";
    /// The form is larger than allowed, in bytes of compact JSON.
    pub const MAX_SIZE: &str = "max_size";
    /// A timestamp is before 2000-01-01 or too far ahead of the gateway's clock.
    pub const TIMESTAMP_RANGE: &str = "timestamp_range";

    /// An item form field (see the gateway's form schemas) is shorter than its `minLength`.
    pub const MIN_LENGTH: &str = "min_length";
    /// An item form string does not match its `pattern`.
    pub const PATTERN: &str = "pattern";
    /// An item form number is below its `minimum` (or at an `exclusiveMinimum`).
    pub const MINIMUM: &str = "minimum";
    /// An item form number is above its `maximum` (or at an `exclusiveMaximum`).
    pub const MAXIMUM: &str = "maximum";
    /// An item form value is not one of its `enum` values.
    pub const ENUM: &str = "enum";
    /// An item form list has fewer entries than its `minItems`.
    pub const MIN_ITEMS: &str = "min_items";
    /// An item form list has more entries than its `maxItems`.
    pub const MAX_ITEMS: &str = "max_items";
    /// An item form list repeats an entry although its `uniqueItems` forbids it.
    pub const UNIQUE_ITEMS: &str = "unique_items";
    /// An item form string declared `"format": "date"` is not a real `YYYY-MM-DD` date.
    pub const DATE_FORMAT: &str = "date_format";

    /// Every rule name, for documentation and tests.
    pub const ALL: &[&str] = &[
        JSON_SYNTAX,
        JSON_TYPE,
        UNKNOWN_FIELD,
        REQUIRED,
        CODE_TABLE,
        TIMESTAMP_FORMAT,
        TIMEZONE,
        TIMESTAMP_ORDER,
        SCHEMA_VERSION,
        NOT_EMPTY,
        MAX_LENGTH,
        CASE_NUMBER_FORMAT,
        POSITIVE,
        RESIDENT_ID_FORMAT,
        RESIDENT_ID_BIRTH_DATE,
        RESIDENT_ID_CHECKSUM,
        USCC_FORMAT,
        USCC_CHECKSUM,
        USCC_ORG_CODE_CHECKSUM,
        PARTY_KIND_ID_TYPE,
        PHONE_FORMAT,
        EMAIL_FORMAT,
        SHA256_FORMAT,
        MEDIA_TYPE_FORMAT,
        OVERRIDE_UNUSED,
        CONTROL_CHARACTER,
        BIDI_CONTROL,
        MAX_KEYS,
        MAX_DEPTH,
        MAX_SIZE,
        TIMESTAMP_RANGE,
        MIN_LENGTH,
        PATTERN,
        MINIMUM,
        MAXIMUM,
        ENUM,
        MIN_ITEMS,
        MAX_ITEMS,
        UNIQUE_ITEMS,
        DATE_FORMAT,
    ];
}

/// One problem found in a case, event or case change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// JSON pointer (RFC 6901) of the offending value; `""` is the document root.
    pub pointer: String,
    /// Stable snake_case rule name, one of [`rule::ALL`].
    pub rule: &'static str,
    /// What is wrong, specifically enough to fix it (expected check character, allowed codes, …).
    pub message: String,
}

impl ValidationError {
    /// Builds an error.
    pub fn new(pointer: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        ValidationError {
            pointer: pointer.into(),
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.pointer, self.message, self.rule)
    }
}

impl std::error::Error for ValidationError {}

/// Every problem found in one document; never empty when returned as an error.
///
/// Serializes as a JSON array of [`ValidationError`] objects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order they were found (document order, mostly).
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }

    /// Whether any problem has this rule name at this pointer.
    pub fn contains(&self, pointer: &str, rule: &str) -> bool {
        self.0
            .iter()
            .any(|e| e.pointer == pointer && e.rule == rule)
    }

    /// `Ok(value)` when there is no problem, else `Err(self)`.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    pub(crate) fn push(
        &mut self,
        pointer: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(ValidationError::new(pointer, rule, message));
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} validation error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl From<ValidationError> for ValidationErrors {
    fn from(e: ValidationError) -> Self {
        ValidationErrors(vec![e])
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A string is not one of the codes of a code table (`FromStr` on [`Stage`](crate::Stage),
/// [`IdType`](crate::IdType), …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not in the {table} code table (allowed: {allowed})")]
pub struct ParseCodeError {
    /// Which table, e.g. `"stage"`.
    pub table: &'static str,
    /// The string that was not found.
    pub value: String,
    /// The allowed codes, comma-separated.
    pub allowed: String,
}

/// RFC 6901 escaping of one reference token.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_serialize() {
        let errs = ValidationErrors(vec![
            ValidationError::new("/applicant/id_number", rule::RESIDENT_ID_CHECKSUM, "bad"),
            ValidationError::new("", rule::JSON_SYNTAX, "eof"),
        ]);
        assert_eq!(
            errs.to_string(),
            "2 validation errors\n  /applicant/id_number: bad [resident_id_checksum]\n  : eof [json_syntax]"
        );
        let json = serde_json::to_value(&errs).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!([
                {"pointer": "/applicant/id_number", "rule": "resident_id_checksum", "message": "bad"},
                {"pointer": "", "rule": "json_syntax", "message": "eof"}
            ])
        );
    }

    #[test]
    fn rule_names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in rule::ALL {
            assert!(seen.insert(r), "duplicate rule {r}");
            assert!(
                r.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            );
        }
    }
}
