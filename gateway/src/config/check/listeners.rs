//! `[listeners]`: the edge budgets must leave a client something to do.

use super::Problems;
use crate::config::types::{Config, ListenerConfig};

/// Every listener's budgets: none may be zero where zero would refuse every
/// client (`rate-per-principal = 0` and `handshake-rate-per-peer = 0` turn
/// those rates off and are allowed).
pub(super) fn check(config: &Config, p: &mut Problems<'_>) {
    let l = &config.listeners;
    let mut listeners = vec![("intake", &l.intake)];
    listeners.extend(l.callbacks.iter().map(|l| ("callbacks", l)));
    listeners.extend(l.admin.iter().map(|l| ("admin", l)));
    for (name, listener) in listeners {
        for (key, value) in zeros(listener) {
            if value == 0 {
                p.at(
                    p.key_span(key),
                    format!("listeners.{name}.{key} is 0: {}", what_zero_stops(key)),
                );
            }
        }
    }
}

/// The budgets that must be at least 1.
fn zeros(l: &ListenerConfig) -> [(&'static str, u64); 7] {
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    [
        ("max-concurrent", n(l.max_concurrent)),
        (
            "max-concurrent-per-principal",
            n(l.max_concurrent_per_principal.unwrap_or(1)),
        ),
        (
            "burst-per-principal",
            u64::from(l.burst_per_principal.unwrap_or(1)),
        ),
        ("max-handshakes", n(l.max_handshakes)),
        ("max-handshakes-per-peer", n(l.max_handshakes_per_peer)),
        (
            "refusal-records-per-minute",
            u64::from(l.refusal_records_per_minute),
        ),
        ("body-timeout-ms", l.body_timeout_ms),
    ]
}

fn what_zero_stops(key: &str) -> &'static str {
    match key {
        "max-handshakes" | "max-handshakes-per-peer" => "no client could complete a TLS handshake",
        "refusal-records-per-minute" => "no refusal would be audited, only counted",
        "body-timeout-ms" => "no client could send a body",
        _ => "no client could send a request",
    }
}
