//! Mutual TLS: a TLS network requires the gateway's client certificate, counts refusals,
//! swaps its server certificate at runtime; archetype-5 pushes go over mTLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use yiwang_pki::{CertSpec, NetworkPki, Pki};
use yiwang_simulator::{SimConfig, Simulator};

use crate::callback::filing;
use crate::client::{Reply, eventually, send_over, start};

const FILINGS: &str = "/openapi/v1/seal-filings";

fn pki(dir: &Path) -> Pki {
    Pki::generate(dir, &["market-regulation", "public-security", "tax"]).expect("PKI")
}

fn net<'a>(pki: &'a Pki, name: &str) -> &'a NetworkPki {
    pki.network(name).expect("network in the PKI")
}

/// `cfg` over mutual TLS with `net`'s server certificate and CA.
fn over_tls(cfg: SimConfig, net: &NetworkPki) -> SimConfig {
    cfg.with_tls(
        net.server.cert_pem.clone(),
        net.server.key_pem.clone(),
        net.ca.cert_pem(),
    )
}

/// The gateway's client configuration for `net`.
fn gateway_client(net: &NetworkPki) -> Arc<ClientConfig> {
    Arc::new(
        yiwang_pki::client_config(
            &[net.ca.cert_pem()],
            &net.gateway_client.cert_pem,
            &net.gateway_client.key_pem,
        )
        .expect("client config"),
    )
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// One request over a fresh TLS connection.
async fn tls_send(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<Reply> {
    let stream = tls_connect(addr, config, server_name).await?;
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Api-Key", yiwang_simulator::DEFAULT_API_KEY),
    ];
    send_over(stream, addr, method, path, &headers, bytes.as_bytes()).await
}

fn quiet(cfg: SimConfig) -> SimConfig {
    cfg.with_stage_interval(Duration::ZERO)
}

#[tokio::test]
async fn the_gateway_certificate_gets_through_and_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let mr = net(&pki, "market-regulation");
    let sim = start(over_tls(
        quiet(SimConfig::json_rest("market-regulation")),
        mr,
    ))
    .await;
    assert_eq!(sim.base_url(), format!("https://{}", sim.addr()));

    // A port probe (connect, close) is neither a client nor a refusal.
    drop(TcpStream::connect(sim.addr()).await.expect("probe"));

    let login = tls_send(
        sim.addr(),
        gateway_client(mr),
        &mr.server_name,
        "POST",
        "/api/auth/login",
        Some(&json!({"username": "yiwang", "password": "s3cret-pass"})),
    )
    .await
    .expect("answered over mTLS");
    assert_eq!(login.status, 200, "{}", login.text());
    assert_eq!(login.json()["code"], "0000");

    let info = tls_send(
        sim.addr(),
        gateway_client(mr),
        &mr.server_name,
        "GET",
        "/_sim/info",
        None,
    )
    .await
    .expect("control API over mTLS")
    .json();
    assert_eq!(info["base_url"], sim.base_url());
    assert_eq!(info["tls"]["clients"], json!(["yiwang-gateway"]));
    assert_eq!(info["tls"]["handshakes"], 2);

    assert_eq!(sim.tls_clients(), ["yiwang-gateway"]);
    assert_eq!(sim.tls_refusals(), 0);
    let stats = sim.tls_stats().expect("a TLS network");
    assert_eq!(stats.handshakes, 2);
    assert_eq!(stats.last_refusal, None);
    sim.shutdown().await;
}

#[tokio::test]
async fn clients_without_the_right_certificate_are_refused_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let mr = net(&pki, "market-regulation");
    let tax = net(&pki, "tax");
    let sim = start(over_tls(
        quiet(SimConfig::json_rest("market-regulation")),
        mr,
    ))
    .await;
    let addr = sim.addr();
    let get_info = |config: Arc<ClientConfig>| {
        let name = mr.server_name.clone();
        async move { tls_send(addr, config, &name, "GET", "/_sim/info", None).await }
    };

    // No certificate at all.
    let anonymous =
        Arc::new(yiwang_pki::client_config_without_cert(&[mr.ca.cert_pem()]).expect("config"));
    let err = get_info(anonymous)
        .await
        .expect_err("no client certificate");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(eventually(Duration::from_secs(5), || sim.tls_refusals() == 1).await);

    // The gateway's certificate for another network (another ministry's CA).
    let other = Arc::new(
        yiwang_pki::client_config(
            &[mr.ca.cert_pem()],
            &tax.gateway_client.cert_pem,
            &tax.gateway_client.key_pem,
        )
        .expect("config"),
    );
    get_info(other).await.expect_err("another CA's certificate");
    assert!(eventually(Duration::from_secs(5), || sim.tls_refusals() == 2).await);

    // The right CA, but expired.
    let expired = mr.ca.issue(&CertSpec::client("yiwang-gateway").expired());
    let expired = Arc::new(
        yiwang_pki::client_config(&[mr.ca.cert_pem()], &expired.cert_pem, &expired.key_pem)
            .expect("config"),
    );
    get_info(expired).await.expect_err("expired certificate");
    assert!(eventually(Duration::from_secs(5), || sim.tls_refusals() == 3).await);

    // Plain HTTP on the TLS port.
    crate::client::send(addr, "GET", "/_sim/info", &[], b"")
        .await
        .expect_err("plain HTTP is not answered");
    assert!(eventually(Duration::from_secs(5), || sim.tls_refusals() == 4).await);

    assert!(sim.tls_clients().is_empty(), "{:?}", sim.tls_clients());
    let stats = sim.tls_stats().expect("a TLS network");
    assert_eq!(stats.handshakes, 0);
    assert!(stats.last_refusal.is_some());
    assert!(sim.cases().is_empty());

    // The proper one still works afterwards.
    get_info(gateway_client(mr)).await.expect("the gateway");
    assert_eq!(sim.tls_clients(), ["yiwang-gateway"]);
    assert_eq!(sim.tls_refusals(), 4);
    sim.shutdown().await;
}

/// A keep-alive HTTP/1.1 connection (hyper's client) over TLS.
async fn keep_alive(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> std::io::Result<(
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    JoinHandle<()>,
)> {
    let stream = tls_connect(addr, config, server_name).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    Ok((
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    ))
}

async fn info_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
) -> Result<Value, hyper::Error> {
    let request = http::Request::get("/_sim/info")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body).expect("JSON"))
}

#[tokio::test]
async fn a_swapped_server_certificate_applies_to_new_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let tax = net(&pki, "tax");
    let sim = start(over_tls(quiet(SimConfig::signed_api("tax")), tax)).await;
    let addr = sim.addr();
    let client = gateway_client(tax);

    let pin_seen = || async {
        let stream = tls_connect(addr, gateway_client(tax), &tax.server_name).await?;
        let leaf = stream.get_ref().1.peer_certificates().expect("certs")[0].clone();
        Ok::<_, std::io::Error>(yiwang_pki::spki_sha256_b64(&leaf).expect("pin"))
    };
    assert_eq!(
        pin_seen().await.expect("connects"),
        tax.server.spki_sha256_b64()
    );
    let (mut open, _conn) = keep_alive(addr, Arc::clone(&client), &tax.server_name)
        .await
        .expect("keep-alive connection");
    info_on(&mut open).await.expect("first request");

    // The ministry now presents an expired certificate: new connections fail, the client
    // says why, the simulator counts the refusal.
    let expired = tax
        .ca
        .issue(&CertSpec::server(&tax.server_name, &[&tax.server_name], &[]).expired());
    sim.set_server_cert(&expired.cert_pem, &expired.key_pem)
        .expect("swapped");
    let err = tls_connect(addr, Arc::clone(&client), &tax.server_name)
        .await
        .expect_err("expired server certificate");
    assert!(err.to_string().contains("xpired"), "{err}");
    assert!(eventually(Duration::from_secs(5), || sim.tls_refusals() == 1).await);
    // The connection opened before keeps its certificate and still works.
    info_on(&mut open)
        .await
        .expect("open connection unaffected");

    // A certificate from a CA the gateway does not trust for this network.
    let rogue = pki.rogue_ca.issue(&CertSpec::server(
        &tax.server_name,
        &[&tax.server_name],
        &[],
    ));
    sim.set_server_cert(&rogue.cert_pem, &rogue.key_pem)
        .expect("swapped");
    tls_connect(addr, Arc::clone(&client), &tax.server_name)
        .await
        .expect_err("unknown issuer");

    // Fixed with a fresh certificate (a new key, so a new pin).
    let renewed = tax.ca.issue(&CertSpec::server(
        &tax.server_name,
        &[&tax.server_name],
        &[],
    ));
    sim.set_server_cert(&renewed.cert_pem, &renewed.key_pem)
        .expect("swapped");
    assert_eq!(
        pin_seen().await.expect("connects"),
        renewed.spki_sha256_b64()
    );

    // Garbage is refused and changes nothing; a plain network has no certificate.
    assert!(
        sim.set_server_cert("not a certificate", "nor a key")
            .is_err()
    );
    assert_eq!(
        pin_seen().await.expect("connects"),
        renewed.spki_sha256_b64()
    );
    let plain = start(quiet(SimConfig::signed_api("tax"))).await;
    assert!(
        plain
            .set_server_cert(&renewed.cert_pem, &renewed.key_pem)
            .is_err()
    );
    assert!(plain.tls_stats().is_none());
    assert!(plain.tls_clients().is_empty());
    assert_eq!(plain.tls_refusals(), 0);
    plain.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_tls_material_fails_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let tax = net(&pki, "tax");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let bad_key = SimConfig::signed_api("tax").with_tls(
        tax.server.cert_pem.clone(),
        "garbage",
        tax.ca.cert_pem(),
    );
    let err = Simulator::start(bad_key, addr).await.expect_err("bad key");
    assert!(format!("{err:#}").contains("tax"), "{err:#}");
    let no_ca = SimConfig::signed_api("tax").with_tls(
        tax.server.cert_pem.clone(),
        tax.server.key_pem.clone(),
        "",
    );
    Simulator::start(no_ca, addr)
        .await
        .expect_err("no client CA");
    let bad_push = SimConfig::callback("public-security").with_push_tls("", "", "");
    Simulator::start(bad_push, addr)
        .await
        .expect_err("bad push identity");
}

/// What the test receiver saw: client names of completed handshakes, push ids, refusals.
#[derive(Debug, Default)]
struct Seen {
    clients: Vec<String>,
    pushes: Vec<String>,
    refusals: u32,
}

/// A callback receiver requiring client certificates (the gateway's callback endpoint, in
/// miniature), whose TLS configuration can be changed between connections.
struct Receiver {
    addr: SocketAddr,
    config: Arc<Mutex<Arc<ServerConfig>>>,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start(config: ServerConfig) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let config = Arc::new(Mutex::new(Arc::new(config)));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn({
            let (config, seen) = (Arc::clone(&config), Arc::clone(&seen));
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = TlsAcceptor::from(Arc::clone(&*config.lock().expect("lock")));
                    let seen = Arc::clone(&seen);
                    tokio::spawn(async move {
                        let stream = match acceptor.accept(tcp).await {
                            Ok(stream) => stream,
                            Err(_) => {
                                seen.lock().expect("lock").refusals += 1;
                                return;
                            }
                        };
                        let cn = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|leaf| yiwang_pki::common_name(leaf))
                            .unwrap_or_default();
                        seen.lock().expect("lock").clients.push(cn);
                        let service =
                            service_fn(move |req: http::Request<hyper::body::Incoming>| {
                                let seen = Arc::clone(&seen);
                                async move {
                                    let id = req
                                        .headers()
                                        .get("x-push-id")
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_owned();
                                    let _ = req.into_body().collect().await;
                                    seen.lock().expect("lock").pushes.push(id);
                                    let ack = Full::new(Bytes::from_static(b"{\"code\":\"0\"}"));
                                    Ok::<_, Infallible>(http::Response::new(ack))
                                }
                            });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Receiver {
            addr,
            config,
            seen,
            task,
        }
    }

    fn set_config(&self, config: ServerConfig) {
        *self.config.lock().expect("lock") = Arc::new(config);
    }

    fn url(&self) -> String {
        format!("https://{}/v1/callbacks/public-security", self.addr)
    }

    fn pushes(&self) -> usize {
        self.seen.lock().expect("lock").pushes.len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The gateway's callback endpoint: its server certificate, ministry client certificates
/// required (with the ministry CA's CRL, as the gateway would load it).
fn gateway_callback(pki: &Pki) -> ServerConfig {
    let verifier =
        yiwang_pki::client_verifier(&[pki.ministry_ca.cert_pem()], &[&pki.ministry_crl.pem])
            .expect("verifier");
    yiwang_pki::server_config_with_verifier(&pki.gateway.cert_pem, &pki.gateway.key_pem, verifier)
        .expect("server config")
}

fn pushing(pki: &Pki) -> SimConfig {
    let ps = net(pki, "public-security");
    let cfg = SimConfig::callback("public-security")
        .with_stage_interval(Duration::ZERO)
        .with_push_retry(Duration::from_millis(20), Duration::from_millis(100))
        .with_push_tls(
            pki.gateway_ca.cert_pem(),
            ps.push_client.cert_pem.clone(),
            ps.push_client.key_pem.clone(),
        );
    over_tls(cfg, ps)
}

async fn submit_over_tls(sim: &Simulator, ps: &NetworkPki, request_id: &str) -> String {
    let reply = tls_send(
        sim.addr(),
        gateway_client(ps),
        &ps.server_name,
        "POST",
        FILINGS,
        Some(&filing(request_id)),
    )
    .await
    .expect("submitted over mTLS");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["data"]["caseNo"]
        .as_str()
        .expect("caseNo")
        .to_owned()
}

#[tokio::test]
async fn pushes_go_over_mutual_tls_with_the_ministry_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let ps = net(&pki, "public-security");
    let receiver = Receiver::start(gateway_callback(&pki)).await;
    let sim = start(pushing(&pki).with_callback_url(receiver.url())).await;

    let number = submit_over_tls(&sim, ps, "YW-TLS-1").await;
    sim.advance(&number).expect("advances");
    assert!(
        eventually(Duration::from_secs(5), || receiver.pushes() == 2).await,
        "{:?}",
        sim.push_stats()
    );
    let stats = sim.push_stats().expect("a pushing network");
    assert_eq!((stats.delivered, stats.pending), (2, 0), "{stats:?}");
    {
        let seen = receiver.seen.lock().expect("lock");
        assert!(!seen.clients.is_empty());
        assert!(
            seen.clients.iter().all(|cn| cn == "public-security-push"),
            "{:?}",
            seen.clients
        );
        assert_eq!(seen.refusals, 0);
    }
    // The business API saw the gateway.
    assert_eq!(sim.tls_clients(), ["yiwang-gateway"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn failed_push_handshakes_are_retried_until_one_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let ps = net(&pki, "public-security");

    // First the receiver presents a certificate the simulator does not trust.
    let impostor = pki.rogue_ca.issue(&CertSpec::server(
        "gateway.yiwang.internal",
        &["localhost"],
        &["127.0.0.1".parse().expect("IP")],
    ));
    let receiver = Receiver::start(
        yiwang_pki::server_config(
            &impostor.cert_pem,
            &impostor.key_pem,
            Some(pki.ministry_ca.cert_pem()),
        )
        .expect("config"),
    )
    .await;
    let sim = start(pushing(&pki).with_callback_url(receiver.url())).await;
    submit_over_tls(&sim, ps, "YW-TLS-2").await;
    assert!(
        eventually(Duration::from_secs(5), || sim
            .push_stats()
            .is_some_and(|s| s.attempts >= 2))
        .await
    );
    let stats = sim.push_stats().expect("stats");
    assert_eq!((stats.delivered, stats.pending), (0, 1), "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("certificate")),
        "{stats:?}"
    );
    assert_eq!(receiver.pushes(), 0);

    // Then it is the real gateway but accepts only bureau clients: the simulator's
    // certificate is refused, the push still not lost.
    let verifier = yiwang_pki::client_verifier(&[pki.bureau_ca.cert_pem()], &[]).expect("verifier");
    receiver.set_config(
        yiwang_pki::server_config_with_verifier(
            &pki.gateway.cert_pem,
            &pki.gateway.key_pem,
            verifier,
        )
        .expect("config"),
    );
    let before = sim.push_stats().expect("stats").attempts;
    assert!(
        eventually(Duration::from_secs(5), || {
            receiver.seen.lock().expect("lock").refusals >= 2
                && sim.push_stats().is_some_and(|s| s.attempts >= before + 2)
        })
        .await
    );
    assert_eq!(sim.push_stats().expect("stats").delivered, 0);

    // Fixed: the push goes through, once.
    receiver.set_config(gateway_callback(&pki));
    assert!(
        eventually(Duration::from_secs(5), || sim
            .push_stats()
            .is_some_and(|s| s.delivered == 1))
        .await,
        "{:?}",
        sim.push_stats()
    );
    assert_eq!(receiver.pushes(), 1);
    assert_eq!(
        receiver.seen.lock().expect("lock").clients,
        ["public-security-push"]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn https_callbacks_need_a_push_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let url = "https://127.0.0.1:9/v1/callbacks/public-security";

    let plain = SimConfig::callback("public-security").with_callback_url(url);
    let err = Simulator::start(plain, addr)
        .await
        .expect_err("https without a push identity");
    assert!(format!("{err:#}").contains("with_push_tls"), "{err:#}");

    let sim = start(SimConfig::callback("public-security")).await;
    assert!(sim.set_callback_url(Some(url)).is_err());
    sim.set_callback_url(Some("http://127.0.0.1:9/cb"))
        .expect("plain http is fine");
    let reply = crate::client::post_json(
        sim.addr(),
        "/_sim/pushes",
        None,
        &json!({"callback_url": url}),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    sim.shutdown().await;

    // With one, both schemes are accepted.
    let sim = start(pushing(&pki)).await;
    sim.set_callback_url(Some(url)).expect("https");
    sim.set_callback_url(Some("http://127.0.0.1:9/cb"))
        .expect("http");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_reset_fault_works_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let mr = net(&pki, "market-regulation");
    let sim = start(over_tls(
        quiet(SimConfig::json_rest("market-regulation")),
        mr,
    ))
    .await;
    sim.faults().update(|f| f.reset_next = 1);
    let login = json!({"username": "yiwang", "password": "s3cret-pass"});
    let send = || {
        tls_send(
            sim.addr(),
            gateway_client(mr),
            &mr.server_name,
            "POST",
            "/api/auth/login",
            Some(&login),
        )
    };
    send().await.expect_err("reset");
    assert_eq!(send().await.expect("answered").status, 200);
    assert_eq!(sim.tls_refusals(), 0, "a reset is not a refused handshake");
    sim.shutdown().await;
}
