//! The HTTP edges: the intake API for the bureau platform, the callback
//! endpoint for ministries, and the admin API for operators. Each listener
//! is a router behind the same tower stack (body limit, load shedding,
//! concurrency limit, timeout) and the audit layer (`audit.rs`: a request is
//! audited before it is answered), served by hyper with a header-read
//! timeout. Answers are `crate::wire` types; refusals are `Problem`s.

mod admin;
mod audit;
mod budget;
mod callbacks;
pub mod console;
mod fairness;
mod handshakes;
mod intake;
pub mod openapi;
pub mod problem;
mod refusals;
mod report;
mod witness;

use crate::config::ListenerConfig;
use crate::delivery::Delivery;
use crate::policy::{Action, Caller, Policy};
use crate::tls::open::Registration;
use crate::tls::{PeerIdentity, ServerTls};
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
use tower::{ServiceBuilder, ServiceExt};
use yiwang_audit::{AuditLog, Entry, Kind};

pub use admin::router as admin_router;
pub use callbacks::router as callback_router;
pub use intake::router as intake_router;
pub use refusals::Refusals;

/// A listener's API description (OpenAPI 3.1), as `GET /openapi.json`
/// answers it on that listener.
pub fn api_description(edge: openapi::Edge) -> serde_json::Value {
    let routes = match edge {
        openapi::Edge::Intake => intake::routes(),
        openapi::Edge::Callbacks => callbacks::routes(),
        openapi::Edge::Admin => admin::routes(),
    };
    openapi::finish(routes, edge).1
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub delivery: Arc<Delivery>,
    pub policy: Arc<Policy>,
    /// The items' form schemas the intake checks a case's form against.
    pub forms: Arc<crate::forms::FormCatalogue>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// What this gateway holds as a witness of other gateways' trails.
    pub witness: Arc<yiwang_audit::WitnessStore>,
}

impl AppState {
    pub fn audit(&self) -> &AuditLog {
        &self.delivery.audit
    }

    /// Decide an action for a caller. A refusal is written to the audit
    /// trail (durably, before the 403 goes out) and becomes a problem that
    /// names the rule.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action<'_>,
        case: Option<&str>,
        network: Option<&str>,
    ) -> Result<(), Problem> {
        let Err(denial) = self.policy.check(caller, action) else {
            return Ok(());
        };
        metrics::counter!("yiwang_denials_total").increment(1);
        tracing::warn!(principal = %denial.principal, action = %denial.action, rule = %denial.rule, "denied");
        let entry = Entry::new(Kind::Denial)
            .principal(caller.name())
            .about(case, network)
            .detail(serde_json::json!({
                "action": denial.action,
                "rule": denial.rule,
                "subject": caller.subject,
                "fingerprint": caller.fingerprint,
            }));
        if let Err(e) = self.audit().append(entry).await {
            tracing::error!(error = %e, "a denial could not be audited");
        }
        Err(
            Problem::new(http::StatusCode::FORBIDDEN, "forbidden", "Not allowed")
                .detail(denial.to_string()),
        )
    }
}

/// Every route of an edge behind the audit layer (see [`audit`]).
fn audited(router: Router<AppState>, state: AppState) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.delivery.audit),
            audit::layer,
        ))
        .with_state(state)
}

/// An RFC 3339 query parameter, or the problem naming it.
pub(crate) fn time_param(
    name: &str,
    v: Option<&String>,
) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>, Problem> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
            Problem::bad_request(
                "bad-parameter",
                format!("query parameter `{name}`: {s:?} is not an RFC 3339 time ({e})"),
            )
        })
    })
    .transpose()
}

/// Put the listener's limits around a router; anything unmatched is a 404
/// problem, a wrong method a 405 problem. The global limits (load shedding
/// at `max-concurrent`, `request-timeout-ms`) wrap the whole router as one
/// service, so they count every request of the listener (a layer on the
/// router would give each route its own count). Inside them, each principal
/// holds at most its share and its rate and a body must arrive within the
/// body timeout ([`fairness`]); every refusal is audited through `refusals`.
pub fn with_limits(router: Router, cfg: &ListenerConfig, refusals: &Arc<Refusals>) -> Router {
    let fairness = fairness::Fairness::new(cfg, Arc::clone(refusals));
    let router = router
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
        })
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&fairness),
            fairness::layer,
        ));
    let limited = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(fairness::global_refusal))
        .load_shed()
        .concurrency_limit(cfg.max_concurrent.max(1))
        .timeout(Duration::from_millis(cfg.request_timeout_ms.max(1)))
        .service(router);
    Router::new()
        .fallback_service(limited)
        .layer(axum::middleware::from_fn_with_state(
            fairness,
            fairness::audit_global,
        ))
}

/// A bound listener, ready to serve mTLS.
pub struct Listener {
    pub name: &'static str,
    pub listener: TcpListener,
    pub config: ListenerConfig,
    pub tls: Arc<ServerTls>,
}

impl Listener {
    pub async fn bind(
        name: &'static str,
        config: &ListenerConfig,
        tls: Arc<ServerTls>,
    ) -> std::io::Result<Self> {
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
            tls,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Serve until `stop` turns true; connections in progress finish their
/// current request. Each connection is first admitted to its TLS handshake
/// by the handshake budgets ([`handshakes`]), then completes the handshake
/// with a client certificate; the whole within the header timeout, so a
/// slow client cannot hold a slot. The certificate maps to a [`Caller`]
/// that every request on the connection carries. Refused handshakes and
/// connections, and requests hyper refuses before they parse, are logged,
/// counted and audited through `refusals`, which this also summarizes.
pub async fn serve(listener: Listener, router: Router, state: AppState, refusals: Arc<Refusals>) {
    let Listener {
        name,
        listener,
        config,
        tls,
    } = listener;
    let stop = state.delivery.stopping();
    state.delivery.drain.spawn(
        format!("{name} refusal summaries"),
        Arc::clone(&refusals).run(stop.clone()),
    );
    let handshakes = handshakes::Handshakes::new(&config);
    let header_timeout = Duration::from_millis(config.header_timeout_ms.max(1));
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
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
        let router = router.clone();
        let (stop, refusals, handshakes) =
            (stop.clone(), Arc::clone(&refusals), Arc::clone(&handshakes));
        let tls = Arc::clone(&tls);
        let drain = state.delivery.drain.clone();
        let state = state.clone();
        // On the drain: a stop lets the request in progress finish.
        drain.spawn(format!("{name} connection from {peer}"), async move {
            let deadline = tokio::time::Instant::now() + header_timeout;
            let admitted = match handshakes.admit(peer.ip(), deadline).await {
                Ok(a) => a,
                Err(refused) => return refusals.connection(peer, refused.limit, &refused.reason),
            };
            // The configuration as of now: a reload swaps it for later
            // connections and leaves this one alone.
            let stream = match tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return refusals.handshake(peer, &crate::tls::handshake_refusal(&e)),
                Err(_) => {
                    let reason = format!(
                        "handshake not completed within {} ms (slow client)",
                        header_timeout.as_millis()
                    );
                    return refusals.handshake(peer, &reason);
                }
            };
            drop(admitted);
            let (caller, identity) = caller_of(&state.policy, &tls, stream.get_ref().1);
            let caller = Arc::new(caller);
            let principal = caller.name();
            // Signalled if a reloaded CRL revokes this client's certificate.
            let open = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| tls.register(chain));
            tracing::debug!(listener = name, %peer, %principal, "connection");
            let service =
                tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Arc::clone(&caller));
                    router.clone().oneshot(req)
                });
            let builder = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 << 10)
                .to_owned();
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
                        unparsed(&refusals, peer, &principal, &e);
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                () = revoked(open.as_ref()) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    closed_revoked(&state, name, peer, principal, identity.as_ref());
                }
            }
        });
    }
}

/// The caller a verified connection's client certificate maps to (its
/// issuer resolved against the listener's CAs), and the certificate's
/// identity.
fn caller_of(
    policy: &Policy,
    tls: &ServerTls,
    conn: &rustls::ServerConnection,
) -> (Caller, Option<PeerIdentity>) {
    let Some(chain) = conn.peer_certificates().filter(|c| !c.is_empty()) else {
        return (Caller::anonymous(), None);
    };
    match tls.peer_identity(chain) {
        Ok(id) => (policy.identify(&id), Some(id)),
        Err(e) => (
            Caller {
                unmapped: Some(format!("unreadable client certificate: {e}")),
                ..Caller::anonymous()
            },
            None,
        ),
    }
}

/// Resolves when a reloaded CRL revokes the connection's certificate
/// (never without a registration).
async fn revoked(open: Option<&Registration>) {
    match open {
        Some(open) => open.revoked().cancelled().await,
        None => std::future::pending().await,
    }
}

/// An open connection closed because a reloaded CRL revoked its
/// certificate: log and audit, naming the principal and the serial.
fn closed_revoked(
    state: &AppState,
    listener: &'static str,
    peer: SocketAddr,
    principal: String,
    id: Option<&PeerIdentity>,
) {
    let serial = id.map(|i| i.serial_hex.as_str()).unwrap_or_default();
    tracing::warn!(listener, %peer, %principal, serial, "connection closed: client certificate revoked");
    state
        .audit()
        .record(Entry::new(Kind::TlsRefused).principal(principal).detail(
        serde_json::json!({
            "listener": listener,
            "peer": peer.to_string(),
            "reason": "client certificate revoked by a reloaded CRL; open connection closed",
            "serial": serial,
            "issuer": id.map(|i| i.issuer.as_str()),
        }),
    ));
}

/// A request hyper answered itself before it parsed (431 for a header
/// block larger than the connection's read buffer, 400 for a malformed
/// request): audited as a `limit` refusal. A connection that ends while
/// idle or by a reset is not a refusal.
fn unparsed(refusals: &Refusals, peer: SocketAddr, principal: &str, e: &hyper::Error) {
    let (limit, status, reason) = if e.is_parse_too_large() {
        (
            "max-header-bytes",
            431,
            "the request headers did not fit the 64 KiB read buffer".to_string(),
        )
    } else if e.is_parse() {
        (
            "malformed-request",
            400,
            format!("hyper could not parse the request: {e}"),
        )
    } else {
        return;
    };
    let detail = serde_json::json!({ "peer": peer.to_string(), "reason": reason });
    refusals.limit(principal, limit, status, detail);
}
