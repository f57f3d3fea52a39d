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
#![forbid(unsafe_code)]

mod control;
mod error;
mod faults;
mod json_rest;
mod network;
mod reply;
mod server;
mod soap;
mod store;
mod time;

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

pub use error::{Error, Result};
pub use faults::{FaultPatch, FaultSettings, Faults};
pub use network::Network;
pub use server::{ConnectionEnd, serve_connection};
pub use store::{SimCase, StatusEntry};

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
}

impl Archetype {
    /// Every archetype built so far.
    pub const ALL: &'static [Archetype] = &[Archetype::JsonRest, Archetype::Soap];

    /// The name used on the command line and in logs: `json-rest`, `soap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Archetype::JsonRest => "json-rest",
            Archetype::Soap => "soap",
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
    /// Login of archetype 1 (`username`, `password`).
    pub credentials: (String, String),
    /// Lifetime of an archetype-1 token.
    pub token_ttl: Duration,
    /// Prefix of the ministry case numbers this network issues, e.g. `SCJG`.
    pub case_prefix: String,
}

impl SimConfig {
    /// Defaults for `archetype`: stage interval 2 s, login `yiwang` / `s3cret-pass`, token
    /// lifetime 30 min, case prefix `SCJG` (JSON REST) or `ZJ` (SOAP).
    pub fn new(archetype: Archetype, name: impl Into<String>) -> Self {
        let case_prefix = match archetype {
            Archetype::JsonRest => "SCJG",
            Archetype::Soap => "ZJ",
        };
        Self {
            archetype,
            name: name.into(),
            stage_interval: Duration::from_secs(2),
            credentials: ("yiwang".to_owned(), "s3cret-pass".to_owned()),
            token_ttl: Duration::from_secs(30 * 60),
            case_prefix: case_prefix.to_owned(),
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
        let net = Arc::new(Network::new(cfg, local, watcher.clone()));
        let mut tasks = vec![tokio::spawn(server::accept_loop(
            listener,
            Arc::clone(&net),
            watcher,
        ))];
        if clock {
            tasks.push(tokio::spawn(Arc::clone(&net).run_status_clock()));
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

    /// `http://127.0.0.1:PORT`
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
    use crate::{json_rest, soap};

    const DOC: &str = include_str!("../PROTOCOLS.md");

    #[test]
    fn every_status_is_documented_with_its_successor() {
        for model in [&json_rest::STATUSES, &soap::STATUSES] {
            for (code, name) in model.codes {
                let next = model.next(code).unwrap_or("—");
                let row = format!("| {code} | {name} | {next} |");
                assert!(DOC.contains(&row), "PROTOCOLS.md lacks the row {row}");
            }
        }
    }

    #[test]
    fn required_fields_are_documented_in_checking_order() {
        for required in [json_rest::REQUIRED, soap::REQUIRED] {
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
}
