//! Yiwang adapter for the tax-registration (税务) network: a signed open-API gateway.
//!
//! The I/O half lives here (signing through the host, the nonce counter, sending, one resend
//! on a refused nonce); the mapping, the canonical string and error classification are pure
//! functions in [`mapping`]. See README.md.

pub mod mapping;

use mapping::{CaseRef, Effect, Reply};
use serde_json::Value;
use yiwang_adapter_sdk::http::{Request, ResponseExt};
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CaseChange, Descriptor, Event, PollResult, Receipt, Submission, host,
    input, parse_case, permanent,
};

/// The adapter (exported as the component's `adapter` interface).
pub struct Tax;

/// kv key of the per-network request counter that keeps nonces unique across calls.
const NONCE_SEQ_KEY: &str = "nonce-seq";
/// Feed pages fetched in one poll at most (each page is one request).
const MAX_POLL_PAGES: usize = 8;

/// Signs and sends the requests of one call.
struct Signer {
    app_key: String,
    /// What makes this call's requests unique: idempotency key, case reference or cursor.
    seed: String,
    seq: u64,
    /// A refused nonce is answered by one resend per call, never more.
    resent: bool,
}

impl Signer {
    fn new(seed: &str) -> Result<Self, AdapterError> {
        let app_key = host::require_config(mapping::APP_KEY_CONFIG)?;
        // A missing or unreadable counter starts at 0: the time and seed still vary the nonce.
        let seq = host::kv::get_string(NONCE_SEQ_KEY)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Self {
            app_key,
            seed: seed.to_owned(),
            seq,
            resent: false,
        })
    }

    fn next_nonce(&mut self, timestamp_ms: i64) -> String {
        self.seq = self.seq.wrapping_add(1);
        if let Err(e) = host::kv::set(NONCE_SEQ_KEY, self.seq.to_string().as_bytes()) {
            host::warn(&format!("nonce counter not stored: {e}"));
        }
        mapping::nonce(&self.seed, timestamp_ms, self.seq)
    }

    /// One signed request; the reply envelope, its raw text and the timestamp it was signed with.
    fn send(
        &mut self,
        method: &str,
        target: &str,
        body: &[u8],
        effect: Effect,
    ) -> Result<(Reply, String, i64), AdapterError> {
        let timestamp = host::now_millis();
        let nonce = self.next_nonce(timestamp);
        let canonical = mapping::canonical(method, target, &self.app_key, timestamp, &nonce, body);
        // The host keys the HMAC with the secret; its value never enters the sandbox.
        let tag = host::hmac_sha256_with_secret(mapping::APP_SECRET, canonical.as_bytes())?;
        let mut request = Request::new(method, target)
            .header(mapping::APP_KEY_HEADER, self.app_key.as_str())
            .header(mapping::TIMESTAMP_HEADER, timestamp.to_string())
            .header(mapping::NONCE_HEADER, nonce)
            .header(mapping::SIGN_HEADER, mapping::to_hex(&tag));
        if !body.is_empty() {
            request = request.header("Content-Type", mapping::JSON_CONTENT_TYPE);
        }
        let response = request
            .body(body.to_vec())
            .send()
            .map_err(|e| mapping::send_error(e, effect))?;
        let reply = mapping::read_reply(
            response.status,
            response.header("retry-after"),
            &response.body,
            effect,
        )?;
        let raw = String::from_utf8_lossy(&response.body).into_owned();
        Ok((reply, raw, timestamp))
    }

    /// Sends a request and returns the envelope, success or not. A nonce refused as a replay
    /// is refused by the gateway before anything is done, so it is resent once with a fresh
    /// nonce. Other refusals are for the caller to classify.
    fn call(
        &mut self,
        method: &str,
        target: &str,
        body: &[u8],
        effect: Effect,
    ) -> Result<(Reply, String, i64), AdapterError> {
        let sent = self.send(method, target, body, effect)?;
        if sent.0.code == mapping::REPLAY && !self.resent {
            self.resent = true;
            host::warn("the gateway refused the nonce as a replay; resending with a fresh one");
            return self.send(method, target, body, effect);
        }
        Ok(sent)
    }
}

fn ok(reply: Reply, signed_at_ms: i64) -> Result<Value, AdapterError> {
    if reply.success {
        Ok(reply.data)
    } else {
        Err(mapping::business_error(&reply, signed_at_ms))
    }
}

impl Adapter for Tax {
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
        let body = mapping::submit_body(
            &case,
            &submission.idempotency_key,
            input(&submission, mapping::LICENCE_INPUT),
        )?;
        let mut signer = Signer::new(&submission.idempotency_key)?;
        let (reply, raw, signed_at) = signer.call(
            "POST",
            mapping::SUBMIT_PATH,
            &mapping::case_body_bytes(&body),
            Effect::MayAct,
        )?;
        let (number, received) = mapping::parse_submit(&ok(reply, signed_at)?)?;
        Ok(Receipt {
            network_case_number: number,
            raw_receipt: raw,
            events: vec![received],
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError> {
        let case = CaseRef::parse(&network_case_number)?;
        let mut signer = Signer::new(&network_case_number)?;
        let (reply, _, signed_at) =
            signer.call("GET", &mapping::status_target(case), b"", Effect::ReadOnly)?;
        // Asked by idempotency key: "not found" is the answer, not a failure. The submit
        // never landed, and an empty history tells the gateway it may send again.
        if reply.code == mapping::NOT_FOUND && matches!(case, CaseRef::IdempotencyKey(_)) {
            return Ok(Vec::new());
        }
        mapping::parse_query(&ok(reply, signed_at)?)
    }

    fn update(change: CaseChange) -> Result<Vec<Event>, AdapterError> {
        Err(permanent(format!(
            "the tax network has no operation for bureau-side changes (withdraw, supplement); case {} must be changed by the tax bureau, which voids it (status 9000)",
            change.network_case_number
        )))
    }

    fn poll(cursor: Option<String>) -> Result<PollResult, AdapterError> {
        let page_size = mapping::page_size(host::config("poll-page-size").as_deref())?;
        let mut signer = Signer::new(&format!("poll:{}", cursor.as_deref().unwrap_or("")))?;
        let mut cursor = cursor;
        let mut events = Vec::new();
        for _ in 0..MAX_POLL_PAGES {
            let target = mapping::changes_target(cursor.as_deref(), page_size);
            let (reply, _, signed_at) = signer.call("GET", &target, b"", Effect::ReadOnly)?;
            let (page, next, has_more) = mapping::parse_changes(&ok(reply, signed_at)?)?;
            events.extend(page);
            if next.is_some() {
                cursor = next;
            }
            if !has_more {
                break;
            }
        }
        Ok(PollResult {
            events,
            next_cursor: cursor,
        })
    }
}

#[cfg(feature = "component")]
yiwang_adapter_sdk::export_adapter!(Tax);
