//! The pure half of the adapter: unified case ↔ market-regulation JSON, reply reading and
//! error classification. No host calls, so it compiles and runs natively (benchmarks, tests).

use serde_json::{Map, Value, json};
use yiwang_adapter_sdk::codes::{
    CodeTable, StatusRow, StatusTable, Unknown, UnknownStatus, applicant_kind_012,
};
use yiwang_adapter_sdk::dates::{self, MinistryDateFormat};
use yiwang_adapter_sdk::schema::{Case, CaseChange, ChangeKind, Decision, Material, Stage};
use yiwang_adapter_sdk::{
    AdapterError, Event, FieldMapping, Rejection, RetryableError, ambiguous, error, event,
    permanent, permanent_field, retryable,
};

/// The protocol archetype, as `describe` reports it.
pub const NETWORK_KIND: &str = "json-rest-token";

/// Login endpoint.
pub const LOGIN_PATH: &str = "/api/auth/login";
/// Submit endpoint.
pub const SUBMIT_PATH: &str = "/api/case/submit";
/// Query endpoint (by `bjbh` or `ywlsh`).
pub const QUERY_PATH: &str = "/api/case/query";
/// Withdraw endpoint.
pub const WITHDRAW_PATH: &str = "/api/case/withdraw";
/// Supplement endpoint.
pub const SUPPLEMENT_PATH: &str = "/api/case/supplement";
/// Change-feed endpoint.
pub const CHANGES_PATH: &str = "/api/case/changes";
/// The header carrying the login token.
pub const TOKEN_HEADER: &str = "X-Auth-Token";
/// Changes asked for per page of the feed, unless config `poll-page-size` says otherwise
/// (the ministry clamps it to 1–1000).
pub const CHANGES_PAGE: u64 = 100;
/// A cached token is not used within this many milliseconds of its expiry: a request sent
/// just before the deadline would arrive after it.
pub const TOKEN_MARGIN_MS: i64 = 60_000;

/// The item this adapter maps (enterprise establishment, 企业开办).
pub const ITEMS: &[(&str, &str)] = &[("SC-QYKB-001", "1.0")];

/// ID document types: this network takes both code sets A and B, so the table is the
/// identity on the nine unified codes. Anything else is refused, never passed through.
pub static ID_TYPE_AB: CodeTable = CodeTable::new(
    "id_type_ab",
    &[
        ("111", "111", "居民身份证"),
        ("113", "113", "户口簿"),
        ("414", "414", "普通护照"),
        ("513", "513", "往来港澳通行证"),
        ("990", "990", "其他"),
        ("001", "001", "统一社会信用代码"),
        ("099", "099", "其他法人证件"),
        ("516", "516", "港澳居民来往内地通行证"),
        ("999", "999", "其他自然人证件"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// Status codes (`bjzt`) of this network: the Jinan codes of DOMAIN.md plus `12` 撤回.
pub static STATUS: StatusTable = StatusTable::new(
    "status_scjg",
    &[
        StatusRow::new("1", Stage::Received, None, "已接件"),
        StatusRow::new("3", Stage::Accepted, None, "已受理"),
        StatusRow::new("4", Stage::Rejected, None, "不受理"),
        StatusRow::new("6", Stage::SupplementRequested, None, "补正"),
        StatusRow::new("8", Stage::UnderReview, None, "部门开始办理"),
        StatusRow::new("9", Stage::SpecialProcedureStarted, None, "特别程序开始"),
        StatusRow::new("10", Stage::SpecialProcedureEnded, None, "特别程序结束"),
        StatusRow::new(
            "11",
            Stage::Completed,
            Some(Decision::Approved),
            "办结(通过)",
        ),
        StatusRow::new("12", Stage::Withdrawn, None, "撤回"),
    ],
    UnknownStatus::Reject,
);

pub use yiwang_adapter_sdk::MappingRow;

/// Every field this adapter fills from the unified case (README.md shows the same table).
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "bjbh_tyjg", None, None),
    ("/item/code", "sxbm", None, None),
    ("/item/version", "sxbb", None, None),
    (
        "/applicant/kind",
        "sqrlx",
        Some("applicant_kind_012"),
        Some("0 natural person, 1 enterprise, 2 other"),
    ),
    ("/applicant/name", "sqrmc", None, None),
    (
        "/applicant/id_type",
        "bjsqrzjlxdm",
        Some("id_type_ab"),
        Some("sets A and B, unchanged"),
    ),
    ("/applicant/id_number", "zjhm", None, None),
    ("/applicant/contact/phone", "lxdh", None, None),
    (
        "/submitted_at",
        "sqsj",
        None,
        Some("yyyy-MM-dd HH:mm:ss, Beijing time"),
    ),
    (
        "/applicant/id_number",
        "tyshxydm",
        None,
        Some("when id_type is 001; required for enterprises"),
    ),
    (
        "/applicant/legal_representative",
        "fddbr",
        None,
        Some("optional"),
    ),
    ("/form", "bdxx", None, Some("the item's form object, as is")),
    ("/materials/*/name", "clxx[*].clmc", None, None),
    ("/materials/*/media_type", "clxx[*].clgs", None, None),
    ("/materials/*/sha256", "clxx[*].sha256", None, None),
    ("/materials/*/uri", "clxx[*].dz", None, None),
];

/// [`FIELD_MAPPINGS`] in the contract's shape.
pub fn field_mappings() -> Vec<FieldMapping> {
    yiwang_adapter_sdk::field_mappings(FIELD_MAPPINGS)
}

/// The unified field a ministry field name came from, for rejections (`zdmc`).
/// `clxx[1].clmc` → `/materials/1/name`. `None` for fields the case does not feed (`ywlsh`).
pub fn unified_pointer(ministry_field: &str) -> Option<String> {
    if ministry_field.trim() == "bdxx" {
        return Some("/form".to_owned());
    }
    yiwang_adapter_sdk::unified_pointer(FIELD_MAPPINGS, ministry_field)
}

/// The submit body for `case`. Code-table misses are permanent errors naming the unified
/// field; nothing is guessed.
pub fn submit_body(case: &Case, idempotency_key: &str) -> Result<Value, AdapterError> {
    let applicant = &case.applicant;
    let sqrlx = applicant_kind_012()
        .to_ministry(applicant.kind.as_str())
        .map_err(|e| permanent_field("/applicant/kind", None, e.to_string()))?;
    let id_type = ID_TYPE_AB
        .to_ministry(&applicant.id_type)
        .map_err(|e| permanent_field("/applicant/id_type", None, e.to_string()))?;
    let mut body = Map::new();
    let mut put = |k: &str, v: &str| {
        body.insert(k.to_owned(), Value::String(v.to_owned()));
    };
    put("ywlsh", idempotency_key);
    put("bjbh_tyjg", &case.case_number);
    put("sxbm", &case.item.code);
    put("sxbb", &case.item.version);
    put("sqrlx", sqrlx);
    put("sqrmc", &applicant.name);
    put("bjsqrzjlxdm", id_type);
    put("zjhm", &applicant.id_number);
    put("lxdh", &applicant.contact.phone);
    put(
        "sqsj",
        &dates::format(&case.submitted_at, MinistryDateFormat::DateTime),
    );
    if id_type == "001" {
        put("tyshxydm", &applicant.id_number);
    } else if sqrlx == "1" {
        return Err(permanent_field(
            "/applicant/id_type",
            None,
            format!(
                "an enterprise applicant needs a unified social credit code (id_type 001) for the ministry's tyshxydm; got id_type {id_type}"
            ),
        ));
    }
    if let Some(fddbr) = &applicant.legal_representative {
        put("fddbr", fddbr);
    }
    body.insert("bdxx".into(), Value::Object(case.form.clone()));
    body.insert("clxx".into(), materials(&case.materials));
    Ok(Value::Object(body))
}

fn materials(materials: &[Material]) -> Value {
    Value::Array(
        materials
            .iter()
            .map(|m| json!({"clmc": m.name, "clgs": m.media_type, "sha256": m.sha256, "dz": m.uri}))
            .collect(),
    )
}

/// The login body: placeholders the host fills with the network's secrets.
pub fn login_body() -> Value {
    json!({"username": "${secret:username}", "password": "${secret:password}"})
}

/// Serializes a body built from case data so that no `${secret:…}` placeholder can be
/// smuggled in by it: the host fills placeholders anywhere in a UTF-8 body, so a case whose
/// text contained one would have a secret written into the ministry's record. `$` only occurs
/// inside JSON strings, where `\u0024` means the same character.
pub fn case_body_bytes(body: &Value) -> Vec<u8> {
    body.to_string().replace('$', "\\u0024").into_bytes()
}

/// The JSON members that name the case to the ministry: its number (`bjbh`)
/// or the submit's idempotency key (`ywlsh`).
pub fn case_members(case: CaseRef<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    match case {
        CaseRef::Number(n) => m.insert("bjbh".into(), json!(n)),
        CaseRef::IdempotencyKey(k) => m.insert("ywlsh".into(), json!(k)),
    };
    m
}

/// The query body.
pub fn query_body(case: CaseRef<'_>) -> Value {
    Value::Object(case_members(case))
}

/// The withdraw or supplement body for a bureau-side change.
pub fn change_body(case: CaseRef<'_>, change: &CaseChange) -> (&'static str, Value) {
    let mut body = case_members(case);
    match &change.kind {
        ChangeKind::Withdraw { reason } => {
            body.insert("yy".into(), json!(reason));
            (WITHDRAW_PATH, Value::Object(body))
        }
        ChangeKind::Supplement { materials: m, .. } => {
            body.insert("clxx".into(), materials(m));
            (SUPPLEMENT_PATH, Value::Object(body))
        }
    }
}

/// The change-feed body.
pub fn changes_body(cursor: Option<&str>, page_size: u64) -> Value {
    json!({"since": cursor.unwrap_or(""), "limit": page_size})
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

pub use yiwang_adapter_sdk::{CaseRef, Effect, send_error};

/// The protocol's envelope `{"code", "msg", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `0000` on success.
    pub code: String,
    /// The ministry's message.
    pub msg: String,
    /// The payload (`null` on most errors).
    pub data: Value,
}

/// Reads an HTTP reply: transport status first (408/425/429/5xx retryable with Retry-After), then the
/// JSON envelope. A 2xx body that is not the envelope (an HTML page) is ambiguous when the
/// request may have acted, retryable otherwise.
pub fn read_reply(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    effect: Effect,
) -> Result<Reply, AdapterError> {
    if let Some(e) = error::classify_status(status, retry_after) {
        return Err(e);
    }
    let parsed = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let obj = v.as_object()?;
        Some(Reply {
            code: obj.get("code")?.as_str()?.to_owned(),
            msg: obj
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
        })
    });
    parsed.ok_or_else(|| {
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

/// The ministry field a business error names: `data.zdmc`, else the text after the last
/// `": "` of `msg`.
pub fn named_field(reply: &Reply) -> Option<String> {
    reply
        .data
        .get("zdmc")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            reply
                .msg
                .rsplit_once(": ")
                .map(|(_, f)| f.trim().to_owned())
        })
        .filter(|f| !f.is_empty())
}

/// Classifies a non-`0000` reply.
pub fn business_error(reply: &Reply) -> AdapterError {
    let code = reply.code.as_str();
    let msg = &reply.msg;
    match code {
        "1001" => rejection(
            code,
            None,
            format!("login refused ({msg}): fix the network's secrets `username` and `password`"),
        ),
        "1002" => AdapterError::Retryable(RetryableError {
            message: format!("token refused right after a fresh login ({msg})"),
            retry_after_ms: None,
        }),
        "2001" | "2002" | "2003" | "2004" | "2005" => {
            let ministry_field = named_field(reply);
            let field = ministry_field.as_deref().and_then(unified_pointer);
            let message = match &ministry_field {
                Some(f) => format!("{msg} (ministry field {f})"),
                None => msg.clone(),
            };
            rejection(code, field, message)
        }
        "3001" => rejection(code, None, format!("the ministry has no such case ({msg})")),
        "3002" => rejection(
            code,
            None,
            format!("not allowed at the case's current status ({msg})"),
        ),
        _ => rejection(code, None, format!("ministry error {code}: {msg}")),
    }
}

/// The login reply's token and its lifetime in seconds.
pub fn parse_login(data: &Value) -> Result<(String, i64), AdapterError> {
    let token = data
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| retryable("login reply has no token"))?;
    let expires_in = data.get("expires_in").and_then(Value::as_i64).unwrap_or(0);
    Ok((token.to_owned(), expires_in))
}

/// The cached token as stored in kv: `{"token", "expires_at_ms"}`.
pub fn token_record(token: &str, expires_at_ms: i64) -> String {
    json!({"token": token, "expires_at_ms": expires_at_ms}).to_string()
}

/// The cached token, if it is still good at `now_ms` (with [`TOKEN_MARGIN_MS`] to spare).
pub fn usable_token(record: &str, now_ms: i64) -> Option<String> {
    let v: Value = serde_json::from_str(record).ok()?;
    let expires = v.get("expires_at_ms")?.as_i64()?;
    let token = v.get("token")?.as_str()?;
    (now_ms.saturating_add(TOKEN_MARGIN_MS) < expires && !token.is_empty())
        .then(|| token.to_owned())
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

fn time(value: &str, format: MinistryDateFormat, field: &str) -> Result<String, AdapterError> {
    dates::parse(value, format)
        .map(|t| t.to_rfc3339())
        .map_err(|e| permanent(format!("ministry field {field}: {e}")))
}

/// One status of a case as an event. `bljg` (result) and `zzbh` (licence number) are the
/// values the ministry reports with it.
pub fn status_event(
    bjbh: &str,
    bjzt: &str,
    ztsj: &str,
    bljg: Option<&str>,
    zzbh: Option<&str>,
) -> Result<Event, AdapterError> {
    let mapped = STATUS.map(bjzt).map_err(|e| {
        permanent(format!(
            "case {bjbh}: ministry status code {bjzt:?} is unknown ({e}); refusing to guess a stage"
        ))
    })?;
    let mut ev = event(
        bjbh,
        mapped.wit_stage(),
        time(ztsj, MinistryDateFormat::Compact, "ztsj")?,
    );
    ev.decision = mapped.wit_decision();
    ev.raw_status = Some(bjzt.to_owned());
    match mapped.stage {
        Stage::Completed => {
            ev.certificate_number = zzbh.map(str::to_owned);
            ev.reason = bljg.map(str::to_owned);
        }
        Stage::Rejected => ev.reason = bljg.map(str::to_owned),
        _ => {}
    }
    Ok(ev)
}

/// The submit reply: the ministry case number and a `received` event at `slsj`.
pub fn parse_submit(data: &Value) -> Result<(String, Event), AdapterError> {
    let bjbh = text(data, "bjbh").ok_or_else(|| {
        ambiguous("submit reply has code 0000 but no bjbh: the case may be stored")
    })?;
    let slsj =
        text(data, "slsj").ok_or_else(|| ambiguous("submit reply has code 0000 but no slsj"))?;
    let mut ev = event(
        bjbh,
        yiwang_adapter_sdk::Stage::Received,
        time(slsj, MinistryDateFormat::DateTime, "slsj")?,
    );
    // A new case starts at status 1 (已接件), stamped with the acceptance time.
    ev.raw_status = Some("1".to_owned());
    Ok((bjbh.to_owned(), ev))
}

/// The query reply's history (`lsjl`), oldest first, as events.
pub fn parse_query(data: &Value) -> Result<Vec<Event>, AdapterError> {
    let bjbh = required_text(data, "bjbh", "query")?;
    let bljg = text(data, "bljg");
    let zzbh = text(data, "zzbh");
    let history = data.get("lsjl").and_then(Value::as_array);
    match history {
        Some(entries) if !entries.is_empty() => entries
            .iter()
            .map(|h| {
                status_event(
                    bjbh,
                    required_text(h, "bjzt", "query history")?,
                    required_text(h, "ztsj", "query history")?,
                    bljg,
                    zzbh,
                )
            })
            .collect(),
        _ => Ok(vec![status_event(
            bjbh,
            required_text(data, "bjzt", "query")?,
            required_text(data, "ztsj", "query")?,
            bljg,
            zzbh,
        )?]),
    }
}

/// The answer of withdraw or supplement: the case's status after the change.
pub fn parse_change_reply(data: &Value, change: &CaseChange) -> Result<Event, AdapterError> {
    let bjbh = required_text(data, "bjbh", "change")?;
    let mut ev = status_event(
        bjbh,
        required_text(data, "bjzt", "change")?,
        required_text(data, "ztsj", "change")?,
        None,
        None,
    )?;
    if let (ChangeKind::Withdraw { reason }, yiwang_adapter_sdk::Stage::Withdrawn) =
        (&change.kind, ev.stage)
    {
        ev.reason = Some(reason.clone());
    }
    Ok(ev)
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
                required_text(c, "bjbh", "changes")?,
                required_text(c, "bjzt", "changes")?,
                required_text(c, "ztsj", "changes")?,
                text(c, "bljg"),
                text(c, "zzbh"),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cursor = text(data, "cursor").map(str::to_owned);
    let has_more = data
        .get("has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((events, cursor, has_more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> Case {
        let json =
            include_str!("../../../adapters-sdk/schema/testdata/enterprise-establishment.json");
        serde_json::from_str(json).expect("testdata case parses")
    }

    #[test]
    fn maps_the_testdata_case() {
        let body = submit_body(&case(), "K-1").expect("maps");
        assert_eq!(body["ywlsh"], "K-1");
        assert_eq!(body["sqrlx"], "1");
        assert_eq!(body["bjsqrzjlxdm"], "001");
        assert_eq!(body["tyshxydm"], body["zjhm"]);
        assert_eq!(body["sqsj"], "2026-11-20 09:30:00");
        assert_eq!(body["clxx"][1]["clmc"], "公司章程");
    }

    #[test]
    fn unknown_codes_name_the_unified_field() {
        let mut c = case();
        c.applicant.id_type = "112".into();
        match submit_body(&c, "K") {
            Err(AdapterError::Permanent(r)) => {
                assert_eq!(r.field.as_deref(), Some("/applicant/id_type"));
            }
            other => panic!("{other:?}"),
        }
        let err = status_event("N", "7", "20240305093002", None, None).expect_err("unknown");
        assert!(matches!(err, AdapterError::Permanent(r) if r.message.contains("\"7\"")));
    }

    #[test]
    fn ministry_fields_map_back() {
        for (ministry, unified) in [
            ("zjhm", Some("/applicant/id_number")),
            ("sqsj", Some("/submitted_at")),
            ("tyshxydm", Some("/applicant/id_number")),
            ("clxx[1].clmc", Some("/materials/1/name")),
            ("ywlsh", None),
        ] {
            assert_eq!(unified_pointer(ministry).as_deref(), unified, "{ministry}");
        }
    }

    #[test]
    fn secret_placeholders_in_case_data_are_defused() {
        let bytes = case_body_bytes(&json!({"sqrmc": "${secret:password}"}));
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(!text.contains("${secret:"));
        let back: Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back["sqrmc"], "${secret:password}");
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
