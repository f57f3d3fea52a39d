//! Hostile adapters are stopped with the right classified error, and a
//! well-behaved adapter loaded beside them keeps working.

use std::sync::Arc;
use std::time::Duration;
use yiwang_gateway::delivery::{ConfiguredAdapter, Versions};
use yiwang_gateway::publisher::Trust;
use yiwang_gateway::runtime::{
    CallError, ErrorClass, LimitHit, NetworkSandbox, NetworkSlots, Runtime, RuntimeConfig,
    Services, Submission, Violation,
};
use yiwang_gateway::transport::{
    OutboundRequest, OutboundResponse, SendFuture, Transport, TransportError,
};

/// A ministry stand-in that answers every request with its own body, or
/// blocks until released when asked to (every request, or only the first).
#[derive(Default)]
struct EchoTransport {
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Set: only the first request waits for the gate.
    first_only: Option<std::sync::atomic::AtomicBool>,
}

impl EchoTransport {
    fn gated(gate: Arc<tokio::sync::Semaphore>) -> Self {
        EchoTransport {
            gate: Some(gate),
            first_only: None,
        }
    }
}

impl Transport for EchoTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        let waits = match &self.first_only {
            Some(first) => first.swap(false, std::sync::atomic::Ordering::SeqCst),
            None => true,
        };
        let gate = self.gate.clone().filter(|_| waits);
        Box::pin(async move {
            if let Some(g) = gate {
                let _permit = g
                    .acquire()
                    .await
                    .map_err(|e| TransportError::NoReply(e.to_string()))?;
            }
            Ok(OutboundResponse {
                status: 200,
                headers: vec![],
                body: request.body,
            })
        })
    }
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: Some(16),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn sandbox(network: &str, mode: &str) -> NetworkSandbox {
    let mut sb = NetworkSandbox::new(
        network,
        vec!["http://ministry.test:8080".parse().expect("uri")],
    );
    sb.config.insert("mode".into(), mode.into());
    sb.limits.memory_bytes = 32 << 20;
    sb.limits.cpu_time = Duration::from_millis(300);
    sb.limits.wall_time = Duration::from_secs(5);
    sb
}

fn services() -> Services {
    Services::new(Arc::new(EchoTransport::default()))
}

fn submission(case: &str) -> Submission {
    Submission {
        case_json: format!(r#"{{"case_number":"{case}"}}"#),
        idempotency_key: format!("idem-{case}"),
        inputs: vec![],
    }
}

async fn hostile_then_healthy(mode: &str) -> (CallError, ErrorClass) {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let bad = rt
        .load(&wasm, sandbox("bad-net", mode), services())
        .await
        .expect("load hostile");
    let good = rt
        .load(&wasm, sandbox("good-net", "echo"), services())
        .await
        .expect("load echo");

    let report = bad.submit("C-1", submission("C-1")).await;
    let class = report.error_class().expect("hostile call must fail");
    let err = report.result.expect_err("hostile call must fail");

    // The neighbour, and the hostile network's next call, still work.
    for _ in 0..2 {
        let ok = good.submit("C-2", submission("C-2")).await;
        assert_eq!(
            ok.result
                .expect("healthy adapter keeps working")
                .network_case_number,
            "ECHO-C-2"
        );
    }
    let again = bad.submit("C-3", submission("C-3")).await;
    assert_eq!(
        again.result.expect_err("fails again").kind(),
        err.kind(),
        "next call gets a fresh instance"
    );
    (err, class)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_cpu_limit() {
    let (err, class) = hostile_then_healthy("loop").await;
    assert!(
        matches!(err, CallError::Limit(LimitHit::CpuTime { limit_ms: 300 })),
        "{err}"
    );
    assert_eq!(class, ErrorClass::Retryable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_flood_stops_at_the_writes_per_call_limit() {
    // `kv-flood` sets 1000 new keys a call: the 257th write stops it.
    let (err, class) = hostile_then_healthy("kv-flood").await;
    assert!(
        matches!(err, CallError::Limit(LimitHit::KvWrites { limit: 256 })),
        "{err}"
    );
    assert_eq!(err.kind(), "limit_kv_writes");
    assert_eq!(class, ErrorClass::Retryable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_hits_memory_limit() {
    let (err, class) = hostile_then_healthy("memory").await;
    match &err {
        CallError::Limit(LimitHit::Memory { limit, desired }) => {
            assert_eq!(*limit, 32 << 20);
            assert!(desired > limit);
        }
        other => panic!("expected memory limit, got {other}"),
    }
    assert!(
        err.to_string().contains("33554432"),
        "error names the limit: {err}"
    );
    // Counted by the queue, which dead-letters after the network's allowance.
    assert_eq!(class, ErrorClass::Retryable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_is_named() {
    let (err, class) = hostile_then_healthy("stack").await;
    assert!(
        matches!(err, CallError::Limit(LimitHit::StackOverflow)),
        "{err}"
    );
    assert_eq!(class, ErrorClass::Retryable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_trap() {
    let (err, class) = hostile_then_healthy("trap").await;
    assert!(matches!(err, CallError::Trap(_)), "{err}");
    assert_eq!(class, ErrorClass::Permanent);
    // The SDK's panic hook logged the message; the reason quotes it.
    let reason = err.to_string();
    assert!(
        reason.starts_with("adapter trapped: wasm trap: wasm `unreachable` instruction executed")
            && reason.contains("; last error logged: panicked at testing/hostile/src/lib.rs:")
            && reason.ends_with(": hostile adapter panics on purpose"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_output_is_refused() {
    // 16 MiB is over every limit (output 1 MiB, request 8 MiB): refused by
    // wasmtime's hostcall fuel while being lifted, before the host holds a
    // copy. The kind pins the wording of wasmtime's private fuel error.
    let (err, _) = hostile_then_healthy("oversize").await;
    assert_eq!(err.kind(), "limit_output", "{err}");
    match err {
        CallError::Limit(LimitHit::Transfer { budget }) => {
            assert!(budget > 8 << 20 && budget < 16 << 20, "{budget}");
        }
        other => panic!("expected output limit, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_outside_the_network_is_a_violation() {
    let (err, class) = hostile_then_healthy("foreign-host").await;
    match err {
        CallError::Violation(Violation::ForbiddenDestination { network, url }) => {
            assert_eq!(network, "bad-net");
            assert!(url.contains("169.254.169.254"), "{url}");
        }
        other => panic!("expected a violation, got {other}"),
    }
    assert_eq!(class, ErrorClass::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_output_is_refused() {
    let (err, _) = hostile_then_healthy("malformed").await;
    assert!(
        matches!(&err, CallError::Malformed(m) if m.to_string().contains("yesterday")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_files_env_args_or_sockets() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let a = rt
        .load(&wasm, sandbox("n", "escape"), services())
        .await
        .expect("load");
    let receipt = a
        .submit("C-1", submission("C-1"))
        .await
        .result
        .expect("escape mode reports");
    let seen = receipt.raw_receipt;
    for denied in [
        "read /etc/passwd: false",
        "read_dir /: false",
        "write /tmp/x: false",
        "env vars: 0",
        "args: 0",
        "tcp connect: false",
        "dns: false",
    ] {
        assert!(seen.contains(denied), "expected {denied:?} in:\n{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_memory_survives_from_one_call_to_the_next() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let a = rt
        .load(&wasm, sandbox("n", "residue"), services())
        .await
        .expect("load");
    // The same pool slot is reused call after call; each must start from
    // the component's pristine memory.
    for i in 0..4 {
        let receipt = a
            .submit("C-1", submission("C-1"))
            .await
            .result
            .expect("residue mode reports");
        assert_eq!(
            receipt.raw_receipt, "data=7 zero=0 scratch-dirty=0",
            "call {i} saw an earlier call's memory"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_is_scoped_and_capped() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let svc = services();
    let a = rt
        .load(&wasm, sandbox("n1", "kv"), svc.clone())
        .await
        .expect("load");
    let receipt = a
        .submit("C-1", submission("C-1"))
        .await
        .result
        .expect("kv works");
    assert_eq!(receipt.raw_receipt, "token=abc big-refused=true");
    assert_eq!(svc.kv.get("n1", "token").as_deref(), Some(&b"abc"[..]));
    assert_eq!(svc.kv.get("n2", "token"), None);
}

/// The same component with a custom section appended: valid, and another
/// version (another sha256) for the gateway.
fn another_version(wasm: &[u8]) -> Vec<u8> {
    let name = b"yiwang-test-version";
    let payload = [&[name.len() as u8][..], name, b"2"].concat();
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(payload.len() as u8); // LEB128 of a size under 128
    out.extend_from_slice(&payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_keeps_calls_in_flight_on_the_old_version() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let svc = Services::new(Arc::new(EchoTransport {
        gate: Some(gate.clone()),
        first_only: Some(true.into()),
    }));
    let publisher = crate::publish::Publisher::in_dir(dir.path());
    let trust = Trust::new(vec![publisher.key.public()], false);
    let versions = Versions::new(
        sandbox("n", "relay"),
        svc,
        dir.path().into(),
        ConfiguredAdapter {
            path: dir.path().join("unused.wasm"),
            pin: None,
            signature: dir.path().join("unused.wasm.sig"),
        },
        Arc::new(trust),
    );
    let sig = publisher.sign("n", &wasm).await;
    let v1 = versions.install(&rt, &wasm, Some(sig)).await.expect("v1");

    // A call starts on v1 and blocks inside `send`.
    let old = versions.current().expect("v1 is current");
    let in_flight = tokio::spawn(async move { old.submit("C-1", submission("C-1")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let v2_wasm = another_version(&wasm);
    let sig = publisher.sign("n", &v2_wasm).await;
    let v2 = versions
        .install(&rt, &v2_wasm, Some(sig))
        .await
        .expect("v2");
    assert_ne!(v1, v2);
    let current = versions.current().expect("v2 is current");
    assert_eq!(current.digest(), v2);

    // New calls use v2 at once, while the v1 call is still waiting.
    let new = current.submit("C-2", submission("C-2")).await;
    assert_eq!(
        new.result.expect("v2 works").network_case_number,
        "RELAY-C-2"
    );
    assert!(!in_flight.is_finished());

    gate.add_permits(1);
    let finished = in_flight.await.expect("join");
    assert_eq!(
        finished
            .result
            .expect("v1 call finishes on v1")
            .network_case_number,
        "RELAY-C-1"
    );
    assert_eq!(finished.trace.exchanges.len(), 1);
    assert_eq!(finished.trace.exchanges[0].url, "/relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    for round in 0..2 {
        let rt = Runtime::new(RuntimeConfig {
            max_instances: Some(4),
            cache_dir: Some(dir.path().into()),
            ..Default::default()
        })
        .expect("runtime");
        let a = rt
            .load(&wasm, sandbox("n", "echo"), services())
            .await
            .expect("load");
        assert!(
            a.submit("C", submission("C")).await.result.is_ok(),
            "round {round}"
        );
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("read cache").collect();
    assert_eq!(files.len(), 1, "one cached file per component and engine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_a_violation() {
    let (err, _) = hostile_then_healthy("flood").await;
    assert!(
        matches!(
            err,
            CallError::Violation(Violation::TooManyRequests { limit: 16 })
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_limit_while_waiting_on_the_ministry_is_ambiguous() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    // The ministry never answers: the request went out, the reply never comes.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let svc = Services::new(Arc::new(EchoTransport::gated(gate)));
    let mut sb = sandbox("slow-net", "relay");
    sb.limits.wall_time = Duration::from_millis(300);
    let a = rt.load(&wasm, sb, svc).await.expect("load");
    let report = a.submit("C-1", submission("C-1")).await;
    let class = report.error_class();
    let err = report.result.expect_err("times out");
    assert!(
        matches!(err, CallError::Limit(LimitHit::WallTime { limit_ms: 300 })),
        "{err}"
    );
    assert_eq!(
        class,
        Some(ErrorClass::Ambiguous),
        "the request may have reached the ministry"
    );

    // The same limit before anything was sent is plainly retryable.
    let (err, class) = hostile_then_healthy("loop").await;
    assert!(matches!(err, CallError::Limit(LimitHit::CpuTime { .. })));
    assert_eq!(class, ErrorClass::Retryable);
}

/// Headers and body of one request as it reached the wire.
type WireRecord = (Vec<(String, String)>, String);

/// Records what reached the wire.
struct RecordingTransport(std::sync::Mutex<Vec<WireRecord>>);

impl Transport for RecordingTransport {
    fn send(&self, request: OutboundRequest) -> SendFuture {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        self.0
            .lock()
            .expect("lock")
            .push((request.headers.clone(), body.clone()));
        Box::pin(async move {
            Ok(OutboundResponse {
                status: 200,
                headers: vec![],
                body: body.into(),
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_filled_only_on_request_and_never_from_case_data() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let wire = Arc::new(RecordingTransport(std::sync::Mutex::new(Vec::new())));
    let svc = Services::new(wire.clone());
    for mode in ["secret-smuggle", "login"] {
        let mut sb = sandbox("n", mode);
        sb.secrets.insert("username".into(), "gw-user".into());
        sb.secrets.insert("password".into(), "hunter2".into());
        assert!(
            !format!("{sb:?}").contains("hunter2"),
            "Debug never prints secrets"
        );
        let a = rt.load(&wasm, sb, svc.clone()).await.expect("load");
        a.submit("C-1", submission("C-1"))
            .await
            .result
            .expect("call works");
    }
    let wire = wire.0.lock().expect("lock");
    assert_eq!(wire.len(), 2);
    assert!(
        wire[0].1.contains("${secret:password}") && !wire[0].1.contains("hunter2"),
        "smuggled: {}",
        wire[0].1
    );
    assert_eq!(wire[1].1, r#"{"password":"hunter2"}"#);
    assert!(
        wire[1]
            .0
            .iter()
            .any(|(k, v)| k == "x-user" && v == "gw-user")
    );
}

/// A network spinning on every guest thread (more loops than threads) does
/// not keep a neighbour from running: the neighbour's calls complete while
/// the loops are still running, and each loop ends on its own CPU limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_network_leaves_its_neighbour_its_turn() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = Runtime::new(RuntimeConfig {
        max_instances: Some(2 * threads as u32 + 4),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let mut spin = sandbox("spin-net", "loop");
    spin.limits.cpu_time = Duration::from_millis(500);
    spin.limits.wall_time = Duration::from_secs(120);
    spin.slots = NetworkSlots::new(2 * threads as u32, 0, false);
    let spin = Arc::new(rt.load(&wasm, spin, services()).await.expect("load spin"));
    let calm = rt
        .load(&wasm, sandbox("calm-net", "echo"), services())
        .await
        .expect("load echo");
    let loops: Vec<_> = (0..2 * threads)
        .map(|i| {
            let spin = spin.clone();
            tokio::spawn(async move { spin.submit(&format!("S-{i}"), submission("S")).await })
        })
        .collect();
    for i in 0..5 {
        let case = format!("C-{i}");
        let ok = calm.submit(&case, submission(&case)).await;
        assert_eq!(
            ok.result
                .expect("the neighbour delivers")
                .network_case_number,
            format!("ECHO-{case}")
        );
    }
    assert!(
        loops.iter().any(|l| !l.is_finished()),
        "the neighbour was served while the loops still ran"
    );
    for l in loops {
        let err = l.await.expect("join").result.expect_err("loops end");
        assert!(
            matches!(err, CallError::Limit(LimitHit::CpuTime { limit_ms: 500 })),
            "{err}"
        );
        assert!(err.to_string().contains("CPU time over 500 ms"), "{err}");
    }
}

/// A network whose calls all wait on its ministry holds only its own slots
/// (and no guest thread): a neighbour's calls still instantiate and run in
/// a pool exactly the size of the two reservations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_waits_for_its_own_slots_and_never_takes_anothers() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut slow = sandbox("slow-net", "relay");
    slow.slots = NetworkSlots::new(threads, 0, false);
    let mut calm = sandbox("calm-net", "echo");
    calm.slots = NetworkSlots::new(1, 0, false);
    let rt = Runtime::new(RuntimeConfig {
        max_instances: Some(slow.slots.reserved() + calm.slots.reserved()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let blocked = Services::new(Arc::new(EchoTransport::gated(gate.clone())));
    let slow = Arc::new(rt.load(&wasm, slow, blocked).await.expect("load relay"));
    let calm = rt.load(&wasm, calm, services()).await.expect("load echo");

    // Twice as many calls as the slow network has slots: the first
    // `threads + 1` wait on the ministry, the rest wait for a slot.
    let calls: Vec<_> = (0..2 * (threads + 1))
        .map(|i| {
            let slow = slow.clone();
            tokio::spawn(async move {
                let case = format!("S-{i}");
                slow.submit(&case, submission(&case)).await
            })
        })
        .collect();
    while slow.slots().available() > 0 {
        tokio::task::yield_now().await;
    }
    let neighbour = async {
        for i in 0..3 {
            let case = format!("C-{i}");
            let ok = calm.submit(&case, submission(&case)).await;
            assert_eq!(
                ok.result
                    .expect("the neighbour instantiates and runs")
                    .network_case_number,
                format!("ECHO-{case}")
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), neighbour)
        .await
        .expect("the neighbour is not starved of slots or guest threads");
    assert!(calls.iter().all(|c| !c.is_finished()));

    gate.add_permits(calls.len());
    for c in calls {
        let report = c.await.expect("join");
        assert!(
            report
                .result
                .expect("relayed")
                .network_case_number
                .starts_with("RELAY-"),
            "every call got a slot in turn"
        );
    }
}

/// A sensitive adapter-config value the adapter writes into a log line, a
/// request URL and its error reaches the ministry (it is the adapter's to
/// use) but none of what the gateway shows: the log (the last error line),
/// the exchange recorded for the audit trail, the error text that dead
/// letters, the case view and the admin API carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_config_value_is_redacted_in_logs_exchanges_and_errors() {
    let rt = runtime();
    let wasm = yiwang_artifacts::read(yiwang_artifacts::HOSTILE_ADAPTER);
    let wire = Arc::new(RecordingTransport(std::sync::Mutex::new(Vec::new())));
    let mut sb = sandbox("n", "leak-config");
    sb.config.insert("api-token".into(), "TOKEN-5f2a9c".into());
    sb.sensitive.insert("api-token".into());
    let a = rt
        .load(&wasm, sb, Services::new(wire.clone()))
        .await
        .expect("load");
    let report = a.submit("C-1", submission("C-1")).await;
    let err = report.result.expect_err("the adapter refuses");
    assert_eq!(
        err.to_string(),
        "rejected by the ministry: token [redacted:api-token] refused"
    );
    assert_eq!(
        report.trace.last_error.as_deref(),
        Some("using token [redacted:api-token]")
    );
    assert_eq!(report.trace.exchanges.len(), 1);
    assert_eq!(
        report.trace.exchanges[0].url,
        "/relay?token=[redacted:api-token]"
    );
    let wire = wire.0.lock().expect("lock");
    assert_eq!(wire.len(), 1, "the request itself went out as written");
}
