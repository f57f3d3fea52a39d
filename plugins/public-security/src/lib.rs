//! Yiwang adapter for the public-security (公安) seal-engraving filing network: JSON behind a
//! static API key, status changes pushed to the gateway as signed callbacks.
//!
//! The I/O half lives here (sending with the API key, checking pushes with the host's HMAC);
//! the mapping, error classification and push reading are pure functions in [`mapping`].
//! See README.md.

pub mod mapping;

use mapping::{CaseRef, Effect, Reply};
use serde_json::Value;
use yiwang_adapter_sdk::http::{Request, ResponseExt};
use yiwang_adapter_sdk::schema::CaseChange;
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CallbackOutcome, CaseChange as ChangeCall, Descriptor, Event,
    HttpRequest, Receipt, Submission, host, input, parse_case, permanent,
};

/// The adapter (exported as the component's `adapter` interface).
pub struct PublicSecurity;

/// Sends one request with the API key header. The key is a `${secret:api-key}` placeholder
/// the host fills in, which is why every request goes through `send_with_secrets`; bodies
/// built from case data are defused by [`mapping::body_bytes`] first, and URLs are not
/// filled, so case data can never pull a secret into a request.
fn send(
    method: &str,
    path: &str,
    body: Option<&Value>,
    effect: Effect,
) -> Result<(Reply, String), AdapterError> {
    let mut request = Request::new(method, path).header(
        mapping::API_KEY_HEADER,
        host::secret_placeholder(mapping::API_KEY_SECRET),
    );
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(mapping::body_bytes(body));
    }
    let response = request
        .send_with_secrets()
        .map_err(|e| mapping::send_error(e, effect))?;
    let reply = mapping::read_reply(
        response.status,
        response.header("retry-after"),
        &response.body,
        effect,
    )?;
    Ok((reply, String::from_utf8_lossy(&response.body).into_owned()))
}

/// The ministry case number of a case named by `idem:<key>` (or by its number).
fn resolve(case: CaseRef<'_>) -> Result<String, AdapterError> {
    match case {
        CaseRef::Number(n) => Ok(n.to_owned()),
        CaseRef::IdempotencyKey(key) => {
            let (reply, _) = send("GET", &mapping::query_path(case), None, Effect::ReadOnly)?;
            if reply.not_found() {
                return Err(permanent(format!(
                    "the ministry has no case submitted with idempotency key {key:?}: nothing to change"
                )));
            }
            let data = mapping::ok(reply)?;
            data.get("caseNo")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| permanent("query reply has code 0 but no caseNo"))
        }
    }
}

impl Adapter for PublicSecurity {
    fn describe() -> Descriptor {
        yiwang_adapter_sdk::descriptor(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            mapping::NETWORK_KIND,
            mapping::ITEMS,
            mapping::FIELD_MAPPINGS,
        )
    }

    fn submit(submission: Submission) -> Result<Receipt, AdapterError> {
        let case = parse_case(&submission)?;
        let licence = input(&submission, mapping::LICENCE_INPUT)
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                permanent(format!(
                    "submission input `{}` is missing: the seal filing needs the market-regulation licence number, so the route must deliver to market regulation first and pass its certificate number on",
                    mapping::LICENCE_INPUT
                ))
            })?;
        let body = mapping::submit_body(&case, &submission.idempotency_key, licence)?;
        let (reply, raw) = send("POST", mapping::FILINGS_PATH, Some(&body), Effect::MayAct)?;
        let (number, received) = mapping::parse_submit(&mapping::ok(reply)?)?;
        Ok(Receipt {
            network_case_number: number,
            raw_receipt: raw,
            events: vec![received],
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError> {
        let case = CaseRef::parse(&network_case_number)?;
        let (reply, _) = send("GET", &mapping::query_path(case), None, Effect::ReadOnly)?;
        // Asked by idempotency key: "not found" is the answer, not a failure. The submit
        // never landed, and an empty history tells the gateway it may send again.
        if reply.not_found() && matches!(case, CaseRef::IdempotencyKey(_)) {
            return Ok(Vec::new());
        }
        mapping::parse_case_view(&mapping::ok(reply)?)
    }

    fn update(change: ChangeCall) -> Result<Vec<Event>, AdapterError> {
        let parsed: CaseChange = serde_json::from_str(&change.change_json).map_err(|e| {
            permanent(format!(
                "change does not match the unified CaseChange schema: {e}"
            ))
        })?;
        let number = resolve(CaseRef::parse(&change.network_case_number)?)?;
        let (path, body) = mapping::change_request(&number, &parsed);
        let (reply, _) = send("POST", &path, Some(&body), Effect::MayAct)?;
        Ok(vec![mapping::parse_change_reply(
            &mapping::ok(reply)?,
            &parsed,
        )?])
    }

    // `poll` keeps the SDK default: this network has no change feed, it pushes.

    /// A push is checked (signature with the host's HMAC, so the secret never enters the
    /// adapter; then freshness) before anything in it is read. A refused push is an outcome
    /// with no events and a 401/403/405 answer, not an error: the answer is the only thing
    /// the ministry sees, and only the outcome chooses it.
    fn handle_callback(request: HttpRequest) -> Result<CallbackOutcome, AdapterError> {
        let refused = mapping::check_push(&request, host::now_millis(), |message| {
            host::hmac_sha256_with_secret(mapping::PUSH_SECRET, message)
        })?;
        if let Some(response) = refused {
            host::warn(&format!(
                "push refused with HTTP {} (push id header {:?})",
                response.status,
                request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(mapping::PUSH_ID_HEADER))
                    .map(|h| h.value.as_str())
            ));
            return Ok(CallbackOutcome {
                events: Vec::new(),
                response,
            });
        }
        let (push_id, event) = mapping::parse_push(&request.body)?;
        // The contract's event has no field for the push id: it goes to the audit log, and a
        // duplicate push yields an identical event, which the gateway's store deduplicates.
        host::info(&format!(
            "push {push_id}: case {} status {}",
            event.network_case_number,
            event.raw_status.as_deref().unwrap_or_default()
        ));
        Ok(CallbackOutcome {
            events: vec![event],
            response: mapping::acknowledgement(),
        })
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(PublicSecurity);
