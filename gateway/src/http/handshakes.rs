//! The budget of unauthenticated work: TLS handshakes.
//!
//! Before a client has a certificate nothing else limits it, and a
//! handshake costs the gateway a key exchange and a signature. So every
//! accepted connection is admitted to its handshake by three budgets, in
//! order, all within the handshake's deadline (`header-timeout-ms`):
//!
//! 1. its **source's rate** (`handshake-rate-per-peer` a second, bursts of
//!    twice that): a faster source waits;
//! 2. its **source's share** (`max-handshakes-per-peer` in progress, as many
//!    more waiting; a connection beyond those is closed at once);
//! 3. the **listener's** `max-handshakes` in progress.
//!
//! A connection still waiting at the deadline is closed unanswered. Every
//! such refusal is audited through [`super::refusals`], whose per-source
//! budget keeps a flood from flooding the trail. One source (an IPv4
//! address or an IPv6 /64) therefore holds at most its share of the
//! listener's handshakes, and other sources keep theirs.

use super::budget::Budget;
use super::refusals::source;
use crate::config::ListenerConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// One listener's handshake budgets.
pub(crate) struct Handshakes {
    global: Arc<Semaphore>,
    max_global: usize,
    per_peer: usize,
    rate: Option<(Budget, u32)>,
    peers: Mutex<HashMap<String, Peer>>,
}

/// A source's handshake slots and the connections using or awaiting them.
struct Peer {
    slots: Arc<Semaphore>,
    users: usize,
}

/// Why a connection was closed before its handshake: the limit's name (as
/// in the `limit` record) and the reason with its numbers.
#[derive(Debug)]
pub(crate) struct Refused {
    pub limit: &'static str,
    pub reason: String,
}

/// Leave to run one handshake; the slots are given back when it is dropped.
pub(crate) struct Admission {
    _global: OwnedSemaphorePermit,
    _peer: OwnedSemaphorePermit,
    _user: PeerUse,
}

/// A connection counted against its source until dropped.
struct PeerUse {
    handshakes: Arc<Handshakes>,
    source: String,
}

impl Drop for PeerUse {
    fn drop(&mut self) {
        let mut peers = self.handshakes.peers();
        if let Some(p) = peers.get_mut(&self.source) {
            p.users = p.users.saturating_sub(1);
            if p.users == 0 {
                peers.remove(&self.source);
            }
        }
    }
}

impl Handshakes {
    pub(crate) fn new(cfg: &ListenerConfig) -> Arc<Self> {
        let r = cfg.handshake_rate_per_peer;
        let rate = (r > 0).then(|| (Budget::per_second(r, r.saturating_mul(2)), r));
        let max_global = cfg.max_handshakes.max(1);
        Arc::new(Handshakes {
            global: Arc::new(Semaphore::new(max_global)),
            max_global,
            per_peer: cfg.max_handshakes_per_peer.max(1),
            rate,
            peers: Mutex::default(),
        })
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit a connection from `ip` to its handshake by `deadline`, or say
    /// which budget refused it.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        deadline: Instant,
    ) -> Result<Admission, Refused> {
        let source = source(ip);
        let (slots, user) = self.join(&source)?;
        self.pace(&source, deadline).await?;
        let peer = match tokio::time::timeout_at(deadline, slots.acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(Refused {
                    limit: "max-handshakes-per-peer",
                    reason: format!(
                        "source {source} kept its {} handshake slots busy until the deadline",
                        self.per_peer
                    ),
                });
            }
        };
        let global =
            match tokio::time::timeout_at(deadline, Arc::clone(&self.global).acquire_owned()).await
            {
                Ok(Ok(p)) => p,
                _ => {
                    return Err(Refused {
                        limit: "max-handshakes",
                        reason: format!(
                            "the listener's {} handshake slots stayed busy until the deadline",
                            self.max_global
                        ),
                    });
                }
            };
        Ok(Admission {
            _global: global,
            _peer: peer,
            _user: user,
        })
    }

    /// Count a connection against its source: in progress plus waiting at
    /// most twice the source's share.
    fn join(self: &Arc<Self>, source: &str) -> Result<(Arc<Semaphore>, PeerUse), Refused> {
        let mut peers = self.peers();
        let peer = peers.entry(source.to_string()).or_insert_with(|| Peer {
            slots: Arc::new(Semaphore::new(self.per_peer)),
            users: 0,
        });
        if peer.users >= 2 * self.per_peer {
            return Err(Refused {
                limit: "max-handshakes-per-peer",
                reason: format!(
                    "source {source} already has {} connections in or waiting for a handshake \
                     (twice max-handshakes-per-peer {})",
                    peer.users, self.per_peer
                ),
            });
        }
        peer.users += 1;
        let slots = Arc::clone(&peer.slots);
        drop(peers);
        let user = PeerUse {
            handshakes: Arc::clone(self),
            source: source.to_string(),
        };
        Ok((slots, user))
    }

    /// Wait until the source's rate allows another handshake.
    async fn pace(&self, source: &str, deadline: Instant) -> Result<(), Refused> {
        let Some((limiter, per_second)) = &self.rate else {
            return Ok(());
        };
        loop {
            let Err(wait) = limiter.spend(source) else {
                return Ok(());
            };
            if Instant::now() + wait > deadline {
                return Err(Refused {
                    limit: "handshake-rate-per-peer",
                    reason: format!(
                        "source {source} started handshakes faster than {per_second} a second \
                         until the deadline"
                    ),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budgets(per_peer: usize, global: usize) -> Arc<Handshakes> {
        let mut cfg = ListenerConfig::new("127.0.0.1:0");
        cfg.max_handshakes = global;
        cfg.max_handshakes_per_peer = per_peer;
        cfg.handshake_rate_per_peer = 0;
        Handshakes::new(&cfg)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    #[tokio::test]
    async fn one_source_holds_its_share_and_another_source_is_still_admitted() {
        let h = budgets(2, 8);
        let held = [
            h.admit(ip("10.0.0.1"), soon()).await,
            h.admit(ip("10.0.0.1"), soon()).await,
        ];
        assert!(held.iter().all(Result::is_ok));
        let third = h.admit(ip("10.0.0.1"), soon()).await;
        assert_eq!(
            third.err().map(|r| r.limit),
            Some("max-handshakes-per-peer")
        );
        assert!(h.admit(ip("10.0.0.2"), soon()).await.is_ok());
        // Its slots come back when its handshakes end.
        drop(held);
        assert!(h.admit(ip("10.0.0.1"), soon()).await.is_ok());
        assert!(h.peers().is_empty(), "a quiet source is forgotten");
    }

    #[tokio::test]
    async fn beyond_twice_its_share_a_source_is_refused_without_waiting() {
        let h = budgets(1, 8);
        let _held = h.admit(ip("10.0.0.1"), soon()).await;
        let far = Instant::now() + Duration::from_secs(3600);
        let waiting = tokio::spawn({
            let h = Arc::clone(&h);
            async move { h.admit(ip("10.0.0.1"), far).await.map(drop) }
        });
        while h.peers().get("10.0.0.1").map(|p| p.users) != Some(2) {
            tokio::task::yield_now().await;
        }
        // The deadline is an hour away: a refusal now is the cap, not a wait.
        let refused = h.admit(ip("10.0.0.1"), far).await;
        let refused = refused.err().unwrap_or_else(|| panic!("admitted"));
        assert_eq!(refused.limit, "max-handshakes-per-peer");
        assert!(
            refused.reason.contains("already has 2 connections"),
            "{}",
            refused.reason
        );
        waiting.abort();
    }

    #[tokio::test]
    async fn the_listener_budget_refuses_when_every_slot_stays_busy() {
        let h = budgets(4, 2);
        let _a = h.admit(ip("10.0.0.1"), soon()).await;
        let _b = h.admit(ip("10.0.0.2"), soon()).await;
        let refused = h.admit(ip("10.0.0.3"), soon()).await;
        assert_eq!(refused.err().map(|r| r.limit), Some("max-handshakes"));
    }

    #[tokio::test]
    async fn a_source_over_its_rate_waits_and_past_the_deadline_is_refused() {
        let mut cfg = ListenerConfig::new("127.0.0.1:0");
        cfg.handshake_rate_per_peer = 1;
        let h = Handshakes::new(&cfg);
        // The burst (twice the rate) passes at once.
        assert!(h.admit(ip("10.0.0.1"), soon()).await.is_ok());
        assert!(h.admit(ip("10.0.0.1"), soon()).await.is_ok());
        // The next is due in about a second: past a 50 ms deadline.
        let refused = h.admit(ip("10.0.0.1"), soon()).await;
        assert_eq!(
            refused.err().map(|r| r.limit),
            Some("handshake-rate-per-peer")
        );
        // Another source has its own rate.
        assert!(h.admit(ip("10.0.0.2"), soon()).await.is_ok());
    }
}
