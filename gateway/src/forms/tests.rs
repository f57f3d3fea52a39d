//! The form validator rule by rule (each one made to fail), the compiler's
//! refusals, overrides on form checksums, and the field mapping check.

use super::*;
use serde_json::json;
use yiwang_schema::ValidationErrors;

fn tables() -> BTreeMap<String, Arc<CodeTable>> {
    let codes = [("company", "单位公章"), ("finance", "财务专用章")]
        .into_iter()
        .map(|(c, l)| (c.to_string(), l.to_string()))
        .collect();
    BTreeMap::from([("seal-type".to_string(), Arc::new(CodeTable { codes }))])
}

fn form(schema: Value) -> Form {
    Form::compile("X-1", "forms/X-1.json", &schema, &tables())
        .unwrap_or_else(|e| panic!("compiles: {e:?}"))
}

/// The (pointer, rule, keyword location) of every problem of `value`.
fn problems(schema: Value, value: Value) -> Vec<(String, &'static str, String)> {
    let Value::Object(map) = value else {
        panic!("a form is an object")
    };
    form(schema)
        .check(&map)
        .into_iter()
        .map(|p| (p.error.pointer, p.error.rule, p.keyword_location))
        .collect()
}

fn one(pointer: &str, rule: &'static str, keyword: &str) -> Vec<(String, &'static str, String)> {
    vec![(pointer.to_string(), rule, keyword.to_string())]
}

fn field(schema: Value) -> Value {
    json!({ "type": "object", "properties": { "f": schema } })
}

#[test]
fn each_rule_refuses_a_bad_value_and_passes_a_good_one() {
    let cases: &[(Value, Value, Value, &'static str, &str)] = &[
        (
            json!({"type": "string"}),
            json!("a"),
            json!(1),
            rule::JSON_TYPE,
            "type",
        ),
        (
            json!({"type": "integer"}),
            json!(3),
            json!(3.5),
            rule::JSON_TYPE,
            "type",
        ),
        (
            json!({"minLength": 2}),
            json!("ab"),
            json!("a"),
            rule::MIN_LENGTH,
            "minLength",
        ),
        (
            json!({"maxLength": 2}),
            json!("福州"),
            json!("福州市"),
            rule::MAX_LENGTH,
            "maxLength",
        ),
        (
            json!({"pattern": "^[0-9]+$"}),
            json!("12"),
            json!("1a"),
            rule::PATTERN,
            "pattern",
        ),
        (
            json!({"format": "date"}),
            json!("2026-12-15"),
            json!("2026-02-30"),
            rule::DATE_FORMAT,
            "format",
        ),
        (
            json!({"minimum": 1}),
            json!(1),
            json!(0.5),
            rule::MINIMUM,
            "minimum",
        ),
        (
            json!({"exclusiveMinimum": 0}),
            json!(0.1),
            json!(0),
            rule::MINIMUM,
            "exclusiveMinimum",
        ),
        (
            json!({"maximum": 10}),
            json!(10),
            json!(11),
            rule::MAXIMUM,
            "maximum",
        ),
        (
            json!({"exclusiveMaximum": 10}),
            json!(9),
            json!(10),
            rule::MAXIMUM,
            "exclusiveMaximum",
        ),
        (
            json!({"enum": ["a", 1]}),
            json!(1),
            json!("b"),
            rule::ENUM,
            "enum",
        ),
        (
            json!({"minItems": 1}),
            json!([1]),
            json!([]),
            rule::MIN_ITEMS,
            "minItems",
        ),
        (
            json!({"maxItems": 1}),
            json!([1]),
            json!([1, 2]),
            rule::MAX_ITEMS,
            "maxItems",
        ),
        (
            json!({"x-code-table": "seal-type"}),
            json!("company"),
            json!("bank"),
            rule::CODE_TABLE,
            "x-code-table",
        ),
        (
            json!({"x-checksum": "uscc"}),
            json!("91350100M000100Y43"),
            json!("91350100M000100Y44"),
            rule::USCC_CHECKSUM,
            "x-checksum",
        ),
        (
            json!({"x-checksum": "uscc"}),
            json!("91350100M000100Y43"),
            json!("9135"),
            rule::USCC_FORMAT,
            "x-checksum",
        ),
        (
            json!({"x-checksum": "resident-id"}),
            json!("11010519491231002X"),
            json!("110105194912310021"),
            rule::RESIDENT_ID_CHECKSUM,
            "x-checksum",
        ),
    ];
    for (schema, good, bad, rule, keyword) in cases {
        let schema = field(schema.clone());
        assert_eq!(
            problems(schema.clone(), json!({"f": good})),
            vec![],
            "{schema} admits {good}"
        );
        assert_eq!(
            problems(schema.clone(), json!({"f": bad})),
            one("/form/f", rule, &format!("/properties/f/{keyword}")),
            "{schema} refuses {bad}"
        );
    }
}

#[test]
fn required_unknown_and_repeated_entries_name_their_own_field() {
    let schema = json!({
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string"},
            "seals": {"type": "array", "uniqueItems": true}
        }
    });
    assert_eq!(
        problems(
            schema.clone(),
            json!({"nmae": "x", "seals": ["a", "b", "a"]})
        ),
        vec![
            ("/form/name".into(), rule::REQUIRED, "/required".into()),
            (
                "/form/nmae".into(),
                rule::UNKNOWN_FIELD,
                "/additionalProperties".into()
            ),
            (
                "/form/seals/2".into(),
                rule::UNIQUE_ITEMS,
                "/properties/seals/uniqueItems".into()
            ),
        ]
    );
    // Without `additionalProperties: false`, other fields pass.
    let open = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    assert_eq!(problems(open, json!({"name": "x", "extra": 1})), vec![]);
}

#[test]
fn every_problem_is_listed_at_once_down_nested_objects_and_lists() {
    let schema = json!({
        "type": "object",
        "properties": {
            "capital": {"type": "object", "required": ["currency"], "properties": {
                "amount": {"type": "string", "pattern": "^[0-9]+$"},
                "currency": {"type": "string"}
            }},
            "seals": {"type": "array", "items": {"type": "string", "x-code-table": "seal-type"}},
            "area": {"type": "number", "exclusiveMinimum": 0}
        }
    });
    let found = problems(
        schema,
        json!({"capital": {"amount": "1,000"}, "seals": ["company", "bank", "tax"], "area": -1}),
    );
    let pointers: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/form/area",
            "/form/capital/currency",
            "/form/capital/amount",
            "/form/seals/1",
            "/form/seals/2"
        ]
    );
    assert_eq!(found[3].2, "/properties/seals/items/x-code-table");
}

#[test]
fn a_hostile_form_gets_at_most_max_problems() {
    let schema = field(json!({"type": "array", "items": {"type": "string"}}));
    let many = vec![json!(1); MAX_PROBLEMS * 3];
    assert_eq!(problems(schema, json!({"f": many})).len(), MAX_PROBLEMS);
}

#[test]
fn the_compiler_refuses_what_it_would_not_enforce_with_the_place() {
    let refused = |schema: Value| -> Vec<String> {
        match Form::compile("X-1", "f.json", &schema, &tables()) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    };
    let e = refused(json!({
        "type": "object",
        "required": ["missing"],
        "properties": {
            "a": {"$ref": "#/defs/x"},
            "b": {"pattern": "("},
            "c": {"x-code-table": "nope"},
            "d": {"minimum": "1"},
            "e": {"format": "email"},
            "f": {"type": "text"},
            "g": {"x-checksum": "luhn"}
        }
    }));
    let starts = [
        "/properties/a/$ref: keyword `$ref` is not supported",
        "/properties/b/pattern: not a valid regular expression",
        "/properties/c/x-code-table: code table `nope` is not configured (configured: seal-type)",
        "/properties/d/minimum: must be a number",
        "/properties/e/format: only \"date\"",
        "/properties/f/type: \"text\" is not a JSON type",
        "/properties/g/x-checksum: must be \"uscc\"",
        "/required: `missing` is required but not declared",
    ];
    assert_eq!(e.len(), starts.len(), "{e:#?}");
    for (got, want) in e.iter().zip(starts) {
        assert!(got.starts_with(want), "{got} should start with {want}");
    }
    assert!(refused(json!({"type": "array"}))[0].starts_with("/type: the form is a JSON object"));
    assert!(
        refused(json!({"$schema": "http://json-schema.org/draft-07/schema#"}))[0]
            .starts_with("/$schema: only JSON Schema draft 2020-12")
    );
    assert!(refused(json!([]))[0].starts_with(": a schema must be a JSON object"));
    assert_eq!(
        refused(
            json!({"$schema": schema::DIALECT, "title": "t", "description": "d", "type": "object"})
        ),
        Vec::<String>::new(),
        "annotations are accepted"
    );
}

/// A case of item `X-1` with `form` and the given overrides.
fn case(form: Value, overrides: &[&str]) -> Case {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters-sdk/schema/testdata/food-licence.json");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut v: Value = serde_json::from_str(&text).unwrap_or_default();
    v["item"]["code"] = json!("X-1");
    v["form"] = form;
    v["checksum_overrides"] = json!(
        overrides
            .iter()
            .map(|p| json!({"pointer": p, "reason": "legacy code", "approved_by": "staff-1"}))
            .collect::<Vec<_>>()
    );
    serde_json::from_value(v).unwrap_or_else(|e| panic!("a case: {e}"))
}

#[test]
fn an_override_naming_a_form_field_waives_its_checksum_only() {
    let catalogue = FormCatalogue::new([form(json!({
        "type": "object",
        "properties": {
            "contractor": {"x-checksum": "uscc"},
            "other": {"x-checksum": "uscc"}
        }
    }))]);
    let bad = "91350100M000100Y44";
    // No override: the checksum failure is listed.
    let c = case(json!({"contractor": bad}), &[]);
    let check = catalogue.check(&c);
    assert_eq!(check.problems.len(), 1);
    assert_eq!(check.problems[0].error.rule, rule::USCC_CHECKSUM);
    // An override waives it, and the unified schema's "unused" verdict on
    // that override is dropped: the case passes with the override applied.
    let c = case(json!({"contractor": bad}), &["/form/contractor"]);
    let check = catalogue.check(&c);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.waived_by, BTreeSet::from([0]));
    let unified = c.validate();
    assert!(
        unified
            .as_ref()
            .is_err_and(|e| e.contains("/checksum_overrides/0/pointer", rule::OVERRIDE_UNUSED))
    );
    let applied = verdict(&c, unified, check).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(applied.len(), 1);
    // A format problem is never waived.
    let c = case(json!({"contractor": "9135"}), &["/form/contractor"]);
    assert_eq!(catalogue.check(&c).problems.len(), 1);
}

#[test]
fn the_verdict_lists_unified_and_form_problems_together() {
    let catalogue = FormCatalogue::new([form(field(json!({"type": "string"})))]);
    let mut c = case(json!({"f": 1}), &[]);
    c.bureau.uscc = "91350100M000100Y44".into();
    let check = catalogue.check(&c);
    let invalid = verdict(&c, c.validate(), check).expect_err("two problems");
    assert_eq!(invalid.unified[0].pointer, "/bureau/uscc");
    assert_eq!(invalid.form[0].error.pointer, "/form/f");
    assert_eq!(invalid.len(), 2);
    // An item without a form: nothing to check.
    c.item.code = "OTHER".into();
    assert_eq!(catalogue.check(&c), FormCheck::default());
    let none: Result<Vec<ChecksumOverride>, ValidationErrors> = Ok(Vec::new());
    assert!(verdict(&c, none, FormCheck::default()).is_ok());
}

#[test]
fn a_mapping_from_an_undeclared_form_field_is_named_with_network_item_and_field() {
    let f = form(json!({
        "type": "object",
        "properties": {
            "project_name": {"type": "string"},
            "capital": {"type": "object", "properties": {"amount": {"type": "string"}}},
            "seals": {"type": "array", "items": {"type": "object", "properties": {"kind": {}}}},
            "free": {"type": "object"}
        }
    }));
    let mappings: Vec<(String, String)> = [
        ("/form", "bdxx"),
        ("/applicant/name", "sqrmc"),
        ("/form/project_name", "xmmc"),
        ("/form/capital/amount", "zczb"),
        ("/form/seals/*/kind", "yzlx"),
        ("/form/seals/0/kind", "yzlx0"),
        ("/form/free/anything", "qt"),
        ("/form/project_address", "xmdz"),
        ("/form/capital/currency", "bz"),
        ("/form/seals/*/colour", "ys"),
    ]
    .into_iter()
    .map(|(u, m)| (u.to_string(), m.to_string()))
    .collect();
    let found = mismatches("housing", &mappings, [&f]);
    let fields: Vec<&str> = found.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "/form/project_address",
            "/form/capital/currency",
            "/form/seals/*/colour"
        ]
    );
    assert_eq!(
        found[0].to_string(),
        "network `housing`: the adapter maps /form/project_address (to `xmdz`), which the form of item `X-1` (forms/X-1.json) does not declare: `/form` declares no field `project_address` (it declares: capital, free, project_name, seals)"
    );
}
