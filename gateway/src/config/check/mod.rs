//! The rules serde cannot express: files that must exist, names that must be
//! configured, values that must agree with each other. One file per section;
//! each reports into [`Problems`] and never stops at the first problem.
//!
//! Positions: a problem points at the value at fault, or at its table when
//! the value was defaulted (see [`place`]); `[audit]` problems point at the
//! file's start, as before.

mod adapters;
mod audit;
mod forms;
mod items;
mod listeners;
mod networks;
mod principals;
mod replica;
mod runtime;
mod storage;
mod subscribers;
mod tls;

pub(super) use forms::catalogue as forms;
#[cfg(test)]
pub(super) use replica::valid_replica_id;

use super::error::Problems;
use super::types::{Config, RetryPolicy};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Every rule of every section, in the order the sections were always checked
/// (problems at the same place keep this order after sorting).
pub(super) fn check(config: &Config, p: &mut Problems<'_>, base: &Path) {
    tls::check_server(config, p, base);
    listeners::check(config, p);
    principals::check(config, p);
    audit::check(config, p);
    adapters::check(config, p, base);
    for (name, net) in &config.networks {
        networks::check(name, net, &config.runtime, p, base);
    }
    for (name, sub) in &config.subscribers {
        subscribers::check(name, sub, p, base);
    }
    for (code, item) in &config.items {
        items::check(code, item, &config.networks, p);
    }
    runtime::check(config, p);
    storage::check(config, p, base);
    check_shutdown_grace(config, p);
    check_time_window(config, p);
    replica::check(config, p);
}

/// `[gateway] earliest-case-time` between the schema's floor and now;
/// `max-clock-ahead-s` between 0 and a day.
fn check_time_window(config: &Config, p: &mut Problems<'_>) {
    let g = &config.gateway;
    let now = chrono::Utc::now();
    let floor = yiwang_schema::TimeWindow::at(now).earliest;
    if let Some(t) = g.earliest_case_time {
        if t < floor {
            p.at(
                p.key_span("earliest-case-time"),
                format!(
                    "gateway.earliest-case-time {} is before the schema's floor {}: \
                     no case can be earlier",
                    t.to_rfc3339(),
                    floor.to_rfc3339()
                ),
            );
        } else if t > now {
            p.at(
                p.key_span("earliest-case-time"),
                format!(
                    "gateway.earliest-case-time {} is in the future: every case would be refused",
                    t.to_rfc3339()
                ),
            );
        }
    }
    let max = super::types::MAX_CLOCK_AHEAD_S;
    if !(0..=max).contains(&g.max_clock_ahead_s) {
        p.at(
            p.key_span("max-clock-ahead-s"),
            format!(
                "gateway.max-clock-ahead-s {} is outside 0..={max} (the default is 300)",
                g.max_clock_ahead_s
            ),
        );
    }
}

/// `[gateway] shutdown-grace-ms`: 0 would abandon every call at once; more
/// than ten minutes outlasts any service manager's stop timeout.
fn check_shutdown_grace(config: &Config, p: &mut Problems<'_>) {
    let grace = config.gateway.shutdown_grace_ms;
    let max = super::types::MAX_SHUTDOWN_GRACE_MS;
    let why = if grace == 0 {
        "a stop would abandon every call in progress at once"
    } else if grace > max {
        "a service manager would kill the gateway long before"
    } else {
        return;
    };
    p.at(
        p.key_span("shutdown-grace-ms"),
        format!(
            "gateway.shutdown-grace-ms {grace} is outside 1..={max}: {why} (the default is 15000)"
        ),
    );
}

/// The value's place, or `outer`'s when the value was defaulted.
fn place<T>(value: &Spanned<T>, outer: &Range<usize>) -> Range<usize> {
    let span = value.span();
    if span.is_empty() { outer.clone() } else { span }
}

/// Network and subscriber names: lowercase letters, digits and '-'.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// An absolute `http://` or `https://` URL with a host.
fn is_http_url(text: &str) -> bool {
    text.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    })
}

/// `{what}: {key} file … does not exist`, unless `base/file` is a file.
fn must_exist(
    p: &mut Problems<'_>,
    base: &Path,
    span: &Range<usize>,
    what: &str,
    key: &str,
    file: &Path,
) {
    let path = base.join(file);
    if !path.is_file() {
        p.at(
            span.clone(),
            format!("{what}: {key} file {} does not exist", path.display()),
        );
    }
}

/// Backoff needs a first interval, and a ceiling not below it; a poison
/// call needs at least one hit to end.
fn check_retry(
    p: &mut Problems<'_>,
    what: &str,
    retry: &Spanned<RetryPolicy>,
    outer: &Range<usize>,
) {
    let r = retry.get_ref();
    if r.initial_ms == 0 || r.max_interval_ms < r.initial_ms {
        p.at(
            place(retry, outer),
            format!("{what}: need 0 < retry.initial-ms <= retry.max-interval-ms"),
        );
    }
    if r.limit_hits == 0 {
        p.at(
            place(retry, outer),
            format!(
                "{what}: retry.limit-hits = 0; need at least 1 (the sandbox limit hits \
                 after which a job is dead-lettered)"
            ),
        );
    }
}
