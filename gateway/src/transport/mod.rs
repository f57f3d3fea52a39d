//! Outbound requests to ministry networks. The runtime's `send` goes through
//! the [`Transport`] trait so tests, fixtures and the audit trail can stand in
//! for or observe the wire without touching adapters.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpTransport { client }
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(3))
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        let client = self.client.clone();
        Box::pin(async move {
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
                let resp = client.request(req).await.map_err(|e| {
                    if e.is_connect() {
                        TransportError::NotSent(error_chain(&e))
                    } else {
                        TransportError::NoReply(error_chain(&e))
                    }
                })?;
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
        })
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
