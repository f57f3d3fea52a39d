//! Modes that attack the gateway's share of resources and other networks'
//! cases rather than the sandbox itself (see README.md, "Neighbour attacks").

use crate::{case_number, receipt};
use std::time::{Duration, Instant};
use yiwang_adapter_sdk::http::Request;
use yiwang_adapter_sdk::{
    AdapterError, CallbackOutcome, Decision, Event, HttpResponse, PollResult, Receipt,
    RetryableError, Stage, Submission, host, permanent,
};

/// The key under which `kv-flood` keeps its running counter.
const FLOOD_COUNTER: &str = "flood-counter";

/// A numeric adapter-config value, or `default` when unset or unreadable.
fn knob(key: &str, default: u64) -> u64 {
    host::config(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The submit behaviour of a neighbour-attack mode; `None` for other modes.
pub(crate) fn submit(mode: &str, s: &Submission) -> Option<Result<Receipt, AdapterError>> {
    let case = case_number(s);
    let echo = || Ok(receipt(format!("ECHO-{case}"), s.idempotency_key.clone()));
    Some(match mode {
        "sleep" => {
            // A legal slow call: waits on the clock, uses no CPU.
            std::thread::sleep(Duration::from_millis(knob("sleep-ms", 28_000)));
            echo()
        }
        "spin" => {
            spin(Duration::from_millis(knob("spin-ms", 1_900)));
            echo()
        }
        "kv-flood" => {
            kv_flood(knob("kv-keys", 1_000), knob("kv-value-bytes", 1));
            echo()
        }
        "kv-huge" => {
            let size = usize::try_from(knob("value-bytes", 200 << 20)).unwrap_or(usize::MAX);
            let refused = host::kv::set("huge", &vec![0x5A; size]).is_err();
            Ok(receipt(
                format!("ECHO-{case}"),
                format!("refused={refused}"),
            ))
        }
        "huge-output" => {
            let size = usize::try_from(knob("output-bytes", 200 << 20)).unwrap_or(usize::MAX);
            Ok(receipt(format!("HUGE-{case}"), "x".repeat(size)))
        }
        "foreign-then-legit" => foreign_then_legit(s, &case),
        "retry-forever" => Err(AdapterError::Retryable(RetryableError {
            message: "hostile adapter asks to retry after the end of time".into(),
            retry_after_ms: Some(u64::MAX),
        })),
        _ => return None,
    })
}

/// Compute for `budget` of wall clock without sleeping.
fn spin(budget: Duration) {
    let start = Instant::now();
    let mut x: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    std::hint::black_box(x);
}

/// Set `keys` keys never set before (a running counter kept in kv), each to
/// `value_bytes` bytes, ignoring quota refusals.
fn kv_flood(keys: u64, value_bytes: u64) {
    let value = vec![b'v'; usize::try_from(value_bytes).unwrap_or(1)];
    let start: u64 = host::kv::get_string(FLOOD_COUNTER)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let end = start.saturating_add(keys);
    let _ = host::kv::set(FLOOD_COUNTER, end.to_string().as_bytes());
    for n in start..end {
        let _ = host::kv::set(&format!("flood-{n}"), &value);
    }
}

/// One send to a foreign address (refused), then a legitimate one (whatever
/// the ministry answers), then success: the refused send must still decide
/// the call.
fn foreign_then_legit(s: &Submission, case: &str) -> Result<Receipt, AdapterError> {
    let _ = Request::get("http://169.254.169.254/latest/meta-data/").send();
    let resp = Request::post("/relay")
        .header("idempotency-key", s.idempotency_key.clone())
        .body(s.case_json.clone().into_bytes())
        .send()?;
    Ok(receipt(
        format!("RELAY-{case}"),
        String::from_utf8_lossy(&resp.body).into_owned(),
    ))
}

/// The forged back-flow event for the case named by `inject-case`, if set:
/// "completed, denied, FORGED-CERT", dated now so each one looks new.
fn forged_events() -> Vec<Event> {
    let Some(case) = host::config("inject-case") else {
        return Vec::new();
    };
    let number = host::config("inject-number").unwrap_or_else(|| "FORGED-1".into());
    let mut e = yiwang_adapter_sdk::event(number, Stage::Completed, host::now().to_rfc3339());
    e.case_number = Some(case);
    e.decision = Some(Decision::Denied);
    e.certificate_number = Some("FORGED-CERT".into());
    e.raw_status = Some("FORGED".into());
    vec![e]
}

/// `poll`: the forged event when `inject-case` is set, otherwise nothing.
pub(crate) fn poll(cursor: Option<String>) -> PollResult {
    PollResult {
        events: forged_events(),
        next_cursor: cursor,
    }
}

/// `handle-callback`: the forged event and 200 when `inject-case` is set;
/// otherwise callbacks are refused, as by an adapter without them.
pub(crate) fn handle_callback() -> Result<CallbackOutcome, AdapterError> {
    if host::config("inject-case").is_none() {
        return Err(permanent("this adapter does not accept callbacks"));
    }
    Ok(CallbackOutcome {
        events: forged_events(),
        response: HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: b"ok".to_vec(),
        },
    })
}

/// `describe = "loop"` in adapter-config: never answer `describe`.
pub(crate) fn describe_loops() {
    if host::config("describe").as_deref() == Some("loop") {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}
