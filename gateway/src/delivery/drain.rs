//! The calls a graceful stop waits for: delivery attempts, polls and the
//! requests the listeners are answering. Each runs on [`Drain`], which
//! knows what it is (for the record of what a stop abandoned) and can drop
//! it once the grace period is over. A dropped attempt stays in flight in
//! the store (its lease no longer renewed), and the next start of this
//! replica, or another replica once the lease expires, verifies it with the
//! ministry before any resend (see `lease::recover`), so abandoning is
//! safe; it is audited.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Calls in progress, which a stop drains and, after the grace, abandons.
#[derive(Default)]
pub struct Drain {
    tracker: TaskTracker,
    abandon: CancellationToken,
    /// What each running call is (`submit CASE#0 → network:x`), by id.
    running: Mutex<BTreeMap<u64, String>>,
    next: AtomicU64,
}

/// Removes a call from [`Drain::running`] however it ends.
struct Running<'a> {
    drain: &'a Drain,
    id: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.drain.running().remove(&self.id);
    }
}

impl Drain {
    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `call` to its end, unless a stop abandons it (then `None`).
    pub async fn run<F: Future>(&self, what: String, call: F) -> Option<F::Output> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running().insert(id, what);
        let _running = Running { drain: self, id };
        // Abandoned first: a call begun after the grace never starts.
        tokio::select! {
            biased;
            () = self.abandon.cancelled() => None,
            out = self.tracker.track_future(call) => Some(out),
        }
    }

    /// Spawn `call` as a task a stop drains.
    pub fn spawn<F>(self: &std::sync::Arc<Self>, what: String, call: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let drain = self.clone();
        self.tracker.spawn(async move {
            drain.run(what, call).await;
        });
    }

    /// Wait for every call until `deadline`; then abandon those still
    /// running (dropped at their next await) and return what they were.
    pub async fn finish(&self, deadline: Instant) -> Vec<String> {
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        let abandoned: Vec<String> = self.running().values().cloned().collect();
        self.abandon.cancel();
        self.tracker.wait().await;
        abandoned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_waits_for_calls_that_end_within_the_grace() {
        let drain = Arc::new(Drain::default());
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        drain.spawn("quick".into(), async move {
            tokio::task::yield_now().await;
            flag.store(true, Ordering::SeqCst);
        });
        let abandoned = drain
            .finish(Instant::now() + Duration::from_secs(3600))
            .await;
        assert!(abandoned.is_empty());
        assert!(done.load(Ordering::SeqCst), "the call was drained");
    }

    #[tokio::test]
    async fn a_call_outliving_the_grace_is_abandoned_and_named() {
        let drain = Arc::new(Drain::default());
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        drain.spawn("submit C-1#0 → network:mr".into(), async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            flag.store(true, Ordering::SeqCst);
        });
        drain.spawn("quick".into(), async {});
        tokio::task::yield_now().await;
        let abandoned = drain
            .finish(Instant::now() + Duration::from_millis(50))
            .await;
        assert_eq!(abandoned, vec!["submit C-1#0 → network:mr".to_string()]);
        assert!(!finished.load(Ordering::SeqCst), "the call was dropped");
        assert!(drain.running().is_empty());
    }
}
