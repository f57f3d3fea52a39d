//! Starting the delivery service: recover what this replica's crash
//! interrupted (another replica's live leases are its own), relay wake-ups
//! from the other replicas sharing the store, then
//! spawn one dispatcher per destination (a network that is down holds its
//! queue in alert), one poller per polled network that is up (and its
//! status follow-up scheduler, when configured), the deadline monitor and
//! retention — each of those under its leader lease, so one replica at a
//! time runs it (`leader`) — this replica's gauges, the witness push
//! loops, and the watch that lifts a destination's
//! TLS alert when its trust material changes. Later, a network that was
//! down comes up here too: an installed adapter, or a resume that loads the
//! configured one (or the swapped one a restart keeps), lifts its alert and
//! starts its poller.

use super::{
    Alert, Delivery, NetworkRuntime, ResumeError, VersionError, alert, backflow, dispatch,
    follow_up, leader, lease, monitor, witness,
};
use crate::store::leader::{DEADLINES_TASK, RETENTION_TASK, follow_up_task, poll_task};
use crate::store::{Destination, DueSignal};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;
use yiwang_audit::{Entry, Kind};

impl Delivery {
    /// Recover attempts a crash interrupted, then run every dispatcher,
    /// poller and monitor (on [`Delivery::tasks`]) until [`Delivery::stop`].
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let recovered = lease::recover(&*self.store, &self.replica).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                replica = %self.replica.id,
                "attempts this replica left in flight (or whose lease expired) were found; each is verified with the ministry before any resend"
            );
        }
        let tasks = &self.tasks;
        if let Some(signals) = self.store.due_signals() {
            tasks.spawn(wake_on_signals(self.clone(), signals));
        }
        for key in self.wake.keys() {
            if let Some(dest) = Destination::parse_key(key) {
                tasks.spawn(dispatch::run(self.clone(), dest));
            }
        }
        for net in self.networks.values() {
            self.start_poller(net);
            self.start_follow_up(net);
        }
        // One replica at a time runs each singleton (see `leader`); gauges are every replica's.
        let d = self.clone();
        let deadlines = move || monitor::deadlines(d.clone());
        tasks.spawn(leader::lead(self.clone(), DEADLINES_TASK.into(), deadlines));
        let d = self.clone();
        let retention = move || monitor::retention(d.clone());
        tasks.spawn(leader::lead(self.clone(), RETENTION_TASK.into(), retention));
        tasks.spawn(monitor::housekeeping(self.clone()));
        for w in &self.witnesses {
            tasks.spawn(witness::run(self.clone(), w.clone()));
        }
        if let Some(t) = &self.tls_transport {
            // New trust material for a destination lifts its TLS alert
            // (not an alert for another cause).
            let delivery = Arc::downgrade(self);
            let lift = move |key: &str| {
                if let Some(delivery) = delivery.upgrade()
                    && delivery.alerts.cause_of(key) != Some(alert::AlertCause::FieldMapping)
                {
                    delivery.lift_alert(key, "its TLS files changed");
                }
            };
            let every = std::time::Duration::from_secs(5);
            tasks.spawn(t.watch(every, self.stopping(), lift));
        }
        self.audit
            .record(Entry::new(Kind::Start).detail(serde_json::json!({
                "networks": self.networks.keys().collect::<Vec<_>>(),
                "down": self.networks.values().filter(|n| n.is_down()).map(|n| &n.name).collect::<Vec<_>>(),
                "version": env!("CARGO_PKG_VERSION"),
            })));
        Ok(())
    }

    /// Operator: resume a destination held in alert (see
    /// [`Delivery::lift_alert`]); a network that is down first retries
    /// loading its configured adapter, and stays down if that fails.
    pub async fn resume(self: &Arc<Self>, name: &str) -> Result<Option<Alert>, ResumeError> {
        if let Some(net) = self.networks.get(name).filter(|n| n.is_down()) {
            // The same rule as at start: a swap on record may be what comes up.
            let loaded = net.versions.load_at_start(&self.runtime).await;
            self.adapter_loaded(name, &loaded);
            if let Err(e) = loaded {
                let reason = format!("adapter failed to load: {e}");
                let network = name.to_string();
                return Err(ResumeError::AdapterLoad { network, reason });
            }
            self.start_poller(net);
            self.start_follow_up(net);
        }
        self.lift_alert(name, "an operator resumed it")
            .ok_or_else(|| ResumeError::UnknownDestination(name.to_string()))
    }

    /// Run a polled network's poller, once, when it has an adapter (at
    /// start, or when a network that was down comes up).
    pub(crate) fn start_poller(self: &Arc<Self>, net: &Arc<NetworkRuntime>) {
        let Some(ms) = net.poll_interval_ms else {
            return;
        };
        if net.is_down() || net.poller_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (d, n) = (self.clone(), net.clone());
        let poller = move || backflow::poller(d.clone(), n.clone(), ms);
        let task = poll_task(&net.name);
        self.tasks.spawn(leader::lead(self.clone(), task, poller));
    }

    /// Run a network's status follow-up, once, when it is configured and
    /// the network has an adapter (started with its poller).
    fn start_follow_up(self: &Arc<Self>, net: &Arc<NetworkRuntime>) {
        let Some(policy) = net.follow_up.clone() else {
            return;
        };
        if net.is_down() || net.follow_up_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (d, n) = (self.clone(), net.clone());
        let scheduler = move || follow_up::scheduler(d.clone(), n.clone(), policy.clone());
        let task = follow_up_task(&net.name);
        self.tasks
            .spawn(leader::lead(self.clone(), task, scheduler));
    }

    /// Make a new version the network's current adapter (hot swap), once
    /// its publisher signature checks out; its sha256. The version is the
    /// one a restart keeps (see [`super::active`]). A network that was down
    /// comes up: its adapter alert is lifted and its poller starts.
    pub async fn install(
        self: &Arc<Self>,
        network: &str,
        wasm: &[u8],
        sig: Option<crate::publisher::AdapterSignature>,
    ) -> Result<String, VersionError> {
        let net = self
            .networks
            .get(network)
            .ok_or_else(|| VersionError::UnknownNetwork(network.to_string()))?;
        let digest = net.versions.install(&self.runtime, wasm, sig).await?;
        let destination = Destination::Network(network.to_string());
        if self
            .alerts
            .get(&destination)
            .is_some_and(|a| a.cause == alert::AlertCause::AdapterLoad)
        {
            self.alerts
                .lift(&destination.key(), "a working adapter was installed");
        }
        self.start_poller(net);
        self.start_follow_up(net);
        self.wake(&destination);
        Ok(digest)
    }
}

/// Wake the dispatchers another replica's writes concern (an intake there,
/// a settle that frees a slot) until the service stops.
async fn wake_on_signals(delivery: Arc<Delivery>, mut signals: broadcast::Receiver<DueSignal>) {
    let stop = delivery.stopping();
    loop {
        let signal = tokio::select! {
            () = stop.cancelled() => return,
            s = signals.recv() => s,
        };
        match signal {
            Ok(DueSignal::Destination(key)) => {
                if let Some(d) = Destination::parse_key(&key) {
                    delivery.wake(&d);
                }
            }
            // Missed signals: look at every destination.
            Ok(DueSignal::All) | Err(broadcast::error::RecvError::Lagged(_)) => {
                for key in delivery.wake.keys() {
                    if let Some(d) = Destination::parse_key(key) {
                        delivery.wake(&d);
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
