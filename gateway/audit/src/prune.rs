//! Retention: whole closed segments whose newest record is older than
//! `retention-days` are deleted, oldest first — after they are verified
//! (evidence of tampering is never pruned) and `anchor.json` holds the
//! signed checkpoint closing the last of them, so the chain stays
//! verifiable from there. The last segment, being written, is never pruned.
//!
//! The order matters: the `prune` record (naming the segments, the anchor's
//! seq and hash, and the retention) is committed and signed by a checkpoint
//! *before* `anchor.json` is written and anything deleted. `verify` accepts
//! an anchor only when the trail after it holds that signed record, so
//! deleting the first segments and writing an anchor around a genuine
//! checkpoint (finding: old history deleted without the key) is a break. A
//! crash between the record and the deletion leaves a harmless record and
//! every segment; the next pruning does it again.

use crate::chain::{parse_line, write_atomic};
use crate::layout::sync_dir;
use crate::layout::{ANCHOR, ANCHOR_FORMAT, Anchor, file_name, last_line, segments};
use crate::verify::{Broken, Walker};
use crate::writer::Msg;
use crate::{AuditError, Entry, Kind};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// The pruner's first run after open, then its period.
const PRUNE_FIRST: Duration = Duration::from_secs(60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What [`AuditLog::prune`](crate::AuditLog::prune) did.
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

/// Where retention runs: the directory, the keys its checkpoints are
/// verified with, and the lock that keeps two prunings apart.
#[derive(Clone)]
pub(crate) struct Retention {
    pub dir: PathBuf,
    pub keys: Vec<VerifyingKey>,
    pub days: Option<u64>,
    /// Keeps two prunings (the hourly one, one asked for) apart.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

/// The last segment to go, and the checkpoint that closes it.
struct Cut {
    /// How many of the closed segments go.
    segments: usize,
    line: Vec<u8>,
    seq: u64,
    hash: [u8; 32],
}

/// A pruning decided and verified, not yet done: what goes, and the
/// checkpoint that will be the anchor.
pub(crate) struct Plan {
    cut: Cut,
    going: Vec<(u64, PathBuf)>,
    records: u64,
}

impl Retention {
    /// Run a pruning about hourly on a thread of its own, committing each
    /// `prune` record (and the checkpoint that signs it) through `tx`
    /// before anything is deleted, until the returned sender is dropped.
    pub fn spawn(self, tx: mpsc::Sender<Msg>) -> Result<mpsc::Sender<()>, AuditError> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let dir = self.dir.clone();
        std::thread::Builder::new()
            .name("yiwang-audit-prune".into())
            .spawn(move || {
                let mut wait = PRUNE_FIRST;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(wait) {
                    wait = PRUNE_EVERY;
                    if let Err(e) = self.prune_blocking(Utc::now(), &tx) {
                        tracing::error!(error = %e, "audit retention failed");
                    }
                }
            })
            .map_err(|e| AuditError::io(dir, e))?;
        Ok(stop_tx)
    }

    /// [`Retention::plan`], the signed `prune` record through the writer,
    /// then [`Retention::execute`] (from a thread that may block).
    fn prune_blocking(
        &self,
        now: DateTime<Utc>,
        tx: &mpsc::Sender<Msg>,
    ) -> Result<PruneReport, AuditError> {
        let _guard = self.lock.blocking_lock();
        let mut report = PruneReport::default();
        let Some(plan) = self.plan(now, &mut report)? else {
            return Ok(report);
        };
        let (cp_tx, cp_rx) = tokio::sync::oneshot::channel();
        let entry = self.prune_entry(&plan);
        let closed = |_| AuditError::Closed;
        tx.send(Msg::Append { entry, reply: None })
            .map_err(closed)?;
        tx.send(Msg::Checkpoint { reply: cp_tx }).map_err(closed)?;
        cp_rx.blocking_recv().map_err(|_| AuditError::Closed)??;
        self.execute(plan, now, &mut report)?;
        Ok(report)
    }

    /// Choose the closed segments older than the retention before `now`
    /// and verify them; `None` when nothing is to go (`report` says why
    /// when something was kept back).
    pub fn plan(
        &self,
        now: DateTime<Utc>,
        report: &mut PruneReport,
    ) -> Result<Option<Plan>, AuditError> {
        let Some(cutoff) = self
            .days
            .and_then(|days| i64::try_from(days).ok())
            .and_then(chrono::Duration::try_days)
            .and_then(|span| now.checked_sub_signed(span))
        else {
            return Ok(None);
        };
        let segs = segments(&self.dir)?;
        // Never the last segment: it is being written.
        let closed = &segs[..segs.len().saturating_sub(1)];
        let Some(cut) = choose(closed, cutoff, report)? else {
            return Ok(None);
        };
        let going = closed[..cut.segments].to_vec();
        let mut w = Walker::new(&self.keys);
        if let Some(b) = self.verify_going(&mut w, &going)? {
            tracing::error!(broken = %b, "audit retention: not pruning a broken chain");
            report.kept_back = Some(format!("not pruned, the chain is broken at {b}"));
            return Ok(None);
        }
        let records = w.finish(None).records;
        Ok(Some(Plan {
            cut,
            going,
            records,
        }))
    }

    /// The `prune` record of a plan: written, and signed by a checkpoint,
    /// before the anchor exists (so an anchor without it is a forgery).
    pub fn prune_entry(&self, plan: &Plan) -> Entry {
        let names: Vec<String> = plan.going.iter().map(|(_, p)| file_name(p)).collect();
        Entry::new(Kind::Prune).detail(json!({
            "removed": names,
            "records-removed": plan.records,
            "anchor-seq": plan.cut.seq,
            "anchor-hash": hex::encode(plan.cut.hash),
            "retention-days": self.days,
        }))
    }

    /// Write `anchor.json` and delete the planned segments (once their
    /// `prune` record is signed).
    pub fn execute(
        &self,
        plan: Plan,
        now: DateTime<Utc>,
        report: &mut PruneReport,
    ) -> Result<(), AuditError> {
        self.write_anchor(&plan.cut, &plan.going, now)?;
        for (_, path) in &plan.going {
            std::fs::remove_file(path).map_err(|e| AuditError::io(path, e))?;
            report.removed.push(path.clone());
        }
        sync_dir(&self.dir)?;
        report.records_removed = plan.records;
        report.anchor_seq = Some(plan.cut.seq);
        tracing::info!(
            segments = plan.going.len(),
            records = plan.records,
            anchor_seq = plan.cut.seq,
            "audit retention pruned old segments"
        );
        Ok(())
    }

    /// Walk the anchor (if any) and the segments about to go.
    fn verify_going(
        &self,
        w: &mut Walker<'_>,
        going: &[(u64, PathBuf)],
    ) -> Result<Option<Broken>, AuditError> {
        let anchor_path = self.dir.join(ANCHOR);
        if anchor_path.exists()
            && let Some(b) = w.anchor(&anchor_path)?
        {
            return Ok(Some(b));
        }
        for (first, path) in going {
            if let Some(b) = w.segment(path, Some(*first), false)? {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// `anchor.json` for the checkpoint closing the last segment to go.
    fn write_anchor(
        &self,
        cut: &Cut,
        going: &[(u64, PathBuf)],
        now: DateTime<Utc>,
    ) -> Result<(), AuditError> {
        let checkpoint = String::from_utf8(cut.line.clone()).map_err(|_| AuditError::Corrupt {
            path: going[going.len() - 1].1.clone(),
            reason: "the closing checkpoint is not UTF-8".into(),
        })?;
        let doc = Anchor {
            format: ANCHOR_FORMAT.to_string(),
            seq: cut.seq,
            hash: hex::encode(cut.hash),
            pruned_at: now.to_rfc3339(),
            pruned_segments: going.iter().map(|(_, p)| file_name(p)).collect(),
            checkpoint,
        };
        let mut text =
            serde_json::to_vec_pretty(&doc).map_err(|e| AuditError::Encode(e.to_string()))?;
        text.push(b'\n');
        write_atomic(&self.dir.join(ANCHOR), &text)
    }
}

/// The oldest run of closed segments whose closing checkpoint is older than
/// `cutoff`; a segment that does not end with a checkpoint stops the run
/// (and says why in `report`).
fn choose(
    closed: &[(u64, PathBuf)],
    cutoff: DateTime<Utc>,
    report: &mut PruneReport,
) -> Result<Option<Cut>, AuditError> {
    let mut cut = None;
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
        cut = Some(Cut {
            segments: i + 1,
            line,
            seq,
            hash,
        });
    }
    Ok(cut)
}
