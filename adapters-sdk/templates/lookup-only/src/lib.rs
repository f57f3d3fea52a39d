//! A Yiwang adapter for a lookup-only network (archetype `lookup-only`): SOAP 1.1 behind a
//! WS-Security UsernameToken, one operation to file a case and one to look up its status —
//! no change feed, no callbacks.
//!
//! Statuses flow back by the gateway's status follow-up (`[networks.X.follow-up]`): the
//! gateway keeps the open cases and calls `query-status` for each on its schedule; the
//! adapter keeps no list. The token is a PasswordDigest the host computes over the secret
//! `password` (the adapter never sees it); the username is the network's adapter-config
//! `username`. Replace the constants with the ministry's interface document.

use yiwang_adapter_sdk::error::{Effect, send_error};
use yiwang_adapter_sdk::http::Request;
use yiwang_adapter_sdk::soap;
use yiwang_adapter_sdk::soap_reply::{self, FaultClass, FaultTable, Reply};
use yiwang_adapter_sdk::wsse::UsernameToken;
use yiwang_adapter_sdk::xml::{Element, XmlWriter};
use yiwang_adapter_sdk::{
    Adapter, CaseRef, Decision, Descriptor, Event, MappingRow, Receipt, Stage, Submission,
    ambiguous, event, host, parse_case, permanent, unified_pointer,
};

pub const NETWORK_KIND: &str = "lookup-only";
/// The items this network handles (code, version).
pub const ITEMS: &[(&str, &str)] = &[("XX-EXAMPLE-001", "1.0")];
pub const SERVICE_PATH: &str = "/services/CaseService";
pub const SERVICE_NS: &str = "http://example.gov.cn/case";
type Result<T, E = yiwang_adapter_sdk::AdapterError> = std::result::Result<T, E>;

/// Unified field → ministry field.
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "caseNo", None, None),
    ("/item/code", "itemCode", None, None),
    ("/applicant/name", "applicantName", None, Some("required")),
];

/// Ministry status code → unified stage and decision (30, 40 are final).
pub fn stage_of(code: &str) -> Option<(Stage, Option<Decision>)> {
    Some(match code {
        "10" => (Stage::Received, None),
        "20" => (Stage::UnderReview, None),
        "30" => (Stage::Completed, Some(Decision::Approved)),
        "40" => (Stage::Rejected, Some(Decision::Denied)),
        _ => return None,
    })
}

/// The request: the UsernameToken header and the operation with its fields (escaped).
pub fn envelope(token: &UsernameToken, operation: &str, fields: &[(&str, &str)]) -> Result<String> {
    let mut w = XmlWriter::new();
    w.start(&format!("c:{operation}"))
        .attr("xmlns:c", SERVICE_NS);
    for (name, value) in fields {
        w.elem(name, value);
    }
    w.end(&format!("c:{operation}"));
    let op = w
        .finish()
        .map_err(|e| permanent(format!("cannot write the {operation} request: {e}")))?;
    Ok(format!(
        r#"<soapenv:Envelope xmlns:soapenv="{}"><soapenv:Header>{}</soapenv:Header><soapenv:Body>{op}</soapenv:Body></soapenv:Envelope>"#,
        soap::SOAP11_NS,
        token.security_header()?
    ))
}

/// One operation: the response element and the raw reply, or the classified failure. The
/// token's PasswordDigest is computed by the host over the secret `password`: the request
/// carries only the digest, so it goes out with the plain `send`.
fn call(operation: &str, fields: &[(&str, &str)], effect: Effect) -> Result<Reply> {
    let token = UsernameToken::password_digest(&host::require_config("username")?, "password")?;
    let reply = Request::post(SERVICE_PATH)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", format!("\"urn:{operation}\""))
        .body(envelope(&token, operation, fields)?.into_bytes())
        .send()
        .map_err(|e| send_error(e, effect))?;
    soap_reply::read_reply(&reply, &format!("{operation}Response"), effect)
}

/// The network's fault classes: the SDK's rules (`Client…` rejected; any other fault
/// ambiguous after a call that may have acted, retryable after a look-up), plus the dotted
/// codes the service documents.
pub const FAULTS: FaultTable = FaultTable {
    codes: &[("Server.Busy", FaultClass::Retryable)],
    detail_code: None,
    details: &[],
};

/// The response element, or the fault as a classified error; a validation fault names its
/// field in `detail/field`, reported as the unified pointer.
fn response(reply: Reply, effect: Effect) -> Result<(Element, String)> {
    match reply {
        Reply::Response(payload, raw) => Ok((payload, raw)),
        Reply::Fault(fault, _) => {
            let field = fault
                .detail_text("field")
                .map(|f| unified_pointer(FIELD_MAPPINGS, f).unwrap_or_else(|| f.to_owned()));
            Err(FAULTS.error(&fault, effect, field))
        }
    }
}

/// The current status as one event.
pub fn parse_status(payload: &Element) -> Result<Event> {
    let field = |name: &str| payload.text_of(name).filter(|t| !t.is_empty());
    let need =
        |name: &str| field(name).ok_or_else(|| permanent(format!("status reply without {name}")));
    let code = need("status")?;
    let (stage, decision) =
        stage_of(code).ok_or_else(|| permanent(format!("unknown status code {code}")))?;
    let mut e = event(need("caseId")?, stage, need("updatedAt")?);
    e.raw_status = Some(code.to_owned());
    e.decision = decision;
    e.certificate_number = field("licenceNo").map(str::to_owned);
    e.reason = field("opinion")
        .filter(|_| decision == Some(Decision::Denied))
        .map(str::to_owned);
    Ok(e)
}

pub struct LookupOnlyAdapter;

impl Adapter for LookupOnlyAdapter {
    fn describe() -> Descriptor {
        let (name, version) = (env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        yiwang_adapter_sdk::descriptor(name, version, NETWORK_KIND, ITEMS, FIELD_MAPPINGS)
    }

    fn submit(submission: Submission) -> Result<Receipt> {
        let case = parse_case(&submission)?;
        let fields = [
            ("clientRef", submission.idempotency_key.as_str()),
            ("caseNo", case.case_number.as_str()),
            ("itemCode", case.item.code.as_str()),
            ("applicantName", case.applicant.name.as_str()),
        ];
        let (payload, raw) = response(call("FileCase", &fields, Effect::MayAct)?, Effect::MayAct)?;
        let number = payload.text_of("caseId").filter(|n| !n.is_empty());
        let number = number.ok_or_else(|| ambiguous("filing reply without caseId"))?;
        // A new filing starts at 10: the same content a first lookup tells.
        let mut received = event(
            number,
            Stage::Received,
            payload.text_of("receivedAt").unwrap_or_default(),
        );
        received.raw_status = Some("10".to_owned());
        Ok(Receipt {
            network_case_number: number.to_owned(),
            raw_receipt: raw,
            events: vec![received],
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>> {
        let (field, value, by_key) = match CaseRef::parse(&network_case_number)? {
            CaseRef::Number(n) => ("caseId", n, false),
            CaseRef::IdempotencyKey(k) => ("clientRef", k, true),
        };
        match call("LookupStatus", &[(field, value)], Effect::ReadOnly)? {
            // "Did my filing land?" Not found is the answer: the gateway may send it again.
            Reply::Fault(fault, _) if by_key && fault.is("Client.NotFound") => Ok(Vec::new()),
            reply => Ok(vec![parse_status(&response(reply, Effect::ReadOnly)?.0)?]),
        }
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(LookupOnlyAdapter);
