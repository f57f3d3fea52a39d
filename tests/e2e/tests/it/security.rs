//! The hardened edges, each shown by causing what it guards against:
//! mTLS in (no, expired, foreign-CA and revoked certificates refused with a
//! specific alert; certificates and CRLs reloaded without a restart or a
//! dropped connection, except the open connection of a client the new CRL
//! revokes), mTLS out (a ministry presenting a bad certificate
//! puts its network in alert and holds its queue), the authorization policy
//! (deny by default, every denial audited), and the audit trail (every
//! crossing recorded; a changed record named by `yiwang audit verify`).

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yiwang_audit::{Kind, Query};
use yiwang_e2e::{
    LISTENERS, NetworkSpec, World, case_json, default_principals, delivery_state, permit_case,
    until,
};

const MR: &str = "market-regulation";
const WAIT: Duration = Duration::from_secs(30);

fn items() -> String {
    format!(
        "[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}]\n[items.\"SC-SPJY-001\"]\nroute = [{{ network = \"{MR}\" }}]\n"
    )
}

async fn world_with(principals: &str) -> Result<World> {
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        sim: mr.sim.clone().with_stage_interval(Duration::ZERO),
        ..mr
    };
    World::prepare_with(vec![mr], &items(), "", LISTENERS, principals).await
}

/// One raw HTTP/1.1 request over a TLS connection made with `config`:
/// the status line, or the error (handshake or first read).
async fn raw_request(
    addr: SocketAddr,
    config: tokio_rustls::rustls::ClientConfig,
    path: &str,
) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")
        .map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    // With TLS 1.3 the server judges the client certificate after the
    // client's handshake is done: its alert may come before or after our
    // write, so read even if the write failed, to report the alert.
    let written = tls.write_all(request.as_bytes()).await;
    let mut buf = vec![0u8; 512];
    let read = tls.read(&mut buf).await;
    let n = match (written, read) {
        (_, Ok(n)) if n > 0 => n,
        (_, Err(e)) => return Err(format!("read: {e}")),
        (Err(e), Ok(_)) => return Err(format!("write: {e}")),
        (Ok(()), Ok(n)) => n,
    };
    if n == 0 {
        return Err("closed without an answer".into());
    }
    Ok(String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn records(w: &World, query: Query) -> Result<Vec<yiwang_audit::Record>> {
    yiwang_audit::query(&w.audit_dir(), &query)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_valid_certificate_never_reach_http() -> Result<()> {
    let mut w = world_with("").await?;
    let _c = w.start_gateway().await?;
    let addr = w.gateway.as_ref().context("gateway")?.intake_addr;
    let ca = w.pki.gateway_ca.cert_pem().to_string();
    let cfg = |who: &yiwang_pki::IssuedFiles| {
        yiwang_pki::client_config(&[&ca], &who.cert_pem, &who.key_pem).expect("client config")
    };
    // Each refusal is specific: the TLS alert names the reason.
    let cases = [
        (
            "no certificate",
            yiwang_pki::client_config_without_cert(&[&ca])?,
            "CertificateRequired",
            "no client certificate",
        ),
        (
            "expired",
            cfg(&w.pki.expired_bureau),
            "CertificateExpired",
            "expired",
        ),
        (
            "rogue CA",
            cfg(&w.pki.rogue_bureau),
            "UnknownCA",
            "unknown CA",
        ),
        (
            "revoked",
            cfg(&w.pki.revoked_bureau),
            "CertificateRevoked",
            "revoked",
        ),
    ];
    for (what, config, alert, _) in &cases {
        let got = raw_request(addr, config.clone(), "/v1/cases?limit=1").await;
        let err = got.expect_err(what);
        assert!(
            err.contains(alert),
            "{what}: expected alert {alert}, got {err}"
        );
    }
    // Plain HTTP gets nothing HTTP back.
    let plain = yiwang_e2e::Client::plaintext(format!("http://{addr}"));
    assert!(plain.get("/v1/cases").await.is_err(), "plaintext must fail");
    // A slow client that never finishes the handshake is cut off too (the
    // listener's header timeout, 10 s by default: not waited for here).
    // The gateway kept serving a proper client meanwhile.
    let ok = raw_request(addr, cfg(&w.pki.bureau_fuzhou), "/v1/cases?limit=1").await;
    assert!(ok.as_deref().is_ok_and(|s| s.contains("200")), "{ok:?}");
    // Every refusal is in the audit trail, with its reason.
    w.stop_gateway().await;
    let refused = records(
        &w,
        Query {
            kind: Some(Kind::TlsRefused),
            ..Default::default()
        },
    )?;
    for (what, _, _, reason) in &cases {
        assert!(
            refused
                .iter()
                .any(|r| r.detail["reason"].as_str().unwrap_or("").contains(reason)),
            "{what}: no tls-refused record saying {reason:?}: {refused:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_principal_gets_what_its_grants_allow_and_every_denial_is_audited() -> Result<()> {
    // The bureau may submit construction permits for its own bureau only.
    let case = permit_case("POL-0001")?;
    let own_bureau = case["bureau"]["uscc"].as_str().context("uscc")?.to_string();
    let principals = default_principals(&[MR]).replace(
        "items = [\"*\"]\nbureaus = [\"*\"]\n[principals.platform]",
        &format!("items = [\"ZJ-SGXK-001\"]\nbureaus = [\"{own_bureau}\"]\n[principals.platform]"),
    );
    assert!(principals.contains(&own_bureau));
    let mut w = world_with(&principals).await?;
    let bureau = w.start_gateway().await?;
    let platform = w.intake_as(&w.pki.platform)?;
    let ministry = w.intake_as(&w.pki.network(MR).context("pki")?.push_client)?;
    let mut denials = 0;
    let mut denied = |status: u16, body: &Value, rule: &str| {
        assert_eq!(status, 403, "{body}");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(rule), "expected {rule:?} in {detail:?}");
        denials += 1;
    };

    // Allowed: its item for its bureau.
    assert_eq!(bureau.post("/v1/cases", &case).await?.0, 202);
    // Another item: refused, naming the item.
    let (s, b) = bureau
        .post("/v1/cases", &case_json("food-licence.json", "POL-0002")?)
        .await?;
    denied(s, &b, "item SC-SPJY-001 is not among its items");
    // Its item for another bureau: refused, naming the bureau.
    let mut foreign = permit_case("POL-0003")?;
    foreign["bureau"]["uscc"] = json!("11350100MB0000000Y");
    let (s, b) = bureau.post("/v1/cases", &foreign).await?;
    denied(s, &b, "bureau 11350100MB0000000Y is not among its bureaus");
    // The platform (all bureaus) submits that one; the bureau cannot read it.
    assert_eq!(platform.post("/v1/cases", &foreign).await?.0, 202);
    let (s, b) = bureau.get("/v1/cases/POL-0003").await?;
    denied(s, &b, "the case belongs to bureau 11350100MB0000000Y");
    // Search shows the bureau its own cases only.
    let (s, found) = bureau.get("/v1/cases?limit=100").await?;
    assert_eq!(s, 200);
    let numbers: Vec<&str> = found["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["case_number"].as_str())
        .collect();
    assert_eq!(numbers, vec!["POL-0001"], "{found}");
    // A ministry's certificate is not even trusted on the intake listener
    // (it trusts the bureau CA); an operator's is, and still gets no cases.
    // (With TLS 1.3 the client may see the alert or just the closed
    // connection, depending on timing; the gateway's reason is in the trail.)
    ministry
        .post("/v1/cases", &case)
        .await
        .expect_err("a ministry certificate on intake");
    let operator_on_intake = w.intake_as(&w.pki.operator)?;
    let (s, b) = operator_on_intake.post("/v1/cases", &case).await?;
    denied(
        s,
        &b,
        "cases are for bureau and platform principals; its role is operator",
    );
    // Admin: the auditor reads the trail only; the operator not the trail.
    let auditor = w.admin_as(&w.pki.auditor)?;
    let operator = w.admin().context("admin")?;
    let (s, b) = auditor.get("/admin/queue").await?;
    denied(s, &b, "admin operations are for operator principals");
    let (s, b) = auditor
        .post("/admin/replay", &json!({"case_number": "POL-0001"}))
        .await?;
    denied(s, &b, "admin operations are for operator principals");
    let (s, b) = operator.get("/admin/audit").await?;
    denied(s, &b, "the audit trail is for auditor principals");
    assert_eq!(operator.get("/admin/queue").await?.0, 200);
    let (s, trail) = auditor.get("/admin/audit?case=POL-0001").await?;
    assert_eq!(s, 200, "{trail}");
    // A bureau certificate on the callback listener is not even trusted
    // there (it trusts the ministries' CA only).
    let cb = w
        .gateway
        .as_ref()
        .and_then(|g| g.callback_addr)
        .context("callbacks")?;
    let wrong_listener =
        yiwang_e2e::Client::new(format!("https://{cb}"), &w.pki, &w.pki.bureau_fuzhou)?;
    assert!(
        wrong_listener
            .post(&format!("/v1/callbacks/{MR}"), &json!({}))
            .await
            .is_err()
    );
    bureau
        .wait_case("POL-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    w.stop_gateway().await;
    let audited = records(
        &w,
        Query {
            kind: Some(Kind::Denial),
            ..Default::default()
        },
    )?;
    assert_eq!(audited.len(), denials, "every denial audited: {audited:?}");
    let refused = records(
        &w,
        Query {
            kind: Some(Kind::TlsRefused),
            ..Default::default()
        },
    )?;
    assert!(
        refused.iter().any(|r| r.detail["reason"]
            .as_str()
            .unwrap_or("")
            .contains("unknown CA")),
        "the ministry certificate on intake is refused for its CA: {refused:?}"
    );
    for r in &audited {
        assert!(r.principal.is_some(), "a denial names its principal: {r:?}");
        assert!(r.detail["rule"].is_string(), "{r:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crossing_is_in_a_trail_that_names_the_first_changed_record() -> Result<()> {
    let mut principals = default_principals(&[MR]);
    principals.push_str(
        "[audit]\nkeep-bodies = true\nbody-key-file = \"body.key\"\ncheckpoint-every = 10\n",
    );
    let mut w = world_with(&principals).await?;
    let body_key = [7u8; 32];
    std::fs::write(w.dir.path().join("body.key"), hex::encode(body_key))?;
    let c = w.start_gateway().await?;
    let case = permit_case("AUD-0001")?;
    assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    c.wait_case("AUD-0001", WAIT, |v| {
        delivery_state(v, MR) == "delivered" && v["networks"][MR]["stage"].is_string()
    })
    .await?;
    // The auditor reads the case's trail over the admin API (JSON lines).
    // A back-flow event is stored before its record reaches the trail's
    // writer, so the trail may lag the case view by a moment: read again
    // until every kind of crossing is there.
    let auditor = w.admin_as(&w.pki.auditor)?;
    let kinds = || async {
        let (s, text) = auditor.get("/admin/audit?case=AUD-0001").await?;
        assert_eq!(s, 200);
        let kinds: Vec<String> = text
            .as_str()
            .unwrap_or("")
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|l| l["kind"].as_str().map(str::to_string))
            .collect();
        anyhow::Ok(kinds)
    };
    let wanted = ["intake", "adapter-call", "outbound", "backflow", "read"];
    let complete = until(
        WAIT,
        "every kind of crossing in the case's trail",
        || async {
            let k = kinds().await.ok()?;
            wanted
                .iter()
                .all(|w| k.iter().any(|x| x == w))
                .then_some(())
        },
    )
    .await;
    if complete.is_err() {
        panic!("the case's trail lacks a crossing: {:?}", kinds().await?);
    }
    w.stop_gateway().await;

    // Every kind of crossing, with the data the issue asks for.
    let all = records(&w, Query::default())?;
    let intake = all
        .iter()
        .find(|r| r.kind == Kind::Intake && r.case.as_deref() == Some("AUD-0001"))
        .context("intake record")?;
    assert_eq!(intake.principal.as_deref(), Some("fuzhou-bureau"));
    let outbound = all
        .iter()
        .find(|r| r.kind == Kind::Outbound && r.case.as_deref() == Some("AUD-0001"))
        .context("outbound record")?;
    assert_eq!(outbound.network.as_deref(), Some(MR));
    let sha = outbound.detail["request_sha256"].as_str().unwrap_or("");
    assert_eq!(sha.len(), 64, "{outbound:?}");
    assert!(outbound.detail["status"].is_u64(), "{outbound:?}");
    // Bodies are kept encrypted: the case's applicant is not in the file in
    // clear, and the key opens them.
    let dir = w.audit_dir();
    let raw: String = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let applicant = case["applicant"]["name"].as_str().context("applicant")?;
    assert!(!raw.contains(applicant), "a body was stored in clear");
    let opened = yiwang_audit::decrypt_bodies(intake, Default::default(), &body_key)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(
        opened
            .iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains(applicant)),
        "the intake body opens with the key"
    );

    // `yiwang audit verify` passes, then names the record an insider changed.
    let cli = |dir: &std::path::Path| -> Result<(i32, String)> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"))
            .args(["audit", "verify"])
            .arg(dir)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    let (code, out) = cli(&dir)?;
    assert_eq!(code, 0, "{out}");
    let segment = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .min()
        .context("segment")?;
    let text = std::fs::read_to_string(&segment)?;
    let target = text
        .lines()
        .find(|l| l.contains("\"kind\":\"intake\""))
        .context("intake line")?;
    let seq = serde_json::from_str::<Value>(target)?["seq"]
        .as_u64()
        .context("seq")?;
    let changed = target.replacen("fuzhou-bureau", "someone-else", 1);
    assert_ne!(changed, target);
    let mut f = std::fs::File::create(&segment)?;
    f.write_all(text.replacen(target, &changed, 1).as_bytes())?;
    drop(f);
    let (code, out) = cli(&dir)?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("seq {seq}")),
        "verify must name seq {seq}: {out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ministry_with_a_bad_certificate_is_held_in_alert_until_fixed() -> Result<()> {
    let mut w = world_with("").await?;
    // The ministry presents a certificate from a CA the gateway does not
    // trust for it (same name) from the first connection on.
    let rogue = w.pki.rogue_ca.issue(&yiwang_pki::CertSpec::server(
        &yiwang_pki::network_server_name(MR),
        &[&yiwang_pki::network_server_name(MR)],
        &[],
    ));
    w.sim(MR).set_server_cert(&rogue.cert_pem, &rogue.key_pem)?;
    let c = w.start_gateway().await?;
    let sim = w.sim(MR);
    assert_eq!(
        c.post("/v1/cases", &permit_case("ALERT-0001")?).await?.0,
        202
    );
    let admin = w.admin().context("admin")?;
    let alert = until(WAIT, "the network's alert", || async {
        let (_, d) = admin.get("/admin/destinations").await.ok()?;
        let a = d[format!("network:{MR}")]["alert"].clone();
        (!a.is_null()).then_some(a)
    })
    .await?;
    let reason = alert["reason"].as_str().unwrap_or("");
    assert!(reason.contains("TLS peer refused"), "{alert}");
    // The queue holds: no more attempts while the alert stands.
    let attempts = |v: &Value| {
        v["networks"][MR]["delivery"]["attempts"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    let (_, before) = c.get("/v1/cases/ALERT-0001").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, after) = c.get("/v1/cases/ALERT-0001").await?;
    assert_eq!(
        attempts(&before),
        attempts(&after),
        "retried during the alert: {after}"
    );
    assert!(sim.cases().is_empty());
    let (_, metrics) = admin.get("/metrics").await?;
    assert!(
        metrics.as_str().unwrap_or("").contains(&format!(
            "yiwang_destination_alert{{destination=\"network:{MR}\"}} 1"
        )),
        "the alert is a metric"
    );
    // The ministry fixes its certificate; an operator resumes the network.
    let good = &w.pki.network(MR).context("pki")?.server;
    sim.set_server_cert(&good.cert_pem, &good.key_pem)?;
    let (s, b) = admin
        .post(&format!("/admin/networks/{MR}/resume"), &json!({}))
        .await?;
    assert_eq!(s, 200, "{b}");
    c.wait_case("ALERT-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    assert_eq!(sim.cases().len(), 1, "delivered exactly once");
    w.stop_gateway().await;
    let alerts = records(
        &w,
        Query {
            kind: Some(Kind::Alert),
            ..Default::default()
        },
    )?;
    assert!(
        alerts.len() >= 2,
        "raised and lifted, both audited: {alerts:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_crls_reload_without_a_restart_and_close_only_revoked_connections()
-> Result<()> {
    let mut w = world_with("").await?;
    let c = w.start_gateway().await?;
    let addr = w.gateway.as_ref().context("gateway")?.intake_addr;
    let ca = w.pki.gateway_ca.cert_pem().to_string();
    // Two keep-alive connections opened before the reload: the platform's
    // (about to be revoked) and the Fuzhou bureau's.
    let keep_alive = |who: &yiwang_pki::IssuedFiles| -> Result<_> {
        let config = yiwang_pki::client_config(&[&ca], &who.cert_pem, &who.key_pem)?;
        Ok(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")?;
            anyhow::Ok(
                tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await?,
            )
        })
    };
    let mut open = keep_alive(&w.pki.platform)?.await?;
    let mut neighbour = keep_alive(&w.pki.bureau_fuzhou)?.await?;
    let old_cert = open
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("server cert")?
        .to_vec();
    let ask = b"GET /v1/cases?limit=1 HTTP/1.1\r\nhost: localhost\r\n\r\n";
    open.write_all(ask).await?;
    let mut buf = vec![0u8; 4096];
    let n = open.read(&mut buf).await?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    neighbour.write_all(ask).await?;
    let n = neighbour.read(&mut buf).await?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Rotate the server certificate and revoke the platform's client
    // certificate, by replacing files only.
    let renewed = w.pki.gateway_ca.issue(&yiwang_pki::CertSpec::server(
        yiwang_pki::GATEWAY_SERVER_CN,
        yiwang_pki::GATEWAY_DNS,
        &["127.0.0.1".parse()?],
    ));
    renewed.write(&w.dir.path().join("pki"), "gateway")?;
    let crl = w
        .pki
        .bureau_ca
        .crl(&[&w.pki.revoked_bureau.issued, &w.pki.platform.issued]);
    std::fs::write(&w.pki.bureau_crl.path, crl)?;
    // New connections see the new certificate; the platform is refused.
    let platform_cfg =
        yiwang_pki::client_config(&[&ca], &w.pki.platform.cert_pem, &w.pki.platform.key_pem)?;
    until(WAIT, "the reload", || async {
        raw_request(addr, platform_cfg.clone(), "/healthz")
            .await
            .is_err_and(|e| e.contains("CertificateRevoked"))
            .then_some(())
    })
    .await?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let fresh = tokio_rustls::TlsConnector::from(Arc::new(yiwang_pki::client_config(
        &[&ca],
        &w.pki.bureau_fuzhou.cert_pem,
        &w.pki.bureau_fuzhou.key_pem,
    )?))
    .connect(
        tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")?,
        tcp,
    )
    .await?;
    let new_cert = fresh
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("server cert")?
        .to_vec();
    assert_ne!(
        old_cert, new_cert,
        "new connections get the renewed certificate"
    );
    assert_eq!(new_cert, renewed.cert_der.to_vec());
    // The platform's open connection is closed by the gateway, without a
    // request from the client; a request on it gets no answer.
    let closed = tokio::time::timeout(WAIT, open.read(&mut buf))
        .await
        .context("the revoked client's connection stayed open")?;
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let again = async {
        open.write_all(ask).await?;
        open.read(&mut buf).await
    };
    let again = again.await;
    assert!(!matches!(again, Ok(n) if n > 0), "answered: {again:?}");
    // The bureau's connection opened before the reload still works.
    neighbour.write_all(ask).await?;
    let n = neighbour.read(&mut buf).await?;
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the old connection was dropped"
    );
    // And the bureau was never interrupted.
    assert_eq!(
        c.post("/v1/cases", &permit_case("RELOAD-0001")?).await?.0,
        202
    );
    w.stop_gateway().await;
    // The closing is audited, naming the principal and the serial.
    let serial = yiwang_gateway::tls::peer_identity(&w.pki.platform.issued.cert_der)?.serial_hex;
    let closed = records(
        &w,
        Query {
            kind: Some(Kind::TlsRefused),
            principal: Some("platform".into()),
            ..Default::default()
        },
    )?;
    assert!(
        closed.iter().any(|r| r.detail["serial"] == serial.as_str()
            && r.detail["reason"]
                .as_str()
                .unwrap_or("")
                .contains("revoked by a reloaded CRL")),
        "{closed:?}"
    );
    Ok(())
}

/// A free loopback port (bound, read, released), for a witness that must
/// come back on the address its pushers were configured with.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `openssl ts` as an RFC 3161 time-stamping authority over plain HTTP
/// (a throwaway key and timeStamping certificate in `dir`); its URL.
async fn start_tsa(dir: std::path::PathBuf) -> Result<String> {
    use http_body_util::BodyExt;
    let openssl = |args: &[&str]| -> Result<()> {
        let out = std::process::Command::new("openssl")
            .current_dir(&dir)
            .args(args)
            .output()
            .context("openssl (the test TSA) must be installed")?;
        anyhow::ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("tsa.cnf"),
        "[tsa]\ndefault_tsa = t\n[t]\nserial = ./serial\ncrypto_device = builtin\n\
         signer_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256\n\
         ess_cert_id_alg = sha256\n[req]\ndistinguished_name = dn\nprompt = no\n\
         [dn]\nCN = test-tsa\n[ext]\nbasicConstraints = critical,CA:false\n\
         keyUsage = critical,digitalSignature\nextendedKeyUsage = critical,timeStamping\n",
    )?;
    std::fs::write(dir.join("serial"), "01\n")?;
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tsa.key",
        "-out",
        "tsa.crt",
        "-days",
        "2",
        "-config",
        "tsa.cnf",
        "-extensions",
        "ext",
    ])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/tsr", listener.local_addr()?);
    let dir = Arc::new(dir);
    let answered = Arc::new(std::sync::Mutex::new(()));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (dir, answered) = (dir.clone(), answered.clone());
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (dir, answered) = (dir.clone(), answered.clone());
                    async move {
                        let query = req.into_body().collect().await?.to_bytes();
                        // One reply at a time: `openssl ts` keeps a serial file.
                        let reply = tokio::task::spawn_blocking(move || {
                            let _one = answered.lock().unwrap_or_else(|p| p.into_inner());
                            std::fs::write(dir.join("q.tsq"), &query).ok()?;
                            let ok = std::process::Command::new("openssl")
                                .current_dir(dir.as_path())
                                .args([
                                    "ts",
                                    "-reply",
                                    "-queryfile",
                                    "q.tsq",
                                    "-signer",
                                    "tsa.crt",
                                    "-inkey",
                                    "tsa.key",
                                    "-config",
                                    "tsa.cnf",
                                    "-out",
                                    "r.tsr",
                                ])
                                .output()
                                .ok()?
                                .status
                                .success();
                            ok.then(|| std::fs::read(dir.join("r.tsr")).ok()).flatten()
                        })
                        .await
                        .ok()
                        .flatten();
                        let (status, body) = match reply {
                            Some(r) => (200, r),
                            None => (500, Vec::new()),
                        };
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/timestamp-reply")
                                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                .unwrap_or_default(),
                        )
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    Ok(url)
}

/// The (first) segment of a trail.
fn dir_of_b_segment(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .min()
        .context("segment")
}

/// The checkpoint seqs of a trail.
fn checkpoint_seqs(dir: &std::path::Path) -> Result<Vec<u64>> {
    let q = Query {
        kind: Some(Kind::Checkpoint),
        ..Query::default()
    };
    Ok(yiwang_audit::query(dir, &q)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .iter()
        .map(|r| r.seq)
        .collect())
}

/// The seqs a witness holds for its (only) trail, as its auditor reads them.
async fn witnessed_seqs(witness: &yiwang_e2e::Client) -> Result<Vec<u64>> {
    let (status, doc) = witness.get("/admin/witness").await?;
    anyhow::ensure!(status == 200, "GET /admin/witness: {status} {doc}");
    let doc: yiwang_audit::WitnessDoc = serde_json::from_value(doc)?;
    Ok(doc
        .trails
        .iter()
        .flat_map(|t| t.checkpoints.iter().map(|c| c.seq))
        .collect())
}

/// Gateway B pushes its checkpoints to gateway A's witness API over mTLS:
/// while A is down nothing is acknowledged and B serves on; once A is up
/// every checkpoint arrives, and after B restarts those it signed at its
/// stop too (nothing lost). A's answer, saved by A's auditor, then makes
/// `yiwang audit verify --witness` find a tail cut off B's trail, which
/// plain verify cannot; and A refuses a forked checkpoint signed with B's
/// own key. B also has every checkpoint time-stamped by an RFC 3161 TSA
/// (`openssl ts`), whose replies `openssl ts -verify` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_witnesses_the_trail_and_a_cut_tail_is_found() -> Result<()> {
    let port = free_port()?;
    let tsa_dir = tempfile::tempdir()?;
    let tsa = start_tsa(tsa_dir.path().to_path_buf()).await?;
    let witness_listeners = format!(
        "[listeners]\nintake = {{ addr = \"127.0.0.1:0\" }}\nadmin = {{ addr = \"127.0.0.1:{port}\" }}\n"
    );
    let mut a = World::prepare(vec![], "", "", &witness_listeners).await?;
    let mut principals = default_principals(&[MR]);
    principals.push_str(&format!(
        "[audit]\ncheckpoint-every = 5\n[audit.witness.a]\nurl = \"https://127.0.0.1:{port}/admin/witness\"\n\
         [audit.witness.a.tls]\nca = [{ca:?}]\ncert = {cert:?}\nkey = {key:?}\n\
         [audit.witness.tsa]\nurl = {tsa:?}\nprotocol = \"rfc3161\"\n",
        ca = a.pki.gateway_ca.cert_path,
        cert = a.pki.auditor.cert_path,
        key = a.pki.auditor.key_path,
    ));
    let mut b = world_with(&principals).await?;
    let cursor = b.dir.path().join("data/witness/pushed/a.json");

    // The witness is down: B serves, signs, and has nothing acknowledged.
    let c = b.start_gateway().await?;
    for n in 1..=3 {
        let number = format!("WIT-000{n}");
        assert_eq!(c.post("/v1/cases", &permit_case(&number)?).await?.0, 202);
        c.wait_case(&number, WAIT, |v| delivery_state(v, MR) == "delivered")
            .await?;
    }
    let signed = checkpoint_seqs(&b.audit_dir())?;
    assert!(signed.len() >= 2, "{signed:?}");
    assert!(
        !cursor.exists(),
        "nothing acknowledged while the witness is down"
    );

    // Up: every checkpoint arrives, in order.
    a.start_gateway().await?;
    let witness = a.admin_as(&a.pki.auditor)?;
    let long = Duration::from_secs(90);
    until(long, "the witness to hold B's checkpoints", || async {
        let held = witnessed_seqs(&witness).await.ok()?;
        held.contains(signed.last()?).then_some(())
    })
    .await?;
    b.stop_gateway().await;
    // The checkpoint signed at B's stop is pushed after its restart.
    let before_restart = checkpoint_seqs(&b.audit_dir())?;
    b.start_gateway().await?;
    let held = until(
        long,
        "the witness to hold the stop's checkpoint",
        || async {
            let held = witnessed_seqs(&witness).await.ok()?;
            let last = *before_restart.last()?;
            held.contains(&last).then_some(held)
        },
    )
    .await?;
    // The TSA has time-stamped each of them too.
    let stamps = b.dir.path().join("data/witness/timestamps/tsa");
    until(long, "a time-stamp of every checkpoint", || async {
        held.iter()
            .all(|seq| stamps.join(format!("{seq}.tsr")).exists())
            .then_some(())
    })
    .await?;
    b.stop_gateway().await;
    let all = checkpoint_seqs(&b.audit_dir())?;
    assert_eq!(
        held,
        all[..held.len()].to_vec(),
        "every checkpoint, in order, none lost"
    );

    let first = held[0];
    let line = std::fs::read_to_string(&dir_of_b_segment(&b.audit_dir())?)?
        .lines()
        .find(|l| l.starts_with(&format!("{{\"seq\":{first},")))
        .context("the first checkpoint's line")?
        .to_string();
    std::fs::write(tsa_dir.path().join("line"), &line)?;
    let out = std::process::Command::new("openssl")
        .args(["ts", "-verify", "-in"])
        .arg(stamps.join(format!("{first}.tsr")))
        .arg("-data")
        .arg(tsa_dir.path().join("line"))
        .arg("-CAfile")
        .arg(tsa_dir.path().join("tsa.crt"))
        .output()?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verification: OK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A's auditor saves what A holds; B's trail verifies against it.
    let (status, doc) = witness.get("/admin/witness").await?;
    assert_eq!(status, 200);
    let saved = b.dir.path().join("witness.json");
    std::fs::write(&saved, serde_json::to_vec(&doc)?)?;
    let dir = b.audit_dir();
    let url = format!("https://127.0.0.1:{port}/admin/witness");
    let verify = |witness: Option<&str>| -> Result<(i32, String)> {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"));
        cmd.args(["audit", "verify"]).arg(&dir);
        match witness {
            Some("url") => {
                cmd.args(["--witness", &url, "--witness-ca"])
                    .arg(&a.pki.gateway_ca.cert_path)
                    .arg("--witness-cert")
                    .arg(&a.pki.auditor.cert_path)
                    .arg("--witness-key")
                    .arg(&a.pki.auditor.key_path);
            }
            Some(_) => {
                cmd.arg("--witness").arg(&saved);
            }
            None => {}
        }
        let out = cmd.output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    let (code, out) = verify(Some("file"))?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("witnessed:"), "{out}");

    // Cut the tail just before the last witnessed checkpoint: a valid
    // chain, so plain verify passes; the witness finds the cut.
    let last_witnessed = *held.last().context("held")?;
    let segment = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .max()
        .context("segment")?;
    let text = std::fs::read_to_string(&segment)?;
    let kept: String = text
        .lines()
        .take_while(|l| !l.starts_with(&format!("{{\"seq\":{last_witnessed},")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(kept.len() < text.len());
    std::fs::write(&segment, kept)?;
    let (code, out) = verify(None)?;
    assert_eq!(code, 0, "plain verify cannot see a cut tail: {out}");
    // Fetched from the witness itself, as its auditor.
    let (code, out) = verify(Some("url"))?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "the witness holds checkpoint seq {last_witnessed} but the trail ends"
        )),
        "{out}"
    );

    // A fork: B's own key signs another history up to a witnessed seq.
    let forked = b.dir.path().join("forked");
    let cfg = yiwang_audit::AuditConfig {
        signing_key_file: Some(b.dir.path().join("data/keys/audit-signing.key")),
        checkpoint_every: 1000,
        ..Default::default()
    };
    let log = yiwang_audit::AuditLog::open(&forked, &cfg)?;
    let mut seq = 1;
    while seq + 1 < last_witnessed {
        seq = log.append(yiwang_audit::Entry::new(Kind::Admin)).await?.seq;
    }
    assert_eq!(log.checkpoint().await?.seq, last_witnessed);
    log.close().await?;
    let push = yiwang_audit::checkpoints_after(&forked, last_witnessed - 1, 1)?
        .pop()
        .context("the forked checkpoint")?
        .push;
    let (status, body) = witness
        .post("/admin/witness", &serde_json::to_value(&push)?)
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("a fork")),
        "{body}"
    );

    // B itself, its trail cut back to before the first witnessed checkpoint
    // and its cursor lost, goes on writing: its next checkpoint goes
    // backwards for the witness, which refuses it, and B raises an alert.
    let first_witnessed = held[0];
    let text = std::fs::read_to_string(&segment)?;
    let kept: String = text
        .lines()
        .take_while(|l| !l.starts_with(&format!("{{\"seq\":{first_witnessed},")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&segment, kept)?;
    std::fs::remove_file(&cursor)?;
    b.start_gateway().await?;
    let refused = until(long, "B to raise the witness's refusal", || async {
        let q = Query {
            kind: Some(Kind::Alert),
            ..Query::default()
        };
        let dir = b.audit_dir();
        yiwang_audit::query(&dir, &q)
            .filter_map(|r| r.ok())
            .find(|r| r.detail.get("refused-seq").is_some())
    })
    .await?;
    b.stop_gateway().await;
    assert_eq!(refused.detail["witness"], "a", "{refused:?}");
    assert_eq!(refused.detail["status"], 409, "{refused:?}");

    a.stop_gateway().await;
    let alerts = yiwang_audit::query(
        &a.audit_dir(),
        &Query {
            kind: Some(Kind::Alert),
            ..Query::default()
        },
    )
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reasons: Vec<&str> = alerts
        .iter()
        .filter_map(|r| r.detail["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "each refusal is an alert: {alerts:?}");
    assert!(reasons[0].ends_with("a fork"), "{reasons:?}");
    assert!(reasons[1].contains("goes backwards"), "{reasons:?}");
    Ok(())
}
