//! Simulated ministry private networks (审批专网) on loopback: each with its own case store,
//! statuses that advance over time and fault switches, speaking the wire protocols in
//! `PROTOCOLS.md` (rendered below as [`protocols`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use yiwang_simulator::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::json_rest("market-regulation"), "127.0.0.1:0".parse()?).await?;
//! sim.faults().update(|f| f.fail_next = 2);
//! println!("{}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Over mutual TLS (certificates from `yiwang-pki`): the network then serves TLS 1.2/1.3
//! only and requires a client certificate from the given CA.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use yiwang_simulator::{SimConfig, Simulator};
//! let pki = yiwang_pki::Pki::generate(std::path::Path::new("pki"), &["tax"])?;
//! let tax = pki.network("tax").expect("generated");
//! let cfg = SimConfig::signed_api("tax").with_tls(
//!     tax.server.cert_pem.clone(),
//!     tax.server.key_pem.clone(),
//!     tax.ca.cert_pem(),
//! );
//! let sim = Simulator::start(cfg, "127.0.0.1:0".parse()?).await?;
//! assert!(sim.base_url().starts_with("https://"));
//! // … the gateway connects with gateway-to-tax.crt, server name tax.zwfw.internal …
//! assert_eq!(sim.tls_clients(), ["yiwang-gateway"]);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod callback;
mod control;
mod error;
mod faults;
mod json_rest;
mod lookup;
mod network;
mod reply;
mod server;
mod signed_api;
mod soap;
mod store;
mod time;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use callback::{PushStats, sign as push_signature};
pub use error::{Error, Result};
pub use faults::{FaultPatch, FaultSettings, Faults};
pub use network::Network;
pub use server::{ConnectionEnd, serve_connection};
pub use store::{Arrival, SimCase, StatusEntry};
pub use tls::{PushTls, ServerTls, TlsStats};

/// The wire contract: PROTOCOLS.md, the document adapters are written against.
#[doc = include_str!("../PROTOCOLS.md")]
pub mod protocols {}

/// The kind of wire protocol a simulated network speaks (DOMAIN.md "archetypes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Archetype {
    /// Archetype 1: JSON REST behind a login token (市场监管 style).
    JsonRest,
    /// Archetype 2: SOAP 1.1 WebService in GB18030 (住建 style).
    Soap,
    /// Archetype 3: signed open-API gateway, HMAC-SHA256 request signatures (税务 style).
    SignedApi,
    /// Archetype 5: callbacks, status changes pushed signed to the gateway (公安 style).
    Callback,
    /// Archetype 6: lookup-only SOAP 1.1 filing service behind WS-Security UsernameToken
    /// (省级备案 style): no change feed, no callbacks.
    LookupOnly,
}

impl Archetype {
    /// Every archetype built so far.
    pub const ALL: &'static [Archetype] = &[
        Archetype::JsonRest,
        Archetype::Soap,
        Archetype::SignedApi,
        Archetype::Callback,
        Archetype::LookupOnly,
    ];

    /// The name used on the command line and in logs: `json-rest`, `soap`, `signed-api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Archetype::JsonRest => "json-rest",
            Archetype::Soap => "soap",
            Archetype::SignedApi => "signed-api",
            Archetype::Callback => "callback",
            Archetype::LookupOnly => "lookup-only",
        }
    }
}

impl fmt::Display for Archetype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Archetype {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "json-rest" | "jsonrest" | "json" => Ok(Archetype::JsonRest),
            "soap" => Ok(Archetype::Soap),
            "signed-api" | "signedapi" | "signed" => Ok(Archetype::SignedApi),
            "callback" | "callbacks" | "push" => Ok(Archetype::Callback),
            "lookup-only" | "lookup" => Ok(Archetype::LookupOnly),
            _ => Err(Error::UnknownArchetype(s.to_owned())),
        }
    }
}

/// Configuration of one simulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub archetype: Archetype,
    /// Network name, e.g. `market-regulation`; used in logs and `/_sim/info`.
    pub name: String,
    /// Time between automatic status advances; `Duration::ZERO` = never advance by itself.
    pub stage_interval: Duration,
    /// Login of archetype 1 (`username`, `password`); archetype 6's UsernameToken.
    pub credentials: (String, String),
    /// Lifetime of an archetype-1 token.
    pub token_ttl: Duration,
    /// Prefix of the ministry case numbers this network issues, e.g. `SCJG`.
    pub case_prefix: String,
    /// Archetype 3's application key (`X-App-Key`).
    pub app_key: String,
    /// Archetype 3's application secret: the HMAC-SHA256 key of `X-Sign`.
    pub app_secret: String,
    /// Archetype 5's static API key (`X-Api-Key`).
    pub api_key: String,
    /// Archetype 5: where status changes are pushed; `None` queues them until one is set
    /// (`Simulator::set_callback_url`, `POST /_sim/pushes`). `http://`, or `https://` with
    /// [`SimConfig::push_tls`].
    pub callback_url: Option<String>,
    /// Archetype 5's push signing secret: the HMAC-SHA256 key of `X-Push-Signature`.
    pub push_secret: String,
    /// Archetype 5: wait before the first retry of an unacknowledged push; doubles per
    /// failure up to `push_retry_max`.
    pub push_retry_initial: Duration,
    /// Archetype 5: the longest wait between two attempts of one push.
    pub push_retry_max: Duration,
    /// Archetype 6: also accept a UsernameToken with PasswordText (meant for mutual TLS,
    /// where the channel protects it); PasswordDigest is always accepted.
    pub password_text: bool,
    /// Serve mutual TLS instead of plain HTTP ([`SimConfig::with_tls`]).
    pub tls: Option<ServerTls>,
    /// Archetype 5: the push client's TLS identity for `https://` callback URLs
    /// ([`SimConfig::with_push_tls`]).
    pub push_tls: Option<PushTls>,
}

/// Archetype 3's default application key.
pub const DEFAULT_APP_KEY: &str = "yiwang-app";
/// Archetype 3's default application secret (a demo value, never a real one).
pub const DEFAULT_APP_SECRET: &str = "sw-demo-secret-7f3a9c1e5b2d";
/// Archetype 5's default API key.
pub const DEFAULT_API_KEY: &str = "ga-demo-api-key-4d8e";
/// Archetype 5's default push signing secret (a demo value, never a real one).
pub const DEFAULT_PUSH_SECRET: &str = "ga-demo-push-secret-91c7";

impl SimConfig {
    /// Defaults for `archetype`: stage interval 2 s, login `yiwang` / `s3cret-pass`, token
    /// lifetime 30 min, case prefix `SCJG` (JSON REST), `ZJ` (SOAP) or `SW` (signed open API),
    /// app key [`DEFAULT_APP_KEY`] with secret [`DEFAULT_APP_SECRET`].
    pub fn new(archetype: Archetype, name: impl Into<String>) -> Self {
        let case_prefix = match archetype {
            Archetype::JsonRest => "SCJG",
            Archetype::Soap => "ZJ",
            Archetype::SignedApi => "SW",
            Archetype::Callback => "GA",
            Archetype::LookupOnly => "BA",
        };
        Self {
            archetype,
            name: name.into(),
            stage_interval: Duration::from_secs(2),
            credentials: ("yiwang".to_owned(), "s3cret-pass".to_owned()),
            token_ttl: Duration::from_secs(30 * 60),
            case_prefix: case_prefix.to_owned(),
            app_key: DEFAULT_APP_KEY.to_owned(),
            app_secret: DEFAULT_APP_SECRET.to_owned(),
            api_key: DEFAULT_API_KEY.to_owned(),
            callback_url: None,
            push_secret: DEFAULT_PUSH_SECRET.to_owned(),
            push_retry_initial: Duration::from_millis(500),
            push_retry_max: Duration::from_secs(30),
            password_text: false,
            tls: None,
            push_tls: None,
        }
    }

    /// An archetype-1 (JSON REST) network with the defaults of [`SimConfig::new`].
    pub fn json_rest(name: impl Into<String>) -> Self {
        Self::new(Archetype::JsonRest, name)
    }

    /// An archetype-2 (SOAP) network with the defaults of [`SimConfig::new`].
    pub fn soap(name: impl Into<String>) -> Self {
        Self::new(Archetype::Soap, name)
    }

    /// An archetype-5 (callback) network with the defaults of [`SimConfig::new`]: API key
    /// [`DEFAULT_API_KEY`], push secret [`DEFAULT_PUSH_SECRET`], no callback URL yet, retries
    /// after 0.5 s doubling up to 30 s.
    pub fn callback(name: impl Into<String>) -> Self {
        Self::new(Archetype::Callback, name)
    }

    /// An archetype-6 (lookup-only filing) network with the defaults of [`SimConfig::new`]:
    /// UsernameToken `yiwang` / `s3cret-pass`, PasswordDigest only.
    pub fn lookup_only(name: impl Into<String>) -> Self {
        Self::new(Archetype::LookupOnly, name)
    }

    /// Archetype 6: accept PasswordText as well as PasswordDigest.
    pub fn with_password_text(mut self, allow: bool) -> Self {
        self.password_text = allow;
        self
    }

    /// An archetype-3 (signed open-API) network with the defaults of [`SimConfig::new`].
    pub fn signed_api(name: impl Into<String>) -> Self {
        Self::new(Archetype::SignedApi, name)
    }

    pub fn with_stage_interval(mut self, interval: Duration) -> Self {
        self.stage_interval = interval;
        self
    }

    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    pub fn with_case_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.case_prefix = prefix.into();
        self
    }

    /// Archetype 3's application key and secret.
    pub fn with_app_credentials(
        mut self,
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        self.app_key = app_key.into();
        self.app_secret = app_secret.into();
        self
    }

    /// Archetype 5's API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Archetype 5: push status changes to `url` (`http://host:port/path`).
    pub fn with_callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }

    /// Archetype 5's push signing secret.
    pub fn with_push_secret(mut self, secret: impl Into<String>) -> Self {
        self.push_secret = secret.into();
        self
    }

    /// Archetype 5's retry backoff: `initial`, doubling per failed attempt, at most `max`.
    pub fn with_push_retry(mut self, initial: Duration, max: Duration) -> Self {
        self.push_retry_initial = initial;
        self.push_retry_max = max;
        self
    }

    /// Serve mutual TLS (1.2 and 1.3 only) with this server certificate and key (PEM), and
    /// require every client to present a certificate issued by `client_ca_pem` (the
    /// gateway's client certificate for this network): a connection without one fails its
    /// handshake. The control API `/_sim/*` is behind the same TLS.
    pub fn with_tls(
        mut self,
        server_cert_pem: impl Into<String>,
        server_key_pem: impl Into<String>,
        client_ca_pem: impl Into<String>,
    ) -> Self {
        self.tls = Some(ServerTls {
            cert_pem: server_cert_pem.into(),
            key_pem: server_key_pem.into(),
            client_ca_pem: client_ca_pem.into(),
        });
        self
    }

    /// Archetype 5: push to `https://` callback URLs over mutual TLS, trusting receivers
    /// whose certificate comes from `ca_pem` (the gateway's CA) and presenting this client
    /// certificate and key (PEM). A failed handshake is a failed push, retried like any.
    pub fn with_push_tls(
        mut self,
        ca_pem: impl Into<String>,
        client_cert_pem: impl Into<String>,
        client_key_pem: impl Into<String>,
    ) -> Self {
        self.push_tls = Some(PushTls {
            ca_pem: ca_pem.into(),
            cert_pem: client_cert_pem.into(),
            key_pem: client_key_pem.into(),
        });
        self
    }
}

/// A running simulated network. Dropping it stops it too; [`Simulator::shutdown`] also waits.
#[derive(Debug)]
pub struct Simulator {
    net: Arc<Network>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    /// Bind `addr` (use `127.0.0.1:0` in tests) and start serving.
    pub async fn start(cfg: SimConfig, addr: SocketAddr) -> anyhow::Result<Simulator> {
        if let Some(url) = &cfg.callback_url {
            callback::check_callback_url(&cfg, url)?;
        }
        let tls = match &cfg.tls {
            Some(settings) => Some(tls::TlsServer::new(&cfg.name, settings)?),
            None => None,
        };
        let push_tls = match &cfg.push_tls {
            Some(settings) => Some(Arc::new(tls::push_client_config(&cfg.name, settings)?)),
            None => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                network: cfg.name.clone(),
                addr,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            network: cfg.name.clone(),
            addr,
            source,
        })?;
        let (shutdown, watcher) = watch::channel(false);
        let clock = !cfg.stage_interval.is_zero();
        let net = Arc::new(Network::new(cfg, local, watcher.clone(), tls, push_tls));
        let mut tasks = vec![tokio::spawn(server::accept_loop(
            listener,
            Arc::clone(&net),
            watcher,
        ))];
        if clock {
            tasks.push(tokio::spawn(Arc::clone(&net).run_status_clock()));
        }
        if net.pushes.is_some() {
            tasks.push(tokio::spawn(callback::run_pushes(Arc::clone(&net))));
        }
        tracing::info!(
            network = %net.cfg.name,
            archetype = %net.cfg.archetype,
            url = %net.base_url(),
            "simulated network listening"
        );
        Ok(Simulator {
            net,
            shutdown,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.net.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` for a TLS network (whose
    /// certificate may name another host: connect with a server-name override).
    pub fn base_url(&self) -> String {
        self.net.base_url()
    }

    pub fn config(&self) -> &SimConfig {
        &self.net.cfg
    }

    /// Snapshot of the case store, in arrival order.
    pub fn cases(&self) -> Vec<SimCase> {
        self.net.cases()
    }

    /// How many cases are stored (cheap, unlike [`Simulator::cases`]).
    pub fn case_count(&self) -> usize {
        self.net.read(|s| s.count())
    }

    /// Every case stored from now on, as it is stored.
    pub fn arrivals(&self) -> tokio::sync::broadcast::Receiver<Arrival> {
        self.net.read(|s| s.arrivals())
    }

    /// One case by ministry case number.
    pub fn case(&self, ministry_case_number: &str) -> Option<SimCase> {
        self.net
            .read(|s| s.case_by_number(ministry_case_number).cloned())
    }

    /// The fault switches (the same ones `POST /_sim/faults` sets).
    pub fn faults(&self) -> &Faults {
        &self.net.faults
    }

    /// Move a case one step along its path; the new status, or `None` for an unknown case
    /// or a terminal status.
    pub fn advance(&self, ministry_case_number: &str) -> Option<String> {
        self.net.advance(ministry_case_number)
    }

    /// Force a status (any code of the archetype's table), as `POST /_sim/cases/{n}/status`.
    pub fn set_status(
        &self,
        ministry_case_number: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let network = self.net.cfg.name.clone();
        self.net.write(|s| {
            let idx =
                s.index_of_number(ministry_case_number)
                    .ok_or_else(|| Error::UnknownCase {
                        network: network.clone(),
                        case: ministry_case_number.to_owned(),
                    })?;
            if s.set_status(idx, status, reason.map(str::to_owned), Instant::now()) {
                Ok(())
            } else {
                Err(Error::UnknownStatus {
                    network,
                    code: status.to_owned(),
                })
            }
        })
    }

    /// Archetype 5: what the pushes did so far (`None` for a network that does not push).
    pub fn push_stats(&self) -> Option<PushStats> {
        self.net.pushes.as_ref().map(|p| p.stats())
    }

    /// Archetype 5: push to `url` from now on (`None`: queue pushes until a URL is set).
    /// A retry that was waiting goes out at once.
    pub fn set_callback_url(&self, url: Option<&str>) -> Result<()> {
        let pushes = self.net.pushes.as_ref().ok_or_else(|| Error::NoPushes {
            network: self.net.cfg.name.clone(),
        })?;
        if let Some(url) = url {
            callback::check_callback_url(&self.net.cfg, url)?;
        }
        pushes.set_url(url.map(str::to_owned));
        Ok(())
    }

    /// A TLS network's handshakes so far (`None` for a plain-HTTP network).
    pub fn tls_stats(&self) -> Option<TlsStats> {
        self.net.tls.as_ref().map(tls::TlsServer::stats)
    }

    /// Common names of the client certificates that completed a handshake, distinct, in
    /// the order first seen (empty for a plain-HTTP network).
    pub fn tls_clients(&self) -> Vec<String> {
        self.tls_stats().map(|s| s.clients).unwrap_or_default()
    }

    /// Handshakes that failed: no client certificate, one from another CA, or the client
    /// refusing ours (0 for a plain-HTTP network).
    pub fn tls_refusals(&self) -> u64 {
        self.tls_stats().map_or(0, |s| s.refusals)
    }

    /// Present this server certificate and key (PEM) from the next handshake on; open
    /// connections keep the old one. For tests where a ministry presents a wrong or expired
    /// certificate, then a good one again. The client CA stays the same.
    pub fn set_server_cert(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let tls = self.net.tls.as_ref().ok_or_else(|| Error::NoTls {
            network: self.net.cfg.name.clone(),
        })?;
        tls.set_server_cert(&self.net.cfg.name, cert_pem, key_pem)?;
        tracing::info!(network = %self.net.cfg.name, "server certificate replaced");
        Ok(())
    }

    /// Clear faults and the store, as `POST /_sim/reset`.
    pub fn reset(&self) {
        self.net.reset();
    }

    /// The shared state, for serving extra transports with [`serve_connection`].
    pub fn network(&self) -> Arc<Network> {
        Arc::clone(&self.net)
    }

    /// Stop accepting, drop open connections (held ones included) and wait for the tasks.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        tracing::info!(network = %self.net.cfg.name, "simulated network stopped");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Lock a mutex, taking over a poisoned one: the state stays usable for the next request.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// PROTOCOLS.md is the contract: its tables must say what the code does.
#[cfg(test)]
mod contract_tests {
    use crate::{callback, json_rest, signed_api, soap};

    const DOC: &str = include_str!("../PROTOCOLS.md");

    #[test]
    fn every_status_is_documented_with_its_successor() {
        for model in [
            &json_rest::STATUSES,
            &soap::STATUSES,
            &signed_api::STATUSES,
            &callback::STATUSES,
        ] {
            for (code, name) in model.codes {
                let next = model.next(code).unwrap_or("—");
                let row = format!("| {code} | {name} | {next} |");
                assert!(DOC.contains(&row), "PROTOCOLS.md lacks the row {row}");
            }
        }
    }

    #[test]
    fn required_fields_are_documented_in_checking_order() {
        for required in [
            json_rest::REQUIRED,
            soap::REQUIRED,
            signed_api::REQUIRED,
            callback::REQUIRED,
        ] {
            let mut last = 0;
            for field in required {
                let row = format!("| `{field}` | required |");
                let at = DOC[last..].find(&row).map(|i| i + last);
                assert!(at.is_some(), "PROTOCOLS.md lacks {row} after byte {last}");
                last = at.unwrap_or(last);
            }
        }
    }

    #[test]
    fn code_sets_are_documented() {
        let sets: [&[&str]; 4] = [
            json_rest::ID_TYPES,
            json_rest::APPLICANT_KINDS,
            soap::ID_TYPES,
            soap::APPLICANT_KINDS,
        ];
        for code in sets.into_iter().flatten() {
            assert!(DOC.contains(&format!("`{code}`")), "{code} undocumented");
        }
    }

    #[test]
    fn signed_api_codes_headers_and_errors_are_documented() {
        let sets: [&[&str]; 3] = [
            signed_api::TAXPAYER_KINDS,
            signed_api::ID_TYPES,
            &signed_api::SIGN_HEADERS,
        ];
        for code in sets.into_iter().flatten() {
            assert!(DOC.contains(&format!("`{code}`")), "{code} undocumented");
        }
        for code in [
            "GW1001", "GW1002", "GW1003", "GW1004", "GW1005", "SW0000", "SW2001", "SW2002",
            "SW2003", "SW2004", "SW3001",
        ] {
            assert!(DOC.contains(&format!("| {code} |")), "{code} has no row");
        }
        for path in [
            signed_api::SUBMIT_PATH,
            signed_api::STATUS_PATH,
            signed_api::CHANGES_PATH,
        ] {
            assert!(DOC.contains(path), "{path} undocumented");
        }
    }

    /// The fenced block right after `<!-- example: NAME -->`.
    fn example(name: &str) -> &'static str {
        let marker = format!("<!-- example: {name} -->");
        let at = DOC.find(&marker).map_or(DOC.len(), |i| i + marker.len());
        let after = &DOC[at..];
        let body = after.find("```").map_or("", |i| &after[i..]);
        let start = body.find('\n').map_or(body.len(), |i| i + 1);
        let end = body[start..].find("```").map_or(start, |i| i + start);
        &body[start..end]
    }

    #[test]
    fn documented_canonical_string_and_signature_match_the_code() {
        let canonical = signed_api::canonical_string(
            "GET",
            signed_api::CHANGES_PATH,
            Some("limit=50&cursor=17"),
            crate::DEFAULT_APP_KEY,
            "1795224600000",
            "5b1f0c2a9e8d4f7a6c3b2e1d0f9a8b7c",
            b"",
        );
        assert_eq!(example("signed-canonical").trim_end(), canonical);
        let sign = signed_api::sign(crate::DEFAULT_APP_SECRET.as_bytes(), &canonical);
        assert!(
            DOC.contains(&format!("`X-Sign: {sign}`")),
            "PROTOCOLS.md should show the example's signature {sign}"
        );
    }

    #[test]
    fn callback_codes_errors_paths_and_headers_are_documented() {
        let sets: [&[&str]; 2] = [callback::SEAL_TYPES, callback::AGENT_ID_TYPES];
        for code in sets.into_iter().flatten() {
            assert!(DOC.contains(&format!("`{code}`")), "{code} undocumented");
        }
        for code in [
            "A0401", "B0001", "B0002", "B0003", "B0004", "C0404", "C0409",
        ] {
            assert!(DOC.contains(&format!("| {code} |")), "{code} has no row");
        }
        for text in [
            callback::FILINGS,
            callback::PUSH_ID_HEADER,
            callback::PUSH_TIMESTAMP_HEADER,
            callback::PUSH_SIGNATURE_HEADER,
            "X-Api-Key",
        ] {
            assert!(DOC.contains(text), "{text} undocumented");
        }
    }

    #[test]
    fn documented_push_signature_matches_the_code() {
        let body = example("callback-push").trim_end();
        let sign = callback::sign(crate::DEFAULT_PUSH_SECRET, "1795224604123", body.as_bytes());
        assert!(
            DOC.contains(&format!("`X-Push-Signature: {sign}`")),
            "PROTOCOLS.md should show the example push's signature {sign}"
        );
    }
}
