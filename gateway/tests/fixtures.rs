//! Every adapter in plugins/ passes its recorded fixtures, and a fixture
//! that does not match fails with a readable diff.

use std::path::Path;
use yiwang_gateway::fixture;
use yiwang_gateway::runtime::{Runtime, RuntimeConfig};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig { max_instances: 8, ..RuntimeConfig::default() }).expect("runtime")
}

/// The plugin folder of an artifact (`market_regulation` → plugins/market-regulation).
fn plugin_dir(crate_name: &str) -> std::path::PathBuf {
    Path::new(yiwang_artifacts::PLUGINS_DIR).join(crate_name.replace('_', "-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plugin_passes_its_fixtures() {
    let rt = runtime();
    let mut checked = 0;
    for (name, path) in yiwang_artifacts::ALL {
        if *name == "hostile_adapter" {
            continue; // a test double, exercised by tests/sandbox.rs
        }
        let dir = plugin_dir(name).join("fixtures");
        assert!(dir.is_dir(), "adapter {name} has no fixtures folder at {}: every adapter needs fixtures", dir.display());
        let results = fixture::run_dir(&rt, &yiwang_artifacts::read(path), &dir).await.expect("fixtures load");
        assert!(results.len() >= 2, "{name} should have fixtures for submit and query-status at least");
        for r in &results {
            assert!(r.passed(), "{name}/{}: {}\n{}", r.name, r.description, r.failures.join("\n"));
        }
        checked += 1;
    }
    assert!(checked >= 2, "expected at least two real adapters, found {checked}");
}
