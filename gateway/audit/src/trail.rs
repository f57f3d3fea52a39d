//! Whose trail a directory is: `trail.json` names the replica that writes it.
//!
//! Several gateway replicas on one shared store each keep their own trail (their own
//! directory, chain and checkpoints), named by the replica id. The name is written at the
//! first open and checked at every later one, so two replicas never interleave records in
//! one chain (a directory mounted on the wrong machine, a copied data directory), and
//! `yiwang audit verify|export` can say whose records they read. A directory written before
//! names existed has no `trail.json`; it is named at its next open with a replica id.

use crate::AuditError;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub(crate) const TRAIL: &str = "trail.json";
const TRAIL_FORMAT: &str = "yiwang-audit-trail/1";

/// `trail.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
struct TrailFile {
    format: String,
    replica: String,
}

/// The replica id recorded in `dir`, if any.
pub fn trail_name(dir: &Path) -> Result<Option<String>, AuditError> {
    let path = dir.join(TRAIL);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::io(path, e)),
    };
    let file: TrailFile = serde_json::from_slice(&bytes).map_err(|e| AuditError::Corrupt {
        path: path.clone(),
        reason: format!("not a trail name: {e}"),
    })?;
    if file.format != TRAIL_FORMAT {
        return Err(AuditError::Corrupt {
            path,
            reason: format!("format {:?}, expected {TRAIL_FORMAT:?}", file.format),
        });
    }
    Ok(Some(file.replica))
}

/// At open: `dir` is this replica's trail (named now if it had no name), or open fails
/// naming both replicas. Without a replica id the directory is taken as it is.
pub(crate) fn claim(dir: &Path, replica: Option<&str>) -> Result<Option<String>, AuditError> {
    let existing = trail_name(dir)?;
    match (existing, replica) {
        (Some(owner), Some(me)) if owner != me => Err(AuditError::Config(format!(
            "{} is the audit trail of replica {owner:?}, and this gateway is replica {me:?}: \
             each replica keeps its own trail ([audit] dir)",
            dir.display()
        ))),
        (Some(owner), _) => Ok(Some(owner)),
        (None, None) => Ok(None),
        (None, Some(me)) => {
            let file = TrailFile {
                format: TRAIL_FORMAT.to_owned(),
                replica: me.to_owned(),
            };
            let text =
                serde_json::to_vec_pretty(&file).map_err(|e| AuditError::Encode(e.to_string()))?;
            crate::chain::write_atomic(&dir.join(TRAIL), &text)?;
            Ok(Some(me.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trail_is_named_once_and_refuses_another_replica() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(claim(dir.path(), None).unwrap(), None);
        assert_eq!(
            claim(dir.path(), Some("gw-a")).unwrap().as_deref(),
            Some("gw-a")
        );
        assert_eq!(trail_name(dir.path()).unwrap().as_deref(), Some("gw-a"));
        assert_eq!(
            claim(dir.path(), Some("gw-a")).unwrap().as_deref(),
            Some("gw-a")
        );
        assert_eq!(claim(dir.path(), None).unwrap().as_deref(), Some("gw-a"));
        let err = claim(dir.path(), Some("gw-b")).unwrap_err().to_string();
        assert!(
            err.contains("replica \"gw-a\"") && err.contains("replica \"gw-b\""),
            "{err}"
        );
    }

    #[test]
    fn a_garbled_name_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TRAIL), b"{").unwrap();
        let err = claim(dir.path(), Some("gw-a")).unwrap_err().to_string();
        assert!(err.contains("not a trail name"), "{err}");
    }
}
