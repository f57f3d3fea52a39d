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
//!   signing.pub               the public key(s), 64 hex chars a line
//!   trail.json                the replica whose trail this is (`trail`)
//! ```
//!
//! Replicas of one gateway on a shared store each write their own directory:
//! one chain per replica, named by its replica id. `verify` and `export`
//! take several directories (copies collected from the replicas); `export`
//! merges their records by time (`merge`).
//!
//! The signing key (an Ed25519 seed, 64 hex chars, 0600) is kept outside
//! the directory: the gateway's default is `<data-dir>/keys/audit-signing.key`
//! ([`AuditConfig::default_signing_key_file`]), because the directory is
//! what gets copied (backups, the SIEM, an auditor) and a copy must not
//! carry the key that can re-sign it. A key at `<dir>/signing.key`, the old
//! default, is still used (with a warning).
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
//! ([`AuditLog::close`] or drop), the writer appends a `checkpoint` record.
//! Both rules count from the last signed checkpoint on disk (its seq and
//! `at`), not from the process's start; and when open finds records after
//! the last signed checkpoint (a run that ended without a clean shutdown),
//! it signs them at once, after its `start` record. So a gateway that is
//! killed again and again still signs each run's records at the next open,
//! with at most one checkpoint per open. A checkpoint's `detail` is
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
//! (kind `prune`, naming the anchor's seq and hash), and that record is
//! committed and signed by a checkpoint *before* the anchor is written and
//! anything deleted: verify accepts an anchor only when the trail holds the
//! signed `prune` record naming it.
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
//! the whole chain is `verify`'s job.) Open also appends a `start` record,
//! then a checkpoint if the records found were not all signed (see
//! Checkpoints); close appends `stop` and a final checkpoint.
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
//! not link to it`), older segments deleted behind an anchor written around
//! a genuine checkpoint (`no signed prune record made this anchor: records
//! 1..=N are missing`) and garbage (`unparsable line`). Against a witness
//! ([`verify_witnessed`]) also a cut tail, stripped checkpoints and a
//! swapped key, up to the last witnessed checkpoint (see `witness`). An unterminated
//! fragment at the very end of the last segment is not a break (it is what
//! a reader racing the writer, or a crash before open recovers, looks like);
//! the report counts its bytes.
//!
//! # Known limits
//!
//! * Records after the last checkpoint can be cut off the end (and whole
//!   trailing segments deleted) without the chain showing it: a truncated
//!   chain is still a valid chain. The report states how many records are
//!   not yet covered by a signature (after a crash: the records of the run
//!   since the last open, until the next open signs them).
//! * Whoever holds the signing key can rewrite the log and re-sign it. The
//!   key lives on the gateway host, so this protects against edits by
//!   anyone without it (other operators, a copied directory, a backup
//!   restore), not against root on the gateway.
//!
//! Mitigations: frequent checkpoints (small `checkpoint-every` and
//! `checkpoint-interval-ms`), and witnesses: every checkpoint pushed to
//! another gateway as it is made (`[audit.witness.*]`), so that
//! `verify --witness` detects truncation, stripped checkpoints and
//! re-signing up to the last witnessed checkpoint. What remains: the
//! records after it, and whatever a key holder wrote before the first.
//!
//! # Keys
//!
//! `signing.pub` lists every public key that has signed in this directory,
//! one a line; when the signing key changes, open adds the new key and
//! appends a `key-change` record. `verify` with an explicit key accepts only
//! that key.
//!
//! # Rooms
//!
//! `record` (what is recorded, the kinds), `config` (`[audit]`, the hash and
//! cipher), `chain` (the line format, hashes, checkpoint signatures, keys),
//! `layout` (segment files, `anchor.json`), `bodies` (digests and sealed
//! bodies), `log` ([`AuditLog`]: the handle, open and close), `writer` (the
//! group-commit thread and the checkpoint rules), `tail` (where
//! the chain ends at open, crash recovery), `prune` (retention and anchors),
//! `trail` (whose trail a directory is), `verify`, `query` and `merge`
//! (offline, read-only), `witness` (what a witness
//! holds, and verifying against it), `timestamp` (RFC 3161 requests and
//! replies for checkpoints), `cli` (`yiwang audit`). The
//! crate depends on nothing of the gateway's, so the offline tools work on
//! a copied directory with no gateway around.

mod bodies;
mod chain;
pub mod cli;
mod config;
mod error;
mod layout;
mod log;
mod merge;
mod prune;
mod query;
mod record;
mod tail;
pub mod timestamp;
mod trail;
mod verify;
mod witness;
mod writer;

#[cfg(test)]
mod tests;

pub use bodies::decrypt_bodies;
pub use chain::{key_id, read_public_keys};
pub use config::{AuditConfig, BodyCipher, HashAlg, UnknownCipher, WitnessConfig, WitnessProtocol};
pub use error::AuditError;
pub use log::{AuditLog, AuditStats};
pub use merge::{Merged, query_merged, trail_label};
pub use prune::PruneReport;
pub use query::{Query, Records, query};
pub use record::{Body, BodyRecord, Entry, Kind, Record, UnknownKind};
pub use trail::trail_name;
pub use verify::{Broken, VerifyReport, WitnessCoverage, verify, verify_with_keys};
pub use witness::{
    Accepted, CheckpointPush, PendingCheckpoint, Refusal, WITNESS_FORMAT, WitnessDoc, WitnessError,
    WitnessStore, WitnessedCheckpoint, WitnessedTrail, checkpoints_after, trail_id,
    verify_witnessed,
};
pub use writer::Receipt;
