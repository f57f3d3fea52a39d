//! The adapter runtime: each network's Wasm component runs in a sandbox with
//! a fresh store per call, pooled instances, CPU/wall/memory/output limits,
//! and no capabilities beyond the host interface in `adapters-sdk/wit`.
//!
//! Rooms: `call` (one call in its store, and what stopped it), `guest` (the
//! guest threads, the round-robin gate between networks, the CPU meter),
//! `slots` (each network's reserved share of the instance pool), `host` (the
//! imports), `crypto` (secrets used unseen, randomness), `problems` (every
//! problem behind a rejection), `redact` (sensitive config kept out of sight), `limits`, `normalize` (the contract's checks on outputs),
//! `error` (failure kinds and classes), `cache` (compiled components).

mod bindings;
mod cache;
mod call;
mod crypto;
mod error;
mod guest;
mod host;
mod kv;
mod limits;
mod normalize;
mod problems;
mod random;
mod redact;
mod slots;

pub use bindings::{
    AdapterError, CallbackOutcome, CaseChange, Decision, Descriptor, Event, FieldMapping, Header,
    HttpRequest, HttpResponse, ItemRef, PollResult, Receipt, Rejection, RetryableError, Stage,
    Submission,
};
pub use cache::ComponentCache;
pub use call::CallReport;
pub use crypto::{CryptoError, MAX_CRYPTO_INPUT};
pub use error::{
    CallError, ErrorClass, EventError, OutputError, TextError, TextProblem, Violation,
};
pub use host::{
    CallTrace, Clock, Exchange, FixedClock, NetworkSandbox, SecretError, Services, SystemClock,
};
pub use kv::{
    KV_MAX_KEY, KV_MAX_TOTAL, KV_MAX_VALUE, KvError, KvStore, KvUsage, MemoryKv, check_kv_sizes,
};
pub use limits::{LimitHit, Limits};
pub use normalize::{NormalizedCallback, NormalizedPoll, NormalizedReceipt};
pub use problems::{MAX_PROBLEMS, Problem, Rejected, Reported};
pub use random::{MAX_RANDOM_BYTES, RandomSource, SeededRandom, SystemRandom};
pub use redact::MIN_REDACTED_LEN;
pub use slots::{
    CallbacksBusy, DEFAULT_CALLBACK_CONCURRENCY, HEADROOM_SLOTS, NetworkSlots, reserved_slots,
};

/// The gateway's check and normalization of what an adapter made of a
/// ministry push (exposed for the fuzz targets).
#[cfg(any(test, feature = "fuzz"))]
pub fn normalize_callback(
    network: &str,
    outcome: CallbackOutcome,
) -> Result<NormalizedCallback, OutputError> {
    normalize::callback(network, outcome)
}

use bindings::{AdapterWorld, AdapterWorldPre};
use call::{Export, GuestCall};
use guest::{CpuMeter, GuestExecutor};
use host::HostState;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Engine-wide settings (`[runtime]` in the gateway config).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RuntimeConfig {
    /// Instances the engine's pool holds (`max-instances = 128`). Unset, the
    /// pool is sized from the networks' reservations (see
    /// [`Runtime::pool_size`]); set below their sum, `config check` refuses it.
    pub max_instances: Option<u32>,
    /// The largest memory any network's limit may allow.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; none disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Epoch tick: how often a running guest gives its thread back to the
    /// round-robin, and the granularity of the CPU-time limit (a call is
    /// stopped within one tick of CPU time after passing it).
    pub epoch_tick_ms: u64,
    /// Wasm stack per call; deeper recursion traps as a stack overflow.
    pub max_wasm_stack: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: None,
            max_memory_bytes: 256 << 20,
            cache_dir: None,
            epoch_tick_ms: 1,
            max_wasm_stack: 1 << 20,
        }
    }
}

/// Pool slots on top of the networks' reservations, for calls outside any
/// network's share (`yiwang adapter` commands, fixture runs).
pub const POOL_HEADROOM: u32 = 4;

/// Address space reserved per linear memory: all of a 32-bit memory's
/// index space, which lets Cranelift drop bounds checks (see `Runtime::new`).
const MEMORY_RESERVATION: u64 = 4 << 30;

/// Bytes of a linear memory (and of a table) that the pool resets in place
/// and keeps mapped between calls, when the kernel can say which pages the
/// guest wrote. The adapters in `plugins/` dirty well under 128 KiB a call;
/// a call that writes more has the rest reset by `madvise`.
const KEEP_RESIDENT: usize = 1 << 20;

/// Failures loading an adapter.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("adapter for network `{network}` does not compile: {message}")]
    Compile { network: String, message: String },
    #[error(
        "adapter for network `{network}` does not fit the contract yiwang:adapter@1: {message}"
    )]
    Contract { network: String, message: String },
    #[error("adapter for network `{network}` failed `describe`: {error}")]
    Describe { network: String, error: CallError },
    #[error(
        "network `{network}` asks for {asked} bytes of memory; the runtime allows at most {max}"
    )]
    MemoryLimit {
        network: String,
        asked: usize,
        max: usize,
    },
    #[error("the wasmtime engine could not be built: {0}")]
    Engine(String),
    #[error("the guest threads could not be started: {0}")]
    Guests(#[source] std::io::Error),
}

/// The Wasm engine, the linker with the host interface, and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    config: RuntimeConfig,
    compiled: Mutex<HashMap<String, Component>>,
    ticker: Arc<EpochTicker>,
    guests: Arc<GuestExecutor>,
}

/// Stops the epoch thread when the runtime and every adapter loaded from it
/// are gone: an adapter outliving its runtime keeps its CPU limit.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// The pool a configuration gets: `max-instances` if set, else the sum
    /// of the networks' reservations plus [`POOL_HEADROOM`].
    pub fn pool_size(max_instances: Option<u32>, reserved: impl IntoIterator<Item = u32>) -> u32 {
        max_instances.unwrap_or_else(|| {
            reserved
                .into_iter()
                .fold(POOL_HEADROOM, |sum, r| sum.saturating_add(r))
        })
    }

    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let instances =
            Runtime::pool_size(config.max_instances, [NetworkSlots::default().reserved()]);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memories_per_component(4)
            .max_memory_size(config.max_memory_bytes);
        // Every slot is reset to its pristine image after each call (dirty
        // pages copied back from the module's image or zeroed; anything past
        // KEEP_RESIDENT given back with madvise), so no state survives a
        // call either way. With the PAGEMAP_SCAN ioctl (Linux 6.7+) the
        // reset finds just the pages the guest wrote and keeps them mapped,
        // instead of dropping them all and page-faulting them in again on
        // the next call. Without the ioctl, keeping memory resident would
        // memset the low addresses whether written or not, which costs more
        // than it saves: keep the default there.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT);
        }
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            .async_stack_size(config.max_wasm_stack + (1 << 20))
            // Reserve the whole 32-bit index space (plus the guard) so the
            // compiled code needs no bounds check on loads and stores: an
            // access past the memory's size lands in PROT_NONE pages and
            // traps. This is address space only; how far a memory may grow
            // is still capped by `max_memory_size` and each network's limit.
            .memory_reservation(MEMORY_RESERVATION.max(config.max_memory_bytes as u64))
            .memory_guard_size(64 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        AdapterWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => match ComponentCache::open(dir) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "component cache disabled");
                    None
                }
            },
            None => None,
        };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            let tick = Duration::from_millis(config.epoch_tick_ms.max(1));
            std::thread::Builder::new()
                .name("yiwang-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Engine(format!("epoch thread: {e}")))?;
        }
        let guests = GuestExecutor::new().map_err(LoadError::Guests)?;
        Ok(Runtime {
            engine,
            linker,
            cache,
            config,
            compiled: Mutex::new(HashMap::new()),
            ticker: Arc::new(EpochTicker { stop: ticker_stop }),
            guests: Arc::new(guests),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or fetch from cache) a component, keyed by content hash so
    /// many networks running the same adapter share one compiled copy.
    fn component(&self, network: &str, digest: &str, wasm: &[u8]) -> Result<Component, LoadError> {
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(c.clone());
        }
        let started = Instant::now();
        let (component, cached) = match &self.cache {
            Some(cache) => cache.load(&self.engine, digest, wasm),
            None => Component::new(&self.engine, wasm).map(|c| (c, false)),
        }
        .map_err(|e| LoadError::Compile {
            network: network.to_string(),
            message: format!("{e:#}"),
        })?;
        tracing::info!(
            network,
            digest = &digest[..12],
            cached,
            ms = started.elapsed().as_millis() as u64,
            "adapter compiled"
        );
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), component.clone());
        Ok(component)
    }

    /// Load an adapter for a network: compile, link against the host
    /// interface only, and ask it to describe itself.
    pub async fn load(
        &self,
        wasm: &[u8],
        sandbox: NetworkSandbox,
        services: Services,
    ) -> Result<LoadedAdapter, LoadError> {
        let network = sandbox.network.clone();
        if sandbox.limits.memory_bytes > self.config.max_memory_bytes {
            return Err(LoadError::MemoryLimit {
                network,
                asked: sandbox.limits.memory_bytes,
                max: self.config.max_memory_bytes,
            });
        }
        // The content hash adapters are identified by (`sha256:<hex>` elsewhere).
        let digest = yiwang_schema::Sha256Digest::of(wasm).to_string();
        let component = self.component(&network, &digest, wasm)?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Contract {
                    network: network.clone(),
                    message: format!("{e:#}"),
                })?;
        let pre = AdapterWorldPre::new(instance_pre).map_err(|e| LoadError::Contract {
            network: network.clone(),
            message: format!("{e:#}"),
        })?;
        let mut adapter = LoadedAdapter {
            pre,
            digest,
            descriptor: None,
            sandbox: Arc::new(sandbox),
            services,
            engine: self.engine.clone(),
            guests: self.guests.clone(),
            _ticker: self.ticker.clone(),
        };
        let described = adapter.describe().await;
        match described.result {
            Ok(d) => {
                adapter.descriptor = Some(d);
                Ok(adapter)
            }
            Err(error) => Err(LoadError::Describe { network, error }),
        }
    }
}

/// A network's adapter, ready to be called. Cheap to share; each call gets
/// its own store and instance.
pub struct LoadedAdapter {
    pre: AdapterWorldPre<HostState>,
    digest: String,
    descriptor: Option<Descriptor>,
    sandbox: Arc<NetworkSandbox>,
    services: Services,
    engine: wasmtime::Engine,
    guests: Arc<GuestExecutor>,
    _ticker: Arc<EpochTicker>,
}

impl LoadedAdapter {
    /// `sha256` of the component bytes: the adapter's identity.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// What the adapter said about itself when loaded.
    pub fn descriptor(&self) -> &Descriptor {
        // Set by `Runtime::load` before the adapter is handed out.
        self.descriptor
            .as_ref()
            .unwrap_or_else(|| unreachable!("descriptor is set at load"))
    }

    pub fn network(&self) -> &str {
        &self.sandbox.network
    }

    /// This network's instance slots (shared by every version of its adapter).
    pub fn slots(&self) -> &NetworkSlots {
        &self.sandbox.slots
    }

    /// Run one export on a guest thread, in a fresh store under every
    /// limit, holding one of the network's slots until the store is gone.
    async fn call<T, F>(&self, case_number: Option<String>, f: F) -> CallReport<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                &'a AdapterWorld,
                &'a mut wasmtime::Store<HostState>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = wasmtime::Result<Result<T, AdapterError>>>
                        + Send
                        + 'a,
                >,
            > + Send
            + 'static,
    {
        let started = Instant::now();
        let slot = self.sandbox.slots.call().await;
        let meter = Arc::new(CpuMeter::default());
        let call = GuestCall {
            pre: self.pre.clone(),
            engine: self.engine.clone(),
            sandbox: self.sandbox.clone(),
            services: self.services.clone(),
            meter: meter.clone(),
        };
        let export: Export<T> = Box::new(f);
        let network: Arc<str> = Arc::from(self.sandbox.network.as_str());
        let work = async move {
            let outcome = call.run(case_number, export).await;
            drop(slot);
            outcome
        };
        let (result, trace) = match self.guests.run(network, meter.clone(), work).await {
            Ok(outcome) => outcome,
            Err(e) => (Err(task_failed(&e)), unknown_trace()),
        };
        let cpu = meter.total();
        metrics::counter!("yiwang_adapter_cpu_microseconds_total", "network" => self.sandbox.network.clone())
            .increment(cpu.as_micros() as u64);
        CallReport {
            result,
            trace,
            elapsed: started.elapsed(),
        }
    }

    pub async fn describe(&self) -> CallReport<Descriptor> {
        let report = self
            .call(None, |w, s| {
                Box::pin(async move { w.yiwang_adapter_adapter().call_describe(s).await.map(Ok) })
            })
            .await;
        normalize::check(
            report,
            self.sandbox.limits.max_output_bytes,
            normalize::descriptor,
        )
    }

    /// Deliver a new case. The receipt's events are normalized into the
    /// unified schema for the network.
    pub async fn submit(
        &self,
        case_number: &str,
        submission: Submission,
    ) -> CallReport<NormalizedReceipt> {
        let report = self
            .call(Some(case_number.to_string()), move |w, s| {
                Box::pin(
                    async move { w.yiwang_adapter_adapter().call_submit(s, &submission).await },
                )
            })
            .await;
        let network = self.sandbox.network.clone();
        let case = case_number.to_string();
        normalize::check(report, self.sandbox.limits.max_output_bytes, move |r| {
            normalize::receipt(&network, &case, r)
        })
    }

    /// Deliver a bureau-side change.
    pub async fn update(
        &self,
        case_number: &str,
        change: CaseChange,
    ) -> CallReport<Vec<yiwang_schema::Event>> {
        let report = self
            .call(Some(case_number.to_string()), move |w, s| {
                Box::pin(async move { w.yiwang_adapter_adapter().call_update(s, &change).await })
            })
            .await;
        let network = self.sandbox.network.clone();
        let case = Some(case_number.to_string());
        normalize::check(report, self.sandbox.limits.max_output_bytes, move |e| {
            normalize::events(&network, case.as_deref(), e)
        })
    }

    /// Ask the ministry about one of its cases.
    pub async fn query_status(
        &self,
        case_number: Option<&str>,
        network_case_number: &str,
    ) -> CallReport<Vec<yiwang_schema::Event>> {
        let n = network_case_number.to_string();
        let report = self
            .call(case_number.map(str::to_string), move |w, s| {
                Box::pin(async move { w.yiwang_adapter_adapter().call_query_status(s, &n).await })
            })
            .await;
        let network = self.sandbox.network.clone();
        let case = case_number.map(str::to_string);
        normalize::check(report, self.sandbox.limits.max_output_bytes, move |e| {
            normalize::events(&network, case.as_deref(), e)
        })
    }

    /// Fetch changes since `cursor`.
    pub async fn poll(&self, cursor: Option<String>) -> CallReport<NormalizedPoll> {
        let report = self
            .call(None, move |w, s| {
                Box::pin(async move {
                    w.yiwang_adapter_adapter()
                        .call_poll(s, cursor.as_deref())
                        .await
                })
            })
            .await;
        let network = self.sandbox.network.clone();
        normalize::check(report, self.sandbox.limits.max_output_bytes, move |p| {
            normalize::poll(&network, p)
        })
    }

    /// Turn a ministry's push into events.
    pub async fn handle_callback(&self, request: HttpRequest) -> CallReport<NormalizedCallback> {
        let report = self
            .call(None, move |w, s| {
                Box::pin(async move {
                    w.yiwang_adapter_adapter()
                        .call_handle_callback(s, &request)
                        .await
                })
            })
            .await;
        let network = self.sandbox.network.clone();
        normalize::check(report, self.sandbox.limits.max_output_bytes, move |c| {
            normalize::callback(&network, c)
        })
    }
}

/// A call whose guest task panicked or was cancelled (shutdown): a local
/// failure, never the gateway's crash.
fn task_failed(e: &tokio::task::JoinError) -> CallError {
    if e.is_cancelled() {
        CallError::Instantiate("the guest executor stopped before the call ended".into())
    } else {
        tracing::error!(error = %e, "an adapter call's host task panicked");
        CallError::Trap(format!("the host failed while running the adapter: {e}"))
    }
}

/// The trace of a call that ended abnormally: whether it sent is unknown,
/// so it may have.
fn unknown_trace() -> CallTrace {
    CallTrace {
        sent: true,
        ..CallTrace::default()
    }
}
