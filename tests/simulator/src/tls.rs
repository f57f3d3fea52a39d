//! Mutual TLS: the server side of a network (TLS 1.2/1.3 only, a client certificate from
//! one CA required, a server certificate that can be swapped at runtime, who connected and
//! how many handshakes failed) and the push client's configuration.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::{Error, Result};
use crate::lock;

/// How long a client may take to complete its handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The distinct client names remembered, at most (the first ones seen).
const MAX_CLIENTS: usize = 256;

/// A network's server side of mutual TLS ([`crate::SimConfig::with_tls`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The server certificate, PEM (leaf first, then any intermediates).
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The CA whose client certificates are accepted (the gateway's, for this network).
    pub client_ca_pem: String,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is left out on purpose.
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// The push client's mutual TLS identity ([`crate::SimConfig::with_push_tls`]), used for
/// `https://` callback URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct PushTls {
    /// The CA the receiver's server certificate must come from (the gateway's CA).
    pub ca_pem: String,
    /// The client certificate presented, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl fmt::Debug for PushTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is left out on purpose.
        f.debug_struct("PushTls").finish_non_exhaustive()
    }
}

/// Who connected to a TLS network ([`crate::Simulator::tls_stats`], `GET /_sim/info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsStats {
    /// Common names of the client certificates of completed handshakes, distinct, in the
    /// order first seen (`(no CN)` for a certificate without one).
    pub clients: Vec<String>,
    /// Completed handshakes.
    pub handshakes: u64,
    /// Handshakes that failed, whichever side gave up: no client certificate, one from
    /// another CA, expired, or the client refusing the server's certificate. A connection
    /// closed before sending a byte (a port probe) is not counted.
    pub refusals: u64,
    /// Why the last handshake failed.
    pub last_refusal: Option<String>,
}

/// The server side of a TLS network, shared by its connections.
pub(crate) struct TlsServer {
    client_ca_pem: String,
    config: Mutex<Arc<ServerConfig>>,
    stats: Mutex<TlsStats>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    pub(crate) fn new(network: &str, tls: &ServerTls) -> Result<Self> {
        Ok(Self {
            config: Mutex::new(server_config(
                network,
                &tls.cert_pem,
                &tls.key_pem,
                &tls.client_ca_pem,
            )?),
            client_ca_pem: tls.client_ca_pem.clone(),
            stats: Mutex::new(TlsStats::default()),
        })
    }

    /// Present this certificate from the next handshake on (open connections keep theirs).
    pub(crate) fn set_server_cert(
        &self,
        network: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<()> {
        let config = server_config(network, cert_pem, key_pem, &self.client_ca_pem)?;
        *lock(&self.config) = config;
        Ok(())
    }

    pub(crate) fn stats(&self) -> TlsStats {
        lock(&self.stats).clone()
    }

    /// The handshake of one accepted connection; `None` when it failed (counted) or the
    /// peer left without a byte (not counted).
    pub(crate) async fn accept(
        &self,
        network: &str,
        tcp: TcpStream,
    ) -> Option<TlsStream<TcpStream>> {
        // A fresh acceptor per connection: a swapped certificate (and its fresh session
        // cache, so nobody resumes into the old certificate) applies at once.
        let acceptor = TlsAcceptor::from(Arc::clone(&*lock(&self.config)));
        let handshake = async {
            let mut first = [0u8; 1];
            if tcp.peek(&mut first).await? == 0 {
                return Ok(None);
            }
            acceptor.accept(tcp).await.map(Some)
        };
        let outcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(Some(stream))) => Ok(stream),
            Ok(Ok(None)) => {
                tracing::debug!(network, "connection closed before a TLS handshake");
                return None;
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")),
        };
        let mut stats = lock(&self.stats);
        match outcome {
            Ok(stream) => {
                let cn = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| yiwang_pki::common_name(leaf).unwrap_or_else(|| "(no CN)".into()))
                    .unwrap_or_else(|| "(no certificate)".into());
                stats.handshakes += 1;
                if !stats.clients.contains(&cn) && stats.clients.len() < MAX_CLIENTS {
                    stats.clients.push(cn.clone());
                }
                drop(stats);
                tracing::debug!(network, client = %cn, "TLS client connected");
                Some(stream)
            }
            Err(reason) => {
                stats.refusals += 1;
                stats.last_refusal = Some(reason.clone());
                drop(stats);
                tracing::info!(network, %reason, "TLS handshake failed");
                None
            }
        }
    }
}

/// TLS 1.2/1.3, this certificate, a client certificate from `client_ca_pem` required.
fn server_config(
    network: &str,
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>> {
    yiwang_pki::server_config(cert_pem, key_pem, Some(client_ca_pem))
        .map(Arc::new)
        .map_err(|e| Error::Tls {
            network: network.to_owned(),
            reason: format!("server TLS: {e:#}"),
        })
}

/// The push client's configuration: trusts `ca_pem`, presents the certificate.
pub(crate) fn push_client_config(network: &str, tls: &PushTls) -> Result<ClientConfig> {
    yiwang_pki::client_config(&[&tls.ca_pem], &tls.cert_pem, &tls.key_pem).map_err(|e| Error::Tls {
        network: network.to_owned(),
        reason: format!("push client TLS: {e:#}"),
    })
}
