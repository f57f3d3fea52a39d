//! Archetype 5: callbacks, public-security seal-engraving filing (公安 刻章备案) style. The
//! business API is plain JSON behind a static API key; status changes are pushed, signed, to
//! the gateway's callback URL and retried until acknowledged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::faults::{FaultSettings, Faults};
use crate::network::{BusinessRequest, Network, Protocol};
use crate::reply::{self, Reply};
use crate::store::{Change, SimCase, StatusModel, Store};
use crate::{SimConfig, lock};

/// Status codes of the seal-filing system: the vendor's own two-digit codes.
pub(crate) static STATUSES: StatusModel = StatusModel {
    codes: &[
        ("10", "已接收"),
        ("20", "已受理"),
        ("25", "不予受理"),
        ("30", "待补正"),
        ("40", "审核中"),
        ("50", "备案通过"),
        ("60", "已制章"),
        ("70", "已办结"),
        ("80", "不予备案"),
        ("90", "已撤回"),
    ],
    initial: "10",
    transitions: &[
        ("10", "20"),
        ("20", "40"),
        ("40", "50"),
        ("50", "60"),
        ("60", "70"),
        ("30", "40"),
    ],
    paused: &["30"],
    withdrawn: "90",
    results: &[("50", "准予备案"), ("25", "不予受理"), ("80", "不予备案")],
    certificate_at: "60",
    certificate_number: |prefix, seq, at| format!("{prefix}YZ{}{seq:06}", at.format("%Y")),
};

/// `seals[*].sealType`: the seals one filing may cover.
pub(crate) const SEAL_TYPES: &[&str] = &["01", "02", "03", "04", "05"];
/// `agentIdType`: this vendor's own ID document codes for the agent (经办人).
pub(crate) const AGENT_ID_TYPES: &[&str] = &["1", "2", "3", "9"];
/// Checked in this order; the first one missing is reported.
pub(crate) const REQUIRED: &[&str] = &[
    "requestId",
    "unifiedCaseNo",
    "itemCode",
    "itemVersion",
    "licenceNo",
    "entName",
    "uscc",
    "legalRep",
    "contactPhone",
    "applyTime",
    "seals",
];
/// Given together or not at all, checked in this order.
const AGENT_FIELDS: &[&str] = &["agentName", "agentIdType", "agentIdNo"];
/// The USCC alphabet (GB 32100: no I, O, S, V, Z).
const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// The header every business request authenticates with.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";
/// Submit (`POST`) and query by idempotency key (`GET ?requestId=`).
pub(crate) const FILINGS: &str = "/openapi/v1/seal-filings";

/// Push headers.
pub(crate) const PUSH_ID_HEADER: &str = "X-Push-Id";
pub(crate) const PUSH_TIMESTAMP_HEADER: &str = "X-Push-Timestamp";
pub(crate) const PUSH_SIGNATURE_HEADER: &str = "X-Push-Signature";
/// How long one push attempt may take (connect, send, read the acknowledgement).
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest acknowledgement body read; a receiver answering more is not acknowledging.
const MAX_ACK_BODY: usize = 64 * 1024;
/// How long a push held back by `push_reorder_next` waits for a push to overtake it.
pub(crate) const REORDER_HOLD: Duration = Duration::from_secs(2);

pub(crate) struct Callback;

impl Protocol for Callback {
    fn statuses(&self) -> &'static StatusModel {
        &STATUSES
    }

    fn handle(&self, net: &Network, req: &BusinessRequest) -> Reply {
        let Some(route) = Route::of(&req.path) else {
            return reply::not_found();
        };
        let get = req.method == Method::GET;
        let allowed = match route {
            // The collection takes a submit (POST) and a query by idempotency key (GET).
            Route::Filings => get || req.method == Method::POST,
            Route::Filing(_) => get,
            Route::Withdraw(_) | Route::Supplement(_) => req.method == Method::POST,
        };
        if !allowed {
            return reply::method_not_allowed();
        }
        // The key is checked before the body is looked at: a refused request changes nothing.
        let key = req
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if key.is_empty() || key != net.cfg.api_key {
            return answer(Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "A0401",
                "API密钥无效",
            )));
        }
        answer(match (route, get) {
            (Route::Filings, true) => query_by_key(net, req.query.as_deref()),
            (Route::Filings, false) => parse_object(&req.body).and_then(|b| submit(net, b)),
            (Route::Filing(n), _) => query_by_number(net, &n),
            (Route::Withdraw(n), _) => parse_object(&req.body).and_then(|b| withdraw(net, &n, &b)),
            (Route::Supplement(n), _) => {
                parse_object(&req.body).and_then(|b| supplement(net, &n, &b))
            }
        })
    }

    fn rejection(&self, field: &str) -> Reply {
        answer(Err(Rejection::field(
            StatusCode::BAD_REQUEST,
            "B0004",
            "字段校验不通过",
            field,
        )))
    }
}

/// The business endpoints, by path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Filings,
    Filing(String),
    Withdraw(String),
    Supplement(String),
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        let rest = path.strip_prefix(FILINGS)?;
        if rest.is_empty() {
            return Some(Route::Filings);
        }
        let mut parts = rest.strip_prefix('/')?.split('/');
        let number = percent_decode(parts.next()?).filter(|n| !n.is_empty())?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(Route::Filing(number)),
            (Some("withdraw"), None) => Some(Route::Withdraw(number)),
            (Some("supplement"), None) => Some(Route::Supplement(number)),
            _ => None,
        }
    }
}

/// A business error: a real HTTP status (unlike archetype 1) and the vendor's code.
struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl Rejection {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            field: None,
        }
    }

    /// Messages name the field after the last `": "`; `field` carries it too.
    fn field(status: StatusCode, code: &'static str, what: &str, field: &str) -> Self {
        Self {
            status,
            code,
            message: format!("{what}: {field}"),
            field: Some(field.to_owned()),
        }
    }

    fn missing(field: &str) -> Self {
        Self::field(StatusCode::BAD_REQUEST, "B0002", "缺少必填字段", field)
    }

    fn wrong_type(field: &str) -> Self {
        Self::field(StatusCode::BAD_REQUEST, "B0001", "字段类型错误", field)
    }

    fn not_in_table(field: &str) -> Self {
        Self::field(
            StatusCode::BAD_REQUEST,
            "B0003",
            "代码值不在代码表中",
            field,
        )
    }

    fn not_found(field: &str) -> Self {
        Self::field(StatusCode::NOT_FOUND, "C0404", "办件不存在", field)
    }

    fn not_allowed(what: &str) -> Self {
        Self::field(StatusCode::CONFLICT, "C0409", what, "status")
    }
}

type Checked<T> = std::result::Result<T, Rejection>;

fn answer(outcome: Checked<Value>) -> Reply {
    match outcome {
        Ok(data) => reply::json(
            StatusCode::OK,
            &json!({"code": "0", "message": "成功", "data": data}),
        ),
        Err(r) => {
            let mut body = json!({"code": r.code, "message": r.message, "data": null});
            if let (Some(field), Value::Object(map)) = (r.field, &mut body) {
                map.insert("field".into(), Value::String(field));
            }
            reply::json(r.status, &body)
        }
    }
}

fn parse_object(body: &[u8]) -> Checked<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "B0001",
            "请求报文格式错误: 应为JSON对象",
        )),
    }
}

/// Absent, null and blank all count as "not given".
fn optional<'a>(obj: &'a Map<String, Value>, field: &str) -> Checked<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Rejection::wrong_type(field)),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, field: &str) -> Checked<&'a str> {
    optional(obj, field)?.ok_or_else(|| Rejection::missing(field))
}

/// One required field by its kind: `applyTime` is epoch milliseconds (a JSON integer),
/// `seals` a non-empty array, every other one a non-blank string.
fn check_required(obj: &Map<String, Value>, field: &str) -> Checked<()> {
    match (field, obj.get(field)) {
        ("applyTime" | "seals", None | Some(Value::Null)) => Err(Rejection::missing(field)),
        ("applyTime", Some(v)) => match v.as_i64() {
            Some(ms) if ms > 0 => Ok(()),
            _ => Err(Rejection::wrong_type(field)),
        },
        ("seals", Some(Value::Array(items))) if items.is_empty() => Err(Rejection::missing(field)),
        ("seals", Some(Value::Array(_))) => Ok(()),
        ("seals", Some(_)) => Err(Rejection::wrong_type(field)),
        _ => required(obj, field).map(|_| ()),
    }
}

fn check_seals(seals: &[Value]) -> Checked<()> {
    for (i, seal) in seals.iter().enumerate() {
        let Value::Object(seal) = seal else {
            return Err(Rejection::wrong_type(&format!("seals[{i}]")));
        };
        let at = |f: &str| format!("seals[{i}].{f}");
        let kind = optional(seal, "sealType")
            .map_err(|_| Rejection::wrong_type(&at("sealType")))?
            .ok_or_else(|| Rejection::missing(&at("sealType")))?;
        if !SEAL_TYPES.contains(&kind) {
            return Err(Rejection::not_in_table(&at("sealType")));
        }
        optional(seal, "sealName").map_err(|_| Rejection::wrong_type(&at("sealName")))?;
    }
    Ok(())
}

/// `materials`: an array of `{name, mediaType, sha256, url}`; `name` is required in each.
fn check_materials(value: Option<&Value>, required_here: bool) -> Checked<()> {
    let items = match value {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(Rejection::wrong_type("materials")),
    };
    if items.is_empty() && required_here {
        return Err(Rejection::missing("materials"));
    }
    for (i, item) in items.iter().enumerate() {
        let Value::Object(material) = item else {
            return Err(Rejection::wrong_type(&format!("materials[{i}]")));
        };
        for field in ["name", "mediaType", "sha256", "url"] {
            optional(material, field)
                .map_err(|_| Rejection::wrong_type(&format!("materials[{i}].{field}")))?;
        }
        if optional(material, "name").ok().flatten().is_none() {
            return Err(Rejection::missing(&format!("materials[{i}].name")));
        }
    }
    Ok(())
}

fn check_agent(body: &Map<String, Value>) -> Checked<()> {
    let mut given = false;
    for field in AGENT_FIELDS {
        given |= optional(body, field)?.is_some();
    }
    if !given {
        return Ok(());
    }
    for field in AGENT_FIELDS {
        required(body, field)?;
    }
    if !AGENT_ID_TYPES.contains(&required(body, "agentIdType")?) {
        return Err(Rejection::not_in_table("agentIdType"));
    }
    Ok(())
}

fn submit(net: &Network, body: Map<String, Value>) -> Checked<Value> {
    for field in REQUIRED {
        check_required(&body, field)?;
    }
    let uscc = required(&body, "uscc")?;
    if uscc.chars().count() != 18 || !uscc.chars().all(|c| USCC_ALPHABET.contains(c)) {
        return Err(Rejection::field(
            StatusCode::BAD_REQUEST,
            "B0004",
            "字段校验不通过",
            "uscc",
        ));
    }
    if let Some(Value::Array(seals)) = body.get("seals") {
        check_seals(seals)?;
    }
    check_agent(&body)?;
    check_materials(body.get("materials"), false)?;

    let key = required(&body, "requestId")?.to_owned();
    let unified = required(&body, "unifiedCaseNo")?.to_owned();
    let (case, created) = net.write(|s| s.submit(&key, Some(unified), body, Instant::now()));
    tracing::info!(
        network = %net.name(),
        case_no = %case.ministry_case_number,
        request_id = %key,
        created,
        "case submitted"
    );
    Ok(json!({
        "caseNo": case.ministry_case_number,
        "acceptTime": case.received_at.timestamp_millis(),
        "status": STATUSES.initial,
    }))
}

/// The case as the query endpoints show it.
fn case_view(case: &SimCase) -> Value {
    let history: Vec<Value> = case
        .history
        .iter()
        .map(|h| {
            json!({
                "status": h.code,
                "statusName": h.name,
                "statusTime": h.at.timestamp_millis(),
                "remark": h.note,
            })
        })
        .collect();
    json!({
        "caseNo": case.ministry_case_number,
        "requestId": case.idempotency_key,
        "unifiedCaseNo": case.unified_case_number,
        "status": case.status,
        "statusName": case.status_name,
        "statusTime": case.history.last().map(|h| h.at.timestamp_millis()),
        "recordNo": case.certificate_number,
        "result": case.result,
        "history": history,
    })
}

/// The short answer of withdraw and supplement: where the case is now.
fn status_view(case: &SimCase) -> Value {
    json!({
        "caseNo": case.ministry_case_number,
        "status": case.status,
        "statusName": case.status_name,
        "statusTime": case.history.last().map(|h| h.at.timestamp_millis()),
    })
}

fn query_by_number(net: &Network, number: &str) -> Checked<Value> {
    net.read(|s| {
        s.case_by_number(number)
            .map(case_view)
            .ok_or_else(|| Rejection::not_found("caseNo"))
    })
}

/// `GET ?requestId=`: "did my timed-out submit land?"
fn query_by_key(net: &Network, query: Option<&str>) -> Checked<Value> {
    let mut key = None;
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "requestId" {
            key = Some(percent_decode(value).ok_or_else(|| Rejection::wrong_type("requestId"))?);
        }
    }
    let key = key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| Rejection::missing("requestId"))?;
    net.read(|s| {
        s.index_of_key(&key)
            .and_then(|i| s.case(i))
            .map(case_view)
            .ok_or_else(|| Rejection::not_found("requestId"))
    })
}

fn locate(store: &Store, number: &str) -> Checked<(usize, String)> {
    let idx = store
        .index_of_number(number)
        .ok_or_else(|| Rejection::not_found("caseNo"))?;
    let current = store
        .case(idx)
        .map(|c| c.status.clone())
        .unwrap_or_default();
    Ok((idx, current))
}

fn withdraw(net: &Network, number: &str, body: &Map<String, Value>) -> Checked<Value> {
    net.write(|s| {
        let (idx, current) = locate(s, number)?;
        let reason = required(body, "reason")?;
        let model = s.model();
        if current != model.withdrawn {
            if model.is_terminal(&current) {
                return Err(Rejection::not_allowed("当前状态不允许撤回"));
            }
            s.set_status(
                idx,
                model.withdrawn,
                Some(reason.to_owned()),
                Instant::now(),
            );
        }
        s.case(idx)
            .map(status_view)
            .ok_or_else(|| Rejection::not_found("caseNo"))
    })
}

fn supplement(net: &Network, number: &str, body: &Map<String, Value>) -> Checked<Value> {
    net.write(|s| {
        let (idx, current) = locate(s, number)?;
        check_materials(body.get("materials"), true)?;
        optional(body, "note")?;
        if s.model().is_terminal(&current) {
            return Err(Rejection::not_allowed("当前状态不允许补正"));
        }
        s.record_supplement(idx, body.get("materials").cloned().unwrap_or(Value::Null));
        if current == "30" {
            s.set_status(idx, "40", Some("已补正".to_owned()), Instant::now());
        }
        s.case(idx)
            .map(status_view)
            .ok_or_else(|| Rejection::not_found("caseNo"))
    })
}

/// Percent-decoding of a query value or path segment (UTF-8; `+` stays a plus sign, so a
/// key containing one must be sent as `%2B`). `None` for a bad escape or invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------------------

/// The body of one push, in the order the fields are written on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PushBody<'a> {
    push_id: &'a str,
    event_type: &'static str,
    case_no: &'a str,
    request_id: &'a str,
    unified_case_no: Option<&'a str>,
    status: &'a str,
    status_name: &'a str,
    status_time: i64,
    record_no: Option<&'a str>,
    result: Option<&'a str>,
    remark: Option<&'a str>,
}

/// One status change waiting for the receiver's acknowledgement.
#[derive(Debug, Clone)]
struct Push {
    id: String,
    body: Bytes,
}

/// What the push side of a network has done so far (`GET /_sim/pushes`,
/// [`crate::Simulator::push_stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushStats {
    /// Where pushes go; `None`: they wait in the queue until a URL is set.
    pub callback_url: Option<String>,
    /// POSTs sent to the receiver: first tries, retries and duplicates.
    pub attempts: u64,
    /// Attempts the receiver answered with the acknowledgement (duplicates included).
    pub acknowledged: u64,
    /// Distinct pushes acknowledged, each counted once.
    pub delivered: u64,
    /// Pushes not yet acknowledged (queued or held back by `push_reorder_next`).
    pub pending: usize,
    /// Why the last failed attempt failed, e.g. `connection refused` or `HTTP 503`.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct PushState {
    url: Option<String>,
    /// The last store change turned into a push.
    cursor: u64,
    /// Bumped by a reset, so a collection racing with it cannot bring back forgotten changes.
    generation: u64,
    queue: VecDeque<Push>,
    /// A push held back by `push_reorder_next`, and when it goes out even if nothing
    /// overtook it.
    held: Option<(Push, Instant)>,
    /// Failed attempts of the push at the head of the queue, for the backoff.
    failures: u32,
    retry_at: Option<Instant>,
    attempts: u64,
    acknowledged: u64,
    delivered: u64,
    last_error: Option<String>,
}

/// The push side of an archetype-5 network: every status change becomes a signed push that
/// is retried, in order, until the receiver acknowledges it.
pub(crate) struct Pushes {
    secret: String,
    retry_initial: Duration,
    retry_max: Duration,
    /// Makes push ids unique across simulator runs, as a vendor's would be.
    run_id: String,
    prefix: String,
    state: Mutex<PushState>,
    wake: Notify,
}

impl std::fmt::Debug for Pushes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is left out on purpose.
        f.debug_struct("Pushes")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

enum Next {
    Send { push: Push, url: String },
    Wait(Option<Instant>),
}

impl Pushes {
    pub(crate) fn new(cfg: &SimConfig) -> Self {
        Self {
            secret: cfg.push_secret.clone(),
            retry_initial: cfg.push_retry_initial.max(Duration::from_millis(1)),
            retry_max: cfg.push_retry_max.max(cfg.push_retry_initial),
            run_id: hex::encode(rand::random::<[u8; 4]>()),
            prefix: cfg.case_prefix.clone(),
            state: Mutex::new(PushState {
                url: cfg.callback_url.clone(),
                ..PushState::default()
            }),
            wake: Notify::new(),
        }
    }

    /// Something changed (a status, the URL): look at the queue again.
    pub(crate) fn nudge(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self) -> PushStats {
        let s = lock(&self.state);
        PushStats {
            callback_url: s.url.clone(),
            attempts: s.attempts,
            acknowledged: s.acknowledged,
            delivered: s.delivered,
            pending: s.queue.len() + usize::from(s.held.is_some()),
            last_error: s.last_error.clone(),
        }
    }

    /// Point pushes somewhere else (or nowhere); a waiting retry goes out at once.
    pub(crate) fn set_url(&self, url: Option<String>) {
        {
            let mut s = lock(&self.state);
            s.url = url;
            s.retry_at = None;
            s.failures = 0;
        }
        self.nudge();
    }

    /// Forget queued pushes and counters, as `POST /_sim/reset` forgets cases.
    pub(crate) fn clear(&self) {
        {
            let mut s = lock(&self.state);
            let (url, cursor, generation) = (s.url.take(), s.cursor, s.generation + 1);
            *s = PushState {
                url,
                cursor,
                generation,
                ..PushState::default()
            };
        }
        self.nudge();
    }

    /// Turn store changes made since the last look into queued pushes.
    fn collect(&self, net: &Network) {
        let (cursor, generation) = {
            let s = lock(&self.state);
            (s.cursor, s.generation)
        };
        let fresh: Vec<(u64, Push)> = net.read(|store| {
            let (changes, _) = store.changes_after(cursor, usize::MAX);
            changes
                .iter()
                .map(|c| (c.seq, self.push_of(store, c)))
                .collect()
        });
        let Some(&(last, _)) = fresh.last() else {
            return;
        };
        let mut s = lock(&self.state);
        if s.generation != generation {
            return;
        }
        s.cursor = last;
        s.queue.extend(fresh.into_iter().map(|(_, p)| p));
    }

    fn push_of(&self, store: &Store, change: &Change) -> Push {
        let id = format!("{}-{}-{:08}", self.prefix, self.run_id, change.seq);
        let unified = store
            .case_by_number(&change.ministry_case_number)
            .and_then(|c| c.unified_case_number.as_deref());
        let body = PushBody {
            push_id: &id,
            event_type: "STATUS_CHANGED",
            case_no: &change.ministry_case_number,
            request_id: &change.idempotency_key,
            unified_case_no: unified,
            status: &change.entry.code,
            status_name: &change.entry.name,
            status_time: change.entry.at.timestamp_millis(),
            record_no: change.certificate_number.as_deref(),
            result: change.result.as_deref(),
            remark: change.entry.note.as_deref(),
        };
        // Serializing a struct of strings and integers cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        Push {
            id,
            body: Bytes::from(body),
        }
    }

    /// What to do now: send the next push, or wait (until a retry or hold is due, or for a
    /// nudge).
    fn next(&self, faults: &Faults, now: Instant) -> Next {
        let mut s = lock(&self.state);
        let Some(url) = s.url.clone() else {
            return Next::Wait(None);
        };
        if let Some(at) = s.retry_at
            && at > now
        {
            return Next::Wait(Some(at));
        }
        loop {
            if let Some(release) = s.held.as_ref().map(|(_, at)| *at) {
                if s.queue.is_empty() {
                    if release > now {
                        return Next::Wait(Some(release));
                    }
                    if let Some((push, _)) = s.held.take() {
                        s.queue.push_front(push);
                    }
                }
            } else if !s.queue.is_empty() && take(faults, |f| &mut f.push_reorder_next) {
                if let Some(push) = s.queue.pop_front() {
                    s.held = Some((push, now + REORDER_HOLD));
                }
                continue;
            }
            return match s.queue.front() {
                Some(push) => Next::Send {
                    push: push.clone(),
                    url,
                },
                None => Next::Wait(None),
            };
        }
    }

    /// Record an attempt at the head of the queue; true when the `push_duplicate_next`
    /// fault wants it sent once more.
    fn finish(
        &self,
        faults: &Faults,
        push: &Push,
        outcome: std::result::Result<(), String>,
        now: Instant,
    ) -> bool {
        let mut s = lock(&self.state);
        s.attempts += 1;
        match outcome {
            Ok(()) => {
                s.acknowledged += 1;
                // A reset may have emptied the queue while the attempt was under way.
                if s.queue.front().is_some_and(|p| p.id == push.id) {
                    s.queue.pop_front();
                    s.delivered += 1;
                }
                s.failures = 0;
                s.retry_at = None;
                // The push this one overtook goes next.
                if let Some((held, _)) = s.held.take() {
                    s.queue.push_front(held);
                }
                take(faults, |f| &mut f.push_duplicate_next)
            }
            Err(error) => {
                tracing::debug!(push = %push.id, %error, "push not acknowledged");
                s.failures = s.failures.saturating_add(1);
                let doubling = 2u32.saturating_pow(s.failures - 1);
                let backoff = self
                    .retry_initial
                    .saturating_mul(doubling)
                    .min(self.retry_max);
                s.retry_at = Some(now + backoff);
                s.last_error = Some(error);
                false
            }
        }
    }

    /// Record a duplicate's attempt: it is never retried, the original was acknowledged.
    fn finish_duplicate(&self, outcome: std::result::Result<(), String>) {
        let mut s = lock(&self.state);
        s.attempts += 1;
        match outcome {
            Ok(()) => s.acknowledged += 1,
            Err(error) => s.last_error = Some(error),
        }
    }
}

/// Consume one unit of a push fault counter.
fn take(faults: &Faults, counter: impl FnOnce(&mut FaultSettings) -> &mut u32) -> bool {
    let mut taken = false;
    faults.update(|f| {
        let n = counter(f);
        if *n > 0 {
            *n -= 1;
            taken = true;
        }
    });
    taken
}

/// `X-Push-Signature`: lowercase hex HMAC-SHA256 keyed with the push secret over
/// `timestamp + "\n" + body`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; the error exists for other MACs.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A callback URL `cfg`'s push client can use: `http://host:port/path`, or `https://…`
/// when the push client has a TLS identity ([`SimConfig::push_tls`]).
pub(crate) fn check_callback_url(cfg: &SimConfig, url: &str) -> Result<()> {
    let https = url
        .parse::<Uri>()
        .ok()
        .is_some_and(|uri| uri.scheme_str() == Some("https"));
    if !https {
        return check_url(&cfg.name, url);
    }
    let bad = |reason: &str| Error::InvalidCallbackUrl {
        network: cfg.name.clone(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if cfg.push_tls.is_none() {
        return Err(bad(
            "https:// needs the push client's TLS identity (SimConfig::with_push_tls, \
             --push-ca/--push-cert/--push-key)",
        ));
    }
    match url.parse::<Uri>() {
        Ok(uri) if uri.authority().is_some() => Ok(()),
        _ => Err(bad("no host")),
    }
}

/// A plain-HTTP callback URL must be `http://host:port/path`.
pub(crate) fn check_url(network: &str, url: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidCallbackUrl {
        network: network.to_owned(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// URLs are supported"));
    }
    if uri.authority().is_none() {
        return Err(bad("no host"));
    }
    Ok(())
}

/// The push client: plain HTTP, or HTTP and HTTPS (mutual TLS) when the network has a
/// push TLS identity.
enum PushClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl PushClient {
    fn new(tls: Option<&Arc<rustls::ClientConfig>>) -> Self {
        let builder = Client::builder(TokioExecutor::new());
        match tls {
            None => PushClient::Plain(builder.build_http()),
            Some(config) => {
                let connector = HttpsConnectorBuilder::new()
                    .with_tls_config(rustls::ClientConfig::clone(config))
                    .https_or_http()
                    .enable_http1()
                    .build();
                PushClient::Tls(builder.build(connector))
            }
        }
    }

    fn request(&self, request: Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            PushClient::Plain(client) => client.request(request),
            PushClient::Tls(client) => client.request(request),
        }
    }
}

/// One POST of one push, signed at sending time; `Ok` only for the acknowledgement.
async fn attempt(client: &PushClient, url: &str, push: &Push, secret: &str) -> Result<(), String> {
    let timestamp = Utc::now().timestamp_millis().to_string();
    let request = Request::post(url)
        .header(CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(PUSH_ID_HEADER, push.id.as_str())
        .header(PUSH_TIMESTAMP_HEADER, timestamp.as_str())
        .header(PUSH_SIGNATURE_HEADER, sign(secret, &timestamp, &push.body))
        .body(Full::new(push.body.clone()))
        .map_err(|e| format!("callback URL {url:?}: {e}"))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            // The chain says why (connection refused, reset, ...).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ACK_BODY)
            .collect()
            .await
            .map_err(|e| format!("HTTP {status}, reply body not read: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(PUSH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no reply within {PUSH_TIMEOUT:?}"))??;
    let acknowledged = status.is_success()
        && serde_json::from_slice::<Value>(&body)
            .ok()
            .is_some_and(|v| v.get("code").and_then(Value::as_str) == Some("0"));
    if acknowledged {
        Ok(())
    } else {
        let head = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        Err(format!(
            "HTTP {} without the acknowledgement {{\"code\":\"0\"}}: {head:?}",
            status.as_u16()
        ))
    }
}

/// Background task of an archetype-5 network: deliver pushes until shutdown.
pub(crate) async fn run_pushes(net: Arc<Network>) {
    let Some(pushes) = net.pushes.as_ref() else {
        return;
    };
    let client = PushClient::new(net.push_tls.as_ref());
    let mut shutdown = net.shutdown.clone();
    loop {
        // Created before looking; `notify_one` keeps a permit when nobody waits, so a nudge
        // during the look still ends the wait below.
        let wake = pushes.wake.notified();
        pushes.collect(&net);
        match pushes.next(&net.faults, Instant::now()) {
            Next::Send { push, url } => {
                let outcome = tokio::select! {
                    _ = shutdown.changed() => break,
                    outcome = attempt(&client, &url, &push, &pushes.secret) => outcome,
                };
                tracing::info!(
                    network = %net.name(),
                    push = %push.id,
                    acknowledged = outcome.is_ok(),
                    "push"
                );
                if pushes.finish(&net.faults, &push, outcome, Instant::now()) {
                    let again = tokio::select! {
                        _ = shutdown.changed() => break,
                        outcome = attempt(&client, &url, &push, &pushes.secret) => outcome,
                    };
                    tracing::info!(network = %net.name(), push = %push.id, "push duplicated");
                    pushes.finish_duplicate(again);
                }
            }
            Next::Wait(until) => {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    () = wake => {}
                    () = sleep_until_or_forever(until) => {}
                }
            }
        }
    }
}

async fn sleep_until_or_forever(until: Option<Instant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Network {
    /// Wake the push task of an archetype-5 network (no-op for other archetypes).
    pub(crate) fn nudge_pushes(&self) {
        if let Some(pushes) = &self.pushes {
            pushes.nudge();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path() {
        assert_eq!(Route::of(FILINGS), Some(Route::Filings));
        assert_eq!(
            Route::of("/openapi/v1/seal-filings/GA1"),
            Some(Route::Filing("GA1".into()))
        );
        assert_eq!(
            Route::of("/openapi/v1/seal-filings/GA1/withdraw"),
            Some(Route::Withdraw("GA1".into()))
        );
        assert_eq!(Route::of("/openapi/v1/seal-filings/GA1/x"), None);
        assert_eq!(Route::of("/openapi/v1/seal-filings/"), None);
        assert_eq!(Route::of("/openapi/v1/seal-filingsX"), None);
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%2Bb+c").as_deref(), Some("a+b+c"));
        assert_eq!(percent_decode("%E5%85%AC").as_deref(), Some("公"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn signature_is_hmac_of_timestamp_newline_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").expect("any key length");
        mac.update(b"1700000000000\n{}");
        assert_eq!(
            sign("k", "1700000000000", b"{}"),
            hex::encode(mac.finalize().into_bytes())
        );
    }

    #[test]
    fn callback_urls_must_be_plain_http() {
        assert!(check_url("n", "http://127.0.0.1:9/cb").is_ok());
        assert!(check_url("n", "https://127.0.0.1:9/cb").is_err());
        assert!(check_url("n", "/cb").is_err());
        assert!(check_url("n", "not a url").is_err());
    }

    fn pushes() -> Pushes {
        Pushes::new(
            &SimConfig::new(crate::Archetype::Callback, "t")
                .with_callback_url("http://127.0.0.1:9/cb")
                .with_push_retry(Duration::from_millis(100), Duration::from_millis(350)),
        )
    }

    fn queued(p: &Pushes, ids: &[&str]) {
        let mut s = lock(&p.state);
        for id in ids {
            s.queue.push_back(Push {
                id: (*id).to_owned(),
                body: Bytes::new(),
            });
        }
    }

    fn sent(next: Next) -> Option<String> {
        match next {
            Next::Send { push, .. } => Some(push.id),
            Next::Wait(_) => None,
        }
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let p = pushes();
        let faults = Faults::default();
        queued(&p, &["a"]);
        let t0 = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..4 {
            let Next::Send { push, .. } = p.next(&faults, t0) else {
                panic!("head is due");
            };
            p.finish(&faults, &push, Err("down".into()), t0);
            match p.next(&faults, t0) {
                Next::Wait(Some(at)) => waits.push(at - t0),
                _ => panic!("a retry waits"),
            }
            lock(&p.state).retry_at = None;
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![100, 200, 350, 350]);
        assert_eq!(p.stats().pending, 1, "never dropped");
        assert_eq!(p.stats().last_error.as_deref(), Some("down"));
    }

    #[test]
    fn reorder_sends_the_follower_first_then_the_held_push() {
        let p = pushes();
        let faults = Faults::default();
        faults.update(|f| f.push_reorder_next = 1);
        let t0 = Instant::now();
        queued(&p, &["a"]);
        // Nothing to overtake "a" yet: it is held.
        assert!(matches!(p.next(&faults, t0), Next::Wait(Some(_))));
        queued(&p, &["b"]);
        let Next::Send { push, .. } = p.next(&faults, t0) else {
            panic!("b is sent");
        };
        assert_eq!(push.id, "b");
        assert!(!p.finish(&faults, &push, Ok(()), t0));
        assert_eq!(sent(p.next(&faults, t0)).as_deref(), Some("a"));
        assert_eq!(faults.snapshot().push_reorder_next, 0);
    }

    #[test]
    fn a_held_push_goes_out_alone_after_the_hold() {
        let p = pushes();
        let faults = Faults::default();
        faults.update(|f| f.push_reorder_next = 1);
        let t0 = Instant::now();
        queued(&p, &["a"]);
        assert!(sent(p.next(&faults, t0)).is_none());
        assert_eq!(
            sent(p.next(&faults, t0 + REORDER_HOLD)).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn duplicates_are_asked_for_after_an_acknowledgement() {
        let p = pushes();
        let faults = Faults::default();
        faults.update(|f| f.push_duplicate_next = 1);
        queued(&p, &["a", "b"]);
        let t0 = Instant::now();
        let Next::Send { push, .. } = p.next(&faults, t0) else {
            panic!("a is sent");
        };
        assert!(p.finish(&faults, &push, Ok(()), t0));
        p.finish_duplicate(Ok(()));
        let Next::Send { push, .. } = p.next(&faults, t0) else {
            panic!("b is sent");
        };
        assert!(!p.finish(&faults, &push, Ok(()), t0));
        let stats = p.stats();
        assert_eq!(
            (
                stats.attempts,
                stats.acknowledged,
                stats.delivered,
                stats.pending
            ),
            (3, 3, 2, 0)
        );
    }

    #[test]
    fn no_url_means_waiting_not_dropping() {
        let p = pushes();
        p.set_url(None);
        queued(&p, &["a"]);
        assert!(matches!(
            p.next(&Faults::default(), Instant::now()),
            Next::Wait(None)
        ));
        assert_eq!(p.stats().pending, 1);
    }
}
