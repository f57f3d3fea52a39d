use super::*;
use crate::store::{Job, Light, NetworkCase};
use serde_json::json;

fn row(unified: &str, ministry: &str) -> Row {
    Row {
        unified: unified.into(),
        ministry: ministry.into(),
        code_table: None,
    }
}

/// Two declared networks and one whose adapter declares nothing.
fn declarations() -> Declarations {
    let a = vec![
        row("/applicant/name", "sqrmc"),
        row("/applicant/id_number", "zjhm"),
        // The same unified field into a second ministry field: two keyings.
        row("/applicant/id_number", "tyshxydm"),
        row("/form", "bdxx"),
        row("/materials/*/name", "clxx[*].clmc"),
        row("/agent/name", "dlrxm"),
    ];
    let b = vec![
        row("/applicant/name", "nsrmc"),
        // Two sources for one ministry field: one keying.
        row("/form/registered_address", "scjydz"),
        row("/applicant/contact/address", "scjydz"),
        // A list the ministry names without `[*]`: one field per element.
        row("/materials/*/name", "fj/mc"),
    ];
    BTreeMap::from([
        (
            "a".to_string(),
            Declaration::Declared {
                adapter: "a 1.0.0".into(),
                rows: a,
            },
        ),
        (
            "b".to_string(),
            Declaration::Declared {
                adapter: "b 1.0.0".into(),
                rows: b,
            },
        ),
        (
            "c".to_string(),
            Declaration::Empty {
                adapter: "c 0.1.0".into(),
            },
        ),
    ])
}

fn step(network: &str, inputs: &[(&str, &str)]) -> RouteStep {
    RouteStep {
        network: network.into(),
        after: Vec::new(),
        inputs: inputs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    }
}

fn job(id: u32, network: &str, inputs: &[(&str, &str)], delivered: bool) -> Job {
    Job {
        id,
        destination: Destination::Network(network.into()),
        kind: JobKind::Submit {
            after: Vec::new(),
            inputs: inputs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        },
        idempotency_key: format!("k{id}"),
        created_at: 0,
        state: if delivered {
            JobState::Delivered {
                at: 1,
                network_case_number: None,
            }
        } else {
            JobState::Pending { due: 0 }
        },
        attempts: Vec::new(),
        adapter: None,
        replayed_at: None,
    }
}

fn case_json() -> String {
    json!({
        "applicant": {
            "name": "福州闽江数字科技有限公司",
            "id_number": "91350102MA2Y7K3Q67",
            "contact": { "address": "鼓楼区" }
        },
        "form": { "registered_address": "五四路128号", "business_scope": "软件开发" },
        "materials": [{ "name": "申请书" }, { "name": "章程" }, { "name": null }],
        "agent": null
    })
    .to_string()
}

fn record(accepted_at: Millis, bureau: &str, jobs: Vec<Job>) -> CaseRecord {
    CaseRecord {
        case_number: "C-1".into(),
        item: "SC-QYKB-001".into(),
        case_json: case_json(),
        digest: String::new(),
        principal: "bureau".into(),
        bureau: bureau.into(),
        accepted_at,
        updated_at: accepted_at,
        next_job: 0,
        jobs,
        networks: BTreeMap::new(),
        changes: Vec::new(),
        clock: None,
        deadline: None,
        light: Light::Green,
    }
}

fn event(network: &str, number: &str, stage: &str) -> yiwang_schema::Event {
    serde_json::from_value(json!({
        "network": network,
        "network_case_number": number,
        "stage": stage,
        "at": "2026-12-07T10:00:00+08:00",
    }))
    .unwrap_or_else(|e| panic!("test event: {e}"))
}

#[test]
fn an_item_lists_each_networks_fields_and_what_the_case_carries_once() {
    let route = [
        step("a", &[]),
        step("b", &[("licence-number", "a.certificate_number")]),
        step("c", &[("licence-number", "a.certificate_number")]),
    ];
    let item = item_fields("SC-QYKB-001", &route, &declarations());
    let a = &item.networks[0];
    assert!(a.declared);
    assert_eq!(a.keyed, 6, "{:?}", a.fields);
    let b = &item.networks[1];
    assert_eq!(b.keyed, 3, "scjydz is one field with two sources");
    assert_eq!(
        b.fields[1].unified,
        ["/form/registered_address", "/applicant/contact/address"]
    );
    let c = &item.networks[2];
    assert!(!c.declared);
    assert_eq!(c.keyed, 0);
    assert!(
        c.note
            .as_deref()
            .is_some_and(|n| n.contains("not declared"))
    );
    assert_eq!(c.adapter.as_deref(), Some("c 0.1.0"));
    // /form/registered_address is inside /form: keyed once with it; the
    // contact address only stands in for it.
    assert_eq!(
        item.unified_fields,
        [
            "/agent/name",
            "/applicant/id_number",
            "/applicant/name",
            "/form",
            "/materials/*/name"
        ]
    );
    assert_eq!(item.keyed_into_networks, 9);
    assert_eq!(
        item.passed_along, 1,
        "c's input is not counted: c is not declared"
    );
    assert_eq!(item.keyed_once, 5);
    assert_eq!(item.saved_per_case, 5);
}

#[test]
fn a_network_without_an_adapter_is_not_declared() {
    let item = item_fields("X", &[step("down", &[])], &declarations());
    assert!(!item.networks[0].declared);
    assert!(
        item.networks[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("no adapter is loaded"))
    );
    assert_eq!(item.saved_per_case, 0);
}

#[test]
fn a_case_counts_present_fields_of_delivered_submissions_only() {
    let mut r = record(
        0,
        "B1",
        vec![
            job(0, "a", &[], true),
            job(1, "b", &[("licence-number", "a.certificate_number")], true),
            job(2, "c", &[("licence-number", "a.certificate_number")], true),
            // Not delivered (yet): saved nobody anything.
            job(3, "d", &[], false),
        ],
    );
    r.networks.insert(
        "a".into(),
        NetworkCase {
            network_case_number: Some("A-1".into()),
            decision: Some(yiwang_schema::Decision::Approved),
            certificate_number: Some("LIC-1".into()),
            events: vec![
                event("a", "A-1", "received"),
                event("a", "A-1", "decided"),
                event("a", "A-1", "certificate_issued"),
            ],
            ..NetworkCase::default()
        },
    );
    r.networks.insert(
        "b".into(),
        NetworkCase {
            network_case_number: Some("B-1".into()),
            events: vec![event("b", "B-1", "received")],
            ..NetworkCase::default()
        },
    );
    let k = case_keyings(&r, &declarations());
    // a: sqrmc, zjhm, tyshxydm, bdxx, clxx[0].clmc, clxx[1].clmc (the third
    // material has no name; no agent) = 6. b: nsrmc, scjydz (from the
    // registered address; the contact address only stands in for it),
    // fj/mc[0], fj/mc[1] = 4.
    assert_eq!(k.keyed_into_networks, 10);
    // /applicant/name, /applicant/id_number, /form (holding the address),
    // /materials/0/name, /materials/1/name.
    assert_eq!(k.keyed_once, 5);
    assert_eq!(k.passed_along, 1, "b's licence number; c is not counted");
    assert_eq!(k.keyings_saved, 6);
    assert_eq!(k.deliveries_not_counted, 1);
    assert_eq!(k.ministry_case_numbers, 2);
    assert_eq!(k.stage_changes, 4);
    assert_eq!(k.decisions, 1);
    assert_eq!(k.certificate_numbers, 1);
    assert_eq!(k.results_flowed_back, 8);
    assert_eq!(k.cases, 1);
}

#[test]
fn an_unreadable_case_counts_its_deliveries_as_not_counted() {
    let mut r = record(0, "B1", vec![job(0, "a", &[], true)]);
    r.case_json = "not json".into();
    let k = case_keyings(&r, &declarations());
    assert_eq!((k.keyed_into_networks, k.deliveries_not_counted), (0, 1));
}

#[test]
fn the_tally_keeps_the_range_and_bureau_and_groups_by_beijing_day() {
    // 2026-12-06T17:00Z is 2026-12-07 01:00 in Beijing.
    let t = chrono::DateTime::parse_from_rfc3339("2026-12-06T17:00:00Z")
        .map(|d| d.timestamp_millis())
        .unwrap_or_default();
    let day = 86_400_000;
    let records = [
        record(t, "B1", vec![job(0, "a", &[], true)]),
        record(t + 1, "B2", vec![job(0, "a", &[], true)]),
        record(t + day, "B1", vec![job(0, "a", &[], true)]),
        // Before `since` and at `until`: out.
        record(t - 1, "B1", vec![job(0, "a", &[], true)]),
        record(t + 2 * day, "B1", vec![job(0, "a", &[], true)]),
    ];
    let range = (t, Some(t + 2 * day));
    let (rows, total) = tally(&records, &declarations(), range, None, Period::Day);
    let keys: Vec<(&str, &str, u64)> = rows
        .iter()
        .map(|r| (r.period.as_str(), r.bureau.as_str(), r.keyings.cases))
        .collect();
    assert_eq!(
        keys,
        [
            ("2026-12-07", "B1", 1),
            ("2026-12-07", "B2", 1),
            ("2026-12-08", "B1", 1)
        ]
    );
    assert_eq!(total.cases, 3);
    assert_eq!(
        total.keyed_into_networks, 18,
        "6 fields of network a per case"
    );
    let (rows, total) = tally(&records, &declarations(), range, Some("B1"), Period::Month);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].period.as_str(), total.cases), ("2026-12", 2));
    let (rows, _) = tally(&records, &declarations(), (0, None), None, Period::Total);
    assert_eq!(rows.len(), 2, "one row per bureau");
    assert_eq!(rows[0].keyings.cases, 4);
}

#[test]
fn wildcards_take_indexes_in_order_and_leftovers_are_appended() {
    assert_eq!(concrete_ministry("clxx[*].clmc", &[2]), "clxx[2].clmc");
    assert_eq!(concrete_ministry("cls/cl/mc", &[1]), "cls/cl/mc[1]");
    assert_eq!(concrete_ministry("a[*].b[*]", &[0, 3]), "a[0].b[3]");
    assert_eq!(concrete_ministry("sqrmc", &[]), "sqrmc");
}

#[test]
fn pointers_resolve_escapes_indexes_and_skip_absent_values() {
    let v = json!({ "a/b": { "x~y": 1 }, "l": [ {"n": "p"}, {"n": ""}, {"n": false} ], "z": null });
    let paths = |p: &str| -> Vec<String> { resolve(&v, p).into_iter().map(|(_, p)| p).collect() };
    assert_eq!(paths("/a~1b/x~0y"), ["/a~1b/x~0y"]);
    assert_eq!(paths("/l/*/n"), ["/l/0/n", "/l/2/n"]);
    assert_eq!(paths("/l/0/n"), ["/l/0/n"]);
    assert!(paths("/z").is_empty());
    assert!(paths("/missing/*").is_empty());
}

#[test]
fn an_alternative_source_fills_the_field_when_the_first_is_absent() {
    let mut r = record(0, "B1", vec![job(0, "b", &[], true)]);
    r.case_json = json!({
        "applicant": { "name": "n", "contact": { "address": "鼓楼区" } },
        "form": { "business_scope": "软件开发" }
    })
    .to_string();
    let k = case_keyings(&r, &declarations());
    // nsrmc, scjydz (from the contact address).
    assert_eq!(k.keyed_into_networks, 2);
    // /applicant/name and /applicant/contact/address (b reads nothing of /form).
    assert_eq!(k.keyed_once, 2);
}
