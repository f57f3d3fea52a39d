//! Yiwang adapter for the provincial filing (省级备案) network: a lookup-only SOAP 1.1
//! service behind WS-Security UsernameToken, with no change feed and no callbacks.
//!
//! Statuses flow back by the gateway's status follow-up (`[networks.X.follow-up]`): the
//! gateway keeps the open filings and calls `query-status` for each on its schedule; this
//! adapter only answers "what is the status of filing X now?". It keeps no list and no
//! password: the UsernameToken's PasswordDigest is hashed by the host over the network's
//! secret `password` (never seen here) and a host nonce; the username is adapter-config.

use yiwang_adapter_sdk::error::{Effect, send_error};
use yiwang_adapter_sdk::host::{self, Problem};
use yiwang_adapter_sdk::http::Request;
use yiwang_adapter_sdk::soap;
use yiwang_adapter_sdk::soap_reply::{self, FaultClass, FaultTable, Reply};
use yiwang_adapter_sdk::wsse::UsernameToken;
use yiwang_adapter_sdk::xml::{Element, XmlWriter};
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CaseRef, Decision, Descriptor, Event, MappingRow, Receipt, Stage,
    Submission, ambiguous, event, parse_case, permanent, unified_pointer,
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
    soap::envelope_with_header(&token.security_header()?, &op, &[])
        .map_err(|e| permanent(format!("cannot write the {operation} envelope: {e}")))
}

/// One operation: the reply as the SDK reads it (a SOAP fault before the HTTP status).
fn call(operation: &str, fields: &[(&str, &str)], effect: Effect) -> Result<Reply> {
    let token = UsernameToken::password_digest(&host::require_config("username")?, "password")?;
    let body = envelope(&token, operation, fields)?;
    let reply = Request::post(SERVICE_PATH)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", format!("\"urn:{operation}\""))
        .body(body.into_bytes())
        .send()
        .map_err(|e| send_error(e, effect))?;
    soap_reply::read_reply(&reply, &format!("{operation}Response"), effect)
}

/// The service's dotted codes beyond the SDK's rule (`Client…` rejected; any other fault
/// ambiguous after a filing, retryable after a lookup): a stale clock, a replayed nonce
/// and a busy server are retried.
pub const FAULTS: FaultTable = FaultTable {
    codes: &[
        ("Client.Expired", FaultClass::Retryable),
        ("Client.Replay", FaultClass::Retryable),
        ("Server.Busy", FaultClass::Retryable),
    ],
    detail_code: None,
    details: &[],
};

/// The response element, or the fault as a classified error: a validation fault reports
/// every field it names (`detail/zd`) as a problem, as unified pointers where mapped.
pub fn response(reply: Reply, effect: Effect) -> Result<(Element, String)> {
    let fault = match reply {
        Reply::Response(payload, raw) => return Ok((payload, raw)),
        Reply::Fault(fault, _) => fault,
    };
    let fields: Vec<&str> = match &fault.detail {
        Some(d) if fault.is("Client.Validation") => d.children("zd").map(Element::text).collect(),
        _ => Vec::new(),
    };
    if fields.is_empty() {
        return Err(FAULTS.error(&fault, effect, None));
    }
    let (code, string) = (&fault.code, &fault.string);
    let problem = |f: &&str| Problem {
        pointer: Some(unified_pointer(FIELD_MAPPINGS, f).unwrap_or_else(|| f.to_string())),
        code: Some(code.clone()),
        message: format!("{string} ({f})"),
    };
    let message = format!(
        "filing service fault {code}: {string} (fields: {})",
        fields.join(", ")
    );
    Err(host::rejected(
        message,
        fields.iter().map(problem).collect(),
    ))
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
        let (payload, raw) = response(call("FileCase", &fields, Effect::MayAct)?, Effect::MayAct)?;
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
        match call("LookupStatus", &[(field, value)], Effect::ReadOnly)? {
            // "Did my filing land?" Not found is the answer: the gateway may send it again.
            Reply::Fault(fault, _) if by_key && fault.is("Client.NotFound") => Ok(Vec::new()),
            reply => Ok(vec![parse_status(&response(reply, Effect::ReadOnly)?.0)?]),
        }
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(ProvincialFiling);
