//! `[code-tables.<name>]` and `[items."<code>"] form`: each code table has
//! codes; each form file exists, is JSON, and compiles (every keyword known,
//! every code table it names configured). A problem names the item, the
//! file and the rule's place in it (`/properties/amount/minimum`).

use super::Problems;
use crate::config::types::{CodeTableConfig, Config};
use crate::forms::{CodeTable, Form, FormCatalogue};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

/// The compiled forms of every item that declares one (the items whose form
/// has a problem are left out; the problem refuses the file).
pub(in crate::config) fn catalogue(
    config: &Config,
    p: &mut Problems<'_>,
    base: &Path,
) -> FormCatalogue {
    let tables = code_tables(&config.code_tables, p);
    let mut forms = Vec::new();
    for (code, item) in &config.items {
        let Some(file) = &item.get_ref().form else {
            continue;
        };
        let shown = file.get_ref().display().to_string();
        let problem = |p: &mut Problems<'_>, what: String| {
            p.at(file.span(), format!("item `{code}`: form {shown}: {what}"));
        };
        let path = base.join(file.get_ref());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problem(p, format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let schema: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problem(p, format!("not JSON: {e}"));
                continue;
            }
        };
        match Form::compile(code, &shown, &schema, &tables) {
            Ok(form) => forms.push(form),
            Err(errors) => {
                for e in errors {
                    let at = if e.location.is_empty() {
                        "/"
                    } else {
                        e.location.as_str()
                    };
                    problem(p, format!("{at}: {}", e.message));
                }
            }
        }
    }
    FormCatalogue::new(forms)
}

/// The code tables, each with at least one code and a usable name.
fn code_tables(
    tables: &BTreeMap<String, Spanned<CodeTableConfig>>,
    p: &mut Problems<'_>,
) -> BTreeMap<String, Arc<CodeTable>> {
    let mut out = BTreeMap::new();
    for (name, table) in tables {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            p.at(
                table.span(),
                format!("code table `{name}`: a name is 1-64 of a-z, 0-9, '-' and '_'"),
            );
        }
        let codes = &table.get_ref().codes;
        if codes.is_empty() {
            p.at(
                table.span(),
                format!("code table `{name}`: codes is empty; a form value could never be valid"),
            );
        }
        if let Some(blank) = codes.keys().find(|c| c.trim().is_empty()) {
            p.at(
                table.span(),
                format!("code table `{name}`: code {blank:?} is blank"),
            );
        }
        let table = CodeTable {
            codes: codes.clone(),
        };
        out.insert(name.clone(), Arc::new(table));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::ConfigError;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The demo configuration's forms, and the problems `config check`
    /// would report about them.
    fn demo() -> (FormCatalogue, Vec<ConfigError>) {
        let text = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap_or_default();
        let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let mut p = Problems::new(&text);
        let forms = catalogue(&config, &mut p, &repo().join("config"));
        (forms, p.into_sorted())
    }

    fn case(path: &str, item: Option<&str>) -> yiwang_schema::Case {
        let text = std::fs::read(repo().join(path)).unwrap_or_default();
        let mut case = yiwang_schema::read_case(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        if let Some(item) = item {
            item.clone_into(&mut case.item.code);
        }
        case
    }

    #[test]
    fn the_demo_forms_compile_and_every_example_case_satisfies_them() {
        let (forms, problems) = demo();
        assert_eq!(problems, vec![]);
        let items: Vec<&str> = forms.items().collect();
        assert_eq!(
            items,
            ["BA-XMBA-001", "SC-QYKB-001", "SC-SPJY-001", "ZJ-SGXK-001"]
        );
        for (path, item) in [
            (
                "adapters-sdk/schema/testdata/enterprise-establishment.json",
                None,
            ),
            ("adapters-sdk/schema/testdata/invalid-many.json", None),
            ("adapters-sdk/schema/testdata/food-licence.json", None),
            (
                "adapters-sdk/schema/testdata/legacy-uscc-override.json",
                None,
            ),
            (
                "plugins/housing-construction/fixtures/construction-permit.json",
                None,
            ),
            (
                "plugins/provincial-filing/fixtures/project-filing.json",
                None,
            ),
            // The demo files the permit case as a project filing too.
            (
                "plugins/housing-construction/fixtures/construction-permit.json",
                Some("BA-XMBA-001"),
            ),
        ] {
            let case = case(path, item);
            assert!(forms.get(&case.item.code).is_some(), "{path}: a form");
            assert_eq!(
                forms.check(&case).problems,
                vec![],
                "{path} as {:?}",
                case.item.code
            );
        }
    }

    #[test]
    fn the_demo_forms_declare_what_the_demo_adapters_read() {
        // The `/form/...` rows of the example adapters' FIELD_MAPPINGS
        // (plugins/*/src), per network, and the items the demo routes there.
        let (forms, _) = demo();
        let read: &[(&str, &[&str], &[&str])] = &[
            (
                "tax",
                &["SC-QYKB-001"],
                &["/form/registered_address", "/form/business_scope"],
            ),
            ("public-security", &["SC-QYKB-001"], &["/form/seal_types"]),
            (
                "housing-construction",
                &["ZJ-SGXK-001"],
                &["/form/project_name", "/form/project_address"],
            ),
            (
                "provincial-filing",
                &["BA-XMBA-001"],
                &["/form/project_name"],
            ),
        ];
        for (network, items, fields) in read {
            let mappings: Vec<(String, String)> = fields
                .iter()
                .map(|f| (f.to_string(), "x".to_string()))
                .collect();
            let routed = items.iter().filter_map(|i| forms.get(i));
            assert_eq!(crate::forms::mismatches(network, &mappings, routed), vec![]);
        }
    }
}
