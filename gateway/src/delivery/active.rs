//! The durable active adapter of each network, and the rule that decides,
//! at start-up (and at a resume that reloads), between it and the
//! configured file.
//!
//! A hot swap is an operator's decision; before this record a restart
//! silently undid it (the configured file was loaded again). Now every
//! version made current is written to `<data-dir>/adapters/active/<network>.json`:
//! its sha256 (its bytes are kept beside, as `<sha256>.wasm`), its version,
//! the signature it was accepted with, and the sha256 the *configured file*
//! had at that moment.
//!
//! The rule ([`choose`]), one an operator can predict from two hashes:
//! - the configured file is unchanged since the swap → the swapped version
//!   stays active (its kept bytes are checked again against its signature
//!   and today's trusted keys);
//! - the configured file changed since (a new release was deployed by
//!   configuration) → the configured file wins, and the log says which
//!   swap it supersedes. The later decision wins either way.
//!
//! A swapped version that can no longer be loaded (bytes gone, its key no
//! longer trusted) gives way to the configured file, with an `alert` audit
//! record naming why.

use crate::publisher::AdapterSignature;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a version became a network's active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Loaded from the configured file.
    Configured,
    /// Installed by an operator (hot swap).
    Swap,
}

/// A network's active adapter, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRecord {
    pub sha256: String,
    pub version: String,
    pub source: Source,
    /// The signature it was accepted with (none when `allow-unsigned` let
    /// an unsigned component through).
    pub signature: Option<AdapterSignature>,
    /// The configured file's sha256 when this version was made active.
    pub configured_sha256: String,
    /// When (Unix milliseconds).
    pub since: i64,
}

/// What start-up loads for a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The configured file (no swap on record, or the swap was of it).
    Configured,
    /// The configured file, which changed since this swap: it wins.
    ConfiguredChangedSinceSwap { swapped: String },
    /// The swapped version on record (the configured file is unchanged).
    Swapped(Box<ActiveRecord>),
}

/// The rule (see the module's opener): the record on disk and the
/// configured file's sha256 now → what to load.
pub fn choose(record: Option<ActiveRecord>, configured_sha256: &str) -> Choice {
    match record {
        Some(r) if r.source == Source::Swap && r.sha256 != configured_sha256 => {
            if r.configured_sha256 == configured_sha256 {
                Choice::Swapped(Box::new(r))
            } else {
                Choice::ConfiguredChangedSinceSwap { swapped: r.sha256 }
            }
        }
        _ => Choice::Configured,
    }
}

/// Why the record could not be read (logged; start-up then loads the
/// configured file).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn path(dir: &Path, network: &str) -> PathBuf {
    dir.join("active").join(format!("{network}.json"))
}

/// The network's record; None if it has none.
pub fn read(dir: &Path, network: &str) -> Result<Option<ActiveRecord>, RecordError> {
    let path = path(dir, network);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Io { path, source }),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| RecordError::Malformed { path, source })
}

/// Write the network's record (atomically, durably).
pub fn write(dir: &Path, network: &str, record: &ActiveRecord) -> Result<(), RecordError> {
    let path = path(dir, network);
    let io = |source| RecordError::Io {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    std::fs::create_dir_all(dir.join("active")).map_err(io)?;
    yiwang_fsutil::atomic_write(&path, &bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: Source, sha256: &str, configured: &str) -> ActiveRecord {
        ActiveRecord {
            sha256: sha256.into(),
            version: "1.0.0".into(),
            source,
            signature: None,
            configured_sha256: configured.into(),
            since: 0,
        }
    }

    #[test]
    fn a_swap_outlives_a_restart_while_the_configured_file_is_unchanged() {
        let swap = record(Source::Swap, "b", "a");
        assert_eq!(
            choose(Some(swap.clone()), "a"),
            Choice::Swapped(Box::new(swap))
        );
    }

    #[test]
    fn a_configured_file_changed_after_the_swap_wins() {
        let swap = record(Source::Swap, "b", "a");
        assert_eq!(
            choose(Some(swap), "c"),
            Choice::ConfiguredChangedSinceSwap {
                swapped: "b".into()
            }
        );
    }

    #[test]
    fn no_swap_on_record_loads_the_configured_file() {
        assert_eq!(choose(None, "a"), Choice::Configured);
        let configured = record(Source::Configured, "a", "a");
        assert_eq!(choose(Some(configured), "c"), Choice::Configured);
        // A swap back to the configured file's bytes is the configured file.
        assert_eq!(
            choose(Some(record(Source::Swap, "a", "z")), "a"),
            Choice::Configured
        );
    }

    #[test]
    fn the_record_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path(), "tax").expect("read").is_none());
        let r = record(Source::Swap, "b", "a");
        write(dir.path(), "tax", &r).expect("write");
        assert_eq!(read(dir.path(), "tax").expect("read"), Some(r));
    }
}
