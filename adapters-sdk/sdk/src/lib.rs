//! Write Yiwang ministry-network adapters in Rust: WIT bindings, the typed
//! unified case schema, host access, and protocol helpers.
//!
//! An adapter is a type implementing [`Adapter`], exported with
//! [`export_adapter!`]; see docs/adapter-guide.md for the walk-through.
#![deny(unsafe_code)]

pub use yiwang_schema as schema;

/// Bindings generated from `adapters-sdk/wit` (the one home of the contract).
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "yiwang:adapter/adapter-world",
        pub_export_macro: true,
        export_macro_name: "export_adapter_bindings",
        default_bindings_module: "yiwang_adapter_sdk::bindings",
        generate_all,
    });
}

pub mod error;
pub mod host;
pub mod http;

pub use bindings::exports::yiwang::adapter::adapter::{
    CallbackOutcome, CaseChange, Descriptor, FieldMapping, ItemRef, PollResult, Receipt, Submission,
};
pub use bindings::yiwang::adapter::types::{
    AdapterError, Decision, Event, Header, HttpRequest, HttpResponse, Rejection, RetryableError,
    Stage,
};
pub use error::{Effect, ambiguous, permanent, permanent_field, retryable, send_error};

/// The version of the WIT contract this SDK builds adapters against.
pub const CONTRACT_VERSION: &str = "1.0.0";

/// What an adapter does. Methods with a default are optional for networks
/// that lack the capability (a network without a change feed need not poll).
pub trait Adapter {
    /// Name, version, items and the field mapping this adapter implements.
    fn describe() -> Descriptor;
    /// Send a new case to the ministry; returns its own case number.
    fn submit(submission: Submission) -> Result<Receipt, AdapterError>;
    /// Ask the ministry what happened to one of its cases.
    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError>;
    /// Send a bureau-side change (supplement, withdraw) for a delivered case.
    fn update(change: CaseChange) -> Result<Vec<Event>, AdapterError> {
        let _ = change;
        Err(permanent(
            "this adapter does not deliver bureau-side changes",
        ))
    }
    /// Fetch status changes since `cursor` (networks with a change feed).
    fn poll(cursor: Option<String>) -> Result<PollResult, AdapterError> {
        Ok(PollResult {
            events: Vec::new(),
            next_cursor: cursor,
        })
    }
    /// Turn a ministry's push into events (callback networks).
    fn handle_callback(request: HttpRequest) -> Result<CallbackOutcome, AdapterError> {
        let _ = request;
        Err(permanent("this adapter does not accept callbacks"))
    }
}

impl<T: Adapter> bindings::exports::yiwang::adapter::adapter::Guest for T {
    fn describe() -> Descriptor {
        T::describe()
    }
    fn submit(submission: Submission) -> Result<Receipt, AdapterError> {
        T::submit(submission)
    }
    fn update(change: CaseChange) -> Result<Vec<Event>, AdapterError> {
        T::update(change)
    }
    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError> {
        T::query_status(network_case_number)
    }
    fn poll(cursor: Option<String>) -> Result<PollResult, AdapterError> {
        T::poll(cursor)
    }
    fn handle_callback(request: HttpRequest) -> Result<CallbackOutcome, AdapterError> {
        T::handle_callback(request)
    }
}

/// Export a type implementing [`Adapter`] as the component's adapter.
#[macro_export]
macro_rules! export_adapter {
    ($ty:ident) => {
        $crate::bindings::export_adapter_bindings!($ty);
    };
}

/// One row of a field mapping: unified JSON pointer, ministry field, code
/// table, note. Keep the rows in one `const` that `describe` and the
/// adapter's README both show.
pub type MappingRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The field mapping as the contract carries it.
pub fn field_mappings(rows: &[MappingRow]) -> Vec<FieldMapping> {
    rows.iter()
        .map(|(unified, ministry, table, note)| FieldMapping {
            unified: (*unified).to_owned(),
            ministry: (*ministry).to_owned(),
            code_table: table.map(str::to_owned),
            note: note.map(str::to_owned),
        })
        .collect()
}

/// The unified field a ministry field name came from, for rejections that
/// name the ministry's field: an exact ministry name gives its row's pointer;
/// an element of a repeated field (`clxx[1].clmc`) gives the row written with
/// `[*]` (`clxx[*].clmc` ↔ `/materials/*/name`) at that index; an element or
/// member no row names falls back to the element (`/materials/1`), the bare
/// list name (`clxx`) to the list (`/materials`). `None` for fields the case
/// does not feed.
pub fn unified_pointer(rows: &[MappingRow], ministry_field: &str) -> Option<String> {
    let field = ministry_field.trim();
    if let Some((unified, _, _, _)) = rows.iter().find(|(_, ministry, _, _)| *ministry == field) {
        return Some((*unified).to_owned());
    }
    let mut fallback = None;
    for (unified, ministry, _, _) in rows {
        let Some((list, member)) = ministry.split_once("[*]") else {
            continue;
        };
        // `/materials/*/name` → `/materials`; a row without `*` names one field.
        let unified_list = unified.split_once("/*").map_or(*unified, |(l, _)| l);
        if field == list {
            return Some(unified_list.to_owned());
        }
        let Some(rest) = field.strip_prefix(list).and_then(|r| r.strip_prefix('[')) else {
            continue;
        };
        let (index, after) = rest.split_once(']')?;
        let index: usize = index.parse().ok()?;
        if after == member {
            return Some(unified.replacen('*', &index.to_string(), 1));
        }
        fallback.get_or_insert_with(|| {
            if unified.contains('*') {
                format!("{unified_list}/{index}")
            } else {
                (*unified).to_owned()
            }
        });
    }
    fallback
}

/// A [`Descriptor`] from static tables: the usual body of `describe`, e.g.
/// `descriptor(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), KIND, ITEMS, FIELD_MAPPINGS)`.
pub fn descriptor(
    name: &str,
    version: &str,
    network_kind: &str,
    items: &[(&str, &str)],
    mappings: &[MappingRow],
) -> Descriptor {
    Descriptor {
        name: name.to_owned(),
        version: version.to_owned(),
        network_kind: network_kind.to_owned(),
        items: items
            .iter()
            .map(|(code, version)| ItemRef {
                code: (*code).to_owned(),
                version: (*version).to_owned(),
            })
            .collect(),
        contract_version: CONTRACT_VERSION.to_owned(),
        field_mappings: field_mappings(mappings),
    }
}

/// Parse the case carried by a [`Submission`] into the typed unified schema.
/// The gateway validated it before queueing; a failure here means the
/// adapter was built against an incompatible schema.
pub fn parse_case(submission: &Submission) -> Result<schema::Case, AdapterError> {
    serde_json::from_str(&submission.case_json).map_err(|e| {
        permanent(format!(
            "case does not match the unified schema this adapter was built for: {e}"
        ))
    })
}

/// How `query-status` and `update` may name a case by the idempotency key of
/// its submit instead of the ministry's number: `idem:<key>`. The gateway
/// uses it to settle an ambiguous submit (did the ministry record it?)
/// before it ever resends.
pub const IDEM_PREFIX: &str = "idem:";

/// A case as `query-status` or `update` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseRef<'a> {
    /// The ministry's own case number.
    Number(&'a str),
    /// The idempotency key of the submit (`idem:<key>`).
    IdempotencyKey(&'a str),
}

impl<'a> CaseRef<'a> {
    /// Read the contract's `network-case-number` argument.
    pub fn parse(s: &'a str) -> Result<CaseRef<'a>, AdapterError> {
        let (r, value) = match s.strip_prefix(IDEM_PREFIX) {
            Some(key) => (CaseRef::IdempotencyKey(key.trim()), key.trim()),
            None => (CaseRef::Number(s.trim()), s.trim()),
        };
        if value.is_empty() {
            return Err(permanent(format!("no case named by {s:?}")));
        }
        Ok(r)
    }
}

/// The value of an upstream result passed along a chained route.
pub fn input<'a>(submission: &'a Submission, key: &str) -> Option<&'a str> {
    submission
        .inputs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Build an [`Event`] with the required parts; fill the optional ones after.
pub fn event(network_case_number: impl Into<String>, stage: Stage, at: impl Into<String>) -> Event {
    Event {
        network_case_number: network_case_number.into(),
        case_number: None,
        stage,
        at: at.into(),
        reason: None,
        supplement: Vec::new(),
        decision: None,
        certificate_number: None,
        raw_status: None,
    }
}

// -- helper modules (owned by the protocol-helpers work) --
pub mod codes;
pub mod dates;
pub mod sign;
pub mod soap;
pub mod text;
pub mod xml;
// -- end helper modules --

#[cfg(test)]
mod pointer_tests {
    use super::{MappingRow, unified_pointer};

    const ROWS: &[MappingRow] = &[
        ("/applicant/name", "sqrmc", None, None),
        ("/materials/*/name", "clxx[*].clmc", None, None),
        ("/form/seal_types", "seals[*].sealType", None, None),
    ];

    #[test]
    fn ministry_fields_map_back_to_unified_pointers() {
        for (ministry, unified) in [
            ("sqrmc", Some("/applicant/name")),
            (" sqrmc ", Some("/applicant/name")),
            ("clxx[2].clmc", Some("/materials/2/name")),
            ("clxx[2].other", Some("/materials/2")),
            ("clxx[2]", Some("/materials/2")),
            ("clxx", Some("/materials")),
            ("clxx[x].clmc", None),
            ("seals[1].sealType", Some("/form/seal_types")),
            ("seals", Some("/form/seal_types")),
            ("ywlsh", None),
        ] {
            assert_eq!(
                unified_pointer(ROWS, ministry).as_deref(),
                unified,
                "{ministry}"
            );
        }
    }
}
