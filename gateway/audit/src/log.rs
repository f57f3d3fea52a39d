//! The handle: the running gateway's [`AuditLog`]. Open loads the keys,
//! finds where the chain ends in [`tail`](crate::tail), writes the notes,
//! `start` and (when something is left unsigned) a checkpoint, then hands
//! the segment to the [`writer`](crate::writer) thread; retention is
//! [`prune`](crate::prune)'s.

use crate::bodies::body_key;
use crate::chain::load_keys;
use crate::layout::make_dir;
use crate::prune::{PruneReport, Retention};
use crate::tail::find_tail;
use crate::writer::{Clock, Msg, Receipt, Shared, Writer};
use crate::{AuditConfig, AuditError, Entry, HashAlg, Kind, key_id};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

fn local_clock() -> Clock {
    Arc::new(|| chrono::Local::now().fixed_offset())
}

/// Counters of one log (also exported as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records made durable (including checkpoints and the log's own).
    pub records: u64,
    /// fdatasyncs of segments.
    pub fsyncs: u64,
    /// Records that could not be written (or not even queued).
    pub write_failures: u64,
}

/// The audit log of a running gateway. Cheap to share (`Arc`); dropping
/// the last handle closes it cleanly (a `stop` record and a checkpoint).
pub struct AuditLog {
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    public_key: VerifyingKey,
    alg: HashAlg,
    retention: Retention,
    writer: Mutex<Option<JoinHandle<()>>>,
    pruner_stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .field("alg", &self.alg)
            .field("key_id", &key_id(&self.public_key))
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Open (or create) the log in `dir`: load or create the signing key,
    /// find the tail, recover a torn final line, append `start`, and start
    /// the writer thread (and, with retention, the pruner).
    pub fn open(dir: &Path, cfg: &AuditConfig) -> Result<Arc<AuditLog>, AuditError> {
        Self::open_with_clock(dir, cfg, local_clock())
    }

    pub(crate) fn open_with_clock(
        dir: &Path,
        cfg: &AuditConfig,
        clock: Clock,
    ) -> Result<Arc<AuditLog>, AuditError> {
        let problems = cfg.check();
        if !problems.is_empty() {
            return Err(AuditError::Config(problems.join("; ")));
        }
        make_dir(dir)?;
        let replica = crate::trail::claim(dir, cfg.replica.as_deref())?;
        let mut notes = Vec::new();
        let (key, keys) = load_keys(dir, cfg, &mut notes)?;
        let public_key = key.verifying_key();
        let body_key = body_key(cfg)?;

        let tail = find_tail(dir, &keys, &mut notes)?;
        let alg = match tail.alg {
            Some(existing) if existing != cfg.hash => {
                return Err(AuditError::Config(format!(
                    "the chain in {} uses {existing}; hash = {:?} needs a new directory",
                    dir.display(),
                    cfg.hash.as_str()
                )));
            }
            _ => cfg.hash,
        };
        let mut w = Writer::start(dir, cfg, alg, key, body_key, clock, &tail)?;
        let shared = w.shared.clone();
        for note in notes {
            w.push(note, None);
        }
        w.push(
            Entry::new(Kind::Start).detail(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "replica": replica,
                "hash": alg,
                "key-id": key_id(&public_key),
                "keep-bodies": cfg.keep_bodies,
            })),
            None,
        );
        w.checkpoint_at_open(tail.unsigned() > 0);
        w.maybe_roll();
        w.commit()?;

        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("yiwang-audit".into())
            .spawn(move || w.run(rx))
            .map_err(|e| AuditError::io(dir, e))?;

        let retention = Retention {
            dir: dir.to_path_buf(),
            keys,
            days: cfg.retention_days,
            lock: Arc::default(),
        };
        let pruner_stop = match cfg.retention_days {
            Some(_) => Some(retention.clone().spawn(tx.clone())?),
            None => None,
        };

        Ok(Arc::new(AuditLog {
            dir: dir.to_path_buf(),
            tx,
            shared,
            public_key,
            alg,
            retention,
            writer: Mutex::new(Some(writer)),
            pruner_stop: Mutex::new(pruner_stop),
        }))
    }

    /// Append a record; resolves once it is on disk (fdatasync), sharing
    /// the sync with every record queued meanwhile.
    pub async fn append(&self, entry: Entry) -> Result<Receipt, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Append {
            entry,
            reply: Some(tx),
        })?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Append a record without waiting; it is durable with the next batch.
    /// Failures are logged and counted (`yiwang_audit_write_failures_total`).
    pub fn record(&self, entry: Entry) {
        let kind = entry.kind;
        if let Err(e) = self.send(Msg::Append { entry, reply: None }) {
            tracing::error!(error = %e, %kind, "audit record dropped");
            self.shared.failed(1);
        }
    }

    /// Write a signed checkpoint now; resolves once it is on disk.
    pub async fn checkpoint(&self) -> Result<Receipt, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Checkpoint { reply: tx })?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Close cleanly: everything queued is written, then a `stop` record
    /// and a final checkpoint (whose receipt this returns). Later appends
    /// fail with [`AuditError::Closed`].
    pub async fn close(&self) -> Result<Receipt, AuditError> {
        self.stop_pruner();
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Close { reply: Some(tx) })?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Delete whole closed segments whose newest record is older than
    /// `retention-days` before `now`: verify them, commit a `prune` record
    /// and a checkpoint signing it, then write `anchor.json` (the
    /// checkpoint closing the last one) and delete. Without
    /// `retention-days`, does nothing.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<PruneReport, AuditError> {
        let _guard = self.retention.lock.lock().await;
        let mut report = PruneReport::default();
        let Some(plan) = self.retention.plan(now, &mut report)? else {
            return Ok(report);
        };
        self.append(self.retention.prune_entry(&plan)).await?;
        self.checkpoint().await?;
        self.retention.execute(plan, now, &mut report)?;
        Ok(report)
    }

    /// The seq of the last checkpoint made durable, changing with each
    /// new one (what a witness push loop waits on).
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.checkpoint.subscribe()
    }

    pub fn stats(&self) -> AuditStats {
        AuditStats {
            records: self.shared.records.load(Ordering::Relaxed),
            fsyncs: self.shared.fsyncs.load(Ordering::Relaxed),
            write_failures: self.shared.failures.load(Ordering::Relaxed),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    pub fn key_id(&self) -> String {
        key_id(&self.public_key)
    }

    pub fn hash_alg(&self) -> HashAlg {
        self.alg
    }

    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.send(msg).map_err(|_| AuditError::Closed)
    }

    fn stop_pruner(&self) {
        self.pruner_stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Hold the writer before its next batch (tests of group commit).
    #[cfg(test)]
    pub(crate) fn hold(&self, held: bool) {
        let (lock, cv) = &self.shared.gate;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = held;
        cv.notify_all();
    }

    /// Stop the writer as a kill -9 would: no `stop`, no final checkpoint,
    /// nothing more written (tests of open after a crash).
    #[cfg(test)]
    pub(crate) fn crash(&self) {
        self.stop_pruner();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = self.tx.send(Msg::Crash);
            let _ = handle.join();
        }
    }

    #[cfg(test)]
    pub(crate) fn queued(&self) -> u64 {
        self.shared.queued.load(Ordering::SeqCst)
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.stop_pruner();
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = self.tx.send(Msg::Close { reply: None });
            if handle.join().is_err() {
                tracing::error!("the audit writer thread panicked");
            }
        }
    }
}
