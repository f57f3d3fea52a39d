//! What the host lets an adapter do: log, read the clock, keep small state,
//! read its configuration, and use secrets without seeing them.

use crate::bindings::yiwang::adapter as wit;
use crate::{AdapterError, error::permanent};
use chrono::{DateTime, FixedOffset, TimeZone};
use yiwang_schema::BEIJING;

pub use wit::log::Level;

/// Log a message; the host tags it with the network and the case.
pub fn log(level: Level, message: &str) {
    wit::log::log(level, message);
}

/// Log at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Route panics to the host's log at error level ("panicked at
/// src/lib.rs:12:5: message"), so a trap's failure reason says why. Called
/// at every export's entry; installs once per instance.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let line = match info.location() {
                Some(at) => format!(
                    "panicked at {}:{}:{}: {message}",
                    at.file(),
                    at.line(),
                    at.column()
                ),
                None => format!("panicked: {message}"),
            };
            log(Level::Error, &line);
        }));
    });
}

/// Milliseconds since the Unix epoch, from the host's clock.
pub fn now_millis() -> i64 {
    wit::clock::now_millis()
}

/// The host's clock in Beijing time (+08:00), the zone ministries assume.
pub fn now() -> DateTime<FixedOffset> {
    BEIJING
        .timestamp_millis_opt(now_millis())
        .single()
        .unwrap_or_else(|| {
            BEIJING
                .timestamp_millis_opt(0)
                .single()
                .unwrap_or_else(|| unreachable!())
        })
}

/// This network's key-value store (tokens, cursors).
pub mod kv {
    use super::wit;

    /// Read a value.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        wit::kv::get(key)
    }
    /// Read a UTF-8 value.
    pub fn get_string(key: &str) -> Option<String> {
        get(key).and_then(|v| String::from_utf8(v).ok())
    }
    /// Store a value; fails over the network's quota.
    pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
        wit::kv::set(key, value)
    }
    /// Remove a value.
    pub fn delete(key: &str) {
        wit::kv::delete(key)
    }
}

/// An optional configuration value of this network.
pub fn config(key: &str) -> Option<String> {
    wit::config::get(key)
}

/// A configuration value the adapter cannot work without: its absence is a
/// deployment error, reported as permanent so it reaches an operator.
pub fn require_config(key: &str) -> Result<String, AdapterError> {
    config(key).ok_or_else(|| permanent(format!("adapter configuration `{key}` is not set")))
}

/// The placeholder the host replaces with the named secret in a request sent
/// with [`crate::http::Request::send_with_secrets`] (header values and body).
/// The adapter never sees the secret itself.
pub fn secret_placeholder(name: &str) -> String {
    format!("${{secret:{name}}}")
}

/// HMAC-SHA256 keyed with a named secret the adapter cannot read.
pub fn hmac_sha256_with_secret(secret: &str, message: &[u8]) -> Result<Vec<u8>, AdapterError> {
    wit::secrets::hmac_sha256(secret, message)
        .map_err(|e| permanent(format!("signing with secret `{secret}` failed: {e}")))
}

/// Hash algorithms the host computes (contract 1.1).
pub use wit::crypto::{Algorithm, Part};
/// One problem behind a rejection (contract 1.1).
pub use wit::problems::Problem;

fn crypto_error(what: &str, e: wit::crypto::CryptoError) -> AdapterError {
    use wit::crypto::CryptoError as E;
    permanent(match e {
        E::UnknownSecret(name) => format!("{what}: no secret named `{name}` for this network"),
        E::TooLarge(limit) => format!("{what}: the input is over the host's {limit} bytes"),
    })
}

/// The digest of `parts` concatenated, computed by the host: a
/// [`Part::Secret`] is replaced by that secret's value inside the host, so
/// the adapter gets the digest and never the secret. A missing secret is a
/// deployment error (permanent, naming it).
pub fn digest(algorithm: Algorithm, parts: &[Part]) -> Result<Vec<u8>, AdapterError> {
    wit::crypto::digest(algorithm, parts).map_err(|e| crypto_error("digest", e))
}

/// The HMAC of `parts` keyed with the secret `key_secret`, by the host.
pub fn hmac_with_secret(
    algorithm: Algorithm,
    key_secret: &str,
    parts: &[Part],
) -> Result<Vec<u8>, AdapterError> {
    wit::crypto::hmac(algorithm, key_secret, parts).map_err(|e| crypto_error("hmac", e))
}

/// `n` random bytes from the host (at most 1024): nonces, request ids.
/// Fixture tests get the same bytes every run.
pub fn random_bytes(n: u32) -> Result<Vec<u8>, AdapterError> {
    wit::random::random_bytes(n)
        .map_err(|max| permanent(format!("random-bytes: asked {n} bytes, at most {max}")))
}

/// A `permanent` rejection that names every problem the ministry reported:
/// the host records them all (dead letter, case view); the rejection itself
/// names the first problem's field and code with `message` as the summary.
pub fn rejected(message: impl Into<String>, problems: Vec<Problem>) -> AdapterError {
    wit::problems::report(&problems);
    let first = problems.into_iter().next();
    AdapterError::Permanent(crate::Rejection {
        field: first.as_ref().and_then(|p| p.pointer.clone()),
        code: first.and_then(|p| p.code),
        message: message.into(),
    })
}
