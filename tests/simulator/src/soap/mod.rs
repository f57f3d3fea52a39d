//! Archetype 2: SOAP 1.1 WebService in GB18030, housing & construction (住建) style.

mod wsdl;
pub(crate) mod xml;

use std::fmt::Write as _;

use base64::Engine as _;
use encoding_rs::{DecoderResult, GB18030};
use http::{Method, StatusCode};
use quick_xml::escape::escape;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::network::{BusinessRequest, Network, Protocol};
use crate::reply::{self, Reply};
use crate::store::{SimCase, StatusModel, Store};
use crate::time;
use xml::{Element, XmlError};

pub(crate) const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_ENV_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
pub(crate) const CASE_NS: &str = "http://zjt.sim.yiwang/case";
pub(crate) const ENDPOINT: &str = "/services/CaseService";

pub(crate) static STATUSES: StatusModel = StatusModel {
    codes: &[
        ("01", "收件"),
        ("02", "受理"),
        ("03", "审查"),
        ("04", "补正"),
        ("05", "现场踏勘"),
        ("06", "审批决定"),
        ("07", "发证"),
        ("08", "不予许可"),
        ("09", "办结"),
        ("10", "撤回"),
    ],
    initial: "01",
    transitions: &[
        ("01", "02"),
        ("02", "03"),
        ("03", "05"),
        ("05", "06"),
        ("06", "07"),
        ("07", "09"),
        ("04", "03"),
    ],
    paused: &["04"],
    withdrawn: "10",
    results: &[("06", "准予许可"), ("08", "不予许可")],
    certificate_at: "07",
    certificate_number: |_, seq, at| format!("JZ{}{seq:06}", at.format("%Y")),
};

/// ID document types: code set B only.
pub(crate) const ID_TYPES: &[&str] = &["001", "099", "516", "999"];
/// `sqrlx`: 1 natural person, 2 enterprise, 3 other (not archetype 1's code set).
pub(crate) const APPLICANT_KINDS: &[&str] = &["1", "2", "3"];
/// Checked in this order; the first one missing is reported.
pub(crate) const REQUIRED: &[&str] = &[
    "lsh", "tybh", "sxbm", "sxbb", "sqrmc", "sqrlx", "zjlx", "zjhm", "lxdh", "sqsj", "xmmc",
];

pub(crate) struct Soap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    SubmitCase,
    QueryStatus,
    WithdrawCase,
}

impl Operation {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "SubmitCase" => Some(Self::SubmitCase),
            "QueryStatus" => Some(Self::QueryStatus),
            "WithdrawCase" => Some(Self::WithdrawCase),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::SubmitCase => "SubmitCase",
            Self::QueryStatus => "QueryStatus",
            Self::WithdrawCase => "WithdrawCase",
        }
    }
}

/// A SOAP 1.1 Fault (always HTTP 500).
#[derive(Debug)]
struct Fault {
    code: &'static str,
    string: String,
    field: Option<String>,
    cwdm: &'static str,
    offset: Option<usize>,
}

impl Fault {
    fn client(cwdm: &'static str, string: impl Into<String>) -> Self {
        Self {
            code: "soap:Client",
            string: string.into(),
            field: None,
            cwdm,
            offset: None,
        }
    }

    /// A data error naming the field after the last `": "` and in `<zdmc>`.
    fn field(cwdm: &'static str, what: &str, field: &str) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::client(cwdm, format!("{what}: {field}"))
        }
    }

    fn missing(field: &str) -> Self {
        Self::field("E1001", "缺少必填字段", field)
    }

    fn reply(&self) -> Reply {
        let mut detail = String::new();
        if let Some(field) = &self.field {
            let _ = write!(detail, "<zdmc>{}</zdmc>", escape(field.as_str()));
        }
        let _ = write!(detail, "<cwdm>{}</cwdm>", self.cwdm);
        if let Some(offset) = self.offset {
            let _ = write!(detail, "<wz>{offset}</wz>");
        }
        let body = format!(
            "<soap:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring><detail>{detail}</detail></soap:Fault>",
            self.code,
            escape(self.string.as_str())
        );
        reply::gb18030_xml(StatusCode::INTERNAL_SERVER_ERROR, &envelope(&body))
    }
}

impl Protocol for Soap {
    fn statuses(&self) -> &'static StatusModel {
        &STATUSES
    }

    fn handle(&self, net: &Network, req: &BusinessRequest) -> Reply {
        if req.path != ENDPOINT {
            return reply::not_found();
        }
        let wants_wsdl = req
            .query
            .as_deref()
            .is_some_and(|q| q.eq_ignore_ascii_case("wsdl"));
        match req.method {
            Method::GET if wants_wsdl => reply::with_body(
                StatusCode::OK,
                "text/xml; charset=UTF-8",
                wsdl::document(&net.base_url()).into_bytes(),
            ),
            Method::POST => match process(net, req) {
                Ok(xml) => reply::gb18030_xml(StatusCode::OK, &xml),
                Err(fault) => {
                    tracing::info!(network = %net.name(), fault = %fault.string, "SOAP fault");
                    fault.reply()
                }
            },
            _ => reply::method_not_allowed(),
        }
    }

    fn rejection(&self, field: &str) -> Reply {
        Fault::field("E1004", "字段校验不通过", field).reply()
    }
}

/// Decode a GB18030 body, or give the byte offset where the first bad sequence starts.
pub(crate) fn decode_gb18030(bytes: &[u8]) -> Result<String, usize> {
    let mut decoder = GB18030.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(4));
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(out),
        DecoderResult::Malformed(bad, after) => Err(read - usize::from(bad) - usize::from(after)),
        DecoderResult::OutputFull => Err(read),
    }
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="GB18030"?><soap:Envelope xmlns:soap="{SOAP_ENV_NS}"><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

/// Children of an operation response, written unqualified.
#[derive(Default)]
struct Children(String);

impl Children {
    fn leaf(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => {
                let _ = write!(self.0, "<{name}>{}</{name}>", escape(v));
            }
            None => {
                let _ = write!(self.0, "<{name}/>");
            }
        }
        self
    }

    fn raw(&mut self, xml: &str) -> &mut Self {
        self.0.push_str(xml);
        self
    }

    fn response(&self, op: Operation) -> String {
        let name = op.name();
        envelope(&format!(
            r#"<ns1:{name}Response xmlns:ns1="{CASE_NS}">{}</ns1:{name}Response>"#,
            self.0
        ))
    }
}

fn process(net: &Network, req: &BusinessRequest) -> Result<String, Fault> {
    let text = decode_gb18030(&req.body).map_err(|offset| Fault {
        code: "soap:Server",
        string: format!(
            "报文编码错误: 第{offset}字节起不是有效的GB18030编码 (byte offset {offset})"
        ),
        field: None,
        cwdm: "E9001",
        offset: Some(offset),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let doc = xml::parse(text).map_err(|e| match e {
        XmlError::DocType => Fault::client("E1000", "报文格式错误: 不允许DOCTYPE声明"),
        XmlError::Malformed(why) => Fault::client("E1000", format!("报文格式错误: {why}")),
    })?;
    if doc.name != "Envelope" {
        return Err(Fault::client(
            "E1000",
            "报文格式错误: 根元素不是soap:Envelope",
        ));
    }
    if doc.ns.as_deref() != Some(SOAP_ENV_NS) {
        let version = if doc.ns.as_deref() == Some(SOAP12_ENV_NS) {
            "只支持SOAP 1.1"
        } else {
            "未知的SOAP信封命名空间"
        };
        return Err(Fault {
            code: "soap:VersionMismatch",
            ..Fault::client("E1000", version)
        });
    }
    let body = doc
        .children
        .iter()
        .find(|c| c.is(SOAP_ENV_NS, "Body"))
        .ok_or_else(|| Fault::client("E1000", "报文格式错误: 缺少soap:Body"))?;
    let call = body
        .children
        .first()
        .ok_or_else(|| Fault::client("E1000", "报文格式错误: soap:Body为空"))?;
    let op = Some(call)
        .filter(|c| c.ns.as_deref() == Some(CASE_NS))
        .and_then(|c| Operation::from_name(&c.name))
        .ok_or_else(|| {
            Fault::client(
                "E1000",
                format!(
                    "未知操作: {{{}}}{}",
                    call.ns.as_deref().unwrap_or(""),
                    call.name
                ),
            )
        })?;
    if let Some(action) = req.headers.get("soapaction").and_then(|v| v.to_str().ok()) {
        // `"urn:SubmitCase"`, `SubmitCase` and `http://…/SubmitCase` all name SubmitCase.
        let action = action.trim().trim_matches('"');
        let named = action.rsplit([':', '/']).next().unwrap_or(action);
        if !action.is_empty() && named != op.name() {
            return Err(Fault::client(
                "E1000",
                format!("SOAPAction与请求体不一致: {action}"),
            ));
        }
    }
    match op {
        Operation::SubmitCase => submit(net, call),
        Operation::QueryStatus => query(net, call),
        Operation::WithdrawCase => withdraw(net, call),
    }
}

fn required<'a>(call: &'a Element, field: &str) -> Result<&'a str, Fault> {
    call.text_of(field).ok_or_else(|| Fault::missing(field))
}

fn submit(net: &Network, call: &Element) -> Result<String, Fault> {
    for field in REQUIRED {
        required(call, field)?;
    }
    if !APPLICANT_KINDS.contains(&required(call, "sqrlx")?) {
        return Err(Fault::field("E1003", "代码值不在代码表中", "sqrlx"));
    }
    if !ID_TYPES.contains(&required(call, "zjlx")?) {
        return Err(Fault::field("E1003", "代码值不在代码表中", "zjlx"));
    }
    if time::parse_compact(required(call, "sqsj")?).is_none() {
        return Err(Fault::field(
            "E1002",
            "时间格式错误(应为yyyyMMddHHmmss)",
            "sqsj",
        ));
    }
    let fields = fields_of(call)?;
    let key = required(call, "lsh")?.to_owned();
    let unified = required(call, "tybh")?.to_owned();
    let (case, created) = net.write(|s| s.submit(&key, Some(unified), fields, Instant::now()));
    tracing::info!(
        network = %net.name(),
        ywh = %case.ministry_case_number,
        lsh = %key,
        created,
        "case submitted"
    );
    Ok(Children::default()
        .leaf("jg", Some("0"))
        .leaf("ywh", Some(&case.ministry_case_number))
        .leaf("slsj", Some(&time::compact(&case.received_at)))
        .response(Operation::SubmitCase))
}

/// The submit's children as a field map; `cls` becomes an array of material objects.
fn fields_of(call: &Element) -> Result<Map<String, Value>, Fault> {
    let mut fields = Map::new();
    for child in &call.children {
        if fields.contains_key(&child.name) {
            continue;
        }
        let value = if child.name == "cls" {
            Value::Array(materials(child)?)
        } else {
            Value::String(child.text.trim().to_owned())
        };
        fields.insert(child.name.clone(), value);
    }
    Ok(fields)
}

/// `<cl><mc/><lx/><zy/><dz/>[<nr>base64</nr>]</cl>`: `mc` required; inline content, when
/// sent, must be base64 and match the `zy` digest.
fn materials(cls: &Element) -> Result<Vec<Value>, Fault> {
    let mut out = Vec::new();
    for (i, cl) in cls.children.iter().filter(|c| c.name == "cl").enumerate() {
        let at = |field: &str| format!("cls/cl[{}]/{field}", i + 1);
        if cl.text_of("mc").is_none() {
            return Err(Fault::missing(&at("mc")));
        }
        let mut material = Map::new();
        for part in &cl.children {
            let value = if part.name == "nr" {
                let content = base64::engine::general_purpose::STANDARD
                    .decode(part.text.split_whitespace().collect::<String>())
                    .map_err(|_| Fault::field("E1004", "字段校验不通过", &at("nr")))?;
                let digest = hex::encode(Sha256::digest(&content));
                if let Some(claimed) = cl.text_of("zy")
                    && !claimed.eq_ignore_ascii_case(&digest)
                {
                    return Err(Fault::field("E1004", "字段校验不通过", &at("zy")));
                }
                json!({"bytes": content.len(), "sha256": digest})
            } else {
                Value::String(part.text.trim().to_owned())
            };
            material.insert(part.name.clone(), value);
        }
        out.push(Value::Object(material));
    }
    Ok(out)
}

/// The case named by `<ywh>` or, failing that, `<lsh>`.
fn locate(store: &Store, call: &Element) -> Result<usize, Fault> {
    if let Some(number) = call.text_of("ywh") {
        store
            .index_of_number(number)
            .ok_or_else(|| Fault::field("E2001", "办件不存在", "ywh"))
    } else if let Some(key) = call.text_of("lsh") {
        store
            .index_of_key(key)
            .ok_or_else(|| Fault::field("E2001", "办件不存在", "lsh"))
    } else {
        Err(Fault::missing("ywh"))
    }
}

fn found(case: Option<&SimCase>) -> Result<&SimCase, Fault> {
    case.ok_or_else(|| Fault::field("E2001", "办件不存在", "ywh"))
}

fn query(net: &Network, call: &Element) -> Result<String, Fault> {
    net.read(|s| {
        let case = found(s.case(locate(s, call)?))?;
        let mut history = String::from("<lsjl>");
        for h in &case.history {
            let mut jl = Children::default();
            jl.leaf("zt", Some(&h.code))
                .leaf("ztmc", Some(&h.name))
                .leaf("ztsj", Some(&time::compact(&h.at)));
            let _ = write!(history, "<jl>{}</jl>", jl.0);
        }
        history.push_str("</lsjl>");
        let last = case.history.last().map(|h| time::compact(&h.at));
        Ok(Children::default()
            .leaf("ywh", Some(&case.ministry_case_number))
            .leaf("lsh", Some(&case.idempotency_key))
            .leaf("zt", Some(&case.status))
            .leaf("ztmc", Some(&case.status_name))
            .leaf("ztsj", last.as_deref())
            .leaf("yj", case.result.as_deref())
            .leaf("zsbh", case.certificate_number.as_deref())
            .raw(&history)
            .response(Operation::QueryStatus))
    })
}

fn withdraw(net: &Network, call: &Element) -> Result<String, Fault> {
    net.write(|s| {
        let idx = locate(s, call)?;
        let reason = required(call, "yy")?;
        let current = found(s.case(idx))?.status.clone();
        let model = s.model();
        if current != model.withdrawn {
            if model.is_terminal(&current) {
                return Err(Fault::field("E2002", "当前状态不允许撤回", "zt"));
            }
            s.set_status(
                idx,
                model.withdrawn,
                Some(reason.to_owned()),
                Instant::now(),
            );
        }
        let case = found(s.case(idx))?;
        let last = case.history.last().map(|h| time::compact(&h.at));
        Ok(Children::default()
            .leaf("jg", Some("0"))
            .leaf("ywh", Some(&case.ministry_case_number))
            .leaf("zt", Some(&case.status))
            .leaf("ztmc", Some(&case.status_name))
            .leaf("ztsj", last.as_deref())
            .response(Operation::WithdrawCase))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb18030_round_trip_including_four_byte_sequences() {
        let text = "张三丰 𠀀 住建";
        let (bytes, _, _) = GB18030.encode(text);
        assert_ne!(bytes.as_ref(), text.as_bytes());
        assert_eq!(decode_gb18030(&bytes).as_deref(), Ok(text));
    }

    #[test]
    fn undecodable_byte_offset_is_reported() {
        let mut bytes = b"<a>ok".to_vec();
        bytes.push(0xFF);
        bytes.extend_from_slice(b"</a>");
        assert_eq!(decode_gb18030(&bytes), Err(5));
    }
}
