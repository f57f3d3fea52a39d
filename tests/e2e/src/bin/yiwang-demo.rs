//! `make demo`: five simulated ministry networks (one per protocol
//! archetype; the lookup-only one's statuses come back by the gateway's
//! status follow-up), the gateway on `config/demo.toml`, a stand-in for the unified
//! platform's webhook, and a few real cases — with their progress across
//! networks printed as it happens. Ctrl-C prints the double-entry report
//! over the demo's cases and stops it.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;
use yiwang_e2e::{Client, Pki, Webhook, case_json, permit_case, root, start_simulator};
use yiwang_gateway::report::{DoubleEntryReport, render};
use yiwang_simulator::SimConfig;

const NETWORKS: &[(&str, &str, u16)] = &[
    ("market-regulation", "JSON REST + login token", 18081),
    ("housing-construction", "SOAP 1.1, GB18030", 18082),
    ("tax", "signed open-API (HMAC-SHA256)", 18083),
    ("public-security", "callbacks (ministry pushes)", 18084),
    ("provincial-filing", "lookup-only SOAP + WS-Security", 18085),
];

fn sim_config(name: &str) -> SimConfig {
    let cfg = match name {
        "market-regulation" => SimConfig::json_rest(name),
        "housing-construction" => SimConfig::soap(name),
        "tax" => SimConfig::signed_api(name),
        // PasswordDigest only, with its nonce-replay and clock-window checks.
        "provincial-filing" => SimConfig::lookup_only(name),
        _ => SimConfig::callback(name)
            .with_callback_url("https://127.0.0.1:8442/v1/callbacks/public-security"),
    };
    cfg.with_stage_interval(Duration::from_millis(2500))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber_init();
    let root = root();
    let demo = root.join("target/demo");
    // A fresh queue, audit trail and PKI each run: the demo tells one story
    // from the start.
    let _ = std::fs::remove_dir_all(demo.join("data"));
    let _ = std::fs::remove_dir_all(demo.join("pki"));
    let names: Vec<&str> = NETWORKS.iter().map(|(n, _, _)| *n).collect();
    let pki = Pki::generate(&demo.join("pki"), &names)?;
    std::fs::create_dir_all(demo.join("adapters"))?;
    for (name, path) in [
        ("market_regulation", yiwang_artifacts::MARKET_REGULATION),
        (
            "housing_construction",
            yiwang_artifacts::HOUSING_CONSTRUCTION,
        ),
        ("tax", yiwang_artifacts::TAX),
        ("public_security", yiwang_artifacts::PUBLIC_SECURITY),
        ("provincial_filing", yiwang_artifacts::PROVINCIAL_FILING),
    ] {
        std::fs::copy(path, demo.join("adapters").join(format!("{name}.wasm")))
            .with_context(|| format!("copy adapter {path}"))?;
    }
    // Each adapter ships signed for its network, by a publisher key made
    // for this run (config/demo.toml trusts target/demo/publisher.pub).
    for old in ["publisher.key", "publisher.pub"] {
        let _ = std::fs::remove_file(demo.join(old));
    }
    yiwang_e2e::sign_adapters(&root.join("config/demo.toml"))
        .context("sign the demo's adapters")?;

    println!("一网 Yiwang demo\n");
    let mut sims = Vec::new();
    for (name, kind, port) in NETWORKS {
        let sim = start_simulator(name, &pki, sim_config(name), &format!("127.0.0.1:{port}"))
            .await
            .with_context(|| format!("start the {name} simulator (is port {port} free?)"))?;
        println!(
            "  ministry network  {name:<22} {kind:<32} {}",
            sim.base_url()
        );
        sims.push(sim);
    }
    let hook =
        Webhook::start_in("127.0.0.1:18090", "/yiwang/events", Some(&demo.join("pki"))).await?;
    println!(
        "  unified platform  webhook receiver             {}",
        hook.url
    );

    let config_path = root.join("config/demo.toml");
    let loaded =
        yiwang_gateway::config::Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let gateway = yiwang_gateway::serve::Gateway::start(
        &loaded,
        yiwang_gateway::delivery::DeliveryOptions::default(),
    )
    .await
    .context("start the gateway (are ports 8440-8442 free?)")?;
    println!(
        "  gateway           intake https://{}  callbacks https://{}  admin https://{}",
        gateway.intake_addr,
        gateway
            .callback_addr
            .map(|a| a.to_string())
            .unwrap_or_default(),
        gateway
            .admin_addr
            .map(|a| a.to_string())
            .unwrap_or_default(),
    );
    if let Some(admin) = gateway.admin_addr {
        console_line(&pki, admin);
    }
    println!("  config            {}", config_path.display());
    println!(
        "  PKI               {}  (every connection is mutually authenticated TLS)\n",
        demo.join("pki").display()
    );

    let started = yiwang_gateway::store::now_millis();
    let intake = format!("https://{}", gateway.intake_addr);
    let client = Client::new(&intake, &pki, &pki.bureau_fuzhou)?;
    let mut cases = Vec::new();
    let submissions = [
        (
            "企业开办 enterprise establishment: market regulation → tax + public security (licence number passed on)",
            case_json("enterprise-establishment.json", "FZGL-2026-001234")?,
        ),
        (
            "施工许可 construction permit: market regulation + housing & construction",
            permit_case("FZGL-2026-005678")?,
        ),
        (
            "项目备案 project filing: a lookup-only network, statuses brought back by follow-up",
            filing_case("FZGL-2026-004211")?,
        ),
        (
            "食品经营许可 food business licence",
            case_json("food-licence.json", "FZGL-2026-002468")?,
        ),
        (
            "legacy credit code accepted with an audited checksum override",
            case_json("legacy-uscc-override.json", "FZGL-2026-003579")?,
        ),
    ];
    for (what, case) in submissions {
        let (status, body) = client.post("/v1/cases", &case).await?;
        let number = case["case_number"].as_str().unwrap_or_default().to_string();
        println!("POST /v1/cases  {number}  → {status}  {what}");
        cases.push(number);
        let _ = body;
    }
    let bad = case_json("invalid-many.json", "FZGL 2026/001235")?;
    let (status, problem) = client.post("/v1/cases", &bad).await?;
    println!(
        "POST /v1/cases  (a case with {} mistakes) → {status} {}",
        problem["errors"].as_array().map(Vec::len).unwrap_or(0),
        problem["title"].as_str().unwrap_or("")
    );
    for e in problem["errors"].as_array().into_iter().flatten().take(3) {
        println!(
            "    {} [{}] {}",
            e["pointer"].as_str().unwrap_or(""),
            e["rule"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    println!("    …");
    // The item's form (config/forms/SC-SPJY-001.json) is checked at intake too.
    let mut bad_form = case_json("food-licence.json", "FZGL-2026-001236")?;
    bad_form["form"]["premises_area_m2"] = json!(-45.5);
    bad_form["form"]["business_items"] = json!(["热食类食品制售", "炸鸡"]);
    let (status, problem) = client.post("/v1/cases", &bad_form).await?;
    println!("POST /v1/cases  (bad values in the item's form) → {status}");
    for e in problem["errors"].as_array().into_iter().flatten() {
        println!(
            "    {} [{}] {}",
            e["pointer"].as_str().unwrap_or(""),
            e["rule"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    println!();
    security_checks(&pki, &intake, gateway.admin_addr).await?;
    println!("Progress (every change as it happens; Ctrl-C to stop):");

    let mut shown: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut notices_seen = 0;
    loop {
        for case in &cases {
            let Ok((200, view)) = client.get(&format!("/v1/cases/{case}")).await else {
                continue;
            };
            for (network, v) in view["networks"].as_object().into_iter().flatten() {
                let line = progress_line(v);
                let key = (case.clone(), network.clone());
                if shown.get(&key) != Some(&line) {
                    println!("  {case}  {network:<22} {line}");
                    shown.insert(key, line);
                }
            }
            let light = format!(
                "deadline light {}",
                view["deadline"]["light"].as_str().unwrap_or("")
            );
            let key = (case.clone(), "~light".to_string());
            if shown.get(&key) != Some(&light) {
                println!(
                    "  {case}  {:<22} {light} (due {})",
                    "",
                    view["deadline"]["deadline"].as_str().unwrap_or("-")
                );
                shown.insert(key, light);
            }
        }
        let notices = hook.notices();
        for (_, n) in notices.iter().skip(notices_seen) {
            println!("  → platform webhook: {}", notice_line(n));
        }
        notices_seen = notices.len();
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    if let Some(admin) = gateway.admin_addr {
        print_double_entry(&pki, admin, started).await;
    }
    println!("\nstopping…");
    gateway.shutdown().await;
    match yiwang_audit::verify(&demo.join("data/audit"), None) {
        Ok(r) => match &r.broken {
            None => println!(
                "audit trail: {} records, {} signed checkpoints, chain intact (yiwang audit verify {})",
                r.records,
                r.checkpoints,
                demo.join("data/audit").display()
            ),
            Some(b) => println!("audit trail BROKEN at {b:?}"),
        },
        Err(e) => println!("audit trail unreadable: {e}"),
    }
    for sim in sims {
        sim.shutdown().await;
    }
    Ok(())
}

/// Where the console is, and the certificates to import into a browser:
/// the operator's and the auditor's as PKCS#12 files (no password), made
/// with `openssl`, and the gateway's CA to trust.
fn console_line(pki: &Pki, admin: std::net::SocketAddr) {
    println!("  console           https://{admin}/console/  (docs/operator-guide.md#the-console)");
    for (who, id) in [("operator", &pki.operator), ("auditor", &pki.auditor)] {
        let p12 = id.cert_path.with_extension("p12");
        let made = std::process::Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:", "-name", who])
            .arg("-in")
            .arg(&id.cert_path)
            .arg("-inkey")
            .arg(&id.key_path)
            .arg("-out")
            .arg(&p12)
            .output()
            .is_ok_and(|o| o.status.success());
        if made {
            println!(
                "                    {who:<9} import {} (empty password)",
                p12.display()
            );
        }
    }
    println!(
        "                    trust     {} (the gateway's CA)",
        pki.gateway_ca.cert_path.display()
    );
}

/// The double-entry report over the demo's cases, as the operator reads it
/// (`yiwang report double-entry` prints the same table).
async fn print_double_entry(pki: &Pki, admin: std::net::SocketAddr, since: i64) {
    let since = yiwang_gateway::delivery::view::rfc3339(since).unwrap_or_default();
    let path = format!(
        "/admin/reports/double-entry?since={}",
        since.replace('+', "%2B")
    );
    let answer = match Client::new(format!("https://{admin}"), pki, &pki.operator) {
        Ok(c) => c.get(&path).await,
        Err(e) => Err(e),
    };
    let report = answer.and_then(|(status, body)| {
        anyhow::ensure!(status == 200, "{status} {body}");
        Ok(serde_json::from_value::<DoubleEntryReport>(body)?)
    });
    match report {
        Ok(r) => println!("\n{}", render::table(&r)),
        Err(e) => println!("\ndouble-entry report unavailable: {e:#}"),
    }
}

/// What the edges refuse, shown live: each line is a real request.
async fn security_checks(
    pki: &Pki,
    intake: &str,
    admin: Option<std::net::SocketAddr>,
) -> Result<()> {
    println!("Edges (mTLS and policy):");
    let plain = Client::plaintext(intake.replace("https://", "http://"));
    let r = plain.get("/v1/cases?limit=1").await;
    println!("  {:<34} → {}", "plaintext HTTP", outcome(r));
    for (what, who) in [
        ("a certificate from a rogue CA", &pki.rogue_bureau),
        ("an expired bureau certificate", &pki.expired_bureau),
        ("a revoked bureau certificate", &pki.revoked_bureau),
    ] {
        let r = Client::new(intake, pki, who)?
            .get("/v1/cases?limit=1")
            .await;
        println!("  {what:<34} → {}", outcome(r));
    }
    if let Some(ministry) = pki.networks.first() {
        let c = Client::new(intake, pki, &ministry.push_client)?;
        let r = c
            .post(
                "/v1/cases",
                &case_json("food-licence.json", "FZGL-2026-009999")?,
            )
            .await;
        println!(
            "  {:<34} → {}",
            "a ministry certificate on intake",
            outcome(r)
        );
    }
    let mut other = case_json("food-licence.json", "FZGL-2026-009998")?;
    other["bureau"]["uscc"] = json!("11350100MB0000000Y");
    let r = Client::new(intake, pki, &pki.bureau_fuzhou)?
        .post("/v1/cases", &other)
        .await;
    println!(
        "  {:<34} → {}",
        "the bureau filing for another one",
        outcome(r)
    );
    if let Some(admin) = admin {
        let base = format!("https://{admin}");
        let r = Client::new(&base, pki, &pki.auditor)?
            .get("/admin/queue")
            .await;
        println!("  {:<34} → {}", "the auditor reading the queue", outcome(r));
        let r = Client::new(&base, pki, &pki.auditor)?
            .get("/admin/audit/verify")
            .await;
        println!(
            "  {:<34} → {}",
            "the auditor verifying the trail",
            outcome(r)
        );
    }
    println!();
    Ok(())
}

/// One line for a request's outcome: status and problem detail, or the TLS error.
fn outcome(r: Result<(u16, Value)>) -> String {
    match r {
        Ok((status, body)) => {
            let detail = body["detail"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    body["intact"]
                        .as_bool()
                        .map(|i| format!("chain intact: {i}, {} records", body["records"]))
                })
                .unwrap_or_default();
            format!("{status} {detail}")
        }
        Err(e) => format!("refused: {}", short(&format!("{e:#}"))),
    }
}

fn short(s: &str) -> String {
    s.chars().take(140).collect()
}

/// The construction-permit case as a project filing (`BA-XMBA-001`).
fn filing_case(number: &str) -> Result<Value> {
    let mut case = permit_case(number)?;
    case["item"]["code"] = json!("BA-XMBA-001");
    Ok(case)
}

fn progress_line(v: &Value) -> String {
    let d = &v["delivery"];
    let mut s = d["state"].as_str().unwrap_or("").to_string();
    if let Some(w) = d["waiting_for"].as_str() {
        s.push_str(&format!(" (for {w})"));
    }
    if let Some(n) = v["network_case_number"].as_str() {
        s.push_str(&format!("  ministry no. {n}"));
    }
    if let Some(stage) = v["stage"].as_str() {
        s.push_str(&format!(
            "  stage {stage} {}",
            v["stage_zh"].as_str().unwrap_or("")
        ));
    }
    if let Some(c) = v["certificate_number"].as_str() {
        s.push_str(&format!("  certificate {c}"));
    }
    // A lookup-only network's stages come by follow-up: say so, and when it ended.
    if let Some(n) = v["follow_up"]["queries"].as_u64() {
        if v["follow_up"]["next_at"].is_null() {
            s.push_str(&format!("  (follow-up done after {n} lookups)"));
        } else {
            s.push_str("  (by follow-up)");
        }
    }
    if let Some(e) = d["last_error"]["message"].as_str() {
        s.push_str(&format!("  last error: {e}"));
    }
    s
}

fn notice_line(n: &Value) -> String {
    let case = n["case_number"].as_str().unwrap_or("");
    match n["type"].as_str() {
        Some("stage") => format!(
            "{case} {} is {} {}",
            n["network"].as_str().unwrap_or(""),
            n["stage"].as_str().unwrap_or(""),
            n["stage_zh"].as_str().unwrap_or("")
        ),
        Some("delivery") => format!(
            "{case} delivery to {} {}",
            n["network"].as_str().unwrap_or(""),
            n["state"].as_str().unwrap_or("")
        ),
        Some("deadline") => format!(
            "{case} deadline light {}",
            n["light"].as_str().unwrap_or("")
        ),
        _ => json!(n).to_string(),
    }
}

fn tracing_subscriber_init() {
    // Quiet by default: the demo prints its own story. RUST_LOG=info shows the gateway's logs.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
