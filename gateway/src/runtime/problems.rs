//! Every problem behind a rejection: the `problems` host interface (1.1)
//! and the one place a call's rejection is put together.
//!
//! Why an import and not a richer `rejection`: component-model types never
//! change in place, and the 1.0 export `permanent(rejection)` must keep
//! type-checking for components built against 1.0.0. So a 1.1 adapter
//! reports the ministry's full list through `problems.report` and still
//! returns the 1.0 rejection as the summary; `error::settle` joins them. A 1.0
//! adapter reports nothing and its rejection stands alone, unchanged (its
//! `CallError::Adapter`, message and kind are what they always were).

use super::bindings::Rejection;
use super::bindings::yiwang::adapter::problems;
use serde::Serialize;

/// The most problems kept for one call; more are counted, not kept.
pub const MAX_PROBLEMS: usize = 100;

/// The longest text (bytes) kept of a problem's message; pointer and code
/// are cut at a quarter of it.
const MAX_PROBLEM_TEXT: usize = 1024;

/// One problem the ministry reported with the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The unified field, as a JSON pointer into the case, when known.
    pub pointer: Option<String>,
    /// The ministry's own error code.
    pub code: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.pointer.as_deref().unwrap_or("(case)"))?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl From<&Rejection> for Problem {
    fn from(r: &Rejection) -> Self {
        Problem {
            pointer: r.field.clone(),
            code: r.code.clone(),
            message: r.message.clone(),
        }
    }
}

/// A rejection with every problem the adapter reported (1.1): the
/// adapter's own summary first, then the list.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub summary: Rejection,
    pub problems: Vec<Problem>,
    /// Problems reported past [`MAX_PROBLEMS`].
    pub dropped: usize,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problems:", self.problems.len() + self.dropped)?;
        for (i, p) in self.problems.iter().enumerate() {
            write!(f, "{} {p}", if i == 0 { "" } else { ";" })?;
        }
        if self.dropped > 0 {
            write!(f, "; and {} more", self.dropped)?;
        }
        Ok(())
    }
}

/// What the adapter reported in one call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reported {
    pub problems: Vec<Problem>,
    pub dropped: usize,
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let at = text.floor_char_boundary(max);
        text.truncate(at);
        text.push('…');
    }
    text
}

/// Keep what an adapter reported in one `problems.report` call: at most
/// [`MAX_PROBLEMS`] in all (more are counted), texts cut to their bounds.
pub(super) fn report(reported: &mut Reported, problems: Vec<problems::Problem>) {
    for p in problems {
        if reported.problems.len() >= MAX_PROBLEMS {
            reported.dropped += 1;
            continue;
        }
        reported.problems.push(Problem {
            pointer: p.pointer.map(|t| cut(t, MAX_PROBLEM_TEXT / 4)),
            code: p.code.map(|t| cut(t, MAX_PROBLEM_TEXT / 4)),
            message: cut(p.message, MAX_PROBLEM_TEXT),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::AdapterError;
    use crate::runtime::error::{CallError, settle};

    fn rejection() -> Rejection {
        Rejection {
            field: Some("/form/project_name".into()),
            code: Some("Client.Validation".into()),
            message: "2 fields".into(),
        }
    }

    fn problem(pointer: &str, message: &str) -> Problem {
        Problem {
            pointer: Some(pointer.into()),
            code: Some("E1".into()),
            message: message.into(),
        }
    }

    #[test]
    fn a_rejection_with_reported_problems_names_them_all() {
        let reported = Reported {
            problems: vec![
                problem("/form/project_name", "必填"),
                problem("/applicant/name", "too long"),
            ],
            dropped: 0,
        };
        let e = settle(
            CallError::Adapter(AdapterError::Permanent(rejection())),
            reported,
        );
        assert_eq!(e.kind(), "adapter_permanent");
        assert_eq!(e.class(true), super::super::ErrorClass::Permanent);
        assert_eq!(e.problems().len(), 2);
        let text = e.to_string();
        assert!(
            text.starts_with("rejected by the ministry (code Client.Validation) at /form/project_name: 2 fields; 2 problems: /form/project_name [E1]: 必填; /applicant/name [E1]: too long"),
            "{text}"
        );
    }

    /// A 1.0 adapter (nothing reported) keeps its error exactly; its
    /// rejection is its one problem.
    #[test]
    fn a_rejection_alone_stays_as_it_was() {
        let e = settle(
            CallError::Adapter(AdapterError::Permanent(rejection())),
            Reported::default(),
        );
        assert!(matches!(e, CallError::Adapter(AdapterError::Permanent(_))));
        assert_eq!(e.problems(), vec![Problem::from(&rejection())]);
        let retry = settle(
            CallError::Adapter(AdapterError::Ambiguous("lost".into())),
            Reported {
                problems: vec![problem("/x", "noise")],
                dropped: 0,
            },
        );
        assert!(retry.problems().is_empty(), "no rejection, no problems");
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "字".repeat(MAX_PROBLEM_TEXT);
        let out = cut(long, MAX_PROBLEM_TEXT);
        assert!(out.len() <= MAX_PROBLEM_TEXT + '…'.len_utf8());
        assert!(out.ends_with('…'));
    }
}
