//! Paths of freshly built adapter components (see build.rs).
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Read a component's bytes.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read adapter component {path}: {e}"))
}

/// A component built once against contract 1.0.0 (the provincial-filing
/// adapter as it was then) and its fixtures, committed so every later host
/// proves it still loads and passes them (docs/adapter-contract.md,
/// "Compatibility"). Never rebuilt: see contract-1.0.0/README.md.
pub const CONTRACT_1_0_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contract-1.0.0");
