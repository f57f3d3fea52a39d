//! Write Yiwang ministry-network adapters in Rust.

// -- helper modules (owned by the protocol-helpers work) --
// -- end helper modules --
