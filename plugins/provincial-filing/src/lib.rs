//! Yiwang adapter for the provincial filing (省级备案) network: a lookup-only SOAP 1.1
//! service behind WS-Security UsernameToken, with no change feed and no callbacks.
//!
//! Statuses flow back by the gateway's status follow-up (`[networks.X.follow-up]`): the
//! gateway keeps the open filings and calls `query-status` for each on its schedule; this
//! adapter only answers "what is the status of filing X now?". It keeps no list and no
//! password: the UsernameToken's PasswordDigest is hashed by the host over the network's
//! secret `password` (never seen here) and a host nonce; the username is adapter-config.

use yiwang_adapter_sdk::error::{Effect, classify_status, send_error};
use yiwang_adapter_sdk::host::{self, Problem};
use yiwang_adapter_sdk::http::{Request, ResponseExt};
use yiwang_adapter_sdk::soap::{self, SoapError};
use yiwang_adapter_sdk::wsse::UsernameToken;
use yiwang_adapter_sdk::xml::{Element, XmlWriter};
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CaseRef, Decision, Descriptor, Event, HttpResponse, MappingRow, Receipt,
    Stage, Submission, ambiguous, event, parse_case, permanent, retryable, text, unified_pointer,
};

pub const NETWORK_KIND: &str = "provincial-filing";
pub const ITEMS: &[(&str, &str)] = &[("BA-XMBA-001", "1.0")];
pub const SERVICE_PATH: &str = "/services/FilingService";
pub const FILING_NS: &str = "http://ba.sim.yiwang/filing";
type Result<T, E = AdapterError> = std::result::Result<T, E>;

/// Unified field → ministry field (`describe` and the README show these rows).
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "tybh", None, None),
    ("/item/code", "sxbm", None, None),
    ("/applicant/name", "sqrmc", None, None),
    ("/form/project_name", "xmmc", None, Some("required")),
];

/// Ministry status code → unified stage and decision (30, 40 and 50 are final).
pub fn stage_of(code: &str) -> Option<(Stage, Option<Decision>)> {
    Some(match code {
        "10" => (Stage::Received, None),
        "20" => (Stage::UnderReview, None),
        "30" => (Stage::Completed, Some(Decision::Approved)),
        "40" => (Stage::Rejected, Some(Decision::Denied)),
        "50" => (Stage::Withdrawn, None),
        _ => return None,
    })
}

/// The whole request: the UsernameToken header and the operation with its fields (escaped).
pub fn envelope(token: &UsernameToken, operation: &str, fields: &[(&str, &str)]) -> Result<String> {
    let mut w = XmlWriter::new();
    w.start(&format!("f:{operation}"))
        .attr("xmlns:f", FILING_NS);
    for (name, value) in fields {
        w.elem(name, value);
    }
    w.end(&format!("f:{operation}"));
    let op = w
        .finish()
        .map_err(|e| permanent(format!("cannot write the {operation} request: {e}")))?;
    Ok(format!(
        r#"<soapenv:Envelope xmlns:soapenv="{}"><soapenv:Header>{}</soapenv:Header><soapenv:Body>{op}</soapenv:Body></soapenv:Envelope>"#,
        soap::SOAP11_NS,
        token.security_header()?
    ))
}

/// One operation: the response element and the raw reply, or the classified failure.
fn call(operation: &str, fields: &[(&str, &str)], effect: Effect) -> Result<(Element, String)> {
    let token = UsernameToken::password_digest(&host::require_config("username")?, "password")?;
    let body = envelope(&token, operation, fields)?;
    let reply = Request::post(SERVICE_PATH)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", format!("\"urn:{operation}\""))
        .body(body.into_bytes())
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
    let content_type = reply.header("content-type");
    let charset = content_type.and_then(|c| c.split("charset=").nth(1));
    let text = text::decode_xml(&reply.body, charset);
    let text = text.map_err(|e| unreadable(e.to_string()))?.text;
    match soap::parse_response(&text) {
        Ok(parsed) if status == 200 => Ok((parsed.payload, text)),
        Ok(_) => Err(unreadable(format!("HTTP {status} with a non-fault body"))),
        Err(fault @ SoapError::Fault { .. }) => Err(fault_error(fault, effect)),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

/// A fault by its dotted code: validation reports every field (as unified pointers where
/// mapped); a stale clock, a replayed nonce or a busy server is retried; any other server
/// fault after a filing may have acted, so it is ambiguous (asked before any resend).
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
    let message = format!("filing service fault {code}: {string}");
    let zd = detail
        .as_deref()
        .map(|d| d.children("zd").map(Element::text).collect());
    let fields: Vec<&str> = zd.unwrap_or_default();
    match code {
        "Client.Validation" if !fields.is_empty() => {
            let problem = |f: &&str| Problem {
                pointer: Some(unified_pointer(FIELD_MAPPINGS, f).unwrap_or_else(|| f.to_string())),
                code: Some(code.to_owned()),
                message: format!("{string} ({f})"),
            };
            let message = format!("{message} (fields: {})", fields.join(", "));
            host::rejected(message, fields.iter().map(problem).collect())
        }
        "Client.Expired" | "Client.Replay" | "Server.Busy" => retryable(message),
        c if c.starts_with("Client") => permanent(message),
        _ if effect == Effect::MayAct => ambiguous(message),
        _ => retryable(message),
    }
}

/// The current status as one event, stamped with the query time the service gives.
pub fn parse_status(payload: &Element) -> Result<Event> {
    let field = |name: &str| payload.text_of(name).filter(|t| !t.is_empty());
    let need =
        |name: &str| field(name).ok_or_else(|| permanent(format!("status reply without {name}")));
    let code = need("zt")?;
    let (stage, decision) =
        stage_of(code).ok_or_else(|| permanent(format!("unknown status code zt={code}")))?;
    let mut e = event(need("bah")?, stage, need("cxsj")?);
    e.raw_status = Some(code.to_owned());
    e.decision = decision;
    e.certificate_number = field("bazh").map(str::to_owned);
    e.reason = field("yj")
        .filter(|_| decision == Some(Decision::Denied))
        .map(str::to_owned);
    Ok(e)
}

/// The adapter (exported as the component's `adapter` interface).
pub struct ProvincialFiling;

impl Adapter for ProvincialFiling {
    fn describe() -> Descriptor {
        let (name, version) = (env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        yiwang_adapter_sdk::descriptor(name, version, NETWORK_KIND, ITEMS, FIELD_MAPPINGS)
    }

    fn submit(submission: Submission) -> Result<Receipt> {
        let case = parse_case(&submission)?;
        let project = case.form.get("project_name").and_then(|v| v.as_str());
        let fields = [
            ("khckh", submission.idempotency_key.as_str()),
            ("tybh", case.case_number.as_str()),
            ("sxbm", case.item.code.as_str()),
            ("sqrmc", case.applicant.name.as_str()),
            ("xmmc", project.unwrap_or_default()),
        ];
        let (payload, raw) = call("FileCase", &fields, Effect::MayAct)?;
        let number = payload.text_of("bah").filter(|n| !n.is_empty());
        let number = number.ok_or_else(|| ambiguous("filing reply without bah"))?;
        // A new filing starts at 10 已接收: the same content a first lookup tells.
        let mut received = event(
            number,
            Stage::Received,
            payload.text_of("jssj").unwrap_or_default(),
        );
        received.raw_status = Some("10".to_owned());
        let events = vec![received];
        Ok(Receipt {
            network_case_number: number.to_owned(),
            raw_receipt: raw,
            events,
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>> {
        let (field, value, by_key) = match CaseRef::parse(&network_case_number)? {
            CaseRef::Number(n) => ("bah", n, false),
            CaseRef::IdempotencyKey(k) => ("khckh", k, true),
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
yiwang_adapter_sdk::export_adapter!(ProvincialFiling);
