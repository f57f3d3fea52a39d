//! Outbound requests to ministry networks. The runtime's `send` goes through
//! the [`Transport`] trait so tests, fixtures and the audit trail can stand in
//! for or observe the wire without touching adapters.
//!
//! [`GatewayTransport`] is the production transport: `https://` endpoints go
//! over mutually authenticated TLS with the network's own client
//! ([`crate::tls::client`]: its CA only, its client certificate, optional key
//! pins and server-name override); `http://` endpoints over the plain client.
//! An https endpoint without TLS settings for its network is refused rather
//! than sent with some default trust. Both paths share one exchange function,
//! so timeouts, reply size limits and the split between "not sent" and "no
//! reply" are the same.
//!
//! A TLS identity failure in either direction (their certificate is
//! untrusted, expired, for another name or not pinned; or they refused ours)
//! is [`TransportError::PeerRejected`]: the request never reached the
//! ministry's application (with TLS 1.3 its encrypted bytes may have been
//! written after our side of the handshake, but a server that refuses the
//! handshake never decrypts them), and resending will not help until
//! certificates change — unlike a refused connection, which is plain
//! [`TransportError::NotSent`].

use crate::tls::{ClientTlsConfig, Snapshot, TlsError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A request on its way to a ministry, after the sandbox checked it.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The network it belongs to.
    pub network: String,
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Time allowed for the whole exchange.
    pub timeout: Duration,
    /// Reply bodies beyond this are cut off and reported.
    pub max_response_bytes: usize,
}

/// A ministry's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Why an exchange failed, split by whether the ministry may have acted on it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// Nothing reached the ministry (refused, unreachable, handshake failed).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the ministry; no complete reply came.
    #[error("sent, no reply: {0}")]
    NoReply(String),
    /// The reply was larger than allowed.
    #[error("reply larger than {0} bytes")]
    ResponseTooLarge(u64),
    /// The TLS peer was refused or refused us (certificate untrusted,
    /// expired, wrong name, key not pinned; or our client certificate
    /// refused). Nothing reached the ministry's application.
    #[error("TLS peer rejected: {0}")]
    PeerRejected(String),
}

/// A boxed future returned by [`Transport::send`].
pub type SendFuture =
    Pin<Box<dyn Future<Output = Result<OutboundResponse, TransportError>> + Send>>;

/// Carries one request to a ministry network and brings back its reply.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, request: OutboundRequest) -> SendFuture;
}

/// Plain HTTP/1.1 over hyper, with a connect timeout that lets a refused or
/// unreachable ministry count as "not sent" (retryable) rather than ambiguous.
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpTransport {
    pub fn new(connect_timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(tcp_connector(connect_timeout));
        HttpTransport { client }
    }
}

/// The TCP connector under both transports.
fn tcp_connector(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(3))
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        Box::pin(exchange(self.client.clone(), request))
    }
}

/// One request/reply exchange over any hyper client, shared by the plain
/// and the TLS transports so both have the same timeout, size-limit and
/// error semantics.
async fn exchange<C>(
    client: Client<C, Full<Bytes>>,
    request: OutboundRequest,
) -> Result<OutboundResponse, TransportError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let mut builder = http::Request::builder()
        .method(request.method)
        .uri(request.uri);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let req = builder
        .body(Full::new(request.body))
        .map_err(|e| TransportError::NotSent(format!("invalid request: {e}")))?;
    let limit = request.max_response_bytes;
    let exchange = async move {
        let resp = client.request(req).await.map_err(|e| classify(&e))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, limit).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                TransportError::ResponseTooLarge(limit as u64)
            } else {
                TransportError::NoReply(format!("reply cut off: {e}"))
            }
        })?;
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(OutboundResponse {
            status: parts.status.as_u16(),
            headers,
            body: body.to_bytes(),
        })
    };
    match tokio::time::timeout(request.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::NoReply(format!(
            "no reply within {} ms",
            request.timeout.as_millis()
        ))),
    }
}

/// Sorts a failed request: a TLS peer refusal first (whether or not hyper
/// counts it as a connect error: with TLS 1.3 the server judges our client
/// certificate after our side of the handshake is done), then connect
/// failures (nothing sent), then the rest (maybe sent).
fn classify(e: &hyper_util::client::legacy::Error) -> TransportError {
    if let Some(reason) = crate::tls::find_rustls_error(e).and_then(peer_rejection) {
        return TransportError::PeerRejected(format!("{reason}: {}", error_chain(e)));
    }
    if e.is_connect() {
        TransportError::NotSent(error_chain(e))
    } else {
        TransportError::NoReply(error_chain(e))
    }
}

/// Whether a TLS error means one side refused the other's identity, and
/// how to say so.
fn peer_rejection(e: &rustls::Error) -> Option<&'static str> {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            Some("server certificate refused")
        }
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired,
        ) => Some("server refused our client certificate"),
        _ => None,
    }
}

type TlsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One network's TLS client and what it was built from.
struct TlsNetwork {
    cfg: ClientTlsConfig,
    /// Digest of the files the client was built from.
    digest: [u8; 32],
    client: TlsClient,
}

/// A registered network: its current client and its last failed reload
/// (digest and error, so a persisting broken state is logged once).
struct Registered {
    current: Arc<TlsNetwork>,
    last_failure: Option<([u8; 32], TlsError)>,
}

/// The gateway's transport: per-network mutual TLS for `https://`
/// endpoints, plain HTTP for `http://` ones.
pub struct GatewayTransport {
    plain: HttpTransport,
    connect_timeout: Duration,
    networks: RwLock<BTreeMap<String, Registered>>,
    /// Serialises reloads so two watchers cannot interleave swaps.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for GatewayTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("GatewayTransport")
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_networks", &networks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GatewayTransport {
    pub fn new(connect_timeout: Duration) -> Self {
        GatewayTransport {
            plain: HttpTransport::new(connect_timeout),
            connect_timeout,
            networks: RwLock::new(BTreeMap::new()),
            reloading: Mutex::new(()),
        }
    }

    /// Registers (or replaces) the TLS client for a network. Subscribers are
    /// registered as `subscriber:<name>`: the key is whatever
    /// [`OutboundRequest::network`] will carry.
    pub fn add(&self, name: &str, cfg: &ClientTlsConfig) -> Result<(), TlsError> {
        let snapshot = Snapshot::read(cfg.paths());
        let network = self.build(cfg, &snapshot)?;
        self.networks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                name.to_string(),
                Registered {
                    current: Arc::new(network),
                    last_failure: None,
                },
            );
        Ok(())
    }

    /// The names of the networks with a TLS client.
    pub fn networks(&self) -> Vec<String> {
        let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
        networks.keys().cloned().collect()
    }

    fn build(&self, cfg: &ClientTlsConfig, snapshot: &Snapshot) -> Result<TlsNetwork, TlsError> {
        let tls = crate::tls::client::build(cfg, snapshot)?;
        let mut http = tcp_connector(self.connect_timeout);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let builder = match cfg.server_name()? {
            Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(TlsNetwork {
            cfg: cfg.clone(),
            digest: snapshot.digest,
            client,
        })
    }

    fn client_for(&self, network: &str) -> Option<TlsClient> {
        let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
        networks.get(network).map(|r| r.current.client.clone())
    }

    /// Re-reads every registered network's files; rebuilds (with a new
    /// connection pool) only the clients whose files changed. A network whose
    /// new files do not load keeps its previous client. Per network:
    /// `Ok(true)` rebuilt, `Ok(false)` unchanged, `Err` broken.
    pub fn reload(&self) -> Vec<(String, Result<bool, TlsError>)> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current: Vec<(String, Arc<TlsNetwork>, Option<[u8; 32]>)> = {
            let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
            networks
                .iter()
                .map(|(name, r)| {
                    (
                        name.clone(),
                        r.current.clone(),
                        r.last_failure.as_ref().map(|(d, _)| *d),
                    )
                })
                .collect()
        };
        let mut results = Vec::new();
        for (name, network, failed_digest) in current {
            let snapshot = Snapshot::read(network.cfg.paths());
            if snapshot.digest == network.digest {
                if failed_digest.is_some() {
                    // Back to the files in force (a broken edit undone).
                    let mut networks = self.networks.write().unwrap_or_else(|p| p.into_inner());
                    if let Some(entry) = networks.get_mut(&name) {
                        entry.last_failure = None;
                    }
                }
                results.push((name, Ok(false)));
                continue;
            }
            if failed_digest == Some(snapshot.digest) {
                let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
                if let Some((_, e)) = networks.get(&name).and_then(|r| r.last_failure.as_ref()) {
                    results.push((name.clone(), Err(e.clone())));
                    continue;
                }
            }
            let built = self.build(&network.cfg, &snapshot);
            let mut networks = self.networks.write().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = networks.get_mut(&name) else {
                continue; // replaced or removed meanwhile
            };
            if !Arc::ptr_eq(&entry.current, &network) {
                continue; // re-registered by `add` meanwhile
            }
            match built {
                Ok(new) => {
                    entry.current = Arc::new(new);
                    entry.last_failure = None;
                    metrics::counter!("yiwang_tls_client_reloads_total", "network" => name.clone(), "result" => "ok")
                        .increment(1);
                    tracing::info!(network = %name, "TLS client certificates reloaded");
                    results.push((name, Ok(true)));
                }
                Err(e) => {
                    entry.last_failure = Some((snapshot.digest, e.clone()));
                    metrics::counter!("yiwang_tls_client_reloads_total", "network" => name.clone(), "result" => "error")
                        .increment(1);
                    tracing::warn!(network = %name, error = %e, "TLS client reload failed; the previous certificates stay in force");
                    results.push((name, Err(e)));
                }
            }
        }
        results
    }

    /// Reloads every `interval` until `stop` turns true (or its sender goes
    /// away), calling `on_change(network)` after each network rebuilt.
    pub fn watch(
        self: &Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
        on_change: impl Fn(&str) + Send + Sync + 'static,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let on_change = Arc::new(on_change);
        tokio::spawn(async move {
            while crate::tls::tick(interval, &mut stop).await {
                let transport = this.clone();
                // File reads are blocking; errors are logged by `reload`.
                let Ok(results) = tokio::task::spawn_blocking(move || transport.reload()).await
                else {
                    continue;
                };
                for (name, result) in results {
                    if let Ok(true) = result {
                        on_change(&name);
                    }
                }
            }
        })
    }
}

impl Transport for GatewayTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        if request.uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return self.plain.send(request);
        }
        match self.client_for(&request.network) {
            Some(client) => Box::pin(exchange(client, request)),
            None => {
                let message = match request.network.strip_prefix("subscriber:") {
                    Some(sub) => {
                        format!("subscriber {sub} has an https endpoint but no TLS settings")
                    }
                    None => format!(
                        "network {0} has an https endpoint but no [networks.{0}.tls]",
                        request.network
                    ),
                };
                Box::pin(async move { Err(TransportError::NotSent(message)) })
            }
        }
    }
}

/// An error and its causes on one line: hyper's top-level messages alone
/// ("client error (Connect)") do not tell an operator what happened.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testpki::{Ca, Leaf, write};
    use crate::tls::{ServerTls, ServerTlsConfig, spki_sha256_b64};
    use std::net::SocketAddr;
    use std::path::Path;
    use tokio::net::TcpListener;

    /// An HTTP/1.1 server; over TLS (client certificates required) when
    /// `tls` is given. It answers 200 with the client certificate's CN.
    async fn spawn_server(tls: Option<Arc<ServerTls>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(hyper_util::rt::TokioIo::new(tcp), "plain".into()).await,
                        Some(tls) => {
                            let Ok(stream) = tls.acceptor().accept(tcp).await else {
                                return;
                            };
                            let who = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| crate::tls::peer_identity(&c[0]).ok())
                                .and_then(|id| id.subject_cn)
                                .unwrap_or_default();
                            serve(hyper_util::rt::TokioIo::new(stream), who).await
                        }
                    }
                });
            }
        });
        addr
    }

    async fn serve<I>(io: hyper_util::rt::TokioIo<I>, who: String)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |_req| {
            let who = who.clone();
            async move {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(who))))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }

    /// The ministry's side: its server certificate and the CA(s) whose
    /// clients it accepts.
    fn ministry(dir: &Path, server: &Leaf, client_cas: &[&Ca]) -> Arc<ServerTls> {
        let cfg = ServerTlsConfig {
            cert: write(dir, "ministry.pem", &server.cert_pem),
            key: write(dir, "ministry.key", &server.key_pem),
            client_ca: client_cas
                .iter()
                .enumerate()
                .map(|(i, ca)| write(dir, &format!("ministry-client-ca-{i}.pem"), &ca.cert_pem))
                .collect(),
            crl: vec![],
            reload_interval_ms: 5000,
        };
        ServerTls::load("ministry", &cfg).unwrap()
    }

    /// The gateway's side of one network: trusts `ministry_ca`, presents
    /// `client`.
    fn gateway_cfg(dir: &Path, ministry_ca: &Ca, client: &Leaf) -> ClientTlsConfig {
        ClientTlsConfig {
            ca: vec![write(dir, "gw-ministry-ca.pem", &ministry_ca.cert_pem)],
            cert: write(dir, "gw.pem", &client.cert_pem),
            key: write(dir, "gw.key", &client.key_pem),
            pin_sha256: vec![],
            server_name: None,
        }
    }

    fn request(network: &str, url: &str) -> OutboundRequest {
        OutboundRequest {
            network: network.into(),
            method: http::Method::POST,
            uri: url.parse().unwrap(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
        }
    }

    /// A ministry PKI, a gateway client PKI, and the certificates of a
    /// normal setup.
    struct World {
        dir: tempfile::TempDir,
        ministry_ca: Ca,
        gateway_ca: Ca,
        gateway_client: Leaf,
    }

    fn world() -> World {
        let gateway_ca = Ca::new("Bureau gateway CA");
        World {
            dir: tempfile::tempdir().unwrap(),
            ministry_ca: Ca::new("Market regulation CA"),
            gateway_client: gateway_ca.client("yiwang-gateway"),
            gateway_ca,
        }
    }

    impl World {
        fn localhost_server(&self) -> Leaf {
            self.ministry_ca
                .server("mr-front", &["localhost"], &["127.0.0.1"])
        }

        async fn ministry(&self, server: &Leaf) -> SocketAddr {
            spawn_server(Some(ministry(self.dir.path(), server, &[&self.gateway_ca]))).await
        }

        fn transport(&self, cfg: &ClientTlsConfig) -> GatewayTransport {
            let t = GatewayTransport::new(Duration::from_secs(2));
            t.add("mr", cfg).unwrap();
            t
        }

        fn cfg(&self) -> ClientTlsConfig {
            gateway_cfg(self.dir.path(), &self.ministry_ca, &self.gateway_client)
        }
    }

    fn peer_rejected(result: Result<OutboundResponse, TransportError>) -> String {
        match result {
            Err(TransportError::PeerRejected(m)) => m,
            other => panic!("expected PeerRejected, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn mtls_exchange_with_a_ministry_that_requires_client_certificates() {
        let w = world();
        let addr = w.ministry(&w.localhost_server()).await;
        let t = w.transport(&w.cfg());
        let resp = t
            .send(request(
                "mr",
                &format!("https://localhost:{}/submit", addr.port()),
            ))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, "yiwang-gateway");
        // An IP SAN works too.
        let resp = t
            .send(request(
                "mr",
                &format!("https://127.0.0.1:{}/submit", addr.port()),
            ))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
    }

    #[tokio::test]
    async fn plain_http_endpoints_use_the_plain_client() {
        let addr = spawn_server(None).await;
        let t = GatewayTransport::new(Duration::from_secs(2));
        let resp = t
            .send(request(
                "tax",
                &format!("http://127.0.0.1:{}/", addr.port()),
            ))
            .await
            .unwrap();
        assert_eq!(resp.body, "plain");
    }

    #[tokio::test]
    async fn server_certificate_from_an_unknown_ca_is_peer_rejected() {
        let w = world();
        let impostor = Ca::new("Impostor CA").server("mr-front", &["localhost"], &[]);
        let addr = w.ministry(&impostor).await;
        let m = peer_rejected(
            w.transport(&w.cfg())
                .send(request(
                    "mr",
                    &format!("https://localhost:{}/", addr.port()),
                ))
                .await,
        );
        assert!(m.starts_with("server certificate refused"), "{m}");
        assert!(m.contains("UnknownIssuer"), "{m}");
    }

    #[tokio::test]
    async fn expired_server_certificate_is_peer_rejected() {
        let w = world();
        let expired = w.ministry_ca.issue(crate::tls::testpki::LeafSpec {
            cn: "mr-front",
            dns: &["localhost"],
            expired: true,
            ..Default::default()
        });
        let addr = w.ministry(&expired).await;
        let m = peer_rejected(
            w.transport(&w.cfg())
                .send(request(
                    "mr",
                    &format!("https://localhost:{}/", addr.port()),
                ))
                .await,
        );
        assert!(m.contains("certificate expired"), "{m}");
    }

    #[tokio::test]
    async fn pinned_key_passes_and_other_key_is_peer_rejected() {
        let w = world();
        let server = w.localhost_server();
        let addr = w.ministry(&server).await;
        let url = format!("https://localhost:{}/", addr.port());
        let actual = spki_sha256_b64(server.der.as_ref());

        let mut cfg = w.cfg();
        let other = w.ministry_ca.server("next", &["localhost"], &[]);
        cfg.pin_sha256 = vec![spki_sha256_b64(other.der.as_ref())];
        let m = peer_rejected(w.transport(&cfg).send(request("mr", &url)).await);
        assert!(
            m.contains(&format!(
                "server public key not pinned: got sha256/{actual}"
            )),
            "{m}"
        );

        // Any match passes, with or without the `sha256/` prefix.
        cfg.pin_sha256 = vec![
            spki_sha256_b64(other.der.as_ref()),
            format!("sha256/{actual}"),
        ];
        let resp = w.transport(&cfg).send(request("mr", &url)).await.unwrap();
        assert_eq!(resp.status, 200);
    }

    #[tokio::test]
    async fn server_name_override_reaches_a_ministry_by_address() {
        let w = world();
        let server = w.ministry_ca.server("mr-front", &["mr.zwfw.internal"], &[]);
        let addr = w.ministry(&server).await;
        let url = format!("https://127.0.0.1:{}/", addr.port());

        let m = peer_rejected(w.transport(&w.cfg()).send(request("mr", &url)).await);
        assert!(
            m.contains("NotValidForName") || m.contains("not valid for name"),
            "{m}"
        );

        let mut cfg = w.cfg();
        cfg.server_name = Some("mr.zwfw.internal".into());
        let resp = w.transport(&cfg).send(request("mr", &url)).await.unwrap();
        assert_eq!(resp.status, 200);
    }

    #[tokio::test]
    async fn ministry_refusing_our_client_certificate_is_peer_rejected() {
        let w = world();
        let server = w.localhost_server();
        let other_ca = Ca::new("Some other bureau");
        let addr = spawn_server(Some(ministry(w.dir.path(), &server, &[&other_ca]))).await;
        let m = peer_rejected(
            w.transport(&w.cfg())
                .send(request(
                    "mr",
                    &format!("https://localhost:{}/", addr.port()),
                ))
                .await,
        );
        assert!(
            m.starts_with("server refused our client certificate"),
            "{m}"
        );
        assert!(m.contains("UnknownCA"), "{m}");
    }

    #[tokio::test]
    async fn refused_connection_is_not_sent() {
        let w = world();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let result = w
            .transport(&w.cfg())
            .send(request("mr", &format!("https://localhost:{port}/")))
            .await;
        assert!(
            matches!(result, Err(TransportError::NotSent(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn https_network_without_tls_settings_is_not_sent() {
        let t = GatewayTransport::new(Duration::from_secs(2));
        let result = t.send(request("tax", "https://127.0.0.1:1/")).await;
        assert_eq!(
            result,
            Err(TransportError::NotSent(
                "network tax has an https endpoint but no [networks.tax.tls]".into()
            ))
        );
        let result = t
            .send(request("subscriber:regulator", "https://127.0.0.1:1/"))
            .await;
        assert!(
            matches!(&result, Err(TransportError::NotSent(m)) if m.contains("subscriber regulator")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn reloaded_client_certificate_is_accepted_and_on_change_fires() {
        let w = world();
        let server = w.localhost_server();
        // The ministry now only accepts certificates from the new CA.
        let new_ca = Ca::new("Bureau gateway CA 2026");
        let addr = spawn_server(Some(ministry(w.dir.path(), &server, &[&new_ca]))).await;
        let url = format!("https://localhost:{}/", addr.port());
        let cfg = w.cfg();
        let t = Arc::new(w.transport(&cfg));
        peer_rejected(t.send(request("mr", &url)).await);
        assert_eq!(t.reload(), vec![("mr".to_string(), Ok(false))]);

        // A broken file keeps the old client.
        std::fs::write(&cfg.key, "").unwrap();
        let results = t.reload();
        assert!(
            matches!(&results[..], [(n, Err(e))] if n == "mr" && e.to_string().contains("no private key")),
            "{results:?}"
        );
        peer_rejected(t.send(request("mr", &url)).await);

        let (changed_tx, mut changed_rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let watcher = t.watch(Duration::from_millis(20), stop_rx, move |name| {
            let _ = changed_tx.send(name.to_string());
        });
        let renewed = new_ca.client("yiwang-gateway-2026");
        std::fs::write(&cfg.cert, &renewed.cert_pem).unwrap();
        std::fs::write(&cfg.key, &renewed.key_pem).unwrap();
        let name = tokio::time::timeout(Duration::from_secs(5), changed_rx.recv())
            .await
            .expect("on_change did not fire")
            .unwrap();
        assert_eq!(name, "mr");

        let resp = t.send(request("mr", &url)).await.unwrap();
        assert_eq!(resp.body, "yiwang-gateway-2026");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn peer_rejection_covers_identity_failures_only() {
        use rustls::AlertDescription as A;
        use rustls::CertificateError as C;
        for e in [
            rustls::Error::InvalidCertificate(C::UnknownIssuer),
            rustls::Error::InvalidCertificate(C::Expired),
            rustls::Error::InvalidCertificate(C::NotValidForName),
            rustls::Error::AlertReceived(A::CertificateRequired),
            rustls::Error::AlertReceived(A::BadCertificate),
            rustls::Error::AlertReceived(A::UnknownCA),
            rustls::Error::AlertReceived(A::CertificateRevoked),
        ] {
            assert!(peer_rejection(&e).is_some(), "{e:?}");
        }
        for e in [
            rustls::Error::AlertReceived(A::HandshakeFailure),
            rustls::Error::AlertReceived(A::ProtocolVersion),
            rustls::Error::DecryptError,
        ] {
            assert!(peer_rejection(&e).is_none(), "{e:?}");
        }
        // Found through io::Error wrappers, as hyper-rustls reports them.
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(A::CertificateRequired),
        ));
        assert!(matches!(
            crate::tls::find_rustls_error(&wrapped),
            Some(rustls::Error::AlertReceived(A::CertificateRequired))
        ));
    }
}
