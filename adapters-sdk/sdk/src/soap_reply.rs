//! Reading a SOAP 1.1 reply: the fault first, then the HTTP status; fault codes classified
//! through a per-adapter table.
//!
//! Why the fault comes first: SOAP 1.1 services answer a fault with HTTP 500, so a status
//! check (`error_for_status`) would turn every fault — a validation error included — into a
//! retry. Why "unknown server fault after a submit" is *ambiguous*: a ministry that recorded
//! a filing and then failed while answering replies with a generic `Server` fault; resending
//! blindly relies on the ministry's own duplicate check for exactly-once. Ambiguous makes the
//! gateway ask (`query-status idem:<key>`) before it resends. After a read-only call the same
//! fault is simply retryable.
//!
//! Fault codes are read without their namespace prefix (`soap:Server.Busy` → `Server.Busy`),
//! and a dotted code falls back to its parents (`Server.Busy.Db` → `Server.Busy` → `Server`)
//! until a table row names one.

use std::time::SystemTime;

use crate::error::{self, Effect, classify_status_at, retry_after_ms};
use crate::http::{ResponseExt, charset};
use crate::soap::{self, SoapError};
use crate::xml::Element;
use crate::{AdapterError, HttpResponse, Rejection, RetryableError, ambiguous, retryable, text};

/// What a fault means for the request that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// The data is wrong: resending the same request fails again (permanent).
    Rejected,
    /// The ministry already holds this request (an earlier attempt landed): ambiguous, so the
    /// gateway looks the case up by its idempotency key instead of resending.
    Duplicate,
    /// Nothing was done; try again later (honouring Retry-After).
    Retryable,
    /// The ministry may have acted: verify before resending.
    Ambiguous,
}

/// A SOAP fault, as read from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode` without its namespace prefix: `Client`, `Server.Busy`, `Client.Duplicate`.
    pub code: String,
    /// `faultstring`.
    pub string: String,
    /// `faultactor`, if present.
    pub actor: Option<String>,
    /// The `detail` element, if present.
    pub detail: Option<Element>,
    /// The reply's `Retry-After`, in milliseconds, if it had a valid one.
    pub retry_after_ms: Option<u64>,
}

impl Fault {
    /// The trimmed, non-empty text at `path` inside `detail` (`err/code`).
    pub fn detail_text(&self, path: &str) -> Option<&str> {
        self.detail
            .as_ref()?
            .text_of(path)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether the code is `code` or one of its dotted sub-codes (`is("Client")` holds for
    /// `Client.Validation`, not for `ClientX`).
    pub fn is(&self, code: &str) -> bool {
        self.code == code
            || self
                .code
                .strip_prefix(code)
                .is_some_and(|rest| rest.starts_with('.'))
    }
}

/// An adapter's fault classes: rows by fault code (dotted, no prefix) and, optionally, by
/// the ministry's own error code found in `detail`. Codes no row names get the defaults:
/// `Client…`/`Sender…`, `VersionMismatch` and `MustUnderstand` are rejected; anything else
/// (`Server…`, unknown) is ambiguous after a call that may act and retryable after a
/// read-only one.
///
/// ```
/// use yiwang_adapter_sdk::soap_reply::{FaultClass, FaultTable};
/// const FAULTS: FaultTable = FaultTable {
///     codes: &[("Server.Busy", FaultClass::Retryable), ("Client.Duplicate", FaultClass::Duplicate)],
///     detail_code: Some("cwdm"),
///     details: &[("E9001", FaultClass::Rejected)],
/// };
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FaultTable {
    /// Fault code → class. A row covers the code's dotted sub-codes unless a longer row names
    /// them. Do not list bare `Server` as retryable: that is the unsafe blind resend.
    pub codes: &'static [(&'static str, FaultClass)],
    /// The path inside `detail` of the ministry's own error code, if it writes one.
    pub detail_code: Option<&'static str>,
    /// Ministry error code (at `detail_code`) → class; consulted before `codes`.
    pub details: &'static [(&'static str, FaultClass)],
}

impl FaultTable {
    /// A table with no rows: the defaults only.
    pub const DEFAULTS: FaultTable = FaultTable {
        codes: &[],
        detail_code: None,
        details: &[],
    };

    /// The ministry's own error code, if the table says where it is and the fault has one.
    pub fn ministry_code<'f>(&self, fault: &'f Fault) -> Option<&'f str> {
        fault.detail_text(self.detail_code?)
    }

    /// The class of `fault` after a call with `effect`.
    pub fn classify(&self, fault: &Fault, effect: Effect) -> FaultClass {
        let by_detail = self
            .ministry_code(fault)
            .and_then(|m| lookup(self.details, m));
        if let Some(class) = by_detail {
            return class;
        }
        let mut code = fault.code.as_str();
        loop {
            if let Some(class) = lookup(self.codes, code) {
                return class;
            }
            match code.rsplit_once('.') {
                Some((parent, _)) => code = parent,
                None => break,
            }
        }
        match code {
            "Client" | "Sender" | "VersionMismatch" | "MustUnderstand" => FaultClass::Rejected,
            _ => match effect {
                Effect::MayAct => FaultClass::Ambiguous,
                Effect::ReadOnly => FaultClass::Retryable,
            },
        }
    }

    /// The classified error for `fault` after a call with `effect`; a rejection names
    /// `field` (a unified JSON pointer) and carries the ministry's code (else the fault code).
    pub fn error(&self, fault: &Fault, effect: Effect, field: Option<String>) -> AdapterError {
        let code = self.ministry_code(fault).unwrap_or(&fault.code);
        let message = format!("SOAP fault {} ({code}): {}", fault.code, fault.string);
        match self.classify(fault, effect) {
            FaultClass::Rejected => AdapterError::Permanent(Rejection {
                field,
                code: Some(code.to_owned()),
                message,
            }),
            FaultClass::Duplicate => ambiguous(format!(
                "{message}; the ministry already holds this request: look it up before resending"
            )),
            FaultClass::Retryable => AdapterError::Retryable(RetryableError {
                message,
                retry_after_ms: fault.retry_after_ms,
            }),
            FaultClass::Ambiguous => ambiguous(format!(
                "{message}; the request may have been acted on: verify before resending"
            )),
        }
    }
}

fn lookup(rows: &[(&str, FaultClass)], code: &str) -> Option<FaultClass> {
    rows.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, class)| *class)
}

/// What a SOAP reply said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The response element (inside `Body`) and the reply as text.
    Response(Element, String),
    /// A fault (whatever the HTTP status) and the reply as text.
    Fault(Fault, String),
}

impl Reply {
    /// The response element and text, or the fault classified by `table`.
    pub fn into_response(
        self,
        table: &FaultTable,
        effect: Effect,
    ) -> Result<(Element, String), AdapterError> {
        match self {
            Reply::Response(payload, raw) => Ok((payload, raw)),
            Reply::Fault(fault, _) => Err(table.error(&fault, effect, None)),
        }
    }
}

/// Reads `response` to a call whose response element is `expected` (e.g.
/// `SubmitCaseResponse`; empty accepts any). A fault is read first, whatever the status;
/// a reply with no envelope is classified by its HTTP status (503 with Retry-After is
/// retryable), and a 2xx that cannot be read — or answers another element — is ambiguous
/// when `effect` may act, retryable otherwise.
pub fn read_reply(
    response: &HttpResponse,
    expected: &str,
    effect: Effect,
) -> Result<Reply, AdapterError> {
    read_reply_at(response, expected, effect, error::host_time)
}

/// [`read_reply`] with the clock given (read only for a Retry-After HTTP-date).
pub fn read_reply_at(
    response: &HttpResponse,
    expected: &str,
    effect: Effect,
    now: impl Fn() -> SystemTime,
) -> Result<Reply, AdapterError> {
    let (status, retry_after) = (response.status, response.header("retry-after"));
    let body = &response.body;
    let not_soap = |what: &str| match classify_status_at(status, retry_after, &now) {
        Some(e) => e,
        None => unusable(effect, what, body),
    };
    let decoded = match text::decode_xml(body, charset(response.header("content-type"))) {
        Ok(d) => d.text,
        Err(e) => return Err(not_soap(&format!("HTTP {status}, undecodable ({e})"))),
    };
    match soap::parse_response(&decoded) {
        Ok(soap_body) if (200..300).contains(&status) => {
            let name = &soap_body.payload.name;
            if expected.is_empty() || name == expected {
                Ok(Reply::Response(soap_body.payload, decoded))
            } else {
                let what = format!("<{name}> instead of <{expected}>");
                Err(unusable(effect, &what, body))
            }
        }
        Ok(_) => Err(not_soap(&format!("HTTP {status}"))),
        Err(SoapError::Fault {
            code,
            string,
            actor,
            detail,
        }) => {
            let fault = Fault {
                code: local_code(&code).to_owned(),
                string,
                actor,
                detail: detail.map(|d| *d),
                retry_after_ms: retry_after.and_then(|v| retry_after_ms(v, &now)),
            };
            Ok(Reply::Fault(fault, decoded))
        }
        Err(e) => Err(not_soap(&format!(
            "HTTP {status} without a SOAP 1.1 envelope ({e})"
        ))),
    }
}

/// `soap:Server.Busy` → `Server.Busy` (a QName's local part, dots kept).
fn local_code(code: &str) -> &str {
    let code = code.trim();
    code.rsplit_once(':').map_or(code, |(_, local)| local)
}

/// A reply that is there but cannot be understood: the request may have acted.
fn unusable(effect: Effect, what: &str, body: &[u8]) -> AdapterError {
    let head = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    let message = format!("ministry answered {what}; it starts with {head:?}");
    match effect {
        Effect::MayAct => ambiguous(format!("{message} (the request may have been acted on)")),
        Effect::ReadOnly => retryable(message),
    }
}

#[cfg(test)]
#[path = "soap_reply_tests.rs"]
mod tests;
