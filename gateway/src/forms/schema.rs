//! A form schema compiled once, at configuration load: the JSON Schema
//! (draft 2020-12) subset an item's form is written in, plus two keywords of
//! our own, `x-code-table` (a configured code table) and `x-checksum` (the
//! unified schema's identity-code checksums).
//!
//! Why a subset, and why refuse the rest: a keyword this compiler does not
//! know would otherwise be ignored, and an operator who writes `oneOf` or
//! `$ref` would believe a rule is enforced that is not. So every keyword is
//! either enforced, a pure annotation (`title`, `description`, …), or a
//! configuration error naming its place in the schema.

use super::CodeTable;
use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The JSON Schema dialect a form may name in `$schema`.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Keywords with no effect on validation.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords this subset enforces.
pub const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "enum",
    "x-code-table",
    "x-checksum",
];

/// A rule of a form schema that cannot be compiled: where in the schema
/// (a JSON pointer into the file, e.g. `/properties/amount/minimum`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SchemaError {
    pub location: String,
    pub message: String,
}

/// A JSON type as `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

impl JsonType {
    fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            "null" => JsonType::Null,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
        }
    }

    /// Whether `value` is of this type (an integer is also a number).
    pub fn admits(self, value: &Value) -> bool {
        match self {
            JsonType::Object => value.is_object(),
            JsonType::Array => value.is_array(),
            JsonType::String => value.is_string(),
            JsonType::Number => value.is_number(),
            JsonType::Integer => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            JsonType::Boolean => value.is_boolean(),
            JsonType::Null => value.is_null(),
        }
    }
}

/// The identity-code checksums `x-checksum` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The unified social credit code, GB 32100 (and its GB 11714 organisation code).
    Uscc,
    /// The resident ID number, GB 11643.
    ResidentId,
}

/// A `pattern`, as written and compiled.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: Regex,
}

/// One compiled (sub)schema, with its place in the file for error reports.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// JSON pointer of this schema in the form file (`""` is the root).
    pub location: String,
    pub types: Vec<JsonType>,
    pub properties: BTreeMap<String, Node>,
    pub required: Vec<String>,
    /// `additionalProperties: false`.
    pub closed: bool,
    pub items: Option<Box<Node>>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<Pattern>,
    /// `format: "date"` (the only format enforced).
    pub date: bool,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    pub enumeration: Option<Vec<Value>>,
    pub code_table: Option<(String, Arc<CodeTable>)>,
    pub checksum: Option<Checksum>,
}

/// Compiles a form schema; every problem is reported, not just the first.
/// The root must describe an object (the case's `form` always is one).
pub fn compile(
    schema: &Value,
    tables: &BTreeMap<String, Arc<CodeTable>>,
) -> Result<Node, Vec<SchemaError>> {
    let mut c = Compiler {
        tables,
        errors: Vec::new(),
    };
    let root = c.node(schema, "");
    if !root.types.is_empty() && root.types != [JsonType::Object] {
        c.error(
            "/type",
            "the form is a JSON object: the root's type must be \"object\"",
        );
    }
    if c.errors.is_empty() {
        Ok(root)
    } else {
        Err(c.errors)
    }
}

struct Compiler<'a> {
    tables: &'a BTreeMap<String, Arc<CodeTable>>,
    errors: Vec<SchemaError>,
}

impl Compiler<'_> {
    fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SchemaError {
            location: location.into(),
            message: message.into(),
        });
    }

    fn node(&mut self, schema: &Value, at: &str) -> Node {
        let mut node = Node {
            location: at.to_string(),
            ..Node::default()
        };
        let Some(map) = schema.as_object() else {
            self.error(at, "a schema must be a JSON object");
            return node;
        };
        for (key, value) in map {
            let here = format!("{at}/{}", escape(key));
            self.keyword(&mut node, key, value, &here);
        }
        for name in &node.required {
            if !node.properties.contains_key(name) {
                self.error(
                    format!("{at}/required"),
                    format!("`{name}` is required but not declared in `properties`"),
                );
            }
        }
        node
    }

    fn keyword(&mut self, node: &mut Node, key: &str, value: &Value, here: &str) {
        match key {
            "$schema" if value.as_str() != Some(DIALECT) => {
                self.error(here, format!("only JSON Schema draft 2020-12 ({DIALECT})"));
            }
            k if ANNOTATIONS.contains(&k) => {}
            "type" => node.types = self.types(value, here),
            "properties" => node.properties = self.properties(value, here),
            "required" => node.required = self.strings(value, here),
            "additionalProperties" => match value.as_bool() {
                Some(b) => node.closed = !b,
                None => self.error(
                    here,
                    "must be true or false (schemas here are not supported)",
                ),
            },
            "items" => node.items = Some(Box::new(self.node(value, here))),
            "minItems" => node.min_items = self.count(value, here),
            "maxItems" => node.max_items = self.count(value, here),
            "minLength" => node.min_length = self.count(value, here),
            "maxLength" => node.max_length = self.count(value, here),
            "uniqueItems" => match value.as_bool() {
                Some(b) => node.unique_items = b,
                None => self.error(here, "must be true or false"),
            },
            "pattern" => node.pattern = self.pattern(value, here),
            "format" => match value.as_str() {
                Some("date") => node.date = true,
                _ => self.error(here, "only \"date\" (YYYY-MM-DD) is supported"),
            },
            "minimum" => node.minimum = self.number(value, here),
            "maximum" => node.maximum = self.number(value, here),
            "exclusiveMinimum" => node.exclusive_minimum = self.number(value, here),
            "exclusiveMaximum" => node.exclusive_maximum = self.number(value, here),
            "enum" => match value.as_array() {
                Some(values) if !values.is_empty() => node.enumeration = Some(values.clone()),
                _ => self.error(here, "must be a non-empty array of values"),
            },
            "x-code-table" => node.code_table = self.code_table(value, here),
            "x-checksum" => node.checksum = self.checksum(value, here),
            other => self.error(
                here,
                format!(
                    "keyword `{other}` is not supported by Yiwang form schemas (supported: {})",
                    KEYWORDS.join(", ")
                ),
            ),
        }
    }

    fn types(&mut self, value: &Value, here: &str) -> Vec<JsonType> {
        let names: Vec<&Value> = match value {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::new();
        for name in names {
            match name.as_str().and_then(JsonType::parse) {
                Some(t) => out.push(t),
                None => self.error(
                    here,
                    format!("{name} is not a JSON type (object, array, string, integer, number, boolean, null)"),
                ),
            }
        }
        out
    }

    fn properties(&mut self, value: &Value, here: &str) -> BTreeMap<String, Node> {
        let Some(map) = value.as_object() else {
            self.error(here, "must be an object of schemas");
            return BTreeMap::new();
        };
        map.iter()
            .map(|(name, schema)| {
                let at = format!("{here}/{}", escape(name));
                (name.clone(), self.node(schema, &at))
            })
            .collect()
    }

    fn strings(&mut self, value: &Value, here: &str) -> Vec<String> {
        match value
            .as_array()
            .map(|l| l.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        {
            Some(Some(names)) => names.into_iter().map(str::to_string).collect(),
            _ => {
                self.error(here, "must be an array of property names");
                Vec::new()
            }
        }
    }

    fn count(&mut self, value: &Value, here: &str) -> Option<u64> {
        let n = value.as_u64();
        if n.is_none() {
            self.error(here, "must be a non-negative integer");
        }
        n
    }

    fn number(&mut self, value: &Value, here: &str) -> Option<f64> {
        let n = value.as_f64();
        if n.is_none() {
            self.error(here, "must be a number");
        }
        n
    }

    fn pattern(&mut self, value: &Value, here: &str) -> Option<Pattern> {
        let Some(source) = value.as_str() else {
            self.error(here, "must be a string (a regular expression)");
            return None;
        };
        match Regex::new(source) {
            Ok(regex) => Some(Pattern {
                source: source.to_string(),
                regex,
            }),
            Err(e) => {
                // The parser's report spans lines (the pattern, a caret, the
                // reason); a configuration problem is one line: the reason.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or_default();
                let why = why.trim().trim_start_matches("error: ");
                self.error(here, format!("not a valid regular expression: {why}"));
                None
            }
        }
    }

    fn code_table(&mut self, value: &Value, here: &str) -> Option<(String, Arc<CodeTable>)> {
        let Some(name) = value.as_str() else {
            self.error(here, "must name a code table (a string)");
            return None;
        };
        match self.tables.get(name) {
            Some(table) => Some((name.to_string(), table.clone())),
            None => {
                let known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
                self.error(
                    here,
                    format!(
                        "code table `{name}` is not configured (configured: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        }
    }

    fn checksum(&mut self, value: &Value, here: &str) -> Option<Checksum> {
        match value.as_str() {
            Some("uscc") => Some(Checksum::Uscc),
            Some("resident-id") => Some(Checksum::ResidentId),
            _ => {
                self.error(
                    here,
                    "must be \"uscc\" (GB 32100) or \"resident-id\" (GB 11643)",
                );
                None
            }
        }
    }
}

/// RFC 6901 escaping of one reference token.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
