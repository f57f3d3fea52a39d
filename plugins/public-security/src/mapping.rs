//! The pure half of the adapter: unified case ↔ seal-filing JSON, reply reading, error
//! classification, and checking and reading pushes. No host calls (the push signature is
//! computed by a function the caller passes in), so it compiles and runs natively.

use serde_json::{Map, Value, json};
use yiwang_adapter_sdk::codes::{CodeTable, StatusRow, StatusTable, Unknown, UnknownStatus};
use yiwang_adapter_sdk::dates::{self, MinistryDateFormat};
use yiwang_adapter_sdk::error::{StatusClass, status_class};
// RFC 3986 unreserved characters pass, every other UTF-8 byte becomes `%XX`: the wire form
// (which signatures cover) is unambiguous, and `+` is sent as `%2B`.
use yiwang_adapter_sdk::http::percent_encode;
use yiwang_adapter_sdk::schema::{
    Case, CaseChange, ChangeKind, Decision, Material, PartyKind, Stage,
};
use yiwang_adapter_sdk::{
    AdapterError, Event, FieldMapping, Header, HttpRequest, HttpResponse, Rejection, error, event,
    permanent, permanent_field, retryable,
};

pub use yiwang_adapter_sdk::{CaseRef, Effect, MappingRow, ambiguous, send_error};

/// The protocol archetype, as `describe` reports it.
pub const NETWORK_KIND: &str = "json-apikey-callback";

/// Submit (`POST`) and query by idempotency key (`GET ?requestId=`).
pub const FILINGS_PATH: &str = "/openapi/v1/seal-filings";
/// The header carrying the network's static API key.
pub const API_KEY_HEADER: &str = "X-Api-Key";
/// The secret holding the API key, sent as `${secret:api-key}`.
pub const API_KEY_SECRET: &str = "api-key";
/// The secret the ministry signs its pushes with.
pub const PUSH_SECRET: &str = "push-secret";
/// The name under which the gateway passes the market-regulation licence number on.
pub const LICENCE_INPUT: &str = "licence-number";

/// Push headers.
pub const PUSH_ID_HEADER: &str = "X-Push-Id";
pub const PUSH_TIMESTAMP_HEADER: &str = "X-Push-Timestamp";
pub const PUSH_SIGNATURE_HEADER: &str = "X-Push-Signature";
/// A push whose timestamp is further than this from the host clock is refused: a captured
/// push replayed later must not be accepted.
pub const MAX_PUSH_SKEW_MS: i64 = 5 * 60 * 1000;

/// The item this adapter maps: enterprise establishment (企业开办), whose bundle includes seal
/// engraving; the case fans out to this network after market regulation.
pub const ITEMS: &[(&str, &str)] = &[("SC-QYKB-001", "1.0")];

/// Seals named in the item's form (`/form/seal_types`) → the vendor's `sealType`.
pub static SEAL_TYPE: CodeTable = CodeTable::new(
    "seal_type",
    &[
        ("company", "01", "单位公章"),
        ("finance", "02", "财务专用章"),
        ("invoice", "03", "发票专用章"),
        ("contract", "04", "合同专用章"),
        ("legal_representative", "05", "法定代表人名章"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// The seals filed when the form names none: the basic set the enterprise-establishment
/// reform gives every new company free (公章, 财务章, 发票章). A business rule, not a guess.
pub const DEFAULT_SEALS: &[&str] = &["company", "finance", "invoice"];

/// The agent's ID type: this vendor has its own one-digit codes. Several unified codes may
/// mean "other" (`9`); anything unlisted is refused, never passed through.
pub static AGENT_ID_TYPE: CodeTable = CodeTable::new(
    "agent_id_type",
    &[
        ("111", "1", "居民身份证"),
        ("414", "2", "普通护照"),
        ("516", "3", "港澳居民来往内地通行证"),
        ("990", "9", "其他"),
        ("999", "9", "其他自然人证件"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// Status codes of the seal-filing system.
pub static STATUS: StatusTable = StatusTable::new(
    "status_ga_seal",
    &[
        StatusRow::new("10", Stage::Received, None, "已接收"),
        StatusRow::new("20", Stage::Accepted, None, "已受理"),
        StatusRow::new("25", Stage::Rejected, None, "不予受理"),
        StatusRow::new("30", Stage::SupplementRequested, None, "待补正"),
        StatusRow::new("40", Stage::UnderReview, None, "审核中"),
        StatusRow::new("50", Stage::Decided, Some(Decision::Approved), "备案通过"),
        StatusRow::new("60", Stage::CertificateIssued, None, "已制章"),
        StatusRow::new("70", Stage::Completed, Some(Decision::Approved), "已办结"),
        StatusRow::new("80", Stage::Decided, Some(Decision::Denied), "不予备案"),
        StatusRow::new("90", Stage::Withdrawn, None, "已撤回"),
    ],
    UnknownStatus::Reject,
);

/// Every field this adapter fills from the unified case (README.md shows the same table).
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "unifiedCaseNo", None, None),
    ("/item/code", "itemCode", None, None),
    ("/item/version", "itemVersion", None, None),
    ("/applicant/name", "entName", None, Some("the seals' text")),
    (
        "/applicant/id_number",
        "uscc",
        None,
        Some("id_type must be 001: seals are filed for organisations"),
    ),
    (
        "/applicant/legal_representative",
        "legalRep",
        None,
        Some("required on this network"),
    ),
    ("/applicant/contact/phone", "contactPhone", None, None),
    (
        "/submitted_at",
        "applyTime",
        None,
        Some("epoch milliseconds"),
    ),
    (
        "/form/seal_types",
        "seals[*].sealType",
        Some("seal_type"),
        Some("absent: company, finance, invoice (the free basic set of 企业开办)"),
    ),
    ("/agent/name", "agentName", None, Some("only with an agent")),
    (
        "/agent/id_type",
        "agentIdType",
        Some("agent_id_type"),
        Some("111→1, 414→2, 516→3, 990 and 999→9"),
    ),
    ("/agent/id_number", "agentIdNo", None, None),
    ("/materials/*/name", "materials[*].name", None, None),
    (
        "/materials/*/media_type",
        "materials[*].mediaType",
        None,
        None,
    ),
    ("/materials/*/sha256", "materials[*].sha256", None, None),
    ("/materials/*/uri", "materials[*].url", None, None),
];

/// [`FIELD_MAPPINGS`] in the contract's shape.
pub fn field_mappings() -> Vec<FieldMapping> {
    yiwang_adapter_sdk::field_mappings(FIELD_MAPPINGS)
}

/// The unified field a ministry field name came from, for rejections (`field`).
/// `materials[1].name` → `/materials/1/name`; `seals[2].sealType` → `/form/seal_types`.
/// `None` for fields the case does not feed (`requestId`, `licenceNo`).
pub fn unified_pointer(ministry_field: &str) -> Option<String> {
    let field = ministry_field.trim();
    if field == "seals" || field.starts_with("seals[") {
        return Some("/form/seal_types".to_owned());
    }
    yiwang_adapter_sdk::unified_pointer(FIELD_MAPPINGS, field)
}

/// The vendor's `sealType` codes for the case: `/form/seal_types` (an array of seal names)
/// when present, else [`DEFAULT_SEALS`]. A name listed twice is filed once.
pub fn seal_types(case: &Case) -> Result<Vec<String>, AdapterError> {
    const FIELD: &str = "/form/seal_types";
    let names: Vec<&str> = match case.form.get("seal_types") {
        None | Some(Value::Null) => DEFAULT_SEALS.to_vec(),
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let name = item.as_str().ok_or_else(|| {
                    permanent_field(
                        format!("{FIELD}/{i}"),
                        None,
                        "a seal type must be a string such as \"company\"",
                    )
                })?;
                names.push(name);
            }
            names
        }
        Some(_) => {
            return Err(permanent_field(
                FIELD,
                None,
                "must be an array of seal type names",
            ));
        }
    };
    if names.is_empty() {
        return Err(permanent_field(
            FIELD,
            None,
            "names no seal: a filing needs at least one",
        ));
    }
    let mut codes: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let code = SEAL_TYPE
            .to_ministry(name)
            .map_err(|e| permanent_field(format!("{FIELD}/{i}"), None, e.to_string()))?;
        if !codes.iter().any(|c| c == code) {
            codes.push(code.to_owned());
        }
    }
    Ok(codes)
}

/// The submit body. `licence` is the market-regulation licence number the route passed on.
/// Every problem the ministry would refuse is refused here first, naming the unified field.
pub fn submit_body(
    case: &Case,
    idempotency_key: &str,
    licence: &str,
) -> Result<Value, AdapterError> {
    let applicant = &case.applicant;
    if applicant.kind == PartyKind::NaturalPerson {
        return Err(permanent_field(
            "/applicant/kind",
            None,
            "seal-engraving filing is for organisations; the applicant is a natural person",
        ));
    }
    if applicant.id_type != "001" {
        return Err(permanent_field(
            "/applicant/id_type",
            None,
            format!(
                "the network needs the unified social credit code (id_type 001) as uscc; got id_type {}",
                applicant.id_type
            ),
        ));
    }
    let legal_rep = applicant
        .legal_representative
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            permanent_field(
                "/applicant/legal_representative",
                None,
                "the network requires the legal representative (legalRep) for a seal filing",
            )
        })?;
    let seals: Vec<Value> = seal_types(case)?
        .into_iter()
        .map(|code| json!({"sealType": code}))
        .collect();
    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    put("requestId", json!(idempotency_key));
    put("unifiedCaseNo", json!(case.case_number));
    put("itemCode", json!(case.item.code));
    put("itemVersion", json!(case.item.version));
    put("licenceNo", json!(licence));
    put("entName", json!(applicant.name));
    put("uscc", json!(applicant.id_number));
    put("legalRep", json!(legal_rep));
    put("contactPhone", json!(applicant.contact.phone));
    put("applyTime", json!(case.submitted_at.timestamp_millis()));
    put("seals", Value::Array(seals));
    if let Some(agent) = &case.agent {
        let id_type = AGENT_ID_TYPE
            .to_ministry(&agent.id_type)
            .map_err(|e| permanent_field("/agent/id_type", None, e.to_string()))?;
        put("agentName", json!(agent.name));
        put("agentIdType", json!(id_type));
        put("agentIdNo", json!(agent.id_number));
    }
    put("materials", materials(&case.materials));
    Ok(Value::Object(body))
}

fn materials(materials: &[Material]) -> Value {
    Value::Array(
        materials
            .iter()
            .map(|m| json!({"name": m.name, "mediaType": m.media_type, "sha256": m.sha256, "url": m.uri}))
            .collect(),
    )
}

/// Serializes a body built from case data so that no `${secret:…}` placeholder can be
/// smuggled in by it. Every request to this network goes through `send_with_secrets` (the API
/// key is a header placeholder), and the host fills placeholders in UTF-8 bodies too; `$`
/// only occurs inside JSON strings, where `\u0024` means the same character.
pub fn body_bytes(body: &Value) -> Vec<u8> {
    body.to_string().replace('$', "\\u0024").into_bytes()
}

/// The query URL for a case named by number or by idempotency key.
pub fn query_path(case: CaseRef<'_>) -> String {
    match case {
        CaseRef::Number(n) => format!("{FILINGS_PATH}/{}", percent_encode(n)),
        CaseRef::IdempotencyKey(k) => format!("{FILINGS_PATH}?requestId={}", percent_encode(k)),
    }
}

/// The path and body of a bureau-side change to the case numbered `number`.
pub fn change_request(number: &str, change: &CaseChange) -> (String, Value) {
    let base = format!("{FILINGS_PATH}/{}", percent_encode(number));
    match &change.kind {
        ChangeKind::Withdraw { reason } => (format!("{base}/withdraw"), json!({"reason": reason})),
        ChangeKind::Supplement { materials: m, note } => {
            let mut body = json!({"materials": materials(m)});
            if let (Some(note), Value::Object(map)) = (note, &mut body) {
                map.insert("note".into(), json!(note));
            }
            (format!("{base}/supplement"), body)
        }
    }
}

/// The vendor's envelope `{"code", "message", "field"?, "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `"0"` on success.
    pub code: String,
    pub message: String,
    /// The ministry field an error is about.
    pub field: Option<String>,
    pub data: Value,
}

impl Reply {
    /// Whether the ministry said "no such case".
    pub fn not_found(&self) -> bool {
        self.code == "C0404"
    }
}

/// Reads an HTTP reply. 5xx, 408, 425 and 429 are retryable (honouring Retry-After). Business
/// errors come with 400/401/404/409 *and* the envelope, so the envelope is read whatever the
/// status; a status without it is classified by the status alone. A 2xx body that is not the
/// envelope (an HTML page) is ambiguous when the request may have acted, retryable otherwise.
pub fn read_reply(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    effect: Effect,
) -> Result<Reply, AdapterError> {
    if status_class(status) == StatusClass::Retryable {
        return Err(error::classify_status(status, retry_after)
            .unwrap_or_else(|| retryable(format!("ministry answered HTTP {status}"))));
    }
    let parsed = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let obj = v.as_object()?;
        Some(Reply {
            code: obj.get("code")?.as_str()?.to_owned(),
            message: text(&v, "message").unwrap_or_default().to_owned(),
            field: text(&v, "field").map(str::to_owned),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
        })
    });
    match parsed {
        Some(reply) => Ok(reply),
        None if (200..300).contains(&status) => Err(unusable(
            effect,
            &format!("HTTP {status} without the protocol's JSON envelope"),
            body,
        )),
        None => Err(error::classify_status(status, retry_after)
            .unwrap_or_else(|| permanent(format!("ministry answered HTTP {status}")))),
    }
}

/// A reply that is there but cannot be understood.
pub fn unusable(effect: Effect, what: &str, body: &[u8]) -> AdapterError {
    let cut = body.len().min(120);
    let head = String::from_utf8_lossy(body.get(..cut).unwrap_or_default()).into_owned();
    let message = format!("ministry answered {what}; it starts with {head:?}");
    match effect {
        Effect::MayAct => ambiguous(format!("{message} (the request may have been acted on)")),
        Effect::ReadOnly => retryable(message),
    }
}

fn rejection(code: &str, field: Option<String>, message: String) -> AdapterError {
    AdapterError::Permanent(Rejection {
        field,
        code: Some(code.to_owned()),
        message,
    })
}

/// The ministry field a business error names: `field`, else the text after the last `": "`.
pub fn named_field(reply: &Reply) -> Option<String> {
    reply
        .field
        .clone()
        .or_else(|| {
            reply
                .message
                .rsplit_once(": ")
                .map(|(_, f)| f.trim().to_owned())
        })
        .filter(|f| !f.is_empty())
}

/// The data of a `"0"` reply, or the classified business error.
pub fn ok(reply: Reply) -> Result<Value, AdapterError> {
    if reply.code == "0" {
        Ok(reply.data)
    } else {
        Err(business_error(&reply))
    }
}

/// Classifies a reply whose code is not `"0"`. All are permanent: resending the same request
/// gets the same answer.
pub fn business_error(reply: &Reply) -> AdapterError {
    let code = reply.code.as_str();
    let msg = &reply.message;
    match code {
        "A0401" => rejection(
            code,
            None,
            format!("API key refused ({msg}): fix the network's secret `{API_KEY_SECRET}`"),
        ),
        "B0001" | "B0002" | "B0003" | "B0004" => {
            let ministry_field = named_field(reply);
            let field = ministry_field.as_deref().and_then(unified_pointer);
            let message = match &ministry_field {
                Some(f) if f == "licenceNo" => format!(
                    "{msg} (ministry field licenceNo, from the submission input `{LICENCE_INPUT}`)"
                ),
                Some(f) => format!("{msg} (ministry field {f})"),
                None => msg.clone(),
            };
            rejection(code, field, message)
        }
        "C0404" => rejection(code, None, format!("the ministry has no such case ({msg})")),
        "C0409" => rejection(
            code,
            None,
            format!("not allowed at the case's current status ({msg})"),
        ),
        _ => rejection(code, None, format!("ministry error {code}: {msg}")),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn required_text<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a str, AdapterError> {
    text(v, key).ok_or_else(|| permanent(format!("{what}: the ministry's message has no `{key}`")))
}

fn required_millis(v: &Value, key: &str, what: &str) -> Result<i64, AdapterError> {
    v.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| permanent(format!("{what}: `{key}` is not epoch milliseconds")))
}

fn time(ms: i64, field: &str) -> Result<String, AdapterError> {
    dates::parse(&ms.to_string(), MinistryDateFormat::EpochMillis)
        .map(|t| t.to_rfc3339())
        .map_err(|e| permanent(format!("ministry field {field}: {e}")))
}

/// What the ministry reports with one status: the seal record number, the outcome text
/// (`result`) and the reason given for the change (`remark`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusDetails<'a> {
    pub record_no: Option<&'a str>,
    pub result: Option<&'a str>,
    pub remark: Option<&'a str>,
}

/// One status of a case as an event.
pub fn status_event(
    case_no: &str,
    status: &str,
    status_time: i64,
    details: StatusDetails<'_>,
) -> Result<Event, AdapterError> {
    let mapped = STATUS.map(status).map_err(|e| {
        permanent(format!(
            "case {case_no}: ministry status code {status:?} is unknown ({e}); refusing to guess a stage"
        ))
    })?;
    let mut ev = event(
        case_no,
        mapped.wit_stage(),
        time(status_time, "statusTime")?,
    );
    ev.decision = mapped.wit_decision();
    ev.raw_status = Some(status.to_owned());
    let some = |s: Option<&str>| s.map(str::to_owned);
    match mapped.stage {
        Stage::CertificateIssued => ev.certificate_number = some(details.record_no),
        Stage::Completed => {
            ev.certificate_number = some(details.record_no);
            ev.reason = some(details.result);
        }
        Stage::Decided | Stage::Rejected => ev.reason = some(details.result.or(details.remark)),
        Stage::Withdrawn | Stage::SupplementRequested => ev.reason = some(details.remark),
        _ => {}
    }
    Ok(ev)
}

/// The submit reply: the ministry case number and a `received` event at `acceptTime`.
pub fn parse_submit(data: &Value) -> Result<(String, Event), AdapterError> {
    let number = text(data, "caseNo").ok_or_else(|| {
        ambiguous("submit reply has code 0 but no caseNo: the case may be stored")
    })?;
    let accepted = data
        .get("acceptTime")
        .and_then(Value::as_i64)
        .ok_or_else(|| ambiguous("submit reply has code 0 but no acceptTime"))?;
    // The ministry says which status a new case starts at; `10` when it does not.
    let status = text(data, "status").unwrap_or("10");
    let ev = status_event(number, status, accepted, StatusDetails::default())?;
    Ok((number.to_owned(), ev))
}

/// A case as the query endpoints show it: its history, oldest first, as events.
pub fn parse_case_view(data: &Value) -> Result<Vec<Event>, AdapterError> {
    let number = required_text(data, "caseNo", "query")?;
    let record_no = text(data, "recordNo");
    let result = text(data, "result");
    let history = data.get("history").and_then(Value::as_array);
    match history {
        Some(entries) if !entries.is_empty() => entries
            .iter()
            .map(|h| {
                status_event(
                    number,
                    required_text(h, "status", "query history")?,
                    required_millis(h, "statusTime", "query history")?,
                    StatusDetails {
                        record_no,
                        result,
                        remark: text(h, "remark"),
                    },
                )
            })
            .collect(),
        _ => Ok(vec![status_event(
            number,
            required_text(data, "status", "query")?,
            required_millis(data, "statusTime", "query")?,
            StatusDetails {
                record_no,
                result,
                remark: None,
            },
        )?]),
    }
}

/// The answer of withdraw or supplement: the case's status after the change.
pub fn parse_change_reply(data: &Value, change: &CaseChange) -> Result<Event, AdapterError> {
    let remark = match &change.kind {
        ChangeKind::Withdraw { reason } => Some(reason.as_str()),
        ChangeKind::Supplement { .. } => None,
    };
    status_event(
        required_text(data, "caseNo", "change")?,
        required_text(data, "status", "change")?,
        required_millis(data, "statusTime", "change")?,
        StatusDetails {
            remark,
            ..StatusDetails::default()
        },
    )
}

// ---------------------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------------------

fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![Header {
            name: "Content-Type".to_owned(),
            value: "application/json;charset=UTF-8".to_owned(),
        }],
        body: body.to_string().into_bytes(),
    }
}

/// The acknowledgement the ministry waits for: until it gets it, it pushes again.
pub fn acknowledgement() -> HttpResponse {
    json_response(200, &json!({"code": "0", "message": "成功"}))
}

/// A refusal: the push is not taken and yields no events.
pub fn refusal(status: u16, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"code": status.to_string(), "message": message}),
    )
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim())
        .filter(|v| !v.is_empty())
}

/// Compares two byte strings in time that depends only on their lengths, so a forger cannot
/// learn a valid signature byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The message the ministry signs: the timestamp header's value, a line feed, the body.
pub fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(body);
    message
}

/// Checks a push before anything in it is trusted. `Ok(None)`: authentic and fresh.
/// `Ok(Some(response))`: refused (the answer for the ministry; no events). `Err`: the check
/// itself failed (no `push-secret` configured), which an operator must fix.
///
/// `mac` computes HMAC-SHA256 with the push secret; in the component it is the host's
/// `hmac_sha256_with_secret`, so the adapter never holds the secret.
pub fn check_push(
    request: &HttpRequest,
    now_ms: i64,
    mac: impl FnOnce(&[u8]) -> Result<Vec<u8>, AdapterError>,
) -> Result<Option<HttpResponse>, AdapterError> {
    if !request.method.eq_ignore_ascii_case("POST") {
        return Ok(Some(refusal(405, "只接受POST推送")));
    }
    let (Some(timestamp), Some(signature)) = (
        header(request, PUSH_TIMESTAMP_HEADER),
        header(request, PUSH_SIGNATURE_HEADER),
    ) else {
        return Ok(Some(refusal(
            401,
            "缺少签名头: X-Push-Timestamp / X-Push-Signature",
        )));
    };
    let Ok(sent_ms) = timestamp.parse::<i64>() else {
        return Ok(Some(refusal(401, "时间戳格式错误: X-Push-Timestamp")));
    };
    // A signature that is not 64 hex digits cannot match; no need to ask the host.
    let Some(given) = hex_decode(signature).filter(|g| g.len() == 32) else {
        return Ok(Some(refusal(401, "签名校验失败: X-Push-Signature")));
    };
    let expected = mac(&signed_message(timestamp, &request.body))?;
    if !constant_time_eq(&expected, &given) {
        return Ok(Some(refusal(401, "签名校验失败: X-Push-Signature")));
    }
    // Checked after the signature: only an authentic push learns that it came too late.
    if now_ms.saturating_sub(sent_ms).abs() > MAX_PUSH_SKEW_MS {
        return Ok(Some(refusal(
            403,
            "推送时间戳超出允许范围(±300秒): X-Push-Timestamp",
        )));
    }
    Ok(None)
}

/// A unified case number as the schema allows it (1–64 of `A-Z a-z 0-9 _ -`); anything
/// else from the ministry is left out of the event rather than failing the push.
fn unified_case_number(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

/// An authentic push read into its id and event. A push that cannot be read is a permanent
/// error naming the member: the ministry keeps it and pushes again, so nothing is lost while
/// an operator looks.
pub fn parse_push(body: &[u8]) -> Result<(String, Event), AdapterError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| permanent(format!("push body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(permanent("push body is not a JSON object"));
    }
    let push_id = required_text(&v, "pushId", "push")?;
    let mut ev = status_event(
        required_text(&v, "caseNo", "push")?,
        required_text(&v, "status", "push")?,
        required_millis(&v, "statusTime", "push")?,
        StatusDetails {
            record_no: text(&v, "recordNo"),
            result: text(&v, "result"),
            remark: text(&v, "remark"),
        },
    )?;
    ev.case_number = unified_case_number(text(&v, "unifiedCaseNo"));
    Ok((push_id.to_owned(), ev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yiwang_adapter_sdk::sign::hmac_sha256;

    fn case() -> Case {
        let json =
            include_str!("../../../adapters-sdk/schema/testdata/enterprise-establishment.json");
        serde_json::from_str(json).expect("testdata case parses")
    }

    fn permanent_at(result: Result<impl std::fmt::Debug, AdapterError>) -> Option<String> {
        match result {
            Err(AdapterError::Permanent(r)) => r.field,
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[test]
    fn maps_the_testdata_case() {
        let body = submit_body(&case(), "K-1", "SCJGZZ00000001").expect("maps");
        assert_eq!(body["requestId"], "K-1");
        assert_eq!(body["unifiedCaseNo"], "FZGL-2026-001234");
        assert_eq!(body["licenceNo"], "SCJGZZ00000001");
        assert_eq!(body["uscc"], "91350102MA2Y7K3Q67");
        assert_eq!(body["legalRep"], "陈建华");
        // 2026-11-20T09:30:00+08:00
        assert_eq!(body["applyTime"], 1_795_138_200_000_i64);
        assert_eq!(
            body["seals"],
            json!([{"sealType": "01"}, {"sealType": "02"}, {"sealType": "03"}])
        );
        assert_eq!(body["agentIdType"], "1");
        assert_eq!(body["agentIdNo"], "350102199003151226");
        assert_eq!(body["materials"][1]["name"], "公司章程");
        assert_eq!(
            body["materials"][0]["url"],
            "oss://fz-gulou-materials/2026/11/20/FZGL-2026-001234/01.pdf"
        );
    }

    #[test]
    fn refusals_name_the_unified_field() {
        let mut c = case();
        c.applicant.legal_representative = None;
        assert_eq!(
            permanent_at(submit_body(&c, "K", "L")).as_deref(),
            Some("/applicant/legal_representative")
        );
        let mut c = case();
        c.applicant.id_type = "099".into();
        assert_eq!(
            permanent_at(submit_body(&c, "K", "L")).as_deref(),
            Some("/applicant/id_type")
        );
        let mut c = case();
        c.applicant.kind = PartyKind::NaturalPerson;
        assert_eq!(
            permanent_at(submit_body(&c, "K", "L")).as_deref(),
            Some("/applicant/kind")
        );
        let mut c = case();
        if let Some(agent) = c.agent.as_mut() {
            agent.id_type = "113".into();
        }
        assert_eq!(
            permanent_at(submit_body(&c, "K", "L")).as_deref(),
            Some("/agent/id_type")
        );
        let mut c = case();
        c.form
            .insert("seal_types".into(), json!(["company", "stamp"]));
        assert_eq!(
            permanent_at(submit_body(&c, "K", "L")).as_deref(),
            Some("/form/seal_types/1")
        );
        c.form.insert("seal_types".into(), json!([]));
        assert_eq!(
            permanent_at(submit_body(&c, "K", "L")).as_deref(),
            Some("/form/seal_types")
        );
    }

    #[test]
    fn seal_types_come_from_the_form_once_each() {
        let mut c = case();
        c.form.insert(
            "seal_types".into(),
            json!(["contract", "company", "contract", "legal_representative"]),
        );
        assert_eq!(
            seal_types(&c).ok(),
            Some(vec!["04".into(), "01".into(), "05".into()])
        );
    }

    #[test]
    fn urls_and_bodies_cannot_carry_placeholders_or_break_out() {
        assert_eq!(
            query_path(CaseRef::IdempotencyKey("a+b/c ${secret:x}")),
            "/openapi/v1/seal-filings?requestId=a%2Bb%2Fc%20%24%7Bsecret%3Ax%7D"
        );
        assert_eq!(
            query_path(CaseRef::Number("GA1")),
            "/openapi/v1/seal-filings/GA1"
        );
        let bytes = body_bytes(&json!({"entName": "${secret:api-key}"}));
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(!text.contains("${"));
        let back: Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back["entName"], "${secret:api-key}");
    }

    #[test]
    fn replies_are_classified() {
        let ok_reply = read_reply(
            200,
            None,
            br#"{"code":"0","message":"ok","data":{"caseNo":"GA1","acceptTime":1795224602123,"status":"10"}}"#,
            Effect::MayAct,
        )
        .expect("envelope");
        let (number, ev) = parse_submit(&ok(ok_reply).expect("code 0")).expect("receipt");
        assert_eq!(number, "GA1");
        assert_eq!(ev.at, "2026-11-21T09:30:02.123+08:00");
        assert_eq!(ev.raw_status.as_deref(), Some("10"));

        let missing = read_reply(
            400,
            None,
            r#"{"code":"B0002","message":"缺少必填字段: legalRep","field":"legalRep","data":null}"#
                .as_bytes(),
            Effect::MayAct,
        )
        .expect("envelope");
        match ok(missing) {
            Err(AdapterError::Permanent(r)) => {
                assert_eq!(r.field.as_deref(), Some("/applicant/legal_representative"));
                assert_eq!(r.code.as_deref(), Some("B0002"));
            }
            other => panic!("{other:?}"),
        }
        let seal = Reply {
            code: "B0003".into(),
            message: "代码值不在代码表中: seals[1].sealType".into(),
            field: None,
            data: Value::Null,
        };
        assert!(
            matches!(business_error(&seal), AdapterError::Permanent(r) if r.field.as_deref() == Some("/form/seal_types"))
        );
        assert!(matches!(
            read_reply(503, Some("2"), b"<html/>", Effect::MayAct),
            Err(AdapterError::Retryable(r)) if r.retry_after_ms == Some(2000)
        ));
        assert!(matches!(
            read_reply(200, None, b"<html/>", Effect::MayAct),
            Err(AdapterError::Ambiguous(_))
        ));
        assert!(matches!(
            read_reply(200, None, b"<html/>", Effect::ReadOnly),
            Err(AdapterError::Retryable(_))
        ));
        assert!(matches!(
            read_reply(403, None, b"<html/>", Effect::ReadOnly),
            Err(AdapterError::Permanent(_))
        ));
        let key = read_reply(
            401,
            None,
            br#"{"code":"A0401","message":"x","data":null}"#,
            Effect::ReadOnly,
        )
        .expect("envelope");
        assert!(
            matches!(ok(key), Err(AdapterError::Permanent(r)) if r.message.contains("api-key"))
        );
    }

    #[test]
    fn ministry_fields_map_back() {
        for (ministry, unified) in [
            ("uscc", Some("/applicant/id_number")),
            ("applyTime", Some("/submitted_at")),
            ("agentIdType", Some("/agent/id_type")),
            ("seals", Some("/form/seal_types")),
            ("materials[1].url", Some("/materials/1/uri")),
            ("requestId", None),
            ("licenceNo", None),
        ] {
            assert_eq!(unified_pointer(ministry).as_deref(), unified, "{ministry}");
        }
    }

    #[test]
    fn query_history_becomes_events_with_the_record_number() {
        let data = json!({
            "caseNo": "GA1", "requestId": "K", "unifiedCaseNo": "FZGL-2026-001234",
            "status": "70", "statusName": "已办结", "statusTime": 1795224612131_i64,
            "recordNo": "GAYZ2026000001", "result": "准予备案",
            "history": [
                {"status": "10", "statusName": "已接收", "statusTime": 1795224602123_i64, "remark": null},
                {"status": "50", "statusName": "备案通过", "statusTime": 1795224608127_i64, "remark": null},
                {"status": "60", "statusName": "已制章", "statusTime": 1795224610129_i64, "remark": null},
                {"status": "70", "statusName": "已办结", "statusTime": 1795224612131_i64, "remark": null}
            ]
        });
        let events = parse_case_view(&data).expect("events");
        let stages: Vec<_> = events.iter().map(|e| e.stage).collect();
        use yiwang_adapter_sdk::Stage as W;
        assert_eq!(
            stages,
            [W::Received, W::Decided, W::CertificateIssued, W::Completed]
        );
        assert_eq!(events[0].certificate_number, None);
        assert_eq!(
            events[2].certificate_number.as_deref(),
            Some("GAYZ2026000001")
        );
        assert_eq!(events[3].reason.as_deref(), Some("准予备案"));
        assert_eq!(
            events[3].decision,
            Some(yiwang_adapter_sdk::Decision::Approved)
        );
        let unknown = status_event("GA1", "99", 1, StatusDetails::default());
        assert!(matches!(unknown, Err(AdapterError::Permanent(r)) if r.message.contains("\"99\"")));
    }

    const SECRET: &[u8] = b"ga-demo-push-secret-91c7";
    const BODY: &str = r#"{"pushId":"GA-5f0c1a2b-00000002","eventType":"STATUS_CHANGED","caseNo":"GA20261121000001","requestId":"YW-20261121-000007-GA","unifiedCaseNo":"FZGL-2026-001234","status":"20","statusName":"已受理","statusTime":1795224604120,"recordNo":null,"result":null,"remark":null}"#;
    const TIMESTAMP: &str = "1795224604123";
    /// From tests/simulator/PROTOCOLS.md, where the simulator's tests check it.
    const SIGNATURE: &str = "36edc1cd974eea809f3ece4f4165813f034021b760aec3bd898fb4749b3e304f";

    fn push(timestamp: &str, signature: &str, body: &str) -> HttpRequest {
        let h = |name: &str, value: &str| Header {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        HttpRequest {
            method: "POST".into(),
            url: "/callbacks/public-security".into(),
            headers: vec![
                h("content-type", "application/json;charset=UTF-8"),
                h("x-push-id", "GA-5f0c1a2b-00000002"),
                h("x-push-timestamp", timestamp),
                h("x-push-signature", signature),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    fn mac(message: &[u8]) -> Result<Vec<u8>, AdapterError> {
        Ok(hmac_sha256(SECRET, message).to_vec())
    }

    const NOW: i64 = 1_795_224_604_500;

    #[test]
    fn the_documented_push_is_authentic_and_reads_as_accepted() {
        let request = push(TIMESTAMP, SIGNATURE, BODY);
        assert!(matches!(check_push(&request, NOW, mac), Ok(None)));
        let upper = push(TIMESTAMP, &SIGNATURE.to_uppercase(), BODY);
        assert!(matches!(check_push(&upper, NOW, mac), Ok(None)));
        let (id, ev) = parse_push(BODY.as_bytes()).expect("readable");
        assert_eq!(id, "GA-5f0c1a2b-00000002");
        assert_eq!(ev.network_case_number, "GA20261121000001");
        assert_eq!(ev.case_number.as_deref(), Some("FZGL-2026-001234"));
        assert_eq!(ev.stage, yiwang_adapter_sdk::Stage::Accepted);
        assert_eq!(ev.at, "2026-11-21T09:30:04.120+08:00");
        assert_eq!(ev.raw_status.as_deref(), Some("20"));
    }

    fn refused_with(request: &HttpRequest, now: i64) -> Option<u16> {
        match check_push(request, now, mac) {
            Ok(Some(response)) => Some(response.status),
            Ok(None) => None,
            Err(e) => panic!("the check itself failed: {e:?}"),
        }
    }

    #[test]
    fn tampered_forged_and_stale_pushes_are_refused() {
        let tampered = BODY.replace("\"20\"", "\"70\"");
        assert_eq!(
            refused_with(&push(TIMESTAMP, SIGNATURE, &tampered), NOW),
            Some(401)
        );
        // The timestamp is signed too: moving it breaks the signature.
        assert_eq!(
            refused_with(&push("1795224904123", SIGNATURE, BODY), NOW + 300_000),
            Some(401)
        );
        assert_eq!(refused_with(&push(TIMESTAMP, "00", BODY), NOW), Some(401));
        assert_eq!(refused_with(&push(TIMESTAMP, "zz", BODY), NOW), Some(401));
        assert_eq!(
            refused_with(&push("yesterday", SIGNATURE, BODY), NOW),
            Some(401)
        );
        let mut unsigned = push(TIMESTAMP, SIGNATURE, BODY);
        unsigned
            .headers
            .retain(|h| !h.name.eq_ignore_ascii_case(PUSH_SIGNATURE_HEADER));
        assert_eq!(refused_with(&unsigned, NOW), Some(401));
        let mut get = push(TIMESTAMP, SIGNATURE, BODY);
        get.method = "GET".into();
        assert_eq!(refused_with(&get, NOW), Some(405));
        // Authentic but replayed six minutes later, or from a clock far ahead.
        let request = push(TIMESTAMP, SIGNATURE, BODY);
        assert_eq!(refused_with(&request, NOW + 6 * 60_000), Some(403));
        assert_eq!(refused_with(&request, NOW - 6 * 60_000), Some(403));
        assert_eq!(refused_with(&request, NOW + 4 * 60_000), None);
        let response = refusal(401, "签名校验失败: X-Push-Signature");
        let body: Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(body["code"], "401");
    }

    #[test]
    fn a_missing_push_secret_is_an_error_not_a_refusal() {
        let request = push(TIMESTAMP, SIGNATURE, BODY);
        let failed = check_push(&request, NOW, |_| Err(permanent("no secret `push-secret`")));
        assert!(matches!(failed, Err(AdapterError::Permanent(_))));
    }

    #[test]
    fn unreadable_authentic_pushes_are_errors_naming_what_is_wrong() {
        for (body, needle) in [
            ("[]", "object"),
            ("{", "not JSON"),
            (r#"{"caseNo":"GA1","status":"20","statusTime":1}"#, "pushId"),
            (
                r#"{"pushId":"p","caseNo":"GA1","status":"20","statusTime":"x"}"#,
                "statusTime",
            ),
            (
                r#"{"pushId":"p","caseNo":"GA1","status":"99","statusTime":1}"#,
                "\"99\"",
            ),
        ] {
            match parse_push(body.as_bytes()) {
                Err(AdapterError::Permanent(r)) => {
                    assert!(r.message.contains(needle), "{body}: {}", r.message);
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let odd = r#"{"pushId":"p","caseNo":"GA1","unifiedCaseNo":"no spaces allowed","status":"90","statusTime":1,"remark":"撤回"}"#;
        let (_, ev) = parse_push(odd.as_bytes()).expect("readable");
        assert_eq!(ev.case_number, None);
        assert_eq!(ev.reason.as_deref(), Some("撤回"));
    }

    #[test]
    fn constant_time_comparison_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn acknowledgement_is_what_the_ministry_waits_for() {
        let ack = acknowledgement();
        assert_eq!(ack.status, 200);
        let body: Value = serde_json::from_slice(&ack.body).expect("JSON");
        assert_eq!(body["code"], "0");
    }

    #[test]
    fn readme_shows_the_mapping_and_status_tables() {
        let readme = include_str!("../README.md");
        for (unified, ministry, table, note) in FIELD_MAPPINGS {
            let row = format!(
                "| `{unified}` | `{ministry}` | {} | {} |",
                table.map_or("—".to_owned(), |t| format!("`{t}`")),
                note.unwrap_or("—")
            );
            assert!(readme.contains(&row), "README.md lacks {row}");
        }
        for row in STATUS.rows() {
            let line = format!("| {} | {} | {} |", row.code, row.label, row.stage);
            assert!(readme.contains(&line), "README.md lacks {line}");
        }
    }
}
