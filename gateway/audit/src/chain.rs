//! The byte-exact line format, the hash chain, checkpoint messages and keys.

use crate::layout::{PUBLIC_KEYS, SIGNING_KEY, make_dir};
use crate::{AuditConfig, AuditError, Entry, HashAlg, Kind, Record};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use strum::IntoEnumIterator;

/// `,"prev":"` 64 hex `","hash":"` 64 hex `"}`
pub(crate) const SUFFIX_LEN: usize = 9 + 64 + 10 + 64 + 2;
const PREV_TAG: &[u8] = b",\"prev\":\"";
const HASH_TAG: &[u8] = b"\",\"hash\":\"";
const END_TAG: &[u8] = b"\"}";

/// The `prev` of seq 1.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// `H(prev ‖ head ‖ "}")`: the hash of a record whose line, less its
/// suffix, is `head`.
pub(crate) fn digest(alg: HashAlg, prev: &[u8; 32], head: &[u8]) -> [u8; 32] {
    hash_parts(alg, &[prev, head, b"}"])
}

/// `H(parts[0] ‖ parts[1] ‖ …)`
pub(crate) fn hash_parts(alg: HashAlg, parts: &[&[u8]]) -> [u8; 32] {
    match alg {
        HashAlg::Sha256 => {
            let mut h = sha2::Sha256::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().into()
        }
        HashAlg::Sm3 => {
            let mut h = sm3::Sm3::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().into()
        }
    }
}

/// Encode a record (its `prev`/`hash` fields empty) as a line ending in
/// `\n`, chained to `prev`; returns the line and the record's hash.
pub(crate) fn encode_line(
    alg: HashAlg,
    record: &Record,
    prev: &[u8; 32],
) -> Result<(Vec<u8>, [u8; 32]), AuditError> {
    debug_assert!(record.prev.is_empty() && record.hash.is_empty());
    let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Encode(e.to_string()))?;
    if line.last() != Some(&b'}') {
        return Err(AuditError::Encode(
            "a record must encode as an object".into(),
        ));
    }
    line.pop();
    let hash = digest(alg, prev, &line);
    line.reserve(SUFFIX_LEN + 1);
    line.extend_from_slice(PREV_TAG);
    line.extend_from_slice(hex::encode(prev).as_bytes());
    line.extend_from_slice(HASH_TAG);
    line.extend_from_slice(hex::encode(hash).as_bytes());
    line.extend_from_slice(END_TAG);
    line.push(b'\n');
    Ok((line, hash))
}

/// A line (without `\n`) cut into the hashed head and its suffix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Split<'a> {
    pub head: &'a [u8],
    pub prev: [u8; 32],
    pub hash: [u8; 32],
}

impl Split<'_> {
    /// Whether the stored hash is right under `alg`.
    pub fn hash_ok(&self, alg: HashAlg) -> bool {
        digest(alg, &self.prev, self.head) == self.hash
    }

    /// The algorithm under which the stored hash is right, if any.
    pub fn detect(&self) -> Option<HashAlg> {
        HashAlg::iter().find(|a| self.hash_ok(*a))
    }
}

fn lower_hex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Cut a line (without `\n`) at its fixed suffix; `None` if it has none.
pub(crate) fn split_line(line: &[u8]) -> Option<Split<'_>> {
    if line.len() < SUFFIX_LEN + 2 || line.first() != Some(&b'{') {
        return None;
    }
    let (head, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let rest = suffix.strip_prefix(PREV_TAG)?;
    let (prev, rest) = rest.split_at(64);
    let rest = rest.strip_prefix(HASH_TAG)?;
    let (hash, rest) = rest.split_at(64);
    if rest != END_TAG {
        return None;
    }
    Some(Split {
        head,
        prev: lower_hex32(prev)?,
        hash: lower_hex32(hash)?,
    })
}

/// A line fully parsed: the suffix cut off and the JSON read.
pub(crate) fn parse_line(line: &[u8]) -> Option<(Split<'_>, Record)> {
    let split = split_line(line)?;
    let record: Record = serde_json::from_slice(line).ok()?;
    Some((split, record))
}

/// The `detail` of a checkpoint record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct CheckpointDetail {
    pub covers_seq: u64,
    pub covers_hash: String,
    pub alg: HashAlg,
    pub key_id: String,
    pub signature: String,
}

/// `yiwang-audit-checkpoint\0<alg>\0<seq>\0<hash hex>`
pub(crate) fn checkpoint_message(alg: HashAlg, seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    format!(
        "yiwang-audit-checkpoint\0{}\0{}\0{}",
        alg.as_str(),
        seq,
        hex::encode(hash)
    )
    .into_bytes()
}

pub(crate) fn sign_checkpoint(
    key: &SigningKey,
    alg: HashAlg,
    seq: u64,
    hash: &[u8; 32],
) -> CheckpointDetail {
    let sig = key.sign(&checkpoint_message(alg, seq, hash));
    CheckpointDetail {
        covers_seq: seq,
        covers_hash: hex::encode(hash),
        alg,
        key_id: key_id(&key.verifying_key()),
        signature: hex::encode(sig.to_bytes()),
    }
}

/// Whether `signature` (hex) is `key`'s over the checkpoint of `seq`/`hash`.
pub(crate) fn signature_ok(
    key: &VerifyingKey,
    alg: HashAlg,
    seq: u64,
    hash: &[u8; 32],
    signature: &str,
) -> bool {
    let mut bytes = [0u8; 64];
    if hex::decode_to_slice(signature, &mut bytes).is_err() {
        return false;
    }
    key.verify_strict(
        &checkpoint_message(alg, seq, hash),
        &Signature::from_bytes(&bytes),
    )
    .is_ok()
}

/// The key id: the first 16 hex chars of SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    let mut id = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    id.truncate(16);
    id
}

/// Read a file holding 32 bytes as 64 hex chars (whitespace around allowed).
pub(crate) fn read_hex32(path: &Path) -> Result<[u8; 32], AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
    parse_hex32(text.trim())
        .ok_or_else(|| AuditError::Key(format!("{} must hold 64 hex chars", path.display())))
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Read public keys, one hex key a line (blank lines and `#` comments
/// skipped).
pub fn read_public_keys(path: &Path) -> Result<Vec<VerifyingKey>, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = parse_hex32(line)
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| {
                AuditError::Key(format!(
                    "{} line {}: not an Ed25519 public key in hex",
                    path.display(),
                    i + 1
                ))
            })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(AuditError::Key(format!(
            "{} holds no public key",
            path.display()
        )));
    }
    Ok(keys)
}

/// Load the signing key; create it (0600) when `create` and it is missing.
pub(crate) fn load_signing_key(path: &Path, create: bool) -> Result<SigningKey, AuditError> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the audit signing key is readable by others; chmod 600 it"
                    );
                }
            }
            #[cfg(not(unix))]
            let _ = meta;
            Ok(SigningKey::from_bytes(&read_hex32(path)?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(|e| AuditError::io(path, e))?;
            f.write_all(format!("{}\n", hex::encode(key.to_bytes())).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| AuditError::io(path, e))?;
            tracing::info!(path = %path.display(), key_id = %key_id(&key.verifying_key()),
                "created the audit signing key");
            Ok(key)
        }
        Err(e) => Err(AuditError::io(path, e)),
    }
}

/// Write `contents` to `path` atomically: a temporary file beside it,
/// synced, renamed over `path`, then the directory synced so the rename
/// itself survives a crash.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), AuditError> {
    yiwang_fsutil::atomic_write_shared(path, contents).map_err(|e| AuditError::io(path, e))
}

/// The signing key, and every public key that has signed here; a new key
/// is added to `signing.pub` and, if another signed before, noted as a
/// `key-change`.
pub(crate) fn load_keys(
    dir: &Path,
    cfg: &AuditConfig,
    notes: &mut Vec<Entry>,
) -> Result<(SigningKey, Vec<VerifyingKey>), AuditError> {
    let (key_path, create) = signing_key_path(dir, cfg)?;
    let key = load_signing_key(&key_path, create)?;
    let public_key = key.verifying_key();
    let pub_path = dir.join(PUBLIC_KEYS);
    let mut keys = if pub_path.exists() {
        read_public_keys(&pub_path)?
    } else {
        Vec::new()
    };
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
    Ok((key, keys))
}

/// Where the signing key is, and whether it may be created there: a
/// `signing-key-file` must exist; else the default outside the audit
/// directory (created, in a 0700 folder), unless a key from before that
/// default is still inside it (used, with a warning); a caller that gives
/// no default keeps it in `<dir>/signing.key`.
fn signing_key_path(dir: &Path, cfg: &AuditConfig) -> Result<(PathBuf, bool), AuditError> {
    if let Some(file) = &cfg.signing_key_file {
        return Ok((file.clone(), false));
    }
    let inside = dir.join(SIGNING_KEY);
    let Some(default) = &cfg.default_signing_key_file else {
        return Ok((inside, true));
    };
    if !default.exists() && inside.exists() {
        tracing::warn!(
            key = %inside.display(),
            default = %default.display(),
            "the audit signing key is inside the audit directory, so every copy of the \
             trail carries the key that can re-sign it; move it to the default place \
             (or set [audit] signing-key-file)"
        );
        return Ok((inside, false));
    }
    if let Some(parent) = default.parent() {
        make_dir(parent)?;
    }
    Ok((default.clone(), true))
}
