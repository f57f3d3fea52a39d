//! One request and its reply, under the request's limits: the whole exchange
//! within `timeout`, the reply body within `max_response_bytes`. Shared by
//! the plain and the TLS clients, so both split failures the same way:
//! nothing sent, maybe sent, too large, or a TLS identity refusal.

use super::{OutboundRequest, OutboundResponse, TransportError, error_chain};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;

/// One request/reply exchange over any hyper client, shared by the plain
/// and the TLS transports so both have the same timeout, size-limit and
/// error semantics.
pub(super) async fn exchange<C>(
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
    let network = request.network;
    let exchange = async move {
        let resp = client
            .request(req)
            .await
            .map_err(|e| classify(&e, &network))?;
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
/// failures (nothing sent), then the rest (maybe sent). A peer rejection
/// names the network (`server certificate revoked (network mr): …`).
fn classify(e: &hyper_util::client::legacy::Error, network: &str) -> TransportError {
    if let Some(reason) = crate::tls::find_rustls_error(e).and_then(peer_rejection) {
        return TransportError::PeerRejected(format!(
            "{reason} (network {network}): {}",
            error_chain(e)
        ));
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
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked) => {
            Some("server certificate revoked")
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
