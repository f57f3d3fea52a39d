//! Several replicas' trails read as one: their matching records merged by time.
//!
//! Each trail is read in its own seq order (a [`Records`] stream); the merge takes the
//! earliest `at` among the heads, so the output is time-ordered across trails wherever each
//! trail's clock is monotonic, and every trail's own order is kept whatever the clocks do.
//! Ties go to the trail listed first. Memory is one record per trail.

use crate::{AuditError, Query, Record, Records, query};
use std::path::{Path, PathBuf};

/// The records of several trails matching `q`, merged by time; each with its trail's name
/// (the replica id from `trail.json`, else the directory's name).
pub struct Merged {
    trails: Vec<Trail>,
}

/// One trail being read: its name, the stream, and the record it offers next.
type Trail = (String, Records, Option<Result<Record, AuditError>>);

impl std::fmt::Debug for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.trails.iter().map(|(n, _, _)| n.as_str()).collect();
        f.debug_struct("Merged").field("trails", &names).finish()
    }
}

/// Merge the matching records of `dirs` (see [`Merged`]).
pub fn query_merged(dirs: &[PathBuf], q: &Query) -> Result<Merged, AuditError> {
    let mut trails = Vec::new();
    for dir in dirs {
        let name = trail_label(dir)?;
        let mut records = query(dir, q);
        let head = records.next();
        trails.push((name, records, head));
    }
    Ok(Merged { trails })
}

/// The name a trail is shown by.
pub fn trail_label(dir: &Path) -> Result<String, AuditError> {
    Ok(crate::trail::trail_name(dir)?.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string())
    }))
}

impl Iterator for Merged {
    /// The trail's name and the record (or the error reading it).
    type Item = (String, Result<Record, AuditError>);

    fn next(&mut self) -> Option<Self::Item> {
        // An error is passed on at once; otherwise the earliest record.
        let pick = self
            .trails
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, head))| match head {
                Some(Err(_)) => Some((i, None)),
                Some(Ok(r)) => Some((i, Some(r.at))),
                None => None,
            })
            .min_by_key(|&(i, at)| (at.is_some(), at, i))?
            .0;
        let (name, records, head) = &mut self.trails[pick];
        let next = records.next();
        let item = std::mem::replace(head, next)?;
        Some((name.clone(), item))
    }
}
