//! Fairness at the edge: no one client can hold a listener's capacity.
//!
//! Inside the listener's global `max-concurrent` limit, every request first
//! takes one of its principal's slots (`max-concurrent-per-principal`, by
//! default a quarter of `max-concurrent`): a principal holding all of its
//! share gets 503 `overloaded` at once, while other principals are served.
//! Then the body must arrive in full within `body-timeout-ms` from the end
//! of the headers, or the request is answered 408 `body-timeout` and its
//! slots are freed: a client that sends headers and a lying Content-Length,
//! then stalls, holds a slot for the body timeout, not the request timeout.
//! A deadline for the whole body (rather than a minimum rate) is chosen
//! because it bounds a slot's hold time whatever the client trickles.
//!
//! Each principal also has a rate budget: `rate-per-principal` requests a
//! second on average, with bursts of `burst-per-principal`; a principal
//! over it gets 429 `rate-limited` with the exact `Retry-After`, and
//! other principals are not slowed. Request headers are capped at
//! [`MAX_HEADER_BYTES`] (431).
//!
//! Every refusal made here, and every one by the listener's global limits
//! (503 at `max-concurrent` or `request-timeout-ms`), is audited through
//! [`Refusals`] (`limit`, with the principal, the limit and its numbers).

use super::budget::Budget;
use super::problem::Problem;
use super::refusals::Refusals;
use crate::config::ListenerConfig;
use crate::policy::Caller;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One listener's fairness limits and who holds its slots now.
pub(crate) struct Fairness {
    refusals: Arc<Refusals>,
    per_principal: usize,
    rate: Option<(Budget, u32, u32)>,
    body_timeout: Duration,
    max_body: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl Fairness {
    pub(crate) fn new(cfg: &ListenerConfig, refusals: Arc<Refusals>) -> Arc<Self> {
        let rate = (cfg.rate_per_principal > 0).then(|| {
            let rate = cfg.rate_per_principal;
            let burst = cfg.burst_per_principal();
            (Budget::per_second(rate, burst), rate, burst)
        });
        Arc::new(Fairness {
            refusals,
            per_principal: cfg.per_principal(),
            rate,
            body_timeout: Duration::from_millis(cfg.body_timeout_ms.max(1)),
            max_body: cfg.max_body_bytes,
            held: Mutex::default(),
        })
    }

    /// `None` when `principal` may start a request now; otherwise the
    /// 429 problem with the wait until it may.
    fn over_rate(&self, principal: &str) -> Option<Problem> {
        let (limiter, rate, burst) = self.rate.as_ref()?;
        let wait = limiter.spend(principal).err()?;
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Some(
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests from this client",
            )
            .detail(format!(
                "principal {principal} started more than {rate} requests a second (bursts of \
                 {burst}), its rate-per-principal on this listener; retry in {} ms",
                wait.as_millis()
            ))
            .retry_after(secs.max(1)),
        )
    }

    /// One of `principal`'s slots, or `None` when it holds its share.
    fn take(self: &Arc<Self>, principal: &str) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(principal.to_string()).or_default();
        if *n >= self.per_principal {
            return None;
        }
        *n += 1;
        Some(Slot {
            fairness: Arc::clone(self),
            principal: principal.to_string(),
        })
    }

    /// Log, count and audit a refusal; the problem to answer.
    fn refuse(&self, req: &RequestLine, limit: &'static str, problem: Problem) -> Response {
        self.record(req, limit, problem.status, &problem.detail);
        problem.into_response()
    }

    /// Log, count and audit a request refused at `limit`.
    fn record(&self, req: &RequestLine, limit: &'static str, status: StatusCode, reason: &str) {
        let detail = json!({ "method": req.method, "path": req.path, "reason": reason });
        self.refusals
            .limit(&req.principal, limit, status.as_u16(), detail);
    }
}

/// A principal's slot, given back when the request is answered.
struct Slot {
    fairness: Arc<Fairness>,
    principal: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.fairness.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.principal);
            }
        }
    }
}

/// The request line and headers a listener accepts, as sent
/// (`name: value\r\n` each). The connection's read buffer stops larger
/// header blocks before they parse; this is the exact cap.
pub(crate) const MAX_HEADER_BYTES: usize = 64 << 10;

/// The size of a request's line and headers as sent on the wire.
fn header_bytes(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n ".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields + 2
}

/// What a refusal record says about the request.
struct RequestLine {
    principal: String,
    method: String,
    path: String,
}

impl RequestLine {
    fn of(req: &Request) -> Self {
        RequestLine {
            principal: req
                .extensions()
                .get::<Arc<Caller>>()
                .map_or_else(|| Caller::anonymous().name(), |c| c.name()),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
        }
    }
}

/// A refusal by the listener's global limits (`max-concurrent`,
/// `request-timeout-ms`), marked on the answer for [`audit_global`].
#[derive(Debug, Clone, Copy)]
struct Global(&'static str);

/// The answer to an error of the global limits (load shedding, timeout),
/// marked so [`audit_global`] records it.
pub(crate) async fn global_refusal(err: tower::BoxError) -> Response {
    let limit = if err.is::<tower::load_shed::error::Overloaded>() {
        Some("max-concurrent")
    } else if err.is::<tower::timeout::error::Elapsed>() {
        Some("request-timeout-ms")
    } else {
        None
    };
    let mut answer = super::problem::overload(err).await.into_response();
    if let Some(limit) = limit {
        answer.extensions_mut().insert(Global(limit));
    }
    answer
}

/// The outermost layer: audits what the global limits refused
/// (`axum::middleware::from_fn_with_state(fairness, fairness::audit_global)`).
pub(crate) async fn audit_global(
    State(f): State<Arc<Fairness>>,
    req: Request,
    next: Next,
) -> Response {
    let line = RequestLine::of(&req);
    let answer = next.run(req).await;
    if let Some(Global(limit)) = answer.extensions().get::<Global>().copied() {
        let reason = format!("refused at the listener's {limit}");
        f.record(&line, limit, answer.status(), &reason);
    }
    answer
}

/// The layer: `axum::middleware::from_fn_with_state(fairness, fairness::layer)`.
pub(crate) async fn layer(State(f): State<Arc<Fairness>>, req: Request, next: Next) -> Response {
    let line = RequestLine::of(&req);
    let header_bytes = header_bytes(&req);
    if header_bytes > MAX_HEADER_BYTES {
        let problem = Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request headers too large",
        )
        .detail(format!(
            "the request line and headers take {header_bytes} bytes, more than the \
             {MAX_HEADER_BYTES} bytes (64 KiB) a listener accepts"
        ));
        return f.refuse(&line, "max-header-bytes", problem);
    }
    if let Some(problem) = f.over_rate(&line.principal) {
        return f.refuse(&line, "rate-per-principal", problem);
    }
    let Some(_slot) = f.take(&line.principal) else {
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Too many requests in progress for this client",
        )
        .detail(format!(
            "principal {} already has {} requests in progress, its share of this listener \
             (max-concurrent-per-principal); retry shortly",
            line.principal, f.per_principal
        ))
        .retry_after(1);
        return f.refuse(&line, "max-concurrent-per-principal", problem);
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, f.max_body, f.body_timeout).await {
        Read::Whole(bytes) => bytes,
        Read::TooLarge => {
            let problem = Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            )
            .detail(format!(
                "the body is larger than the listener's max-body-bytes ({} bytes)",
                f.max_body
            ));
            return f.refuse(&line, "max-body-bytes", problem);
        }
        Read::Unreadable(e) => {
            let problem = Problem::bad_request("unreadable-body", e.to_string());
            return f.refuse(&line, "body", problem);
        }
        Read::TimedOut => {
            let problem = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "The request body did not arrive in time",
            )
            .detail(format!(
                "the body was not complete within the listener's body-timeout-ms ({} ms)",
                f.body_timeout.as_millis()
            ));
            return f.refuse(&line, "body-timeout-ms", problem);
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// What reading a request body came to.
enum Read {
    Whole(Bytes),
    TooLarge,
    Unreadable(axum::Error),
    TimedOut,
}

/// How long, and how many bytes, the rest of a too-large body is drained
/// before the 413 goes out: a client still sending then reads the answer
/// instead of a reset connection (a lingering close, bounded).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// Read at most `max` bytes of `body` within `timeout`; past `max`, drain
/// the rest within [`LINGER`] and [`LINGER_BYTES`] and say it is too large.
async fn read_body(mut body: Body, max: usize, timeout: Duration) -> Read {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Read::TimedOut,
            Ok(None) => return Read::Whole(buf.freeze()),
            Ok(Some(Err(e))) => return Read::Unreadable(e),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buf.len() + data.len() > max {
                    break;
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    drop(buf);
    let linger = tokio::time::Instant::now() + LINGER;
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(linger, body.frame()).await {
            Ok(Some(Ok(frame))) => drained += frame.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
    Read::TooLarge
}

#[cfg(test)]
#[path = "fairness_tests.rs"]
mod tests;
