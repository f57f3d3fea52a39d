//! P3 adapter cost: the market-regulation adapter's submit as a Wasm
//! component (pooled instantiate + call, through the host `send`) against the
//! same mapping compiled natively, in the same run, reported as a ratio.
//!
//! `make bench` (or `cargo bench -p yiwang-gateway --bench adapter_cost`).
//! Not a test: it asserts nothing about time.

use market_regulation::mapping;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yiwang_gateway::runtime::{NetworkSandbox, Runtime, RuntimeConfig, Services, Submission};
use yiwang_gateway::transport::{OutboundRequest, OutboundResponse, SendFuture, Transport};

const CASE: &str = include_str!("../../adapters-sdk/schema/testdata/enterprise-establishment.json");
const LOGIN_REPLY: &str =
    r#"{"code":"0000","msg":"成功","data":{"token":"bench-token","expires_in":1800}}"#;
const SUBMIT_REPLY: &str = r#"{"code":"0000","msg":"成功","data":{"bjbh":"SCJG20261120000001","slsj":"2026-11-20 09:30:00"}}"#;

/// Answers in-process, so the figure is the adapter's cost, not the network's.
struct CannedMinistry;

impl Transport for CannedMinistry {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        let body = if request.uri.path().ends_with("/login") {
            LOGIN_REPLY
        } else {
            SUBMIT_REPLY
        };
        Box::pin(async move {
            Ok(OutboundResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.into(),
            })
        })
    }
}

/// The same work natively: parse the case, map it, serialize the body,
/// read the reply.
fn native_submit(case_json: &str) -> String {
    let case: yiwang_schema::Case = serde_json::from_str(case_json).expect("case parses");
    let body = mapping::submit_body(&case, "idem-bench").expect("maps");
    let bytes = mapping::case_body_bytes(&body);
    std::hint::black_box(&bytes);
    let reply = mapping::read_reply(200, None, SUBMIT_REPLY.as_bytes(), mapping::Effect::MayAct)
        .expect("reply");
    reply.data["bjbh"].as_str().unwrap_or_default().to_string()
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    Stats {
        mean: total / n as u32,
        p50: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let wasm = std::fs::read(yiwang_artifacts::MARKET_REGULATION)
        .expect("component built by yiwang-artifacts");

    let runtime = Runtime::new(RuntimeConfig {
        max_instances: Some(8),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let mut sandbox = NetworkSandbox::new(
        "market-regulation",
        vec!["http://ministry.bench".parse().expect("uri")],
    );
    sandbox.secrets.insert("username".into(), "yiwang".into());
    sandbox
        .secrets
        .insert("password".into(), "s3cret-pass".into());
    let adapter = rt
        .block_on(runtime.load(&wasm, sandbox, Services::new(Arc::new(CannedMinistry))))
        .expect("adapter loads");

    let submission = || Submission {
        case_json: CASE.to_string(),
        idempotency_key: "idem-bench".into(),
        inputs: Vec::new(),
    };
    // Warm up both sides (the first Wasm call also logs in and caches the token).
    for _ in 0..50 {
        let r = rt.block_on(adapter.submit("bench", submission()));
        assert_eq!(
            r.result.expect("wasm submit").network_case_number,
            "SCJG20261120000001"
        );
        assert_eq!(native_submit(CASE), "SCJG20261120000001");
    }

    // Interleave the two so machine noise hits both alike.
    let mut wasm_samples = Vec::with_capacity(iterations);
    let mut native_samples = Vec::with_capacity(iterations);
    let mut describe_samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let r = rt.block_on(adapter.submit("bench", submission()));
        wasm_samples.push(t.elapsed());
        std::hint::black_box(r.result.is_ok());

        let t = Instant::now();
        std::hint::black_box(native_submit(std::hint::black_box(CASE)));
        native_samples.push(t.elapsed());

        let t = Instant::now();
        std::hint::black_box(rt.block_on(adapter.describe()).result.is_ok());
        describe_samples.push(t.elapsed());
    }
    let w = stats(wasm_samples);
    let n = stats(native_samples);
    let d = stats(describe_samples);
    println!("P3 adapter cost: market-regulation submit, {iterations} iterations, same process");
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "", "mean µs", "p50 µs", "p99 µs"
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "native mapping (parse + map + reply)",
        us(n.mean),
        us(n.p50),
        us(n.p99)
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "wasm submit (pooled instantiate + call)",
        us(w.mean),
        us(w.p50),
        us(w.p99)
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "wasm describe (instantiate + trivial call)",
        us(d.mean),
        us(d.p50),
        us(d.p99)
    );
    println!(
        "ratio wasm/native (mean): {:.2}x",
        w.mean.as_secs_f64() / n.mean.as_secs_f64()
    );
    println!(
        "ratio wasm/native (p50):  {:.2}x",
        w.p50.as_secs_f64() / n.p50.as_secs_f64()
    );
    println!(
        "ratio wasm minus instantiate overhead / native (p50): {:.2}x",
        (w.p50.saturating_sub(d.p50)).as_secs_f64() / n.p50.as_secs_f64()
    );
}
