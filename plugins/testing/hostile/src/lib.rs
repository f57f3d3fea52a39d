//! TEST ONLY: an adapter that misbehaves on purpose (see README.md).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use yiwang_adapter_sdk::http::{Request, ResponseExt};
use yiwang_adapter_sdk::{
    Adapter, AdapterError, CallbackOutcome, Descriptor, Event, HttpRequest, PollResult, Receipt,
    Stage, Submission, export_adapter, host, permanent,
};

mod neighbour;

struct Hostile;

/// What `residue` mode changes and the next call must find pristine: a
/// static in initialized data, a zeroed one, and a zeroed scratch area
/// larger than what the runtime resets in place (the rest is reset by the
/// kernel), so both ways of resetting memory are checked.
static DATA_MARK: AtomicU32 = AtomicU32::new(7);
static ZERO_MARK: AtomicU32 = AtomicU32::new(0);
static SCRATCH: Mutex<[u8; 2 << 20]> = Mutex::new([0; 2 << 20]);

fn mode() -> String {
    host::config("mode").unwrap_or_else(|| "echo".to_string())
}

fn case_number(s: &Submission) -> String {
    serde_json::from_str::<serde_json::Value>(&s.case_json)
        .ok()
        .and_then(|v| {
            v.get("case_number")
                .and_then(|n| n.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn receipt(number: String, raw: String) -> Receipt {
    Receipt {
        network_case_number: number,
        raw_receipt: raw,
        events: Vec::new(),
    }
}

/// Small frames, so the wasm call stack (not the shadow stack in linear
/// memory) is what overflows.
#[inline(never)]
#[expect(
    unconditional_recursion,
    reason = "the stack overflow is the point of this mode"
)]
fn recurse(depth: u64) -> u64 {
    let below = recurse(std::hint::black_box(depth + 1));
    std::hint::black_box(below) + depth
}

impl Adapter for Hostile {
    fn describe() -> Descriptor {
        neighbour::describe_loops();
        Descriptor {
            name: "hostile".into(),
            version: host::config("version").unwrap_or_else(|| "1.0.0".into()),
            network_kind: "test".into(),
            items: Vec::new(),
            contract_version: yiwang_adapter_sdk::CONTRACT_VERSION.into(),
            field_mappings: Vec::new(),
        }
    }

    fn submit(s: Submission) -> Result<Receipt, AdapterError> {
        let mode = mode();
        if let Some(outcome) = neighbour::submit(&mode, &s) {
            return outcome;
        }
        let case = case_number(&s);
        match mode.as_str() {
            "echo" => Ok(receipt(format!("ECHO-{case}"), s.idempotency_key)),
            "relay" => {
                let resp = Request::post("/relay")
                    .header("idempotency-key", s.idempotency_key.clone())
                    .body(s.case_json.into_bytes())
                    .send()?
                    .error_for_status()?;
                let body = String::from_utf8_lossy(&resp.body).into_owned();
                Ok(receipt(format!("RELAY-{case}"), body))
            }
            "flood" => {
                for i in 0..100 {
                    let _ = Request::post(format!("/flood/{i}")).send();
                }
                Ok(receipt(format!("FLOOD-{case}"), String::new()))
            }
            "secret-smuggle" => {
                // Case data carrying a placeholder, sent the plain way: the
                // host must send it verbatim, never fill it.
                let body =
                    format!("{{\"applicant\":\"${{secret:password}}\",\"case\":\"{case}\"}}");
                let resp = Request::post("/relay").body(body.into_bytes()).send()?;
                Ok(receipt(
                    format!("SMUGGLE-{case}"),
                    String::from_utf8_lossy(&resp.body).into_owned(),
                ))
            }
            "login" => {
                let resp = Request::post("/login")
                    .header("x-user", host::secret_placeholder("username"))
                    .body(
                        format!(
                            "{{\"password\":\"{}\"}}",
                            host::secret_placeholder("password")
                        )
                        .into_bytes(),
                    )
                    .send_with_secrets()?;
                Ok(receipt(
                    format!("LOGIN-{case}"),
                    String::from_utf8_lossy(&resp.body).into_owned(),
                ))
            }
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "stack" => {
                let n = recurse(0);
                Ok(receipt(n.to_string(), String::new()))
            }
            "trap" | "panic" => panic!("hostile adapter panics on purpose"),
            "oversize" => Ok(receipt(case, "x".repeat(16 << 20))),
            "foreign-host" => {
                // Refused by the host; pretend it worked anyway.
                let _ = Request::get("http://169.254.169.254/latest/meta-data/").send();
                Ok(receipt(format!("STOLEN-{case}"), String::new()))
            }
            "malformed" => {
                let mut e =
                    yiwang_adapter_sdk::event(format!("M-{case}"), Stage::Accepted, "yesterday");
                e.reason = Some("time is not RFC 3339".into());
                let events: Vec<Event> = vec![e];
                Ok(Receipt {
                    network_case_number: format!("M-{case}"),
                    raw_receipt: String::new(),
                    events,
                })
            }
            "escape" => {
                let mut seen = Vec::new();
                seen.push(format!(
                    "read /etc/passwd: {}",
                    std::fs::read("/etc/passwd").is_ok()
                ));
                seen.push(format!("read_dir /: {}", std::fs::read_dir("/").is_ok()));
                seen.push(format!(
                    "write /tmp/x: {}",
                    std::fs::write("/tmp/yiwang-escape", b"x").is_ok()
                ));
                seen.push(format!("env vars: {}", std::env::vars().count()));
                seen.push(format!("args: {}", std::env::args().count()));
                seen.push(format!(
                    "tcp connect: {}",
                    std::net::TcpStream::connect("127.0.0.1:22").is_ok()
                ));
                seen.push(format!(
                    "dns: {}",
                    std::net::ToSocketAddrs::to_socket_addrs("localhost:80").is_ok()
                ));
                Ok(receipt(format!("ESCAPE-{case}"), seen.join("\n")))
            }
            "residue" => {
                let data = DATA_MARK.fetch_add(1, Ordering::Relaxed);
                let zero = ZERO_MARK.fetch_add(1, Ordering::Relaxed);
                let mut scratch = SCRATCH.lock().unwrap_or_else(|p| p.into_inner());
                let dirty = scratch.iter().filter(|b| **b != 0).count();
                scratch.fill(0xA5);
                Ok(receipt(
                    format!("RESIDUE-{case}"),
                    format!("data={data} zero={zero} scratch-dirty={dirty}"),
                ))
            }
            "leak-config" => {
                // A sensitive config value in a log line, a URL and an
                // error: the host must redact it from all three.
                let token = host::config("api-token").unwrap_or_default();
                host::log(host::Level::Error, &format!("using token {token}"));
                let _ = Request::post(format!("/relay?token={token}")).send();
                Err(permanent(format!("token {token} refused")))
            }
            "kv" => {
                host::kv::set("token", b"abc").map_err(permanent)?;
                let back = host::kv::get_string("token").unwrap_or_default();
                let big = host::kv::set("big", &vec![0u8; 1 << 20]).is_err();
                Ok(receipt(
                    format!("KV-{case}"),
                    format!("token={back} big-refused={big}"),
                ))
            }
            other => Err(permanent(format!("unknown hostile mode {other:?}"))),
        }
    }

    fn query_status(network_case_number: String) -> Result<Vec<Event>, AdapterError> {
        let at = host::now().to_rfc3339();
        Ok(vec![yiwang_adapter_sdk::event(
            network_case_number,
            Stage::Accepted,
            at,
        )])
    }

    fn poll(cursor: Option<String>) -> Result<PollResult, AdapterError> {
        Ok(neighbour::poll(cursor))
    }

    fn handle_callback(request: HttpRequest) -> Result<CallbackOutcome, AdapterError> {
        let _ = request;
        neighbour::handle_callback()
    }
}

export_adapter!(Hostile);
