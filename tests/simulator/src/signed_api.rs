//! Archetype 3: a signed open-API gateway (HMAC-SHA256 over a canonical string, replayed
//! nonces and skewed clocks refused), tax-registration (税务) style.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant as StdInstant};

use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::network::{BusinessRequest, Network, Protocol};
use crate::reply::{self, Reply};
use crate::store::{SimCase, StatusModel, Store};
use crate::{lock, time};

/// A tax-registration vendor's own four-digit codes (nothing like the Jinan set).
pub(crate) static STATUSES: StatusModel = StatusModel {
    codes: &[
        ("1000", "已提交"),
        ("2000", "已受理"),
        ("2100", "不予受理"),
        ("3000", "税务审核中"),
        ("3100", "待补正"),
        ("4000", "登记完成"),
        ("4100", "不予登记"),
        ("9000", "已作废"),
    ],
    initial: "1000",
    transitions: &[
        ("1000", "2000"),
        ("2000", "3000"),
        ("3000", "4000"),
        ("3100", "3000"),
    ],
    paused: &["3100"],
    withdrawn: "9000",
    results: &[
        ("4000", "准予登记"),
        ("2100", "不予受理"),
        ("4100", "不予登记"),
    ],
    certificate_at: "4000",
    certificate_number: |prefix, seq, at| format!("{prefix}DJ{}{seq:08}", at.format("%Y")),
};

/// `nsrlx`: 10 unit taxpayer (enterprise), 20 individual (natural person), 30 other organisation.
pub(crate) const TAXPAYER_KINDS: &[&str] = &["10", "20", "30"];
/// `zjlx`: this network's own ID document codes (neither set A nor set B).
pub(crate) const ID_TYPES: &[&str] = &["101", "199", "201", "210", "227", "299"];
/// Checked in this order; the first one missing is reported.
pub(crate) const REQUIRED: &[&str] = &[
    "qqlsh", "tybh", "sxbm", "sxbb", "nsrlx", "nsrmc", "zjlx", "zjhm", "yyzzbh", "lxdh", "scjydz",
    "sqsj",
];
/// The signature headers, in the order their absence is reported.
pub(crate) const SIGN_HEADERS: [&str; 4] = ["X-App-Key", "X-Timestamp", "X-Nonce", "X-Sign"];
/// How far `X-Timestamp` may be from the server's clock, either way.
pub(crate) const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// How long a nonce is remembered: a request stamped up to 5 min ahead stays acceptable for
/// 10 min after it arrives, so its nonce must be refused for as long.
pub(crate) const NONCE_TTL: Duration = Duration::from_secs(10 * 60);
/// The alphabet of a unified social credit code (GB 32100: no I O S V Z).
const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

pub(crate) const SUBMIT_PATH: &str = "/openapi/tax/v1/registrations";
pub(crate) const STATUS_PATH: &str = "/openapi/tax/v1/registrations/status";
pub(crate) const CHANGES_PATH: &str = "/openapi/tax/v1/registrations/changes";
const MAX_CHANGES: u64 = 1000;
const DEFAULT_CHANGES: u64 = 100;

/// The protocol, with the nonces it has seen (kept across `POST /_sim/reset`, like a gateway
/// that sits in front of the case system rather than inside it).
#[derive(Default)]
pub(crate) struct SignedApi {
    nonces: Mutex<NonceLog>,
}

impl Protocol for SignedApi {
    fn statuses(&self) -> &'static StatusModel {
        &STATUSES
    }

    fn handle(&self, net: &Network, req: &BusinessRequest) -> Reply {
        let method = match req.path.as_str() {
            SUBMIT_PATH => Method::POST,
            STATUS_PATH | CHANGES_PATH => Method::GET,
            _ => return reply::not_found(),
        };
        if req.method != method {
            return reply::method_not_allowed();
        }
        if let Err(refusal) = self.verify(net, req) {
            tracing::info!(
                network = %net.name(),
                code = refusal.code,
                message = %refusal.msg,
                "signature refused"
            );
            return answer(Err(refusal));
        }
        answer(match req.path.as_str() {
            SUBMIT_PATH => submit(net, &req.body),
            STATUS_PATH => status(net, req.query.as_deref()),
            _ => changes(net, req.query.as_deref()),
        })
    }

    fn rejection(&self, field: &str) -> Reply {
        answer(Err(Rejection::field("SW2004", "字段校验不通过", field)))
    }
}

impl SignedApi {
    /// The gateway layer: every check of the signature headers, in the documented order. The
    /// nonce is recorded only once the signature holds, so forged requests cannot use it up.
    fn verify(&self, net: &Network, req: &BusinessRequest) -> Result<(), Rejection> {
        let mut values = [""; 4];
        for (value, name) in values.iter_mut().zip(SIGN_HEADERS) {
            *value = req
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Rejection::gateway("GW1001", "缺少签名参数", name))?;
        }
        let [app_key, timestamp, nonce, sign] = values;
        if app_key != net.cfg.app_key {
            return Err(Rejection::gateway("GW1002", "应用标识不存在", "X-App-Key"));
        }
        let stamped = parse_timestamp(timestamp)
            .ok_or_else(|| Rejection::gateway("GW1001", "签名参数格式错误", "X-Timestamp"))?;
        let now = time::now().timestamp_millis();
        if now.abs_diff(stamped) > MAX_SKEW_MS.unsigned_abs() {
            let mut refusal =
                Rejection::gateway("GW1003", "时间戳超出允许范围(±300秒)", "X-Timestamp");
            refusal.server_time = Some(now);
            return Err(refusal);
        }
        if nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Rejection::gateway("GW1001", "签名参数格式错误", "X-Nonce"));
        }
        let canonical = canonical_string(
            req.method.as_str(),
            &req.path,
            req.query.as_deref(),
            app_key,
            timestamp,
            nonce,
            &req.body,
        );
        if !signature_matches(net.cfg.app_secret.as_bytes(), &canonical, sign) {
            return Err(Rejection::gateway("GW1005", "签名校验失败", "X-Sign"));
        }
        let fresh = lock(&self.nonces).remember(format!("{app_key}\n{nonce}"), StdInstant::now());
        if !fresh {
            return Err(Rejection::gateway(
                "GW1004",
                "请求重复(nonce已使用)",
                "X-Nonce",
            ));
        }
        Ok(())
    }
}

/// Nonces seen within [`NONCE_TTL`], oldest first so expired ones are dropped in O(1) each.
#[derive(Default)]
pub(crate) struct NonceLog {
    seen: HashSet<String>,
    order: VecDeque<(StdInstant, String)>,
}

impl NonceLog {
    /// Records `key`; false when it was already seen within the TTL (a replay).
    pub(crate) fn remember(&mut self, key: String, now: StdInstant) -> bool {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < NONCE_TTL {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back((now, key));
        true
    }
}

/// Epoch milliseconds: 1 to 15 ASCII digits (up to the year 33658), nothing else.
fn parse_timestamp(value: &str) -> Option<i64> {
    if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The canonical string of PROTOCOLS.md: method, path, sorted raw query, app key, timestamp,
/// nonce and the body's SHA-256, one per line. Written independently of the adapter SDK's
/// `sign::canonical_string` so the two meet only at the documented rules.
pub(crate) fn canonical_string(
    method: &str,
    path: &str,
    raw_query: Option<&str>,
    app_key: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut pairs: Vec<(&str, &str)> = raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| segment.split_once('=').unwrap_or((segment, "")))
        .collect();
    pairs.sort_unstable();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path = if path.is_empty() { "/" } else { path };
    [
        method.to_ascii_uppercase().as_str(),
        path,
        query.join("&").as_str(),
        app_key,
        timestamp,
        nonce,
        hex::encode(Sha256::digest(body)).as_str(),
    ]
    .join("\n")
}

/// `X-Sign` for a canonical string: lowercase hex HMAC-SHA256 under the app secret.
#[cfg(test)]
pub(crate) fn sign(secret: &[u8], canonical: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; the error exists for other MACs only.
        Err(_) => String::new(),
    }
}

/// Compares in constant time; hex in either case is accepted, anything else is wrong.
fn signature_matches(secret: &[u8], canonical: &str, sign_hex: &str) -> bool {
    let (Ok(tag), Ok(mut mac)) = (
        hex::decode(sign_hex),
        Hmac::<Sha256>::new_from_slice(secret),
    ) else {
        return false;
    };
    mac.update(canonical.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

/// A refusal: a gateway error (HTTP 401) or a business error (HTTP 200), with the field it
/// names.
struct Rejection {
    status: StatusCode,
    code: &'static str,
    msg: String,
    field: Option<String>,
    /// The server's clock, sent with a timestamp refusal so the client can see its skew.
    server_time: Option<i64>,
}

impl Rejection {
    fn business(code: &'static str, msg: &str) -> Self {
        Self {
            status: StatusCode::OK,
            code,
            msg: msg.to_owned(),
            field: None,
            server_time: None,
        }
    }

    /// Messages name the field after the last `": "`; `data.field` carries it too.
    fn field(code: &'static str, what: &str, field: &str) -> Self {
        Self {
            msg: format!("{what}: {field}"),
            field: Some(field.to_owned()),
            ..Self::business(code, "")
        }
    }

    fn gateway(code: &'static str, what: &str, header: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            ..Self::field(code, what, header)
        }
    }

    fn missing(field: &str) -> Self {
        Self::field("SW2001", "缺少必填字段", field)
    }

    fn wrong_type(field: &str) -> Self {
        Self::field("SW2002", "字段类型错误", field)
    }
}

type Checked<T> = Result<T, Rejection>;

fn answer(outcome: Checked<Value>) -> Reply {
    match outcome {
        Ok(data) => reply::json(
            StatusCode::OK,
            &json!({"success": true, "code": "SW0000", "message": "成功", "data": data}),
        ),
        Err(r) => {
            let data = match (r.field, r.server_time) {
                (None, _) => Value::Null,
                (Some(field), None) => json!({"field": field}),
                (Some(field), Some(at)) => json!({"field": field, "server_time": at}),
            };
            reply::json(
                r.status,
                &json!({"success": false, "code": r.code, "message": r.msg, "data": data}),
            )
        }
    }
}

fn parse_object(body: &[u8]) -> Checked<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Rejection::business("SW2002", "报文格式错误: 应为JSON对象")),
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

fn is_uscc_shaped(value: &str) -> bool {
    value.chars().count() == 18 && value.chars().all(|c| USCC_ALPHABET.contains(c))
}

/// `fjxx`: an array of `{fjmc, wjlx, sha256, url}`; `fjmc` is required in each.
fn check_attachments(value: Option<&Value>) -> Checked<()> {
    let items = match value {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Rejection::wrong_type("fjxx")),
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(attachment) = item else {
            return Err(Rejection::wrong_type(&format!("fjxx[{i}]")));
        };
        for field in ["fjmc", "wjlx", "sha256", "url"] {
            optional(attachment, field)
                .map_err(|_| Rejection::wrong_type(&format!("fjxx[{i}].{field}")))?;
        }
        if optional(attachment, "fjmc").ok().flatten().is_none() {
            return Err(Rejection::missing(&format!("fjxx[{i}].fjmc")));
        }
    }
    Ok(())
}

fn submit(net: &Network, body: &[u8]) -> Checked<Value> {
    let body = parse_object(body)?;
    for field in REQUIRED {
        if *field == "sqsj" {
            // A number, not a string: only its presence is checked here, its form below.
            if matches!(body.get("sqsj"), None | Some(Value::Null)) {
                return Err(Rejection::missing("sqsj"));
            }
        } else {
            required(&body, field)?;
        }
    }
    let kind = required(&body, "nsrlx")?;
    if !TAXPAYER_KINDS.contains(&kind) {
        return Err(Rejection::field("SW2003", "代码值不在代码表中", "nsrlx"));
    }
    if !ID_TYPES.contains(&required(&body, "zjlx")?) {
        return Err(Rejection::field("SW2003", "代码值不在代码表中", "zjlx"));
    }
    let taxpayer_number = optional(&body, "nsrsbh")?;
    let representative = optional(&body, "fddbr")?;
    if kind == "10" {
        if taxpayer_number.is_none() {
            return Err(Rejection::missing("nsrsbh"));
        }
        if representative.is_none() {
            return Err(Rejection::missing("fddbr"));
        }
    }
    if taxpayer_number.is_some_and(|n| !is_uscc_shaped(n)) {
        return Err(Rejection::field("SW2004", "字段格式错误", "nsrsbh"));
    }
    if body
        .get("sqsj")
        .and_then(Value::as_i64)
        .is_none_or(|ms| ms < 0)
    {
        return Err(Rejection::field(
            "SW2004",
            "字段格式错误(应为毫秒时间戳)",
            "sqsj",
        ));
    }
    optional(&body, "jyfw")?;
    check_attachments(body.get("fjxx"))?;

    let key = required(&body, "qqlsh")?.to_owned();
    let unified = required(&body, "tybh")?.to_owned();
    let (case, created) = net.write(|s| s.submit(&key, Some(unified), body, Instant::now()));
    tracing::info!(
        network = %net.name(),
        slbh = %case.ministry_case_number,
        qqlsh = %key,
        created,
        "case submitted"
    );
    Ok(json!({
        "slbh": case.ministry_case_number,
        "slsj": case.received_at.timestamp_millis(),
    }))
}

/// Query parameters, percent-decoded (`+` is a plus sign, not a space).
fn query_params(raw: Option<&str>) -> Checked<Vec<(String, String)>> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            let bad = || Rejection::field("SW2002", "参数编码错误", key);
            Ok((
                percent_decode(key).ok_or_else(bad)?,
                percent_decode(value).ok_or_else(bad)?,
            ))
        })
        .collect()
}

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

/// The first non-blank value of a parameter.
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.as_str())
}

/// The case named by `slbh`, or by `qqlsh` (the "did my timed-out submit land?" lookup).
fn locate(store: &Store, params: &[(String, String)]) -> Checked<usize> {
    let number = param(params, "slbh");
    let key = param(params, "qqlsh");
    let found = match (number, key) {
        (None, None) => return Err(Rejection::missing("slbh")),
        (Some(n), None) => store.index_of_number(n),
        (None, Some(k)) => store.index_of_key(k),
        (Some(n), Some(k)) => store
            .index_of_number(n)
            .filter(|i| store.index_of_key(k) == Some(*i)),
    };
    let field = if number.is_some() { "slbh" } else { "qqlsh" };
    found.ok_or_else(|| Rejection::field("SW3001", "办件不存在", field))
}

fn status_view(case: &SimCase) -> Value {
    let history: Vec<Value> = case
        .history
        .iter()
        .map(|h| json!({"ztdm": h.code, "ztmc": h.name, "ztsj": h.at.timestamp_millis()}))
        .collect();
    json!({
        "slbh": case.ministry_case_number,
        "qqlsh": case.idempotency_key,
        "ztdm": case.status,
        "ztmc": case.status_name,
        "ztsj": case.history.last().map(|h| h.at.timestamp_millis()),
        "bljg": case.result,
        "swdjzh": case.certificate_number,
        "lsjl": history,
    })
}

fn status(net: &Network, query: Option<&str>) -> Checked<Value> {
    let params = query_params(query)?;
    net.read(|s| {
        let idx = locate(s, &params)?;
        s.case(idx)
            .map(status_view)
            .ok_or_else(|| Rejection::field("SW3001", "办件不存在", "slbh"))
    })
}

fn changes(net: &Network, query: Option<&str>) -> Checked<Value> {
    let params = query_params(query)?;
    let after = match param(&params, "cursor") {
        None => 0,
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| Rejection::field("SW2002", "游标无效", "cursor"))?,
    };
    let limit = match param(&params, "limit") {
        None => DEFAULT_CHANGES,
        Some(limit) => limit
            .parse::<u64>()
            .map_err(|_| Rejection::wrong_type("limit"))?,
    }
    .clamp(1, MAX_CHANGES);
    net.read(|s| {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let (page, has_more) = s.changes_after(after, limit);
        let cursor = page.last().map_or(after, |c| c.seq);
        let changes: Vec<Value> = page
            .iter()
            .map(|c| {
                json!({
                    "slbh": c.ministry_case_number,
                    "qqlsh": c.idempotency_key,
                    "ztdm": c.entry.code,
                    "ztmc": c.entry.name,
                    "ztsj": c.entry.at.timestamp_millis(),
                    "bljg": c.result,
                    "swdjzh": c.certificate_number,
                })
            })
            .collect();
        Ok(json!({
            "changes": changes,
            "next_cursor": cursor.to_string(),
            "has_more": has_more,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_string_sorts_the_raw_query_and_hashes_the_body() {
        let s = canonical_string(
            "get",
            STATUS_PATH,
            Some("slbh=SW1&a=x%20y&&flag&a=1"),
            "yiwang-app",
            "1764000000000",
            "n-1",
            b"",
        );
        assert_eq!(
            s,
            "GET\n/openapi/tax/v1/registrations/status\na=1&a=x%20y&flag=&slbh=SW1\nyiwang-app\n1764000000000\nn-1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(canonical_string("POST", "", None, "k", "1", "n", b"").starts_with("POST\n/\n\n"));
    }

    #[test]
    fn signatures_verify_in_either_case_and_only_with_the_secret() {
        let canonical = "POST\n/\n\nk\n1\nn\nx";
        let tag = sign(b"secret", canonical);
        assert_eq!(tag.len(), 64);
        assert!(signature_matches(b"secret", canonical, &tag));
        assert!(signature_matches(b"secret", canonical, &tag.to_uppercase()));
        assert!(!signature_matches(b"other", canonical, &tag));
        assert!(!signature_matches(b"secret", canonical, &tag[..62]));
        assert!(!signature_matches(b"secret", canonical, "zz"));
    }

    #[test]
    fn nonces_are_refused_until_they_expire() {
        let mut log = NonceLog::default();
        let t0 = StdInstant::now();
        assert!(log.remember("a".into(), t0));
        assert!(!log.remember("a".into(), t0 + Duration::from_secs(1)));
        assert!(log.remember("b".into(), t0 + Duration::from_secs(2)));
        assert!(log.remember("a".into(), t0 + NONCE_TTL));
        assert!(!log.remember("a".into(), t0 + NONCE_TTL + Duration::from_secs(1)));
        assert!(log.remember("b".into(), t0 + NONCE_TTL + Duration::from_secs(2)));
    }

    #[test]
    fn timestamps_and_query_values_are_strict() {
        assert_eq!(parse_timestamp("1764000000000"), Some(1_764_000_000_000));
        for bad in ["", "-1", "1.5", "1e3", "1234567890123456", " 1"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
        assert_eq!(percent_decode("a%2Bb+c").as_deref(), Some("a+b+c"));
        assert_eq!(percent_decode("%E7%A8%8E").as_deref(), Some("税"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn uscc_shape() {
        assert!(is_uscc_shaped("91350102MA2Y7K3Q67"));
        assert!(is_uscc_shaped("11010519491231002X"));
        assert!(!is_uscc_shaped("91350102MA2Y7K3Q6"));
        assert!(!is_uscc_shaped("91350102MA2Y7K3QI7"));
    }
}
