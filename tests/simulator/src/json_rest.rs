//! Archetype 1: JSON REST behind a login token, market-regulation (市场监管) style.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::network::{BusinessRequest, Network, Protocol};
use crate::reply::{self, Reply};
use crate::store::{SimCase, StatusModel, Store};
use crate::time;

/// Status codes of one Jinan deployment (see DOMAIN.md).
pub(crate) static STATUSES: StatusModel = StatusModel {
    codes: &[
        ("1", "已接件"),
        ("3", "已受理"),
        ("4", "不受理"),
        ("6", "补正"),
        ("8", "部门开始办理"),
        ("9", "特别程序开始"),
        ("10", "特别程序结束"),
        ("11", "办结(通过)"),
        ("12", "撤回"),
    ],
    initial: "1",
    transitions: &[
        ("1", "3"),
        ("3", "8"),
        ("8", "11"),
        ("6", "8"),
        ("9", "10"),
        ("10", "8"),
    ],
    paused: &["6", "9"],
    withdrawn: "12",
    results: &[("11", "准予许可"), ("4", "不予受理")],
    certificate_at: "11",
    certificate_number: |prefix, seq, _| format!("{prefix}ZZ{seq:08}"),
};

/// ID document types: code sets A and B of DOMAIN.md.
pub(crate) const ID_TYPES: &[&str] = &[
    "111", "113", "414", "513", "990", "001", "099", "516", "999",
];
/// `sqrlx`: 0 natural person, 1 enterprise, 2 other.
pub(crate) const APPLICANT_KINDS: &[&str] = &["0", "1", "2"];
/// Checked in this order; the first one missing is reported.
pub(crate) const REQUIRED: &[&str] = &[
    "ywlsh",
    "bjbh_tyjg",
    "sxbm",
    "sxbb",
    "sqrlx",
    "sqrmc",
    "bjsqrzjlxdm",
    "zjhm",
    "lxdh",
    "sqsj",
];

pub(crate) const TOKEN_HEADER: &str = "x-auth-token";
const MAX_CHANGES: u64 = 1000;
const DEFAULT_CHANGES: u64 = 100;

const CASE_PATHS: &[&str] = &[
    "/api/case/submit",
    "/api/case/query",
    "/api/case/withdraw",
    "/api/case/supplement",
    "/api/case/changes",
];
const LOGIN_PATH: &str = "/api/auth/login";

pub(crate) struct JsonRest;

impl Protocol for JsonRest {
    fn statuses(&self) -> &'static StatusModel {
        &STATUSES
    }

    fn handle(&self, net: &Network, req: &BusinessRequest) -> Reply {
        let path = req.path.as_str();
        let known = path == LOGIN_PATH || CASE_PATHS.contains(&path);
        if !known {
            return reply::not_found();
        }
        if req.method != Method::POST {
            return reply::method_not_allowed();
        }
        if path != LOGIN_PATH {
            let token = req
                .headers
                .get(TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if token.is_empty() || !net.token_valid(token) {
                return answer(Err(Rejection::new("1002", "令牌无效或已过期")));
            }
        }
        let body = match parse_object(&req.body) {
            Ok(body) => body,
            Err(rejection) => return answer(Err(rejection)),
        };
        answer(match path {
            LOGIN_PATH => login(net, &body),
            "/api/case/submit" => submit(net, body),
            "/api/case/query" => query(net, &body),
            "/api/case/withdraw" => withdraw(net, &body),
            "/api/case/supplement" => supplement(net, &body),
            _ => changes(net, &body),
        })
    }

    fn rejection(&self, field: &str) -> Reply {
        answer(Err(Rejection::field("2001", "字段校验不通过", field)))
    }
}

/// A business error: HTTP 200 with a non-zero code.
struct Rejection {
    code: &'static str,
    msg: String,
    field: Option<String>,
}

impl Rejection {
    fn new(code: &'static str, msg: &str) -> Self {
        Self {
            code,
            msg: msg.to_owned(),
            field: None,
        }
    }

    /// Messages name the field after the last `": "`; `data.zdmc` carries it too.
    fn field(code: &'static str, what: &str, field: &str) -> Self {
        Self {
            code,
            msg: format!("{what}: {field}"),
            field: Some(field.to_owned()),
        }
    }

    fn missing(field: &str) -> Self {
        Self::field("2001", "缺少必填字段", field)
    }

    fn wrong_type(field: &str) -> Self {
        Self::field("2002", "字段类型错误", field)
    }
}

type Checked<T> = Result<T, Rejection>;

fn answer(outcome: Checked<Value>) -> Reply {
    let body = match outcome {
        Ok(data) => json!({"code": "0000", "msg": "成功", "data": data}),
        Err(r) => json!({
            "code": r.code,
            "msg": r.msg,
            "data": r.field.map(|f| json!({"zdmc": f})),
        }),
    };
    reply::json(StatusCode::OK, &body)
}

fn parse_object(body: &[u8]) -> Checked<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Rejection::new("2002", "请求报文格式错误: 应为JSON对象")),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, field: &str) -> Checked<&'a str> {
    match optional(obj, field)? {
        Some(value) => Ok(value),
        None => Err(Rejection::missing(field)),
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

/// `clxx`: an array of `{clmc, clgs, sha256, dz}`; `clmc` is required in each.
fn check_materials(value: Option<&Value>, required_here: bool) -> Checked<()> {
    match value {
        None | Some(Value::Null) if required_here => Err(Rejection::missing("clxx")),
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.is_empty() && required_here => {
            Err(Rejection::missing("clxx"))
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Value::Object(material) = item else {
                    return Err(Rejection::wrong_type(&format!("clxx[{i}]")));
                };
                for field in ["clmc", "clgs", "sha256", "dz"] {
                    optional(material, field)
                        .map_err(|_| Rejection::wrong_type(&format!("clxx[{i}].{field}")))?;
                }
                if optional(material, "clmc").ok().flatten().is_none() {
                    return Err(Rejection::missing(&format!("clxx[{i}].clmc")));
                }
            }
            Ok(())
        }
        Some(_) => Err(Rejection::wrong_type("clxx")),
    }
}

fn login(net: &Network, body: &Map<String, Value>) -> Checked<Value> {
    let given = (
        body.get("username").and_then(Value::as_str),
        body.get("password").and_then(Value::as_str),
    );
    let (user, pass) = &net.cfg.credentials;
    if given != (Some(user.as_str()), Some(pass.as_str())) {
        return Err(Rejection::new("1001", "用户名或密码错误"));
    }
    Ok(json!({
        "token": net.issue_token(),
        "expires_in": net.cfg.token_ttl.as_secs(),
    }))
}

fn submit(net: &Network, body: Map<String, Value>) -> Checked<Value> {
    for field in REQUIRED {
        required(&body, field)?;
    }
    let kind = required(&body, "sqrlx")?;
    if !APPLICANT_KINDS.contains(&kind) {
        return Err(Rejection::field("2005", "申请人类型不在代码表中", "sqrlx"));
    }
    optional(&body, "fddbr")?;
    if optional(&body, "tyshxydm")?.is_none() && kind == "1" {
        return Err(Rejection::missing("tyshxydm"));
    }
    if !ID_TYPES.contains(&required(&body, "bjsqrzjlxdm")?) {
        return Err(Rejection::field(
            "2004",
            "证件类型代码不在代码表中",
            "bjsqrzjlxdm",
        ));
    }
    if time::parse_dashed(required(&body, "sqsj")?).is_none() {
        return Err(Rejection::field(
            "2003",
            "时间格式错误(应为yyyy-MM-dd HH:mm:ss)",
            "sqsj",
        ));
    }
    match body.get("bdxx") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => return Err(Rejection::wrong_type("bdxx")),
    }
    check_materials(body.get("clxx"), false)?;

    let key = required(&body, "ywlsh")?.to_owned();
    let unified = required(&body, "bjbh_tyjg")?.to_owned();
    let (case, created) = net.write(|s| s.submit(&key, Some(unified), body, Instant::now()));
    tracing::info!(
        network = %net.name(),
        bjbh = %case.ministry_case_number,
        ywlsh = %key,
        created,
        "case submitted"
    );
    Ok(json!({
        "bjbh": case.ministry_case_number,
        "slsj": time::dashed(&case.received_at),
    }))
}

/// The case named by `bjbh`, or by `ywlsh` (the "did my timed-out submit land?" lookup).
fn locate(store: &Store, body: &Map<String, Value>) -> Checked<usize> {
    let number = optional(body, "bjbh")?;
    let key = optional(body, "ywlsh")?;
    let found = match (number, key) {
        (None, None) => return Err(Rejection::missing("bjbh")),
        (Some(n), None) => store.index_of_number(n),
        (None, Some(k)) => store.index_of_key(k),
        (Some(n), Some(k)) => store
            .index_of_number(n)
            .filter(|i| store.index_of_key(k) == Some(*i)),
    };
    let field = if number.is_some() { "bjbh" } else { "ywlsh" };
    found.ok_or_else(|| Rejection::field("3001", "办件不存在", field))
}

fn status_view(case: &SimCase) -> Value {
    let last = case.history.last().map(|h| time::compact(&h.at));
    json!({
        "bjbh": case.ministry_case_number,
        "bjzt": case.status,
        "ztmc": case.status_name,
        "ztsj": last,
    })
}

fn query(net: &Network, body: &Map<String, Value>) -> Checked<Value> {
    net.read(|s| {
        let idx = locate(s, body)?;
        let case = s
            .case(idx)
            .ok_or_else(|| Rejection::field("3001", "办件不存在", "bjbh"))?;
        let mut view = status_view(case);
        if let Value::Object(map) = &mut view {
            map.insert("ywlsh".into(), json!(case.idempotency_key));
            map.insert("bljg".into(), json!(case.result));
            map.insert("zzbh".into(), json!(case.certificate_number));
            let history: Vec<Value> = case
                .history
                .iter()
                .map(|h| json!({"bjzt": h.code, "ztmc": h.name, "ztsj": time::compact(&h.at)}))
                .collect();
            map.insert("lsjl".into(), Value::Array(history));
        }
        Ok(view)
    })
}

fn withdraw(net: &Network, body: &Map<String, Value>) -> Checked<Value> {
    net.write(|s| {
        let idx = locate(s, body)?;
        let reason = required(body, "yy")?;
        let current = s.case(idx).map(|c| c.status.clone()).unwrap_or_default();
        let model = s.model();
        if current != model.withdrawn {
            if model.is_terminal(&current) {
                return Err(Rejection::field("3002", "当前状态不允许撤回", "bjzt"));
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
            .ok_or_else(|| Rejection::field("3001", "办件不存在", "bjbh"))
    })
}

fn supplement(net: &Network, body: &Map<String, Value>) -> Checked<Value> {
    net.write(|s| {
        let idx = locate(s, body)?;
        check_materials(body.get("clxx"), true)?;
        let current = s.case(idx).map(|c| c.status.clone()).unwrap_or_default();
        if s.model().is_terminal(&current) {
            return Err(Rejection::field("3002", "当前状态不允许补正", "bjzt"));
        }
        s.record_supplement(idx, body.get("clxx").cloned().unwrap_or(Value::Null));
        if current == "6" {
            s.set_status(idx, "8", Some("已补正".to_owned()), Instant::now());
        }
        s.case(idx)
            .map(status_view)
            .ok_or_else(|| Rejection::field("3001", "办件不存在", "bjbh"))
    })
}

fn changes(net: &Network, body: &Map<String, Value>) -> Checked<Value> {
    let after = match optional(body, "since")? {
        None => 0,
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| Rejection::field("2002", "游标无效", "since"))?,
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_CHANGES,
        Some(v) => v.as_u64().ok_or_else(|| Rejection::wrong_type("limit"))?,
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
                    "bjbh": c.ministry_case_number,
                    "ywlsh": c.idempotency_key,
                    "bjzt": c.entry.code,
                    "ztmc": c.entry.name,
                    "ztsj": time::compact(&c.entry.at),
                    "bljg": c.result,
                    "zzbh": c.certificate_number,
                })
            })
            .collect();
        Ok(json!({
            "changes": changes,
            "cursor": cursor.to_string(),
            "has_more": has_more,
        }))
    })
}
