//! Adapters signed as a release ships them: a publisher key generated in
//! the test's folder (`publisher.key`, `publisher.pub`), trusted by the
//! configuration ([`TRUST`]), and `<component>.sig` beside each component.
//! No test switches signature checking off.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use yiwang_gateway::config::LoadedConfig;
use yiwang_gateway::publisher::{AdapterSignature, PublisherKey, default_signature_path};
use yiwang_gateway::runtime::{Runtime, RuntimeConfig};
use yiwang_schema::Sha256Digest;

/// `[adapters]` trusting the key [`Publisher::in_dir`] writes.
pub const TRUST: &str = "[adapters]\npublisher-keys = [\"publisher.pub\"]\n";

/// A test's adapter publisher.
pub struct Publisher {
    pub key: PublisherKey,
}

impl Publisher {
    /// A fresh key, written to `dir/publisher.key` and `dir/publisher.pub`.
    pub fn in_dir(dir: &Path) -> Publisher {
        let key = PublisherKey::generate();
        key.write(&dir.join("publisher.key"), &dir.join("publisher.pub"))
            .expect("write the publisher key");
        Publisher { key }
    }

    /// A signature of `wasm` for `network`, as the version it reports.
    pub async fn sign(&self, network: &str, wasm: &[u8]) -> AdapterSignature {
        self.key.sign(network, &version_of(wasm).await, wasm)
    }

    /// Sign the component at `path` for `network` into `<path>.sig`.
    pub async fn sign_file(&self, network: &str, path: &Path) {
        let wasm = std::fs::read(path).expect("read the component");
        let sig = self.sign(network, &wasm).await;
        std::fs::write(default_signature_path(path), sig.to_text()).expect("write the signature");
    }
}

/// Sign every configured network's adapter for that network, into the
/// network's signature file (`adapter-signature`, else `<adapter>.sig`).
pub async fn sign_networks(publisher: &Publisher, config: &LoadedConfig) {
    for (name, net) in &config.config.networks {
        let net = net.get_ref();
        let wasm = std::fs::read(config.adapter_path(net)).expect("read the adapter");
        let sig = publisher.sign(name, &wasm).await;
        std::fs::write(config.adapter_signature_path(net), sig.to_text())
            .expect("write the signature");
    }
}

/// The version a component's `describe` reports ("0" for bytes that are no
/// component: their load fails after the signature checks out).
pub async fn version_of(wasm: &[u8]) -> String {
    static SEEN: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let sha = Sha256Digest::of(wasm).to_string();
    if let Some(v) = seen.lock().unwrap_or_else(|p| p.into_inner()).get(&sha) {
        return v.clone();
    }
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: Some(2),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let version = yiwang_gateway::delivery::reported_version(&runtime, wasm)
        .await
        .unwrap_or_else(|_| "0".into());
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sha, version.clone());
    version
}
