//! The pure half of the adapter: unified case ↔ tax-registration JSON, request signing
//! (canonical string, nonce, query encoding), reply reading and error classification. No host
//! calls, so it compiles and runs natively (tests, benchmarks).

use serde_json::{Map, Value, json};
use yiwang_adapter_sdk::codes::{CodeTable, StatusRow, StatusTable, Unknown, UnknownStatus};
use yiwang_adapter_sdk::dates::{self, MinistryDateFormat};
// RFC 3986 unreserved characters pass, every other UTF-8 byte becomes `%XX`: the wire form
// (which signatures cover) is unambiguous, and `+` is sent as `%2B`.
use yiwang_adapter_sdk::http::percent_encode;
use yiwang_adapter_sdk::schema::{Case, Decision, Material, Stage};
use yiwang_adapter_sdk::{
    AdapterError, Event, FieldMapping, Rejection, RetryableError, ambiguous, error, event,
    permanent, permanent_field, retryable, sign,
};

/// The protocol archetype, as `describe` reports it.
pub const NETWORK_KIND: &str = "signed-open-api";

/// Submit endpoint (`POST`).
pub const SUBMIT_PATH: &str = "/openapi/tax/v1/registrations";
/// Status endpoint (`GET`, `?slbh=` or `?qqlsh=`).
pub const STATUS_PATH: &str = "/openapi/tax/v1/registrations/status";
/// Change-feed endpoint (`GET`, `?cursor=&limit=`).
pub const CHANGES_PATH: &str = "/openapi/tax/v1/registrations/changes";

/// Header carrying the application key.
pub const APP_KEY_HEADER: &str = "X-App-Key";
/// Header carrying the signing time (epoch milliseconds).
pub const TIMESTAMP_HEADER: &str = "X-Timestamp";
/// Header carrying the nonce.
pub const NONCE_HEADER: &str = "X-Nonce";
/// Header carrying the signature.
pub const SIGN_HEADER: &str = "X-Sign";
/// The content type of submit bodies.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Adapter configuration key of the application key (not a secret: it travels in clear).
pub const APP_KEY_CONFIG: &str = "app-key";
/// Name of the secret the host signs with; the adapter never sees its value.
pub const APP_SECRET: &str = "app-secret";
/// The chained-route input carrying the market-regulation licence number.
pub const LICENCE_INPUT: &str = "licence-number";

/// Changes asked for per page of the feed, unless config `poll-page-size` says otherwise
/// (the ministry clamps it to 1–1000).
pub const CHANGES_PAGE: u64 = 100;

/// The gateway refused the nonce as already used.
pub const REPLAY: &str = "GW1004";
/// The ministry has no such case.
pub const NOT_FOUND: &str = "SW3001";

/// The item this adapter maps (enterprise establishment, 企业开办: its tax-registration leg).
pub const ITEMS: &[(&str, &str)] = &[("SC-QYKB-001", "1.0")];

/// Taxpayer kind (`nsrlx`): this network's own codes for the unified party kinds.
pub static TAXPAYER_KIND: CodeTable = CodeTable::new(
    "taxpayer_kind_sw",
    &[
        ("enterprise", "10", "单位纳税人"),
        ("natural_person", "20", "个体/自然人"),
        ("other_organization", "30", "其他组织"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// ID document types (`zjlx`): this network has its own codes. Set-A codes without a finer
/// tax code (113 户口簿, 513 往来港澳通行证, 990 其他) and 999 become `299` 其他个人证件; 513 is
/// not 210, which is a different permit held by different people. Unknown codes are refused.
pub static ID_TYPE: CodeTable = CodeTable::new(
    "id_type_sw",
    &[
        ("001", "101", "统一社会信用代码"),
        ("099", "199", "其他单位证件"),
        ("111", "201", "居民身份证"),
        ("516", "210", "港澳居民来往内地通行证"),
        ("414", "227", "中国护照"),
        ("999", "299", "其他个人证件"),
        ("113", "299", "户口簿"),
        ("513", "299", "往来港澳通行证"),
        ("990", "299", "其他"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// Status codes (`ztdm`) of this network.
pub static STATUS: StatusTable = StatusTable::new(
    "status_sw",
    &[
        StatusRow::new("1000", Stage::Received, None, "已提交"),
        StatusRow::new("2000", Stage::Accepted, None, "已受理"),
        StatusRow::new("2100", Stage::Rejected, None, "不予受理"),
        StatusRow::new("3000", Stage::UnderReview, None, "税务审核中"),
        StatusRow::new("3100", Stage::SupplementRequested, None, "待补正"),
        StatusRow::new(
            "4000",
            Stage::Completed,
            Some(Decision::Approved),
            "登记完成",
        ),
        StatusRow::new("4100", Stage::Decided, Some(Decision::Denied), "不予登记"),
        StatusRow::new("9000", Stage::Withdrawn, None, "已作废"),
    ],
    UnknownStatus::Reject,
);

pub use yiwang_adapter_sdk::MappingRow;

/// Every field this adapter fills from the unified case (README.md shows the same table).
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "tybh", None, None),
    ("/item/code", "sxbm", None, None),
    ("/item/version", "sxbb", None, None),
    (
        "/applicant/kind",
        "nsrlx",
        Some("taxpayer_kind_sw"),
        Some("10 unit (enterprise), 20 individual, 30 other organisation"),
    ),
    ("/applicant/name", "nsrmc", None, None),
    (
        "/applicant/id_type",
        "zjlx",
        Some("id_type_sw"),
        Some("this network's own codes; 113, 513, 990, 999 become 299"),
    ),
    ("/applicant/id_number", "zjhm", None, None),
    (
        "/applicant/id_number",
        "nsrsbh",
        None,
        Some("when id_type is 001; required for enterprises"),
    ),
    (
        "/applicant/legal_representative",
        "fddbr",
        None,
        Some("required for enterprises"),
    ),
    ("/applicant/contact/phone", "lxdh", None, None),
    (
        "/form/registered_address",
        "scjydz",
        None,
        Some("a non-blank string"),
    ),
    (
        "/applicant/contact/address",
        "scjydz",
        None,
        Some("when the form has no registered_address"),
    ),
    ("/form/business_scope", "jyfw", None, Some("optional")),
    (
        "/submitted_at",
        "sqsj",
        None,
        Some("epoch milliseconds, a JSON number"),
    ),
    ("/materials/*/name", "fjxx[*].fjmc", None, None),
    ("/materials/*/media_type", "fjxx[*].wjlx", None, None),
    ("/materials/*/sha256", "fjxx[*].sha256", None, None),
    ("/materials/*/uri", "fjxx[*].url", None, None),
];

/// [`FIELD_MAPPINGS`] in the contract's shape.
pub fn field_mappings() -> Vec<FieldMapping> {
    yiwang_adapter_sdk::field_mappings(FIELD_MAPPINGS)
}

/// The unified field a ministry field name came from, for rejections (`data.field`).
/// `fjxx[1].fjmc` → `/materials/1/name`. `None` for fields the case does not feed (`qqlsh`,
/// and `yyzzbh`, which comes from the route's input).
pub fn unified_pointer(ministry_field: &str) -> Option<String> {
    yiwang_adapter_sdk::unified_pointer(FIELD_MAPPINGS, ministry_field)
}

fn form_text<'a>(case: &'a Case, key: &str) -> Option<&'a str> {
    case.form
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The submit body for `case`. `licence_number` is the route's `licence-number` input (the
/// market-regulation licence the tax network requires). Code-table misses and missing
/// required data are permanent errors naming the unified field (or the input); nothing is
/// guessed.
pub fn submit_body(
    case: &Case,
    idempotency_key: &str,
    licence_number: Option<&str>,
) -> Result<Value, AdapterError> {
    let licence = licence_number
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            permanent(format!(
                "no input `{LICENCE_INPUT}`: the tax network requires the market-regulation licence number as yyzzbh, so this network must follow market-regulation in the route and receive its licence number"
            ))
        })?;
    let applicant = &case.applicant;
    let nsrlx = TAXPAYER_KIND
        .to_ministry(applicant.kind.as_str())
        .map_err(|e| permanent_field("/applicant/kind", None, e.to_string()))?;
    let zjlx = ID_TYPE
        .to_ministry(&applicant.id_type)
        .map_err(|e| permanent_field("/applicant/id_type", None, e.to_string()))?;
    let address = form_text(case, "registered_address")
        .or(applicant.contact.address.as_deref().map(str::trim))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            permanent_field(
                "/form/registered_address",
                None,
                "the tax network requires a business address (scjydz): the form has no registered_address and the applicant no contact address",
            )
        })?;
    let mut body = Map::new();
    let mut put = |k: &str, v: &str| {
        body.insert(k.to_owned(), Value::String(v.to_owned()));
    };
    put("qqlsh", idempotency_key);
    put("tybh", &case.case_number);
    put("sxbm", &case.item.code);
    put("sxbb", &case.item.version);
    put("nsrlx", nsrlx);
    put("nsrmc", &applicant.name);
    put("zjlx", zjlx);
    put("zjhm", &applicant.id_number);
    put("yyzzbh", licence);
    put("lxdh", &applicant.contact.phone);
    put("scjydz", address);
    if applicant.id_type == "001" {
        put("nsrsbh", &applicant.id_number);
    } else if nsrlx == "10" {
        return Err(permanent_field(
            "/applicant/id_type",
            None,
            format!(
                "an enterprise taxpayer needs a unified social credit code (id_type 001) for the ministry's nsrsbh; got id_type {}",
                applicant.id_type
            ),
        ));
    }
    match applicant.legal_representative.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => put("fddbr", name),
        _ if nsrlx == "10" => {
            return Err(permanent_field(
                "/applicant/legal_representative",
                None,
                "an enterprise taxpayer needs a legal representative (the ministry's fddbr)",
            ));
        }
        _ => {}
    }
    if let Some(scope) = form_text(case, "business_scope") {
        put("jyfw", scope);
    }
    body.insert("sqsj".into(), json!(case.submitted_at.timestamp_millis()));
    body.insert("fjxx".into(), attachments(&case.materials));
    Ok(Value::Object(body))
}

fn attachments(materials: &[Material]) -> Value {
    Value::Array(
        materials
            .iter()
            .map(
                |m| json!({"fjmc": m.name, "wjlx": m.media_type, "sha256": m.sha256, "url": m.uri}),
            )
            .collect(),
    )
}

/// Serializes a body built from case data so that no `${secret:…}` placeholder can be
/// smuggled in by it (defence in depth: this adapter only ever uses `send`, which fills
/// nothing). `$` only occurs inside JSON strings, where `\u0024` means the same character.
pub fn case_body_bytes(body: &Value) -> Vec<u8> {
    body.to_string().replace('$', "\\u0024").into_bytes()
}

pub use yiwang_adapter_sdk::{CaseRef, Effect, send_error};

/// The status request for a case: by its number (`slbh`) or by the submit's idempotency key
/// (`qqlsh`).
pub fn status_target(case: CaseRef<'_>) -> String {
    match case {
        CaseRef::Number(n) => format!("{STATUS_PATH}?slbh={}", percent_encode(n)),
        CaseRef::IdempotencyKey(k) => format!("{STATUS_PATH}?qqlsh={}", percent_encode(k)),
    }
}

/// The change-feed request for one page.
pub fn changes_target(cursor: Option<&str>, page_size: u64) -> String {
    match cursor {
        Some(c) => format!(
            "{CHANGES_PATH}?cursor={}&limit={page_size}",
            percent_encode(c)
        ),
        None => format!("{CHANGES_PATH}?limit={page_size}"),
    }
}

/// The page size from config `poll-page-size`; a value that is not 1–1000 is a deployment
/// error, reported rather than silently replaced.
pub fn page_size(config: Option<&str>) -> Result<u64, AdapterError> {
    match config {
        None => Ok(CHANGES_PAGE),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                permanent(format!(
                    "adapter configuration `poll-page-size` = {v:?} is not a number from 1 to 1000"
                ))
            }),
    }
}

/// The string the host signs for a request to `target` (path with optional query, exactly as
/// sent): the SDK's canonical string of the signed open-API archetype.
pub fn canonical(
    method: &str,
    target: &str,
    app_key: &str,
    timestamp_ms: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    sign::canonical_string(
        method,
        path,
        &sign::query_pairs(query),
        app_key,
        timestamp_ms,
        nonce,
        &sign::sha256_hex(body),
    )
}

/// A nonce for one request: 32 hex digits of SHA-256 over what makes the request unique.
/// The sandbox has no randomness the fixtures could reproduce, so it is derived: `seed` (the
/// idempotency key, case reference or cursor), the signing time and `seq` (a per-network
/// counter kept in kv, bumped for every request). Two requests share a nonce only if all
/// three agree; the gateway then refuses the second as a replay, which is safe to resend.
pub fn nonce(seed: &str, timestamp_ms: i64, seq: u64) -> String {
    sign::sha256_hex(format!("{seed}\n{timestamp_ms}\n{seq}").as_bytes())
        .chars()
        .take(32)
        .collect()
}

/// Lowercase hex of a signature tag.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The protocol's envelope `{"success", "code", "message", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `true` only with code `SW0000`.
    pub success: bool,
    /// `SW0000`, a gateway code (`GW…`) or a business code (`SW…`).
    pub code: String,
    /// The ministry's message.
    pub message: String,
    /// The payload (`{"field"}` or `null` on errors).
    pub data: Value,
}

fn envelope(body: &[u8]) -> Option<Reply> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let obj = v.as_object()?;
    Some(Reply {
        success: obj.get("success")?.as_bool()?,
        code: obj.get("code")?.as_str()?.to_owned(),
        message: obj
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        data: obj.get("data").cloned().unwrap_or(Value::Null),
    })
}

/// Reads an HTTP reply. A 401 carrying the envelope is the gateway refusing the signature
/// and is classified by its code, not as a plain 4xx; otherwise the transport status first
/// (408/425/429/5xx retryable with Retry-After), then the envelope. A 2xx body that is not the
/// envelope (an HTML page) is ambiguous when the request may have acted, retryable otherwise.
pub fn read_reply(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    effect: Effect,
) -> Result<Reply, AdapterError> {
    if status == 401
        && let Some(reply) = envelope(body)
    {
        return Ok(reply);
    }
    if let Some(e) = error::classify_status(status, retry_after) {
        return Err(e);
    }
    envelope(body).ok_or_else(|| {
        unusable(
            effect,
            &format!("HTTP {status} without the protocol's JSON envelope"),
            body,
        )
    })
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

/// The ministry field (or header) an error names: `data.field`, else the text after the last
/// `": "` of `message`.
pub fn named_field(reply: &Reply) -> Option<String> {
    reply
        .data
        .get("field")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            reply
                .message
                .rsplit_once(": ")
                .map(|(_, f)| f.trim().to_owned())
        })
        .filter(|f| !f.is_empty())
}

/// Classifies an unsuccessful reply. `signed_at_ms` is the `X-Timestamp` the request carried,
/// to report the clock difference on a timestamp refusal.
pub fn business_error(reply: &Reply, signed_at_ms: i64) -> AdapterError {
    let code = reply.code.as_str();
    let msg = &reply.message;
    match code {
        "GW1001" => rejection(
            code,
            None,
            format!(
                "the gateway refused the signature headers ({msg}): adapter and network disagree on the signing protocol"
            ),
        ),
        "GW1002" => rejection(
            code,
            None,
            format!(
                "the gateway does not know the app key ({msg}): fix the adapter configuration `{APP_KEY_CONFIG}`"
            ),
        ),
        "GW1003" => {
            let server = reply.data.get("server_time").and_then(Value::as_i64);
            let skew = server.map_or_else(
                || "by more than 5 minutes".to_owned(),
                |s| format!("by {} ms", signed_at_ms.saturating_sub(s)),
            );
            AdapterError::Retryable(RetryableError {
                message: format!(
                    "the gateway refused the timestamp ({msg}): the host clock differs from the ministry's {skew}; nothing was done, fix the host clock"
                ),
                retry_after_ms: None,
            })
        }
        REPLAY => AdapterError::Retryable(RetryableError {
            message: format!(
                "the gateway refused the nonce as a replay twice ({msg}); nothing was done, the next attempt signs with a fresh nonce"
            ),
            retry_after_ms: None,
        }),
        "GW1005" => rejection(
            code,
            None,
            format!(
                "the gateway refused the signature ({msg}): the secret `{APP_SECRET}` is not the app secret of `{APP_KEY_CONFIG}`"
            ),
        ),
        "SW2001" | "SW2002" | "SW2003" | "SW2004" => {
            let ministry_field = named_field(reply);
            let field = ministry_field.as_deref().and_then(unified_pointer);
            let message = match ministry_field.as_deref() {
                Some("yyzzbh") => {
                    format!("{msg} (ministry field yyzzbh, from the input `{LICENCE_INPUT}`)")
                }
                Some(f) => format!("{msg} (ministry field {f})"),
                None => msg.clone(),
            };
            rejection(code, field, message)
        }
        NOT_FOUND => rejection(code, None, format!("the ministry has no such case ({msg})")),
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
    text(v, key).ok_or_else(|| permanent(format!("{what}: the ministry's reply has no `{key}`")))
}

/// An epoch-milliseconds number as RFC 3339 in Beijing time.
fn time(v: &Value, key: &str, what: &str) -> Result<String, AdapterError> {
    let millis = v
        .get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| permanent(format!("{what}: `{key}` is not epoch milliseconds")))?;
    dates::parse(&millis.to_string(), MinistryDateFormat::EpochMillis)
        .map(|t| t.to_rfc3339())
        .map_err(|e| permanent(format!("ministry field {key}: {e}")))
}

/// One status of a case as an event. `bljg` (outcome) and `swdjzh` (tax registration
/// number) are the values the ministry reports with it.
pub fn status_event(
    slbh: &str,
    ztdm: &str,
    at: String,
    bljg: Option<&str>,
    swdjzh: Option<&str>,
) -> Result<Event, AdapterError> {
    let mapped = STATUS.map(ztdm).map_err(|e| {
        permanent(format!(
            "case {slbh}: ministry status code {ztdm:?} is unknown ({e}); refusing to guess a stage"
        ))
    })?;
    let mut ev = event(slbh, mapped.wit_stage(), at);
    ev.decision = mapped.wit_decision();
    ev.raw_status = Some(ztdm.to_owned());
    match mapped.stage {
        Stage::Completed => {
            ev.certificate_number = swdjzh.map(str::to_owned);
            ev.reason = bljg.map(str::to_owned);
        }
        Stage::Rejected | Stage::Decided => ev.reason = bljg.map(str::to_owned),
        _ => {}
    }
    Ok(ev)
}

/// The submit reply: the ministry case number and a `received` event at `slsj`.
pub fn parse_submit(data: &Value) -> Result<(String, Event), AdapterError> {
    let slbh = text(data, "slbh").ok_or_else(|| {
        ambiguous("submit reply has code SW0000 but no slbh: the case may be stored")
    })?;
    let at = time(data, "slsj", "submit")
        .map_err(|_| ambiguous("submit reply has code SW0000 but no usable slsj"))?;
    let mut ev = event(slbh, yiwang_adapter_sdk::Stage::Received, at);
    // A new case starts at status 1000 (已提交), stamped with the acceptance time.
    ev.raw_status = Some("1000".to_owned());
    Ok((slbh.to_owned(), ev))
}

/// The status reply's history (`lsjl`), oldest first, as events.
pub fn parse_query(data: &Value) -> Result<Vec<Event>, AdapterError> {
    let slbh = required_text(data, "slbh", "status")?;
    let bljg = text(data, "bljg");
    let swdjzh = text(data, "swdjzh");
    match data.get("lsjl").and_then(Value::as_array) {
        Some(entries) if !entries.is_empty() => entries
            .iter()
            .map(|h| {
                status_event(
                    slbh,
                    required_text(h, "ztdm", "status history")?,
                    time(h, "ztsj", "status history")?,
                    bljg,
                    swdjzh,
                )
            })
            .collect(),
        _ => Ok(vec![status_event(
            slbh,
            required_text(data, "ztdm", "status")?,
            time(data, "ztsj", "status")?,
            bljg,
            swdjzh,
        )?]),
    }
}

/// One page of the change feed: events, the next cursor, and whether more are waiting.
pub fn parse_changes(data: &Value) -> Result<(Vec<Event>, Option<String>, bool), AdapterError> {
    let events = data
        .get("changes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            status_event(
                required_text(c, "slbh", "changes")?,
                required_text(c, "ztdm", "changes")?,
                time(c, "ztsj", "changes")?,
                text(c, "bljg"),
                text(c, "swdjzh"),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cursor = text(data, "next_cursor").map(str::to_owned);
    let has_more = data
        .get("has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((events, cursor, has_more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yiwang_adapter_sdk::schema::PartyKind;

    fn case() -> Case {
        let json =
            include_str!("../../../adapters-sdk/schema/testdata/enterprise-establishment.json");
        serde_json::from_str(json).expect("testdata case parses")
    }

    fn permanent_field_of(result: Result<Value, AdapterError>) -> Option<String> {
        match result {
            Err(AdapterError::Permanent(r)) => r.field,
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[test]
    fn maps_the_testdata_case() {
        let body = submit_body(&case(), "K-1", Some("SCJGZZ00000001")).expect("maps");
        assert_eq!(body["qqlsh"], "K-1");
        assert_eq!(body["tybh"], "FZGL-2026-001234");
        assert_eq!(body["nsrlx"], "10");
        assert_eq!(body["zjlx"], "101");
        assert_eq!(body["nsrsbh"], body["zjhm"]);
        assert_eq!(body["yyzzbh"], "SCJGZZ00000001");
        assert_eq!(body["fddbr"], "陈建华");
        assert_eq!(
            body["scjydz"],
            "福建省福州市鼓楼区五四路128号恒力城12层1201室"
        );
        assert!(
            body["jyfw"]
                .as_str()
                .is_some_and(|s| s.contains("软件开发"))
        );
        // 2026-11-20T09:30:00+08:00
        assert_eq!(body["sqsj"], 1_795_138_200_000_i64);
        assert_eq!(body["fjxx"][1]["fjmc"], "公司章程");
        assert_eq!(body["fjxx"][0]["url"], case().materials[0].uri);
    }

    #[test]
    fn a_missing_licence_input_is_permanent_and_names_the_input() {
        for missing in [None, Some(""), Some("  ")] {
            match submit_body(&case(), "K", missing) {
                Err(AdapterError::Permanent(r)) => {
                    assert!(r.message.contains("`licence-number`"), "{}", r.message);
                    assert_eq!(r.field, None);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn enterprises_need_a_credit_code_and_a_representative() {
        let mut c = case();
        c.applicant.id_type = "111".into();
        assert_eq!(
            permanent_field_of(submit_body(&c, "K", Some("L"))).as_deref(),
            Some("/applicant/id_type")
        );
        let mut c = case();
        c.applicant.legal_representative = None;
        assert_eq!(
            permanent_field_of(submit_body(&c, "K", Some("L"))).as_deref(),
            Some("/applicant/legal_representative")
        );
        // A natural person needs neither; set-A 990 becomes 299.
        let mut c = case();
        c.applicant.kind = PartyKind::NaturalPerson;
        c.applicant.id_type = "990".into();
        c.applicant.legal_representative = None;
        let body = submit_body(&c, "K", Some("L")).expect("maps");
        assert_eq!(
            (body["nsrlx"].as_str(), body["zjlx"].as_str()),
            (Some("20"), Some("299"))
        );
        assert!(body.get("nsrsbh").is_none() && body.get("fddbr").is_none());
    }

    #[test]
    fn the_address_comes_from_the_form_or_the_contact() {
        let mut c = case();
        c.form.remove("registered_address");
        c.applicant.contact.address = Some("福州市鼓楼区东街1号".into());
        let body = submit_body(&c, "K", Some("L")).expect("maps");
        assert_eq!(body["scjydz"], "福州市鼓楼区东街1号");
        c.applicant.contact.address = None;
        assert_eq!(
            permanent_field_of(submit_body(&c, "K", Some("L"))).as_deref(),
            Some("/form/registered_address")
        );
    }

    #[test]
    fn unknown_codes_name_the_unified_field() {
        let mut c = case();
        c.applicant.id_type = "112".into();
        assert_eq!(
            permanent_field_of(submit_body(&c, "K", Some("L"))).as_deref(),
            Some("/applicant/id_type")
        );
        let err = status_event("N", "5000", "x".into(), None, None).expect_err("unknown");
        assert!(matches!(err, AdapterError::Permanent(r) if r.message.contains("\"5000\"")));
    }

    #[test]
    fn ministry_fields_map_back() {
        for (ministry, unified) in [
            ("zjhm", Some("/applicant/id_number")),
            ("nsrsbh", Some("/applicant/id_number")),
            ("sqsj", Some("/submitted_at")),
            ("scjydz", Some("/form/registered_address")),
            ("fjxx[1].fjmc", Some("/materials/1/name")),
            ("fjxx[0].url", Some("/materials/0/uri")),
            ("yyzzbh", None),
            ("qqlsh", None),
        ] {
            assert_eq!(unified_pointer(ministry).as_deref(), unified, "{ministry}");
        }
    }

    #[test]
    fn canonical_string_and_query_encoding() {
        let target = status_target(CaseRef::IdempotencyKey("YW/1 +税"));
        assert_eq!(
            target,
            "/openapi/tax/v1/registrations/status?qqlsh=YW%2F1%20%2B%E7%A8%8E"
        );
        let c = canonical(
            "GET",
            &changes_target(Some("17"), 50),
            "yiwang-app",
            1_795_224_600_000,
            "5b1f0c2a9e8d4f7a6c3b2e1d0f9a8b7c",
            b"",
        );
        // The example of PROTOCOLS.md ("Signing"), signed there with the demo secret.
        assert_eq!(
            c,
            "GET\n/openapi/tax/v1/registrations/changes\ncursor=17&limit=50\nyiwang-app\n1795224600000\n5b1f0c2a9e8d4f7a6c3b2e1d0f9a8b7c\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sign::hmac_sha256_hex(b"sw-demo-secret-7f3a9c1e5b2d", c.as_bytes()),
            "b3518ce3ddb29765557d3252724b06980f5eb0fb0a6d450ba639dd76e3b05e5a"
        );
        assert_eq!(
            changes_target(None, 100),
            format!("{CHANGES_PATH}?limit=100")
        );
    }

    #[test]
    fn nonces_are_distinct_and_printable() {
        let a = nonce("K", 1, 1);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, nonce("K", 1, 2));
        assert_ne!(a, nonce("K", 2, 1));
        assert_ne!(a, nonce("L", 1, 1));
        assert_eq!(to_hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn gateway_refusals_are_read_from_a_401_and_classified() {
        let body = r#"{"success":false,"code":"GW1003","message":"时间戳超出允许范围(±300秒): X-Timestamp","data":{"field":"X-Timestamp","server_time":1000}}"#;
        let reply = read_reply(401, None, body.as_bytes(), Effect::MayAct).expect("envelope");
        match business_error(&reply, 1_361_000) {
            AdapterError::Retryable(r) => {
                assert!(r.message.contains("by 1360000 ms"), "{}", r.message)
            }
            other => panic!("{other:?}"),
        }
        for (code, retryable) in [
            ("GW1001", false),
            ("GW1002", false),
            ("GW1004", true),
            ("GW1005", false),
        ] {
            let reply = Reply {
                success: false,
                code: code.into(),
                message: "x".into(),
                data: Value::Null,
            };
            let err = business_error(&reply, 0);
            assert_eq!(
                matches!(err, AdapterError::Retryable(_)),
                retryable,
                "{code}: {err:?}"
            );
        }
        // A 401 without the envelope is a plain permanent 4xx; HTML with 200 depends on effect.
        assert!(matches!(
            read_reply(401, None, b"<html/>", Effect::ReadOnly),
            Err(AdapterError::Permanent(_))
        ));
        assert!(matches!(
            read_reply(200, None, b"<html/>", Effect::MayAct),
            Err(AdapterError::Ambiguous(_))
        ));
        assert!(matches!(
            read_reply(200, None, b"<html/>", Effect::ReadOnly),
            Err(AdapterError::Retryable(_))
        ));
        match read_reply(503, Some("2"), b"<html/>", Effect::MayAct) {
            Err(AdapterError::Retryable(r)) => assert_eq!(r.retry_after_ms, Some(2000)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn business_errors_name_the_unified_field() {
        let reply = Reply {
            success: false,
            code: "SW2004".into(),
            message: "字段校验不通过: nsrsbh".into(),
            data: json!({"field": "nsrsbh"}),
        };
        match business_error(&reply, 0) {
            AdapterError::Permanent(r) => {
                assert_eq!(r.field.as_deref(), Some("/applicant/id_number"));
                assert_eq!(r.code.as_deref(), Some("SW2004"));
            }
            other => panic!("{other:?}"),
        }
        let reply = Reply {
            success: false,
            code: "SW2001".into(),
            message: "缺少必填字段: yyzzbh".into(),
            data: Value::Null,
        };
        match business_error(&reply, 0) {
            AdapterError::Permanent(r) => {
                assert_eq!(r.field, None);
                assert!(r.message.contains("licence-number"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_become_events() {
        let data = json!({"slbh": "SW1", "slsj": 1_795_224_602_123_i64});
        let (number, ev) = parse_submit(&data).expect("receipt");
        assert_eq!(number, "SW1");
        assert_eq!(ev.at, "2026-11-21T09:30:02.123+08:00");
        assert!(matches!(
            parse_submit(&json!({"slsj": 1})),
            Err(AdapterError::Ambiguous(_))
        ));
        let data = json!({"slbh": "SW1", "ztdm": "4000", "ztsj": 3, "bljg": "准予登记", "swdjzh": "SWDJ1",
            "lsjl": [{"ztdm": "1000", "ztsj": 1}, {"ztdm": "4000", "ztsj": 3}]});
        let events = parse_query(&data).expect("history");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].certificate_number.as_deref(), Some("SWDJ1"));
        assert_eq!(events[1].reason.as_deref(), Some("准予登记"));
        assert_eq!(events[0].certificate_number, None);
        let page = json!({"changes": [{"slbh": "SW1", "ztdm": "4100", "ztsj": 5, "bljg": "不予登记"}],
            "next_cursor": "9", "has_more": true});
        let (events, cursor, more) = parse_changes(&page).expect("page");
        assert_eq!(events[0].reason.as_deref(), Some("不予登记"));
        assert_eq!((cursor.as_deref(), more), (Some("9"), true));
    }

    #[test]
    fn secret_placeholders_in_case_data_are_defused() {
        let text = String::from_utf8(case_body_bytes(&json!({"nsrmc": "${secret:app-secret}"})))
            .expect("utf-8");
        assert!(!text.contains("${secret:"));
        let back: Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back["nsrmc"], "${secret:app-secret}");
    }

    #[test]
    fn readme_shows_the_mapping_table() {
        let readme = include_str!("../README.md");
        for (unified, ministry, table, note) in FIELD_MAPPINGS {
            let row = format!(
                "| `{unified}` | `{ministry}` | {} | {} |",
                table.map_or("—".to_owned(), |t| format!("`{t}`")),
                note.unwrap_or("—")
            );
            assert!(readme.contains(&row), "README.md lacks {row}");
        }
    }
}
