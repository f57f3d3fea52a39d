//! Fixture tests: the testdata cases, parse errors with pointers, overrides, events and changes.
#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::PathBuf;

use yiwang_schema::{
    ChangeKind, ChecksumOverride, Decision, IdType, PartyKind, Stage, TimeLimitUnit,
    ValidationErrors, parse_case, parse_case_change, parse_event, rule,
};

fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The (pointer, rule) pairs of an error list, for order-independent comparison.
fn pairs(errors: &ValidationErrors) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = errors.iter().map(|e| (e.pointer.clone(), e.rule)).collect();
    v.sort();
    v
}

fn expect_errors(json: &[u8]) -> ValidationErrors {
    match parse_case(json) {
        Ok(c) => panic!("expected errors, got a valid case {}", c.case.case_number),
        Err(e) => e,
    }
}

#[test]
fn enterprise_establishment_is_valid() {
    let v = parse_case(&testdata("enterprise-establishment.json")).unwrap();
    assert!(v.overrides_applied.is_empty());
    let case = v.case;
    assert_eq!(case.item.code, "SC-QYKB-001");
    assert_eq!(case.applicant.kind, PartyKind::Enterprise);
    assert_eq!(
        IdType::from_code(&case.applicant.id_type),
        Some(IdType::Uscc)
    );
    assert_eq!(
        case.applicant.legal_representative.as_deref(),
        Some("陈建华")
    );
    let agent = case.agent.as_ref().unwrap();
    assert_eq!(
        IdType::from_code(&agent.id_type),
        Some(IdType::ResidentIdCard)
    );
    assert_eq!(case.materials.len(), 2);
    assert_eq!(case.time_limit.unit, TimeLimitUnit::WorkingDays);
    assert!(case.form.contains_key("business_scope"));
}

#[test]
fn food_licence_is_valid() {
    let v = parse_case(&testdata("food-licence.json")).unwrap();
    assert_eq!(v.case.applicant.kind, PartyKind::NaturalPerson);
    assert!(v.case.agent.is_none());
    assert!(v.case.accepted_at.is_none());
}

#[test]
fn legacy_uscc_passes_only_with_its_override_and_the_override_is_returned() {
    let json = testdata("legacy-uscc-override.json");
    let v = parse_case(&json).unwrap();
    assert_eq!(
        v.overrides_applied,
        vec![ChecksumOverride {
            pointer: "/applicant/id_number".into(),
            reason: "早期试点赋码，营业执照原件已核验，市场监管部门确认代码有效".into(),
            approved_by: "FZGL-STAFF-0042 李伟".into(),
        }]
    );

    // Without the override the same case fails on the checksum, naming the expected character.
    let mut case = v.case;
    case.checksum_overrides.clear();
    let errors = case.validate().unwrap_err();
    assert_eq!(
        pairs(&errors),
        vec![("/applicant/id_number".to_owned(), rule::USCC_CHECKSUM)]
    );
    assert!(
        errors.0[0].message.contains("should be '1', found 'M'"),
        "{errors}"
    );
}

#[test]
fn invalid_many_reports_every_problem_at_once() {
    let errors = expect_errors(&testdata("invalid-many.json"));
    let expected: Vec<(&str, &str)> = vec![
        ("/accepted_at", rule::TIMESTAMP_ORDER),
        ("/agent/contact/phone", rule::PHONE_FORMAT),
        ("/agent/id_number", rule::RESIDENT_ID_BIRTH_DATE),
        ("/agent/id_number", rule::RESIDENT_ID_CHECKSUM),
        ("/applicant/id_number", rule::USCC_CHECKSUM),
        ("/applicant/legal_representative", rule::REQUIRED),
        ("/bureau/uscc", rule::USCC_FORMAT),
        ("/case_number", rule::CASE_NUMBER_FORMAT),
        ("/checksum_overrides/0/approved_by", rule::NOT_EMPTY),
        ("/checksum_overrides/0/pointer", rule::OVERRIDE_UNUSED),
        ("/materials/0/sha256", rule::SHA256_FORMAT),
        ("/materials/1/media_type", rule::MEDIA_TYPE_FORMAT),
        ("/materials/1/uri", rule::NOT_EMPTY),
        ("/submitted_at", rule::TIMEZONE),
        ("/time_limit/value", rule::POSITIVE),
    ];
    let expected: Vec<(String, &str)> = expected
        .into_iter()
        .map(|(p, r)| (p.to_owned(), r))
        .collect();
    assert_eq!(pairs(&errors), expected, "{errors}");

    // Messages are specific enough to fix the problem.
    let message = |pointer: &str, r: &str| {
        errors
            .iter()
            .find(|e| e.pointer == pointer && e.rule == r)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(message("/agent/id_number", rule::RESIDENT_ID_CHECKSUM).contains("should be '5'"));
    assert!(message("/agent/id_number", rule::RESIDENT_ID_BIRTH_DATE).contains("19900230"));
    assert!(message("/applicant/id_number", rule::USCC_CHECKSUM).contains("should be '7'"));
    assert!(message("/bureau/uscc", rule::USCC_FORMAT).contains("'I'"));
    assert!(message("/submitted_at", rule::TIMEZONE).contains("2026-11-20T09:30:00+08:00"));
    assert!(
        message("/checksum_overrides/0/pointer", rule::OVERRIDE_UNUSED).contains("/agent/name")
    );

    // The error list serializes for the HTTP API and displays one line per problem.
    let json = serde_json::to_value(&errors).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(expected.len()));
    assert!(
        errors
            .to_string()
            .contains("/time_limit/value: the time limit must be greater than zero [positive]")
    );
}

#[test]
fn fixtures_round_trip_through_serde() {
    for name in [
        "enterprise-establishment.json",
        "food-licence.json",
        "legacy-uscc-override.json",
    ] {
        let case = parse_case(&testdata(name)).unwrap().case;
        let again = serde_json::to_vec(&case).unwrap();
        assert_eq!(parse_case(&again).unwrap().case, case, "{name}");
        // Timestamps keep their +08:00 offset when written back.
        assert!(String::from_utf8_lossy(&again).contains("+08:00"));
    }
}

/// Mutates the enterprise fixture as a JSON value and parses it.
fn mutated(
    f: impl FnOnce(&mut serde_json::Value),
) -> Result<yiwang_schema::ValidatedCase, ValidationErrors> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&testdata("enterprise-establishment.json")).unwrap();
    f(&mut v);
    parse_case(&serde_json::to_vec(&v).unwrap())
}

fn single(
    r: Result<yiwang_schema::ValidatedCase, ValidationErrors>,
) -> (String, &'static str, String) {
    let errors = r.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.0[0];
    (e.pointer.clone(), e.rule, e.message.clone())
}

#[test]
fn structural_errors_carry_their_pointer() {
    let (p, r, _) = single(mutated(|v| {
        v["applicant"]["contact"]["fax"] = "0591-1".into()
    }));
    assert_eq!(
        (p.as_str(), r),
        ("/applicant/contact/fax", rule::UNKNOWN_FIELD)
    );

    let (p, r, m) = single(mutated(|v| {
        v["materials"][1].as_object_mut().unwrap().remove("sha256");
    }));
    assert_eq!(
        (p.as_str(), r),
        ("/materials/1/sha256", rule::REQUIRED),
        "{m}"
    );

    let (p, r, _) = single(mutated(|v| v["materials"][0]["size"] = "284173".into()));
    assert_eq!((p.as_str(), r), ("/materials/0/size", rule::JSON_TYPE));

    let (p, r, _) = single(mutated(|v| {
        v["form"] = serde_json::json!(["not", "an", "object"])
    }));
    assert_eq!((p.as_str(), r), ("/form", rule::JSON_TYPE));

    let (p, r, m) = single(mutated(|v| v["applicant"]["kind"] = "individual".into()));
    assert_eq!((p.as_str(), r), ("/applicant/kind", rule::CODE_TABLE));
    assert!(m.contains("natural_person"), "{m}");

    let (p, r, _) = single(mutated(|v| v["time_limit"]["unit"] = "weeks".into()));
    assert_eq!((p.as_str(), r), ("/time_limit/unit", rule::CODE_TABLE));

    // A Beijing time written without a zone (as many ministries do) is not accepted here.
    let (p, r, _) = single(mutated(|v| {
        v["submitted_at"] = "2026-11-20 09:30:00".into()
    }));
    assert_eq!((p.as_str(), r), ("/submitted_at", rule::TIMESTAMP_FORMAT));

    let (p, r, m) = single(parse_case(b"{\"schema_version\": \"1.0\", "));
    assert_eq!(r, rule::JSON_SYNTAX, "{p} {m}");
    assert!(m.contains("line 1"), "{m}");

    let (p, r, _) = single(parse_case(b"{} []"));
    assert_eq!((p.as_str(), r), ("/schema_version", rule::REQUIRED));
    let (p, r, _) = single(parse_case(b"[]"));
    assert_eq!((p.as_str(), r), ("", rule::JSON_TYPE));
}

/// A change to the enterprise fixture.
type Mutation = Box<dyn FnOnce(&mut serde_json::Value)>;

#[test]
fn semantic_rules_one_by_one() {
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (
            Box::new(|v| v["schema_version"] = "2.0".into()),
            "/schema_version",
            rule::SCHEMA_VERSION,
        ),
        (
            Box::new(|v| v["schema_version"] = "1".into()),
            "/schema_version",
            rule::SCHEMA_VERSION,
        ),
        (
            Box::new(|v| v["case_number"] = "".into()),
            "/case_number",
            rule::NOT_EMPTY,
        ),
        (
            Box::new(|v| v["case_number"] = "A".repeat(65).into()),
            "/case_number",
            rule::MAX_LENGTH,
        ),
        (
            Box::new(|v| v["item"]["code"] = " ".into()),
            "/item/code",
            rule::NOT_EMPTY,
        ),
        (
            Box::new(|v| v["applicant"]["id_type"] = "112".into()),
            "/applicant/id_type",
            rule::CODE_TABLE,
        ),
        (
            Box::new(|v| v["applicant"]["id_type"] = "414".into()),
            "/applicant/id_type",
            rule::PARTY_KIND_ID_TYPE,
        ),
        (
            Box::new(|v| v["agent"]["id_type"] = "099".into()),
            "/agent/id_type",
            rule::PARTY_KIND_ID_TYPE,
        ),
        (
            Box::new(|v| v["agent"]["id_number"] = "35010219900315122".into()),
            "/agent/id_number",
            rule::RESIDENT_ID_FORMAT,
        ),
        (
            Box::new(|v| v["applicant"]["id_number"] = "91350102MA2Y7K3Q6".into()),
            "/applicant/id_number",
            rule::USCC_FORMAT,
        ),
        // Embedded organisation code broken, outer check character recomputed.
        (
            Box::new(|v| v["applicant"]["id_number"] = "91350102MA2Y7K3Q0L".into()),
            "/applicant/id_number",
            rule::USCC_ORG_CODE_CHECKSUM,
        ),
        (
            Box::new(|v| v["agent"]["contact"]["phone"] = "".into()),
            "/agent/contact/phone",
            rule::NOT_EMPTY,
        ),
        (
            Box::new(|v| v["applicant"]["contact"]["email"] = "office".into()),
            "/applicant/contact/email",
            rule::EMAIL_FORMAT,
        ),
        (
            Box::new(|v| v["materials"][0]["sha256"] = "abc".into()),
            "/materials/0/sha256",
            rule::SHA256_FORMAT,
        ),
        (
            Box::new(|v| v["materials"][0]["name"] = "".into()),
            "/materials/0/name",
            rule::NOT_EMPTY,
        ),
        (
            Box::new(|v| v["accepted_at"] = "2026-11-20T11:05:12+09:00".into()),
            "/accepted_at",
            rule::TIMEZONE,
        ),
    ];
    for (f, pointer, r) in cases {
        let (p, got, m) = single(mutated(f));
        assert_eq!((p.as_str(), got), (pointer, r), "{m}");
    }
}

#[test]
fn org_code_failure_is_waivable_too() {
    let r = mutated(|v| {
        v["applicant"]["id_number"] = "91350102MA2Y7K3Q0L".into();
        v["checksum_overrides"] = serde_json::json!([
            {"pointer": "/applicant/id_number", "reason": "试点赋码", "approved_by": "staff-1"}
        ]);
    });
    assert_eq!(r.unwrap().overrides_applied.len(), 1);
}

#[test]
fn overrides_never_waive_format_and_never_linger() {
    // Format errors stay; the override naming that field is not also reported as unused.
    let errors = mutated(|v| {
        v["agent"]["id_number"] = "35010219900315122".into();
        v["checksum_overrides"] = serde_json::json!([
            {"pointer": "/agent/id_number", "reason": "旧证", "approved_by": "staff-1"}
        ]);
    })
    .unwrap_err();
    assert_eq!(
        pairs(&errors),
        vec![("/agent/id_number".to_owned(), rule::RESIDENT_ID_FORMAT)]
    );

    // A birth-date error is not waived even when the checksum is.
    let errors = mutated(|v| {
        v["agent"]["id_number"] = "350102199002301240".into();
        v["checksum_overrides"] = serde_json::json!([
            {"pointer": "/agent/id_number", "reason": "旧证", "approved_by": "staff-1"}
        ]);
    })
    .unwrap_err();
    assert_eq!(
        pairs(&errors),
        vec![("/agent/id_number".to_owned(), rule::RESIDENT_ID_BIRTH_DATE)]
    );

    // An override on a passing checksum, and a duplicate, are both errors.
    let errors = mutated(|v| {
        v["checksum_overrides"] = serde_json::json!([
            {"pointer": "/bureau/uscc", "reason": "x", "approved_by": "staff-1"},
            {"pointer": "/bureau/uscc", "reason": "x", "approved_by": "staff-1"}
        ]);
    })
    .unwrap_err();
    assert_eq!(
        pairs(&errors),
        vec![
            (
                "/checksum_overrides/0/pointer".to_owned(),
                rule::OVERRIDE_UNUSED
            ),
            (
                "/checksum_overrides/1/pointer".to_owned(),
                rule::OVERRIDE_UNUSED
            ),
        ]
    );
}

#[test]
fn events_parse_and_validate() {
    let json = r#"{
        "case_number": "FZGL-2026-001234",
        "network": "fj-scjg",
        "network_case_number": "350102202611200001",
        "stage": "supplement_requested",
        "at": "2026-11-20T15:20:00+08:00",
        "details": {"reason": "章程缺少股东签字", "supplement": ["公司章程（全体股东签字版）"], "raw_status": "6"},
        "raw_ref": "sha256:f9eee67ff3323d6348d1a0d9222302251f4fe6b8976b1846b34f1b89cf524fd1"
    }"#;
    let e = parse_event(json.as_bytes()).unwrap();
    assert_eq!(e.stage, Stage::SupplementRequested);
    assert_eq!(e.details.supplement.len(), 1);

    let decided = r#"{"network":"fj-scjg","network_case_number":"N1","stage":"decided","at":"2026-11-22T10:00:00+08:00","details":{"decision":"approved"}}"#;
    assert_eq!(
        parse_event(decided.as_bytes()).unwrap().details.decision,
        Some(Decision::Approved)
    );

    let bad = r#"{"network":"","network_case_number":"","stage":"decided","at":"2026-11-22T10:00:00+08:00","raw_ref":"sha256:XYZ"}"#;
    let errors = parse_event(bad.as_bytes()).unwrap_err();
    assert_eq!(
        pairs(&errors),
        vec![
            ("/network".to_owned(), rule::NOT_EMPTY),
            ("/network_case_number".to_owned(), rule::NOT_EMPTY),
            ("/raw_ref".to_owned(), rule::SHA256_FORMAT),
        ]
    );
    let long = format!(
        r#"{{"network":"n","network_case_number":"{}","stage":"received","at":"2026-11-22T10:00:00+08:00"}}"#,
        "9".repeat(129)
    );
    assert!(
        parse_event(long.as_bytes())
            .unwrap_err()
            .contains("/network_case_number", rule::MAX_LENGTH)
    );
    let no_zone = r#"{"network":"n","network_case_number":"1","stage":"received","at":"2026-11-22T10:00:00"}"#;
    assert!(
        parse_event(no_zone.as_bytes())
            .unwrap_err()
            .contains("/at", rule::TIMESTAMP_FORMAT)
    );
    let unknown_stage = r#"{"network":"n","network_case_number":"1","stage":"done","at":"2026-11-22T10:00:00+08:00"}"#;
    assert!(
        parse_event(unknown_stage.as_bytes())
            .unwrap_err()
            .contains("/stage", rule::CODE_TABLE)
    );
}

#[test]
fn case_changes_parse_and_validate() {
    let supplement = r#"{
        "case_number": "FZGL-2026-001234",
        "kind": {"kind": "supplement", "note": "已补签", "materials": [{
            "name": "公司章程（全体股东签字版）", "media_type": "application/pdf", "size": 520114,
            "sha256": "dfc8fdc534dcb3c297b03151e3655c66822bead12a8717852c3d1db3381a7a36",
            "uri": "oss://fz-gulou-materials/2026/11/21/FZGL-2026-001234/03.pdf"}]},
        "at": "2026-11-21T09:10:00+08:00"
    }"#;
    let c = parse_case_change(supplement.as_bytes()).unwrap();
    assert!(matches!(c.kind, ChangeKind::Supplement { ref materials, .. } if materials.len() == 1));

    let withdraw = r#"{"case_number":"FZGL-2026-001234","kind":{"kind":"withdraw","reason":"申请人主动撤回"},"at":"2026-11-21T09:10:00+08:00"}"#;
    assert!(matches!(
        parse_case_change(withdraw.as_bytes()).unwrap().kind,
        ChangeKind::Withdraw { .. }
    ));

    let bad = r#"{"case_number":"FZGL-2026-001234","kind":{"kind":"supplement","materials":[]},"at":"2026-11-21T01:10:00Z"}"#;
    let errors = parse_case_change(bad.as_bytes()).unwrap_err();
    assert_eq!(
        pairs(&errors),
        vec![
            ("/at".to_owned(), rule::TIMEZONE),
            ("/kind/materials".to_owned(), rule::NOT_EMPTY)
        ]
    );
    let extra = r#"{"case_number":"X","kind":{"kind":"withdraw","reason":"r","extra":1},"at":"2026-11-21T09:10:00+08:00"}"#;
    assert_eq!(
        parse_case_change(extra.as_bytes()).unwrap_err().0[0].rule,
        rule::UNKNOWN_FIELD
    );
}

#[test]
fn readme_lists_every_rule() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    for r in rule::ALL {
        assert!(
            readme.contains(&format!("`{r}`")),
            "README.md does not document rule `{r}`"
        );
    }
}
