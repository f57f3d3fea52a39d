//! Building the delivery service: an adapter that fails to load takes down
//! only its own network (in adapter alert, with the reason), whatever the
//! failure; the healthy network beside it is up.

use std::path::Path;
use std::sync::Arc;
use yiwang_gateway::config::{Config, LoadedConfig};
use yiwang_gateway::delivery::alert::AlertCause;
use yiwang_gateway::delivery::{Delivery, DeliveryOptions};
use yiwang_gateway::store::{Destination, SledStore, Store};
use yiwang_gateway::transport::{OutboundRequest, SendFuture, Transport, TransportError};

/// No ministry is reached while building.
struct Unreachable;

impl Transport for Unreachable {
    fn send(&self, _: OutboundRequest) -> SendFuture {
        Box::pin(async { Err(TransportError::NoReply("no ministry in this test".into())) })
    }
}

/// A folder with a config of two networks: `good` (a working adapter) and
/// `bad` (the given bytes, with an optional pin).
fn config(dir: &Path, bad: &[u8], bad_pin: Option<&str>) -> LoadedConfig {
    std::fs::copy(yiwang_artifacts::MARKET_REGULATION, dir.join("good.wasm")).expect("copy");
    std::fs::write(dir.join("bad.wasm"), bad).expect("write");
    yiwang_pki::Pki::generate(&dir.join("pki"), &[]).expect("pki");
    let pin = bad_pin
        .map(|p| format!("adapter-sha256 = \"{p}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[gateway]\ndata-dir = \"data\"\n\
         [tls]\ncert = \"pki/gateway.crt\"\nkey = \"pki/gateway.key\"\nclient-ca = [\"pki/bureau-ca.crt\"]\n\
         [networks.good]\nadapter = \"good.wasm\"\nendpoints = [\"http://127.0.0.1:9\"]\nplaintext = true\n\
         [networks.bad]\nadapter = \"bad.wasm\"\n{pin}endpoints = [\"http://127.0.0.1:9\"]\nplaintext = true\n"
    );
    std::fs::write(dir.join("yiwang.toml"), text).expect("write config");
    Config::load(&dir.join("yiwang.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Build the delivery service; the reason of `bad`'s alert.
async fn bad_network_reason(bad: &[u8], bad_pin: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = config(dir.path(), bad, bad_pin);
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(&dir.path().join("store")).expect("store"));
    let options = DeliveryOptions {
        transport: Some(Arc::new(Unreachable)),
        ..Default::default()
    };
    let delivery = Delivery::build(&loaded, store, options)
        .await
        .expect("a failing adapter does not stop the build");
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
    delivery.stop();
    alert.reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_component_takes_down_only_its_network() {
    let reason = bad_network_reason(b"not a component", None).await;
    assert!(
        reason.starts_with("adapter failed to load: adapter for network `bad` does not compile"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_that_does_not_match_its_pin_takes_down_only_its_network() {
    let wasm = std::fs::read(yiwang_artifacts::MARKET_REGULATION).expect("read");
    let pin = "0".repeat(64);
    let reason = bad_network_reason(&wasm, Some(&pin)).await;
    assert!(
        reason.starts_with("adapter failed to load: network `bad`: adapter ")
            && reason.ends_with(&format!("but adapter-sha256 pins {pin}")),
        "{reason}"
    );
}
