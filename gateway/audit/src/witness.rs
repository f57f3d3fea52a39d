//! Witnesses: signed checkpoints held off the box, so that what the key
//! holder (or anyone with write access to the directory) can do to the
//! trail — cut its tail, strip checkpoints and re-hash, swap `signing.pub`
//! and re-sign — shows up against what someone else already holds.
//!
//! A gateway pushes each checkpoint record, byte for byte, with its public
//! key, to the witnesses it is configured with (the push loop lives in the
//! gateway). A witness keeps them append-only per *trail*: the trail id is
//! the SHA-256 of the signing public key, so a swapped key is a different
//! trail, never a continuation. It refuses a checkpoint that does not stand
//! on its own (not a checkpoint line, hash wrong, signature not the key's),
//! one whose seq goes backwards, and one that conflicts with a checkpoint
//! it holds at the same seq (a fork). [`WitnessStore`] is that store.
//!
//! [`verify_witnessed`] checks a trail against what a witness holds
//! ([`WitnessDoc`], the witness's `GET` answer or a file exported from it):
//! every witnessed checkpoint must be in the trail and identical, the
//! witnessed public key must be among the verifying keys, and the chain up
//! to the last witnessed checkpoint must be intact. What it cannot see is
//! reported: the records after the last witnessed checkpoint, and anything
//! a key holder did before the first one.

use crate::chain::parse_line;
use crate::layout::{ANCHOR, PUBLIC_KEYS, last_line, make_dir, segments};
use crate::verify::{Broken, VerifyReport, Walker, WitnessCoverage};
use crate::{AuditError, Kind, key_id, read_public_keys};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The format of a [`WitnessDoc`].
pub const WITNESS_FORMAT: &str = "yiwang-witness/1";

/// A trail's id: the lowercase hex SHA-256 of its Ed25519 public key.
pub fn trail_id(key: &VerifyingKey) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// What a gateway posts to a witness: one checkpoint and the key it claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CheckpointPush {
    /// The signing public key, 64 hex chars.
    pub public_key: String,
    /// The checkpoint record's line, byte for byte, without its newline.
    pub line: String,
}

/// One checkpoint as a witness holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct WitnessedCheckpoint {
    /// The checkpoint record's seq.
    pub seq: u64,
    /// Its hash (the chain head it commits to).
    pub hash: String,
    /// Its line, byte for byte.
    pub line: String,
    /// When the witness received it (RFC 3339).
    pub received_at: String,
    /// Who pushed it (the principal at the witness).
    pub pushed_by: String,
}

/// Everything a witness holds for one trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct WitnessedTrail {
    pub trail_id: String,
    pub public_key: String,
    pub checkpoints: Vec<WitnessedCheckpoint>,
}

impl WitnessedTrail {
    fn pushers(&self) -> BTreeSet<&str> {
        self.checkpoints
            .iter()
            .map(|c| c.pushed_by.as_str())
            .collect()
    }
}

/// What a witness holds: its `GET` answer, and the file `verify --witness`
/// reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct WitnessDoc {
    pub format: String,
    pub trails: Vec<WitnessedTrail>,
}

/// Why a witness refuses a checkpoint (the HTTP edge answers 422 for the
/// first five, 409 for the last two).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("public-key is not an Ed25519 public key in hex")]
    BadKey,
    #[error("line is not an audit record line")]
    Unparsable,
    #[error("line is a {0} record, not a checkpoint")]
    NotACheckpoint(Kind),
    #[error("the record's hash does not match its contents")]
    HashMismatch,
    #[error("checkpoint seq {seq} is not signed by key {key_id}")]
    BadSignature { seq: u64, key_id: String },
    #[error("checkpoint seq {pushed} goes backwards: the witness holds up to seq {held}")]
    Backwards { pushed: u64, held: u64 },
    #[error(
        "checkpoint seq {seq} conflicts with the one the witness holds \
         (hash {pushed} against {held}): a fork"
    )]
    Fork {
        seq: u64,
        held: String,
        pushed: String,
    },
}

impl Refusal {
    /// A conflict with what is held (409), rather than a bad checkpoint (422).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Refusal::Backwards { .. } | Refusal::Fork { .. })
    }
}

/// What can go wrong at a witness.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("checkpoint refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A pushed checkpoint that stands on its own.
struct Checked {
    trail_id: String,
    seq: u64,
    hash: String,
}

/// Check a push alone: a checkpoint line whose hash holds, signed (over the
/// record before it, as the line's own `prev` gives it) by its key.
fn check_push(push: &CheckpointPush) -> Result<Checked, Refusal> {
    let key = parse_key(&push.public_key).ok_or(Refusal::BadKey)?;
    let (split, rec) = parse_line(push.line.as_bytes()).ok_or(Refusal::Unparsable)?;
    if rec.kind != Kind::Checkpoint {
        return Err(Refusal::NotACheckpoint(rec.kind));
    }
    split.detect().ok_or(Refusal::HashMismatch)?;
    let mut w = Walker::from_anywhere(std::slice::from_ref(&key));
    let signed = w.lone_line(push.line.as_bytes()) && w.finish(None).checkpoints == 1;
    if !signed {
        return Err(Refusal::BadSignature {
            seq: rec.seq,
            key_id: key_id(&key),
        });
    }
    Ok(Checked {
        trail_id: trail_id(&key),
        seq: rec.seq,
        hash: hex::encode(split.hash),
    })
}

fn parse_key(hex_key: &str) -> Option<VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut bytes).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// What [`WitnessStore::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Accepted {
    pub trail_id: String,
    pub seq: u64,
    /// False when the witness already held this very checkpoint (a resend).
    pub new: bool,
}

/// A witness's store: `<dir>/<trail id>.pub` (the key) and
/// `<dir>/<trail id>.jsonl` (one [`WitnessedCheckpoint`] a line, appended
/// and synced, never rewritten).
pub struct WitnessStore {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl WitnessStore {
    pub fn open(dir: &Path) -> Result<WitnessStore, AuditError> {
        make_dir(dir)?;
        Ok(WitnessStore {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        })
    }

    /// Check a pushed checkpoint and append it to its trail.
    pub fn accept(
        &self,
        push: &CheckpointPush,
        pushed_by: &str,
        received_at: &str,
    ) -> Result<Accepted, WitnessError> {
        let checked = check_push(push)?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(format!("{}.jsonl", checked.trail_id));
        let accepted = |new| Accepted {
            trail_id: checked.trail_id.clone(),
            seq: checked.seq,
            new,
        };
        if let Some(last) = last_held(&path)?
            && checked.seq <= last
        {
            return match read_held(&path)?.into_iter().find(|c| c.seq == checked.seq) {
                Some(held) if held.line == push.line => Ok(accepted(false)),
                Some(held) => Err(Refusal::Fork {
                    seq: checked.seq,
                    held: held.hash,
                    pushed: checked.hash,
                }
                .into()),
                None => Err(Refusal::Backwards {
                    pushed: checked.seq,
                    held: last,
                }
                .into()),
            };
        }
        let key_path = self.dir.join(format!("{}.pub", checked.trail_id));
        if !key_path.exists() {
            crate::chain::write_atomic(&key_path, format!("{}\n", push.public_key).as_bytes())?;
        }
        let held = WitnessedCheckpoint {
            seq: checked.seq,
            hash: checked.hash.clone(),
            line: push.line.clone(),
            received_at: received_at.to_string(),
            pushed_by: pushed_by.to_string(),
        };
        let mut line = serde_json::to_vec(&held).map_err(|e| AuditError::Encode(e.to_string()))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| AuditError::io(&path, e))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(|e| AuditError::io(&path, e))?;
        Ok(accepted(true))
    }

    /// Everything held, or one trail's.
    pub fn held(&self, trail: Option<&str>) -> Result<WitnessDoc, AuditError> {
        let mut trails = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| AuditError::io(&self.dir, e))?;
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                name.strip_suffix(".pub").map(str::to_string)
            })
            .filter(|id| trail.is_none_or(|t| t == id))
            .collect();
        ids.sort();
        for id in ids {
            let key_path = self.dir.join(format!("{id}.pub"));
            let public_key = std::fs::read_to_string(&key_path)
                .map_err(|e| AuditError::io(&key_path, e))?
                .trim()
                .to_string();
            let checkpoints = read_held(&self.dir.join(format!("{id}.jsonl")))?;
            trails.push(WitnessedTrail {
                trail_id: id,
                public_key,
                checkpoints,
            });
        }
        Ok(WitnessDoc {
            format: WITNESS_FORMAT.to_string(),
            trails,
        })
    }
}

fn last_held(path: &Path) -> Result<Option<u64>, AuditError> {
    match last_line(path) {
        Ok(Some((_, line, _))) => serde_json::from_slice::<WitnessedCheckpoint>(&line)
            .map(|c| Some(c.seq))
            .map_err(|e| AuditError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("last line unparsable: {e}"),
            }),
        Ok(None) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::io(path, e)),
    }
}

fn read_held(path: &Path) -> Result<Vec<WitnessedCheckpoint>, AuditError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| AuditError::io(path, e))?;
        let held = serde_json::from_str(&line).map_err(|e| AuditError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", i + 1),
        })?;
        out.push(held);
    }
    Ok(out)
}

/// A checkpoint of this trail not yet acknowledged by a witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCheckpoint {
    pub seq: u64,
    pub push: CheckpointPush,
}

/// The checkpoints of the trail in `dir` after seq `after`, oldest first,
/// at most `max`, each with the public key (from `signing.pub`, by the key
/// id it names) that signed it: what a push loop sends next.
pub fn checkpoints_after(
    dir: &Path,
    after: u64,
    max: usize,
) -> Result<Vec<PendingCheckpoint>, AuditError> {
    let keys = read_public_keys(&dir.join(PUBLIC_KEYS))?;
    let segs = segments(dir)?;
    // The last segment starting at or before the next seq, and those after.
    let from = segs
        .iter()
        .rposition(|(first, _)| *first <= after + 1)
        .unwrap_or(0);
    let mut out = Vec::new();
    for (_, path) in &segs[from..] {
        let f = std::fs::File::open(path).map_err(|e| AuditError::io(path, e))?;
        for line in BufReader::new(f).split(b'\n') {
            let line = line.map_err(|e| AuditError::io(path, e))?;
            let Some((_, rec)) = parse_line(&line) else {
                continue;
            };
            if rec.seq <= after || rec.kind != Kind::Checkpoint {
                continue;
            }
            let named = rec.detail.get("key-id").and_then(|v| v.as_str());
            let key = keys
                .iter()
                .find(|k| Some(key_id(k).as_str()) == named)
                .ok_or_else(|| {
                    AuditError::Key(format!(
                        "checkpoint seq {} names key {named:?}, which {} does not hold",
                        rec.seq, PUBLIC_KEYS
                    ))
                })?;
            out.push(PendingCheckpoint {
                seq: rec.seq,
                push: CheckpointPush {
                    public_key: hex::encode(key.as_bytes()),
                    line: String::from_utf8_lossy(&line).into_owned(),
                },
            });
            if out.len() >= max {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// The trails of `doc` that are this trail's: those named in `only`
/// exactly; else those signed by one of `keys`, with every trail pushed by
/// the same principal as one of them (so a key swapped at the gateway and
/// pushed as a "new" trail does not hide the old one).
fn select<'d>(
    doc: &'d WitnessDoc,
    keys: &[VerifyingKey],
    only: &[String],
) -> Vec<&'d WitnessedTrail> {
    if !only.is_empty() {
        return doc
            .trails
            .iter()
            .filter(|t| only.contains(&t.trail_id))
            .collect();
    }
    let ids: BTreeSet<String> = keys.iter().map(trail_id).collect();
    let chosen: Vec<&WitnessedTrail> = doc
        .trails
        .iter()
        .filter(|t| ids.contains(&t.trail_id))
        .collect();
    let pushers: BTreeSet<&str> = chosen.iter().flat_map(|t| t.pushers()).collect();
    doc.trails
        .iter()
        .filter(|t| {
            chosen.iter().any(|c| c.trail_id == t.trail_id)
                || t.pushers().iter().any(|p| pushers.contains(p))
        })
        .collect()
}

/// Verify `dir` with `public_key` (else `signing.pub`) and against what a
/// witness holds; `only` names the witnessed trails to check (empty: those
/// of the verifying keys).
pub fn verify_witnessed(
    dir: &Path,
    public_key: Option<&VerifyingKey>,
    doc: &WitnessDoc,
    only: &[String],
) -> Result<VerifyReport, AuditError> {
    let keys = match public_key {
        Some(k) => vec![*k],
        None => read_public_keys(&dir.join(PUBLIC_KEYS))?,
    };
    let trails = select(doc, &keys, only);
    let keys_file = dir.join(PUBLIC_KEYS);
    let at_keys = |reason: String| Broken {
        seq: None,
        file: keys_file.clone(),
        line: 0,
        reason,
    };
    let mut coverage = WitnessCoverage {
        trails: trails.iter().map(|t| t.trail_id.clone()).collect(),
        ..WitnessCoverage::default()
    };
    if trails.is_empty() {
        let held: Vec<String> = doc.trails.iter().map(|t| t.trail_id.clone()).collect();
        let reason = format!(
            "the witness holds no trail signed by the verifying key(s) ({}): key swapped, or \
             never witnessed (it holds: {})",
            keys.iter().map(key_id).collect::<Vec<_>>().join(", "),
            if held.is_empty() {
                "nothing".to_string()
            } else {
                held.join(", ")
            }
        );
        return Ok(with_coverage(
            VerifyReport {
                broken: Some(at_keys(reason)),
                ..VerifyReport::default()
            },
            coverage,
        ));
    }
    if let Some(t) = trails
        .iter()
        .find(|t| parse_key(&t.public_key).is_none_or(|k| !keys.contains(&k)))
    {
        let reason = format!(
            "the witnessed key of trail {} is not among the verifying keys ({}): signing.pub \
             swapped, or the trail re-signed",
            t.trail_id,
            keys.iter().map(key_id).collect::<Vec<_>>().join(", ")
        );
        return Ok(with_coverage(
            VerifyReport {
                broken: Some(at_keys(reason)),
                ..VerifyReport::default()
            },
            coverage,
        ));
    }
    let expected: BTreeMap<u64, Vec<u8>> = trails
        .iter()
        .flat_map(|t| &t.checkpoints)
        .map(|c| (c.seq, c.line.clone().into_bytes()))
        .collect();
    coverage.last_witnessed_seq = expected.keys().next_back().copied();
    let (report, matched) = walk_against(dir, &keys, &expected)?;
    coverage.checkpoints = matched;
    let floor = report.anchor_seq.unwrap_or(0);
    coverage.pruned = expected.range(..floor).count() as u64;
    let last = report.last_seq.or(report.anchor_seq).unwrap_or(0);
    coverage.records_not_witnessed = last.saturating_sub(coverage.last_witnessed_seq.unwrap_or(0));
    Ok(with_coverage(report, coverage))
}

fn with_coverage(mut report: VerifyReport, coverage: WitnessCoverage) -> VerifyReport {
    report.witness = Some(coverage);
    report
}

/// The whole walk, each witnessed seq compared byte for byte; then any
/// witnessed checkpoint past the end of the trail is a cut.
fn walk_against(
    dir: &Path,
    keys: &[VerifyingKey],
    expected: &BTreeMap<u64, Vec<u8>>,
) -> Result<(VerifyReport, u64), AuditError> {
    let mut w = Walker::new(keys).expecting(expected);
    let anchor = dir.join(ANCHOR);
    if anchor.exists()
        && let Some(b) = w.anchor(&anchor)?
    {
        let matched = w.witnessed_matches();
        return Ok((w.finish(Some(b)), matched));
    }
    let segs = segments(dir)?;
    let n = segs.len();
    let mut last_path = dir.to_path_buf();
    for (i, (seq, path)) in segs.into_iter().enumerate() {
        if let Some(b) = w.segment(&path, Some(seq), i + 1 == n)? {
            let matched = w.witnessed_matches();
            return Ok((w.finish(Some(b)), matched));
        }
        last_path = path;
    }
    let matched = w.witnessed_matches();
    let end = w.end_seq();
    let cut = expected.range(end + 1..).next().map(|(seq, _)| Broken {
        seq: Some(*seq),
        file: last_path,
        line: 0,
        reason: format!(
            "the witness holds checkpoint seq {seq} but the trail ends at seq {end}: \
             records cut off the end"
        ),
    });
    let broken = cut.or_else(|| w.unbacked_anchor(&anchor));
    Ok((w.finish(broken), matched))
}
