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
//!
//! # Rooms
//!
//! `client` builds the hyper clients (plain, and one per TLS destination);
//! `exchange` carries one request and its reply under the request's limits
//! (timeout, reply size) and sorts failures; `destinations` is
//! [`GatewayTransport`], the per-destination registry of TLS clients
//! reloaded when their files change.

mod client;
mod destinations;
mod exchange;

pub use client::HttpTransport;
pub use destinations::GatewayTransport;

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use yiwang_schema::http_status::{RetryAfter, StatusClass, status_class};

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

impl OutboundResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What the status means for a retry ([`status_class`], shared with the
    /// adapter SDK).
    pub fn status_class(&self) -> StatusClass {
        status_class(self.status)
    }

    /// How long the peer asked us to wait (`Retry-After`, delay-seconds or an
    /// HTTP-date counted from `now`); `None` without a usable header.
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        RetryAfter::parse(self.header("retry-after")?).map(|r| r.delay_from(now))
    }
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

    fn response(status: u16, headers: &[(&str, &str)]) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn a_reply_reads_its_status_class_and_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let resp = response(503, &[("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT")]);
        assert_eq!(resp.status_class(), StatusClass::Retryable);
        assert_eq!(resp.retry_after(now), Some(Duration::from_secs(30)));
        let resp = response(425, &[("retry-after", "7")]);
        assert_eq!(resp.status_class(), StatusClass::Retryable);
        assert_eq!(resp.retry_after(now), Some(Duration::from_secs(7)));
        let resp = response(404, &[("retry-after", "soon")]);
        assert_eq!(resp.status_class(), StatusClass::Permanent);
        assert_eq!(resp.retry_after(now), None);
        assert_eq!(response(204, &[]).retry_after(now), None);
    }
}
