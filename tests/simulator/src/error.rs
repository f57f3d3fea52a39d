//! The simulator's error type.

use std::net::SocketAddr;

/// Errors from starting or driving a simulated network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("network {network}: cannot listen on {addr}: {source}")]
    Bind {
        network: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A name on the command line or in a config is not a known archetype.
    #[error("unknown archetype {0:?} (expected json-rest, soap, signed-api or callback)")]
    UnknownArchetype(String),
    /// A status code that the network's status table does not contain.
    #[error("network {network}: status code {code:?} is not in this archetype's table")]
    UnknownStatus { network: String, code: String },
    /// No case with that ministry case number.
    #[error("network {network}: no case {case}")]
    UnknownCase { network: String, case: String },
    /// A fault setting out of range.
    #[error("fault {field}: {reason}")]
    InvalidFault { field: &'static str, reason: String },
    /// The `accept_then_timeout` fault held a connection for its full time:
    /// the connection is then closed without a reply.
    #[error("held connection released without a reply after {0:?}")]
    HoldExpired(std::time::Duration),
    /// An archetype-5 callback URL the push client cannot use.
    #[error("network {network}: callback URL {url:?}: {reason}")]
    InvalidCallbackUrl {
        network: String,
        url: String,
        reason: String,
    },
    /// A TLS certificate, key or CA that cannot be used.
    #[error("network {network}: {reason}")]
    Tls { network: String, reason: String },
    /// A TLS operation on a network that serves plain HTTP.
    #[error("network {network}: serves plain HTTP, not TLS")]
    NoTls { network: String },
    /// A push operation on a network whose archetype does not push.
    #[error("network {network}: this archetype does not push status changes")]
    NoPushes { network: String },
}

/// Result with the simulator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
