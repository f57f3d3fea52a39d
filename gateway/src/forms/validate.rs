//! A form value against its compiled schema: every problem at once, each
//! with the field's JSON pointer in the case (`/form/...`), a stable rule
//! name from the unified schema's `rule` table, a message that says how to
//! fix it, and the rule's place in the form schema (`keyword_location`).
//!
//! The walk follows the schema, never the value: it descends only where the
//! schema declares `properties` or `items`, so a hostile form cannot make it
//! recurse deeper than the operator's schema; and at most [`MAX_PROBLEMS`]
//! are listed, so a list of a million bad entries is not a million lines.

use super::schema::{Checksum, Node, escape};
use serde_json::Value;
use std::collections::HashSet;
use yiwang_schema::ids::{self, IdError};
use yiwang_schema::{ValidationError, rule};

/// The most form problems one answer lists.
pub const MAX_PROBLEMS: usize = 100;

/// One problem in a form value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormProblem {
    pub error: ValidationError,
    /// JSON pointer into the form schema of the keyword that failed
    /// (`/properties/amount/minimum`).
    pub keyword_location: String,
}

impl FormProblem {
    /// Whether this is a waivable checksum failure.
    pub fn is_checksum(&self) -> bool {
        [
            rule::USCC_CHECKSUM,
            rule::USCC_ORG_CODE_CHECKSUM,
            rule::RESIDENT_ID_CHECKSUM,
        ]
        .contains(&self.error.rule)
    }
}

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FormProblem>);

impl Problems {
    fn push(&mut self, node: &Node, keyword: &str, at: &str, rule: &'static str, message: String) {
        if self.0.len() < MAX_PROBLEMS {
            self.0.push(FormProblem {
                error: ValidationError::new(at, rule, message),
                keyword_location: format!("{}/{keyword}", node.location),
            });
        }
    }
}

/// Checks a case's form (the root schema describes an object) without
/// copying it into a [`Value`].
pub fn form(root: &Node, form: &serde_json::Map<String, Value>, out: &mut Problems) {
    object(root, form, "/form", out);
}

/// Checks `value` (at case pointer `at`) against `node`.
pub fn value(node: &Node, v: &Value, at: &str, out: &mut Problems) {
    if !node.types.is_empty() && !node.types.iter().any(|t| t.admits(v)) {
        let want: Vec<&str> = node.types.iter().map(|t| t.as_str()).collect();
        out.push(
            node,
            "type",
            at,
            rule::JSON_TYPE,
            format!("expected {}, got {}", want.join(" or "), kind(v)),
        );
        return;
    }
    if let Some(allowed) = &node.enumeration
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(
            node,
            "enum",
            at,
            rule::ENUM,
            format!("{v} is not one of {}", list.join(", ")),
        );
    }
    match v {
        Value::Object(map) => object(node, map, at, out),
        Value::Array(list) => array(node, list, at, out),
        Value::String(s) => string(node, s, at, out),
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                number(node, f, at, out);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

fn object(node: &Node, map: &serde_json::Map<String, Value>, at: &str, out: &mut Problems) {
    for name in &node.required {
        if !map.contains_key(name) {
            let field = format!("{at}/{}", escape(name));
            out.push(
                node,
                "required",
                &field,
                rule::REQUIRED,
                format!("required field `{name}` is missing"),
            );
        }
    }
    for (name, v) in map {
        let field = format!("{at}/{}", escape(name));
        match node.properties.get(name) {
            Some(child) => value(child, v, &field, out),
            None if node.closed => {
                let known: Vec<&str> = node.properties.keys().map(String::as_str).collect();
                out.push(
                    node,
                    "additionalProperties",
                    &field,
                    rule::UNKNOWN_FIELD,
                    format!(
                        "the item's form has no field `{name}` (fields: {})",
                        known.join(", ")
                    ),
                );
            }
            None => {}
        }
    }
}

fn array(node: &Node, list: &[Value], at: &str, out: &mut Problems) {
    let n = list.len() as u64;
    if let Some(min) = node.min_items.filter(|m| n < *m) {
        out.push(
            node,
            "minItems",
            at,
            rule::MIN_ITEMS,
            format!("{n} entries, at least {min} needed"),
        );
    }
    if let Some(max) = node.max_items.filter(|m| n > *m) {
        out.push(
            node,
            "maxItems",
            at,
            rule::MAX_ITEMS,
            format!("{n} entries, at most {max} allowed"),
        );
    }
    if node.unique_items {
        let mut seen = HashSet::new();
        for (i, v) in list.iter().enumerate() {
            if !seen.insert(v.to_string()) {
                let entry = format!("{at}/{i}");
                out.push(
                    node,
                    "uniqueItems",
                    &entry,
                    rule::UNIQUE_ITEMS,
                    format!("{v} is listed twice"),
                );
            }
        }
    }
    if let Some(items) = &node.items {
        for (i, v) in list.iter().enumerate() {
            value(items, v, &format!("{at}/{i}"), out);
        }
    }
}

fn string(node: &Node, s: &str, at: &str, out: &mut Problems) {
    let n = s.chars().count() as u64;
    if let Some(min) = node.min_length.filter(|m| n < *m) {
        out.push(
            node,
            "minLength",
            at,
            rule::MIN_LENGTH,
            format!("{n} characters, at least {min} needed"),
        );
    }
    if let Some(max) = node.max_length.filter(|m| n > *m) {
        out.push(
            node,
            "maxLength",
            at,
            rule::MAX_LENGTH,
            format!("{n} characters, at most {max} allowed"),
        );
    }
    if let Some(p) = node.pattern.as_ref().filter(|p| !p.regex.is_match(s)) {
        out.push(
            node,
            "pattern",
            at,
            rule::PATTERN,
            format!("{s:?} does not match {}", p.source),
        );
    }
    if node.date && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() {
        out.push(
            node,
            "format",
            at,
            rule::DATE_FORMAT,
            format!("{s:?} is not a date YYYY-MM-DD"),
        );
    }
    if let Some((name, table)) = &node.code_table
        && !table.codes.contains_key(s)
    {
        out.push(
            node,
            "x-code-table",
            at,
            rule::CODE_TABLE,
            format!(
                "{s:?} is not in code table `{name}` (allowed: {})",
                table.allowed()
            ),
        );
    }
    if let Some(checksum) = node.checksum {
        identity(node, checksum, s, at, out);
    }
}

fn number(node: &Node, f: f64, at: &str, out: &mut Problems) {
    if let Some(min) = node.minimum.filter(|m| f < *m) {
        out.push(
            node,
            "minimum",
            at,
            rule::MINIMUM,
            format!("{f} is below the minimum {min}"),
        );
    }
    if let Some(min) = node.exclusive_minimum.filter(|m| f <= *m) {
        out.push(
            node,
            "exclusiveMinimum",
            at,
            rule::MINIMUM,
            format!("{f} must be greater than {min}"),
        );
    }
    if let Some(max) = node.maximum.filter(|m| f > *m) {
        out.push(
            node,
            "maximum",
            at,
            rule::MAXIMUM,
            format!("{f} is above the maximum {max}"),
        );
    }
    if let Some(max) = node.exclusive_maximum.filter(|m| f >= *m) {
        out.push(
            node,
            "exclusiveMaximum",
            at,
            rule::MAXIMUM,
            format!("{f} must be less than {max}"),
        );
    }
}

/// The unified schema's identity-code checks on a form field, with its rule names.
fn identity(node: &Node, checksum: Checksum, s: &str, at: &str, out: &mut Problems) {
    let (problems, format_rule, checksum_rule, standard) = match checksum {
        Checksum::Uscc => (
            ids::uscc_problems(s),
            rule::USCC_FORMAT,
            rule::USCC_CHECKSUM,
            "GB 32100",
        ),
        Checksum::ResidentId => (
            ids::resident_id_problems(s),
            rule::RESIDENT_ID_FORMAT,
            rule::RESIDENT_ID_CHECKSUM,
            "GB 11643",
        ),
    };
    for problem in problems {
        let rule = match problem {
            IdError::Format(_) => format_rule,
            IdError::BirthDate(_) => rule::RESIDENT_ID_BIRTH_DATE,
            IdError::OrgCodeChecksum { .. } => rule::USCC_ORG_CODE_CHECKSUM,
            IdError::Checksum { .. } => checksum_rule,
        };
        out.push(
            node,
            "x-checksum",
            at,
            rule,
            format!("{s}: {problem} ({standard})"),
        );
    }
}
