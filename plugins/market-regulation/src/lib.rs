//! Yiwang adapter for the market-regulation (市场监管) network: JSON REST behind a login token.
//!
//! The I/O half lives here (login and token cache, sending, re-login on `1002`); the
//! mapping and error classification are pure functions in [`mapping`]. See README.md.

pub mod mapping;

use mapping::{CaseRef, Effect, Reply};
use serde_json::Value;
use yiwang_adapter_sdk::http::{Request, ResponseExt};
use yiwang_adapter_sdk::schema::CaseChange;
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CaseChange as ChangeCall, Descriptor, Event, PollResult, Receipt,
    Submission, host, parse_case, permanent,
};

/// The adapter (exported as the component's `adapter` interface).
pub struct MarketRegulation;

/// kv key of the cached login token.
const TOKEN_KEY: &str = "login-token";
/// Feed pages fetched in one poll at most (each page is one request).
const MAX_POLL_PAGES: usize = 8;

fn send(
    path: &str,
    body: Vec<u8>,
    token: Option<&str>,
    effect: Effect,
    with_secrets: bool,
) -> Result<(Reply, String), AdapterError> {
    let mut request = Request::post(path).header("Content-Type", "application/json;charset=UTF-8");
    if let Some(token) = token {
        request = request.header(mapping::TOKEN_HEADER, token);
    }
    let request = request.body(body);
    let response = if with_secrets {
        request.send_with_secrets()
    } else {
        request.send()
    }
    .map_err(|e| mapping::send_error(e, effect))?;
    let reply = mapping::read_reply(
        response.status,
        response.header("retry-after"),
        &response.body,
        effect,
    )?;
    Ok((reply, String::from_utf8_lossy(&response.body).into_owned()))
}

/// Logs in with the network's secrets (filled in by the host) and caches the token.
fn login() -> Result<String, AdapterError> {
    let body = mapping::login_body().to_string().into_bytes();
    let (reply, _) = send(mapping::LOGIN_PATH, body, None, Effect::ReadOnly, true)?;
    if reply.code != "0000" {
        return Err(mapping::business_error(&reply));
    }
    let (token, expires_in) = mapping::parse_login(&reply.data)?;
    let expires_at = host::now_millis().saturating_add(expires_in.saturating_mul(1000));
    if let Err(e) = host::kv::set(
        TOKEN_KEY,
        mapping::token_record(&token, expires_at).as_bytes(),
    ) {
        host::warn(&format!("login token not cached: {e}"));
    }
    Ok(token)
}

fn cached_token() -> Option<String> {
    host::kv::get_string(TOKEN_KEY)
        .and_then(|record| mapping::usable_token(&record, host::now_millis()))
}

/// Sends an authenticated request, logging in when no usable token is cached and once
/// more when the ministry says the token is no good (`1002`, checked before the body is
/// read, so resending is safe). Returns the envelope and the raw reply text.
fn call(path: &str, body: &Value, effect: Effect) -> Result<(Reply, String), AdapterError> {
    let bytes = mapping::case_body_bytes(body);
    let mut token = match cached_token() {
        Some(t) => t,
        None => login()?,
    };
    let mut relogged = false;
    loop {
        let (reply, raw) = send(path, bytes.clone(), Some(&token), effect, false)?;
        if reply.code == "1002" && !relogged {
            host::kv::delete(TOKEN_KEY);
            token = login()?;
            relogged = true;
            continue;
        }
        return Ok((reply, raw));
    }
}

fn ok(reply: Reply) -> Result<Value, AdapterError> {
    if reply.code == "0000" {
        Ok(reply.data)
    } else {
        Err(mapping::business_error(&reply))
    }
}

impl Adapter for MarketRegulation {
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
        let body = mapping::submit_body(&case, &submission.idempotency_key)?;
        let (reply, raw) = call(mapping::SUBMIT_PATH, &body, Effect::MayAct)?;
        let (number, received) = mapping::parse_submit(&ok(reply)?)?;
        Ok(Receipt {
            network_case_number: number,
            raw_receipt: raw,
            events: vec![received],
        })
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError> {
        let case = CaseRef::parse(&network_case_number)?;
        let (reply, _) = call(
            mapping::QUERY_PATH,
            &mapping::query_body(case),
            Effect::ReadOnly,
        )?;
        // Asked by idempotency key: "not found" is the answer, not a failure. The submit
        // never landed, and an empty history tells the gateway it may send again.
        if reply.code == "3001" && matches!(case, CaseRef::IdempotencyKey(_)) {
            return Ok(Vec::new());
        }
        mapping::parse_query(&ok(reply)?)
    }

    fn update(change: ChangeCall) -> Result<Vec<Event>, AdapterError> {
        let parsed: CaseChange = serde_json::from_str(&change.change_json).map_err(|e| {
            permanent(format!(
                "change does not match the unified CaseChange schema: {e}"
            ))
        })?;
        let case = CaseRef::parse(&change.network_case_number)?;
        let (path, body) = mapping::change_body(case, &parsed);
        let (reply, _) = call(path, &body, Effect::MayAct)?;
        Ok(vec![mapping::parse_change_reply(&ok(reply)?, &parsed)?])
    }

    fn poll(cursor: Option<String>) -> Result<PollResult, AdapterError> {
        let page_size = mapping::page_size(host::config("poll-page-size").as_deref())?;
        let mut cursor = cursor;
        let mut events = Vec::new();
        for _ in 0..MAX_POLL_PAGES {
            let body = mapping::changes_body(cursor.as_deref(), page_size);
            let (reply, _) = call(mapping::CHANGES_PATH, &body, Effect::ReadOnly)?;
            let (page, next, has_more) = mapping::parse_changes(&ok(reply)?)?;
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
yiwang_adapter_sdk::export_adapter!(MarketRegulation);
