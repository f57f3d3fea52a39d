//! The writer thread behind an [`AuditLog`](crate::AuditLog). It appends,
//! syncs once per batch, then wakes every waiter of the batch (group
//! commit); a checkpoint is signed every `checkpoint-every` records, at
//! least every `checkpoint-interval-ms`, and before a segment is rolled.
//! Both rules count from the last signed checkpoint on disk, not from the
//! process's start, and open signs at once whatever an earlier run left
//! unsigned: a gateway that is killed again and again still signs its
//! trail, at most once per open.

use crate::bodies::{BodyKey, record_bodies};
use crate::chain::{encode_line, sign_checkpoint};
use crate::layout::new_segment;
use crate::tail::Tail;
use crate::{AuditConfig, AuditError, Entry, HashAlg, Kind, Record};
use chrono::{DateTime, FixedOffset, Timelike};
use ed25519_dalek::SigningKey;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most messages one batch takes before it syncs.
const MAX_BATCH: usize = 4096;

pub(crate) type Reply = oneshot::Sender<Result<Receipt, AuditError>>;
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<FixedOffset> + Send + Sync>;

/// Proof that a record is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    /// Hex of the record's hash.
    pub hash: String,
    pub at: DateTime<FixedOffset>,
}

pub(crate) enum Msg {
    Append {
        entry: Entry,
        reply: Option<Reply>,
    },
    Checkpoint {
        reply: Reply,
    },
    Close {
        reply: Option<Reply>,
    },
    /// Stop as a kill -9 would: nothing more is written (tests).
    #[cfg(test)]
    Crash,
}

/// What the handle and the thread share: counters, and a gate for tests.
#[derive(Default)]
pub(crate) struct Shared {
    pub records: AtomicU64,
    pub fsyncs: AtomicU64,
    pub failures: AtomicU64,
    /// Messages sent to the writer (for tests).
    pub queued: AtomicU64,
    /// The seq of the last checkpoint made durable (what witnesses follow).
    pub checkpoint: tokio::sync::watch::Sender<u64>,
    #[cfg(test)]
    pub gate: (std::sync::Mutex<bool>, std::sync::Condvar),
}

impl Shared {
    pub fn failed(&self, n: u64) {
        self.failures.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("yiwang_audit_write_failures_total").increment(n);
    }

    #[cfg(test)]
    fn wait_gate(&self) {
        let (lock, cv) = &self.gate;
        let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *held {
            held = cv.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The last checkpoint's time as a monotonic instant: its age by the clock
/// (at most one interval, none when it lies in the future), taken from now.
/// Without a checkpoint on disk, now.
fn last_checkpoint_instant(tail: &Tail, clock: &Clock, interval: Duration) -> Instant {
    let now = Instant::now();
    let Some(cp) = tail.checkpoint else {
        return now;
    };
    let age = (clock() - cp.at)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(interval);
    now.checked_sub(age).unwrap_or(now)
}

/// The state on disk after the last successful commit.
#[derive(Clone, Copy)]
struct Committed {
    seq: u64,
    prev: [u8; 32],
    since_cp: u64,
    seg_len: u64,
    last_kind: Option<Kind>,
}

pub(crate) struct Writer {
    dir: PathBuf,
    alg: HashAlg,
    key: SigningKey,
    body_key: Option<BodyKey>,
    every: u64,
    interval: Duration,
    seg_max: u64,
    clock: Clock,
    file: File,
    seg_path: PathBuf,
    seg_len: u64,
    seq: u64,
    prev: [u8; 32],
    /// Records (not checkpoints) since the last checkpoint.
    since_cp: u64,
    /// When the last checkpoint was written (at open: as its `at` says).
    last_cp: Instant,
    last_kind: Option<Kind>,
    committed: Committed,
    /// Encoded lines not yet written.
    buf: Vec<u8>,
    /// The records in `buf`: their waiters and receipts.
    waiting: Vec<(Option<Reply>, Kind, Receipt)>,
    /// A failed batch may still be on disk past `committed.seg_len`.
    poisoned: bool,
    pub shared: Arc<Shared>,
}

impl Writer {
    /// A writer continuing the chain from `tail`, in its last segment.
    pub fn start(
        dir: &Path,
        cfg: &AuditConfig,
        alg: HashAlg,
        key: SigningKey,
        body_key: Option<BodyKey>,
        clock: Clock,
        tail: &Tail,
    ) -> Result<Writer, AuditError> {
        let (seg_path, file) = tail.open_segment(dir)?;
        let seg_len = file
            .metadata()
            .map_err(|e| AuditError::io(&seg_path, e))?
            .len();
        let since_cp = tail.unsigned();
        let interval = Duration::from_millis(cfg.checkpoint_interval_ms);
        let committed = Committed {
            seq: tail.seq,
            prev: tail.hash,
            since_cp,
            seg_len,
            last_kind: None,
        };
        Ok(Writer {
            dir: dir.to_path_buf(),
            alg,
            key,
            body_key,
            every: cfg.checkpoint_every,
            interval,
            seg_max: cfg.segment_max_bytes,
            file,
            seg_path,
            seg_len,
            seq: tail.seq,
            prev: tail.hash,
            since_cp,
            last_cp: last_checkpoint_instant(tail, &clock, interval),
            clock,
            last_kind: None,
            committed,
            buf: Vec::new(),
            waiting: Vec::new(),
            poisoned: false,
            shared: Arc::new(Shared::default()),
        })
    }

    pub fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let first = if self.since_cp > 0 {
                let wait = self.interval.saturating_sub(self.last_cp.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return self.shutdown(None),
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return self.shutdown(None),
                }
            };
            #[cfg(test)]
            self.shared.wait_gate();
            let mut next = first;
            let mut taken = 0;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append { entry, reply } => self.append(entry, reply),
                    Msg::Checkpoint { reply } => {
                        let entry = self.checkpoint_entry();
                        self.push(entry, Some(reply));
                        self.maybe_roll();
                    }
                    Msg::Close { reply } => {
                        let _ = self.commit();
                        return self.shutdown(reply);
                    }
                    #[cfg(test)]
                    Msg::Crash => return,
                }
                taken += 1;
                if taken < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if self.since_cp > 0 && self.last_cp.elapsed() >= self.interval {
                self.checkpoint();
            }
            // A failure was reported to the waiters and logged.
            let _ = self.commit();
        }
    }

    /// `stop`, a final checkpoint, a last sync.
    fn shutdown(mut self, reply: Option<Reply>) {
        self.push(Entry::new(Kind::Stop), None);
        let entry = self.checkpoint_entry();
        self.push(entry, reply);
        let _ = self.commit();
    }

    /// Encode a record into the batch. Nothing changes if it fails.
    pub fn push(&mut self, entry: Entry, reply: Option<Reply>) {
        let seq = self.seq + 1;
        let now = (self.clock)();
        let at = now
            .with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(now);
        let encoded =
            record_bodies(seq, &entry.bodies, self.body_key.as_ref()).and_then(|bodies| {
                let rec = Record {
                    seq,
                    at,
                    kind: entry.kind,
                    principal: entry.principal,
                    case: entry.case,
                    network: entry.network,
                    detail: entry.detail,
                    bodies,
                    prev: String::new(),
                    hash: String::new(),
                };
                encode_line(self.alg, &rec, &self.prev)
            });
        let (line, hash) = match encoded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, kind = %entry.kind, "audit record not encoded");
                self.shared.failed(1);
                if let Some(r) = reply {
                    let _ = r.send(Err(e));
                }
                return;
            }
        };
        self.buf.extend_from_slice(&line);
        self.seq = seq;
        self.prev = hash;
        self.last_kind = Some(entry.kind);
        if entry.kind == Kind::Checkpoint {
            self.since_cp = 0;
            self.last_cp = Instant::now();
        } else {
            self.since_cp += 1;
        }
        let receipt = Receipt {
            seq,
            hash: hex::encode(hash),
            at,
        };
        self.waiting.push((reply, entry.kind, receipt));
    }

    /// A record from outside, then the checkpoints and roll it may call for.
    fn append(&mut self, entry: Entry, reply: Option<Reply>) {
        self.push(entry, reply);
        if self.since_cp >= self.every {
            self.checkpoint();
        }
        self.maybe_roll();
    }

    /// At open, once the notes and `start` are in the batch: one checkpoint
    /// if a crash left records unsigned, or if the rules, counted from the
    /// last checkpoint on disk, call for one.
    pub fn checkpoint_at_open(&mut self, unsigned_on_disk: bool) {
        if unsigned_on_disk
            || self.since_cp >= self.every
            || self.last_cp.elapsed() >= self.interval
        {
            self.checkpoint();
        }
    }

    fn checkpoint_entry(&self) -> Entry {
        let detail = sign_checkpoint(&self.key, self.alg, self.seq, &self.prev);
        Entry::new(Kind::Checkpoint).detail(serde_json::to_value(detail).unwrap_or_default())
    }

    fn checkpoint(&mut self) {
        let entry = self.checkpoint_entry();
        self.push(entry, None);
    }

    /// Past the size limit: close the segment with a checkpoint, sync, roll.
    pub fn maybe_roll(&mut self) {
        if self.seg_len + self.buf.len() as u64 <= self.seg_max {
            return;
        }
        if self.last_kind != Some(Kind::Checkpoint) {
            self.checkpoint();
        }
        if self.commit().is_ok() {
            match new_segment(&self.dir, self.seq + 1) {
                Ok((path, file)) => {
                    tracing::debug!(segment = %path.display(), "audit segment rolled");
                    self.file = file;
                    self.seg_path = path;
                    self.seg_len = 0;
                    self.committed.seg_len = 0;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit segment not rolled; continuing in the old one")
                }
            }
        }
    }

    /// Write the batch, sync once, answer every waiter.
    pub fn commit(&mut self) -> Result<(), AuditError> {
        if self.buf.is_empty() && self.waiting.is_empty() {
            return Ok(());
        }
        let result = (|| {
            if self.poisoned {
                self.file.set_len(self.committed.seg_len)?;
                self.poisoned = false;
            }
            self.file.write_all(&self.buf)?;
            self.file.sync_data()
        })();
        match result {
            Ok(()) => {
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("yiwang_audit_fsyncs_total").increment(1);
                self.seg_len += self.buf.len() as u64;
                self.buf.clear();
                self.committed = Committed {
                    seq: self.seq,
                    prev: self.prev,
                    since_cp: self.since_cp,
                    seg_len: self.seg_len,
                    last_kind: self.last_kind,
                };
                self.shared
                    .records
                    .fetch_add(self.waiting.len() as u64, Ordering::Relaxed);
                for (reply, kind, receipt) in self.waiting.drain(..) {
                    if kind == Kind::Checkpoint {
                        self.shared.checkpoint.send_replace(receipt.seq);
                    }
                    metrics::counter!("yiwang_audit_records_total", "kind" => kind.as_str())
                        .increment(1);
                    if let Some(r) = reply {
                        let _ = r.send(Ok(receipt));
                    }
                }
                Ok(())
            }
            Err(e) => {
                let msg = format!("{}: {e}", self.seg_path.display());
                tracing::error!(error = %msg, records = self.waiting.len(), "audit write failed");
                self.shared.failed(self.waiting.len() as u64);
                for (reply, _, _) in self.waiting.drain(..) {
                    if let Some(r) = reply {
                        let _ = r.send(Err(AuditError::Write(msg.clone())));
                    }
                }
                self.buf.clear();
                let c = self.committed;
                self.seq = c.seq;
                self.prev = c.prev;
                self.since_cp = c.since_cp;
                self.seg_len = c.seg_len;
                self.last_kind = c.last_kind;
                if self.file.set_len(c.seg_len).is_err() {
                    self.poisoned = true;
                }
                Err(AuditError::Write(msg))
            }
        }
    }
}
