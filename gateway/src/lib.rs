//! The Yiwang gateway: runs each ministry network's Wasm adapter in a sandbox,
//! delivers unified cases through it, and brings results back.
//!
//! Read top-down: [`runtime`] runs adapters under limits and gives them only
//! the host interface; [`transport`] carries their requests to their own
//! network; [`fixture`] replays recorded exchanges to test an adapter offline;
//! [`publisher`] checks the signatures that make a component runnable.

pub mod cli;
pub mod config;
pub mod delivery;
pub mod fixture;
pub mod forms;
/// Only the cargo-fuzz crate (`gateway/fuzz/`, feature `fuzz`) and this crate's own unit
/// tests (which run the targets over their corpus) need the fuzz targets.
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod http;
pub mod memory;
pub mod policy;
pub mod publisher;
pub mod report;
pub mod runtime;
pub mod serve;
pub mod store;
pub mod tls;
pub mod transport;
pub mod wire;
