//! Starting the delivery service: recover what a crash interrupted, then
//! spawn one dispatcher per destination (a network that is down holds its
//! queue in alert), one poller per polled network that is up, the
//! deadline monitor, housekeeping, and the watch that lifts a destination's
//! TLS alert when its trust material changes.

use super::{Delivery, dispatch, monitor};
use crate::store::Destination;
use std::sync::Arc;
use yiwang_audit::{Entry, Kind};

impl Delivery {
    /// Recover attempts a crash interrupted, then run every dispatcher,
    /// poller and monitor (on [`Delivery::tasks`]) until [`Delivery::stop`].
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let recovered = dispatch::recover(self).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "attempts interrupted by a stop were found; each is verified with the ministry before any resend"
            );
        }
        let tasks = &self.tasks;
        for key in self.wake.keys() {
            if let Some(dest) = Destination::parse_key(key) {
                tasks.spawn(dispatch::run(self.clone(), dest));
            }
        }
        for net in self.networks.values() {
            self.start_poller(net);
        }
        tasks.spawn(monitor::deadlines(self.clone()));
        tasks.spawn(monitor::housekeeping(self.clone()));
        if let Some(t) = &self.tls_transport {
            // New trust material for a destination lifts its alert.
            let delivery = Arc::downgrade(self);
            let lift = move |key: &str| {
                if let Some(delivery) = delivery.upgrade() {
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
}
