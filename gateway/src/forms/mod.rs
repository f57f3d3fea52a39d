//! Item forms (事项表单): each item may declare the fields of its case's
//! `form` as a JSON Schema file, with code tables shared across items and
//! the unified schema's identity-code checksums, and the intake then refuses
//! a case whose form breaks it — with every problem at once, each naming its
//! field — instead of accepting it (202) for a ministry to dead-letter days
//! later, one field at a time.
//!
//! Why here and not in the unified schema crate: a form is configuration,
//! not the unified case — it differs per item and per deployment, is read
//! from files at start, and needs regular expressions; adapters, which build
//! the schema crate for `wasm32-wasip2`, never see it. The rule names are
//! the schema crate's (`yiwang_schema::rule`), so a client matches form and
//! case problems alike.
//!
//! Rooms: [`schema`] compiles a form file (and says what it refuses),
//! [`validate`] walks a form value, [`mapping`] checks what each network's
//! adapter declares it reads from a form against the forms of the items
//! routed to it; this file holds the catalogue and how a form's problems
//! join the unified schema's into one answer.

pub mod mapping;
pub mod schema;
pub mod validate;

#[cfg(test)]
mod tests;

pub use mapping::{MappingMismatch, mismatches};
pub use schema::SchemaError;
pub use validate::{FormProblem, MAX_PROBLEMS};

use schema::Node;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use yiwang_schema::{Case, ChecksumOverride, ValidationError, ValidationErrors, rule};

/// A code table (`[code-tables.<name>]`): the allowed codes and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeTable {
    pub codes: BTreeMap<String, String>,
}

impl CodeTable {
    /// The allowed codes with their labels, for messages (the first 20).
    pub fn allowed(&self) -> String {
        let mut out: Vec<String> = self
            .codes
            .iter()
            .take(20)
            .map(|(code, label)| {
                if label.is_empty() {
                    code.clone()
                } else {
                    format!("{code} {label}")
                }
            })
            .collect();
        if self.codes.len() > 20 {
            out.push(format!("… {} more", self.codes.len() - 20));
        }
        out.join(", ")
    }
}

/// One item's form: its schema file (as configured) and the compiled schema.
#[derive(Debug, Clone)]
pub struct Form {
    pub item: String,
    /// The file, as the configuration names it.
    pub file: String,
    root: Node,
}

impl Form {
    /// Compiles an item's form schema against the configured code tables.
    pub fn compile(
        item: &str,
        file: &str,
        schema: &Value,
        tables: &BTreeMap<String, Arc<CodeTable>>,
    ) -> Result<Form, Vec<SchemaError>> {
        Ok(Form {
            item: item.to_string(),
            file: file.to_string(),
            root: schema::compile(schema, tables)?,
        })
    }

    /// Every problem of a case's form (at most [`MAX_PROBLEMS`]).
    pub fn check(&self, form: &serde_json::Map<String, Value>) -> Vec<FormProblem> {
        let mut out = validate::Problems::default();
        validate::form(&self.root, form, &mut out);
        out.0
    }

    /// Why the form does not declare the field at `pointer` (a pointer into
    /// the case, `/form/...`), or `None` when it does or cannot tell (a
    /// pointer outside the form, or inside a part the form leaves open).
    pub fn undeclared(&self, pointer: &str) -> Option<String> {
        let rest = pointer.strip_prefix("/form/")?;
        let mut node = &self.root;
        let mut path = String::from("/form");
        for token in rest.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            let index = token == "*" || token.bytes().all(|b| b.is_ascii_digit());
            if let (true, Some(items)) = (index, &node.items) {
                node = items;
            } else if node.properties.is_empty() && !node.closed {
                return None;
            } else if let Some(child) = node.properties.get(&token) {
                node = child;
            } else {
                let known: Vec<&str> = node.properties.keys().map(String::as_str).collect();
                return Some(format!(
                    "`{path}` declares no field `{token}` (it declares: {})",
                    known.join(", ")
                ));
            }
            path.push('/');
            path.push_str(&schema::escape(&token));
        }
        None
    }
}

/// The forms of every item that declares one, by item code.
#[derive(Debug, Clone, Default)]
pub struct FormCatalogue {
    forms: BTreeMap<String, Arc<Form>>,
}

impl FormCatalogue {
    pub fn new(forms: impl IntoIterator<Item = Form>) -> FormCatalogue {
        FormCatalogue {
            forms: forms
                .into_iter()
                .map(|f| (f.item.clone(), Arc::new(f)))
                .collect(),
        }
    }

    /// An item's form, if it declares one.
    pub fn get(&self, item: &str) -> Option<&Form> {
        self.forms.get(item).map(Arc::as_ref)
    }

    pub fn len(&self) -> usize {
        self.forms.len()
    }

    /// The codes of the items that declare a form.
    pub fn items(&self) -> impl Iterator<Item = &str> {
        self.forms.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// A case's form problems (none when its item declares no form), its
    /// checksum overrides applied: a failing checksum of a form field whose
    /// pointer an override names is waived, as for the unified fields.
    pub fn check(&self, case: &Case) -> FormCheck {
        let Some(form) = self.get(&case.item.code) else {
            return FormCheck::default();
        };
        let overrides = &case.checksum_overrides;
        let mut waived_by = BTreeSet::new();
        let problems = form
            .check(&case.form)
            .into_iter()
            .filter(|p| {
                let by = overrides.iter().position(|o| o.pointer == p.error.pointer);
                match by.filter(|_| p.is_checksum()) {
                    Some(i) => {
                        waived_by.insert(i);
                        false
                    }
                    None => true,
                }
            })
            .collect();
        FormCheck {
            problems,
            waived_by,
        }
    }
}

/// What the form check of one case found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormCheck {
    pub problems: Vec<FormProblem>,
    /// The checksum overrides (by index) that waived a form field's checksum.
    pub waived_by: BTreeSet<usize>,
}

/// Every problem of a case, the unified schema's and the form's, in one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalid {
    pub unified: Vec<ValidationError>,
    pub form: Vec<FormProblem>,
}

impl Invalid {
    pub fn len(&self) -> usize {
        self.unified.len() + self.form.len()
    }

    pub fn is_empty(&self) -> bool {
        self.unified.is_empty() && self.form.is_empty()
    }
}

/// The verdict on a case: the unified schema's result and the form check
/// together. An override the unified schema found unused because it names
/// a form field is not unused when it waived that field's checksum. On
/// success, the overrides applied (every override, since an unused one is
/// an error).
pub fn verdict(
    case: &Case,
    unified: Result<Vec<ChecksumOverride>, ValidationErrors>,
    form: FormCheck,
) -> Result<Vec<ChecksumOverride>, Invalid> {
    let unified = match unified {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .filter(|e| {
                !(e.rule == rule::OVERRIDE_UNUSED
                    && form
                        .waived_by
                        .iter()
                        .any(|i| e.pointer == format!("/checksum_overrides/{i}/pointer")))
            })
            .collect(),
    };
    let invalid = Invalid {
        unified,
        form: form.problems,
    };
    if invalid.is_empty() {
        Ok(case.checksum_overrides.clone())
    } else {
        Err(invalid)
    }
}
