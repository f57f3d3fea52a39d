//! A Yiwang adapter for a lookup-only network (archetype `lookup-only`): SOAP 1.1 behind a
//! WS-Security UsernameToken, one operation to file a case and one to look up its status —
//! no change feed, no callbacks.
//!
//! Statuses flow back by the gateway's status follow-up (`[networks.X.follow-up]`): the
//! gateway keeps the open cases and calls `query-status` for each on its schedule; the
//! adapter keeps no list. The token is a PasswordDigest the host computes over the secret
//! `password` (the adapter never sees it); the username is the network's adapter-config
//! `username`. Replace the constants with the ministry's interface document.

use yiwang_adapter_sdk::error::{Effect, classify_status, send_error};
use yiwang_adapter_sdk::http::{Request, ResponseExt};
use yiwang_adapter_sdk::soap::{self, SoapError};
use yiwang_adapter_sdk::wsse::UsernameToken;
use yiwang_adapter_sdk::xml::{Element, XmlWriter};
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CaseRef, Decision, Descriptor, Event, HttpResponse, MappingRow, Receipt,
    Stage, Submission, ambiguous, event, host, parse_case, permanent, permanent_field, retryable,
    text, unified_pointer,
};

pub const NETWORK_KIND: &str = "lookup-only";
/// The items this network handles (code, version).
pub const ITEMS: &[(&str, &str)] = &[("XX-EXAMPLE-001", "1.0")];
pub const SERVICE_PATH: &str = "/services/CaseService";
pub const SERVICE_NS: &str = "http://example.gov.cn/case";
type Result<T, E = AdapterError> = std::result::Result<T, E>;

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
fn call(operation: &str, fields: &[(&str, &str)], effect: Effect) -> Result<(Element, String)> {
    let token = UsernameToken::password_digest(&host::require_config("username")?, "password")?;
    let reply = Request::post(SERVICE_PATH)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", format!("\"urn:{operation}\""))
        .body(envelope(&token, operation, fields)?.into_bytes())
        .send()
        .map_err(|e| send_error(e, effect))?;
    read_reply(&reply, effect)
}

/// A SOAP fault is read before the HTTP status: faults come in HTTP 500.
pub fn read_reply(reply: &HttpResponse, effect: Effect) -> Result<(Element, String)> {
    let (status, retry) = (reply.status, reply.header("retry-after"));
    let unreadable = |why: String| match (classify_status(status, retry), effect) {
        (Some(e), _) => e,
        (None, Effect::MayAct) => ambiguous(format!("unreadable reply after a filing: {why}")),
        (None, Effect::ReadOnly) => retryable(format!("unreadable reply: {why}")),
    };
    let charset = reply
        .header("content-type")
        .and_then(|c| c.split("charset=").nth(1));
    let text = text::decode_xml(&reply.body, charset);
    let text = text.map_err(|e| unreadable(e.to_string()))?.text;
    match soap::parse_response(&text) {
        Ok(parsed) if status == 200 => Ok((parsed.payload, text)),
        Ok(_) => Err(unreadable(format!("HTTP {status} with a non-fault body"))),
        Err(fault @ SoapError::Fault { .. }) => Err(fault_error(fault, effect)),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

/// A fault by its dotted code: a validation fault names the field; a busy server is
/// retried; any other server fault after a filing may have acted, so it is ambiguous.
pub fn fault_error(fault: SoapError, effect: Effect) -> AdapterError {
    let SoapError::Fault {
        code,
        string,
        detail,
        ..
    } = fault
    else {
        return retryable(fault.to_string());
    };
    let code = code.rsplit(':').next().unwrap_or(&code);
    let message = format!("service fault {code}: {string}");
    let field = detail
        .as_deref()
        .and_then(|d| d.text_of("field"))
        .map(str::to_owned);
    match (code, field) {
        ("Client.Validation", Some(field)) => {
            let pointer = unified_pointer(FIELD_MAPPINGS, &field).unwrap_or(field);
            permanent_field(pointer, Some(code.to_owned()), message)
        }
        ("Server.Busy", _) => retryable(message),
        (c, _) if c.starts_with("Client") => permanent(message),
        _ if effect == Effect::MayAct => ambiguous(message),
        _ => retryable(message),
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
        let (payload, raw) = call("FileCase", &fields, Effect::MayAct)?;
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
        match call("LookupStatus", &[(field, value)], Effect::ReadOnly) {
            Ok((payload, _)) => Ok(vec![parse_status(&payload)?]),
            // "Did my filing land?" Not found is the answer: the gateway may send it again.
            Err(AdapterError::Permanent(r)) if by_key && r.message.contains("Client.NotFound") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(LookupOnlyAdapter);
