//! The audit crate's errors.

use std::path::PathBuf;

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
