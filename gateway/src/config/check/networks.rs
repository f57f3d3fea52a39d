//! `[networks.<name>]`: the adapter (present, pin well-formed), endpoints
//! (absolute http(s), secured), concurrency, limits within the runtime's,
//! the retry policy and the status follow-up schedule.

use super::{Problems, check_retry, is_http_url, place, tls, valid_name};
use crate::config::types::{MAX_FOLLOW_UP_BATCH, NetworkConfig};
use crate::runtime::RuntimeConfig;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

pub(super) fn check(
    name: &str,
    net: &Spanned<NetworkConfig>,
    runtime: &RuntimeConfig,
    p: &mut Problems<'_>,
    base: &Path,
) {
    let span = net.span();
    let net = net.get_ref();
    if !valid_name(name) {
        p.at(
            span.clone(),
            format!("network name {name:?}: use lowercase letters, digits and '-'"),
        );
    }
    let what = format!("network `{name}`");
    check_adapter(p, base, &what, net);
    check_endpoints(p, &what, &span, net);
    tls::check_origins(
        p,
        base,
        &what,
        &span,
        net.endpoints.iter(),
        net.tls.as_ref(),
        net.plaintext,
    );
    if *net.concurrency.get_ref() == 0 {
        p.at(
            place(&net.concurrency, &span),
            format!("{what}: concurrency must be at least 1"),
        );
    }
    check_limits(p, &what, &span, net, runtime);
    check_retry(p, &what, &net.retry, &span);
    check_follow_up(p, &what, net);
}

/// The shortest follow-up interval: a lookup-only ministry asked about
/// every open case more often than this is being polled, not followed up.
pub const MIN_FOLLOW_UP_INTERVAL_MS: u64 = 100;

/// `[networks.X.follow-up]`: 100 <= interval-ms <= max-interval-ms, 1 <= batch <= 1000.
fn check_follow_up(p: &mut Problems<'_>, what: &str, net: &NetworkConfig) {
    let Some(follow_up) = &net.follow_up else {
        return;
    };
    let f = follow_up.get_ref();
    if f.interval_ms < MIN_FOLLOW_UP_INTERVAL_MS || f.max_interval_ms < f.interval_ms {
        p.at(
            follow_up.span(),
            format!(
                "{what}: follow-up.interval-ms {} and max-interval-ms {}: need \
                 {MIN_FOLLOW_UP_INTERVAL_MS} <= interval-ms <= max-interval-ms",
                f.interval_ms, f.max_interval_ms
            ),
        );
    }
    if f.batch == 0 || f.batch > MAX_FOLLOW_UP_BATCH {
        p.at(
            follow_up.span(),
            format!(
                "{what}: follow-up.batch {}: need 1 to {MAX_FOLLOW_UP_BATCH} cases per round",
                f.batch
            ),
        );
    }
}

/// The component exists; a pin is a sha256 in lowercase hex.
fn check_adapter(p: &mut Problems<'_>, base: &Path, what: &str, net: &NetworkConfig) {
    let adapter = base.join(net.adapter.get_ref());
    if !adapter.is_file() {
        p.at(
            net.adapter.span(),
            format!("{what}: adapter {} does not exist", adapter.display()),
        );
    }
    if let Some(pin) = &net.adapter_sha256 {
        let hex = pin.get_ref();
        let lower_hex = hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if hex.len() != 64 || !lower_hex {
            p.at(
                pin.span(),
                format!("{what}: adapter-sha256 must be 64 lowercase hex digits"),
            );
        }
    }
}

fn check_endpoints(p: &mut Problems<'_>, what: &str, span: &Range<usize>, net: &NetworkConfig) {
    if net.endpoints.is_empty() {
        p.at(
            span.clone(),
            format!("{what}: endpoints is empty; an adapter must be able to reach its network"),
        );
    }
    for e in &net.endpoints {
        if !is_http_url(e.get_ref()) {
            p.at(
                e.span(),
                format!(
                    "{what}: endpoint {:?} is not an absolute http(s) URL",
                    e.get_ref()
                ),
            );
        }
    }
}

/// Memory under the runtime's ceiling; 0 < cpu time <= wall time.
fn check_limits(
    p: &mut Problems<'_>,
    what: &str,
    span: &Range<usize>,
    net: &NetworkConfig,
    runtime: &RuntimeConfig,
) {
    let limits = net.limits.get_ref();
    let at = place(&net.limits, span);
    if limits.memory_bytes > runtime.max_memory_bytes {
        p.at(
            at.clone(),
            format!(
                "{what}: limits.memory-bytes {} is over runtime.max-memory-bytes {}",
                limits.memory_bytes, runtime.max_memory_bytes
            ),
        );
    }
    if limits.cpu_time.is_zero() || limits.wall_time < limits.cpu_time {
        p.at(at, format!("{what}: need 0 < cpu-time-ms <= wall-time-ms"));
    }
}
