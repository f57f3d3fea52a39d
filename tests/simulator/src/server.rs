//! Accepting connections and serving HTTP/1.1 on them, with the faults applied per request.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::error::Error;
use crate::faults::FaultAction;
use crate::network::{BusinessRequest, Network};
use crate::{control, lock, reply};

/// Largest request body read (bigger ones get 413).
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;

/// How long `accept_then_timeout` holds a connection when the client does not give up first.
pub(crate) const HOLD: Duration = Duration::from_secs(120);

/// How a connection served by [`serve_connection`] ended.
pub enum ConnectionEnd<S> {
    /// Closed in the ordinary way (by either side, or after an error).
    Closed,
    /// The `reset_next` fault fired: the caller owns the transport again and must abort it
    /// (for TCP: `set_zero_linger()` then drop, so the peer sees a reset, not a clean close).
    Reset(S),
}

/// Serve HTTP/1.1 for one network on any byte stream: a TCP connection today, a TLS stream
/// wrapping one tomorrow. Returns the stream when a fault asks for an abortive close.
pub async fn serve_connection<S>(io: S, net: Arc<Network>) -> ConnectionEnd<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reset_tx, mut reset_rx) = oneshot::channel::<()>();
    let reset = Arc::new(Mutex::new(Some(reset_tx)));
    let service = service_fn(move |req| {
        let net = Arc::clone(&net);
        let reset = Arc::clone(&reset);
        async move { handle(net, reset, req).await }
    });
    let mut conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        served = &mut conn => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            ConnectionEnd::Closed
        }
        Ok(()) = &mut reset_rx => ConnectionEnd::Reset(conn.into_parts().io.into_inner()),
    }
}

/// Accept TCP connections until shutdown; connection tasks are aborted on the way out.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    net: Arc<Network>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    tracing::trace!(network = %net.name(), %peer, "connection");
                    let net = Arc::clone(&net);
                    connections.spawn(async move {
                        let tcp = match &net.tls {
                            None => serve_connection(tcp, net).await,
                            Some(tls) => {
                                let Some(stream) = tls.accept(net.name(), tcp).await else {
                                    return;
                                };
                                match serve_connection(stream, net).await {
                                    ConnectionEnd::Reset(stream) => {
                                        ConnectionEnd::Reset(stream.into_inner().0)
                                    }
                                    ConnectionEnd::Closed => ConnectionEnd::Closed,
                                }
                            }
                        };
                        if let ConnectionEnd::Reset(tcp) = tcp {
                            if let Err(e) = tcp.set_zero_linger() {
                                tracing::warn!(error = %e, "cannot arm TCP reset");
                            }
                            drop(tcp);
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(network = %net.name(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

type ResetSwitch = Arc<Mutex<Option<oneshot::Sender<()>>>>;

async fn handle(
    net: Arc<Network>,
    reset: ResetSwitch,
    req: Request<Incoming>,
) -> Result<Response<http_body_util::Full<bytes::Bytes>>, Error> {
    if req.uri().path() == "/_sim" || req.uri().path().starts_with("/_sim/") {
        return Ok(control::handle(&net, req).await);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(network = %net.name(), error = %e, "request body not read");
            return Ok(reply::payload_too_large());
        }
    };
    let request = BusinessRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let (latency, action) = net.faults.take();
    tracing::info!(
        network = %net.name(),
        method = %request.method,
        path = %request.path,
        fault = ?action,
        "business request"
    );
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(action) = action else {
        return Ok(net.protocol.handle(&net, &request));
    };
    match action {
        FaultAction::Maintenance => Ok(reply::maintenance_page()),
        FaultAction::Fail(status) => Ok(reply::error_page(status)),
        FaultAction::Garbage => Ok(reply::garbage_page()),
        FaultAction::Reject(field) => Ok(net.protocol.rejection(&field)),
        FaultAction::Reset => {
            if let Some(tx) = lock(&reset).take() {
                let _ = tx.send(());
            }
            // serve_connection drops this future with the connection.
            let never: Infallible = std::future::pending().await;
            match never {}
        }
        FaultAction::AcceptThenTimeout => {
            // The ministry really processes it; only the reply is lost.
            let lost = net.protocol.handle(&net, &request);
            tracing::info!(network = %net.name(), status = %lost.status(), "reply withheld");
            let mut shutdown = net.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(HOLD) => {}
                _ = shutdown.changed() => {}
            }
            Err(Error::HoldExpired(HOLD))
        }
    }
}
