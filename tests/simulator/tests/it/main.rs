//! Integration tests: simulated networks on 127.0.0.1:0 driven over real sockets.

mod client;
mod contract;
mod control;
mod faults;
mod json_rest;
mod soap;
