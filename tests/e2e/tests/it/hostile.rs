//! A hostile-input corpus against the running gateway: malformed and
//! wrongly typed JSON, huge and deeply nested bodies, invalid checksums,
//! unknown items, callbacks for unknown networks and unknown cases, forged
//! pushes, slow clients. Each gets a specific answer; nothing is stored for
//! it; the gateway keeps serving everyone else, and what it accepted is
//! delivered exactly once with its audit trail intact.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use yiwang_audit::{Kind, Query};
use yiwang_e2e::{Client, NetworkSpec, World, delivery_state, permit_case};

const MR: &str = "market-regulation";
const GA: &str = "public-security";
const WAIT: Duration = Duration::from_secs(30);

/// Short timeouts so slow clients are cut off quickly.
const LISTENERS: &str = "[listeners]\nintake = { addr = \"127.0.0.1:0\", header-timeout-ms = 600, max-body-bytes = 1048576 }\nadmin = { addr = \"127.0.0.1:0\" }\ncallbacks = { addr = \"127.0.0.1:0\", header-timeout-ms = 600, client-ca = [\"pki/ministry-ca.crt\"], crl = [\"pki/ministry-ca.crl\"] }\n";

async fn world() -> Result<(World, Client)> {
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        sim: mr.sim.clone().with_stage_interval(Duration::ZERO),
        ..mr
    };
    let ga = NetworkSpec::public_security(GA);
    let items = format!(
        "[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}]\n[items.\"SC-QYKB-001\"]\nroute = [{{ network = \"{GA}\" }}]\n"
    );
    let mut w = World::prepare(vec![mr, ga], &items, "", LISTENERS).await?;
    let c = w.start_gateway().await?;
    Ok((w, c))
}

/// A body, its expected status, problem type and a fragment of what it must say.
struct Bad {
    what: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    kind: &'static str,
    says: &'static str,
}

fn corpus() -> Result<Vec<Bad>> {
    let good = permit_case("HOSTILE-0000")?;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string().into_bytes()
    };
    Ok(vec![
        Bad {
            what: "truncated JSON",
            content_type: "application/json",
            body: br#"{"case_number": "HOSTILE-1", "item": {"#.to_vec(),
            status: 422,
            kind: "invalid-case",
            says: "",
        },
        Bad {
            what: "not JSON at all",
            content_type: "application/json",
            body: b"\xff\xfe<xml>".to_vec(),
            status: 422,
            kind: "invalid-case",
            says: "",
        },
        Bad {
            what: "a number where a string belongs",
            content_type: "application/json",
            body: with(&|v| v["case_number"] = json!(12345)),
            status: 422,
            kind: "invalid-case",
            says: "",
        },
        Bad {
            what: "an object where a list belongs",
            content_type: "application/json",
            body: with(&|v| v["materials"] = json!({"a": 1})),
            status: 422,
            kind: "invalid-case",
            says: "",
        },
        Bad {
            what: "100 000 levels of nesting",
            content_type: "application/json",
            body: format!(
                "{{\"case_number\": {}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            status: 422,
            kind: "invalid-case",
            says: "",
        },
        Bad {
            what: "a 2 MiB body (limit 1 MiB)",
            content_type: "application/json",
            body: with(&|v| v["note"] = json!("x".repeat(2 << 20))),
            status: 413,
            kind: "body-too-large",
            says: "max-body-bytes",
        },
        Bad {
            what: "a resident ID with a wrong check digit",
            content_type: "application/json",
            body: with(&|v| {
                let id = v["applicant"]["id_number"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if let Some(last) = id.chars().last() {
                    let wrong = if last == '1' { '2' } else { '1' };
                    v["applicant"]["id_number"] = json!(format!("{}{wrong}", &id[..id.len() - 1]));
                }
            }),
            status: 422,
            kind: "invalid-case",
            says: "checksum",
        },
        Bad {
            what: "a bureau credit code with a wrong check character",
            content_type: "application/json",
            body: with(&|v| v["bureau"]["uscc"] = json!("11350102MB0H47218F")),
            status: 422,
            kind: "invalid-case",
            says: "/bureau/uscc",
        },
        Bad {
            what: "an item with no route",
            content_type: "application/json",
            body: with(&|v| v["item"]["code"] = json!("XX-NOPE-999")),
            status: 422,
            kind: "unknown-item",
            says: "XX-NOPE-999",
        },
        Bad {
            what: "form data instead of JSON",
            content_type: "application/x-www-form-urlencoded",
            body: b"case_number=HOSTILE-1".to_vec(),
            status: 415,
            kind: "unsupported-media-type",
            says: "application/json",
        },
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_corpus_gets_specific_answers_and_harms_nobody() -> Result<()> {
    let (mut w, c) = world().await?;
    let addr = w.gateway.as_ref().context("gateway")?.intake_addr;

    // Slow clients hold connections open meanwhile: one never starts its
    // TLS handshake, one never finishes its request headers.
    let mut silent = tokio::net::TcpStream::connect(addr).await?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let ca = w.pki.gateway_ca.cert_pem().to_string();
    let cfg = yiwang_pki::client_config(&[&ca], &w.pki.platform.cert_pem, &w.pki.platform.key_pem)?;
    let mut dribbling = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(
            tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")?,
            tcp,
        )
        .await?;
    dribbling
        .write_all(b"POST /v1/cases HTTP/1.1\r\nhost: x\r\n")
        .await?;

    // The corpus, concurrently with good cases.
    let bad = corpus()?;
    let mut good = Vec::new();
    for (i, b) in bad.iter().enumerate() {
        let number = format!("HOSTILE-GOOD-{i:02}");
        let case = permit_case(&number)?;
        let post = c.post("/v1/cases", &case);
        let hostile = c.request(
            http::Method::POST,
            "/v1/cases",
            b.content_type,
            b.body.clone(),
        );
        let (ok, got) = tokio::join!(post, hostile);
        assert_eq!(ok?.0, 202, "a good case next to {}", b.what);
        good.push(number);
        let (status, problem) = got?;
        assert_eq!(status, b.status, "{}: {problem}", b.what);
        assert!(
            problem["type"].as_str().unwrap_or("").ends_with(b.kind),
            "{}: expected problem type {}, got {problem}",
            b.what,
            b.kind
        );
        let text = problem.to_string();
        assert!(
            text.contains(b.says),
            "{}: {text} should say {:?}",
            b.what,
            b.says
        );
    }
    // The checksum problems name the field.
    let (_, p) = c
        .request(
            http::Method::POST,
            "/v1/cases",
            "application/json",
            bad[6].body.clone(),
        )
        .await?;
    assert_eq!(p["errors"][0]["pointer"], "/applicant/id_number", "{p}");

    // Callbacks: for an unknown network, for an unknown case, and forged.
    let cb = w
        .gateway
        .as_ref()
        .and_then(|g| g.callback_addr)
        .context("callbacks")?;
    let ministry = &w.pki.network(GA).context("pki")?.push_client;
    let push = Client::new(format!("https://{cb}"), &w.pki, ministry)?;
    let (s, p) = push
        .post("/v1/callbacks/no-such-network", &json!({}))
        .await?;
    assert_eq!(s, 403, "{p}");
    let (s, p) = push
        .post(&format!("/v1/callbacks/{MR}"), &json!({}))
        .await?;
    assert_eq!(s, 403, "another network's callbacks: {p}");
    let (s, p) = push
        .post(
            &format!("/v1/callbacks/{GA}"),
            &json!({"caseNo": "GA-X", "status": "70"}),
        )
        .await?;
    assert!((400..500).contains(&s), "an unsigned push: {s} {p}");
    // A properly signed push about a case this gateway never delivered: the
    // ministry gets its acknowledgement, nothing changes, the audit trail
    // keeps it as unmatched.
    let secret = w.sim(GA).config().push_secret.clone();
    let body = json!({
        "pushId": "GA-HOSTILE-1", "eventType": "STATUS_CHANGED", "caseNo": "GA-NOBODY-1",
        "requestId": "nobody", "unifiedCaseNo": null, "status": "20", "statusName": "已受理",
        "statusTime": 1795224602123_i64, "recordNo": null, "result": null, "remark": null,
    })
    .to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        .to_string();
    let headers = [
        ("X-Push-Id".to_string(), "GA-HOSTILE-1".to_string()),
        ("X-Push-Timestamp".to_string(), ts.clone()),
        (
            "X-Push-Signature".to_string(),
            yiwang_simulator::push_signature(&secret, &ts, body.as_bytes()),
        ),
    ];
    let (s, p) = push
        .request_with(
            http::Method::POST,
            &format!("/v1/callbacks/{GA}"),
            "application/json",
            &headers,
            body.into_bytes(),
        )
        .await?;
    assert!(
        (200..300).contains(&s),
        "a signed push for an unknown case is acknowledged: {s} {p}"
    );

    // The slow clients were cut off; the gateway served everyone meanwhile.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut buf = [0u8; 16];
    use tokio::io::AsyncReadExt;
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await??;
    assert_eq!(n, 0, "the silent client's connection is closed");
    let cut = tokio::time::timeout(Duration::from_secs(5), dribbling.read(&mut buf)).await?;
    assert!(
        matches!(cut, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408"),
        "the dribbling client is cut off: {cut:?} {:?}",
        String::from_utf8_lossy(&buf)
    );

    // Nothing hostile was stored; everything good was delivered once.
    for number in ["HOSTILE-1", "HOSTILE-0000"] {
        assert_eq!(
            c.get(&format!("/v1/cases/{number}")).await?.0,
            404,
            "{number}"
        );
    }
    for number in &good {
        c.wait_case(number, WAIT, |v| delivery_state(v, MR) == "delivered")
            .await?;
    }
    let mut stored: Vec<String> = w
        .sim(MR)
        .cases()
        .into_iter()
        .filter_map(|c| c.unified_case_number)
        .collect();
    stored.sort();
    assert_eq!(stored, good, "each good case exactly once, nothing else");
    w.stop_gateway().await;

    // The trail holds every refusal and still verifies.
    let dir = w.audit_dir();
    let report = yiwang_audit::verify(&dir, None)?;
    assert!(report.broken.is_none(), "{:?}", report.broken);
    // Refused by the handler (`intake`) or at a listener limit (`limit`:
    // the oversized body).
    let answered: Vec<yiwang_audit::Record> = yiwang_audit::query(&dir, &Query::default())
        .filter(|r| {
            r.as_ref()
                .map_or(true, |r| matches!(r.kind, Kind::Intake | Kind::Limit))
        })
        .collect::<Result<_, _>>()?;
    let refused = answered
        .iter()
        .filter(|r| r.detail["status"].as_u64().is_some_and(|s| s >= 400))
        .count();
    assert!(
        refused > bad.len(),
        "every refused body is audited ({refused})"
    );
    let unmatched = yiwang_audit::query(
        &dir,
        &Query {
            kind: Some(Kind::Backflow),
            network: Some(GA.into()),
            ..Default::default()
        },
    )
    .filter_map(|r| r.ok())
    .any(|r| r.detail["unmatched"] == true && r.detail["network_case_number"] == "GA-NOBODY-1");
    assert!(
        unmatched,
        "the unknown-case push is in the trail as unmatched"
    );
    let slow = yiwang_audit::query(
        &dir,
        &Query {
            kind: Some(Kind::TlsRefused),
            ..Default::default()
        },
    )
    .filter_map(|r| r.ok())
    .any(|r| {
        r.detail["reason"]
            .as_str()
            .unwrap_or("")
            .contains("slow client")
    });
    assert!(slow, "the silent client is in the trail");
    Ok(())
}
