//! The tamper-evident audit trail: every crossing of the gateway, provable
//! afterwards (issue 4 §4).
//!
//! The running gateway appends [`Entry`]s through one [`AuditLog`]; security
//! teams check a copy of the directory offline with [`verify`] (`yiwang audit
//! verify DIR`) and pull records out with [`query`] (`yiwang audit export`).
//!
//! # The directory
//!
//! ```text
//! <dir>/                      0700
//!   000000000001.jsonl        segments, named by the seq of their first record
//!   000000001843.jsonl        (the last one is being written)
//!   anchor.json               after retention pruned older segments
//!   signing.key               Ed25519 seed, 64 hex chars, 0600 (unless
//!                             `signing-key-file` points elsewhere)
//!   signing.pub               the public key(s), 64 hex chars a line
//! ```
//!
//! # Records
//!
//! One record is one line of JSON, fields in this order:
//!
//! ```text
//! {"seq":42,"at":"2026-11-21T10:00:00.123+08:00","kind":"intake",
//!  "principal":"window-3","case":"c-17","network":"market",
//!  "detail":{…},"bodies":[{"label":"intake","sha256":"…","size":812}],
//!  "prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! (on one line, without the breaks). `seq` starts at 1 and has no gaps;
//! `at` is the writer's local time with milliseconds and offset; `kind` is
//! one of [`Kind`] in kebab-case; `principal`, `case` and `network` are left
//! out when not known; `detail` is free JSON (an empty object by default);
//! `bodies` always lists the SHA-256 and size of every body, and, when
//! `keep-bodies` is on, also `cipher`, `nonce` and `data` (base64 of the AEAD
//! ciphertext, see [`decrypt_bodies`]). The body cipher's AAD is
//! `yiwang-audit-body\0<seq>\0<label>`, binding the ciphertext to its record
//! and label; the random 96-bit nonce is stored beside it. SM4 takes a 128-bit
//! key: `sm4-gcm` uses the first 16 bytes of
//! `SM3("yiwang-audit-sm4-key\0" ‖ key)` of the 32-byte body key.
//!
//! # The hash chain, byte-exact
//!
//! Let `L` be a line as it is on disk, without its `\n`. It always ends with
//! the fixed 149-byte suffix `,"prev":"<64 hex>","hash":"<64 hex>"}`
//! (lowercase hex). Its *body* `B` is `L` without that suffix, followed by
//! `}`: the record's own JSON without `prev` and `hash`. Then
//!
//! ```text
//! hash = H(prev_bytes ‖ B)
//! ```
//!
//! where `prev_bytes` are the 32 raw bytes of `prev` (32 zero bytes for seq 1)
//! and `H` is SHA-256 or SM3 (`hash = "sha256" | "sm3"`, fixed for the life
//! of a directory: open refuses to continue a chain in the other algorithm).
//! Verification hashes the bytes it read; it never re-serialises JSON, so
//! any change to any byte of a record changes its hash.
//!
//! # Checkpoints
//!
//! Every `checkpoint-every` records, at least every `checkpoint-interval-ms`
//! while records arrive, before a segment is rolled, and on a clean shutdown
//! ([`AuditLog::close`] or drop), the writer appends a `checkpoint` record
//! whose `detail` is
//!
//! ```text
//! {"covers-seq":N,"covers-hash":"<hash of record N>","alg":"sha256",
//!  "key-id":"<first 16 hex of SHA-256(public key)>","signature":"<128 hex>"}
//! ```
//!
//! where N is the record just before it and the signature is Ed25519 over
//! the domain-separated message
//!
//! ```text
//! yiwang-audit-checkpoint\0<alg>\0<N in decimal>\0<hash of N in lowercase hex>
//! ```
//!
//! Verification rebuilds that message from the chain itself (the seq and
//! `prev` of the checkpoint record), not from `detail`, so a checkpoint only
//! verifies where it really stands. Checkpoints are records like any other:
//! they are hashed into the chain.
//!
//! # Segments and retention
//!
//! A segment is closed only right after a checkpoint, once it has grown
//! past `segment-max-bytes` (a checkpoint is written for the purpose), so
//! every segment but the last ends with a signed checkpoint. With
//! `retention-days` set, [`AuditLog::prune`] (run about hourly by the log
//! itself) deletes whole closed segments, oldest first, whose newest record
//! is older than the retention — after first verifying them and writing
//! `anchor.json`: the raw line of the signed checkpoint that closes the last
//! pruned segment. The next segment's first record must link to it, so the
//! chain stays verifiable from the anchor. Each pruning is itself recorded
//! (kind `prune`).
//!
//! # Opening after a crash
//!
//! [`AuditLog::open`] looks at the last segment only. A torn final line (no
//! newline at the end of the file) or an unparsable final line is cut off,
//! and a `recovered` record says how many bytes were cut, their SHA-256 and
//! (up to 64 KiB) the bytes themselves in base64: nothing acknowledged is
//! ever lost, since a record is acknowledged only after its fdatasync. Any
//! other problem found in the last segment (a hash mismatch, a gap) is
//! **not** repaired: history is never rewritten. Open succeeds, logs an
//! error and appends a `chain-break-found` record naming the file, line,
//! seq and reason (again at every open while the break is in the last
//! segment); the chain continues from the last record as written, and
//! `verify` keeps reporting the break. (Open reads only the last segment;
//! the whole chain is `verify`'s job.) Open also appends a `start` record;
//! close appends `stop` and a final checkpoint.
//!
//! # What verify detects
//!
//! [`verify`] walks `anchor.json` and the segments in order and names the
//! *first* broken record (seq, file, line) with a specific reason: a changed
//! record (`hash mismatch (record changed)`), a deleted or reordered record
//! (`seq 41 follows 39 …`), a relinked record (`prev does not match the hash
//! of seq 40`), a rewritten stretch whose hashes were all recomputed (the
//! next checkpoint's `checkpoint signature invalid`), a checkpoint of another
//! key (`checkpoint signed by key …`), deleted older segments (`first record
//! is seq N, not 1, and there is no anchor.json`), a forged or swapped
//! anchor (`anchor signature invalid`, `first record after the anchor does
//! not link to it`) and garbage (`unparsable line`). An unterminated
//! fragment at the very end of the last segment is not a break (it is what
//! a reader racing the writer, or a crash before open recovers, looks like);
//! the report counts its bytes.
//!
//! # Known limits
//!
//! * Records after the last checkpoint can be cut off the end (and whole
//!   trailing segments deleted) without the chain showing it: a truncated
//!   chain is still a valid chain. The report states how many records are
//!   not yet covered by a signature.
//! * Whoever holds the signing key can rewrite the log and re-sign it. The
//!   key lives on the gateway host, so this protects against edits by
//!   anyone without it (other operators, a copied directory, a backup
//!   restore), not against root on the gateway.
//!
//! Mitigations: frequent checkpoints (small `checkpoint-every` and
//! `checkpoint-interval-ms`), and shipping checkpoint records and the public
//! key off the box (to the SIEM, another ministry, paper): a verifier given
//! `--public-key` from elsewhere and a recent checkpoint from elsewhere can
//! detect both truncation and re-signing before that checkpoint.
//!
//! # Keys
//!
//! `signing.pub` lists every public key that has signed in this directory,
//! one a line; when the signing key changes, open adds the new key and
//! appends a `key-change` record. `verify` with an explicit key accepts only
//! that key.

mod bodies;
mod chain;
pub mod cli;
mod query;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

pub use bodies::decrypt_bodies;
pub use chain::{key_id, read_public_keys};
pub use query::{Query, Records, query};
pub use verify::{Broken, VerifyReport, verify, verify_with_keys};
pub use writer::{AuditLog, AuditStats, PruneReport, Receipt};

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct AuditConfig {
    /// The audit directory; by default `<data-dir>/audit` (the caller passes
    /// the resolved directory to [`AuditLog::open`]).
    pub dir: Option<PathBuf>,
    /// `sha256` (default) or `sm3`: the hash of the chain.
    pub hash: HashAlg,
    /// An Ed25519 seed, 64 hex chars. By default `<dir>/signing.key`,
    /// created (0600) on first open; a file named here must exist.
    pub signing_key_file: Option<PathBuf>,
    /// Records between signed checkpoints (1000).
    pub checkpoint_every: u64,
    /// And a checkpoint at least this often while records arrive (60000).
    pub checkpoint_interval_ms: u64,
    /// Keep the bodies themselves, encrypted (default: only their digests).
    pub keep_bodies: bool,
    /// The 32-byte body key, 64 hex chars; required with `keep-bodies`.
    pub body_key_file: Option<PathBuf>,
    /// `aes-256-gcm` (default) or `sm4-gcm`.
    pub body_cipher: BodyCipher,
    /// Delete whole segments older than this (default: keep forever).
    pub retention_days: Option<u64>,
    /// Roll to a new segment (after a checkpoint) past this size (64 MiB).
    pub segment_max_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            dir: None,
            hash: HashAlg::Sha256,
            signing_key_file: None,
            checkpoint_every: 1000,
            checkpoint_interval_ms: 60_000,
            keep_bodies: false,
            body_key_file: None,
            body_cipher: BodyCipher::Aes256Gcm,
            retention_days: None,
            segment_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl AuditConfig {
    /// Problems with this section, for `config check` (empty when fine).
    /// Key files are only read by [`AuditLog::open`].
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.keep_bodies && self.body_key_file.is_none() {
            problems.push(
                "[audit] keep-bodies = true needs body-key-file (a 32-byte key, 64 hex chars)"
                    .to_string(),
            );
        }
        if !self.keep_bodies && self.body_key_file.is_some() {
            problems.push(
                "[audit] body-key-file is set but keep-bodies is false: bodies are not kept"
                    .to_string(),
            );
        }
        if self.checkpoint_every == 0 {
            problems.push("[audit] checkpoint-every must be at least 1".to_string());
        }
        if self.checkpoint_interval_ms == 0 {
            problems.push("[audit] checkpoint-interval-ms must be at least 1".to_string());
        }
        if self.segment_max_bytes < 4096 {
            problems.push(format!(
                "[audit] segment-max-bytes = {} is too small (at least 4096)",
                self.segment_max_bytes
            ));
        }
        if self.retention_days == Some(0) {
            problems.push(
                "[audit] retention-days = 0 would delete the trail; leave it out to keep forever"
                    .to_string(),
            );
        }
        problems
    }
}

/// The hash of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashAlg {
    /// SHA-256 (FIPS 180-4).
    #[default]
    Sha256,
    /// SM3 (GB/T 32905-2016).
    Sm3,
}

impl HashAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sm3 => "sm3",
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The AEAD of kept bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BodyCipher {
    /// AES-256-GCM.
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// SM4 in GCM mode (GB/T 32907, 128-bit key derived from the body key).
    #[serde(rename = "sm4-gcm")]
    Sm4Gcm,
}

impl BodyCipher {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyCipher::Aes256Gcm => "aes-256-gcm",
            BodyCipher::Sm4Gcm => "sm4-gcm",
        }
    }
}

impl fmt::Display for BodyCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BodyCipher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aes-256-gcm" => Ok(BodyCipher::Aes256Gcm),
            "sm4-gcm" => Ok(BodyCipher::Sm4Gcm),
            other => Err(format!(
                "unknown body cipher {other:?} (aes-256-gcm or sm4-gcm)"
            )),
        }
    }
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A case entered through intake.
    Intake,
    /// A case changed (status, correction, withdrawal).
    Change,
    /// Case data read (admin API, queries).
    Read,
    /// A ministry network called back.
    Callback,
    /// An adapter call towards a network (request and response).
    AdapterCall,
    /// An outbound delivery attempt.
    Outbound,
    /// A result brought back from a network.
    Backflow,
    /// An administrative action (queue repair, config reload).
    Admin,
    /// A request refused for lack of authority.
    Denial,
    /// A TLS handshake refused (unknown or revoked peer).
    TlsRefused,
    /// A security alert.
    Alert,
    /// A signed checkpoint (written by the log itself).
    Checkpoint,
    /// A torn tail cut off at open (written by the log itself).
    Recovered,
    /// Open found the existing chain broken (written by the log itself).
    ChainBreakFound,
    /// The signing key changed (written by the log itself).
    KeyChange,
    /// Retention deleted old segments (written by the log itself).
    Prune,
    /// The log was opened (written by the log itself).
    Start,
    /// The log was closed cleanly (written by the log itself).
    Stop,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::Intake,
        Kind::Change,
        Kind::Read,
        Kind::Callback,
        Kind::AdapterCall,
        Kind::Outbound,
        Kind::Backflow,
        Kind::Admin,
        Kind::Denial,
        Kind::TlsRefused,
        Kind::Alert,
        Kind::Checkpoint,
        Kind::Recovered,
        Kind::ChainBreakFound,
        Kind::KeyChange,
        Kind::Prune,
        Kind::Start,
        Kind::Stop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Intake => "intake",
            Kind::Change => "change",
            Kind::Read => "read",
            Kind::Callback => "callback",
            Kind::AdapterCall => "adapter-call",
            Kind::Outbound => "outbound",
            Kind::Backflow => "backflow",
            Kind::Admin => "admin",
            Kind::Denial => "denial",
            Kind::TlsRefused => "tls-refused",
            Kind::Alert => "alert",
            Kind::Checkpoint => "checkpoint",
            Kind::Recovered => "recovered",
            Kind::ChainBreakFound => "chain-break-found",
            Kind::KeyChange => "key-change",
            Kind::Prune => "prune",
            Kind::Start => "start",
            Kind::Stop => "stop",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {s:?} (one of {})", all.join(", "))
            })
    }
}

/// One body crossing the gateway (a request, a response, an intake form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// `request`, `response`, `intake`, …
    pub label: String,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn new(label: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Body {
            label: label.into(),
            bytes: bytes.into(),
        }
    }
}

/// What the gateway asks to be recorded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// Who: the authenticated client, operator, or network peer.
    pub principal: Option<String>,
    /// The unified case id.
    pub case: Option<String>,
    /// The ministry network.
    pub network: Option<String>,
    /// Free JSON; an empty object by default.
    pub detail: serde_json::Value,
    /// Bodies: always digested, kept (encrypted) only with `keep-bodies`.
    pub bodies: Vec<Body>,
}

impl Entry {
    pub fn new(kind: Kind) -> Self {
        Entry {
            kind,
            principal: None,
            case: None,
            network: None,
            detail: serde_json::Value::Object(serde_json::Map::new()),
            bodies: Vec::new(),
        }
    }

    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    pub fn case(mut self, case: impl Into<String>) -> Self {
        self.case = Some(case.into());
        self
    }

    pub fn network(mut self, network: impl Into<String>) -> Self {
        self.network = Some(network.into());
        self
    }

    /// The case and network the record is about, where known.
    pub fn about(mut self, case: Option<&str>, network: Option<&str>) -> Self {
        self.case = case.map(str::to_string).or(self.case);
        self.network = network.map(str::to_string).or(self.network);
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn body(mut self, label: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.bodies.push(Body::new(label, bytes));
        self
    }
}

/// One line of the trail, as read back (see the module docs for the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 with milliseconds and offset.
    #[serde(with = "at_format")]
    pub at: chrono::DateTime<chrono::FixedOffset>,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
    #[serde(default)]
    pub bodies: Vec<BodyRecord>,
    /// Hex of the previous record's hash (written after the body, see the
    /// module docs; empty while a record is being built).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev: String,
    /// Hex of this record's hash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// A body as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRecord {
    pub label: String,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// With `keep-bodies`: the AEAD used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<BodyCipher>,
    /// With `keep-bodies`: base64 of the 96-bit nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// With `keep-bodies`: base64 of the ciphertext and tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

mod at_format {
    use chrono::{DateTime, FixedOffset, SecondsFormat};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, false))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Everything that can go wrong in the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit I/O on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit key: {0}")]
    Key(String),
    #[error("audit configuration: {0}")]
    Config(String),
    #[error("audit log {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("audit record: {0}")]
    Encode(String),
    #[error("audit write failed: {0}")]
    Write(String),
    #[error("audit body: {0}")]
    Body(String),
    #[error("the audit log is closed")]
    Closed,
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.into(),
            source,
        }
    }
}
