//! Reading records back (read-only, streaming segment by segment).

use crate::layout::segments;
use crate::{AuditError, Kind, Record};
use chrono::{DateTime, FixedOffset};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Which records [`query`] returns: all of the given conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub case: Option<String>,
    pub principal: Option<String>,
    pub network: Option<String>,
    pub kind: Option<Kind>,
    /// At or after this time.
    pub since: Option<DateTime<FixedOffset>>,
    /// Strictly before this time.
    pub until: Option<DateTime<FixedOffset>>,
}

impl Query {
    pub fn matches(&self, r: &Record) -> bool {
        fn same(want: &Option<String>, have: &Option<String>) -> bool {
            want.is_none() || want == have
        }
        same(&self.case, &r.case)
            && same(&self.principal, &r.principal)
            && same(&self.network, &r.network)
            && self.kind.is_none_or(|k| k == r.kind)
            && self.since.is_none_or(|t| r.at >= t)
            && self.until.is_none_or(|t| r.at < t)
    }
}

/// The records of a directory matching a [`Query`], in seq order, read one
/// segment at a time. Does not verify the chain (run [`verify`](crate::verify()));
/// an unterminated fragment at the end of a segment (a write in flight) is
/// skipped; an unparsable line is an `Err` item and reading goes on.
pub struct Records {
    query: Query,
    pending: VecDeque<PathBuf>,
    current: Option<(PathBuf, BufReader<File>, usize)>,
    error: Option<AuditError>,
    line: Vec<u8>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("query", &self.query)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// Stream the records of `dir` that match `q` (see [`Records`]).
pub fn query(dir: &Path, q: &Query) -> Records {
    let (pending, error) = match segments(dir) {
        Ok(segs) => (segs.into_iter().map(|(_, p)| p).collect(), None),
        Err(e) => (VecDeque::new(), Some(e)),
    };
    Records {
        query: q.clone(),
        pending,
        current: None,
        error,
        line: Vec::new(),
    }
}

impl Iterator for Records {
    type Item = Result<Record, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.error.take() {
                return Some(Err(e));
            }
            if self.current.is_none() {
                let path = self.pending.pop_front()?;
                match File::open(&path) {
                    Ok(f) => self.current = Some((path, BufReader::new(f), 0)),
                    Err(e) => return Some(Err(AuditError::io(path, e))),
                }
            }
            let (path, reader, lineno) = self.current.as_mut()?;
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    let path = path.clone();
                    self.current = None;
                    return Some(Err(AuditError::io(path, e)));
                }
            }
            *lineno += 1;
            if self.line.pop() != Some(b'\n') {
                continue;
            }
            match serde_json::from_slice::<Record>(&self.line) {
                Ok(r) if self.query.matches(&r) => return Some(Ok(r)),
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(AuditError::Corrupt {
                        path: path.clone(),
                        reason: format!("line {lineno}: unparsable record: {e}"),
                    }));
                }
            }
        }
    }
}
