//! The HTTP edges: the intake API for the bureau platform, the callback
//! endpoint for ministries, and the admin API for operators. Each listener
//! is a router behind the same tower stack (body limit, load shedding,
//! concurrency limit, timeout), served by hyper with a header-read timeout.

mod admin;
mod callbacks;
mod intake;
pub mod problem;

use crate::config::ListenerConfig;
use crate::delivery::Engine;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use problem::Problem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;

pub use admin::router as admin_router;
pub use callbacks::router as callback_router;
pub use intake::router as intake_router;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Put the listener's limits around a router; anything unmatched is a 404
/// problem, a wrong method a 405 problem.
pub fn with_limits(router: Router, cfg: &ListenerConfig) -> Router {
    router
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
        })
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(problem::overload))
                .load_shed()
                .concurrency_limit(cfg.max_concurrent.max(1))
                .timeout(Duration::from_millis(cfg.request_timeout_ms.max(1))),
        )
}

/// A bound listener, ready to serve.
pub struct Listener {
    pub name: &'static str,
    pub listener: TcpListener,
    pub config: ListenerConfig,
}

impl Listener {
    pub async fn bind(name: &'static str, config: &ListenerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{name} listener: cannot bind {}: {e}", config.addr),
            )
        })?;
        Ok(Listener {
            name,
            listener,
            config: config.clone(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Serve until `stop` turns true; connections in progress finish their
/// current request.
pub async fn serve(listener: Listener, router: Router, mut stop: watch::Receiver<bool>) {
    let Listener {
        name,
        listener,
        config,
    } = listener;
    let header_timeout = Duration::from_millis(config.header_timeout_ms.max(1));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 << 10)
                .to_owned();
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
