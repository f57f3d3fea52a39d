//! The adapter runtime: each network's Wasm component runs in a sandbox with
//! a fresh store per call, pooled instances, CPU/wall/memory/output limits,
//! and no capabilities beyond the host interface in `adapters-sdk/wit`.

mod bindings;
mod cache;
mod error;
mod host;
mod kv;
mod limits;
mod normalize;

pub use bindings::{
    AdapterError, CallbackOutcome, CaseChange, Decision, Descriptor, Event, FieldMapping, Header,
    HttpRequest, HttpResponse, ItemRef, PollResult, Receipt, Rejection, RetryableError, Stage,
    Submission,
};
pub use cache::ComponentCache;
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
use host::HostState;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    UpdateDeadline,
};

/// Engine-wide settings (`[runtime]` in the gateway config).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RuntimeConfig {
    /// Adapter calls that may run at once across all networks (pool slots).
    pub max_instances: u32,
    /// The largest memory any network's limit may allow.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; none disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Epoch tick: the granularity of CPU-time limits and of yielding.
    pub epoch_tick_ms: u64,
    /// Wasm stack per call; deeper recursion traps as a stack overflow.
    pub max_wasm_stack: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 128,
            max_memory_bytes: 256 << 20,
            cache_dir: None,
            epoch_tick_ms: 5,
            max_wasm_stack: 1 << 20,
        }
    }
}

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
}

/// The Wasm engine, the linker with the host interface, and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    config: RuntimeConfig,
    compiled: Mutex<HashMap<String, Component>>,
    ticker: Arc<EpochTicker>,
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
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * 4)
            .total_memories(config.max_instances * 2)
            .total_tables(config.max_instances * 4)
            .total_stacks(config.max_instances)
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
        Ok(Runtime {
            engine,
            linker,
            cache,
            config,
            compiled: Mutex::new(HashMap::new()),
            ticker: Arc::new(EpochTicker { stop: ticker_stop }),
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
            tick: Duration::from_millis(self.config.epoch_tick_ms.max(1)),
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

/// A network's adapter, ready to be called. Cheap to share; each call gets
/// its own store and instance.
pub struct LoadedAdapter {
    pre: AdapterWorldPre<HostState>,
    digest: String,
    descriptor: Option<Descriptor>,
    sandbox: Arc<NetworkSandbox>,
    services: Services,
    engine: wasmtime::Engine,
    tick: Duration,
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

    /// Run one export in a fresh store under every limit.
    async fn call<T, F>(&self, case_number: Option<String>, f: F) -> CallReport<T>
    where
        T: Send,
        F: for<'a> FnOnce(
                &'a AdapterWorld,
                &'a mut Store<HostState>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = wasmtime::Result<Result<T, AdapterError>>>
                        + Send
                        + 'a,
                >,
            > + Send,
    {
        let started = Instant::now();
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.sandbox.clone(), self.services.clone(), case_number),
        );
        store.limiter(|s| &mut s.limiter);
        let max_ticks =
            (self.sandbox.limits.cpu_time.as_millis() / self.tick.as_millis().max(1)).max(1) as u64;
        store.set_epoch_deadline(1);
        let cpu_limit_ms = self.sandbox.limits.cpu_time.as_millis() as u64;
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.ticks += 1;
            if state.ticks > max_ticks {
                state.limiter.hit = Some(LimitHit::CpuTime {
                    limit_ms: cpu_limit_ms,
                });
                return Ok(UpdateDeadline::Interrupt);
            }
            // Yield at every tick so a busy guest never holds a tokio worker.
            Ok(UpdateDeadline::Yield(1))
        });
        let wall = host::wall_limit(&self.sandbox);
        let work = async {
            let instance = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(Outcome::Instantiate)?;
            f(&instance, &mut store).await.map_err(Outcome::Trap)
        };
        let outcome = tokio::time::timeout(wall, work).await;
        let result = match outcome {
            Err(_) => Err(CallError::Limit(LimitHit::WallTime {
                limit_ms: wall.as_millis() as u64,
            })),
            Ok(Err(Outcome::Instantiate(e))) => Err(CallError::Instantiate(format!("{e:#}"))),
            Ok(Err(Outcome::Trap(e))) => Err(classify_trap(
                &e,
                store.data().limiter.hit.clone(),
                cpu_limit_ms,
            )),
            Ok(Ok(Err(adapter_error))) => Err(CallError::Adapter(adapter_error)),
            Ok(Ok(Ok(value))) => Ok(value),
        };
        let state = store.into_data();
        let result = match (result, state.trace.violations.first()) {
            // A call that broke a sandbox rule fails with that violation,
            // whatever the adapter made of the refusal.
            (_, Some(v)) => Err(CallError::Violation(v.clone())),
            (r, None) => r,
        };
        CallReport {
            result,
            trace: state.trace,
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

enum Outcome {
    Instantiate(wasmtime::Error),
    Trap(wasmtime::Error),
}

/// Name the limit a trap came from, when it came from one.
fn classify_trap(e: &wasmtime::Error, hit: Option<LimitHit>, cpu_limit_ms: u64) -> CallError {
    if let Some(hit) = hit {
        return CallError::Limit(match hit {
            LimitHit::CpuTime { .. } => LimitHit::CpuTime {
                limit_ms: cpu_limit_ms,
            },
            other => other,
        });
    }
    if let Some(hit) = e.downcast_ref::<LimitHit>() {
        return CallError::Limit(hit.clone());
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => CallError::Limit(LimitHit::StackOverflow),
        Some(wasmtime::Trap::Interrupt) => CallError::Limit(LimitHit::CpuTime {
            limit_ms: cpu_limit_ms,
        }),
        Some(trap) => CallError::Trap(format!("{trap}: {}", first_line(e))),
        None => CallError::Trap(format!("{e:#}")),
    }
}

fn first_line(e: &wasmtime::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A network's current adapter. Swapping installs a new version for new
/// calls at once; calls already running keep the version they started with.
pub struct AdapterSlot {
    current: RwLock<Arc<LoadedAdapter>>,
}

impl AdapterSlot {
    pub fn new(adapter: LoadedAdapter) -> Self {
        AdapterSlot {
            current: RwLock::new(Arc::new(adapter)),
        }
    }

    /// The adapter new calls should use.
    pub fn current(&self) -> Arc<LoadedAdapter> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Install a new version; returns the one it replaced.
    pub fn swap(&self, adapter: LoadedAdapter) -> Arc<LoadedAdapter> {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, Arc::new(adapter))
    }
}
