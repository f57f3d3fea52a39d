//! Offline verification: the anchor, every segment, every link, every hash,
//! every checkpoint signature. Read-only; does not need the writer.

use crate::chain::{self, CheckpointDetail, GENESIS, Split};
use crate::layout::{ANCHOR, ANCHOR_FORMAT, Anchor, PUBLIC_KEYS, segments};
use crate::{AuditError, HashAlg, Kind, Record, key_id, read_public_keys};
use chrono::{DateTime, FixedOffset};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records read in the segments (up to the first break).
    pub records: u64,
    /// Of which checkpoints whose signature verified.
    pub checkpoints: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_checkpoint_seq: Option<u64>,
    /// When the last checkpoint was written (its `at`).
    pub last_checkpoint_at: Option<DateTime<FixedOffset>>,
    /// Records after the last checkpoint: not yet covered by a signature,
    /// so they could be cut off the end unnoticed.
    pub records_after_last_checkpoint: u64,
    /// The seq of the checkpoint in `anchor.json`, when older segments were
    /// pruned.
    pub anchor_seq: Option<u64>,
    /// The hash of the chain.
    pub hash: Option<HashAlg>,
    /// Bytes of an unterminated fragment at the very end of the last
    /// segment (a write in flight, or a crash that open will recover).
    pub unterminated_tail_bytes: u64,
    /// The first broken record, if any.
    pub broken: Option<Broken>,
    /// With `--witness`: what the witnessed checkpoints covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessCoverage>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The first broken record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// Its seq, when the line could be read.
    pub seq: Option<u64>,
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}")?,
            None => f.write_str("a record")?,
        }
        write!(
            f,
            " ({} line {}): {}",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// Verify `dir` with `public_key`, or else every key in `<dir>/signing.pub`.
///
/// Errors are for what stops the walk (an unreadable directory, no key);
/// a broken chain is an `Ok` report with [`VerifyReport::broken`] set.
pub fn verify(dir: &Path, public_key: Option<&VerifyingKey>) -> Result<VerifyReport, AuditError> {
    let keys = match public_key {
        Some(k) => vec![*k],
        None => read_public_keys(&dir.join(PUBLIC_KEYS))?,
    };
    verify_with_keys(dir, &keys)
}

/// Verify `dir`, accepting checkpoints signed by any of `keys`.
pub fn verify_with_keys(dir: &Path, keys: &[VerifyingKey]) -> Result<VerifyReport, AuditError> {
    if !dir.is_dir() {
        return Err(AuditError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let mut w = Walker::new(keys);
    let anchor = dir.join(ANCHOR);
    if anchor.exists()
        && let Some(b) = w.anchor(&anchor)?
    {
        return Ok(w.finish(Some(b)));
    }
    let segs = segments(dir)?;
    let n = segs.len();
    for (i, (seq, path)) in segs.into_iter().enumerate() {
        if let Some(b) = w.segment(&path, Some(seq), i + 1 == n)? {
            return Ok(w.finish(Some(b)));
        }
    }
    let unbacked = w.unbacked_anchor(&anchor);
    Ok(w.finish(unbacked))
}

/// Walks records in order, checking each against the one before.
pub(crate) struct Walker<'k> {
    keys: &'k [VerifyingKey],
    alg: Option<HashAlg>,
    /// The seq and hash of the last record (or the anchor).
    last: Option<(u64, [u8; 32])>,
    /// The next record is the first after the anchor.
    after_anchor: bool,
    /// Accept the first record's seq and prev as they are (open's look at
    /// the last segment alone).
    trust_first: bool,
    /// Anchor seqs named by `prune` records not yet followed by a
    /// checkpoint, and those a verified checkpoint has signed.
    unsigned_prunes: Vec<u64>,
    signed_prunes: BTreeSet<u64>,
    /// Checkpoint lines a witness holds, by seq: each must be met as is.
    witnessed: Option<&'k BTreeMap<u64, Vec<u8>>>,
    witnessed_matches: u64,
    report: VerifyReport,
}

impl<'k> Walker<'k> {
    pub fn new(keys: &'k [VerifyingKey]) -> Self {
        Walker {
            keys,
            alg: None,
            last: None,
            after_anchor: false,
            trust_first: false,
            unsigned_prunes: Vec::new(),
            signed_prunes: BTreeSet::new(),
            witnessed: None,
            witnessed_matches: 0,
            report: VerifyReport::default(),
        }
    }

    /// A walker for one segment taken alone.
    pub fn from_anywhere(keys: &'k [VerifyingKey]) -> Self {
        Walker {
            trust_first: true,
            ..Walker::new(keys)
        }
    }

    /// A walker that also requires these lines (a witness's checkpoints)
    /// at their seqs, byte for byte.
    pub fn expecting(self, witnessed: &'k BTreeMap<u64, Vec<u8>>) -> Self {
        Walker {
            witnessed: Some(witnessed),
            ..self
        }
    }

    /// Witnessed checkpoints met, identical, so far.
    pub fn witnessed_matches(&self) -> u64 {
        self.witnessed_matches
    }

    /// The seq the chain walked so far ends at (the anchor's, or 0).
    pub fn end_seq(&self) -> u64 {
        self.last.map_or(0, |(seq, _)| seq)
    }

    /// A line the witness holds for `seq` that `bytes` is not.
    fn unwitnessed(&mut self, seq: u64, bytes: &[u8]) -> Option<String> {
        let held = self.witnessed?.get(&seq)?;
        if held.as_slice() == bytes {
            self.witnessed_matches += 1;
            return None;
        }
        Some(format!(
            "differs from the checkpoint the witness holds for seq {seq} \
             (rewritten, re-signed, or a checkpoint stripped)"
        ))
    }

    pub fn alg(&self) -> Option<HashAlg> {
        self.alg
    }

    /// The seq and time of the last checkpoint walked whose signature
    /// verified.
    pub fn last_checkpoint(&self) -> Option<(u64, DateTime<FixedOffset>)> {
        self.report
            .last_checkpoint_seq
            .zip(self.report.last_checkpoint_at)
    }

    /// Check one line (without `\n`) taken alone, as a walker
    /// [`from_anywhere`](Self::from_anywhere) does its first: whether it
    /// parses, its hash holds and, for a checkpoint, its signature.
    pub fn lone_line(&mut self, bytes: &[u8]) -> bool {
        self.line(bytes, None).is_ok()
    }

    /// After a whole walk: an anchor is valid only when the trail holds the
    /// signed `prune` record that made it; otherwise the records up to it
    /// were deleted, not pruned.
    pub fn unbacked_anchor(&self, path: &Path) -> Option<Broken> {
        let anchor = self.report.anchor_seq?;
        if self.signed_prunes.contains(&anchor) {
            return None;
        }
        let from = self
            .signed_prunes
            .range(..anchor)
            .next_back()
            .map_or(1, |earlier| earlier + 1);
        Some(Broken {
            seq: Some(anchor),
            file: path.to_path_buf(),
            line: 1,
            reason: format!(
                "no signed prune record made this anchor: records {from}..={anchor} are missing \
                 (segments deleted, not pruned by retention)"
            ),
        })
    }

    pub fn finish(mut self, broken: Option<Broken>) -> VerifyReport {
        self.report.hash = self.alg;
        self.report.broken = broken;
        self.report
    }

    pub fn anchor(&mut self, path: &Path) -> Result<Option<Broken>, AuditError> {
        let text = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
        let broken = |seq, reason: &str| {
            Some(Broken {
                seq,
                file: path.to_path_buf(),
                line: 1,
                reason: reason.to_string(),
            })
        };
        let Ok(anchor) = serde_json::from_slice::<Anchor>(&text) else {
            return Ok(broken(None, "unparsable anchor"));
        };
        if anchor.format != ANCHOR_FORMAT {
            return Ok(broken(None, "unparsable anchor (unknown format)"));
        }
        let Some((split, rec)) = chain::parse_line(anchor.checkpoint.as_bytes()) else {
            return Ok(broken(None, "unparsable anchor (its checkpoint line)"));
        };
        let seq = Some(rec.seq);
        if rec.kind != Kind::Checkpoint {
            return Ok(broken(seq, "the anchor is not a checkpoint"));
        }
        let Some(alg) = split.detect() else {
            return Ok(broken(seq, "anchor hash mismatch (anchor changed)"));
        };
        if let Err(fault) = self.check_checkpoint("anchor", alg, &rec, &split) {
            return Ok(broken(seq, &fault.to_string()));
        }
        if anchor.seq != rec.seq || anchor.hash != hex::encode(split.hash) {
            return Ok(broken(
                seq,
                "the anchor's seq or hash differ from its checkpoint",
            ));
        }
        if let Some(reason) = self.unwitnessed(rec.seq, anchor.checkpoint.as_bytes()) {
            return Ok(broken(seq, &format!("the anchor {reason}")));
        }
        self.alg = Some(alg);
        self.last = Some((rec.seq, split.hash));
        self.after_anchor = true;
        self.report.anchor_seq = Some(rec.seq);
        Ok(None)
    }

    /// Walk one segment; `named` is the seq its file name gives, `last`
    /// whether it is the last segment (whose unterminated tail is no break).
    pub fn segment(
        &mut self,
        path: &Path,
        named: Option<u64>,
        last: bool,
    ) -> Result<Option<Broken>, AuditError> {
        let f = std::fs::File::open(path).map_err(|e| AuditError::io(path, e))?;
        let mut r = BufReader::with_capacity(256 * 1024, f);
        let mut line = Vec::new();
        let mut lineno = 0usize;
        loop {
            line.clear();
            let n = r
                .read_until(b'\n', &mut line)
                .map_err(|e| AuditError::io(path, e))?;
            if n == 0 {
                return Ok(None);
            }
            lineno += 1;
            if line.last() != Some(&b'\n') {
                if last {
                    self.report.unterminated_tail_bytes = n as u64;
                    return Ok(None);
                }
                return Ok(Some(Broken {
                    seq: None,
                    file: path.to_path_buf(),
                    line: lineno,
                    reason: "unparsable line (a closed segment ends without a newline)".into(),
                }));
            }
            line.pop();
            let named = if lineno == 1 { named } else { None };
            if let Err((seq, reason)) = self.line(&line, named) {
                return Ok(Some(Broken {
                    seq,
                    file: path.to_path_buf(),
                    line: lineno,
                    reason,
                }));
            }
        }
    }

    /// Check one line (without `\n`) against the chain so far.
    fn line(&mut self, bytes: &[u8], named: Option<u64>) -> Result<(), (Option<u64>, String)> {
        let Some((split, rec)) = chain::parse_line(bytes) else {
            return Err((None, "unparsable line".into()));
        };
        let seq = rec.seq;
        let fail = |reason: String| Err((Some(seq), reason));
        let alg = match self.alg {
            Some(a) if split.hash_ok(a) => a,
            Some(_) => return fail("hash mismatch (record changed)".into()),
            None => match split.detect() {
                Some(a) => a,
                None => return fail("hash mismatch (record changed)".into()),
            },
        };
        match self.last {
            None if self.trust_first => {}
            None => {
                if seq != 1 {
                    return fail(format!(
                        "first record is seq {seq}, not 1, and there is no anchor.json \
                         (older segments deleted, or the anchor removed)"
                    ));
                }
                if split.prev != GENESIS {
                    return fail("prev of seq 1 is not the zero hash".into());
                }
            }
            Some((last_seq, last_hash)) => {
                if self.after_anchor {
                    if seq != last_seq + 1 || split.prev != last_hash {
                        return fail(format!(
                            "first record after the anchor does not link to it \
                             (the anchor is seq {last_seq}; this is seq {seq})"
                        ));
                    }
                } else if seq != last_seq + 1 {
                    return fail(format!(
                        "seq {seq} follows {last_seq} (record deleted or reordered)"
                    ));
                } else if split.prev != last_hash {
                    return fail(format!("prev does not match the hash of seq {last_seq}"));
                }
            }
        }
        if let Some(named) = named
            && named != seq
        {
            return fail(format!(
                "the segment is named for seq {named} but starts at seq {seq} (renamed?)"
            ));
        }
        if let Some(reason) = self.unwitnessed(seq, bytes) {
            return fail(reason);
        }
        if rec.kind == Kind::Checkpoint {
            if let Err(fault) = self.check_checkpoint("checkpoint", alg, &rec, &split) {
                return fail(fault.to_string());
            }
            self.report.checkpoints += 1;
            self.signed_prunes.extend(self.unsigned_prunes.drain(..));
            self.report.last_checkpoint_seq = Some(seq);
            self.report.last_checkpoint_at = Some(rec.at);
            self.report.records_after_last_checkpoint = 0;
        } else {
            if rec.kind == Kind::Prune
                && let Some(anchor) = rec.detail.get("anchor-seq").and_then(|v| v.as_u64())
            {
                self.unsigned_prunes.push(anchor);
            }
            self.report.records_after_last_checkpoint += 1;
        }
        self.alg = Some(alg);
        self.report.records += 1;
        self.report.first_seq.get_or_insert(seq);
        self.report.last_seq = Some(seq);
        self.last = Some((seq, split.hash));
        self.after_anchor = false;
        Ok(())
    }

    /// A checkpoint signs the seq and hash of the record before it, as the
    /// chain has them (not as its detail claims).
    fn check_checkpoint(
        &self,
        what: &'static str,
        alg: HashAlg,
        rec: &Record,
        split: &Split<'_>,
    ) -> Result<(), CheckpointFault> {
        let Ok(d) = serde_json::from_value::<CheckpointDetail>(rec.detail.clone()) else {
            return Err(CheckpointFault::Unreadable { what });
        };
        if d.alg != alg {
            return Err(CheckpointFault::OtherHash {
                what,
                named: d.alg,
                chain: alg,
            });
        }
        let Some(key) = self.keys.iter().find(|k| key_id(k) == d.key_id) else {
            let ids: Vec<String> = self.keys.iter().map(key_id).collect();
            return Err(CheckpointFault::OtherKey {
                what,
                key_id: d.key_id,
                verifying: ids.join(", "),
            });
        };
        let covers = rec.seq.saturating_sub(1);
        if rec.seq == 0 || !chain::signature_ok(key, alg, covers, &split.prev, &d.signature) {
            return Err(CheckpointFault::BadSignature { what });
        }
        if d.covers_seq != covers || d.covers_hash != hex::encode(split.prev) {
            return Err(CheckpointFault::DetailMismatch { what });
        }
        Ok(())
    }
}

/// Why a checkpoint (or the anchor's, `what` says which) does not verify;
/// its text is the [`Broken::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum CheckpointFault {
    #[error("{what} detail unreadable")]
    Unreadable { what: &'static str },
    #[error("{what} names hash {named} but the chain uses {chain}")]
    OtherHash {
        what: &'static str,
        named: HashAlg,
        chain: HashAlg,
    },
    #[error("{what} signed by key {key_id}, not by the verifying key ({verifying})")]
    OtherKey {
        what: &'static str,
        key_id: String,
        verifying: String,
    },
    #[error("{what} signature invalid")]
    BadSignature { what: &'static str },
    #[error("{what} detail does not match the record it follows")]
    DetailMismatch { what: &'static str },
}

/// What the witness check covered (part of [`VerifyReport`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WitnessCoverage {
    /// The witnessed trails checked (ids).
    pub trails: Vec<String>,
    /// Witnessed checkpoints found in the trail, identical.
    pub checkpoints: u64,
    /// Witnessed checkpoints older than the anchor (pruned, not checked).
    pub pruned: u64,
    pub last_witnessed_seq: Option<u64>,
    /// Records after the last witnessed checkpoint: a key holder could
    /// still cut or rewrite these unnoticed.
    pub records_not_witnessed: u64,
}
