//! [`GatewayTransport`]: the per-destination registry of TLS clients (one per
//! ministry network, one per subscriber webhook), each rebuilt with a new
//! connection pool when its certificate, key or CA files change, and the
//! plain client for `http://` endpoints.
//!
//! Reloading uses the same state machine as the listeners
//! (`crate::tls::reload::Reloadable`): a destination whose new files do not
//! load keeps its previous client, and a persisting broken state is logged
//! and counted once.

use super::client::{HttpTransport, TlsClient, tls_client};
use super::exchange::exchange;
use super::{OutboundRequest, SendFuture, Transport, TransportError};
use crate::tls::reload::{self, Reload, Reloadable, TlsFiles};
use crate::tls::{ClientTlsConfig, Snapshot, TlsError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A destination's TLS files and how they build its client.
struct ClientFiles {
    cfg: ClientTlsConfig,
    connect_timeout: Duration,
}

impl TlsFiles for ClientFiles {
    type Built = TlsClient;

    fn paths(&self) -> impl Iterator<Item = &Path> {
        self.cfg.paths()
    }

    fn build(&self, files: &Snapshot) -> Result<TlsClient, TlsError> {
        tls_client(&self.cfg, files, self.connect_timeout)
    }
}

/// The gateway's transport: per-network mutual TLS for `https://`
/// endpoints, plain HTTP for `http://` ones.
pub struct GatewayTransport {
    plain: HttpTransport,
    connect_timeout: Duration,
    networks: RwLock<BTreeMap<String, Arc<Reloadable<ClientFiles>>>>,
    /// Serialises reloads so two watchers cannot interleave swaps.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for GatewayTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayTransport")
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_networks", &self.networks())
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
        let files = Reloadable::load(ClientFiles {
            cfg: cfg.clone(),
            connect_timeout: self.connect_timeout,
        })?;
        self.networks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(files));
        Ok(())
    }

    /// The names of the networks with a TLS client.
    pub fn networks(&self) -> Vec<String> {
        self.registered()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn registered(&self) -> Vec<(String, Arc<Reloadable<ClientFiles>>)> {
        let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
        networks
            .iter()
            .map(|(name, files)| (name.clone(), files.clone()))
            .collect()
    }

    /// Whether `files` is still what `name` is registered with.
    fn still_registered(&self, name: &str, files: &Arc<Reloadable<ClientFiles>>) -> bool {
        let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
        networks.get(name).is_some_and(|f| Arc::ptr_eq(f, files))
    }

    fn client_for(&self, network: &str) -> Option<Arc<TlsClient>> {
        let networks = self.networks.read().unwrap_or_else(|p| p.into_inner());
        networks.get(network).map(|files| files.current())
    }

    /// Re-reads every registered network's files; rebuilds (with a new
    /// connection pool) only the clients whose files changed. A network whose
    /// new files do not load keeps its previous client. Per network:
    /// `Ok(true)` rebuilt, `Ok(false)` unchanged, `Err` broken.
    pub fn reload(&self) -> Vec<(String, Result<bool, TlsError>)> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut results = Vec::new();
        for (name, files) in self.registered() {
            let outcome = files.reload();
            if !self.still_registered(&name, &files) {
                continue; // replaced by `add` meanwhile
            }
            match &outcome {
                Reload::Swapped => {
                    metrics::counter!("yiwang_tls_client_reloads_total", "network" => name.clone(), "result" => "ok")
                        .increment(1);
                    tracing::info!(network = %name, "TLS client certificates reloaded");
                }
                Reload::Failed { error, first: true } => {
                    metrics::counter!("yiwang_tls_client_reloads_total", "network" => name.clone(), "result" => "error")
                        .increment(1);
                    tracing::warn!(network = %name, error = %error, "TLS client reload failed; the previous certificates stay in force");
                }
                Reload::Unchanged | Reload::Failed { first: false, .. } => {}
            }
            results.push((name, outcome.into_result()));
        }
        results
    }

    /// Reloads every `interval` until `stop` is cancelled, calling
    /// `on_change(network)` after each network rebuilt; the caller spawns it.
    pub fn watch(
        self: &Arc<Self>,
        interval: Duration,
        stop: CancellationToken,
        on_change: impl Fn(&str) + Send + Sync + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        reload::poll(
            interval,
            stop,
            // Errors are logged by `reload`.
            move || this.reload(),
            move |results| {
                for (name, result) in results {
                    if let Ok(true) = result {
                        on_change(&name);
                    }
                }
            },
        )
    }
}

impl Transport for GatewayTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        if request.uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return self.plain.send(request);
        }
        match self.client_for(&request.network) {
            Some(client) => Box::pin(exchange((*client).clone(), request)),
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

#[cfg(test)]
mod tests {
    use super::super::OutboundResponse;
    use super::*;
    use crate::tls::{ServerTls, ServerTlsConfig, spki_sha256_b64};
    use bytes::Bytes;
    use http_body_util::Full;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use tokio::net::TcpListener;
    use yiwang_pki::{Ca, CertSpec, Issued};

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
    fn ministry(dir: &Path, server: &Issued, client_cas: &[&Ca]) -> Arc<ServerTls> {
        let (cert, key) = server.write(dir, "ministry").unwrap();
        let cfg = ServerTlsConfig {
            cert,
            key,
            client_ca: client_cas
                .iter()
                .enumerate()
                .map(|(i, ca)| ca.write(dir, &format!("ministry-client-ca-{i}")).unwrap().0)
                .collect(),
            crl: vec![],
            reload_interval_ms: 5000,
            close_revoked_connections: true,
        };
        ServerTls::load("ministry", &cfg).unwrap()
    }

    /// The gateway's side of one network: trusts `ministry_ca`, presents
    /// `client`.
    fn gateway_cfg(dir: &Path, ministry_ca: &Ca, client: &Issued) -> ClientTlsConfig {
        let (cert, key) = client.write(dir, "gw").unwrap();
        ClientTlsConfig {
            ca: vec![ministry_ca.write(dir, "gw-ministry-ca").unwrap().0],
            cert,
            key,
            pin_sha256: vec![],
            crl: vec![],
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
        gateway_client: Issued,
    }

    fn world() -> World {
        let gateway_ca = Ca::new("Bureau gateway CA");
        World {
            dir: tempfile::tempdir().unwrap(),
            ministry_ca: Ca::new("Market regulation CA"),
            gateway_client: gateway_ca.issue(&CertSpec::client("yiwang-gateway")),
            gateway_ca,
        }
    }

    impl World {
        fn localhost_server(&self) -> Issued {
            let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
            self.ministry_ca
                .issue(&CertSpec::server("mr-front", &["localhost"], &[localhost]))
        }

        async fn ministry(&self, server: &Issued) -> SocketAddr {
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
        let impostor =
            Ca::new("Impostor CA").issue(&CertSpec::server("mr-front", &["localhost"], &[]));
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
        let expired = w
            .ministry_ca
            .issue(&CertSpec::server("mr-front", &["localhost"], &[]).expired());
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
    async fn revoked_server_certificate_is_peer_rejected_once_the_crl_reloads() {
        let w = world();
        let server = w.localhost_server();
        let addr = w.ministry(&server).await;
        let url = format!("https://localhost:{}/", addr.port());
        let mut cfg = w.cfg();
        let crl = w.dir.path().join("mr.crl");
        std::fs::write(&crl, w.ministry_ca.crl(&[])).unwrap();
        cfg.crl = vec![crl.clone()];
        let t = w.transport(&cfg);
        assert_eq!(t.send(request("mr", &url)).await.unwrap().status, 200);

        std::fs::write(&crl, w.ministry_ca.crl(&[&server])).unwrap();
        assert_eq!(t.reload(), vec![("mr".to_string(), Ok(true))]);
        let m = peer_rejected(t.send(request("mr", &url)).await);
        assert!(
            m.starts_with("server certificate revoked (network mr): "),
            "{m}"
        );
        // The ministry's other certificates are not on the list.
        let renewed = w.ministry(&w.localhost_server()).await;
        let url = format!("https://localhost:{}/", renewed.port());
        assert_eq!(t.send(request("mr", &url)).await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn pinned_key_passes_and_other_key_is_peer_rejected() {
        let w = world();
        let server = w.localhost_server();
        let addr = w.ministry(&server).await;
        let url = format!("https://localhost:{}/", addr.port());
        let actual = spki_sha256_b64(server.cert_der.as_ref());

        let mut cfg = w.cfg();
        let other = w
            .ministry_ca
            .issue(&CertSpec::server("next", &["localhost"], &[]));
        cfg.pin_sha256 = vec![spki_sha256_b64(other.cert_der.as_ref())];
        let m = peer_rejected(w.transport(&cfg).send(request("mr", &url)).await);
        assert!(
            m.contains(&format!(
                "server public key not pinned: got sha256/{actual}"
            )),
            "{m}"
        );

        // Any match passes, with or without the `sha256/` prefix.
        cfg.pin_sha256 = vec![
            spki_sha256_b64(other.cert_der.as_ref()),
            format!("sha256/{actual}"),
        ];
        let resp = w.transport(&cfg).send(request("mr", &url)).await.unwrap();
        assert_eq!(resp.status, 200);
    }

    #[tokio::test]
    async fn server_name_override_reaches_a_ministry_by_address() {
        let w = world();
        let server = w
            .ministry_ca
            .issue(&CertSpec::server("mr-front", &["mr.zwfw.internal"], &[]));
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
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(
            t.watch(Duration::from_millis(20), stop.clone(), move |name| {
                let _ = changed_tx.send(name.to_string());
            }),
        );
        let renewed = new_ca.issue(&CertSpec::client("yiwang-gateway-2026"));
        std::fs::write(&cfg.cert, &renewed.cert_pem).unwrap();
        std::fs::write(&cfg.key, &renewed.key_pem).unwrap();
        let name = tokio::time::timeout(Duration::from_secs(5), changed_rx.recv())
            .await
            .expect("on_change did not fire")
            .unwrap();
        assert_eq!(name, "mr");

        let resp = t.send(request("mr", &url)).await.unwrap();
        assert_eq!(resp.body, "yiwang-gateway-2026");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .unwrap()
            .unwrap();
    }
}
