//! A component on its own, outside any gateway: loaded into a throwaway
//! runtime to read what it says about itself (`describe`), for the
//! commands that inspect, sign or verify a file.

use super::tokio_rt;
use crate::runtime::{NetworkSandbox, Runtime, RuntimeConfig, Services};
use crate::transport::HttpTransport;
use anyhow::Result;

/// What a component says about itself (it is loaded in a sandbox with no
/// endpoints).
pub(super) fn describe(wasm: &[u8]) -> Result<crate::runtime::Descriptor> {
    let rt = tokio_rt()?;
    let descriptor = rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances: Some(2),
            ..RuntimeConfig::default()
        })?;
        let sandbox = NetworkSandbox::new("describe", Vec::new());
        let adapter = runtime
            .load(
                wasm,
                sandbox,
                Services::new(std::sync::Arc::new(HttpTransport::default())),
            )
            .await?;
        anyhow::Ok(adapter.descriptor().clone())
    })?;
    Ok(descriptor)
}
