#![no_main]
//! `cargo fuzz run case`: see `yiwang_gateway::fuzz::case` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| yiwang_gateway::fuzz::case(data));
