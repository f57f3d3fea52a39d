//! What one attempt came to, and the closed set of ways it can fail. The
//! bottom of the delivery service: every other room may name these, they
//! name nothing of the delivery service.

use crate::runtime::ErrorClass;
use crate::store::AttemptOutcome;
use std::fmt;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered; for a submit, the ministry's case number and the events its
    /// reply already told.
    Delivered {
        network_case_number: Option<String>,
        events: Vec<yiwang_schema::Event>,
    },
    /// A verify query found nothing: resend now.
    NotFound,
    Failed(Failure),
}

/// A failed attempt: what the queue does next (`class`), why (`kind`, a
/// stable name for metrics and reports), and the message for operators.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: ErrorClass,
    pub kind: FailureKind,
    pub message: String,
    /// The ministry (or subscriber) asked us to wait at least this long.
    pub retry_after_ms: Option<u64>,
}

impl Outcome {
    /// A failure that no resend can fix: dead-letter it.
    pub fn permanent(kind: FailureKind, message: impl Into<String>) -> Outcome {
        Outcome::Failed(Failure {
            class: ErrorClass::Permanent,
            kind,
            message: message.into(),
            retry_after_ms: None,
        })
    }

    /// The label of the attempt it becomes (`found` for a verify query that
    /// found the case).
    pub fn attempt_outcome(&self, verifying: bool) -> AttemptOutcome {
        match self {
            Outcome::Delivered { .. } if verifying => AttemptOutcome::Found,
            Outcome::Delivered { .. } => AttemptOutcome::Delivered,
            Outcome::NotFound => AttemptOutcome::NotFound,
            Outcome::Failed(f) => match f.class {
                ErrorClass::Retryable => AttemptOutcome::Retryable,
                ErrorClass::Permanent => AttemptOutcome::Permanent,
                ErrorClass::Ambiguous => AttemptOutcome::Ambiguous,
            },
        }
    }
}

/// Why an attempt failed, as a stable name (kept in each attempt, shown in
/// dead letters, used as a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The adapter call failed; the name is `CallError::kind` (for example
    /// `adapter_permanent`, `limit_cpu_time`, `violation_destination`).
    Call(&'static str),
    /// The destination's TLS peer was refused, or refused us: its queue
    /// holds in alert.
    PeerRejected,
    /// The job's network is no longer configured.
    UnknownNetwork,
    /// The job's subscriber is no longer configured.
    UnknownSubscriber,
    /// The adapter version a replay pinned is not available.
    AdapterVersionMissing,
    /// A change for a network that never returned its case number.
    NoNetworkCaseNumber,
    /// A job queued for the wrong kind of destination.
    Misrouted,
    /// A subscriber URL that does not parse.
    BadUrl,
    /// A subscriber answered with this HTTP status.
    Http(u16),
    /// The request never left (connection refused, DNS, TLS before sending).
    NotSent,
    /// The request left and no reply came back.
    NoReply,
    /// The reply was over the size limit.
    ReplyTooLarge,
}

/// The sandbox limits a poison call hits again on every try (`limit-hits`
/// ends it). Wall time is not one of them: a slow ministry also runs out
/// of wall time, and that is the ministry's, not the adapter's, fault.
pub const SANDBOX_LIMITS: &[&str] = &[
    "limit_cpu_time",
    "limit_memory",
    "limit_stack",
    "limit_output",
    "limit_table",
    "limit_kv_writes",
];

/// The kind of a call the gateway itself could not start (no instance
/// free): a local resource shortage, never the network's fault.
pub const LOCAL_SHORTAGE: &str = "instantiate";

/// Whether a stored attempt kind is a sandbox limit (see [`SANDBOX_LIMITS`]).
pub fn is_sandbox_limit(kind: &str) -> bool {
    SANDBOX_LIMITS.contains(&kind)
}

impl FailureKind {
    /// Failures of the adapter itself, not of the ministry or the way to it.
    pub fn is_adapter_error(self) -> bool {
        matches!(self, FailureKind::Call(k) if k.starts_with("adapter_"))
    }

    /// The call exhausted a sandbox limit that a retry hits again.
    pub fn is_sandbox_limit(self) -> bool {
        matches!(self, FailureKind::Call(k) if is_sandbox_limit(k))
    }

    /// The gateway could not start the call: not counted against the
    /// network's breaker or the job's retries.
    pub fn is_local_shortage(self) -> bool {
        self == FailureKind::Call(LOCAL_SHORTAGE)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FailureKind::Call(kind) => kind,
            FailureKind::PeerRejected => "peer_rejected",
            FailureKind::UnknownNetwork => "unknown_network",
            FailureKind::UnknownSubscriber => "unknown_subscriber",
            FailureKind::AdapterVersionMissing => "adapter_version_missing",
            FailureKind::NoNetworkCaseNumber => "no_network_case_number",
            FailureKind::Misrouted => "misrouted",
            FailureKind::BadUrl => "bad_url",
            FailureKind::Http(status) => return write!(f, "http_{status}"),
            FailureKind::NotSent => "not_sent",
            FailureKind::NoReply => "no_reply",
            FailureKind::ReplyTooLarge => "reply_too_large",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_their_stored_names() {
        for (kind, name) in [
            (FailureKind::Call("limit_cpu_time"), "limit_cpu_time"),
            (FailureKind::PeerRejected, "peer_rejected"),
            (FailureKind::UnknownNetwork, "unknown_network"),
            (FailureKind::UnknownSubscriber, "unknown_subscriber"),
            (
                FailureKind::AdapterVersionMissing,
                "adapter_version_missing",
            ),
            (FailureKind::NoNetworkCaseNumber, "no_network_case_number"),
            (FailureKind::Misrouted, "misrouted"),
            (FailureKind::BadUrl, "bad_url"),
            (FailureKind::Http(503), "http_503"),
            (FailureKind::NotSent, "not_sent"),
            (FailureKind::NoReply, "no_reply"),
            (FailureKind::ReplyTooLarge, "reply_too_large"),
        ] {
            assert_eq!(kind.to_string(), name);
        }
        assert!(FailureKind::Call("adapter_retryable").is_adapter_error());
        assert!(!FailureKind::Call("limit_memory").is_adapter_error());
        assert!(!FailureKind::Http(500).is_adapter_error());
        for limit in SANDBOX_LIMITS {
            assert!(FailureKind::Call(limit).is_sandbox_limit(), "{limit}");
        }
        assert!(!FailureKind::Call("limit_wall_time").is_sandbox_limit());
        assert!(!FailureKind::Call("trap").is_sandbox_limit());
        assert!(FailureKind::Call("instantiate").is_local_shortage());
        assert!(!FailureKind::Call("limit_memory").is_local_shortage());
        assert!(!FailureKind::NotSent.is_local_shortage());
    }
}
