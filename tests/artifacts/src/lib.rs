//! Paths of freshly built adapter components (see build.rs).
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Read a component's bytes.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read adapter component {path}: {e}"))
}
