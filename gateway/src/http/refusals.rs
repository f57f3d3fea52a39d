//! Refusals at the edge, written down without letting a flood of them
//! flood the trail.
//!
//! Every refusal a listener makes before a handler runs — a limit (`limit`
//! records: slow body, a principal's share or rate, header size, a
//! malformed request, handshakes beyond a source's budget) or a refused TLS
//! handshake (`tls-refused`) — is logged, counted in a metric and audited
//! here, not waited for: a flood of refusals does not wait on the disk.
//!
//! Each **source** (the principal for a request, the source address for a
//! connection: an IPv4 address or an IPv6 /64) may leave
//! `refusal-records-per-minute` records a minute. Beyond that its refusals
//! are only counted (`yiwang_refusal_records_suppressed_total`); the count
//! rides on the source's next record (`suppressed_before`), and whatever is
//! still counted when the minute ends is written as one summary record per
//! source and kind (`summary: true`, `suppressed: N`), at most
//! [`MAX_SUMMARIES`] of them, the rest folded into one for all other
//! sources. So the trail says how many refusals there were and from whom,
//! whatever the rate, in a bounded number of records.

use super::budget::Budget;
use crate::config::ListenerConfig;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yiwang_audit::{AuditLog, Entry, Kind};

/// Summary records written per minute at most; other sources share one.
pub(crate) const MAX_SUMMARIES: usize = 100;

/// How often counted refusals are written as summaries.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// One listener's refusal recorder.
pub struct Refusals {
    audit: Arc<AuditLog>,
    listener: &'static str,
    budget: Budget,
    suppressed: Mutex<HashMap<(Kind, String), u64>>,
}

impl Refusals {
    pub fn new(listener: &'static str, cfg: &ListenerConfig, audit: Arc<AuditLog>) -> Arc<Self> {
        Arc::new(Refusals {
            audit,
            listener,
            budget: Budget::per_minute(cfg.refusal_records_per_minute),
            suppressed: Mutex::default(),
        })
    }

    /// A request refused at `limit` (its principal is the source).
    pub(crate) fn limit(&self, principal: &str, limit: &'static str, status: u16, detail: Value) {
        tracing::warn!(listener = self.listener, principal, limit, status, %detail, "request refused at a listener limit");
        metrics::counter!("yiwang_limit_refusals_total", "limit" => limit).increment(1);
        let mut detail = detail;
        detail["limit"] = json!(limit);
        detail["status"] = json!(status);
        detail["listener"] = json!(self.listener);
        let entry = Entry::new(Kind::Limit).principal(principal).detail(detail);
        self.record(principal.to_string(), entry);
    }

    /// A connection refused before any request (its address is the source):
    /// a handshake beyond the source's budget, closed unanswered.
    pub(crate) fn connection(&self, peer: SocketAddr, limit: &'static str, reason: &str) {
        tracing::warn!(listener = self.listener, %peer, limit, reason, "connection refused at a listener limit");
        metrics::counter!("yiwang_limit_refusals_total", "limit" => limit).increment(1);
        let entry = Entry::new(Kind::Limit).detail(json!({
            "limit": limit,
            "listener": self.listener,
            "peer": peer.to_string(),
            "reason": reason,
        }));
        self.record(source(peer.ip()), entry);
    }

    /// A TLS handshake the listener refused.
    pub(crate) fn handshake(&self, peer: SocketAddr, reason: &str) {
        tracing::warn!(listener = self.listener, %peer, reason, "TLS handshake refused");
        metrics::counter!("yiwang_tls_handshake_refusals_total", "listener" => self.listener)
            .increment(1);
        let entry = Entry::new(Kind::TlsRefused).detail(json!({
            "listener": self.listener,
            "peer": peer.to_string(),
            "reason": reason,
        }));
        self.record(source(peer.ip()), entry);
    }

    /// Audit `entry` for `source`, or count it when the source has used its
    /// records for the minute.
    fn record(&self, source: String, mut entry: Entry) {
        let key = (entry.kind, source);
        if self.budget.spend(&key.1).is_err() {
            metrics::counter!("yiwang_refusal_records_suppressed_total", "listener" => self.listener, "kind" => key.0.as_str()).increment(1);
            *self.counted().entry(key).or_default() += 1;
            return;
        }
        if let Some(n) = self.counted().remove(&key) {
            entry.detail["suppressed_before"] = json!(n);
        }
        self.audit.record(entry);
    }

    fn counted(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, String), u64>> {
        self.suppressed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write what was counted and not recorded as summary records.
    pub(crate) fn summarize(&self) {
        let counted: Vec<_> = self.counted().drain().collect();
        let mut others: HashMap<Kind, (u64, usize)> = HashMap::new();
        for (i, ((kind, source), n)) in counted.into_iter().enumerate() {
            if i >= MAX_SUMMARIES {
                let o = others.entry(kind).or_default();
                o.0 += n;
                o.1 += 1;
                continue;
            }
            self.audit.record(Entry::new(kind).detail(json!({
                "listener": self.listener,
                "summary": true,
                "source": source,
                "suppressed": n,
                "reason": "refusals beyond the source's refusal-records-per-minute, counted not recorded",
            })));
        }
        for (kind, (n, sources)) in others {
            self.audit.record(Entry::new(kind).detail(json!({
                "listener": self.listener,
                "summary": true,
                "source": "others",
                "sources": sources,
                "suppressed": n,
                "reason": "refusals of sources beyond the summaries a minute may hold",
            })));
        }
    }

    /// Summarize once a minute until `stop`, then once more.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(SUMMARY_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = every.tick() => self.summarize(),
            }
        }
        self.summarize();
    }
}

type Value = serde_json::Value;

/// The source a connection counts against: its IPv4 address, or the /64 of
/// its IPv6 address (one host's usual share of a network).
pub(crate) fn source(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yiwang_audit::{AuditConfig, Query};

    fn records(dir: &std::path::Path) -> Vec<yiwang_audit::Record> {
        yiwang_audit::query(dir, &Query::default())
            .map(|r| r.unwrap_or_else(|e| panic!("query: {e}")))
            .filter(|r| matches!(r.kind, Kind::Limit | Kind::TlsRefused))
            .collect()
    }

    #[tokio::test]
    async fn a_flood_leaves_its_budget_of_records_and_the_count_of_the_rest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = AuditLog::open(dir.path(), &AuditConfig::default())
            .unwrap_or_else(|e| panic!("open: {e}"));
        let mut cfg = ListenerConfig::new("127.0.0.1:0");
        cfg.refusal_records_per_minute = 5;
        let r = Refusals::new("intake", &cfg, Arc::clone(&log));
        let flood: SocketAddr = "10.0.0.1:4000".parse().unwrap_or_else(|e| panic!("{e}"));
        let other: SocketAddr = "10.0.0.2:4000".parse().unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..1000 {
            r.handshake(flood, "client certificate revoked");
        }
        // Another source still has its whole budget.
        for _ in 0..3 {
            r.handshake(other, "no client certificate");
        }
        r.limit("bureau-a", "rate-per-principal", 429, json!({}));
        r.summarize();
        log.close().await.unwrap_or_else(|e| panic!("close: {e}"));

        let recs = records(dir.path());
        let from = |ip: &str| {
            recs.iter()
                .filter(|r| r.detail["peer"].as_str().is_some_and(|p| p.starts_with(ip)))
                .count()
        };
        assert_eq!(from("10.0.0.1:"), 5, "{recs:#?}");
        assert_eq!(from("10.0.0.2:"), 3, "{recs:#?}");
        let summaries: Vec<_> = recs
            .iter()
            .filter(|r| r.detail["summary"] == true)
            .collect();
        assert_eq!(summaries.len(), 1, "{summaries:#?}");
        assert_eq!(summaries[0].kind, Kind::TlsRefused);
        assert_eq!(summaries[0].detail["source"], "10.0.0.1");
        assert_eq!(summaries[0].detail["suppressed"], 995);
        let limit: Vec<_> = recs.iter().filter(|r| r.kind == Kind::Limit).collect();
        assert_eq!(limit.len(), 1);
        assert_eq!(limit[0].principal.as_deref(), Some("bureau-a"));
        assert_eq!(limit[0].detail["status"], 429);
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            source(ip("2001:db8:1:2:bbbb::9")),
            source(ip("2001:db8:1:2::5"))
        );
        assert_eq!(source(ip("::ffff:10.1.2.3")), "10.1.2.3");
        assert_eq!(source(ip("10.1.2.3")), "10.1.2.3");
    }
}
