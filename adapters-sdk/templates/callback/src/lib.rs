//! A Yiwang adapter for a network that pushes statuses (archetype `callback`): the case is
//! filed over JSON REST with a bearer token, and the ministry posts each status change to
//! the gateway's callback listener, signed with HMAC-SHA256 over the body under a shared
//! secret (`callback-secret`) the host holds. `query-status` remains for the gateway's
//! checks (an ambiguous submit, a missed push).
//!
//! Replace the constants, the push's shape and its signature rule with the ministry's
//! interface document.

use serde_json::{Value, json};
use yiwang_adapter_sdk::error::{Effect, classify_status, send_error};
use yiwang_adapter_sdk::http::{Request, ResponseExt, percent_encode};
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CallbackOutcome, CaseRef, Decision, Descriptor, Event, Header,
    HttpRequest, HttpResponse, MappingRow, Receipt, Stage, Submission, ambiguous, event, host,
    parse_case, permanent, permanent_field, unified_pointer,
};

pub const NETWORK_KIND: &str = "callback";
/// The push's signature header and the name of the secret that keys it.
pub const SIGNATURE_HEADER: &str = "x-signature";
pub const CALLBACK_SECRET: &str = "callback-secret";
/// The items this network handles (code, version).
pub const ITEMS: &[(&str, &str)] = &[("XX-EXAMPLE-001", "1.0")];
pub const CASES_PATH: &str = "/api/v1/cases";
type Result<T, E = AdapterError> = std::result::Result<T, E>;

/// Unified field → ministry field: `describe` reports these rows, and a rejection naming a
/// ministry field is turned back into the unified pointer with them.
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "case_no", None, None),
    ("/item/code", "item_code", None, None),
    ("/applicant/name", "applicant_name", None, Some("required")),
    (
        "/applicant/id_number",
        "applicant_id",
        None,
        Some("required"),
    ),
];

/// Ministry status code → unified stage and decision.
pub fn stage_of(code: &str) -> Option<(Stage, Option<Decision>)> {
    Some(match code {
        "10" => (Stage::Received, None),
        "20" => (Stage::UnderReview, None),
        "30" => (Stage::Completed, Some(Decision::Approved)),
        "40" => (Stage::Rejected, Some(Decision::Denied)),
        _ => return None,
    })
}

/// The filing request's body.
pub fn filing(case: &yiwang_adapter_sdk::schema::Case, client_ref: &str) -> Value {
    json!({
        "client_ref": client_ref,
        "case_no": case.case_number,
        "item_code": case.item.code,
        "applicant_name": case.applicant.name,
        "applicant_id": case.applicant.id_number,
    })
}

/// Send with the bearer token the host fills in; `data` of a successful reply, or the
/// classified failure (the body is read first: a rejection comes with HTTP 4xx).
fn call(request: Request, effect: Effect) -> Result<Value> {
    let token = host::secret_placeholder("token");
    let request = request.header("Authorization", format!("Bearer {token}"));
    let reply = request
        .send_with_secrets()
        .map_err(|e| send_error(e, effect))?;
    let body = match reply.json() {
        Ok(body) => body,
        Err(e) => {
            return Err(classify_status(reply.status, reply.header("retry-after")).unwrap_or(e));
        }
    };
    read_reply(reply.status, &body).map_err(|e| match e {
        Refusal::Status => classify_status(reply.status, reply.header("retry-after"))
            .unwrap_or_else(|| ambiguous(format!("HTTP {} without a code", reply.status))),
        Refusal::Error(e) => e,
    })
}

/// Why a reply is not a success.
pub enum Refusal {
    /// No ministry code: the HTTP status tells.
    Status,
    /// The ministry said why.
    Error(AdapterError),
}

/// Read `{"code", "message", "data", "field"}`: "0" is success, `INVALID_FIELD` names the
/// ministry field (reported as the unified pointer), `NOT_FOUND` and others are rejections.
pub fn read_reply(status: u16, body: &Value) -> std::result::Result<Value, Refusal> {
    let Some(code) = body.get("code").and_then(Value::as_str) else {
        return Err(Refusal::Status);
    };
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match code {
        "0" if (200..300).contains(&status) => Ok(body.get("data").cloned().unwrap_or(Value::Null)),
        "INVALID_FIELD" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let pointer =
                unified_pointer(FIELD_MAPPINGS, field).unwrap_or_else(|| field.to_owned());
            Err(Refusal::Error(permanent_field(
                pointer,
                Some(code.to_owned()),
                message,
            )))
        }
        _ if status >= 500 || status == 429 => Err(Refusal::Status),
        _ => Err(Refusal::Error(permanent(format!(
            "ministry code {code}: {message}"
        )))),
    }
}

/// A case's current status as one event.
pub fn parse_status(data: &Value) -> Result<Event> {
    let field = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let need = |name: &str| field(name).ok_or_else(|| permanent(format!("status without {name}")));
    let code = need("status")?;
    let (stage, decision) =
        stage_of(code).ok_or_else(|| permanent(format!("unknown status code {code}")))?;
    let mut e = event(need("id")?, stage, need("updated_at")?);
    e.raw_status = Some(code.to_owned());
    e.decision = decision;
    e.certificate_number = field("licence_no").map(str::to_owned);
    e.reason = field("opinion")
        .filter(|_| decision == Some(Decision::Denied))
        .map(str::to_owned);
    Ok(e)
}

/// The answer to a push: the ministry resends until it reads `{"code":"0"}`.
fn answer(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![Header {
            name: "content-type".to_owned(),
            value: "application/json".to_owned(),
        }],
        body: json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

/// Whether the push's signature is the HMAC of its body (hex, compared in constant time).
fn signed(request: &HttpRequest) -> Result<bool> {
    let given = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(SIGNATURE_HEADER));
    let Some(given) = given.map(|h| h.value.trim().to_ascii_lowercase()) else {
        return Ok(false);
    };
    let tag = host::hmac_sha256_with_secret(CALLBACK_SECRET, &request.body)?;
    let expected: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    Ok(same)
}

pub struct CallbackAdapter;

impl Adapter for CallbackAdapter {
    fn describe() -> Descriptor {
        let (name, version) = (env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        yiwang_adapter_sdk::descriptor(name, version, NETWORK_KIND, ITEMS, FIELD_MAPPINGS)
    }

    fn submit(submission: Submission) -> Result<Receipt> {
        let case = parse_case(&submission)?;
        let request = Request::post(CASES_PATH)
            .header("Idempotency-Key", submission.idempotency_key.as_str())
            .json(&filing(&case, &submission.idempotency_key));
        let data = call(request, Effect::MayAct)?;
        let number = data
            .get("id")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let number = number.ok_or_else(|| ambiguous("filing reply without data.id"))?;
        Ok(Receipt {
            network_case_number: number.to_owned(),
            raw_receipt: data.to_string(),
            events: vec![parse_status(&data)?],
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>> {
        let (url, by_key) = match CaseRef::parse(&network_case_number)? {
            CaseRef::Number(n) => (format!("{CASES_PATH}/{}", percent_encode(n)), false),
            CaseRef::IdempotencyKey(k) => (
                format!("{CASES_PATH}?client_ref={}", percent_encode(k)),
                true,
            ),
        };
        match call(Request::get(url), Effect::ReadOnly) {
            Ok(data) => Ok(vec![parse_status(&data)?]),
            // "Did my filing land?" Not found is the answer: the gateway may send it again.
            Err(AdapterError::Permanent(r)) if by_key && r.message.contains("NOT_FOUND") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    fn handle_callback(request: HttpRequest) -> Result<CallbackOutcome> {
        if !signed(&request)? {
            host::warn("push refused: missing or wrong signature");
            let response = answer(401, "BAD_SIGNATURE", "signature does not match");
            return Ok(CallbackOutcome {
                events: Vec::new(),
                response,
            });
        }
        let push: Value = serde_json::from_slice(&request.body)
            .map_err(|e| permanent(format!("push is not JSON: {e}")))?;
        let event = parse_status(&push)?;
        Ok(CallbackOutcome {
            events: vec![event],
            response: answer(200, "0", "ok"),
        })
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(CallbackAdapter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_field_is_reported_as_the_unified_pointer() {
        let body = json!({"code": "INVALID_FIELD", "field": "applicant_id", "message": "bad"});
        let Err(Refusal::Error(AdapterError::Permanent(r))) = read_reply(422, &body) else {
            panic!("not a rejection");
        };
        assert_eq!(r.field.as_deref(), Some("/applicant/id_number"));
    }

    #[test]
    fn every_status_code_maps_and_an_unknown_one_does_not() {
        for code in ["10", "20", "30", "40"] {
            assert!(stage_of(code).is_some(), "{code}");
        }
        assert!(stage_of("99").is_none());
    }
}
