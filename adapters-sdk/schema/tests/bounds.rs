//! Content bounds: each bound just inside passes, just outside fails with its pointer and rule.
#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use yiwang_schema::bounds::{
    ADDRESS_MAX, FORM_BYTES_MAX, FORM_DEPTH_MAX, FORM_KEY_MAX, FORM_KEYS_MAX, FORM_PROBLEMS_MAX,
    FUTURE_SKEW_MAX_SECS, IDENTIFIER_MAX, NAME_MAX, TEXT_MAX,
};
use yiwang_schema::{
    TimeWindow, ValidationErrors, parse_case, parse_case_at, parse_case_change, rule,
};

fn testdata(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The enterprise example with `value` put at `pointer`.
fn with(pointer: &str, value: Value) -> Vec<u8> {
    let mut case = testdata("enterprise-establishment.json");
    *case.pointer_mut(pointer).unwrap() = value;
    serde_json::to_vec(&case).unwrap()
}

/// The enterprise example with `form` as its form.
fn with_form(form: Value) -> Vec<u8> {
    with("/form", form)
}

fn errors(json: &[u8]) -> ValidationErrors {
    match parse_case(json) {
        Ok(c) => panic!("expected errors, got a valid case {}", c.case.case_number),
        Err(e) => e,
    }
}

fn fails(json: &[u8], pointer: &str, rule: &str) {
    let e = errors(json);
    assert!(
        e.contains(pointer, rule),
        "expected {rule} at {pointer}, got {e}"
    );
}

fn passes(json: &[u8]) {
    if let Err(e) = parse_case(json) {
        panic!("expected a valid case, got {e}");
    }
}

/// A one-member object.
fn obj(key: &str, value: Value) -> Value {
    Value::Object([(key.to_owned(), value)].into_iter().collect())
}

fn chars(n: usize) -> Value {
    Value::String("名".repeat(n))
}

#[test]
fn every_example_case_is_within_bounds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for path in [
        "adapters-sdk/schema/testdata/enterprise-establishment.json",
        "adapters-sdk/schema/testdata/food-licence.json",
        "adapters-sdk/schema/testdata/legacy-uscc-override.json",
        "plugins/housing-construction/fixtures/construction-permit.json",
        "gateway/fuzz/corpus/case/construction-permit.json",
    ] {
        let json = std::fs::read(root.join(path)).unwrap();
        // A clock after every example's timestamps.
        let clock = DateTime::parse_from_rfc3339("2027-01-01T00:00:00+08:00").unwrap();
        if let Err(e) = parse_case_at(&json, &TimeWindow::at(clock.with_timezone(&Utc))) {
            panic!("{path}: {e}");
        }
    }
}

#[test]
fn text_lengths_are_bounded_per_field() {
    for (pointer, max) in [
        ("/applicant/name", NAME_MAX),
        ("/bureau/name", NAME_MAX),
        ("/applicant/legal_representative", NAME_MAX),
        ("/materials/0/name", NAME_MAX),
        ("/item/code", IDENTIFIER_MAX),
        ("/applicant/contact/address", ADDRESS_MAX),
        ("/form/business_scope", TEXT_MAX),
    ] {
        passes(&with(pointer, chars(max)));
        fails(&with(pointer, chars(max + 1)), pointer, rule::MAX_LENGTH);
    }
}

#[test]
fn control_characters_are_refused_except_tab_and_newline_in_free_text() {
    for (pointer, c) in [
        ("/applicant/name", "\u{0}"),
        ("/applicant/name", "\u{7}"),
        ("/applicant/name", "\t"),
        ("/bureau/name", "\u{85}"),
        ("/applicant/contact/address", "\n"),
        ("/materials/0/uri", "\u{1b}"),
        ("/form/business_scope", "\u{7}"),
        ("/form/business_scope", "\u{9b}"),
        ("/form/business_scope", "\r"),
    ] {
        fails(
            &with(pointer, json!(format!("甲{c}乙"))),
            pointer,
            rule::CONTROL_CHARACTER,
        );
    }
    passes(&with(
        "/form/business_scope",
        json!("一、餐饮\t服务\n二、零售\r\n三"),
    ));
}

#[test]
fn bidi_controls_are_refused_in_names_and_identifiers() {
    for c in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
        for pointer in ["/applicant/name", "/item/code", "/applicant/id_number"] {
            fails(
                &with(pointer, json!(format!("AB{c}CD"))),
                pointer,
                rule::BIDI_CONTROL,
            );
        }
    }
    // Just outside the ranges, and ordinary marks, are allowed in a name.
    for c in ['\u{2029}', '\u{202F}', '\u{2065}', '\u{206A}', '\u{200F}'] {
        passes(&with("/applicant/name", json!(format!("王{c}丽"))));
    }
    let key = "\u{202E}key";
    fails(
        &with_form(obj(key, json!(1))),
        "/form/\u{202E}key",
        rule::BIDI_CONTROL,
    );
}

#[test]
fn form_keys_are_bounded_per_object() {
    let form = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect());
    passes(&with_form(form(FORM_KEYS_MAX)));
    fails(&with_form(form(FORM_KEYS_MAX + 1)), "/form", rule::MAX_KEYS);
    let nested = json!({ "shareholders": form(FORM_KEYS_MAX + 1) });
    fails(&with_form(nested), "/form/shareholders", rule::MAX_KEYS);
    let long = "k".repeat(FORM_KEY_MAX + 1);
    fails(
        &with_form(obj(&long, json!(1))),
        &format!("/form/{long}"),
        rule::MAX_LENGTH,
    );
}

#[test]
fn form_depth_is_bounded() {
    // `levels` nested containers under the form's `root` key, alternating object and array:
    // the form is level 1, so the innermost container is at level `levels + 1`.
    let form = |levels: usize| {
        let mut v = json!("leaf");
        for i in 0..levels {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({ "a": v })
            };
        }
        v
    };
    let as_form = |depth: usize| obj("root", form(depth - 1));
    passes(&with_form(as_form(FORM_DEPTH_MAX)));
    let e = errors(&with_form(as_form(FORM_DEPTH_MAX + 1)));
    let deep: Vec<_> = e.iter().filter(|e| e.rule == rule::MAX_DEPTH).collect();
    assert_eq!(deep.len(), 1, "{e}");
    // The container at level k has k pointer segments (`/form` is level 1).
    let pointer = &deep.first().unwrap().pointer;
    assert_eq!(pointer.matches('/').count(), FORM_DEPTH_MAX + 1, "{e}");
}

#[test]
fn form_size_is_bounded() {
    let mut chunks = serde_json::Map::new();
    // 32 values of 8 000 characters each: within TEXT_MAX, together near the size bound.
    for i in 0..32 {
        chunks.insert(format!("c{i:02}"), json!("x".repeat(8_000)));
    }
    let used = serde_json::to_vec(&chunks).unwrap().len();
    // `,"z":"…"` adds 7 bytes plus the (ASCII) text.
    let fill = |n: usize| {
        let mut form = chunks.clone();
        form.insert("z".to_owned(), json!("x".repeat(n)));
        assert_eq!(serde_json::to_vec(&form).unwrap().len(), used + 7 + n);
        Value::Object(form)
    };
    let inside = FORM_BYTES_MAX - used - 7;
    passes(&with_form(fill(inside)));
    fails(&with_form(fill(inside + 1)), "/form", rule::MAX_SIZE);
}

#[test]
fn a_hostile_form_lists_a_bounded_number_of_problems() {
    let form: serde_json::Map<_, _> = (0..200)
        .map(|i| (format!("k{i}"), json!("\u{7}")))
        .collect();
    let e = errors(&with_form(Value::Object(form)));
    let in_form = e.iter().filter(|e| e.pointer.starts_with("/form/")).count();
    assert_eq!(in_form, FORM_PROBLEMS_MAX, "{e}");
}

#[test]
fn every_violation_is_reported_at_once() {
    let mut case = testdata("enterprise-establishment.json");
    *case.pointer_mut("/applicant/name").unwrap() = json!("A\u{202E}B");
    *case.pointer_mut("/bureau/name").unwrap() = chars(NAME_MAX + 1);
    *case.pointer_mut("/form/business_scope").unwrap() = json!("\u{0}");
    let e = errors(&serde_json::to_vec(&case).unwrap());
    assert!(e.contains("/applicant/name", rule::BIDI_CONTROL), "{e}");
    assert!(e.contains("/bureau/name", rule::MAX_LENGTH), "{e}");
    assert!(
        e.contains("/form/business_scope", rule::CONTROL_CHARACTER),
        "{e}"
    );
}

fn at(s: &str) -> Value {
    json!(s)
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn submitted_at_is_not_before_2000() {
    passes(&with("/submitted_at", at("2000-01-01T00:00:00+08:00")));
    fails(
        &with("/submitted_at", at("1999-12-31T23:59:59+08:00")),
        "/submitted_at",
        rule::TIMESTAMP_RANGE,
    );
    fails(
        &with("/submitted_at", at("0000-01-01T00:00:00+08:00")),
        "/submitted_at",
        rule::TIMESTAMP_RANGE,
    );
}

#[test]
fn submitted_at_is_not_far_in_the_future_of_the_callers_clock() {
    assert_eq!(FUTURE_SKEW_MAX_SECS, 300);
    // Without `accepted_at`, which would otherwise be before these `submitted_at`.
    let case = |t: &str| {
        let mut case = testdata("enterprise-establishment.json");
        case.as_object_mut().unwrap().remove("accepted_at");
        *case.pointer_mut("/submitted_at").unwrap() = at(t);
        serde_json::to_vec(&case).unwrap()
    };
    assert!(parse_case_at(&case("2026-11-20T12:05:00+08:00"), &TimeWindow::at(now())).is_ok());
    let e = parse_case_at(&case("2026-11-20T12:05:01+08:00"), &TimeWindow::at(now())).unwrap_err();
    assert!(e.contains("/submitted_at", rule::TIMESTAMP_RANGE), "{e}");
    let e = parse_case_at(&case("2099-01-01T00:00:00+08:00"), &TimeWindow::at(now())).unwrap_err();
    assert!(e.contains("/submitted_at", rule::TIMESTAMP_RANGE), "{e}");
    // Without a clock, only the fixed epoch applies.
    passes(&case("2099-01-01T00:00:00+08:00"));
}

#[test]
fn a_gateway_may_narrow_the_window_and_each_bound_is_reported_once() {
    let case = |t: &str| {
        let mut case = testdata("enterprise-establishment.json");
        case.as_object_mut().unwrap().remove("accepted_at");
        *case.pointer_mut("/submitted_at").unwrap() = at(t);
        serde_json::to_vec(&case).unwrap()
    };
    let window = TimeWindow {
        earliest: chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00+08:00").unwrap(),
        max_ahead_s: 60,
        ..TimeWindow::at(now())
    };
    assert!(parse_case_at(&case("2025-01-01T00:00:00+08:00"), &window).is_ok());
    let e = parse_case_at(&case("2024-12-31T23:59:59+08:00"), &window).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(e.contains("/submitted_at", rule::TIMESTAMP_RANGE), "{e}");
    assert!(
        e.to_string()
            .contains("the earliest case time this gateway accepts"),
        "{e}"
    );
    // Before the schema's own floor: reported by the floor only.
    let e = parse_case_at(&case("1999-12-31T00:00:00+08:00"), &window).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.to_string().contains("earliest plausible case timestamp"),
        "{e}"
    );
    // Ahead: 61 s is past a 60 s window that the default 300 s would allow.
    let ahead = (now() + chrono::TimeDelta::seconds(61)).with_timezone(&yiwang_schema::BEIJING);
    let e = parse_case_at(&case(&ahead.to_rfc3339()), &window).unwrap_err();
    assert!(e.to_string().contains("at most 60 s allowed"), "{e}");
    assert!(parse_case_at(&case(&ahead.to_rfc3339()), &TimeWindow::at(now())).is_ok());
}

#[test]
fn case_changes_are_bounded_too() {
    let change = |at: &str, reason: &str| {
        serde_json::to_vec(&json!({
            "case_number": "FZ-2026-000123",
            "kind": { "kind": "withdraw", "reason": reason },
            "at": at,
        }))
        .unwrap()
    };
    assert!(parse_case_change(&change("2026-11-21T14:00:00+08:00", "申请人撤回\n")).is_ok());
    let e = parse_case_change(&change("1970-01-01T08:00:00+08:00", "x\u{1b}[2J")).unwrap_err();
    assert!(e.contains("/at", rule::TIMESTAMP_RANGE), "{e}");
    assert!(e.contains("/kind/reason", rule::CONTROL_CHARACTER), "{e}");
}

#[test]
fn ministry_events_get_the_character_policy_and_lengths() {
    let event = |details: Value, number: &str| {
        serde_json::to_vec(&json!({
            "network": "fj-scjg",
            "network_case_number": number,
            "stage": "supplement_requested",
            "at": "2026-11-20T09:30:00+08:00",
            "details": details,
        }))
        .unwrap()
    };
    let good = json!({ "reason": "材料不全\n请补正", "supplement": ["营业执照副本"] });
    assert!(yiwang_schema::parse_event(&event(good, "SCJG-2026-1")).is_ok());
    let bad = json!({
        "reason": "x\u{7}",
        "supplement": ["a\nb"],
        "certificate_number": "\u{202e}123",
        "raw_status": "r".repeat(65),
    });
    let e = yiwang_schema::parse_event(&event(bad, "SCJG\u{0}1")).unwrap_err();
    for (pointer, rule) in [
        ("/details/reason", rule::CONTROL_CHARACTER),
        ("/details/supplement/0", rule::CONTROL_CHARACTER),
        ("/details/certificate_number", rule::BIDI_CONTROL),
        ("/details/raw_status", rule::MAX_LENGTH),
        ("/network_case_number", rule::CONTROL_CHARACTER),
    ] {
        assert!(e.contains(pointer, rule), "{pointer} {rule}: {e}");
    }
}
