//! Integration tests: simulated networks on 127.0.0.1:0 driven over real sockets.

mod callback;
mod client;
mod contract;
mod control;
mod faults;
mod json_rest;
mod lookup;
mod signed_api;
mod soap;
mod tls;
