//! `yiwang serve`: open the store, load the adapters, start the delivery
//! service, bind the listeners. Tests start a gateway in-process the same way.
//! Only a configuration error stops the start: a network whose adapter fails
//! to load starts down (in alert) and the others serve.

use crate::config::LoadedConfig;
use crate::config::StorageBackend;
use crate::delivery::{Delivery, DeliveryOptions};
use crate::http::{self, AppState, Listener};
use crate::store::{PostgresStore, SledStore, Store};
use crate::tls::ServerTls;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ])
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// The store the configuration names: sled in the data directory, or the
/// PostgreSQL database (migrated to this binary's schema first).
pub async fn open_store(config: &LoadedConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.config.storage.backend {
        StorageBackend::Sled => Arc::new(SledStore::open(&config.data_dir())?),
        StorageBackend::Postgres => {
            let options = config.postgres_options()?;
            let store = PostgresStore::connect(&options).await.map_err(|e| {
                anyhow::anyhow!(
                    "PostgreSQL store at {}: {e}",
                    crate::store::postgres::redact(&options.url)
                )
            })?;
            tracing::info!(url = %crate::store::postgres::redact(&options.url), "store: PostgreSQL");
            Arc::new(store)
        }
    })
}

/// A running gateway.
pub struct Gateway {
    pub delivery: Arc<Delivery>,
    pub intake_addr: SocketAddr,
    pub callback_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    /// How long a stop waits for the calls in progress (`shutdown-grace-ms`).
    pub shutdown_grace: Duration,
}

impl Gateway {
    /// Start everything the configuration describes.
    pub async fn start(config: &LoadedConfig, options: DeliveryOptions) -> anyhow::Result<Gateway> {
        let store = open_store(config).await?;
        Self::start_with_store(config, store, options).await
    }

    /// Start on a given store (a test may share or inspect it).
    pub async fn start_with_store(
        config: &LoadedConfig,
        store: Arc<dyn Store>,
        options: DeliveryOptions,
    ) -> anyhow::Result<Gateway> {
        let metrics = metrics_handle();
        let return_memory = config.config.gateway.return_memory;
        if return_memory {
            crate::memory::tune();
        }
        let delivery = Delivery::build(config, store, options).await?;
        check_field_mappings(&delivery, &config.forms);
        let listeners = &config.config.listeners;
        let tls = |name: &'static str, l: &crate::config::ListenerConfig| {
            let cfg = config.server_tls(l).ok_or_else(|| {
                anyhow::anyhow!(
                    "[tls] is missing: the gateway serves mutually authenticated TLS only"
                )
            })?;
            ServerTls::load(name, &cfg).map_err(|e| anyhow::anyhow!("{name} listener: {e}"))
        };
        // Bind first, so a busy port or a bad certificate fails before any work starts.
        let intake = Listener::bind(
            "intake",
            &listeners.intake,
            tls("intake", &listeners.intake)?,
        )
        .await?;
        let callbacks = match &listeners.callbacks {
            Some(c) => Some(Listener::bind("callbacks", c, tls("callbacks", c)?).await?),
            None => None,
        };
        let admin = match &listeners.admin {
            Some(c) => Some(Listener::bind("admin", c, tls("admin", c)?).await?),
            None => None,
        };
        let state = AppState {
            delivery: delivery.clone(),
            policy: Arc::new(config.policy()),
            forms: config.forms.clone(),
            metrics,
            witness: Arc::new(yiwang_audit::WitnessStore::open(&config.witness_dir())?),
        };
        delivery.start().await?;
        let tasks = delivery.tasks();
        if return_memory {
            tasks.spawn(crate::memory::trim_until(delivery.stopping()));
        }
        let intake_addr = intake.local_addr()?;
        let mut callback_addr = None;
        let mut admin_addr = None;
        for listener in [Some(intake), callbacks, admin].into_iter().flatten() {
            let router = match listener.name {
                "intake" => http::intake_router(state.clone()),
                "callbacks" => {
                    callback_addr = Some(listener.local_addr()?);
                    http::callback_router(state.clone())
                }
                _ => {
                    admin_addr = Some(listener.local_addr()?);
                    http::admin_router(state.clone())
                }
            };
            let refusals =
                http::Refusals::new(listener.name, &listener.config, Arc::clone(&delivery.audit));
            let router = http::with_limits(router, &listener.config, &refusals);
            // Certificates, keys and CRLs reload without a restart.
            tasks.spawn(listener.tls.watch(delivery.stopping()));
            tasks.spawn(http::serve(listener, router, state.clone(), refusals));
        }
        let down: Vec<&str> = delivery
            .networks
            .values()
            .filter(|n| n.is_down())
            .map(|n| n.name.as_str())
            .collect();
        tracing::info!(%intake_addr, callbacks = ?callback_addr, admin = ?admin_addr, networks = delivery.networks.len(), ?down, "gateway serving");
        Ok(Gateway {
            delivery,
            intake_addr,
            callback_addr,
            admin_addr,
            shutdown_grace: Duration::from_millis(config.config.gateway.shutdown_grace_ms),
        })
    }

    /// Stop gracefully: the listeners stop accepting (requests in progress
    /// finish), the dispatchers and pollers start nothing new, the calls in
    /// progress settle within `shutdown-grace-ms` (the rest are abandoned
    /// and audited), and only then does the audit trail close, so no record
    /// of a call is dropped.
    pub async fn shutdown(self) {
        self.delivery.stop();
        self.delivery.drained(self.shutdown_grace).await;
        if let Err(e) = self.delivery.audit.close().await {
            tracing::error!(error = %e, "the audit trail did not close cleanly");
        }
    }
}

/// Each network's adapter's declared field mappings against the forms of
/// the items routed to it; a mismatch holds only that network (alert).
fn check_field_mappings(delivery: &Delivery, forms: &crate::forms::FormCatalogue) {
    if forms.is_empty() {
        return;
    }
    for (name, network) in &delivery.networks {
        let Some(adapter) = network.versions.current() else {
            continue;
        };
        let mappings: Vec<(String, String)> = adapter
            .descriptor()
            .field_mappings
            .iter()
            .map(|m| (m.unified.clone(), m.ministry.clone()))
            .collect();
        let routed = delivery
            .routes()
            .iter()
            .filter(|(_, steps)| steps.iter().any(|s| &s.network == name))
            .filter_map(|(item, _)| forms.get(item));
        let found = crate::forms::mismatches(name, &mappings, routed);
        if found.is_empty() {
            continue;
        }
        let reasons: Vec<String> = found.iter().map(ToString::to_string).collect();
        delivery
            .alerts
            .raise_field_mapping(name, &reasons.join("; "));
    }
}
