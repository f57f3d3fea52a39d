//! From the checked configuration to a delivery service ready to start:
//! the Wasm runtime, the audit trail, the mTLS transport (one client per
//! network and subscriber), every network's adapter loaded in its sandbox,
//! the subscribers, the witnesses and the routes. Nothing runs until
//! [`Delivery::start`].
//!
//! Adapters load side by side, and one that fails (is refused for its
//! signature, does not compile, breaks the contract, or fails `describe`)
//! takes down only its own network: it
//! starts in adapter alert, its queue held, while the others serve. Only a
//! fault of the configuration itself stops the start.

use super::versions::ConfiguredAdapter;
use super::witness::Witness;
use super::{
    Alerts, Delivery, DeliveryOptions, NetworkRuntime, Replica, Routes, Subscriber, Versions,
};
use crate::config::{LoadedConfig, NetworkConfig};
use crate::runtime::{NetworkSandbox, Runtime, Services, SystemClock};
use crate::store::{Destination, Store};
use crate::tls::ClientTlsConfig;
use crate::transport::{GatewayTransport, Transport};
use anyhow::Context;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yiwang_audit::AuditLog;

impl Delivery {
    /// Load every network's adapter and get ready; nothing runs until [`Delivery::start`].
    pub async fn build(
        config: &LoadedConfig,
        store: Arc<dyn Store>,
        options: DeliveryOptions,
    ) -> anyhow::Result<Arc<Delivery>> {
        let cfg = &config.config;
        // `[runtime]` from the file; a test may still override it.
        let mut runtime_config = options.runtime.unwrap_or_else(|| cfg.runtime.clone());
        if runtime_config.cache_dir.is_none() {
            runtime_config.cache_dir = Some(config.data_dir().join("compiled"));
        }
        // Every network's reserved slots fit in the pool (`config check`
        // refuses a smaller `max-instances`).
        runtime_config.max_instances = Some(Runtime::pool_size(
            runtime_config.max_instances,
            cfg.networks.values().map(|n| n.get_ref().reserved_slots()),
        ));
        let runtime = Runtime::new(runtime_config)?;
        let audit_dir = config.audit_dir();
        let audit = AuditLog::open(&audit_dir, &config.audit_config())
            .map_err(|e| anyhow::anyhow!("audit trail {}: {e}", audit_dir.display()))?;
        let (transport, tls_transport) = match options.transport {
            Some(t) => (t, None),
            None => {
                let t = mtls_transport(config)?;
                (t.clone() as Arc<dyn Transport>, Some(t))
            }
        };
        // `config check` read every key file; one gone since stops the start.
        let trust = Arc::new(config.adapter_trust()?);
        if trust.allows_unsigned() {
            tracing::warn!(
                "[adapters] allow-unsigned = true: components without a signature run (development only)"
            );
        }
        let mut networks = BTreeMap::new();
        let mut wake = HashMap::new();
        for (name, net) in &cfg.networks {
            let services = Services {
                transport: transport.clone(),
                kv: store.kv(),
                clock: Arc::new(SystemClock),
                keep_bodies: cfg.audit.keep_bodies,
                random: Arc::new(crate::runtime::SystemRandom),
            };
            let net = network_runtime(config, name, net.get_ref(), services, trust.clone())?;
            networks.insert(name.clone(), Arc::new(net));
            let key = Destination::Network(name.clone()).key();
            wake.insert(key, Arc::new(Notify::new()));
        }
        let subscribers = subscribers(config);
        for name in subscribers.keys() {
            let key = Destination::Subscriber(name.clone()).key();
            wake.insert(key, Arc::new(Notify::new()));
        }
        let delivery = Arc::new(Delivery {
            store,
            replica: Replica {
                id: config.replica_id(),
                lease_ms: cfg.gateway.lease_ms,
            },
            runtime,
            networks,
            subscribers,
            routes: Routes::from_config(&cfg.items),
            wake,
            webhook: transport,
            tls_transport,
            alerts: Alerts::new(audit.clone()),
            audit,
            witnesses: witnesses(config)?,
            yellow_ms: hours_ms(cfg.deadlines.yellow_hours),
            window: cfg.gateway.time_window(chrono::Utc::now()),
            retention_ms: hours_ms(cfg.storage.retention_days.saturating_mul(24)),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            drain: Arc::default(),
        });
        delivery.load_adapters().await?;
        Ok(delivery)
    }

    /// Load every network's configured adapter, side by side. A network
    /// whose adapter fails starts down, in adapter alert; an error is a
    /// fault of the configuration.
    async fn load_adapters(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut loads = tokio::task::JoinSet::new();
        for net in self.networks.values() {
            let (delivery, net) = (self.clone(), net.clone());
            loads.spawn(async move {
                let loaded = net.versions.load_at_start(&delivery.runtime).await;
                (net, loaded)
            });
        }
        while let Some(joined) = loads.join_next().await {
            let (net, loaded) = joined.context("loading an adapter panicked")?;
            match loaded {
                Err(e) if e.is_configuration() => return Err(e.into()),
                loaded => self.adapter_loaded(&net.name, &loaded),
            }
        }
        Ok(())
    }
}

/// Hours as milliseconds, saturating.
fn hours_ms(hours: u64) -> i64 {
    i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX)
}

/// mTLS out: one client per network and subscriber, each with its own
/// trust roots and client certificate.
fn mtls_transport(config: &LoadedConfig) -> anyhow::Result<Arc<GatewayTransport>> {
    let cfg = &config.config;
    let t = Arc::new(GatewayTransport::new(std::time::Duration::from_secs(3)));
    for (name, net) in &cfg.networks {
        if let Some(tls) = &net.get_ref().tls {
            t.add(name, &config.client_tls(tls.get_ref()))
                .map_err(|e| anyhow::anyhow!("network `{name}`: tls: {e}"))?;
        }
    }
    for (name, sub) in &cfg.subscribers {
        if let Some(tls) = &sub.get_ref().tls {
            let key = Destination::Subscriber(name.clone()).key();
            t.add(&key, &config.client_tls(tls.get_ref()))
                .map_err(|e| anyhow::anyhow!("subscriber `{name}`: tls: {e}"))?;
        }
    }
    for (name, w) in &cfg.audit.witness {
        if let Some(tls) = &w.tls {
            let tls = ClientTlsConfig::deserialize(tls.clone())
                .map_err(|e| anyhow::anyhow!("[audit.witness.{name}.tls]: {e}"))?;
            t.add(&Witness::transport_key(name), &config.client_tls(&tls))
                .map_err(|e| anyhow::anyhow!("witness `{name}`: tls: {e}"))?;
        }
    }
    Ok(t)
}

/// The witnesses the trail's checkpoints are pushed to.
fn witnesses(config: &LoadedConfig) -> anyhow::Result<Vec<Arc<Witness>>> {
    let dir = config.witness_push_dir();
    config
        .config
        .audit
        .witness
        .iter()
        .map(|(name, w)| {
            Witness::from_config(name, w, &dir)
                .map(Arc::new)
                .map_err(|e| anyhow::anyhow!("[audit.witness.{name}] url: {e}"))
        })
        .collect()
}

/// One network: its sandbox (endpoints, config, secrets and limits) and its
/// configured adapter, not loaded yet.
fn network_runtime(
    config: &LoadedConfig,
    name: &str,
    net: &NetworkConfig,
    services: Services,
    trust: Arc<crate::publisher::Trust>,
) -> anyhow::Result<NetworkRuntime> {
    let secrets = config
        .resolve_secrets(name, net)
        .map_err(anyhow::Error::msg)?;
    let adapter_config = config
        .resolve_adapter_config(name, net)
        .map_err(anyhow::Error::msg)?;
    let endpoints = net
        .endpoints
        .iter()
        .map(|e| e.get_ref().parse::<http::Uri>())
        .collect::<Result<Vec<_>, _>>()?;
    let sandbox = NetworkSandbox {
        network: name.to_string(),
        endpoints,
        config: adapter_config.values,
        sensitive: adapter_config.sensitive,
        secrets,
        limits: net.limits.get_ref().clone(),
        slots: net.slots(),
    };
    let configured = ConfiguredAdapter {
        path: config.adapter_path(net),
        pin: net.adapter_sha256.as_ref().map(|p| p.get_ref().clone()),
        signature: config.adapter_signature_path(net),
    };
    let kept = config.data_dir().join("adapters");
    Ok(NetworkRuntime {
        name: name.to_string(),
        versions: Versions::new(sandbox, services, kept, configured, trust),
        retry: net.retry.get_ref().clone(),
        concurrency: *net.concurrency.get_ref() as usize,
        breaker: net.breaker.clone(),
        poll_interval_ms: net.poll_interval_ms,
        poller_started: Default::default(),
        follow_up: net.follow_up.as_ref().map(|f| f.get_ref().clone()),
        follow_up_started: Default::default(),
        circuit: Arc::new(std::sync::Mutex::new(super::retry::Breaker::new(
            net.breaker.clone(),
        ))),
    })
}

/// The subscribers as the delivery service runs them.
fn subscribers(config: &LoadedConfig) -> BTreeMap<String, Arc<Subscriber>> {
    let cfg = &config.config;
    cfg.subscribers
        .iter()
        .map(|(name, sub)| {
            let sub = sub.get_ref();
            let running = Subscriber {
                name: name.clone(),
                url: sub.url.get_ref().clone(),
                notices: sub.events.iter().map(|e| e.get_ref().clone()).collect(),
                items: sub.items.clone(),
                retry: sub.retry.get_ref().clone(),
                concurrency: sub.concurrency as usize,
                timeout_ms: sub.timeout_ms,
            };
            (name.clone(), Arc::new(running))
        })
        .collect()
}
