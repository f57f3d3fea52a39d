//! The directory: segment files named by their first seq, `anchor.json`,
//! `signing.pub` (see the crate docs), and reading a file's last line.

use crate::AuditError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub(crate) const ANCHOR: &str = "anchor.json";
pub(crate) const PUBLIC_KEYS: &str = "signing.pub";
/// The signing key's old default place (still used when found there).
pub(crate) const SIGNING_KEY: &str = "signing.key";
pub(crate) const ANCHOR_FORMAT: &str = "yiwang-audit-anchor/1";

/// `anchor.json`: the signed checkpoint closing the last pruned segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Anchor {
    pub format: String,
    /// The checkpoint's seq and hash (informational: `checkpoint` rules).
    pub seq: u64,
    pub hash: String,
    pub pruned_at: String,
    pub pruned_segments: Vec<String>,
    /// The checkpoint's line, byte for byte, without its newline.
    pub checkpoint: String,
}

/// The segments of `dir` (`<digits>.jsonl`), by first seq.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| AuditError::io(dir, e))? {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".jsonl") else {
            continue;
        };
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:012}.jsonl")
}

/// The last line of a file: its offset, its bytes (without `\n`), and
/// whether it ends with `\n`. `None` for an empty file.
pub(crate) fn last_line(path: &Path) -> std::io::Result<Option<(u64, Vec<u8>, bool)>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    let mut chunk = 16 * 1024u64;
    loop {
        let start = pos.saturating_sub(chunk);
        let mut piece = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut piece)?;
        piece.extend_from_slice(&buf);
        buf = piece;
        pos = start;
        let terminated = buf.last() == Some(&b'\n');
        let body = if terminated {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
            return Ok(Some((
                pos + i as u64 + 1,
                body[i + 1..].to_vec(),
                terminated,
            )));
        }
        if pos == 0 {
            return Ok(Some((0, body.to_vec(), terminated)));
        }
        chunk = chunk.saturating_mul(2);
    }
}

/// Create the segment whose first record will be `first_seq`, and make its
/// name durable.
pub(crate) fn new_segment(dir: &Path, first_seq: u64) -> Result<(PathBuf, File), AuditError> {
    let path = dir.join(segment_name(first_seq));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| AuditError::io(&path, e))?;
    sync_dir(dir)?;
    Ok((path, file))
}

pub(crate) fn path_len(path: &Path) -> Result<u64, AuditError> {
    Ok(std::fs::metadata(path)
        .map_err(|e| AuditError::io(path, e))?
        .len())
}

/// The file name alone, for records and reports.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Create the directory, owner-only.
pub(crate) fn make_dir(dir: &Path) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| AuditError::io(dir, e))?;
    }
    Ok(())
}

/// Make a directory's entries (a rename into it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    yiwang_fsutil::sync_dir(dir).map_err(|e| AuditError::io(dir, e))
}
