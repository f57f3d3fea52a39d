//! Host-side bindings generated from `adapters-sdk/wit`, the contract's one home.

wasmtime::component::bindgen!({
    path: "../adapters-sdk/wit",
    world: "yiwang:adapter/adapter-world",
    imports: {
        "yiwang:adapter/http": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    additional_derives: [serde::Serialize],
});

pub use exports::yiwang::adapter::adapter::{
    CallbackOutcome, CaseChange, Descriptor, FieldMapping, ItemRef, PollResult, Receipt, Submission,
};
pub use yiwang::adapter::types::{
    AdapterError, Decision, Event, Header, HttpRequest, HttpResponse, Rejection, RetryableError,
    Stage,
};
