//! Archetype 6: a lookup-only provincial filing service (省级备案服务). SOAP 1.1 in UTF-8
//! behind WS-Security UsernameToken, with no change feed and no callbacks: the only way to
//! learn a filing's status is to ask (`LookupStatus`), and the answer carries the time of the
//! question (`cxsj`), not the time the status changed.
//!
//! Checks, in order: envelope, `wsse:Security` / `UsernameToken` (user, password as
//! PasswordDigest `Base64(SHA-1(nonce ‖ created ‖ password))`, or PasswordText when the
//! network allows it), `wsu:Created` within ±5 min, the nonce not seen in the last 10 min,
//! then the operation. Faults are HTTP 500 with dotted codes (`soap:Client.Authentication`,
//! `soap:Client.Replay`, `soap:Client.Expired`, `soap:Client.Validation`,
//! `soap:Client.NotFound`).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant as StdInstant;

use base64::Engine as _;
use http::{Method, StatusCode};
use quick_xml::escape::escape;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use tokio::time::Instant;

use crate::network::{BusinessRequest, Network, Protocol};
use crate::reply::{self, Reply};
use crate::signed_api::NonceLog;
use crate::soap::SOAP_ENV_NS;
use crate::soap::xml::{self, Element};
use crate::store::StatusModel;
use crate::{lock, time};

pub(crate) const ENDPOINT: &str = "/services/FilingService";
pub(crate) const FILING_NS: &str = "http://ba.sim.yiwang/filing";
pub(crate) const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub(crate) const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PASSWORD_TEXT: &str = "#PasswordText";
/// How far `wsu:Created` may be from the server's clock, either way.
pub(crate) const MAX_SKEW_S: i64 = 5 * 60;
/// Required in `FileCase`, checked in this order (every missing one is reported).
pub(crate) const REQUIRED: &[&str] = &["khckh", "tybh", "sxbm", "sqrmc", "xmmc"];

pub(crate) static STATUSES: StatusModel = StatusModel {
    codes: &[
        ("10", "已接收"),
        ("20", "审核中"),
        ("30", "已备案"),
        ("40", "退回"),
        ("50", "撤回"),
    ],
    initial: "10",
    transitions: &[("10", "20"), ("20", "30")],
    paused: &[],
    withdrawn: "50",
    results: &[("30", "准予备案"), ("40", "不予备案")],
    certificate_at: "30",
    certificate_number: |_, seq, at| format!("BAZ{}{seq:06}", at.format("%Y")),
};

/// The protocol, with the nonces it has seen.
#[derive(Default)]
pub(crate) struct Lookup {
    nonces: Mutex<NonceLog>,
}

/// A SOAP 1.1 fault with a dotted code, always HTTP 500.
#[derive(Debug)]
struct Fault {
    code: &'static str,
    string: String,
    fields: Vec<String>,
}

fn fault(code: &'static str, string: impl Into<String>) -> Fault {
    Fault {
        code,
        string: string.into(),
        fields: Vec::new(),
    }
}

impl Fault {
    fn reply(&self) -> Reply {
        let mut detail = String::new();
        for f in &self.fields {
            let _ = write!(detail, "<zd>{}</zd>", escape(f.as_str()));
        }
        let body = format!(
            "<soap:Fault><faultcode>soap:{}</faultcode><faultstring>{}</faultstring><detail>{detail}</detail></soap:Fault>",
            self.code,
            escape(self.string.as_str())
        );
        reply::with_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/xml; charset=UTF-8",
            envelope(&body),
        )
    }
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV_NS}"><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

impl Protocol for Lookup {
    fn statuses(&self) -> &'static StatusModel {
        &STATUSES
    }

    fn handle(&self, net: &Network, req: &BusinessRequest) -> Reply {
        if req.path != ENDPOINT {
            return reply::not_found();
        }
        if req.method != Method::POST {
            return reply::method_not_allowed();
        }
        match self.process(net, req) {
            Ok(xml) => reply::with_body(StatusCode::OK, "text/xml; charset=UTF-8", xml),
            Err(f) => {
                tracing::info!(network = %net.name(), code = f.code, fault = %f.string, "SOAP fault");
                f.reply()
            }
        }
    }

    fn rejection(&self, field: &str) -> Reply {
        Fault {
            fields: vec![field.to_owned()],
            ..fault("Client.Validation", format!("字段校验不通过: {field}"))
        }
        .reply()
    }
}

impl Lookup {
    fn process(&self, net: &Network, req: &BusinessRequest) -> Result<String, Fault> {
        let text = std::str::from_utf8(&req.body)
            .map_err(|_| fault("Client.Format", "报文不是UTF-8编码"))?;
        let doc =
            xml::parse(text).map_err(|e| fault("Client.Format", format!("报文格式错误: {e}")))?;
        if !doc.is(SOAP_ENV_NS, "Envelope") {
            return Err(fault("VersionMismatch", "只支持SOAP 1.1信封"));
        }
        let security = doc
            .children
            .iter()
            .find(|c| c.is(SOAP_ENV_NS, "Header"))
            .and_then(|h| h.children.iter().find(|c| c.is(WSSE_NS, "Security")))
            .ok_or_else(|| fault("Client.Authentication", "缺少wsse:Security"))?;
        self.authenticate(net, security)?;
        let call = doc
            .children
            .iter()
            .find(|c| c.is(SOAP_ENV_NS, "Body"))
            .and_then(|b| b.children.first())
            .filter(|c| c.ns.as_deref() == Some(FILING_NS))
            .ok_or_else(|| fault("Client.Format", "缺少操作元素"))?;
        match call.name.as_str() {
            "FileCase" => file(net, call),
            "LookupStatus" => lookup(net, call),
            other => Err(fault("Client.Format", format!("未知操作: {other}"))),
        }
    }

    /// UsernameToken: the user, the password (digest, or text where allowed), the clock
    /// window, then the nonce (recorded only once everything else holds).
    fn authenticate(&self, net: &Network, security: &Element) -> Result<(), Fault> {
        let auth = |why: &str| fault("Client.Authentication", format!("身份认证失败: {why}"));
        let token = security
            .children
            .iter()
            .find(|c| c.is(WSSE_NS, "UsernameToken"))
            .ok_or_else(|| auth("缺少UsernameToken"))?;
        let (user, password) = &net.cfg.credentials;
        let password_el = token
            .child("Password")
            .ok_or_else(|| auth("缺少Password"))?;
        let nonce = token.text_of("Nonce");
        let created = token
            .children
            .iter()
            .find(|c| c.is(WSU_NS, "Created"))
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth("缺少wsu:Created"))?;
        let text = password_el
            .attr("Type")
            .is_some_and(|t| t.ends_with(PASSWORD_TEXT));
        let ok = if text {
            if !net.cfg.password_text {
                return Err(auth("不接受PasswordText"));
            }
            password_el.text.trim() == password
        } else {
            let raw = nonce
                .and_then(|n| base64::engine::general_purpose::STANDARD.decode(n).ok())
                .ok_or_else(|| auth("Nonce缺失或不是Base64"))?;
            password_el.text.trim() == password_digest(&raw, created, password)
        };
        if token.text_of("Username") != Some(user.as_str()) || !ok {
            return Err(auth("用户名或密码错误"));
        }
        let at = chrono::DateTime::parse_from_rfc3339(created)
            .map_err(|_| fault("Client.Expired", "Created不是RFC 3339时间"))?;
        if (time::now() - at).num_seconds().abs() > MAX_SKEW_S {
            return Err(fault("Client.Expired", "Created超出时间窗口(±5分钟)"));
        }
        if let Some(nonce) = nonce
            && !lock(&self.nonces).remember(format!("{user}\n{nonce}"), StdInstant::now())
        {
            return Err(fault("Client.Replay", "Nonce已使用"));
        }
        Ok(())
    }
}

/// `Base64(SHA-1(nonce ‖ created ‖ password))`, the WS-Security PasswordDigest.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// `FileCase`: every missing field at once; a repeated `khckh` returns the first filing.
fn file(net: &Network, call: &Element) -> Result<String, Fault> {
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|f| call.text_of(f).is_none())
        .map(|f| (*f).to_owned())
        .collect();
    if !missing.is_empty() {
        let string = format!("缺少必填字段: {}", missing.join(","));
        return Err(Fault {
            fields: missing,
            ..fault("Client.Validation", string)
        });
    }
    let mut fields = Map::new();
    for c in &call.children {
        fields.insert(c.name.clone(), Value::String(c.text.trim().to_owned()));
    }
    let key = call.text_of("khckh").unwrap_or_default().to_owned();
    let unified = call.text_of("tybh").map(str::to_owned);
    let (case, created) = net.write(|s| s.submit(&key, unified, fields, Instant::now()));
    tracing::info!(network = %net.name(), bah = %case.ministry_case_number, khckh = %key, created, "filing received");
    Ok(response(
        "FileCase",
        &format!(
            "<bah>{}</bah><jssj>{}</jssj>",
            case.ministry_case_number,
            case.received_at.to_rfc3339()
        ),
    ))
}

/// `LookupStatus` by `bah` (the filing number) or `khckh` (the client reference): the
/// current status only, stamped with the query time.
fn lookup(net: &Network, call: &Element) -> Result<String, Fault> {
    let case = net.write(|s| {
        let idx = match (call.text_of("bah"), call.text_of("khckh")) {
            (Some(n), _) => s.index_of_number(n),
            (None, Some(k)) => s.index_of_key(k),
            (None, None) => return Err(fault("Client.Validation", "缺少bah或khckh")),
        }
        .ok_or_else(|| fault("Client.NotFound", "备案不存在"))?;
        s.record_lookup(idx);
        s.case(idx)
            .cloned()
            .ok_or_else(|| fault("Client.NotFound", "备案不存在"))
    })?;
    let mut inner = format!(
        "<bah>{}</bah><khckh>{}</khckh><zt>{}</zt><ztmc>{}</ztmc><cxsj>{}</cxsj>",
        case.ministry_case_number,
        escape(case.idempotency_key.as_str()),
        case.status,
        case.status_name,
        time::now().to_rfc3339()
    );
    if let Some(r) = &case.result {
        let _ = write!(inner, "<yj>{}</yj>", escape(r.as_str()));
    }
    if let Some(c) = &case.certificate_number {
        let _ = write!(inner, "<bazh>{c}</bazh>");
    }
    Ok(response("LookupStatus", &inner))
}

fn response(op: &str, inner: &str) -> String {
    envelope(&format!(
        r#"<ns1:{op}Response xmlns:ns1="{FILING_NS}">{inner}</ns1:{op}Response>"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_digest_matches_the_oasis_example() {
        // Computed independently (Python's hashlib and base64) for these inputs.
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("WScqanjCEAC4mQoBE07sAQ==")
            .expect("base64");
        assert_eq!(
            password_digest(&nonce, "2003-07-16T01:24:32Z", "IloveDogs"),
            "cywFYG+KaPMK3PCWR+m+DWtqzac="
        );
    }
}
