//! Group commit: writers that finish at about the same time share one fsync.
//!
//! A writer applies its change in memory, takes a ticket, and waits until a
//! flush that *started after its ticket* completes. One flusher thread runs
//! flushes back to back; every ticket taken while a flush runs is covered by
//! the next one, so under load many writes ride on each fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::watch;

use super::{Result, StoreError};

/// Counters for the intake-durability benchmark and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Writes that waited for durability.
    pub writes: u64,
    /// Flushes (fsyncs) performed for them.
    pub fsyncs: u64,
}

struct State {
    requested: u64,
    stop: bool,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    flushed: watch::Sender<Result<u64>>,
    writes: AtomicU64,
    fsyncs: AtomicU64,
}

/// The group committer of one database.
pub(crate) struct GroupCommit {
    inner: Arc<Inner>,
    /// The flusher; joined on drop, so the database it flushes is closed
    /// when the store is.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Start the flusher thread; `flush` makes everything written so far durable.
    pub(crate) fn start(
        flush: impl Fn() -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (flushed, _) = watch::channel(Ok(0));
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                requested: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            flushed,
            writes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("yiwang-commit".into())
            .spawn(move || flusher(&worker, flush))?;
        Ok(GroupCommit {
            inner,
            thread: Some(thread),
        })
    }

    /// Wait until everything written before this call is durable.
    pub(crate) async fn durable(&self) -> Result<()> {
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        let ticket = {
            let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            s.requested += 1;
            s.requested
        };
        self.inner.wake.notify_one();
        let mut rx = self.inner.flushed.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Ok(done) if *done >= ticket => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.clone()),
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Backend("the commit thread stopped".into()));
            }
        }
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            writes: self.inner.writes.load(Ordering::Relaxed),
            fsyncs: self.inner.fsyncs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop = true;
        self.inner.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn flusher(inner: &Inner, flush: impl Fn() -> std::io::Result<()>) {
    let mut done = 0u64;
    loop {
        let target = {
            let mut s = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            while s.requested == done && !s.stop {
                s = inner.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if s.stop && s.requested == done {
                return;
            }
            s.requested
        };
        match flush() {
            Ok(()) => {
                inner.fsyncs.fetch_add(1, Ordering::Relaxed);
                done = target;
                let _ = inner.flushed.send_replace(Ok(done));
            }
            Err(e) => {
                // Nobody is acknowledged on a failed flush. Report it to the
                // waiters, then keep trying: a full disk may be cleared.
                tracing::error!(error = %e, "flush to disk failed; holding acknowledgements");
                let _ = inner.flushed.send_replace(Err(StoreError::Backend(format!(
                    "flush to disk failed: {e}"
                ))));
                std::thread::sleep(Duration::from_millis(200));
                let _ = inner.flushed.send_replace(Ok(done));
                // Stopping: nobody waits for this flush any more.
                if inner.state.lock().unwrap_or_else(|p| p.into_inner()).stop {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let f = flushes.clone();
        let commit = Arc::new(
            GroupCommit::start(move || {
                f.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            })
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let c = commit.clone();
            tasks.push(tokio::spawn(async move { c.durable().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "64 writers took {n} flushes");
        assert_eq!(commit.stats().writes, 64);
    }

    #[tokio::test]
    async fn a_failed_flush_is_reported_not_acknowledged() {
        let commit = GroupCommit::start(|| Err(std::io::Error::other("disk full"))).unwrap();
        let err = commit.durable().await.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
    }
}
