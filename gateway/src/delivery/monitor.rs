//! The service's clocks: the deadline monitor turns lights yellow and red
//! on time (and tells subscribers); housekeeping refreshes the queue gauges
//! every second and applies retention hourly.

use super::{Delivery, backflow};
use crate::store::{Millis, now_millis};
use std::sync::Arc;
use std::time::Duration;

/// Turn lights yellow and red on time, and tell subscribers.
pub(crate) async fn deadlines(delivery: Arc<Delivery>) {
    let stop = delivery.stopping();
    loop {
        let now = now_millis();
        match delivery.store.deadlines_due(now, 500).await {
            Ok(cases) => {
                for case in cases {
                    relight(&delivery, &case, now).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "deadline index unreadable"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Re-evaluate one case's light; a change is stored with its notices.
async fn relight(delivery: &Delivery, case: &str, now: Millis) {
    let result = delivery
        .store
        .update(case, &mut |rec| {
            let mut rec = rec?;
            let before = (rec.deadline, rec.light);
            backflow::conclude(delivery, &mut rec, &[], Vec::new(), now);
            if before == (rec.deadline, rec.light) {
                return None;
            }
            Some(rec)
        })
        .await;
    match result {
        Ok(Some(rec)) => {
            let light = format!("{:?}", rec.light).to_lowercase();
            metrics::counter!("yiwang_deadline_changes_total", "light" => light).increment(1);
            delivery.wake_record(&rec);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(case = %case, error = %e, "deadline update failed"),
    }
}

/// Every replica's periodic chore: its queue and store gauges, each second.
pub(crate) async fn housekeeping(delivery: Arc<Delivery>) {
    let stop = delivery.stopping();
    loop {
        gauges(&delivery, now_millis()).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Retention, on the one replica leading it: settled cases older than the
/// retention are compacted, hourly (at once when leadership is gained).
pub(crate) async fn retention(delivery: Arc<Delivery>) {
    let stop = delivery.stopping();
    loop {
        let now = now_millis();
        match delivery
            .store
            .compact(now.saturating_sub(delivery.retention_ms))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "retention: settled cases compacted"),
            Err(e) => tracing::warn!(error = %e, "retention failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Queue depth and oldest pending age per destination; durable writes and
/// the fsyncs that covered them.
async fn gauges(delivery: &Delivery, now: Millis) {
    if let Ok(depths) = delivery.store.depth().await {
        for d in depths {
            metrics::gauge!("yiwang_queue_depth", "destination" => d.destination.clone())
                .set(d.pending as f64);
            let age = d
                .oldest_created_at
                .map(|t| now.saturating_sub(t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics::gauge!("yiwang_queue_oldest_pending_seconds", "destination" => d.destination)
                .set(age);
        }
    }
    let stats = delivery.store.commit_stats();
    metrics::counter!("yiwang_store_durable_writes_total").absolute(stats.writes);
    metrics::counter!("yiwang_store_fsyncs_total").absolute(stats.fsyncs);
}
