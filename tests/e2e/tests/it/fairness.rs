//! One client cannot lock the intake out: a principal that opens many
//! connections, sends headers with a lying Content-Length and stalls the
//! body holds at most its share of the listener; beyond it that principal is
//! refused 503 at once while another bureau is served, and each stall ends
//! in 408 when its body timeout passes. Headers beyond 64 KiB get 431.
//! Every refusal is audited (`limit`).

use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yiwang_audit::{Kind, Query};
use yiwang_e2e::{NetworkSpec, World, delivery_state, permit_case};

const MR: &str = "market-regulation";
const SHARE: usize = 2;
const STALLS: usize = 6;
const WAIT: Duration = Duration::from_secs(60);

fn listeners() -> String {
    format!(
        "[listeners]\nintake = {{ addr = \"127.0.0.1:0\", max-concurrent = 16, \
         max-concurrent-per-principal = {SHARE}, body-timeout-ms = 10000 }}\n\
         admin = {{ addr = \"127.0.0.1:0\" }}\n"
    )
}

/// The status code of the first answer on `stream` (0 if it closed first).
async fn status_of<S: tokio::io::AsyncRead + Unpin>(mut stream: S) -> Result<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(0);
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got);
    let code = line.split_whitespace().nth(1).unwrap_or("0");
    Ok(code.parse().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_principal_holds_only_its_share_and_another_bureau_is_served() -> Result<()> {
    let mr = NetworkSpec::market_regulation(MR);
    let items = format!("[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}]\n");
    let mut w = World::prepare(vec![mr], &items, "", &listeners()).await?;
    let fuzhou = w.start_gateway().await?;
    let addr = w.gateway.as_ref().context("gateway")?.intake_addr;

    // The platform's certificate opens many connections, each sending
    // headers that promise a body it never sends.
    let ca = w.pki.gateway_ca.cert_pem().to_string();
    let cfg = yiwang_pki::client_config(&[&ca], &w.pki.platform.cert_pem, &w.pki.platform.key_pem)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..STALLS {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")?;
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(
            b"POST /v1/cases HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100000\r\n\r\n{\"case_number\":",
        )
        .await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let status = tokio::time::timeout(WAIT, status_of(tls)).await;
            let _ = tx.send(status.map_err(anyhow::Error::from).and_then(|s| s));
        });
    }
    drop(tx);

    // Beyond its share the platform is refused at once...
    let first = answers.recv().await.context("an answer")??;
    assert_eq!(first, 503, "a stall beyond the platform's share is refused");
    // ...while the Fuzhou bureau is served.
    let (status, body) = fuzhou.post("/v1/cases", &permit_case("FAIR-1")?).await?;
    assert_eq!(status, 202, "another bureau's case is accepted: {body}");

    let mut statuses = vec![first];
    while let Some(s) = answers.recv().await {
        statuses.push(s?);
    }
    let timed_out = statuses.iter().filter(|s| **s == 408).count();
    let overloaded = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(timed_out + overloaded, STALLS, "{statuses:?}");
    assert!(
        (1..=SHARE).contains(&timed_out),
        "the stalls holding the share end in 408: {statuses:?}"
    );
    fuzhou
        .wait_case("FAIR-1", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;

    // Headers beyond the documented 64 KiB are refused 431 (and audited).
    let filler = [("x-filler".to_string(), "a".repeat(66 << 10))];
    let (status, _) = fuzhou
        .request_with(
            http::Method::GET,
            "/v1/cases/FAIR-1",
            "application/json",
            &filler,
            Vec::new(),
        )
        .await?;
    assert_eq!(status, 431, "a 66 KiB header is over the cap");
    w.stop_gateway().await;

    // Every refusal is in the trail under the platform.
    let limits: Vec<yiwang_audit::Record> = yiwang_audit::query(
        &w.audit_dir(),
        &Query {
            kind: Some(Kind::Limit),
            ..Default::default()
        },
    )
    .collect::<Result<_, _>>()?;
    let (platform, others): (Vec<_>, Vec<_>) = limits
        .iter()
        .partition(|r| r.principal.as_deref() == Some("platform"));
    assert_eq!(platform.len(), STALLS, "{limits:?}");
    let headers: Vec<_> = others
        .iter()
        .map(|r| {
            (
                r.principal.as_deref(),
                r.detail["limit"].as_str(),
                r.detail["status"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        headers,
        [(Some("fuzhou-bureau"), Some("max-header-bytes"), Some(431))],
        "{limits:?}"
    );
    let body_timeouts = limits
        .iter()
        .filter(|r| r.detail["limit"] == "body-timeout-ms" && r.detail["status"] == 408)
        .count();
    assert_eq!(body_timeouts, timed_out, "{limits:?}");
    Ok(())
}
