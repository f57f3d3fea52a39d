//! One adapter call, start to end: a fresh store under every limit, the
//! instance, the export, and the failure named for what stopped it.
//!
//! This runs on a guest thread (see `guest.rs`); the caller only waits for
//! its outcome. Limits: the network's memory and table caps (the store's
//! limiter), its CPU time (the call's own thread CPU time, checked at every
//! epoch tick), its wall time (a timeout around everything, ministry waits
//! included), and the bytes one value may carry from the guest to the host
//! (wasmtime's hostcall fuel: an oversized return, request body or kv value
//! is refused while it is being lifted, before the host holds a copy).

use super::bindings::{AdapterError, AdapterWorld, AdapterWorldPre};
use super::error::{CallError, ErrorClass};
use super::guest::CpuMeter;
use super::host::{self, CallTrace, HostState, NetworkSandbox, Services};
use super::kv::KV_MAX_VALUE;
use super::limits::{LimitHit, Limits};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Engine, Store, UpdateDeadline};

/// What wasmtime says when a value from the guest is over the hostcall fuel
/// (its error type is private; the wording is pinned by a test).
pub(super) const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// Room above the largest allowed value for the rest of the same call
/// (headers, a record's other fields).
const FUEL_MARGIN: usize = 1 << 20;

/// The outcome of one call and what it did on the way.
#[derive(Debug)]
pub struct CallReport<T> {
    pub result: Result<T, CallError>,
    pub trace: CallTrace,
    pub elapsed: Duration,
}

impl<T> CallReport<T> {
    /// The class of the failure, if it failed.
    pub fn error_class(&self) -> Option<ErrorClass> {
        self.result.as_ref().err().map(|e| e.class(self.trace.sent))
    }
}

/// An export of the adapter, called on an instance in its store.
pub(super) type Export<T> = Box<
    dyn for<'a> FnOnce(
            &'a AdapterWorld,
            &'a mut Store<HostState>,
        ) -> Pin<
            Box<dyn Future<Output = wasmtime::Result<Result<T, AdapterError>>> + Send + 'a>,
        > + Send,
>;

/// Everything one call needs, owned, so it can move to a guest thread.
pub(super) struct GuestCall {
    pub pre: AdapterWorldPre<HostState>,
    pub engine: Engine,
    pub sandbox: Arc<NetworkSandbox>,
    pub services: Services,
    pub meter: Arc<CpuMeter>,
}

/// The bytes one value may carry from the guest to the host.
pub(super) fn hostcall_fuel(limits: &Limits) -> usize {
    limits
        .max_output_bytes
        .max(limits.max_request_bytes)
        .max(KV_MAX_VALUE)
        .saturating_add(FUEL_MARGIN)
}

impl GuestCall {
    /// Run `export` in a fresh store under every limit.
    pub(super) async fn run<T>(
        self,
        case_number: Option<String>,
        export: Export<T>,
    ) -> (Result<T, CallError>, CallTrace) {
        let limits = &self.sandbox.limits;
        let cpu_limit = limits.cpu_time;
        let cpu_limit_ms = cpu_limit.as_millis() as u64;
        let fuel = hostcall_fuel(limits);
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.sandbox.clone(), self.services.clone(), case_number),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(fuel);
        store.set_epoch_deadline(1);
        let meter = self.meter.clone();
        store.epoch_deadline_callback(move |mut ctx| {
            if meter.used() > cpu_limit {
                ctx.data_mut().limiter.hit = Some(LimitHit::CpuTime {
                    limit_ms: cpu_limit_ms,
                });
                return Ok(UpdateDeadline::Interrupt);
            }
            // Give the run token back at every tick: the call queues again
            // behind the other networks' waiting calls.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        let wall = host::wall_limit(&self.sandbox);
        let work = async {
            let instance = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(Outcome::Instantiate)?;
            export(&instance, &mut store).await.map_err(Outcome::Trap)
        };
        let outcome = tokio::time::timeout(wall, work).await;
        let result = match outcome {
            Err(_) => Err(CallError::Limit(LimitHit::WallTime {
                limit_ms: wall.as_millis() as u64,
            })),
            Ok(Err(Outcome::Instantiate(e))) => Err(CallError::Instantiate(format!("{e:#}"))),
            Ok(Err(Outcome::Trap(e))) => {
                let state = store.data();
                Err(classify_trap(
                    &e,
                    state.limiter.hit.clone(),
                    cpu_limit_ms,
                    fuel,
                    state.trace.last_error.as_deref(),
                ))
            }
            Ok(Ok(Err(adapter_error))) => Err(CallError::Adapter(adapter_error)),
            Ok(Ok(Ok(value))) => Ok(value),
        };
        let mut state = store.into_data();
        let reported = std::mem::take(&mut state.trace.problems);
        let result = result
            .map_err(|e| super::error::settle(e, reported))
            .map_err(|e| self.sandbox.redact_error(e));
        let result = match (result, state.trace.violations.first()) {
            // A call that broke a sandbox rule fails with that violation,
            // whatever the adapter made of the refusal.
            (_, Some(v)) => Err(CallError::Violation(v.clone())),
            (r, None) => r,
        };
        (result, state.trace)
    }
}

enum Outcome {
    Instantiate(wasmtime::Error),
    Trap(wasmtime::Error),
}

/// Name the limit a trap came from, when it came from one; otherwise say
/// what trapped and the last error the adapter logged (a panic's message,
/// through the SDK's panic hook).
fn classify_trap(
    e: &wasmtime::Error,
    hit: Option<LimitHit>,
    cpu_limit_ms: u64,
    fuel: usize,
    last_error: Option<&str>,
) -> CallError {
    if let Some(hit) = hit {
        return CallError::Limit(hit);
    }
    if let Some(hit) = e.downcast_ref::<LimitHit>() {
        return CallError::Limit(hit.clone());
    }
    let text = format!("{e:#}");
    if text.contains(HOSTCALL_FUEL_EXHAUSTED) {
        return CallError::Limit(LimitHit::Transfer { budget: fuel });
    }
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => return CallError::Limit(LimitHit::StackOverflow),
        Some(wasmtime::Trap::Interrupt) => {
            return CallError::Limit(LimitHit::CpuTime {
                limit_ms: cpu_limit_ms,
            });
        }
        // The rest of the error is the Wasm backtrace's header and frames.
        Some(trap) => trap.to_string(),
        None => text,
    };
    CallError::Trap(match last_error {
        Some(logged) => format!("{message}; last error logged: {logged}"),
        None => message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_covers_the_largest_allowed_value() {
        let limits = Limits::default();
        let fuel = hostcall_fuel(&limits);
        assert!(fuel > limits.max_output_bytes);
        assert!(fuel > limits.max_request_bytes);
        assert!(fuel > KV_MAX_VALUE);
    }

    #[test]
    fn a_trap_carries_the_last_error_logged() {
        let e = wasmtime::Error::msg("wasm trap: unreachable");
        let err = classify_trap(&e, None, 1, 1, Some("panicked at src/lib.rs:1:1: boom"));
        assert_eq!(
            err.to_string(),
            "adapter trapped: wasm trap: unreachable; last error logged: panicked at src/lib.rs:1:1: boom"
        );
        let fuel = wasmtime::Error::msg(format!("too much data: {HOSTCALL_FUEL_EXHAUSTED}"));
        let err = classify_trap(&fuel, None, 1, 42, None);
        assert_eq!(err.kind(), "limit_output");
    }
}
