//! How an adapter call can fail, and what the delivery queue should do about it.

use super::bindings::AdapterError;
use super::limits::LimitHit;
use super::problems::{Problem, Rejected, Reported};
use serde::Serialize;

/// What the queue does next with a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Nothing reached the ministry: try again later.
    Retryable,
    /// Resending the same thing is useless: dead-letter with the reason.
    Permanent,
    /// The ministry may have acted: ask (query-status) before resending.
    Ambiguous,
}

/// A sandbox rule the adapter broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Violation {
    #[error("sent to {url}, which is not an endpoint of network `{network}`")]
    ForbiddenDestination { network: String, url: String },
    #[error("more than {limit} requests in one call")]
    TooManyRequests { limit: u32 },
}

/// Why one adapter call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The adapter ran fine and reported a classified failure.
    #[error("{}", describe_adapter_error(.0))]
    Adapter(AdapterError),
    /// The adapter returned a `permanent` rejection and reported every
    /// problem behind it (contract 1.1, `problems.report`).
    #[error("{}; {}", describe_adapter_error(&AdapterError::Permanent(.0.summary.clone())), .0)]
    Rejected(Box<Rejected>),
    /// A resource limit stopped the call.
    #[error("limit hit: {0}")]
    Limit(LimitHit),
    /// The adapter broke a sandbox rule; the call's result is discarded.
    #[error("sandbox violation: {0}")]
    Violation(Violation),
    /// The guest trapped (panic, unreachable, bad memory access).
    #[error("adapter trapped: {0}")]
    Trap(String),
    /// The adapter returned something the contract does not allow.
    #[error("malformed adapter output: {0}")]
    Malformed(#[from] OutputError),
    /// The call could not start for a local reason (instantiation failed,
    /// the guest executor stopped): never the network's fault.
    #[error("could not start the adapter: {0}")]
    Instantiate(String),
}

impl CallError {
    /// The class the queue acts on. `sent` says whether any request of this
    /// call may have reached the ministry: if so, a failure we cannot explain
    /// is ambiguous, because the ministry may have recorded the case.
    pub fn class(&self, sent: bool) -> ErrorClass {
        match self {
            CallError::Adapter(AdapterError::Retryable(_)) => ErrorClass::Retryable,
            CallError::Adapter(AdapterError::Permanent(_)) | CallError::Rejected(_) => {
                ErrorClass::Permanent
            }
            CallError::Adapter(AdapterError::Ambiguous(_)) => ErrorClass::Ambiguous,
            // A broken sandbox rule is final for the call, whatever the
            // adapter sent before or after it: no verification may turn it
            // into a delivery.
            CallError::Violation(_) => ErrorClass::Permanent,
            _ if sent => ErrorClass::Ambiguous,
            // A limit hit may be the input's fault or the machine's; the
            // delivery queue counts them and dead-letters a job after its
            // network's allowance of limit hits.
            CallError::Instantiate(_) | CallError::Limit(_) => ErrorClass::Retryable,
            // A faulty adapter fails the same way again: dead-letter, then
            // replay once a fixed version is deployed.
            CallError::Trap(_) | CallError::Malformed(_) => ErrorClass::Permanent,
        }
    }

    /// A short stable name for metrics and the dead-letter reason.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Adapter(AdapterError::Retryable(_)) => "adapter_retryable",
            CallError::Adapter(AdapterError::Permanent(_)) | CallError::Rejected(_) => {
                "adapter_permanent"
            }
            CallError::Adapter(AdapterError::Ambiguous(_)) => "adapter_ambiguous",
            CallError::Limit(LimitHit::CpuTime { .. }) => "limit_cpu_time",
            CallError::Limit(LimitHit::WallTime { .. }) => "limit_wall_time",
            CallError::Limit(LimitHit::Memory { .. }) => "limit_memory",
            CallError::Limit(LimitHit::Table { .. }) => "limit_table",
            CallError::Limit(LimitHit::StackOverflow) => "limit_stack",
            CallError::Limit(LimitHit::KvWrites { .. }) => "limit_kv_writes",
            CallError::Limit(LimitHit::Output { .. } | LimitHit::Transfer { .. }) => "limit_output",
            CallError::Violation(Violation::ForbiddenDestination { .. }) => "violation_destination",
            CallError::Violation(Violation::TooManyRequests { .. }) => "violation_requests",
            CallError::Trap(_) => "trap",
            CallError::Malformed(_) => "malformed_output",
            CallError::Instantiate(_) => "instantiate",
        }
    }
}

fn describe_adapter_error(e: &AdapterError) -> String {
    match e {
        AdapterError::Retryable(r) => match r.retry_after_ms {
            Some(ms) => format!("retryable: {} (retry after {ms} ms)", r.message),
            None => format!("retryable: {}", r.message),
        },
        AdapterError::Permanent(p) => {
            let mut s = String::from("rejected by the ministry");
            if let Some(code) = &p.code {
                s.push_str(&format!(" (code {code})"));
            }
            if let Some(field) = &p.field {
                s.push_str(&format!(" at {field}"));
            }
            s.push_str(": ");
            s.push_str(&p.message);
            s
        }
        AdapterError::Ambiguous(m) => format!("ambiguous: {m}"),
    }
}

/// Why an adapter's output breaks the contract (the payload of [`CallError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// A text field of `describe` is empty, too long or has control characters.
    #[error(transparent)]
    Text(#[from] TextError),
    /// `describe` names a contract major version this gateway does not serve.
    #[error("describe: contract-version {version:?} is not served by this gateway (1.x)")]
    ContractVersion { version: String },
    /// A field mapping's unified side is not a JSON pointer.
    #[error("describe: field-mappings[{index}].unified {pointer:?} is not a JSON pointer")]
    MappingPointer { index: usize, pointer: String },
    /// A receipt without a usable ministry case number.
    #[error("{0} (the ministry's case number is required)")]
    ReceiptCaseNumber(TextError),
    /// A receipt's event is about another ministry case.
    #[error("receipt: event for {event:?} does not match the receipt's case number {receipt:?}")]
    ReceiptMismatch { event: String, receipt: String },
    /// A poll's cursor over the cap.
    #[error("poll: next-cursor is {len} bytes, over {max}")]
    CursorTooLong { len: usize, max: usize },
    /// A callback answer whose status is not an HTTP status.
    #[error("callback: response status {status} is not an HTTP status")]
    CallbackStatus { status: u16 },
    /// One event of a list is wrong.
    #[error("events[{index}]: {error}")]
    Event { index: usize, error: EventError },
}

/// Why one event an adapter returned is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A text field is empty, too long or has control characters.
    #[error(transparent)]
    Text(#[from] TextError),
    /// `at` is not an RFC 3339 time with an offset.
    #[error("at {at:?} is not RFC 3339 with an offset: {error}")]
    Time {
        at: String,
        error: chrono::ParseError,
    },
    /// The event names another case than the call was for.
    #[error("event names case {said:?} but the call was for {known:?}")]
    OtherCase { said: String, known: String },
    /// The event breaks the unified schema's rules.
    #[error(transparent)]
    Schema(#[from] yiwang_schema::ValidationErrors),
}

/// A text field of adapter output that is unusable, and which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {problem}")]
pub struct TextError {
    /// The field, as the contract names it (`describe: name`, `raw-status`).
    pub what: &'static str,
    pub problem: TextProblem,
}

/// What is wrong with a text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("is empty")]
    Empty,
    #[error("is {len} bytes, over {max}")]
    TooLong { len: usize, max: usize },
    #[error("contains control characters")]
    ControlCharacters,
}

/// The call's error with the problems it reported: a `permanent`
/// rejection with reported problems becomes [`CallError::Rejected`];
/// anything else is left as it is (problems without a rejection are noise).
pub(super) fn settle(error: CallError, reported: Reported) -> CallError {
    match error {
        CallError::Adapter(AdapterError::Permanent(summary)) if !reported.problems.is_empty() => {
            CallError::Rejected(Box::new(Rejected {
                summary,
                problems: reported.problems,
                dropped: reported.dropped,
            }))
        }
        other => other,
    }
}

impl CallError {
    /// Every problem behind a rejection: the reported list (1.1), or the
    /// rejection itself as the one problem (1.0); empty for other failures.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            CallError::Rejected(r) => r.problems.clone(),
            CallError::Adapter(AdapterError::Permanent(r)) => vec![Problem::from(r)],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation() -> CallError {
        CallError::Violation(Violation::ForbiddenDestination {
            network: "n".into(),
            url: "http://elsewhere/".into(),
        })
    }

    #[test]
    fn a_violation_is_permanent_even_after_a_send() {
        assert_eq!(violation().class(false), ErrorClass::Permanent);
        assert_eq!(violation().class(true), ErrorClass::Permanent);
        let too_many = CallError::Violation(Violation::TooManyRequests { limit: 2 });
        assert_eq!(too_many.class(true), ErrorClass::Permanent);
    }

    #[test]
    fn limits_are_retryable_unless_something_was_sent() {
        let limits = [
            LimitHit::CpuTime { limit_ms: 1 },
            LimitHit::WallTime { limit_ms: 1 },
            LimitHit::Memory {
                desired: 2,
                limit: 1,
            },
            LimitHit::Table {
                desired: 2,
                limit: 1,
            },
            LimitHit::StackOverflow,
            LimitHit::Output { size: 2, limit: 1 },
            LimitHit::Transfer { budget: 1 },
        ];
        for hit in limits {
            let e = CallError::Limit(hit);
            assert_eq!(e.class(false), ErrorClass::Retryable, "{e}");
            assert_eq!(e.class(true), ErrorClass::Ambiguous, "{e}");
        }
    }

    #[test]
    fn traps_and_malformed_output_are_permanent_unless_sent() {
        let trap = CallError::Trap("unreachable".into());
        assert_eq!(trap.class(false), ErrorClass::Permanent);
        assert_eq!(trap.class(true), ErrorClass::Ambiguous);
        let local = CallError::Instantiate("pool".into());
        assert_eq!(local.class(false), ErrorClass::Retryable);
        assert_eq!(local.kind(), "instantiate");
    }
}
