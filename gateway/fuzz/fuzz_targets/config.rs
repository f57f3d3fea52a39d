#![no_main]
//! `cargo fuzz run config`: see `yiwang_gateway::fuzz::config` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| yiwang_gateway::fuzz::config(data));
