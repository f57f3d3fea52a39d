//! What a network's adapter says it reads from a form (`describe`'s
//! `field-mappings`, e.g. `/form/project_name` → `xmmc`) against the forms
//! of the items routed to that network.
//!
//! A mapping from a field the item's form does not declare means the
//! adapter will look for a value no accepted case is guaranteed to carry —
//! a renamed field, an adapter written for another form — and every case
//! would reach the ministry without it. The gateway checks this at start and
//! puts only that network in alert (its queue held, intake still accepting,
//! every other network serving): the same blast radius as an adapter that
//! fails to load, and for the same reason — one bad adapter, or one form
//! edit, must not stop the gateway.

use super::Form;
use std::fmt;

/// One mapping that reads a field an item's form does not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingMismatch {
    pub network: String,
    pub item: String,
    /// The form file, as the configuration names it.
    pub file: String,
    /// The unified field the adapter maps (`/form/...`).
    pub field: String,
    /// The ministry field it fills.
    pub ministry: String,
    pub why: String,
}

impl fmt::Display for MappingMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "network `{}`: the adapter maps {} (to `{}`), which the form of item `{}` ({}) does not declare: {}",
            self.network, self.field, self.ministry, self.item, self.file, self.why
        )
    }
}

/// The mappings of `network`'s adapter (unified pointer, ministry field)
/// that read a form field one of `forms` (the forms of the items routed to
/// it) does not declare.
pub fn mismatches<'a>(
    network: &str,
    mappings: &[(String, String)],
    forms: impl IntoIterator<Item = &'a Form>,
) -> Vec<MappingMismatch> {
    let mut out = Vec::new();
    for form in forms {
        for (field, ministry) in mappings {
            if let Some(why) = form.undeclared(field) {
                out.push(MappingMismatch {
                    network: network.to_string(),
                    item: form.item.clone(),
                    file: form.file.clone(),
                    field: field.clone(),
                    ministry: ministry.clone(),
                    why,
                });
            }
        }
    }
    out
}
