//! Per-network resource limits and the store's memory limiter.

use serde::Deserialize;
use std::time::Duration;

/// What one adapter call may use. Every field has a safe default; the TOML
/// form (`[networks.X.limits]`) uses the same names.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Limits {
    /// Linear memory an instance may grow to (`memory-bytes = 67108864`).
    pub memory_bytes: usize,
    /// The call's own CPU time (`cpu-time-ms = 2000`): its thread CPU time,
    /// host work done for it included, checked at every epoch tick; time
    /// spent waiting (on the ministry, for a guest thread) is not counted.
    #[serde(with = "millis", rename = "cpu-time-ms")]
    pub cpu_time: Duration,
    /// Wall-clock time per call including network waits (`wall-time-ms = 30000`).
    #[serde(with = "millis", rename = "wall-time-ms")]
    pub wall_time: Duration,
    /// Size of everything a call returns (`max-output-bytes = 1048576`).
    pub max_output_bytes: usize,
    /// Outgoing request body cap (`max-request-bytes`).
    pub max_request_bytes: usize,
    /// Reply body cap (`max-response-bytes`).
    pub max_response_bytes: usize,
    /// Time for one exchange with the ministry (`send-timeout-ms = 10000`).
    #[serde(with = "millis", rename = "send-timeout-ms")]
    pub send_timeout: Duration,
    /// Requests one call may send (`max-requests-per-call = 16`).
    pub max_requests_per_call: u32,
    /// Log lines one call may write before further ones are dropped.
    pub max_log_lines: u32,
    /// kv writes (sets and deletes) one call may make; one more stops the
    /// call (`max-kv-writes-per-call = 256`). Each write is a durable
    /// transaction: this bounds what one call can make the store do.
    pub max_kv_writes_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(2),
            wall_time: Duration::from_secs(30),
            max_output_bytes: 1 << 20,
            max_request_bytes: 8 << 20,
            max_response_bytes: 8 << 20,
            send_timeout: Duration::from_secs(10),
            max_requests_per_call: 16,
            max_log_lines: 200,
            max_kv_writes_per_call: 256,
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Which limit stopped a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("guest CPU time over {limit_ms} ms")]
    CpuTime { limit_ms: u64 },
    #[error("wall-clock time over {limit_ms} ms")]
    WallTime { limit_ms: u64 },
    #[error("memory growth to {desired} bytes over the limit of {limit} bytes")]
    Memory { desired: usize, limit: usize },
    #[error("table growth to {desired} elements over the limit of {limit}")]
    Table { desired: usize, limit: usize },
    #[error("wasm stack overflow")]
    StackOverflow,
    #[error("output of {size} bytes over the limit of {limit} bytes")]
    Output { size: usize, limit: usize },
    /// A value passed from the guest to the host (a return, a request body,
    /// a kv value) over what any limit allows, refused while it was being
    /// copied out of the guest (wasmtime's hostcall fuel).
    #[error(
        "a value of more than {budget} bytes from the adapter, refused before it was copied \
         (max-output-bytes, max-request-bytes or the kv value cap)"
    )]
    Transfer { budget: usize },
    #[error("more than {limit} kv writes in one call (max-kv-writes-per-call)")]
    KvWrites { limit: u32 },
}

/// Denies growth past the network's limit and remembers that it did, so the
/// call's error names the limit rather than a bare trap.
pub(crate) struct MemoryLimiter {
    pub memory_bytes: usize,
    pub table_elements: usize,
    pub hit: Option<LimitHit>,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let hit = LimitHit::Memory {
                desired,
                limit: self.memory_bytes,
            };
            self.hit = Some(hit.clone());
            return Err(hit.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            let hit = LimitHit::Table {
                desired,
                limit: self.table_elements,
            };
            self.hit = Some(hit.clone());
            return Err(hit.into());
        }
        Ok(true)
    }
}
