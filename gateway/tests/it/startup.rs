//! Building the delivery service: an adapter that fails to load takes down
//! only its own network (in adapter alert, with the reason), whatever the
//! failure — its publisher signature refused (none, unknown key, signed for
//! another network, bytes not the signed ones), its pin, its bytes; the
//! healthy network beside it is up. And the active version is durable: a
//! hot swap outlives a restart until the configured file changes.

use crate::publish::{Publisher, TRUST};
use std::path::Path;
use std::sync::Arc;
use yiwang_gateway::config::{Config, LoadedConfig};
use yiwang_gateway::delivery::alert::AlertCause;
use yiwang_gateway::delivery::{Delivery, DeliveryOptions};
use yiwang_gateway::publisher::PublisherKey;
use yiwang_gateway::store::{Destination, SledStore, Store};
use yiwang_gateway::transport::{OutboundRequest, SendFuture, Transport, TransportError};

/// No ministry is reached while building.
struct Unreachable;

impl Transport for Unreachable {
    fn send(&self, _: OutboundRequest) -> SendFuture {
        Box::pin(async { Err(TransportError::NoReply("no ministry in this test".into())) })
    }
}

/// How `bad`'s component is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    /// By the trusted publisher, for `bad`.
    Good,
    /// No signature file.
    Unsigned,
    /// By a key the configuration does not trust.
    UnknownKey,
    /// By the trusted publisher, for the network `good`.
    OtherNetwork,
    /// Signed, then its bytes changed.
    Tampered,
}

/// A folder with a config of two networks, both signed by a publisher the
/// config trusts: `good` (a working adapter) and `bad` (the given bytes,
/// with an optional pin, signed as `signing` says).
async fn config(dir: &Path, bad: &[u8], bad_pin: Option<&str>, signing: Signing) -> LoadedConfig {
    let publisher = Publisher::in_dir(dir);
    std::fs::copy(yiwang_artifacts::MARKET_REGULATION, dir.join("good.wasm")).expect("copy");
    publisher.sign_file("good", &dir.join("good.wasm")).await;
    let sig = match signing {
        Signing::Good | Signing::Tampered => Some(publisher.sign("bad", bad).await),
        Signing::Unsigned => None,
        Signing::UnknownKey => Some(PublisherKey::generate().sign("bad", "0", bad)),
        Signing::OtherNetwork => Some(publisher.sign("good", bad).await),
    };
    if let Some(sig) = sig {
        std::fs::write(dir.join("bad.wasm.sig"), sig.to_text()).expect("write");
    }
    let bytes = match signing {
        Signing::Tampered => [bad, b"!"].concat(),
        _ => bad.to_vec(),
    };
    std::fs::write(dir.join("bad.wasm"), bytes).expect("write");
    yiwang_pki::Pki::generate(&dir.join("pki"), &[]).expect("pki");
    let pin = bad_pin
        .map(|p| format!("adapter-sha256 = \"{p}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[gateway]\ndata-dir = \"data\"\n\
         [tls]\ncert = \"pki/gateway.crt\"\nkey = \"pki/gateway.key\"\nclient-ca = [\"pki/bureau-ca.crt\"]\n\
         {TRUST}\
         [networks.good]\nadapter = \"good.wasm\"\nendpoints = [\"http://127.0.0.1:9\"]\nplaintext = true\n\
         [networks.bad]\nadapter = \"bad.wasm\"\n{pin}endpoints = [\"http://127.0.0.1:9\"]\nplaintext = true\n"
    );
    std::fs::write(dir.join("yiwang.toml"), text).expect("write config");
    Config::load(&dir.join("yiwang.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Build the delivery service over `dir`'s config and store.
async fn build(dir: &Path, loaded: &LoadedConfig) -> Arc<Delivery> {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("store")).expect("store"));
    let options = DeliveryOptions {
        transport: Some(Arc::new(Unreachable)),
        ..Default::default()
    };
    Delivery::build(loaded, store, options)
        .await
        .expect("a failing adapter does not stop the build")
}

/// Build the delivery service; the reason of `bad`'s alert.
async fn bad_network_reason(bad: &[u8], bad_pin: Option<&str>, signing: Signing) -> String {
    bad_network(bad, bad_pin, signing).await.0
}

/// Build the delivery service; the reason of `bad`'s alert and the
/// `adapter_refused` detail of the audit trail's alert record, if any.
async fn bad_network(
    bad: &[u8],
    bad_pin: Option<&str>,
    signing: Signing,
) -> (String, Option<serde_json::Value>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = config(dir.path(), bad, bad_pin, signing).await;
    let delivery = build(dir.path(), &loaded).await;
    assert!(
        !delivery.networks["good"].is_down(),
        "the healthy neighbour is up"
    );
    assert!(delivery.networks["bad"].is_down());
    let good = Destination::Network("good".into());
    assert!(delivery.alerts.get(&good).is_none());
    let alert = delivery
        .alerts
        .get(&Destination::Network("bad".into()))
        .expect("the down network is in alert");
    assert_eq!(alert.cause, AlertCause::AdapterLoad);
    // Only an adapter lifts it: not a TLS reload, not a plain lift.
    assert!(matches!(
        delivery.lift_alert("bad", "its TLS files changed"),
        Some(None)
    ));
    assert!(
        delivery
            .alerts
            .get(&Destination::Network("bad".into()))
            .is_some()
    );
    // A resume retries the same bad file and says why it still fails.
    let again = delivery.resume("bad").await.expect_err("still fails");
    assert!(
        again.to_string().starts_with("adapter failed to load: "),
        "{again}"
    );
    delivery.audit.checkpoint().await.expect("checkpoint");
    let refused = refusals(&delivery);
    delivery.stop();
    (alert.reason, refused.into_iter().next())
}

/// The `adapter_refused` details of `bad`'s alert records.
fn refusals(delivery: &Delivery) -> Vec<serde_json::Value> {
    let query = yiwang_audit::Query {
        network: Some("bad".into()),
        kind: Some(yiwang_audit::Kind::Alert),
        ..Default::default()
    };
    yiwang_audit::query(delivery.audit.dir(), &query)
        .filter_map(|r| r.expect("record").detail.get("adapter_refused").cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_component_takes_down_only_its_network() {
    let reason = bad_network_reason(b"not a component", None, Signing::Good).await;
    assert!(
        reason.starts_with("adapter failed to load: adapter for network `bad` does not compile"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_that_does_not_match_its_pin_takes_down_only_its_network() {
    let wasm = std::fs::read(yiwang_artifacts::MARKET_REGULATION).expect("read");
    let pin = "0".repeat(64);
    let reason = bad_network_reason(&wasm, Some(&pin), Signing::Good).await;
    assert!(
        reason.starts_with("adapter failed to load: network `bad`: adapter ")
            && reason.ends_with(&format!("but adapter-sha256 pins {pin}")),
        "{reason}"
    );
}

/// `bad`'s component (a working adapter) signed as `signing`: the reason
/// its network is down, which must name the check, and the audit record's.
async fn refused_at_start(signing: Signing, check: &str, says: &str) {
    let wasm = std::fs::read(yiwang_artifacts::HOUSING_CONSTRUCTION).expect("read");
    let (reason, refused) = bad_network(&wasm, None, signing).await;
    assert!(
        reason.starts_with("adapter failed to load: network `bad`: adapter ")
            && reason.contains(" refused: ")
            && reason.contains(says),
        "{signing:?}: {reason}"
    );
    let refused = refused.unwrap_or_else(|| panic!("{signing:?}: no adapter_refused record"));
    assert_eq!(refused["check"], check, "{refused}");
    let sha = yiwang_schema::Sha256Digest::of(match signing {
        Signing::Tampered => [&wasm[..], b"!"].concat(),
        _ => wasm.clone(),
    });
    assert_eq!(refused["sha256"], sha.to_string(), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_adapter_is_refused_at_start() {
    refused_at_start(Signing::Unsigned, "no-signature", "no signature (").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_signed_by_an_untrusted_key_is_refused_at_start() {
    refused_at_start(
        Signing::UnknownKey,
        "unknown-key",
        "not in [adapters] publisher-keys",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_signed_for_another_network_is_refused_at_start() {
    refused_at_start(
        Signing::OtherNetwork,
        "other-network",
        "signed for network `good`",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_adapter_is_refused_at_start() {
    refused_at_start(Signing::Tampered, "sha-mismatch", "the signature covers").await;
}

/// A version of a component with another sha256 (a custom section added).
fn another_version(wasm: &[u8]) -> Vec<u8> {
    let payload = [&[4u8][..], b"test", b"2"].concat();
    [wasm, &[0u8, payload.len() as u8][..], &payload].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_swap_outlives_a_restart_until_the_configured_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = std::fs::read(yiwang_artifacts::HOUSING_CONSTRUCTION).expect("read");
    let loaded = config(dir.path(), &wasm, None, Signing::Good).await;
    let publisher = Publisher {
        key: PublisherKey::read(&dir.path().join("publisher.key")).expect("key"),
    };
    let current = |d: &Delivery| d.networks["bad"].versions.current().expect("up");

    // A refused swap changes nothing, now or after a restart.
    let delivery = build(dir.path(), &loaded).await;
    let configured = current(&delivery).digest().to_string();
    let swapped = another_version(&wasm);
    let for_good = publisher.sign("good", &swapped).await;
    let refused = delivery.install("bad", &swapped, Some(for_good)).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("signed for network `good`")));
    let sig = publisher.sign("bad", &swapped).await;
    let digest = delivery
        .install("bad", &swapped, Some(sig))
        .await
        .expect("swap");
    assert_ne!(digest, configured);
    stop(delivery).await;

    // Restarted: the swapped version is active, not the configured file.
    let delivery = build(dir.path(), &loaded).await;
    assert_eq!(current(&delivery).digest(), digest);
    stop(delivery).await;

    // The configured file changes (a new release, signed): it wins.
    let release = another_version(&swapped);
    std::fs::write(dir.path().join("bad.wasm"), &release).expect("write");
    publisher
        .sign_file("bad", &dir.path().join("bad.wasm"))
        .await;
    let delivery = build(dir.path(), &loaded).await;
    let now = current(&delivery).digest().to_string();
    assert_eq!(now, yiwang_schema::Sha256Digest::of(&release).to_string());
    delivery.audit.checkpoint().await.expect("checkpoint");
    let query = yiwang_audit::Query {
        network: Some("bad".into()),
        kind: Some(yiwang_audit::Kind::Alert),
        ..Default::default()
    };
    let set_aside = yiwang_audit::query(delivery.audit.dir(), &query)
        .filter_map(|r| {
            r.expect("record")
                .detail
                .get("adapter_swap_set_aside")
                .cloned()
        })
        .count();
    assert_eq!(set_aside, 1, "the superseded swap is audited once");
    stop(delivery).await;
}

async fn stop(delivery: Arc<Delivery>) {
    delivery.stop();
    delivery.stopped().await;
    delivery.audit.close().await.expect("close the trail");
}

/// `yiwang adapter …` in `dir`: exit code and stdout.
fn yiwang(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .current_dir(dir)
        .arg("adapter")
        .args(args)
        .output()
        .expect("run yiwang");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn cli_keygen_sign_and_verify_name_the_failed_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::copy(yiwang_artifacts::HOUSING_CONSTRUCTION, d.join("hc.wasm")).expect("copy");
    let (code, out) = yiwang(d, &["keygen", "--out", "p"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = yiwang(d, &["sign", "--key", "p.key", "--network", "hc", "hc.wasm"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("signed for network `hc`"), "{out}");
    let verify = |network: &str| {
        yiwang(
            d,
            &[
                "verify",
                "--publisher-key",
                "p.pub",
                "--network",
                network,
                "hc.wasm",
            ],
        )
    };
    let (code, out) = verify("hc");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify("tax");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused for network `tax` (other-network)"),
        "{out}"
    );
    // A version the component does not report is refused once loaded.
    let args = [
        "sign",
        "--key",
        "p.key",
        "--network",
        "hc",
        "--version",
        "9.9",
        "hc.wasm",
    ];
    assert_eq!(yiwang(d, &args).0, Some(0));
    let (code, out) = verify("hc");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("(version-mismatch)"), "{out}");
    let mut wasm = std::fs::read(d.join("hc.wasm")).expect("read");
    wasm.push(0);
    std::fs::write(d.join("hc.wasm"), wasm).expect("write");
    let (code, out) = verify("hc");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("(sha-mismatch)"), "{out}");
    let args = [
        "verify",
        "--publisher-key",
        "gone.pub",
        "--network",
        "hc",
        "hc.wasm",
    ];
    let (code, out) = yiwang(d, &args);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("gone.pub"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_runs_only_a_version_signed_for_its_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = std::fs::read(yiwang_artifacts::HOUSING_CONSTRUCTION).expect("read");
    let loaded = config(dir.path(), &wasm, None, Signing::Good).await;
    let publisher = Publisher {
        key: PublisherKey::read(&dir.path().join("publisher.key")).expect("key"),
    };
    let delivery = build(dir.path(), &loaded).await;
    // An upload for a replay, without its signature: refused.
    let upload = another_version(&wasm);
    let unsigned = delivery
        .load_version(&delivery.networks["bad"], &upload, None)
        .await;
    assert!(unsigned.is_err_and(|e| e.to_string().contains("no signature")));
    // A version kept for `bad` cannot be pinned on `good`: its signature
    // was for `bad`.
    let sig = publisher.sign("bad", &upload).await;
    let digest = delivery
        .install("bad", &upload, Some(sig))
        .await
        .expect("swap");
    let runtime = yiwang_gateway::runtime::Runtime::new(Default::default()).expect("runtime");
    let pinned = delivery.networks["good"]
        .versions
        .for_job(&runtime, Some(&digest))
        .await;
    assert!(
        pinned.is_err_and(|e| e.to_string().contains("refused: no signature")),
        "a version accepted for one network is refused on another"
    );
    let on_bad = delivery.networks["bad"]
        .versions
        .for_job(&runtime, Some(&digest))
        .await;
    assert!(on_bad.is_ok());
    stop(delivery).await;
}
