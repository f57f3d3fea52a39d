//! End-to-end tests in one binary (each test binary links wasmtime, so one link instead of
//! seven): adapters against live simulated ministry networks, and the whole gateway — in
//! process or, for kill -9 and the CLI, as `yiwang-under-test` processes.
//!
//! Nothing here is process-wide: every test builds its own runtime, store, PKI and
//! simulators in temporary directories and binds `127.0.0.1:0`, so the modules run side by
//! side in one process as they did in seven.

mod adapter_record;
mod adapters_live;
mod api_description;
mod browser;
mod console;
mod crash;
mod delivery;
mod fairness;
mod follow_up;
mod forms;
mod hostile;
mod lease_renewal;
mod neighbours;
mod public_security_live;
mod replicas;
mod security;
mod shutdown;
mod startup;
mod tax_live;
