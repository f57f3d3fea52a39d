//! JSON Schema (draft 2020-12) generated from the types, as published in docs/schema/.

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::Value;

use crate::{Case, CaseChange, Event, Notice};

/// Base of the `$id` of every published schema.
const ID_BASE: &str = "https://example.invalid/yiwang/schema/";

fn schema_for<T: JsonSchema>(file: &str) -> Value {
    let mut schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("$id".to_owned(), Value::String(format!("{ID_BASE}{file}")));
    schema.to_value()
}

/// JSON Schema of [`Case`], published as `docs/schema/case.schema.json`.
///
/// The schema states the structure and simple patterns; checksums, code-table cross-checks
/// and overrides are only enforced by [`Case::validate`].
pub fn case_json_schema() -> Value {
    schema_for::<Case>("case.schema.json")
}

/// JSON Schema of [`Event`], published as `docs/schema/event.schema.json`.
pub fn event_json_schema() -> Value {
    schema_for::<Event>("event.schema.json")
}

/// JSON Schema of [`CaseChange`], published as `docs/schema/case-change.schema.json`.
pub fn case_change_json_schema() -> Value {
    schema_for::<CaseChange>("case-change.schema.json")
}

/// JSON Schema of [`Notice`] (a subscriber webhook body), published as
/// `docs/schema/notice.schema.json`.
pub fn notice_json_schema() -> Value {
    schema_for::<Notice>("notice.schema.json")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Compares the generated schemas with the published files; `YIWANG_BLESS=1` rewrites them.
    #[test]
    fn published_schemas_are_up_to_date() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
        let bless = std::env::var_os("YIWANG_BLESS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (file, schema) in [
            ("case.schema.json", case_json_schema()),
            ("event.schema.json", event_json_schema()),
            ("case-change.schema.json", case_change_json_schema()),
            ("notice.schema.json", notice_json_schema()),
        ] {
            let path = dir.join(file);
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n";
            if bless {
                if let Err(e) =
                    std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text))
                {
                    panic!("cannot write {}: {e}", path.display());
                }
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(format!("docs/schema/{file}"));
            }
        }
        assert!(
            stale.is_empty(),
            "published JSON Schema is stale or missing: {}\nrun `YIWANG_BLESS=1 cargo test -p yiwang-schema` and commit the result",
            stale.join(", ")
        );
    }
}
