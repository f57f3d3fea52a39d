//! A network whose adapter fails to load at start-up is down, alone: the
//! gateway serves, its neighbour delivers, its cases are taken and held
//! (durable, undispatched), the admin API and the metrics name the reason,
//! and an operator brings it up by installing a working version or by
//! resuming it once the configured file is fixed.
//!
//! A hot swap runs only a component signed by a trusted publisher for that
//! network: unsigned, signed by an unknown key, signed for another network
//! or tampered with, it is refused (422 naming the check) and audited with
//! the operator, the network and the sha256; a swap that was accepted is
//! still the active version after a restart.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use yiwang_e2e::{
    Client, LISTENERS, NetworkSpec, World, delivery_state, permit_case, signature_header,
};

const MR: &str = "market-regulation";
/// The down network, one name per test: the metrics recorder is process-wide.
const ZJ_SWAP: &str = "housing-swap";
const ZJ_RESUME: &str = "housing-resume";
const WAIT: Duration = Duration::from_secs(30);

/// Market regulation healthy; housing (`zj`)'s configured adapter is a
/// file that is not a Wasm component (it fails to load), in `bad_dir`.
async fn world(bad_dir: &tempfile::TempDir, zj: &str) -> Result<(World, Client, PathBuf)> {
    let bad = bad_dir.path().join("housing-construction.wasm");
    std::fs::write(&bad, b"this is not a wasm component")?;
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        sim: mr.sim.clone().with_stage_interval(Duration::ZERO),
        ..mr
    };
    let zj = NetworkSpec::housing_construction(zj);
    let zj = NetworkSpec {
        sim: zj.sim.clone().with_stage_interval(Duration::ZERO),
        adapter: bad.display().to_string(),
        ..zj
    };
    let items = format!(
        "[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}, {{ network = \"{}\" }}]\n",
        zj.name
    );
    let mut w = World::prepare(vec![mr, zj], &items, "", LISTENERS).await?;
    let c = w
        .start_gateway()
        .await
        .context("the gateway starts with one adapter that does not load")?;
    Ok((w, c, bad))
}

/// The neighbour delivers; housing's job is taken and held, its alert named.
async fn neighbour_delivers_and_the_down_network_holds(
    w: &World,
    c: &Client,
    admin: &Client,
    zj: &str,
) -> Result<()> {
    let (status, body) = c.post("/v1/cases", &permit_case("DOWN-0001")?).await?;
    assert_eq!(
        status, 202,
        "intake takes a case routed to a down network: {body}"
    );
    let view = c
        .wait_case("DOWN-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    assert_eq!(delivery_state(&view, zj), "pending", "{view}");
    let attempts = &view["networks"][zj]["delivery"]["attempts"];
    assert!(
        attempts.as_array().is_none_or(Vec::is_empty),
        "nothing is dispatched to a down network: {view}"
    );
    assert!(w.sim(zj).cases().is_empty());
    let (s, dest) = admin.get("/admin/destinations").await?;
    assert_eq!(s, 200, "{dest}");
    let down = &dest[format!("network:{zj}")];
    assert_eq!(down["alert"]["cause"], json!("adapter_load"), "{dest}");
    let reason = down["alert"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with(&format!(
            "adapter failed to load: adapter for network `{zj}`"
        )),
        "{reason}"
    );
    assert!(
        down["adapter"].is_null(),
        "a down network runs no adapter: {dest}"
    );
    assert_eq!(down["pending"], json!(1), "{dest}");
    let up = &dest[format!("network:{MR}")];
    assert!(up["alert"].is_null() && up["adapter"].is_object(), "{dest}");
    // A push from its ministry is not lost: 503 (retry later) naming the network.
    let cb = w
        .gateway
        .as_ref()
        .and_then(|g| g.callback_addr)
        .context("callbacks")?;
    let ministry = &w.pki.network(zj).context("pki")?.push_client;
    let push = Client::new(format!("https://{cb}"), &w.pki, ministry)?;
    let (s, p) = push
        .post(&format!("/v1/callbacks/{zj}"), &json!({}))
        .await?;
    assert_eq!(s, 503, "{p}");
    let named = format!("network `{zj}` has no adapter loaded");
    assert!(p.to_string().contains(&named), "{p}");
    let (_, metrics) = admin.get("/metrics").await?;
    let metrics = metrics.as_str().unwrap_or("");
    assert!(
        metrics.contains(&format!(
            "yiwang_destination_alert{{destination=\"network:{zj}\"}} 1"
        )),
        "the alert is a metric"
    );
    Ok(())
}

async fn housing_delivered(w: &World, c: &Client, admin: &Client, zj: &str) -> Result<Value> {
    let view = c
        .wait_case("DOWN-0001", WAIT, |v| delivery_state(v, zj) == "delivered")
        .await?;
    assert_eq!(w.sim(zj).cases().len(), 1, "delivered exactly once");
    let (_, dest) = admin.get("/admin/destinations").await?;
    let zj = &dest[format!("network:{zj}")];
    assert!(zj["alert"].is_null() && zj["adapter"].is_object(), "{dest}");
    Ok(view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_that_fails_to_load_takes_down_only_its_network_until_a_swap() -> Result<()> {
    let bad_dir = tempfile::tempdir()?;
    let zj = ZJ_SWAP;
    let (mut w, c, _) = world(&bad_dir, zj).await?;
    let admin = w.admin().context("admin client")?;
    neighbour_delivers_and_the_down_network_holds(&w, &c, &admin, zj).await?;
    let good = std::fs::read(yiwang_artifacts::HOUSING_CONSTRUCTION)?;
    swaps_that_are_refused(&w, &admin, zj, &good).await?;
    // A working version, signed for it and installed by the operator, brings it up.
    let header = signature_header(w.dir.path(), zj, &good)?;
    let (s, b) = swap(&admin, zj, &[header], good.clone()).await?;
    assert_eq!(s, 200, "{b}");
    let swapped = b["adapter"].as_str().unwrap_or_default().to_string();
    housing_delivered(&w, &c, &admin, zj).await?;
    // Restarted, with the configured file unchanged: the swap is still active.
    w.stop_gateway().await;
    w.start_gateway().await?;
    let admin = w.admin().context("admin client")?;
    let (_, dest) = admin.get("/admin/destinations").await?;
    let network = &dest[format!("network:{zj}")];
    assert_eq!(network["adapter"]["sha256"], json!(swapped), "{dest}");
    assert!(network["alert"].is_null(), "{dest}");
    w.stop_gateway().await;
    Ok(())
}

async fn swap(
    admin: &Client,
    zj: &str,
    headers: &[(String, String)],
    wasm: Vec<u8>,
) -> Result<(u16, Value)> {
    let path = format!("/admin/networks/{zj}/adapter");
    admin
        .request_with(http::Method::PUT, &path, "application/wasm", headers, wasm)
        .await
}

/// Unsigned, an unknown key, another network, tampered bytes: each swap
/// is answered 422 naming the check, audited with the operator, the
/// network and the sha256, and leaves the network down.
async fn swaps_that_are_refused(w: &World, admin: &Client, zj: &str, good: &[u8]) -> Result<()> {
    let stranger = tempfile::tempdir()?;
    yiwang_gateway::publisher::PublisherKey::generate().write(
        &stranger.path().join("publisher.key"),
        &stranger.path().join("publisher.pub"),
    )?;
    let tampered = [good, b"\0"].concat();
    let cases = [
        ("no-signature", vec![], good.to_vec()),
        (
            "unknown-key",
            vec![signature_header(stranger.path(), zj, good)?],
            good.to_vec(),
        ),
        (
            "other-network",
            vec![signature_header(w.dir.path(), MR, good)?],
            good.to_vec(),
        ),
        (
            "sha-mismatch",
            vec![signature_header(w.dir.path(), zj, good)?],
            tampered,
        ),
    ];
    for (check, headers, wasm) in cases {
        let sha = yiwang_schema::Sha256Digest::of(&wasm).to_string();
        let (s, b) = swap(admin, zj, &headers, wasm).await?;
        assert_eq!(s, 422, "{check}: {b}");
        assert!(
            b["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("adapter-refused")),
            "{b}"
        );
        assert!(
            b["detail"].as_str().is_some_and(|d| d.contains(zj)),
            "{check}: {b}"
        );
        let query = yiwang_audit::Query {
            network: Some(zj.into()),
            kind: Some(yiwang_audit::Kind::Admin),
            ..Default::default()
        };
        let audited = yiwang_audit::query(&w.audit_dir(), &query)
            .filter_map(Result::ok)
            .any(|r| {
                let refused = &r.detail["detail"]["refused"];
                r.principal.as_deref() == Some("ops")
                    && r.detail["operation"] == json!("adapter-reload")
                    && refused["check"] == json!(check)
                    && refused["sha256"] == json!(sha)
            });
        assert!(audited, "{check}: the refusal is audited with the operator");
    }
    let (_, dest) = admin.get("/admin/destinations").await?;
    assert!(
        dest[format!("network:{zj}")]["adapter"].is_null(),
        "still down: {dest}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_retries_the_configured_adapter_and_says_why_it_still_fails() -> Result<()> {
    let bad_dir = tempfile::tempdir()?;
    let zj = ZJ_RESUME;
    let (mut w, c, bad) = world(&bad_dir, zj).await?;
    let admin = w.admin().context("admin client")?;
    neighbour_delivers_and_the_down_network_holds(&w, &c, &admin, zj).await?;
    let resume = format!("/admin/networks/{zj}/resume");
    let (s, b) = admin.post(&resume, &json!({})).await?;
    assert_eq!(s, 422, "the file is still bad: {b}");
    assert_eq!(
        b["type"]
            .as_str()
            .map(|t| t.ends_with("adapter-load-failed")),
        Some(true),
        "{b}"
    );
    assert!(b.to_string().contains(zj), "{b}");
    assert!(w.sim(zj).cases().is_empty(), "still held");
    // The operator puts the right file (and its signature) in place and resumes.
    std::fs::copy(yiwang_artifacts::HOUSING_CONSTRUCTION, &bad)?;
    yiwang_e2e::sign_adapters(&w.config_path)?;
    let (s, b) = admin.post(&resume, &json!({})).await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["lifted_alert"]["cause"], json!("adapter_load"), "{b}");
    housing_delivered(&w, &c, &admin, zj).await?;
    w.stop_gateway().await;
    Ok(())
}
