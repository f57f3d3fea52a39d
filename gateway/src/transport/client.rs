//! The hyper clients under both transports: plain HTTP/1.1, and one mutually
//! authenticated TLS client per destination, all over the same TCP
//! connector (connect timeout, no Nagle) and the same pool settings.

use super::exchange::exchange;
use super::{OutboundRequest, SendFuture, Transport};
use crate::tls::{ClientTlsConfig, Snapshot, TlsError};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Plain HTTP/1.1 over hyper, with a connect timeout that lets a refused or
/// unreachable ministry count as "not sent" (retryable) rather than ambiguous.
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpTransport {
    pub fn new(connect_timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(tcp_connector(connect_timeout));
        HttpTransport { client }
    }
}

/// The TCP connector under both transports.
pub(super) fn tcp_connector(connect_timeout: Duration) -> HttpConnector {
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

/// A destination's TLS HTTP client.
pub(super) type TlsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds a destination's TLS client from its files already read: the
/// network's CA only, its client certificate, its pins and server-name
/// override ([`crate::tls::client`]), HTTPS only.
pub(super) fn tls_client(
    cfg: &ClientTlsConfig,
    files: &Snapshot,
    connect_timeout: Duration,
) -> Result<TlsClient, TlsError> {
    let tls = crate::tls::client::build(cfg, files)?;
    let mut http = tcp_connector(connect_timeout);
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let builder = match cfg.server_name()? {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let connector = builder.enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector))
}
