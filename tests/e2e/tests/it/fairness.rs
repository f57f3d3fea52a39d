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

/// Connections that never start their TLS handshake, from one source
/// address (127.0.0.2), hold at most that source's handshake share: as many
/// more wait, the rest are closed at once, and a bureau connecting from
/// another address is served meanwhile. The flood leaves its budget of
/// refusal records and one summary counting the rest; a request hyper
/// cannot parse is answered 400 and audited too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_from_one_address_leaves_another_served_and_the_trail_bounded()
-> Result<()> {
    const PER_PEER: usize = 2;
    const FLOOD: usize = 30;
    const RECORDS: u64 = 5;
    let mr = NetworkSpec::market_regulation(MR);
    let items = format!("[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}]\n");
    let listeners = format!(
        "[listeners]\nintake = {{ addr = \"127.0.0.1:0\", header-timeout-ms = 2000, \
         max-handshakes = {}, max-handshakes-per-peer = {PER_PEER}, \
         refusal-records-per-minute = {RECORDS} }}\n\
         admin = {{ addr = \"127.0.0.1:0\" }}\n",
        // Without the per-source share the flood would hold every slot.
        PER_PEER + 1
    );
    let mut w = World::prepare(vec![mr], &items, "", &listeners).await?;
    let fuzhou = w.start_gateway().await?;
    let addr = w.gateway.as_ref().context("gateway")?.intake_addr;

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.2:0".parse()?)?;
        flood.push(socket.connect(addr).await?);
    }
    // The bureau, from 127.0.0.1, completes its handshake and is served.
    let (status, body) = fuzhou.post("/v1/cases", &permit_case("FLOOD-1")?).await?;
    assert_eq!(
        status, 202,
        "a bureau from another address is served: {body}"
    );

    // Every flood connection ends: closed at once beyond twice the share,
    // or at the handshake deadline.
    let mut ended = 0;
    for mut stream in flood {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await;
        if matches!(n, Ok(Ok(0)) | Ok(Err(_))) {
            ended += 1;
        }
    }
    assert_eq!(ended, FLOOD);

    // A request line hyper cannot parse: 400, audited under the platform.
    let ca = w.pki.gateway_ca.cert_pem().to_string();
    let cfg = yiwang_pki::client_config(&[&ca], &w.pki.platform.cert_pem, &w.pki.platform.key_pem)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")?;
    let mut tls = connector
        .connect(name, tokio::net::TcpStream::connect(addr).await?)
        .await?;
    tls.write_all(b"POST /v1/cases HTTP/1.1\r\nhost x\r\n\r\n")
        .await?;
    assert_eq!(status_of(tls).await?, 400);
    w.stop_gateway().await;

    let records: Vec<yiwang_audit::Record> =
        yiwang_audit::query(&w.audit_dir(), &Query::default()).collect::<Result<_, _>>()?;
    let from_flood: Vec<_> = records
        .iter()
        .filter(|r| {
            r.detail["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.2:"))
                || r.detail["source"] == "127.0.0.2"
        })
        .collect();
    let (summaries, single): (Vec<&yiwang_audit::Record>, Vec<&yiwang_audit::Record>) = from_flood
        .iter()
        .copied()
        .partition(|r| r.detail["summary"] == true);
    assert_eq!(single.len() as u64, RECORDS, "{from_flood:#?}");
    // The first refusals are the connections closed at once, beyond twice
    // the share; those waiting for a slot are refused at their deadline
    // (`limit`), those holding one time out in their handshake
    // (`tls-refused`).
    assert!(
        single
            .iter()
            .all(|r| r.kind == Kind::Limit && r.detail["limit"] == "max-handshakes-per-peer"),
        "{single:#?}"
    );
    let counted = |kind: Kind| -> u64 {
        summaries
            .iter()
            .filter(|r| r.kind == kind)
            .filter_map(|r| r.detail["suppressed"].as_u64())
            .sum()
    };
    let at_limits = RECORDS + counted(Kind::Limit);
    assert!(
        at_limits >= (FLOOD - 2 * PER_PEER) as u64,
        "the connections beyond twice the share are refused at the limit: {summaries:#?}"
    );
    assert_eq!(
        at_limits + counted(Kind::TlsRefused),
        FLOOD as u64,
        "every refusal is recorded or counted: {summaries:#?}"
    );
    let malformed: Vec<_> = records
        .iter()
        .filter(|r| r.kind == Kind::Limit && r.detail["limit"] == "malformed-request")
        .map(|r| (r.principal.as_deref(), r.detail["status"].as_u64()))
        .collect();
    assert_eq!(malformed, [(Some("platform"), Some(400))]);
    Ok(())
}
