//! Item forms at the intake and at start, through the whole gateway: a
//! case whose form breaks its item's form schema is refused (422) with
//! every bad field named — beside any unified-schema problem — and nothing
//! is stored or sent; and a network whose adapter maps a form field an item
//! routed to it does not declare is held at start (alert naming network,
//! item and field) while its healthy neighbour delivers.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::Duration;
use yiwang_e2e::{LISTENERS, NetworkSpec, World, case_json, delivery_state, permit_case, root};
use yiwang_gateway::delivery::alert::AlertCause;
use yiwang_gateway::store::Destination;

const MR: &str = "market-regulation";
const ZJ: &str = "housing-construction";
const WAIT: Duration = Duration::from_secs(30);

/// The demo's `[code-tables]`, as TOML.
fn demo_code_tables() -> Result<String> {
    let text = std::fs::read_to_string(root().join("config/demo.toml"))?;
    let demo: toml::Table = toml::from_str(&text)?;
    let tables = demo.get("code-tables").context("demo code tables")?.clone();
    Ok(toml::to_string(&toml::Table::from_iter([(
        "code-tables".to_string(),
        tables,
    )]))?)
}

/// `[items."<code>"]` routed as given, with the form at `form` (absolute).
fn item(code: &str, route: &str, form: &std::path::Path) -> String {
    format!(
        "[items.\"{code}\"]\nroute = [{route}]\nform = {}\n",
        toml::Value::String(form.display().to_string())
    )
}

async fn world(items: &str) -> Result<(World, yiwang_e2e::Client)> {
    let quiet = |spec: NetworkSpec| NetworkSpec {
        sim: spec.sim.clone().with_stage_interval(Duration::ZERO),
        ..spec
    };
    let networks = vec![
        quiet(NetworkSpec::market_regulation(MR)),
        quiet(NetworkSpec::housing_construction(ZJ)),
    ];
    let mut w = World::prepare(networks, items, "", LISTENERS).await?;
    let c = w.start_gateway().await?;
    Ok((w, c))
}

/// The (pointer, rule) of each field error of a problem body.
fn errors(p: &Value) -> Vec<(String, String)> {
    p["errors"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    (s("pointer"), s("rule"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pair(pointer: &str, rule: &str) -> (String, String) {
    (pointer.to_string(), rule.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_form_value_gets_422_naming_the_field_and_every_bad_value_is_listed() -> Result<()> {
    let forms = root().join("config/forms");
    let items = format!(
        "{}{}{}",
        item(
            "SC-SPJY-001",
            &format!("{{ network = \"{MR}\" }}"),
            &forms.join("SC-SPJY-001.json")
        ),
        item(
            "ZJ-SGXK-001",
            &format!("{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\" }}"),
            &forms.join("ZJ-SGXK-001.json")
        ),
        demo_code_tables()?
    );
    let (w, c) = world(&items).await?;

    // The demo's cases satisfy their forms.
    let (status, p) = c
        .post("/v1/cases", &case_json("food-licence.json", "FORM-OK-1")?)
        .await?;
    assert_eq!(status, 202, "{p}");
    let (status, p) = c.post("/v1/cases", &permit_case("FORM-OK-2")?).await?;
    assert_eq!(status, 202, "{p}");

    // One bad value: 422 naming that field, its rule and the form keyword.
    let mut one = permit_case("FORM-BAD-1")?;
    one["form"]["project_code"] = json!("2026-35");
    let (status, p) = c.post("/v1/cases", &one).await?;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["type"], json!("https://yiwang.dev/problems/invalid-case"));
    assert_eq!(
        errors(&p),
        vec![pair("/form/project_code", "pattern")],
        "{p}"
    );
    assert_eq!(
        p["errors"][0]["keyword_location"],
        json!("/properties/project_code/pattern")
    );

    // Several bad values, and a unified-schema problem beside them: all listed at once.
    let mut many = case_json("food-licence.json", "FORM-BAD-2")?;
    many["bureau"]["uscc"] = json!("11350102MB0H47218F");
    many["form"]["premises_area_m2"] = json!(-3);
    many["form"]["business_items"] = json!(["热食类食品制售", "炸鸡"]);
    many["form"]["employees"] = json!("3");
    many["form"]["colour"] = json!("red");
    many["form"]
        .as_object_mut()
        .context("form")?
        .remove("business_name");
    let (status, p) = c.post("/v1/cases", &many).await?;
    assert_eq!(status, 422, "{p}");
    let found = errors(&p);
    for want in [
        pair("/bureau/uscc", "uscc_checksum"),
        pair("/form/business_name", "required"),
        pair("/form/premises_area_m2", "minimum"),
        pair("/form/business_items/1", "code_table"),
        pair("/form/employees", "json_type"),
        pair("/form/colour", "unknown_field"),
    ] {
        assert!(found.contains(&want), "{want:?} missing from {p}");
    }
    assert_eq!(found.len(), 6, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("6 problem(s)")),
        "{p}"
    );

    // Refused cases are not stored and reach no ministry.
    for n in ["FORM-BAD-1", "FORM-BAD-2"] {
        assert_eq!(c.get(&format!("/v1/cases/{n}")).await?.0, 404);
    }
    c.wait_case("FORM-OK-1", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    let sent: Vec<Option<String>> = w
        .sim(MR)
        .cases()
        .into_iter()
        .map(|k| k.unified_case_number)
        .collect();
    assert!(
        sent.iter().flatten().all(|n| !n.starts_with("FORM-BAD")),
        "no refused case reached market regulation: {sent:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_mapping_an_undeclared_form_field_holds_only_its_network() -> Result<()> {
    // The housing adapter maps /form/project_name and /form/project_address;
    // this form declares the name only (and leaves other fields open).
    let dir = tempfile::tempdir()?;
    let form = dir.path().join("permit.json");
    std::fs::write(
        &form,
        json!({"type": "object", "properties": {"project_name": {"type": "string"}}}).to_string(),
    )?;
    let items = item(
        "ZJ-SGXK-001",
        &format!("{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\" }}"),
        &form,
    );
    let (mut w, c) = world(&items).await?;
    let gw = w.gateway.as_ref().context("gateway")?;
    let alert = gw
        .delivery
        .alerts
        .get(&Destination::Network(ZJ.into()))
        .context("housing is held")?;
    assert_eq!(alert.cause, AlertCause::FieldMapping);
    for named in [ZJ, "ZJ-SGXK-001", "/form/project_address", "xmdz"] {
        assert!(alert.reason.contains(named), "{named} in {}", alert.reason);
    }
    assert!(
        !alert.reason.contains("/form/project_name"),
        "{}",
        alert.reason
    );
    assert!(
        gw.delivery
            .alerts
            .get(&Destination::Network(MR.into()))
            .is_none()
    );

    // Intake still accepts; the healthy neighbour delivers, housing holds.
    let (status, p) = c.post("/v1/cases", &permit_case("HELD-0001")?).await?;
    assert_eq!(status, 202, "{p}");
    let v = c
        .wait_case("HELD-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    assert_ne!(delivery_state(&v, ZJ), "delivered", "{v}");
    assert!(w.sim(ZJ).cases().is_empty(), "nothing reached housing");

    // An operator who accepts the mapping resumes the network: it delivers.
    let admin = w.admin().context("admin")?;
    let (s, b) = admin
        .post(&format!("/admin/networks/{ZJ}/resume"), &json!({}))
        .await?;
    assert_eq!(s, 200, "{b}");
    c.wait_case("HELD-0001", WAIT, |v| delivery_state(v, ZJ) == "delivered")
        .await?;
    w.stop_gateway().await;
    Ok(())
}
