//! The writer: one thread appends, syncs once per batch, then wakes every
//! waiter of the batch (group commit).

use super::bodies::{BodyKey, record_bodies};
use super::chain::{
    GENESIS, encode_line, load_signing_key, parse_line, read_hex32, sign_checkpoint, sync_dir,
    write_atomic,
};
use super::verify::{
    ANCHOR, ANCHOR_FORMAT, Anchor, PUBLIC_KEYS, Walker, last_line, segment_name, segments,
};
use super::{AuditConfig, AuditError, Entry, HashAlg, Kind, Record, key_id, read_public_keys};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;
use serde_json::json;
use sha2::Digest;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most messages one batch takes before it syncs.
const MAX_BATCH: usize = 4096;
/// Cut bytes up to this size are kept (base64) in the `recovered` record.
const KEEP_CUT: usize = 64 * 1024;
/// The pruner's first run after open, then its period.
const PRUNE_FIRST: Duration = Duration::from_secs(60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

type Reply = oneshot::Sender<Result<Receipt, AuditError>>;
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<FixedOffset> + Send + Sync>;

fn local_clock() -> Clock {
    Arc::new(|| chrono::Local::now().fixed_offset())
}

/// Proof that a record is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    /// Hex of the record's hash.
    pub hash: String,
    pub at: DateTime<FixedOffset>,
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

/// What [`AuditLog::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Segments deleted, oldest first.
    pub removed: Vec<PathBuf>,
    pub records_removed: u64,
    /// The seq of the checkpoint now in `anchor.json`.
    pub anchor_seq: Option<u64>,
    /// Why old segments were kept back, if some were.
    pub kept_back: Option<String>,
}

enum Msg {
    Append { entry: Entry, reply: Option<Reply> },
    Checkpoint { reply: Reply },
    Close { reply: Option<Reply> },
}

#[derive(Default)]
struct Shared {
    records: AtomicU64,
    fsyncs: AtomicU64,
    failures: AtomicU64,
    /// Messages sent to the writer (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    queued: AtomicU64,
    prune_lock: Mutex<()>,
    #[cfg(test)]
    gate: (Mutex<bool>, std::sync::Condvar),
}

impl Shared {
    fn failed(&self, n: u64) {
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

/// The audit log of a running gateway. Cheap to share (`Arc`); dropping
/// the last handle closes it cleanly (a `stop` record and a checkpoint).
pub struct AuditLog {
    dir: PathBuf,
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    public_key: VerifyingKey,
    keys: Vec<VerifyingKey>,
    alg: HashAlg,
    retention_days: Option<u64>,
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
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| AuditError::io(dir, e))?;
        }

        let key_path = cfg
            .signing_key_file
            .clone()
            .unwrap_or_else(|| dir.join("signing.key"));
        let key = load_signing_key(&key_path, cfg.signing_key_file.is_none())?;
        let public_key = key.verifying_key();
        let pub_path = dir.join(PUBLIC_KEYS);
        let mut keys = if pub_path.exists() {
            read_public_keys(&pub_path)?
        } else {
            Vec::new()
        };
        let mut notes = Vec::new();
        if !keys.contains(&public_key) {
            if !keys.is_empty() {
                let before: Vec<String> = keys.iter().map(key_id).collect();
                tracing::warn!(key_id = %key_id(&public_key), "the audit signing key changed");
                notes.push(Entry::new(Kind::KeyChange).detail(json!({
                    "key-id": key_id(&public_key),
                    "public-key": hex::encode(public_key.as_bytes()),
                    "previous-key-ids": before,
                })));
            }
            keys.push(public_key);
            let text: String = keys
                .iter()
                .map(|k| format!("{}\n", hex::encode(k.as_bytes())))
                .collect();
            write_atomic(&pub_path, text.as_bytes())?;
        }
        let body_key = if cfg.keep_bodies {
            let path = cfg
                .body_key_file
                .as_ref()
                .ok_or_else(|| AuditError::Config("keep-bodies needs body-key-file".into()))?;
            Some(BodyKey {
                cipher: cfg.body_cipher,
                key: read_hex32(path)?,
            })
        } else {
            None
        };

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

        let next = tail.seq + 1;
        let (seg_path, file) = match tail.segment {
            Some((first, path)) if first == next || path_len(&path)? > 0 => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| AuditError::io(&path, e))?;
                (path, file)
            }
            stale => {
                if let Some((_, path)) = stale {
                    // An empty last segment named for another seq: nothing
                    // in it to keep.
                    std::fs::remove_file(&path).map_err(|e| AuditError::io(&path, e))?;
                }
                new_segment(dir, next)?
            }
        };
        let seg_len = file
            .metadata()
            .map_err(|e| AuditError::io(&seg_path, e))?
            .len();

        let shared = Arc::new(Shared::default());
        let committed = Committed {
            seq: tail.seq,
            prev: tail.hash,
            since_cp: 0,
            seg_len,
            last_kind: None,
        };
        let mut w = Writer {
            dir: dir.to_path_buf(),
            alg,
            key,
            body_key,
            every: cfg.checkpoint_every,
            interval: Duration::from_millis(cfg.checkpoint_interval_ms),
            seg_max: cfg.segment_max_bytes,
            clock,
            file,
            seg_path,
            seg_len,
            seq: tail.seq,
            prev: tail.hash,
            since_cp: 0,
            last_cp: Instant::now(),
            last_kind: None,
            committed,
            buf: Vec::new(),
            waiting: Vec::new(),
            poisoned: false,
            shared: shared.clone(),
        };
        for note in notes {
            w.append(note, None);
        }
        w.append(
            Entry::new(Kind::Start).detail(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "hash": alg,
                "key-id": key_id(&public_key),
                "keep-bodies": cfg.keep_bodies,
            })),
            None,
        );
        w.commit()?;

        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("yiwang-audit".into())
            .spawn(move || w.run(rx))
            .map_err(|e| AuditError::io(dir, e))?;

        let pruner_stop = match cfg.retention_days {
            Some(days) => {
                let (stop_tx, stop_rx) = mpsc::channel::<()>();
                let at = dir.to_path_buf();
                let keys = keys.clone();
                let shared = shared.clone();
                let tx = tx.clone();
                std::thread::Builder::new()
                    .name("yiwang-audit-prune".into())
                    .spawn(move || {
                        let mut wait = PRUNE_FIRST;
                        while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(wait)
                        {
                            wait = PRUNE_EVERY;
                            match prune_dir(&at, &keys, Some(days), Utc::now(), &shared) {
                                Ok(report) => {
                                    if let Some(entry) = prune_entry(&report) {
                                        let _ = tx.send(Msg::Append { entry, reply: None });
                                    }
                                }
                                Err(e) => tracing::error!(error = %e, "audit retention failed"),
                            }
                        }
                    })
                    .map_err(|e| AuditError::io(dir, e))?;
                Some(stop_tx)
            }
            None => None,
        };

        Ok(Arc::new(AuditLog {
            dir: dir.to_path_buf(),
            tx,
            shared,
            public_key,
            keys,
            alg,
            retention_days: cfg.retention_days,
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
    /// `retention-days` before `now`, after verifying them and writing
    /// `anchor.json` (the checkpoint closing the last one). Records a
    /// `prune` entry when something was deleted. Without `retention-days`,
    /// does nothing.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<PruneReport, AuditError> {
        let report = prune_dir(
            &self.dir,
            &self.keys,
            self.retention_days,
            now,
            &self.shared,
        )?;
        if let Some(entry) = prune_entry(&report) {
            self.record(entry);
        }
        Ok(report)
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

fn path_len(path: &Path) -> Result<u64, AuditError> {
    Ok(std::fs::metadata(path)
        .map_err(|e| AuditError::io(path, e))?
        .len())
}

fn new_segment(dir: &Path, first_seq: u64) -> Result<(PathBuf, File), AuditError> {
    let path = dir.join(segment_name(first_seq));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| AuditError::io(&path, e))?;
    sync_dir(dir)?;
    Ok((path, file))
}

/// Where the chain ends.
struct Tail {
    seq: u64,
    hash: [u8; 32],
    /// The algorithm of the existing chain, when it could be told.
    alg: Option<HashAlg>,
    /// The last segment (first seq, path), if any.
    segment: Option<(u64, PathBuf)>,
}

/// Find the tail; cut a torn final line (noting a `recovered` record) and
/// note, without repairing, any other break in the last segment.
fn find_tail(
    dir: &Path,
    keys: &[VerifyingKey],
    notes: &mut Vec<Entry>,
) -> Result<Tail, AuditError> {
    let segs = segments(dir)?;
    let mut walker_alg = None;
    if let Some((first, path)) = segs.last() {
        recover_torn(path, notes)?;
        let mut w = Walker::from_anywhere(keys);
        if let Some(b) = w.segment(path, Some(*first), false)? {
            tracing::error!(broken = %b, "the audit chain is broken; not repairing it (run `yiwang audit verify`)");
            notes.push(Entry::new(Kind::ChainBreakFound).detail(json!({
                "file": file_name(&b.file),
                "line": b.line,
                "seq": b.seq,
                "reason": b.reason,
            })));
        }
        walker_alg = w.alg();
    }
    for (_, path) in segs.iter().rev() {
        if let Some((_, line, _)) = last_line(path).map_err(|e| AuditError::io(path, e))? {
            let (split, rec) = parse_line(&line).ok_or_else(|| AuditError::Corrupt {
                path: path.clone(),
                reason: "its last record is unparsable; cannot tell where the chain ends".into(),
            })?;
            return Ok(Tail {
                seq: rec.seq,
                hash: split.hash,
                alg: split.detect().or(walker_alg),
                segment: segs.last().cloned(),
            });
        }
    }
    let anchor_path = dir.join(ANCHOR);
    if anchor_path.exists() {
        let corrupt = |reason: &str| AuditError::Corrupt {
            path: anchor_path.clone(),
            reason: reason.to_string(),
        };
        let text = std::fs::read(&anchor_path).map_err(|e| AuditError::io(&anchor_path, e))?;
        let anchor: Anchor =
            serde_json::from_slice(&text).map_err(|e| corrupt(&format!("unparsable: {e}")))?;
        let (split, rec) = parse_line(anchor.checkpoint.as_bytes())
            .ok_or_else(|| corrupt("its checkpoint line is unparsable"))?;
        return Ok(Tail {
            seq: rec.seq,
            hash: split.hash,
            alg: split.detect(),
            segment: segs.last().cloned(),
        });
    }
    Ok(Tail {
        seq: 0,
        hash: GENESIS,
        alg: None,
        segment: segs.last().cloned(),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Cut an unterminated or unparsable final line off `path`.
fn recover_torn(path: &Path, notes: &mut Vec<Entry>) -> Result<(), AuditError> {
    let io = |e| AuditError::io(path, e);
    let Some((offset, line, terminated)) = last_line(path).map_err(io)? else {
        return Ok(());
    };
    let reason = if !terminated {
        "torn final line (no newline at the end)"
    } else if parse_line(&line).is_none() {
        "unparsable final line"
    } else {
        return Ok(());
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let mut cut = Vec::new();
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    f.read_to_end(&mut cut).map_err(io)?;
    f.set_len(offset).map_err(io)?;
    f.sync_all().map_err(io)?;
    tracing::warn!(path = %path.display(), bytes = cut.len(), reason,
        "cut a torn record off the audit log (recorded as `recovered`)");
    let mut detail = json!({
        "file": file_name(path),
        "offset": offset,
        "cut-bytes": cut.len(),
        "cut-sha256": hex::encode(sha2::Sha256::digest(&cut)),
        "reason": reason,
    });
    if cut.len() <= KEEP_CUT {
        detail["cut-base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&cut));
    }
    notes.push(Entry::new(Kind::Recovered).detail(detail));
    Ok(())
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

struct Writer {
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
    last_cp: Instant,
    last_kind: Option<Kind>,
    committed: Committed,
    /// Encoded lines not yet written.
    buf: Vec<u8>,
    /// The records in `buf`: their waiters and receipts.
    waiting: Vec<(Option<Reply>, Kind, Receipt)>,
    /// A failed batch may still be on disk past `committed.seg_len`.
    poisoned: bool,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
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
    fn push(&mut self, entry: Entry, reply: Option<Reply>) {
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

    fn checkpoint_entry(&self) -> Entry {
        let detail = sign_checkpoint(&self.key, self.alg, self.seq, &self.prev);
        Entry::new(Kind::Checkpoint).detail(serde_json::to_value(detail).unwrap_or_default())
    }

    fn checkpoint(&mut self) {
        let entry = self.checkpoint_entry();
        self.push(entry, None);
    }

    /// Past the size limit: close the segment with a checkpoint, sync, roll.
    fn maybe_roll(&mut self) {
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
    fn commit(&mut self) -> Result<(), AuditError> {
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

fn prune_entry(report: &PruneReport) -> Option<Entry> {
    if report.removed.is_empty() {
        return None;
    }
    let names: Vec<String> = report.removed.iter().map(|p| file_name(p)).collect();
    Some(Entry::new(Kind::Prune).detail(json!({
        "removed": names,
        "records-removed": report.records_removed,
        "anchor-seq": report.anchor_seq,
    })))
}

fn prune_dir(
    dir: &Path,
    keys: &[VerifyingKey],
    retention_days: Option<u64>,
    now: DateTime<Utc>,
    shared: &Shared,
) -> Result<PruneReport, AuditError> {
    let mut report = PruneReport::default();
    let Some(days) = retention_days else {
        return Ok(report);
    };
    let Some(cutoff) = i64::try_from(days)
        .ok()
        .and_then(chrono::Duration::try_days)
        .and_then(|span| now.checked_sub_signed(span))
    else {
        return Ok(report);
    };
    let _guard = shared.prune_lock.lock().unwrap_or_else(|p| p.into_inner());
    let segs = segments(dir)?;
    // Never the last segment: it is being written.
    let closed = &segs[..segs.len().saturating_sub(1)];
    let mut chosen = 0;
    let mut anchor = None;
    for (i, (_, path)) in closed.iter().enumerate() {
        let last = last_line(path).map_err(|e| AuditError::io(path, e))?;
        let Some((_, line, true)) = last else {
            report.kept_back = Some(format!("{} does not end with a full line", file_name(path)));
            break;
        };
        let Some((split, rec)) = parse_line(&line) else {
            report.kept_back = Some(format!("{} ends with an unparsable line", file_name(path)));
            break;
        };
        if rec.kind != Kind::Checkpoint {
            report.kept_back = Some(format!(
                "{} does not end with a checkpoint",
                file_name(path)
            ));
            break;
        }
        if rec.at.with_timezone(&Utc) >= cutoff {
            break;
        }
        let (seq, hash) = (rec.seq, split.hash);
        chosen = i + 1;
        anchor = Some((line, seq, hash));
    }
    let Some((line, seq, hash)) = anchor else {
        return Ok(report);
    };
    // Verify what is about to go: evidence of tampering is never pruned.
    let mut w = Walker::new(keys);
    let anchor_path = dir.join(ANCHOR);
    let mut broken = if anchor_path.exists() {
        w.anchor(&anchor_path)?
    } else {
        None
    };
    for (first, path) in &closed[..chosen] {
        if broken.is_some() {
            break;
        }
        broken = w.segment(path, Some(*first), false)?;
    }
    if let Some(b) = broken {
        tracing::error!(broken = %b, "audit retention: not pruning a broken chain");
        report.kept_back = Some(format!("not pruned, the chain is broken at {b}"));
        return Ok(report);
    }
    let records = w.finish(None).records;
    let checkpoint = String::from_utf8(line).map_err(|_| AuditError::Corrupt {
        path: closed[chosen - 1].1.clone(),
        reason: "the closing checkpoint is not UTF-8".into(),
    })?;
    let names: Vec<String> = closed[..chosen].iter().map(|(_, p)| file_name(p)).collect();
    let doc = Anchor {
        format: ANCHOR_FORMAT.to_string(),
        seq,
        hash: hex::encode(hash),
        pruned_at: now.to_rfc3339(),
        pruned_segments: names,
        checkpoint,
    };
    let mut text =
        serde_json::to_vec_pretty(&doc).map_err(|e| AuditError::Encode(e.to_string()))?;
    text.push(b'\n');
    write_atomic(&anchor_path, &text)?;
    for (_, path) in &closed[..chosen] {
        std::fs::remove_file(path).map_err(|e| AuditError::io(path, e))?;
        report.removed.push(path.clone());
    }
    sync_dir(dir)?;
    report.records_removed = records;
    report.anchor_seq = Some(seq);
    tracing::info!(
        segments = chosen,
        records,
        anchor_seq = seq,
        "audit retention pruned old segments"
    );
    Ok(report)
}
