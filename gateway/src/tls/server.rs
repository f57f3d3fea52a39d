//! TLS on the gateway's listeners: client certificates required, certificates
//! and CRLs reloaded without dropping connections, and the peer's identity
//! read for the audit trail.
//!
//! # Client authentication
//!
//! Every client must present a certificate chaining to one of the configured
//! `client-ca` certificates ([`rustls::server::WebPkiClientVerifier`]);
//! anonymous clients are refused. The CA subjects are sent as hints so a
//! client holding several certificates picks the right one.
//!
//! # CRL policy
//!
//! * Only the **end-entity** (client) certificate is checked against the
//!   CRLs. Intermediate CAs are operated by the ministries' own PKI teams
//!   and are revoked by removing them from `client-ca`.
//! * A client whose CA has **no CRL configured** is accepted (its revocation
//!   status is "unknown", which is allowed). Not every CA that may call the
//!   gateway publishes a CRL, and refusing all of its clients would turn a
//!   missing file into an outage; once a CRL for that CA is configured, it is
//!   authoritative for that CA's certificates.
//! * A CRL **past its nextUpdate** is still used (and a warning logged when it
//!   is loaded): the gateway does not fetch CRLs, operators install them, and
//!   a stale list still names every certificate revoked until it was issued.
//!   Enforcing expiry would refuse every client of that CA the moment a
//!   distribution run is late.
//!
//! # Reload semantics
//!
//! [`ServerTls`] holds the current `Arc<ServerConfig>`; [`ServerTls::acceptor`]
//! hands out an acceptor for it, to be taken once per accepted connection.
//! [`ServerTls::reload`] re-reads every file, and when any file's contents
//! changed builds a new config and swaps it in. Connections already
//! established keep the config (and certificate) they started with, new
//! ones get the new config; nothing is dropped. A reload that fails (a
//! half-written key, a CRL that does not parse, a key that does not match its
//! certificate) keeps the previous config, logs once per distinct broken
//! state, counts `yiwang_tls_reloads_total{result="error"}` and returns the
//! error. [`ServerTls::watch`] polls the files every `reload-interval-ms`.
//! The state machine is the one the network clients use too
//! (`super::reload::Reloadable`).
//!
//! # Revoked certificates on open connections
//!
//! With `close-revoked-connections` (default `true`), each swap re-checks
//! the certificate of every open connection ([`ServerTls::register`]) with
//! the new verifier and signals the connections it finds revoked, which the
//! HTTP server then closes gracefully (see [`super::open`]). Default on: a
//! revocation is meant to end a client's access now, not at its next
//! handshake, which a keep-alive client can put off indefinitely; the
//! request in progress still gets its answer.

use super::open::{OpenConnections, Registration};
use super::reload::{self, Reload, Reloadable, TlsFiles};
use super::{
    PeerIdentity, Snapshot, TlsError, crypto_provider, now_unix, peer_identity, peer_identity_in,
    root_store,
};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// TLS settings of one listener (`[listeners.X.tls]`); paths are resolved by
/// the config loader.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerTlsConfig {
    /// PEM chain of the gateway's server certificate, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates whose clients may connect (at least one).
    pub client_ca: Vec<PathBuf>,
    /// PEM CRLs, checked for client certificates.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// How often [`ServerTls::watch`] looks at the files.
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// Close open connections whose client certificate a reloaded CRL
    /// revokes.
    #[serde(default = "default_close_revoked_connections")]
    pub close_revoked_connections: bool,
}

fn default_close_revoked_connections() -> bool {
    true
}

fn default_reload_interval_ms() -> u64 {
    5000
}

/// A listener's files and how they build its config.
struct ListenerFiles(ServerTlsConfig);

impl TlsFiles for ListenerFiles {
    type Built = Loaded;

    fn paths(&self) -> impl Iterator<Item = &Path> {
        let cfg = &self.0;
        [cfg.cert.as_path(), cfg.key.as_path()]
            .into_iter()
            .chain(cfg.client_ca.iter().map(PathBuf::as_path))
            .chain(cfg.crl.iter().map(PathBuf::as_path))
    }

    fn build(&self, files: &Snapshot) -> Result<Loaded, TlsError> {
        build(&self.0, files)
    }
}

/// One loaded generation of a listener's TLS config.
struct Loaded {
    config: Arc<ServerConfig>,
    /// The server certificate's notAfter (unix seconds).
    not_after: i64,
    /// The `client-ca` certificates, to resolve a peer's issuer.
    client_cas: Vec<CertificateDer<'static>>,
    /// The client verifier (CAs and CRLs) of this generation.
    verifier: Arc<dyn ClientCertVerifier>,
}

/// A listener's TLS configuration, reloadable in place.
pub struct ServerTls {
    name: String,
    files: Reloadable<ListenerFiles>,
    open: Arc<OpenConnections>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("listener", &self.name)
            .field("cfg", &self.files.files().0)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the listener's certificate, key, client CAs and CRLs.
    pub fn load(name: &str, cfg: &ServerTlsConfig) -> Result<Arc<ServerTls>, TlsError> {
        let tls = Arc::new(ServerTls {
            name: name.to_string(),
            files: Reloadable::load(ListenerFiles(cfg.clone()))?,
            open: Arc::default(),
        });
        tls.report_expiry();
        Ok(tls)
    }

    /// The listener's name (metric label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An acceptor for the current config. Take one per accepted connection:
    /// the connection keeps that config even if a reload swaps it.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config())
    }

    /// The current rustls config.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.files.current().config.clone()
    }

    /// The identity of a verified peer (`chain` as it presented it, leaf
    /// first), its issuer resolved against the presented chain and the
    /// current `client-ca` certificates ([`super::peer_identity_in`]).
    pub fn peer_identity(&self, chain: &[CertificateDer<'_>]) -> Result<PeerIdentity, TlsError> {
        peer_identity_in(chain, &self.files.current().client_cas)
    }

    /// Registers an open connection established with `chain` (leaf first)
    /// so that a reloaded CRL that revokes its certificate signals it;
    /// `None` when `close-revoked-connections` is off. Keep the
    /// registration as long as the connection.
    pub fn register(&self, chain: &[CertificateDer<'_>]) -> Option<Registration> {
        self.files
            .files()
            .0
            .close_revoked_connections
            .then(|| self.open.register(chain, &*self.files.current().verifier))
    }

    /// The open connections registered.
    pub fn open_connections(&self) -> usize {
        self.open.len()
    }

    /// When the current server certificate expires (unix seconds).
    pub fn cert_not_after(&self) -> i64 {
        self.files.current().not_after
    }

    /// Re-reads every file. `Ok(false)`: nothing changed; `Ok(true)`: a new
    /// config is in force for new connections; `Err`: the files changed but
    /// do not load, and the previous config stays in force.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let outcome = self.files.reload();
        match &outcome {
            Reload::Swapped => {
                metrics::counter!("yiwang_tls_reloads_total", "listener" => self.name.clone(), "result" => "ok")
                    .increment(1);
                tracing::info!(listener = %self.name, "TLS certificates reloaded");
                self.report_expiry();
                self.close_revoked();
            }
            Reload::Failed { error, first: true } => {
                metrics::counter!("yiwang_tls_reloads_total", "listener" => self.name.clone(), "result" => "error")
                    .increment(1);
                tracing::warn!(listener = %self.name, error = %error, "TLS reload failed; the previous certificates stay in force");
            }
            Reload::Unchanged | Reload::Failed { first: false, .. } => {}
        }
        outcome.into_result()
    }

    /// Signals the open connections the new verifier finds revoked.
    fn close_revoked(&self) {
        if !self.files.files().0.close_revoked_connections {
            return;
        }
        let closed = self.open.close_revoked(&*self.files.current().verifier);
        if closed > 0 {
            metrics::counter!("yiwang_tls_revoked_connections_closed_total", "listener" => self.name.clone())
                .increment(closed as u64);
            tracing::warn!(listener = %self.name, closed, "closing open connections whose client certificate is now revoked");
        }
    }

    /// Sets `yiwang_tls_cert_expiry_seconds{listener}`.
    fn report_expiry(&self) {
        let left = self.cert_not_after() - now_unix();
        metrics::gauge!("yiwang_tls_cert_expiry_seconds", "listener" => self.name.clone())
            .set(left as f64);
    }

    /// Polls the files every `reload-interval-ms` and reloads on change,
    /// until `stop` is cancelled; the caller spawns it.
    pub fn watch(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let interval = Duration::from_millis(self.files.files().0.reload_interval_ms.max(10));
        let tls = self.clone();
        reload::poll(
            interval,
            stop,
            move || {
                // Errors are logged by `reload`; the gauge counts down either way.
                let _ = tls.reload();
                tls.report_expiry();
            },
            |()| {},
        )
    }
}

/// Builds a server config from the files read.
fn build(cfg: &ServerTlsConfig, snapshot: &Snapshot) -> Result<Loaded, TlsError> {
    let chain = snapshot.certs(&cfg.cert, "certificate")?;
    let key = snapshot.key(&cfg.key)?;
    let roots = root_store(snapshot, &cfg.client_ca, "client CA")?;
    let mut client_cas = Vec::new();
    for path in &cfg.client_ca {
        client_cas.extend(snapshot.certs(path, "client CA")?);
    }
    let mut crls = Vec::new();
    for path in &cfg.crl {
        crls.extend(snapshot.crls(path)?);
    }
    let not_after = match chain.first() {
        Some(leaf) => {
            peer_identity(leaf)
                .map_err(|e| {
                    TlsError::File(format!("certificate file {}: {e}", cfg.cert.display()))
                })?
                .not_after
        }
        None => 0,
    };
    let provider = crypto_provider();
    let verifier: Arc<dyn ClientCertVerifier> =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status()
            .build()
            .map_err(|e| TlsError::Config(format!("client verification: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?
        .with_client_cert_verifier(Arc::clone(&verifier))
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "certificate {} with key {}: {e}",
                cfg.cert.display(),
                cfg.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
        client_cas,
        verifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::peer::handshake_refusal;
    use rustls::AlertDescription;
    use rustls::pki_types::ServerName;
    use sha2::{Digest, Sha256};
    use std::net::SocketAddr;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use yiwang_pki::time::{Duration as Span, OffsetDateTime};
    use yiwang_pki::{Ca, CertSpec, Issued};

    /// What the echo server saw of one connection.
    #[derive(Debug)]
    enum Seen {
        Accepted(Box<crate::tls::PeerIdentity>),
        Refused(String),
    }

    /// An echo server taking a fresh acceptor from `tls` for every
    /// connection, as a real listener does.
    async fn spawn_echo(tls: Arc<ServerTls>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = tls.acceptor();
                let tx = tx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut stream) => {
                            let chain = stream.get_ref().1.peer_certificates().unwrap();
                            let id = tls.peer_identity(chain).unwrap();
                            let _ = tx.send(Seen::Accepted(Box::new(id)));
                            let mut buf = [0u8; 1024];
                            loop {
                                match stream.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => {
                                        if stream.write_all(&buf[..n]).await.is_err() {
                                            return;
                                        }
                                        let _ = stream.flush().await;
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Seen::Refused(handshake_refusal(&e)));
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn client_config(
        roots_from: &Ca,
        client: Option<&Issued>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(roots_from.cert_der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut cfg = match client {
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.cert_der.clone()], leaf.key_der())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

    async fn connect(
        cfg: Arc<rustls::ClientConfig>,
        addr: SocketAddr,
    ) -> std::io::Result<ClientStream> {
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    async fn ping(stream: &mut ClientStream, msg: &[u8]) -> std::io::Result<()> {
        stream.write_all(msg).await?;
        stream.flush().await?;
        let mut buf = vec![0u8; msg.len()];
        stream.read_exact(&mut buf).await?;
        assert_eq!(buf, msg);
        Ok(())
    }

    /// Connects and exchanges one message; with TLS 1.3 the server judges the
    /// client certificate after the client's side of the handshake is done,
    /// so a refusal shows on the first read.
    async fn try_exchange(cfg: Arc<rustls::ClientConfig>, addr: SocketAddr) -> std::io::Result<()> {
        let mut stream = connect(cfg, addr).await?;
        ping(&mut stream, b"ping").await
    }

    fn alert(e: &std::io::Error) -> Option<AlertDescription> {
        match crate::tls::find_rustls_error(e) {
            Some(rustls::Error::AlertReceived(a)) => Some(*a),
            _ => None,
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("server saw nothing")
            .expect("server gone")
    }

    struct Setup {
        dir: tempfile::TempDir,
        ca: Ca,
        cfg: ServerTlsConfig,
    }

    /// Writes `contents` to `dir/name` and returns the path.
    fn write(dir: &std::path::Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Bureau client CA");
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let server = ca.issue(&CertSpec::server("gateway", &["localhost"], &[localhost]));
        let (cert, key) = server.write(dir.path(), "server").unwrap();
        let cfg = ServerTlsConfig {
            cert,
            key,
            client_ca: vec![ca.write(dir.path(), "ca").unwrap().0],
            crl: vec![],
            reload_interval_ms: 5000,
            close_revoked_connections: true,
        };
        Setup { dir, ca, cfg }
    }

    #[test]
    fn config_deserializes_kebab_case_with_defaults() {
        let cfg: ServerTlsConfig = toml::from_str(
            r#"
            cert = "/etc/yiwang/server.pem"
            key = "/etc/yiwang/server.key"
            client-ca = ["/etc/yiwang/ministries.pem"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.reload_interval_ms, 5000);
        assert!(cfg.crl.is_empty());
        let unknown = toml::from_str::<ServerTlsConfig>(
            r#"
            cert = "a"
            key = "b"
            client-ca = []
            client_ca = []
            "#,
        );
        assert!(unknown.is_err());
    }

    #[tokio::test]
    async fn accepts_client_from_configured_ca_and_reads_its_identity() {
        let s = setup();
        let tls = ServerTls::load("intake", &s.cfg).unwrap();
        let (addr, mut seen) = spawn_echo(tls).await;
        let not_after = OffsetDateTime::from_unix_timestamp(4_070_908_800).unwrap(); // 2099-01-01
        let client = s.ca.issue(
            &CertSpec::client("market-regulation")
                .dns("mr.zwfw.internal")
                .uri("spiffe://zwfw.gov.cn/market-regulation")
                .email("ops@mr.zwfw.internal")
                .validity(OffsetDateTime::now_utc() - Span::hours(1), not_after),
        );
        let mut stream = connect(client_config(&s.ca, Some(&client), PROTOCOLS), addr)
            .await
            .unwrap();
        ping(&mut stream, b"hello").await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let Seen::Accepted(id) = next(&mut seen).await else {
            panic!("refused")
        };
        assert_eq!(id.subject_cn.as_deref(), Some("market-regulation"));
        assert_eq!(id.subject, "CN=market-regulation, O=Yiwang test PKI");
        assert!(id.issuer.contains("CN=Bureau client CA"), "{}", id.issuer);
        assert_eq!(id.san_dns, vec!["mr.zwfw.internal"]);
        assert_eq!(id.san_uri, vec!["spiffe://zwfw.gov.cn/market-regulation"]);
        assert_eq!(id.san_email, vec!["ops@mr.zwfw.internal"]);
        assert_eq!(id.serial_hex, hex::encode(client.serial()));
        assert_eq!(
            id.fingerprint_sha256,
            hex::encode(Sha256::digest(client.cert_der.as_ref()))
        );
        assert_eq!(id.not_after, 4_070_908_800);
    }

    const PROTOCOLS: &[&rustls::SupportedProtocolVersion] = crate::tls::PROTOCOL_VERSIONS;

    #[tokio::test]
    async fn refuses_client_without_certificate() {
        let s = setup();
        let (addr, mut seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;
        let err = try_exchange(client_config(&s.ca, None, PROTOCOLS), addr)
            .await
            .unwrap_err();
        assert_eq!(
            alert(&err),
            Some(AlertDescription::CertificateRequired),
            "{err}"
        );
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "no client certificate");
    }

    #[tokio::test]
    async fn refuses_expired_client_certificate() {
        let s = setup();
        let (addr, mut seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;
        let expired = s.ca.issue(&CertSpec::client("old").expired());
        let err = try_exchange(client_config(&s.ca, Some(&expired), PROTOCOLS), addr)
            .await
            .unwrap_err();
        assert_eq!(
            alert(&err),
            Some(AlertDescription::CertificateExpired),
            "{err}"
        );
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "client certificate expired");
    }

    #[tokio::test]
    async fn refuses_client_from_another_ca() {
        let s = setup();
        let (addr, mut seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;
        let stranger = Ca::new("Somebody else").issue(&CertSpec::client("intruder"));
        let err = try_exchange(client_config(&s.ca, Some(&stranger), PROTOCOLS), addr)
            .await
            .unwrap_err();
        assert_eq!(alert(&err), Some(AlertDescription::UnknownCA), "{err}");
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "client certificate issued by an unknown CA");
    }

    #[tokio::test]
    async fn refuses_revoked_client_and_accepts_clients_of_a_ca_without_crl() {
        let mut s = setup();
        let revoked = s.ca.issue(&CertSpec::client("revoked"));
        let good = s.ca.issue(&CertSpec::client("good"));
        let other_ca = Ca::new("CA without CRL");
        let other = other_ca.issue(&CertSpec::client("other"));
        s.cfg.crl = vec![write(s.dir.path(), "ca.crl", &s.ca.crl(&[&revoked]))];
        s.cfg
            .client_ca
            .push(other_ca.write(s.dir.path(), "other-ca").unwrap().0);
        let (addr, mut seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;

        let err = try_exchange(client_config(&s.ca, Some(&revoked), PROTOCOLS), addr)
            .await
            .unwrap_err();
        assert_eq!(
            alert(&err),
            Some(AlertDescription::CertificateRevoked),
            "{err}"
        );
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "client certificate revoked");

        try_exchange(client_config(&s.ca, Some(&good), PROTOCOLS), addr)
            .await
            .unwrap();
        assert!(matches!(next(&mut seen).await, Seen::Accepted(_)));
        // Unknown revocation status (no CRL for its CA) is allowed.
        try_exchange(client_config(&s.ca, Some(&other), PROTOCOLS), addr)
            .await
            .unwrap();
        let Seen::Accepted(id) = next(&mut seen).await else {
            panic!("refused")
        };
        assert_eq!(id.subject_cn.as_deref(), Some("other"));
    }

    #[tokio::test]
    async fn the_issuer_of_a_client_is_the_trusted_ca_that_signed_it_not_its_namesake() {
        let mut s = setup();
        let namesake = Ca::new("Bureau client CA");
        s.cfg
            .client_ca
            .push(namesake.write(s.dir.path(), "namesake").unwrap().0);
        let (addr, mut seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;
        for ca in [&s.ca, &namesake] {
            let client = ca.issue(&CertSpec::client("fuzhou-bureau"));
            try_exchange(client_config(&s.ca, Some(&client), PROTOCOLS), addr)
                .await
                .unwrap();
            let Seen::Accepted(id) = next(&mut seen).await else {
                panic!("refused")
            };
            assert_eq!(
                id.issuer_sha256,
                Some(hex::encode(Sha256::digest(ca.cert_der().as_ref())))
            );
        }
    }

    #[tokio::test]
    async fn tls12_only_client_connects_with_an_aead_suite() {
        let s = setup();
        let (addr, _seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;
        let client = s.ca.issue(&CertSpec::client("legacy-ministry"));
        let mut stream = connect(
            client_config(&s.ca, Some(&client), &[&rustls::version::TLS12]),
            addr,
        )
        .await
        .unwrap();
        ping(&mut stream, b"tls12").await.unwrap();
        let conn = stream.get_ref().1;
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert!(suite.starts_with("TLS_ECDHE_"), "{suite}");
        assert!(
            suite.contains("_GCM_") || suite.contains("CHACHA20_POLY1305"),
            "{suite}"
        );
    }

    #[test]
    fn configured_suites_are_aead_only() {
        let s = setup();
        let tls = ServerTls::load("intake", &s.cfg).unwrap();
        let config = tls.config();
        let names: Vec<String> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|cs| format!("{:?}", cs.suite()))
            .collect();
        assert_eq!(names.len(), 9, "{names:?}");
        for name in &names {
            assert!(!name.contains("CBC") && !name.contains("SHA1"), "{name}");
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
    }

    /// A hand-written ClientHello (rustls cannot make an old or CBC-only
    /// one): record version 3.1, the given client_version and suites, and
    /// the extensions a TLS 1.2 server needs to get as far as suite choice.
    fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&version);
        body.extend_from_slice(&[7u8; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]); // compression: null
        let mut ext = Vec::new();
        // supported_groups: x25519, secp256r1
        ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
        // ec_point_formats: uncompressed
        ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256
        ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04]);
        // extended_master_secret
        ext.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1u8, 0, 0, 0];
        hs[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        record.extend_from_slice(&hs);
        record
    }

    /// Sends a raw ClientHello; returns the alert description the server
    /// answered with.
    async fn raw_hello(addr: SocketAddr, hello: &[u8]) -> u8 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(hello).await.unwrap();
        let mut reply = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply[0], 0x15, "expected an alert record, got {reply:?}");
        assert_eq!(reply[5], 2, "fatal");
        reply[6]
    }

    const CBC_SUITES: &[u16] = &[
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        0xc014, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
        0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        0xc023, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
        0xc027, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
        0x000a, // TLS_RSA_WITH_3DES_EDE_CBC_SHA
    ];

    #[tokio::test]
    async fn tls11_and_cbc_only_clients_are_refused() {
        let s = setup();
        let (addr, mut seen) = spawn_echo(ServerTls::load("intake", &s.cfg).unwrap()).await;

        let alert = raw_hello(addr, &client_hello([3, 2], CBC_SUITES)).await;
        assert_eq!(alert, u8::from(AlertDescription::ProtocolVersion));
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "protocol version too old");

        let alert = raw_hello(addr, &client_hello([3, 3], CBC_SUITES)).await;
        assert_eq!(alert, u8::from(AlertDescription::HandshakeFailure));
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "no shared cipher suite");
    }

    #[tokio::test]
    async fn reload_swaps_certificate_without_dropping_connections_and_keeps_old_on_error() {
        let s = setup();
        let tls = ServerTls::load("intake", &s.cfg).unwrap();
        let (addr, _seen) = spawn_echo(tls.clone()).await;
        let client = s.ca.issue(&CertSpec::client("bureau-app"));
        let cfg = client_config(&s.ca, Some(&client), PROTOCOLS);
        let first_cert = tls.config();

        let mut before = connect(cfg.clone(), addr).await.unwrap();
        ping(&mut before, b"before").await.unwrap();
        let old_leaf = before.get_ref().1.peer_certificates().unwrap()[0].clone();

        assert!(!tls.reload().unwrap(), "nothing changed yet");
        let renewed =
            s.ca.issue(&CertSpec::server("gateway-renewed", &["localhost"], &[]));
        renewed.write(s.dir.path(), "server").unwrap();
        assert!(tls.reload().unwrap());
        assert!(!Arc::ptr_eq(&first_cert, &tls.config()));

        // The connection made before the reload goes on with its old config.
        ping(&mut before, b"after reload").await.unwrap();
        // A new connection sees the new certificate.
        let after = connect(cfg.clone(), addr).await.unwrap();
        let new_leaf = after.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_ne!(old_leaf, new_leaf);
        assert_eq!(new_leaf, renewed.cert_der);

        // A broken key keeps the renewed config and reports the problem.
        // (a half-written file, as during a non-atomic copy).
        let half = &renewed.key_pem[..renewed.key_pem.len() / 2];
        let key_path = write(s.dir.path(), "server.key", half);
        let err = tls.reload().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "key file {}: bad PEM: no \"-----END PRIVATE KEY-----\" line (truncated file?)",
                key_path.display()
            )
        );
        // The same broken state answers the same error again.
        assert_eq!(tls.reload().unwrap_err(), err);
        let mut still = connect(cfg, addr).await.unwrap();
        ping(&mut still, b"still").await.unwrap();
        assert_eq!(
            still.get_ref().1.peer_certificates().unwrap()[0],
            renewed.cert_der
        );
        ping(&mut before, b"old connection still up").await.unwrap();
    }

    #[tokio::test]
    async fn replacing_the_crl_refuses_new_connections_of_a_revoked_client() {
        let mut s = setup();
        let client = s.ca.issue(&CertSpec::client("soon-revoked"));
        let crl_path = write(s.dir.path(), "ca.crl", &s.ca.crl(&[]));
        s.cfg.crl = vec![crl_path.clone()];
        s.cfg.reload_interval_ms = 20;
        let tls = ServerTls::load("intake", &s.cfg).unwrap();
        let (addr, mut seen) = spawn_echo(tls.clone()).await;
        let cfg = client_config(&s.ca, Some(&client), PROTOCOLS);

        let mut established = connect(cfg.clone(), addr).await.unwrap();
        ping(&mut established, b"ok").await.unwrap();
        assert!(matches!(next(&mut seen).await, Seen::Accepted(_)));

        let stop = CancellationToken::new();
        let watcher = tokio::spawn(tls.watch(stop.clone()));
        let old = tls.config();
        write(s.dir.path(), "ca.crl", &s.ca.crl(&[&client]));
        for _ in 0..250 {
            if !Arc::ptr_eq(&old, &tls.config()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !Arc::ptr_eq(&old, &tls.config()),
            "watch did not reload the CRL"
        );

        let err = try_exchange(cfg, addr).await.unwrap_err();
        assert_eq!(
            alert(&err),
            Some(AlertDescription::CertificateRevoked),
            "{err}"
        );
        let Seen::Refused(reason) = next(&mut seen).await else {
            panic!("accepted")
        };
        assert_eq!(reason, "client certificate revoked");
        // Revocation applies to new handshakes; this echo server registers
        // no connection, so its open one stays (closing them is the HTTP
        // server's, through `register`: see `super::open`).
        ping(&mut established, b"still open").await.unwrap();

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let s = setup();
        let mut cfg = s.cfg.clone();
        cfg.key = s.dir.path().join("missing.key");
        let err = ServerTls::load("intake", &cfg).unwrap_err().to_string();
        assert!(err.starts_with("cannot read key file "), "{err}");
        assert!(err.contains("missing.key"), "{err}");

        let mut cfg = s.cfg.clone();
        cfg.cert = write(s.dir.path(), "empty.pem", "nothing here\n");
        let err = ServerTls::load("intake", &cfg).unwrap_err().to_string();
        assert!(err.ends_with("empty.pem holds no certificate"), "{err}");

        let mut cfg = s.cfg.clone();
        cfg.crl = vec![write(
            s.dir.path(),
            "bad.crl",
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )];
        let err = ServerTls::load("intake", &cfg).unwrap_err().to_string();
        assert!(
            err.starts_with("CRL ") && err.contains("bad.crl: "),
            "{err}"
        );

        let mut cfg = s.cfg.clone();
        let other = s.ca.issue(&CertSpec::server("other", &["localhost"], &[]));
        cfg.key = other.write(s.dir.path(), "other").unwrap().1;
        let err = ServerTls::load("intake", &cfg).unwrap_err().to_string();
        assert!(
            err.contains("server.crt") && err.contains("other.key"),
            "{err}"
        );

        let mut cfg = s.cfg.clone();
        cfg.client_ca = vec![];
        let err = ServerTls::load("intake", &cfg).unwrap_err().to_string();
        assert_eq!(err, "no client CA file configured");
    }
}
