//! Offline adapter tests: run an adapter against recorded request/response
//! exchanges (no network), compare the requests it produces and the
//! normalized results with the expected ones, and print a readable diff.
//!
//! One TOML file per fixture in a plugin's `fixtures/` folder; the format is
//! documented in docs/adapter-guide.md ("Fixture tests").

use crate::runtime::{
    self, CallReport, FixedClock, HttpRequest, KvStore, MemoryKv, NetworkSandbox, Runtime,
    Services, Submission,
};
use crate::transport::{OutboundRequest, OutboundResponse, SendFuture, Transport, TransportError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Errors reading fixtures (not fixture failures: those are reported).
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("loading the adapter: {0}")]
    Load(#[from] runtime::LoadError),
}

type Result<T, E = FixtureError> = std::result::Result<T, E>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Fixture {
    #[serde(default)]
    description: String,
    operation: Operation,
    /// The frozen host clock, RFC 3339.
    now: String,
    /// submit: path of the unified case JSON, relative to the fixture file.
    case: Option<String>,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    /// query-status and update.
    network_case_number: Option<String>,
    /// update: path of the CaseChange JSON, relative to the fixture file.
    change: Option<String>,
    /// poll.
    cursor: Option<String>,
    /// handle-callback: the ministry's push.
    callback: Option<RecordedRequest>,
    network: FixtureNetwork,
    #[serde(default, rename = "exchange")]
    exchanges: Vec<Exchange>,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Operation {
    Submit,
    Update,
    QueryStatus,
    Poll,
    HandleCallback,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FixtureNetwork {
    #[serde(default = "default_network_name")]
    name: String,
    endpoints: Vec<String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// Key-value state before the call (UTF-8 values).
    #[serde(default)]
    kv: BTreeMap<String, String>,
}

fn default_network_name() -> String {
    "fixture".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Exchange {
    request: RecordedRequest,
    response: RecordedResponse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RecordedRequest {
    method: String,
    url: String,
    /// Headers that must be present with these values (others are ignored).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    body_format: BodyFormat,
    /// The body's encoding on the wire: utf-8 (default), gbk or gb18030.
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RecordedResponse {
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    encoding: Option<String>,
    /// Instead of a reply: `not-sent` or `no-reply`, to test error handling.
    fail: Option<String>,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum BodyFormat {
    #[default]
    Text,
    /// Compared as JSON values (key order and spacing do not matter).
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    /// Fields of the normalized result that must match exactly.
    result: Option<toml::Table>,
    error: Option<ExpectedError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExpectedError {
    /// `adapter_permanent`, `limit_memory`, ... (CallError::kind).
    kind: String,
    /// retryable | permanent | ambiguous
    class: Option<String>,
    /// A substring the error message must contain.
    message_contains: Option<String>,
}

/// The outcome of one fixture.
#[derive(Debug)]
pub struct FixtureResult {
    pub name: String,
    pub description: String,
    /// Empty when the fixture passed.
    pub failures: Vec<String>,
}

impl FixtureResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Plays back recorded replies and checks each request against the record.
struct ReplayTransport {
    expected: Vec<Exchange>,
    state: Mutex<ReplayState>,
}

#[derive(Default)]
struct ReplayState {
    next: usize,
    failures: Vec<String>,
}

impl Transport for ReplayTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let index = state.next;
        state.next += 1;
        let Some(exchange) = self.expected.get(index) else {
            state.failures.push(format!(
                "unexpected request #{}: {} {} (only {} recorded)\n{}",
                index + 1,
                request.method,
                request.uri,
                self.expected.len(),
                body_text(&request.body, None)
            ));
            return Box::pin(async { Err(TransportError::NotSent("no recorded reply".into())) });
        };
        let mut problems = compare_request(&exchange.request, &request);
        let reply = recorded_reply(&exchange.response);
        if let Err(e) = &reply {
            problems.push(e.clone());
        }
        for p in problems {
            state.failures.push(format!("request #{}: {p}", index + 1));
        }
        let reply = reply.unwrap_or_else(|e| Err(TransportError::NotSent(e)));
        Box::pin(async move { reply })
    }
}

fn recorded_reply(
    r: &RecordedResponse,
) -> std::result::Result<std::result::Result<OutboundResponse, TransportError>, String> {
    match r.fail.as_deref() {
        Some("not-sent") => {
            return Ok(Err(TransportError::NotSent(
                "recorded: connection refused".into(),
            )));
        }
        Some("no-reply") => {
            return Ok(Err(TransportError::NoReply(
                "recorded: connection reset".into(),
            )));
        }
        Some(other) => {
            return Err(format!(
                "unknown response.fail {other:?} (not-sent | no-reply)"
            ));
        }
        None => {}
    }
    let body = encode(&r.body, r.encoding.as_deref())?;
    Ok(Ok(OutboundResponse {
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: body.into(),
    }))
}

fn encoding_for(
    label: Option<&str>,
) -> std::result::Result<&'static encoding_rs::Encoding, String> {
    match label {
        None => Ok(encoding_rs::UTF_8),
        Some(l) => encoding_rs::Encoding::for_label(l.as_bytes())
            .ok_or_else(|| format!("unknown encoding {l:?}")),
    }
}

fn encode(text: &str, label: Option<&str>) -> std::result::Result<Vec<u8>, String> {
    let enc = encoding_for(label)?;
    let (bytes, _, unmappable) = enc.encode(text);
    if unmappable {
        return Err(format!("fixture text cannot be encoded as {}", enc.name()));
    }
    Ok(bytes.into_owned())
}

fn body_text(body: &[u8], label: Option<&str>) -> String {
    let enc = encoding_for(label).unwrap_or(encoding_rs::UTF_8);
    enc.decode(body).0.into_owned()
}

fn compare_request(expected: &RecordedRequest, actual: &OutboundRequest) -> Vec<String> {
    let mut problems = Vec::new();
    if !expected.method.eq_ignore_ascii_case(actual.method.as_str()) {
        problems.push(format!(
            "method: expected {}, got {}",
            expected.method, actual.method
        ));
    }
    if expected.url != actual.uri.to_string() {
        problems.push(format!(
            "url: expected {}, got {}",
            expected.url, actual.uri
        ));
    }
    for (name, value) in &expected.headers {
        let got = actual
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        if got != Some(value.as_str()) {
            problems.push(format!("header {name}: expected {value:?}, got {got:?}"));
        }
    }
    let actual_body = body_text(&actual.body, expected.encoding.as_deref());
    if let Some(encoding) = &expected.encoding
        && let Ok(enc) = encoding_for(Some(encoding))
        && enc
            .decode_without_bom_handling_and_without_replacement(&actual.body)
            .is_none()
    {
        problems.push(format!("body is not valid {encoding}"));
    }
    let (want, got) = match expected.body_format {
        BodyFormat::Text => (
            expected.body.trim_end().to_string(),
            actual_body.trim_end().to_string(),
        ),
        BodyFormat::Json => match (
            serde_json::from_str::<serde_json::Value>(&expected.body),
            serde_json::from_str::<serde_json::Value>(&actual_body),
        ) {
            (Ok(w), Ok(g)) => (pretty(&w), pretty(&g)),
            (Err(e), _) => {
                problems.push(format!("fixture's expected body is not JSON: {e}"));
                return problems;
            }
            (_, Err(e)) => (
                expected.body.clone(),
                format!("<not JSON: {e}>\n{actual_body}"),
            ),
        },
    };
    if want != got {
        problems.push(format!(
            "body differs (- expected, + actual):\n{}",
            diff(&want, &got)
        ));
    }
    problems
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A unified line diff, `-` expected and `+` actual.
pub fn diff(expected: &str, actual: &str) -> String {
    let d = similar::TextDiff::from_lines(expected, actual);
    let mut out = String::new();
    for change in d.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        out.push(sign);
        out.push_str(change.value());
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| FixtureError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Run every `*.toml` fixture in `dir` against the component `wasm`.
pub async fn run_dir(runtime: &Runtime, wasm: &[u8], dir: &Path) -> Result<Vec<FixtureResult>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| FixtureError::Read {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(FixtureError::Read {
            path: dir.to_path_buf(),
            message: "no *.toml fixtures".into(),
        });
    }
    let mut results = Vec::new();
    for file in files {
        results.push(run_file(runtime, wasm, &file).await?);
    }
    Ok(results)
}

/// Run one fixture file.
pub async fn run_file(runtime: &Runtime, wasm: &[u8], file: &Path) -> Result<FixtureResult> {
    let text = read_text(file)?;
    let fixture: Fixture = toml::from_str(&text).map_err(|e| FixtureError::Read {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bad = |message: String| FixtureError::Read {
        path: file.to_path_buf(),
        message,
    };

    let now =
        chrono::DateTime::parse_from_rfc3339(&fixture.now).map_err(|e| bad(format!("now: {e}")))?;
    let mut endpoints = Vec::new();
    for e in &fixture.network.endpoints {
        endpoints.push(
            e.parse()
                .map_err(|err| bad(format!("endpoint {e:?}: {err}")))?,
        );
    }
    let mut sandbox = NetworkSandbox::new(fixture.network.name.clone(), endpoints);
    sandbox.config = fixture.network.config.clone();
    sandbox.secrets = fixture.network.secrets.clone();
    let kv = Arc::new(MemoryKv::default());
    for (k, v) in &fixture.network.kv {
        kv.set(&fixture.network.name, k, v.as_bytes())
            .map_err(|e| bad(format!("kv {k}: {e}")))?;
    }
    let transport = Arc::new(ReplayTransport {
        expected: fixture.exchanges.clone(),
        state: Mutex::default(),
    });
    let services = Services {
        transport: transport.clone(),
        kv,
        clock: Arc::new(FixedClock(now.timestamp_millis())),
        keep_bodies: false,
    };
    let adapter = runtime.load(wasm, sandbox, services).await?;

    let case_number = "fixture-case";
    let outcome: CallReport<serde_json::Value> = match fixture.operation {
        Operation::Submit => {
            let path = base.join(
                fixture
                    .case
                    .as_deref()
                    .ok_or_else(|| bad("submit needs `case`".into()))?,
            );
            let case_json = read_text(&path)?;
            let case_number = serde_json::from_str::<serde_json::Value>(&case_json)
                .ok()
                .and_then(|v| v["case_number"].as_str().map(str::to_string))
                .unwrap_or_else(|| case_number.to_string());
            let submission = Submission {
                case_json,
                idempotency_key: fixture.idempotency_key.clone(),
                inputs: fixture.inputs.clone().into_iter().collect(),
            };
            to_json(adapter.submit(&case_number, submission).await)
        }
        Operation::Update => {
            let path = base.join(
                fixture
                    .change
                    .as_deref()
                    .ok_or_else(|| bad("update needs `change`".into()))?,
            );
            let change = runtime::CaseChange {
                network_case_number: fixture
                    .network_case_number
                    .clone()
                    .ok_or_else(|| bad("update needs `network-case-number`".into()))?,
                change_json: read_text(&path)?,
                idempotency_key: fixture.idempotency_key.clone(),
            };
            events_json(adapter.update(case_number, change).await)
        }
        Operation::QueryStatus => {
            let n = fixture
                .network_case_number
                .clone()
                .ok_or_else(|| bad("query-status needs `network-case-number`".into()))?;
            events_json(adapter.query_status(None, &n).await)
        }
        Operation::Poll => to_json(adapter.poll(fixture.cursor.clone()).await),
        Operation::HandleCallback => {
            let cb = fixture
                .callback
                .clone()
                .ok_or_else(|| bad("handle-callback needs `[callback]`".into()))?;
            let body = encode(&cb.body, cb.encoding.as_deref()).map_err(bad)?;
            let request = HttpRequest {
                method: cb.method,
                url: cb.url,
                headers: cb
                    .headers
                    .into_iter()
                    .map(|(name, value)| runtime::Header { name, value })
                    .collect(),
                body,
            };
            to_json(adapter.handle_callback(request).await)
        }
    };

    let mut failures = std::mem::take(
        &mut transport
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failures,
    );
    let sent = transport
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .next;
    if sent < fixture.exchanges.len() {
        failures.push(format!(
            "only {sent} of {} recorded requests were sent; next expected: {} {}",
            fixture.exchanges.len(),
            fixture.exchanges[sent].request.method,
            fixture.exchanges[sent].request.url
        ));
    }
    failures.extend(compare_outcome(&fixture.expect, &outcome));
    Ok(FixtureResult {
        name,
        description: fixture.description,
        failures,
    })
}

fn to_json<T: serde::Serialize>(report: CallReport<T>) -> CallReport<serde_json::Value> {
    let CallReport {
        result,
        trace,
        elapsed,
    } = report;
    let result = result.map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
    CallReport {
        result,
        trace,
        elapsed,
    }
}

/// Lists of events are compared as `{ events = [...] }`, so `[expect.result]`
/// names the field like every other operation's result.
fn events_json<T: serde::Serialize>(report: CallReport<Vec<T>>) -> CallReport<serde_json::Value> {
    let CallReport {
        result,
        trace,
        elapsed,
    } = report;
    let result = result.map(|events| serde_json::json!({ "events": events }));
    CallReport {
        result,
        trace,
        elapsed,
    }
}

fn compare_outcome(expect: &Expect, outcome: &CallReport<serde_json::Value>) -> Vec<String> {
    let mut failures = Vec::new();
    match (&expect.result, &expect.error, &outcome.result) {
        (Some(want), None, Ok(_)) if want.is_empty() => {
            failures.push("[expect.result] names no field: the fixture would check nothing".into());
        }
        (Some(want), None, Ok(got)) => {
            for (key, want_value) in want {
                let want_json = serde_json::to_value(want_value).unwrap_or_default();
                let got_value = got.get(key).cloned().unwrap_or(serde_json::Value::Null);
                if want_json != got_value {
                    failures.push(format!(
                        "result.{key} differs (- expected, + actual):\n{}",
                        diff(&pretty(&want_json), &pretty(&got_value))
                    ));
                }
            }
        }
        (None, Some(want), Err(got)) => {
            if got.kind() != want.kind {
                failures.push(format!(
                    "error kind: expected {}, got {} ({got})",
                    want.kind,
                    got.kind()
                ));
            }
            if let Some(class) = &want.class {
                let actual =
                    serde_json::to_value(got.class(outcome.trace.sent)).unwrap_or_default();
                if actual.as_str() != Some(class.as_str()) {
                    failures.push(format!("error class: expected {class}, got {actual}"));
                }
            }
            if let Some(part) = &want.message_contains
                && !got.to_string().contains(part.as_str())
            {
                failures.push(format!(
                    "error message {:?} does not contain {part:?}",
                    got.to_string()
                ));
            }
        }
        (Some(_), None, Err(got)) => {
            failures.push(format!("expected a result, the call failed: {got}"))
        }
        (None, Some(want), Ok(got)) => failures.push(format!(
            "expected error {}, the call succeeded with:\n{}",
            want.kind,
            pretty(got)
        )),
        _ => failures.push("[expect] needs exactly one of `result` or `error`".into()),
    }
    failures
}
