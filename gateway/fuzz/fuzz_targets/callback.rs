#![no_main]
//! `cargo fuzz run callback`: see `yiwang_gateway::fuzz::callback` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| yiwang_gateway::fuzz::callback(data));
