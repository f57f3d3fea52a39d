//! Where the chain ends, found at open. Only the last segment is read: a
//! torn final line is cut off and noted (`recovered`, with the cut bytes),
//! any other break is noted (`chain-break-found`) and never repaired, since
//! history is not rewritten. The whole chain is `verify`'s job.
//!
//! Open also finds the last signed checkpoint, so that the writer measures
//! its checkpoint rules from the trail rather than from its own start: a
//! gateway killed again and again still signs what each run wrote, at the
//! next open.

use crate::chain::{GENESIS, parse_line};
use crate::layout::{ANCHOR, Anchor, file_name, last_line, new_segment, path_len, segments};
use crate::verify::Walker;
use crate::{AuditError, Entry, HashAlg, Kind};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use ed25519_dalek::VerifyingKey;
use serde_json::json;
use sha2::Digest;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Cut bytes up to this size are kept (base64) in the `recovered` record.
const KEEP_CUT: usize = 64 * 1024;

/// Where the chain ends.
pub(crate) struct Tail {
    pub seq: u64,
    pub hash: [u8; 32],
    /// The algorithm of the existing chain, when it could be told.
    pub alg: Option<HashAlg>,
    /// The last segment (first seq, path), if any.
    pub segment: Option<(u64, PathBuf)>,
    /// The last checkpoint on disk whose signature verified, if any.
    pub checkpoint: Option<LastCheckpoint>,
}

/// The last signed checkpoint found at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastCheckpoint {
    pub seq: u64,
    pub at: DateTime<FixedOffset>,
}

impl Tail {
    /// Records after the last signed checkpoint (all of them without one):
    /// what a crash left unsigned.
    pub fn unsigned(&self) -> u64 {
        self.seq - self.checkpoint.map_or(0, |c| c.seq.min(self.seq))
    }

    /// The segment to append to: the last one, unless it is empty and named
    /// for another seq (then it is replaced by a new one).
    pub fn open_segment(&self, dir: &Path) -> Result<(PathBuf, File), AuditError> {
        let next = self.seq + 1;
        match &self.segment {
            Some((first, path)) if *first == next || path_len(path)? > 0 => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| AuditError::io(path, e))?;
                Ok((path.clone(), file))
            }
            stale => {
                if let Some((_, path)) = stale {
                    // An empty last segment named for another seq: nothing
                    // in it to keep.
                    std::fs::remove_file(path).map_err(|e| AuditError::io(path, e))?;
                }
                new_segment(dir, next)
            }
        }
    }
}

/// Find the tail; cut a torn final line (noting a `recovered` record) and
/// note, without repairing, any other break in the last segment.
pub(crate) fn find_tail(
    dir: &Path,
    keys: &[VerifyingKey],
    notes: &mut Vec<Entry>,
) -> Result<Tail, AuditError> {
    let segs = segments(dir)?;
    let mut walker_alg = None;
    let mut checkpoint = None;
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
        checkpoint = w.last_checkpoint();
    }
    let checkpoint = match checkpoint {
        Some(found) => Some(found),
        None => earlier_checkpoint(dir, &segs, keys)?,
    };
    let mut tail = chain_end(dir, &segs, walker_alg)?;
    tail.checkpoint = checkpoint.map(|(seq, at)| LastCheckpoint { seq, at });
    Ok(tail)
}

/// The last record of the newest non-empty segment, else the anchor's.
fn chain_end(
    dir: &Path,
    segs: &[(u64, PathBuf)],
    walker_alg: Option<HashAlg>,
) -> Result<Tail, AuditError> {
    let segment = segs.last().cloned();
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
                segment,
                checkpoint: None,
            });
        }
    }
    let anchor_path = dir.join(ANCHOR);
    if anchor_path.exists() {
        return anchor_tail(&anchor_path, segment);
    }
    Ok(Tail {
        seq: 0,
        hash: GENESIS,
        alg: None,
        segment,
        checkpoint: None,
    })
}

/// The last segment holds no signed checkpoint: the one closing the newest
/// earlier non-empty segment (a segment rolls only after a checkpoint), or
/// else the anchor's.
fn earlier_checkpoint(
    dir: &Path,
    segs: &[(u64, PathBuf)],
    keys: &[VerifyingKey],
) -> Result<Option<(u64, DateTime<FixedOffset>)>, AuditError> {
    let mut w = Walker::from_anywhere(keys);
    for (_, path) in segs.iter().rev().skip(1) {
        if let Some((_, line, _)) = last_line(path).map_err(|e| AuditError::io(path, e))? {
            w.lone_line(&line);
            return Ok(w.last_checkpoint());
        }
    }
    let anchor_path = dir.join(ANCHOR);
    if anchor_path.exists() {
        w.lone_line(read_anchor(&anchor_path)?.checkpoint.as_bytes());
    }
    Ok(w.last_checkpoint())
}

/// Every segment is empty (or gone) after a pruning: the chain ends at the
/// anchor's checkpoint.
fn anchor_tail(anchor_path: &Path, segment: Option<(u64, PathBuf)>) -> Result<Tail, AuditError> {
    let corrupt = |reason: &str| AuditError::Corrupt {
        path: anchor_path.to_path_buf(),
        reason: reason.to_string(),
    };
    let anchor = read_anchor(anchor_path)?;
    let (split, rec) = parse_line(anchor.checkpoint.as_bytes())
        .ok_or_else(|| corrupt("its checkpoint line is unparsable"))?;
    Ok(Tail {
        seq: rec.seq,
        hash: split.hash,
        alg: split.detect(),
        segment,
        checkpoint: None,
    })
}

fn read_anchor(path: &Path) -> Result<Anchor, AuditError> {
    let text = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| AuditError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("unparsable: {e}"),
    })
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
