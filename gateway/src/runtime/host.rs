//! The host interface an adapter sees — and nothing more. Each call gets a
//! fresh [`HostState`]: WASI with no capabilities, this network's endpoints,
//! configuration and secrets, and a trace of what the call did.

use super::bindings::yiwang::adapter::{clock, config, http, kv, log, types};
use super::error::Violation;
use super::kv::{KvStore, MemoryKv};
use super::limits::{LimitHit, Limits, MemoryLimiter};
use super::random::{RandomSource, SystemRandom};
use super::slots::NetworkSlots;
use crate::transport::{OutboundRequest, Transport, TransportError};
use bytes::Bytes;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use yiwang_schema::Sha256Digest;

/// Everything that scopes an adapter to its own network.
#[derive(Clone)]
pub struct NetworkSandbox {
    /// The network's name (`market-regulation`).
    pub network: String,
    /// Allowed origins (`https://host:port`); the first is the primary one
    /// that relative URLs resolve against.
    pub endpoints: Vec<::http::Uri>,
    /// Values the adapter may read.
    pub config: BTreeMap<String, String>,
    /// Keys of `config` whose values are sensitive (they came from the
    /// environment or a file): redacted wherever the gateway shows adapter
    /// output (see `redact.rs`).
    pub sensitive: BTreeSet<String>,
    /// Values the adapter may use but never read.
    pub secrets: BTreeMap<String, String>,
    pub limits: Limits,
    /// The network's reserved instance slots, shared by all its versions.
    pub slots: NetworkSlots,
}

impl std::fmt::Debug for NetworkSandbox {
    // Secrets are named, never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSandbox")
            .field("network", &self.network)
            .field("endpoints", &self.endpoints)
            .field("config", &self.redacted_config())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .field("slots", &self.slots.reserved())
            .finish()
    }
}

impl NetworkSandbox {
    /// A sandbox with default limits and slots, and no config or secrets.
    pub fn new(network: impl Into<String>, endpoints: Vec<::http::Uri>) -> Self {
        NetworkSandbox {
            network: network.into(),
            endpoints,
            config: BTreeMap::new(),
            sensitive: BTreeSet::new(),
            secrets: BTreeMap::new(),
            limits: Limits::default(),
            slots: NetworkSlots::default(),
        }
    }

    /// Resolve the adapter's URL and check it stays inside the network.
    fn resolve(&self, url: &str) -> Result<::http::Uri, ResolveError> {
        let uri: ::http::Uri = url
            .parse()
            .map_err(|e| ResolveError::Invalid(format!("{url:?}: {e}")))?;
        if uri.scheme().is_none() {
            let primary = self
                .endpoints
                .first()
                .ok_or_else(|| ResolveError::Forbidden(url.to_string()))?;
            if !url.starts_with('/') {
                return Err(ResolveError::Invalid(format!(
                    "{url:?}: a relative URL must start with '/'"
                )));
            }
            let base = primary.to_string();
            let joined = format!("{}{}", base.trim_end_matches('/'), url);
            return joined
                .parse()
                .map_err(|e| ResolveError::Invalid(format!("{joined:?}: {e}")));
        }
        let allowed = self.endpoints.iter().any(|e| {
            e.scheme() == uri.scheme()
                && e.authority().map(|a| a.as_str().to_ascii_lowercase())
                    == uri.authority().map(|a| a.as_str().to_ascii_lowercase())
        });
        if allowed {
            Ok(uri)
        } else {
            Err(ResolveError::Forbidden(url.to_string()))
        }
    }
}

enum ResolveError {
    Invalid(String),
    Forbidden(String),
}

/// Milliseconds since the Unix epoch, replaceable so fixture tests are repeatable.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_millis(&self) -> i64 {
        self.0
    }
}

/// What the host gives every call of a network's adapter.
#[derive(Clone)]
pub struct Services {
    pub transport: Arc<dyn Transport>,
    pub kv: Arc<dyn KvStore>,
    pub clock: Arc<dyn Clock>,
    /// Keep each exchange's bodies in its [`Exchange`] (for an audit trail
    /// configured to keep them, encrypted); otherwise only their digests.
    pub keep_bodies: bool,
    /// Where `random-bytes` comes from (seeded in fixture tests).
    pub random: Arc<dyn RandomSource>,
}

impl Services {
    /// Real HTTP, an in-memory store, the system clock and generator.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Services {
            transport,
            kv: Arc::new(MemoryKv::default()),
            clock: Arc::new(SystemClock),
            keep_bodies: false,
            random: Arc::new(SystemRandom),
        }
    }
}

/// One request an adapter sent and what came back, as the audit trail and
/// the fixture harness see it. Bodies are hashed as the adapter wrote them
/// (before secrets were filled in), so a record never carries a secret.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub request_bytes: usize,
    pub request_sha256: String,
    /// HTTP status, or none when the exchange failed.
    pub status: Option<u16>,
    pub response_bytes: usize,
    pub response_sha256: Option<String>,
    /// The transport error or sandbox refusal, if any.
    pub error: Option<String>,
    pub elapsed_ms: u64,
    /// The request body as the adapter wrote it (secrets not filled in)
    /// and the reply body, when [`Services::keep_bodies`] asks for them.
    #[serde(skip)]
    pub bodies: Option<(Bytes, Bytes)>,
}

/// What one call did besides its result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallTrace {
    pub exchanges: Vec<Exchange>,
    /// Whether any request may have reached the ministry.
    pub sent: bool,
    pub violations: Vec<Violation>,
    pub log_lines: u32,
    pub dropped_log_lines: u32,
    /// kv sets and deletes made (capped by `max-kv-writes-per-call`).
    pub kv_writes: u32,
    /// The TLS peer refusal, if a send failed on one (nothing was sent).
    pub peer_rejected: Option<String>,
    /// The last line the adapter logged at error level (the SDK's panic
    /// hook logs a panic's message there): a trap's reason quotes it.
    pub last_error: Option<String>,
    /// Problems the adapter reported (`problems.report`); joined with its
    /// rejection when the call ends (see `problems::settle`).
    pub problems: super::problems::Reported,
}

/// The store data of one call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    sandbox: Arc<NetworkSandbox>,
    services: Services,
    pub(crate) trace: CallTrace,
    pub(crate) case_number: Option<String>,
}

impl HostState {
    pub(crate) fn new(
        sandbox: Arc<NetworkSandbox>,
        services: Services,
        case_number: Option<String>,
    ) -> Self {
        // Deny by default: no preopened directories, no environment, no
        // arguments, no sockets, no name lookups, stdio discarded.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                memory_bytes: sandbox.limits.memory_bytes,
                table_elements: 100_000,
                hit: None,
            },
            sandbox,
            services,
            trace: CallTrace::default(),
            case_number,
        }
    }

    /// This call's network: endpoints, configuration, secrets, limits.
    pub(super) fn sandbox(&self) -> &NetworkSandbox {
        &self.sandbox
    }

    pub(super) fn services(&self) -> &Services {
        &self.services
    }

    fn violate(&mut self, v: Violation) {
        tracing::warn!(network = %self.sandbox.network, case = ?self.case_number, violation = %v, "adapter sandbox violation");
        self.trace.violations.push(v);
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why a secret could not be used. The adapter sees this message (in
/// `send-error::invalid-request`, or as the `hmac-sha256` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("unterminated ${{secret:...}} placeholder")]
    Unterminated,
    #[error("no secret named `{name}` for this network")]
    Unknown { name: String },
}

/// Replace `${secret:NAME}` with the secret's value. Unknown names fail the
/// request rather than sending the placeholder to the ministry.
fn fill_secrets(input: &str, secrets: &BTreeMap<String, String>) -> Result<String, SecretError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${secret:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 9..];
        let end = after.find('}').ok_or(SecretError::Unterminated)?;
        let name = &after[..end];
        let value = secrets.get(name).ok_or_else(|| SecretError::Unknown {
            name: name.to_string(),
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(
        &mut self,
        request: types::HttpRequest,
    ) -> wasmtime::Result<Result<types::HttpResponse, http::SendError>> {
        Ok(self.send_recorded(request, false).await)
    }

    async fn send_with_secrets(
        &mut self,
        request: types::HttpRequest,
    ) -> wasmtime::Result<Result<types::HttpResponse, http::SendError>> {
        Ok(self.send_recorded(request, true).await)
    }
}

impl HostState {
    /// Send through the transport, recording the exchange for the audit trail.
    async fn send_recorded(
        &mut self,
        request: types::HttpRequest,
        fill: bool,
    ) -> Result<types::HttpResponse, http::SendError> {
        let limits = self.sandbox.limits.clone();
        let started = Instant::now();
        let mut exchange = Exchange {
            method: request.method.clone(),
            url: self.sandbox.redact(&request.url).into_owned(),
            request_bytes: request.body.len(),
            request_sha256: Sha256Digest::of(&request.body).to_string(),
            status: None,
            response_bytes: 0,
            response_sha256: None,
            error: None,
            elapsed_ms: 0,
            bodies: None,
        };
        let kept_request = self
            .services
            .keep_bodies
            .then(|| Bytes::from(request.body.clone()));
        let result = self.send_checked(request, &limits, fill).await;
        exchange.elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(resp) => {
                exchange.status = Some(resp.status);
                exchange.response_bytes = resp.body.len();
                exchange.response_sha256 = Some(Sha256Digest::of(&resp.body).to_string());
                if let Some(req) = kept_request {
                    exchange.bodies = Some((req, Bytes::from(resp.body.clone())));
                }
            }
            Err(e) => {
                exchange.error = Some(format!("{e:?}"));
                exchange.bodies = kept_request.map(|req| (req, Bytes::new()));
            }
        }
        tracing::debug!(network = %self.sandbox.network, method = %exchange.method, url = %exchange.url,
            status = ?exchange.status, elapsed_ms = exchange.elapsed_ms, "adapter exchange");
        self.trace.exchanges.push(exchange);
        result
    }

    async fn send_checked(
        &mut self,
        request: types::HttpRequest,
        limits: &Limits,
        fill: bool,
    ) -> Result<types::HttpResponse, http::SendError> {
        use http::SendError as E;
        if self.trace.exchanges.len() as u32 >= limits.max_requests_per_call {
            self.violate(Violation::TooManyRequests {
                limit: limits.max_requests_per_call,
            });
            return Err(E::InvalidRequest(format!(
                "more than {} requests in one call",
                limits.max_requests_per_call
            )));
        }
        let uri = match self.sandbox.resolve(&request.url) {
            Ok(uri) => uri,
            Err(ResolveError::Invalid(m)) => return Err(E::InvalidRequest(m)),
            Err(ResolveError::Forbidden(url)) => {
                let url = self.sandbox.redact(&url).into_owned();
                self.violate(Violation::ForbiddenDestination {
                    network: self.sandbox.network.clone(),
                    url: url.clone(),
                });
                return Err(E::ForbiddenDestination(url));
            }
        };
        if request.body.len() > limits.max_request_bytes {
            return Err(E::RequestTooLarge(limits.max_request_bytes as u64));
        }
        let method = ::http::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| E::InvalidRequest(format!("bad method {:?}", request.method)))?;
        let secrets = &self.sandbox.secrets;
        let mut headers = Vec::with_capacity(request.headers.len());
        for h in &request.headers {
            if h.name.eq_ignore_ascii_case("host") || h.name.eq_ignore_ascii_case("content-length")
            {
                continue; // the transport owns these
            }
            let value = if fill {
                fill_secrets(&h.value, secrets).map_err(|e| E::InvalidRequest(e.to_string()))?
            } else {
                h.value.clone()
            };
            ::http::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| E::InvalidRequest(format!("bad header name {:?}", h.name)))?;
            ::http::HeaderValue::from_str(&value)
                .map_err(|_| E::InvalidRequest(format!("bad value for header {:?}", h.name)))?;
            headers.push((h.name.clone(), value));
        }
        let body = match std::str::from_utf8(&request.body) {
            Ok(text) if fill && text.contains("${secret:") => Bytes::from(
                fill_secrets(text, secrets).map_err(|e| E::InvalidRequest(e.to_string()))?,
            ),
            _ => Bytes::from(request.body),
        };
        let outbound = OutboundRequest {
            network: self.sandbox.network.clone(),
            method,
            uri,
            headers,
            body,
            timeout: limits.send_timeout,
            max_response_bytes: limits.max_response_bytes,
        };
        // Until the transport says otherwise, assume the request may reach
        // the ministry: if the call is cut off while waiting (wall-clock
        // limit), the outcome must count as ambiguous, never as unsent.
        let sent_before = self.trace.sent;
        self.trace.sent = true;
        let result = self.services.transport.send(outbound).await;
        match result {
            Ok(resp) => Ok(types::HttpResponse {
                status: resp.status,
                headers: resp
                    .headers
                    .into_iter()
                    .map(|(name, value)| types::Header { name, value })
                    .collect(),
                body: resp.body.to_vec(),
            }),
            Err(TransportError::NotSent(m)) => {
                self.trace.sent = sent_before;
                Err(E::NotSent(m))
            }
            Err(TransportError::PeerRejected(m)) => {
                self.trace.sent = sent_before;
                self.trace.peer_rejected = Some(m.clone());
                Err(E::NotSent(m))
            }
            Err(TransportError::NoReply(m)) => Err(E::NoReply(m)),
            Err(TransportError::ResponseTooLarge(n)) => Err(E::ResponseTooLarge(n)),
        }
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.trace.log_lines >= self.sandbox.limits.max_log_lines {
            self.trace.dropped_log_lines += 1;
            return Ok(());
        }
        self.trace.log_lines += 1;
        let mut message = self.sandbox.redact(&message).into_owned();
        if message.len() > 4096 {
            let mut cut = 4096;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let network = &self.sandbox.network;
        let case = self.case_number.as_deref().unwrap_or("-");
        match level {
            log::Level::Trace => tracing::trace!(target: "adapter", network, case, "{message}"),
            log::Level::Debug => tracing::debug!(target: "adapter", network, case, "{message}"),
            log::Level::Info => tracing::info!(target: "adapter", network, case, "{message}"),
            log::Level::Warn => tracing::warn!(target: "adapter", network, case, "{message}"),
            log::Level::Error => {
                tracing::error!(target: "adapter", network, case, "{message}");
                self.trace.last_error = Some(message);
            }
        }
        Ok(())
    }
}

impl clock::Host for HostState {
    fn now_millis(&mut self) -> wasmtime::Result<i64> {
        Ok(self.services.clock.now_millis())
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.services.kv.get(&self.sandbox.network, &key))
    }
    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.count_kv_write()?;
        Ok(self
            .services
            .kv
            .set(&self.sandbox.network, &key, &value)
            .map_err(|e| e.to_string()))
    }
    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.count_kv_write()?;
        self.services.kv.delete(&self.sandbox.network, &key);
        Ok(())
    }
}

impl HostState {
    /// One more kv write; past `max-kv-writes-per-call` the call stops with
    /// that limit (each write is a durable transaction in the store every
    /// network and the intake share).
    fn count_kv_write(&mut self) -> wasmtime::Result<()> {
        self.trace.kv_writes = self.trace.kv_writes.saturating_add(1);
        let limit = self.sandbox.limits.max_kv_writes_per_call;
        if self.trace.kv_writes > limit {
            let hit = LimitHit::KvWrites { limit };
            self.limiter.hit = Some(hit.clone());
            return Err(hit.into());
        }
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.sandbox.config.get(&key).cloned())
    }
}

/// How long a call may wait in total: the wall limit.
pub(crate) fn wall_limit(sandbox: &NetworkSandbox) -> Duration {
    sandbox.limits.wall_time
}

/// Contract 1.1 `problems`: what the adapter reports is kept for the call's end.
impl super::bindings::yiwang::adapter::problems::Host for HostState {
    fn report(
        &mut self,
        problems: Vec<super::bindings::yiwang::adapter::problems::Problem>,
    ) -> wasmtime::Result<()> {
        super::problems::report(&mut self.trace.problems, problems);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_filled_and_unknown_names_refused() {
        let mut s = BTreeMap::new();
        s.insert("password".to_string(), "p@ss".to_string());
        assert_eq!(
            fill_secrets(r#"{"p":"${secret:password}"}"#, &s).as_deref(),
            Ok(r#"{"p":"p@ss"}"#)
        );
        assert_eq!(
            fill_secrets("${secret:nope}", &s).map_err(|e| e.to_string()),
            Err("no secret named `nope` for this network".to_string())
        );
        assert_eq!(
            fill_secrets("${secret:password", &s),
            Err(SecretError::Unterminated)
        );
        assert_eq!(
            SecretError::Unterminated.to_string(),
            "unterminated ${secret:...} placeholder"
        );
    }

    #[test]
    fn urls_stay_inside_the_network() {
        let sb = NetworkSandbox::new("n", vec!["http://127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(
            sb.resolve("/api/x?y=1")
                .ok()
                .map(|u| u.to_string())
                .as_deref(),
            Some("http://127.0.0.1:8080/api/x?y=1")
        );
        assert!(sb.resolve("http://127.0.0.1:8080/ok").is_ok());
        assert!(matches!(
            sb.resolve("http://127.0.0.1:8081/"),
            Err(ResolveError::Forbidden(_))
        ));
        assert!(matches!(
            sb.resolve("https://127.0.0.1:8080/"),
            Err(ResolveError::Forbidden(_))
        ));
        assert!(matches!(
            sb.resolve("http://169.254.169.254/latest"),
            Err(ResolveError::Forbidden(_))
        ));
        assert!(matches!(sb.resolve("api/x"), Err(ResolveError::Invalid(_))));
    }
}
