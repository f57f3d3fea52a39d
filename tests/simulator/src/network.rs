//! The shared state of one simulated network and the contract every archetype implements.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::faults::Faults;
use crate::reply::Reply;
use crate::store::{SimCase, StatusModel, Store};
use crate::tls::TlsServer;
use crate::{Archetype, SimConfig, callback, json_rest, lock, lookup, signed_api, soap};

/// A business request, body already read (faults act only after the whole request is in).
#[derive(Debug)]
pub(crate) struct BusinessRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One wire protocol. A new archetype (signed open-API, callbacks, batch files) is one more
/// implementation; faults, the store, status advance and the control API stay shared.
pub(crate) trait Protocol: Send + Sync + 'static {
    /// The archetype's status codes and path.
    fn statuses(&self) -> &'static StatusModel;
    /// Serve one business request.
    fn handle(&self, net: &Network, req: &BusinessRequest) -> Reply;
    /// The business rejection the `reject_next` fault answers with.
    fn rejection(&self, field: &str) -> Reply;
}

/// Everything one simulated network holds; shared by its connections and background tasks.
pub struct Network {
    pub(crate) cfg: SimConfig,
    pub(crate) addr: SocketAddr,
    pub(crate) protocol: Box<dyn Protocol>,
    store: Mutex<Store>,
    pub(crate) faults: Faults,
    /// Archetype 5's push queue (`None` for archetypes that do not push).
    pub(crate) pushes: Option<callback::Pushes>,
    tokens: Mutex<HashMap<String, Instant>>,
    /// The TLS server side (`None`: plain HTTP).
    pub(crate) tls: Option<TlsServer>,
    /// Archetype 5: the push client's TLS configuration for `https://` callback URLs.
    pub(crate) push_tls: Option<Arc<rustls::ClientConfig>>,
    wake: Notify,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("name", &self.cfg.name)
            .field("archetype", &self.cfg.archetype)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Network {
    pub(crate) fn new(
        cfg: SimConfig,
        addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
        tls: Option<TlsServer>,
        push_tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let protocol: Box<dyn Protocol> = match cfg.archetype {
            Archetype::JsonRest => Box::new(json_rest::JsonRest),
            Archetype::Soap => Box::new(soap::Soap),
            Archetype::SignedApi => Box::<signed_api::SignedApi>::default(),
            Archetype::Callback => Box::new(callback::Callback),
            Archetype::LookupOnly => Box::<lookup::Lookup>::default(),
        };
        let store = Store::new(
            protocol.statuses(),
            cfg.case_prefix.clone(),
            cfg.stage_interval,
        );
        let pushes = (cfg.archetype == Archetype::Callback).then(|| callback::Pushes::new(&cfg));
        Self {
            cfg,
            addr,
            protocol,
            store: Mutex::new(store),
            faults: Faults::default(),
            pushes,
            tokens: Mutex::new(HashMap::new()),
            tls,
            push_tls,
            wake: Notify::new(),
            shutdown,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.cfg.name
    }

    pub(crate) fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Read the store.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
    }

    /// Change the store; wakes the status clock so new deadlines are seen.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let r = f(&mut lock(&self.store));
        self.wake.notify_one();
        self.nudge_pushes();
        r
    }

    pub(crate) fn cases(&self) -> Vec<SimCase> {
        self.read(Store::snapshot)
    }

    pub(crate) fn advance(&self, number: &str) -> Option<String> {
        self.write(|s| {
            let idx = s.index_of_number(number)?;
            s.advance(idx, Instant::now())
        })
    }

    /// Forget cases, changes and faults (issued tokens stay valid, as after a ministry-side
    /// data reset rather than a restart).
    pub(crate) fn reset(&self) {
        self.faults.clear();
        self.write(Store::clear);
        if let Some(pushes) = &self.pushes {
            pushes.clear();
        }
    }

    pub(crate) fn issue_token(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 16]>());
        let expires = Instant::now() + self.cfg.token_ttl;
        let mut tokens = lock(&self.tokens);
        let now = Instant::now();
        tokens.retain(|_, exp| *exp > now);
        tokens.insert(token.clone(), expires);
        token
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        let mut tokens = lock(&self.tokens);
        match tokens.get(token) {
            Some(exp) if *exp > Instant::now() => true,
            Some(_) => {
                tokens.remove(token);
                false
            }
            None => false,
        }
    }

    /// Background task: applies automatic status advances when they fall due.
    pub(crate) async fn run_status_clock(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let wake = self.wake.notified();
            let due = self.write_quiet(Store::next_due);
            tokio::select! {
                _ = shutdown.changed() => break,
                () = wake => {}
                () = sleep_until_or_forever(due) => {
                    let moved = self.write_quiet(|s| s.advance_due(Instant::now()));
                    tracing::trace!(network = %self.cfg.name, moved, "status clock");
                    if moved > 0 {
                        self.nudge_pushes();
                    }
                }
            }
        }
    }

    /// Like `write` but without waking the clock (the clock itself calls it).
    fn write_quiet<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(&self.store))
    }
}

async fn sleep_until_or_forever(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
