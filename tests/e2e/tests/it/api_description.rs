//! `GET /openapi.json` on a live gateway: each listener answers its own
//! description (its own paths only, the committed one) to its principals,
//! and a certificate that maps to no principal is refused it (403, audited).

use anyhow::{Context, Result};
use serde_json::Value;
use yiwang_audit::{Kind, Query};
use yiwang_e2e::{Client, LISTENERS, NetworkSpec, World, default_principals, root};

const MR: &str = "market-regulation";

fn committed(listener: &str) -> Result<Value> {
    let path = root().join(format!("docs/openapi/{listener}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

fn paths(doc: &Value) -> Vec<String> {
    doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_serves_its_own_description_to_its_principals_only() -> Result<()> {
    // The auditor's certificate (trusted by the intake listener's CA)
    // maps to no principal in this world.
    let principals = default_principals(&[MR]).replace(
        "[principals.audit]\nrole = \"auditor\"\nmatch = { subject-cn = \"audit-1\" }\n",
        "",
    );
    assert!(!principals.contains("audit-1"), "{principals}");
    let items = format!("[items.\"SC-SPJY-001\"]\nroute = [{{ network = \"{MR}\" }}]\n");
    let mr = NetworkSpec::market_regulation(MR);
    let mut w = World::prepare_with(vec![mr], &items, "", LISTENERS, &principals).await?;
    let bureau = w.start_gateway().await?;
    let gw = w.gateway.as_ref().context("gateway")?;
    let callbacks = format!("https://{}", gw.callback_addr.context("callbacks")?);
    let ministry = Client::new(
        callbacks,
        &w.pki,
        &w.pki.network(MR).context("pki")?.push_client,
    )?;
    let operator = w.admin().context("admin listener")?;

    for (listener, client, prefix) in [
        ("intake", &bureau, "/v1/cases"),
        ("callbacks", &ministry, "/v1/callbacks/"),
        ("admin", &operator, "/"),
    ] {
        let (status, doc) = client.get("/openapi.json").await?;
        assert_eq!(status, 200, "{listener}: {doc}");
        assert_eq!(doc, committed(listener)?, "{listener}: served ≠ committed");
        for path in paths(&doc) {
            assert!(
                path == "/openapi.json" || path.starts_with(prefix),
                "{listener}: {path}"
            );
        }
    }
    // The intake listener's description holds no admin path, nor the admin's an intake one.
    let (_, intake) = bureau.get("/openapi.json").await?;
    assert!(!paths(&intake).iter().any(|p| p.starts_with("/admin")));
    let (_, admin) = operator.get("/openapi.json").await?;
    assert!(!paths(&admin).iter().any(|p| p.starts_with("/v1/")));

    let stranger = w.intake_as(&w.pki.auditor)?;
    let (status, problem) = stranger.get("/openapi.json").await?;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("read the API description")),
        "{problem}"
    );
    w.stop_gateway().await;
    let denied = yiwang_audit::query(
        &w.audit_dir(),
        &Query {
            kind: Some(Kind::Denial),
            ..Query::default()
        },
    )
    .filter_map(Result::ok)
    .any(|r| r.detail["action"] == "read the API description");
    assert!(denied, "the refused read is in the audit trail");
    Ok(())
}
