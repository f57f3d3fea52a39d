//! What a refused configuration reports: every problem with its
//! `file:line:col`, collected in one pass so an operator fixes them all at
//! once instead of one per run.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// A problem at a place in the file (line and column are 1-based; both 0
/// when the file could not be read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem in a file, each with its place.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                e.line,
                e.col,
                e.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A network's secret or sensitive adapter-config value that cannot be
/// resolved; names the network, what it is and its name, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("network `{network}`: {holder} `{name}`: environment variable {var} is not set")]
    Env {
        network: String,
        holder: Holder,
        name: String,
        var: String,
    },
    #[error("network `{network}`: {holder} `{name}`: {}: {source}", file.display())]
    File {
        network: String,
        holder: Holder,
        name: String,
        file: PathBuf,
        source: std::io::Error,
    },
}

/// What an unresolved value was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// `[networks.X.secrets]`
    Secret,
    /// `[networks.X.adapter-config]`
    AdapterConfig,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Holder::Secret => "secret",
            Holder::AdapterConfig => "adapter-config",
        })
    }
}

/// Byte offset → 1-based line and column (in characters).
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The problems found so far, each placed by its span in `text`.
pub(crate) struct Problems<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Problems {
            text,
            errors: Vec::new(),
        }
    }

    /// A problem at `span` (an empty span at 0 is the file's first line).
    pub(crate) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            line,
            col,
            message: message.into(),
        });
    }

    /// Where a key is first set, at the start of a line or inside an
    /// inline table (the file's start if nowhere): for values whose table
    /// carries no span.
    pub(crate) fn key_span(&self, key: &str) -> Range<usize> {
        let text = self.text;
        let mut from = 0;
        while let Some(found) = text[from..].find(key) {
            let at = from + found;
            from = at + key.len();
            let before = text[..at].chars().next_back();
            if !before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',') {
                continue;
            }
            let rest = &text[from..];
            let Some(after_eq) = rest.trim_start().strip_prefix('=') else {
                continue;
            };
            let value = text.len() - after_eq.trim_start().len();
            return value..value;
        }
        0..0
    }

    /// The problems in the order of the file (stable: same place keeps the
    /// order they were found in).
    pub(crate) fn into_sorted(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.line, e.col));
        self.errors
    }
}
