//! A network's reserved instance slots.
//!
//! The engine's instance pool is shared by every network; without a
//! reservation one slow network (28 s submits at concurrency 128) took every
//! slot and every other network's calls failed to instantiate. Each network
//! therefore owns `concurrency + callback-concurrency + (1 if it polls) +
//! (1 if it follows statuses up) + 1` slots (one per background task, the
//! poller and the follow-up scheduler, each making one call at a time; the
//! last one for `describe`, a hot-swap's load and verification headroom), shared by all versions of its adapter; every call takes one
//! before it instantiates and holds it until its store is dropped. The pool
//! is sized from the sum of the reservations (or `config check` refuses a
//! smaller `[runtime] max-instances`), so one network can only ever wait
//! for its own slots, never exhaust another's.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Slots a network reserves for calls besides deliveries and callbacks:
/// `describe`, a hot-swap's load, a verification.
pub const HEADROOM_SLOTS: u32 = 1;

/// Callbacks one network may have in its adapter at once, by default.
pub const DEFAULT_CALLBACK_CONCURRENCY: u32 = 4;

/// The instance slots a network reserves (see the module's opener):
/// `background` is how many of its background tasks (poller, follow-up
/// scheduler) run, one call at a time each.
pub fn reserved_slots(concurrency: u32, callback_concurrency: u32, background: u32) -> u32 {
    concurrency
        .saturating_add(callback_concurrency)
        .saturating_add(background)
        .saturating_add(HEADROOM_SLOTS)
}

/// One network's slots, shared by every version of its adapter (clones
/// share the semaphores).
#[derive(Debug, Clone)]
pub struct NetworkSlots {
    calls: Arc<Semaphore>,
    callbacks: Arc<Semaphore>,
    callback_limit: u32,
    reserved: u32,
}

/// A callback over the network's `callback-concurrency`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network `{network}` already has {limit} callbacks in its adapter (callback-concurrency)")]
pub struct CallbacksBusy {
    pub network: String,
    pub limit: u32,
}

impl NetworkSlots {
    pub fn new(concurrency: u32, callback_concurrency: u32, polls: bool) -> Self {
        NetworkSlots::reserving(concurrency, callback_concurrency, u32::from(polls))
    }

    /// Slots for `background` background tasks besides deliveries and
    /// callbacks (see [`reserved_slots`]).
    pub fn reserving(concurrency: u32, callback_concurrency: u32, background: u32) -> Self {
        let reserved = reserved_slots(concurrency, callback_concurrency, background);
        NetworkSlots {
            calls: Arc::new(Semaphore::new(reserved as usize)),
            callbacks: Arc::new(Semaphore::new(callback_concurrency as usize)),
            callback_limit: callback_concurrency,
            reserved,
        }
    }

    /// How many instance slots this network reserves.
    pub fn reserved(&self) -> u32 {
        self.reserved
    }

    /// Slots free right now (for tests and gauges).
    pub fn available(&self) -> usize {
        self.calls.available_permits()
    }

    /// A slot for one call, waiting for one of this network's own calls to end.
    pub(crate) async fn call(&self) -> OwnedSemaphorePermit {
        match self.calls.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("a network's slot semaphore is never closed"),
        }
    }

    /// A callback's turn now, or a refusal naming the network and the limit.
    pub fn try_callback(&self, network: &str) -> Result<OwnedSemaphorePermit, CallbacksBusy> {
        self.callbacks
            .clone()
            .try_acquire_owned()
            .map_err(|_: TryAcquireError| CallbacksBusy {
                network: network.to_string(),
                limit: self.callback_limit,
            })
    }
}

impl Default for NetworkSlots {
    /// The defaults of a network table: concurrency 8, callbacks 4, no polling.
    fn default() -> Self {
        NetworkSlots::new(8, DEFAULT_CALLBACK_CONCURRENCY, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_counts_deliveries_callbacks_background_tasks_and_headroom() {
        assert_eq!(reserved_slots(8, 4, 0), 13);
        assert_eq!(reserved_slots(8, 4, 1), 14);
        assert_eq!(reserved_slots(8, 4, 2), 15, "poller and follow-up");
        assert_eq!(NetworkSlots::reserving(2, 1, 2).reserved(), 6);
        assert_eq!(NetworkSlots::new(2, 1, true).reserved(), 5);
    }

    #[tokio::test]
    async fn callbacks_over_the_limit_are_refused_at_once_naming_the_network() {
        let slots = NetworkSlots::new(1, 2, false);
        let a = slots.try_callback("tax").expect("first");
        let _b = slots.try_callback("tax").expect("second");
        let busy = slots.try_callback("tax").expect_err("third is refused");
        assert_eq!(
            busy.to_string(),
            "network `tax` already has 2 callbacks in its adapter (callback-concurrency)"
        );
        drop(a);
        assert!(slots.try_callback("tax").is_ok(), "a slot came back");
    }

    #[tokio::test]
    async fn clones_share_the_slots() {
        let slots = NetworkSlots::new(1, 0, false);
        let other_version = slots.clone();
        let _p1 = slots.call().await;
        let _p2 = other_version.call().await;
        assert_eq!(slots.available(), 0, "both of the 2 slots are taken");
    }
}
