//! The gateway's integration tests, one binary (each test binary links
//! wasmtime, so one link instead of three).

mod closed_pipe;
mod config;
mod config_snapshots;
mod delivery;
mod fixtures;
mod publish;
mod sandbox;
mod scaffold;
mod startup;
mod store_cli;
