//! Yiwang adapter for the housing & construction (住建) network: SOAP 1.1 WebService in GB18030.
//!
//! The I/O half lives here (one POST per operation); the mapping, envelopes and fault
//! classification are pure functions in [`mapping`]. See README.md.

pub mod mapping;

use mapping::{CaseRef, Effect};
use yiwang_adapter_sdk::http::Request;
use yiwang_adapter_sdk::schema::{CaseChange, ChangeKind};
use yiwang_adapter_sdk::soap_reply::{self, Reply};
use yiwang_adapter_sdk::xml::Element;
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CaseChange as ChangeCall, Descriptor, Event, Receipt, Submission, host,
    parse_case, permanent, soap,
};

/// The adapter (exported as the component's `adapter` interface).
pub struct HousingConstruction;

/// Sends one operation and reads the answer: a fault is read before the HTTP status
/// (faults come in HTTP 500).
fn call(operation: &str, operation_xml: &str, effect: Effect) -> Result<Reply, AdapterError> {
    let path =
        host::config("service-path").unwrap_or_else(|| mapping::DEFAULT_SERVICE_PATH.to_owned());
    let response = Request::post(path)
        .header("Content-Type", soap::content_type(mapping::ENCODING))
        .header("SOAPAction", mapping::soap_action(operation))
        .body(mapping::encode(operation_xml)?)
        .send()
        .map_err(|e| mapping::send_error(e, effect))?;
    soap_reply::read_reply(&response, &format!("{operation}Response"), effect)
}

/// The response element, or the fault as a classified error.
fn response(reply: Reply, effect: Effect) -> Result<(Element, String), AdapterError> {
    match reply {
        Reply::Response(payload, raw) => Ok((payload, raw)),
        Reply::Fault(fault, _) => Err(mapping::fault_error(&fault, effect)),
    }
}

impl Adapter for HousingConstruction {
    fn describe() -> Descriptor {
        yiwang_adapter_sdk::descriptor(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            mapping::NETWORK_KIND,
            mapping::ITEMS,
            mapping::FIELD_MAPPINGS,
        )
    }

    fn submit(submission: Submission) -> Result<Receipt, AdapterError> {
        let case = parse_case(&submission)?;
        let xml = mapping::submit_xml(&case, &submission.idempotency_key)?;
        let (payload, raw) = response(call("SubmitCase", &xml, Effect::MayAct)?, Effect::MayAct)?;
        let (number, received) = mapping::parse_submit(&payload)?;
        Ok(Receipt {
            network_case_number: number,
            raw_receipt: raw,
            events: vec![received],
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError> {
        let case = CaseRef::parse(&network_case_number)?;
        match call("QueryStatus", &mapping::query_xml(case)?, Effect::ReadOnly)? {
            // Asked by idempotency key: "not found" is the answer, not a failure. The submit
            // never landed, and an empty history tells the gateway it may send again.
            Reply::Fault(fault, _)
                if mapping::is_not_found(&fault) && matches!(case, CaseRef::IdempotencyKey(_)) =>
            {
                Ok(Vec::new())
            }
            reply => mapping::parse_query(&response(reply, Effect::ReadOnly)?.0),
        }
    }

    fn update(change: ChangeCall) -> Result<Vec<Event>, AdapterError> {
        let parsed: CaseChange = serde_json::from_str(&change.change_json).map_err(|e| {
            permanent(format!(
                "change does not match the unified CaseChange schema: {e}"
            ))
        })?;
        let case = CaseRef::parse(&change.network_case_number)?;
        match &parsed.kind {
            ChangeKind::Withdraw { reason } => {
                let xml = mapping::withdraw_xml(case, reason)?;
                let reply = call("WithdrawCase", &xml, Effect::MayAct)?;
                let (payload, _) = response(reply, Effect::MayAct)?;
                Ok(vec![mapping::parse_withdraw(&payload, reason)?])
            }
            ChangeKind::Supplement { .. } => Err(permanent(
                "this network has no supplement operation (only SubmitCase, QueryStatus and WithdrawCase): \
                 hand the supplement materials to the ministry outside Yiwang",
            )),
        }
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(HousingConstruction);
