//! Running a singleton task on one replica at a time (the rules are in `store::leader`).
//!
//! [`lead`] asks the store for the task's leader lease every third of `lease-ms`. While
//! this replica holds it, the task runs (made afresh by its factory each time leadership is
//! gained) and the lease is renewed on the same beat. When a renewal is refused or fails —
//! another replica took over, the database is away — the task is dropped at once (before
//! the lease can expire, so two replicas never run it together for longer than one beat)
//! and the replica goes back to asking. At a stop the task ends and the lease is given up,
//! so another replica takes over without waiting for the expiry.

use super::Delivery;
use crate::store::now_millis;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Run `task` under the leader lease `name` until the delivery stops.
pub(crate) async fn lead<F, Fut>(delivery: Arc<Delivery>, name: String, task: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let stop = delivery.stopping();
    let replica = delivery.replica.clone();
    let beat = Duration::from_millis((replica.lease_ms / 3).max(100));
    let store = delivery.store.clone();
    let lead_now = || {
        let now = now_millis();
        store.lead(&name, &replica.id, now, replica.lease_until(now))
    };
    loop {
        match lead_now().await {
            Ok(true) => {
                tracing::info!(task = %name, replica = %replica.id, "leading");
                metrics::gauge!("yiwang_leader", "task" => name.clone()).set(1.0);
                let running = task();
                tokio::pin!(running);
                let ended = loop {
                    tokio::select! {
                        () = &mut running => break true,
                        () = stop.cancelled() => break true,
                        () = tokio::time::sleep(beat) => {}
                    }
                    match lead_now().await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(task = %name, "leadership taken over by another replica; task stopped here");
                            break false;
                        }
                        Err(e) => {
                            tracing::warn!(task = %name, error = %e, "cannot renew the leader lease; task stopped here until it can be taken again");
                            break false;
                        }
                    }
                };
                metrics::gauge!("yiwang_leader", "task" => name.clone()).set(0.0);
                if ended {
                    if let Err(e) = store.resign(&name, &replica.id).await {
                        tracing::warn!(task = %name, error = %e, "cannot give up the leader lease; it expires on its own");
                    }
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(task = %name, error = %e, "cannot ask for the leader lease"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(beat) => {}
        }
    }
}
