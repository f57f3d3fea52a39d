//! Adapter versions of one network: the current one (hot-swapped by an
//! operator), the others that replays pin, and their bytes kept on disk by
//! sha256 so a pinned replay still loads after a restart.

use crate::runtime::{AdapterSlot, LoadError, LoadedAdapter, NetworkSandbox, Runtime, Services};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use yiwang_fsutil::atomic_write;

/// Why a version could not be had.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("network `{0}` is not configured")]
    UnknownNetwork(String),
    #[error("adapter version {0:?} is not a sha256 (64 lowercase hex digits)")]
    NotADigest(String),
    #[error("adapter version {short} is not available ({path}: {source})")]
    Missing {
        short: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Load(#[from] LoadError),
}

/// One network's adapter versions, all loaded in the network's sandbox.
pub struct Versions {
    current: AdapterSlot,
    /// Other loaded versions by sha256.
    loaded: Mutex<HashMap<String, Arc<LoadedAdapter>>>,
    sandbox: NetworkSandbox,
    services: Services,
    /// Where versions are kept by hash (`<data-dir>/adapters`).
    dir: PathBuf,
}

impl Versions {
    /// The network's first version, loaded at start; its bytes are kept.
    pub fn new(
        adapter: LoadedAdapter,
        wasm: &[u8],
        sandbox: NetworkSandbox,
        services: Services,
        dir: PathBuf,
    ) -> Versions {
        keep(&dir, adapter.digest(), wasm);
        Versions {
            current: AdapterSlot::new(adapter),
            loaded: Mutex::new(HashMap::new()),
            sandbox,
            services,
            dir,
        }
    }

    /// The adapter new calls use.
    pub fn current(&self) -> Arc<LoadedAdapter> {
        self.current.current()
    }

    /// The adapter a job runs with: its pinned version, else the current one.
    pub async fn for_job(
        &self,
        runtime: &Runtime,
        pinned: Option<&str>,
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        let Some(digest) = pinned else {
            return Ok(self.current());
        };
        if !is_sha256_hex(digest) {
            return Err(VersionError::NotADigest(digest.to_string()));
        }
        let current = self.current();
        if current.digest() == digest {
            return Ok(current);
        }
        if let Some(a) = self.lock().get(digest) {
            return Ok(a.clone());
        }
        let path = self.dir.join(format!("{digest}.wasm"));
        let wasm = std::fs::read(&path).map_err(|source| VersionError::Missing {
            short: digest[..12].to_string(),
            path: path.display().to_string(),
            source,
        })?;
        self.load(runtime, &wasm).await
    }

    /// Load another version (kept on disk by hash so replays pinned to it
    /// survive a restart).
    pub async fn load(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        let adapter = Arc::new(self.load_kept(runtime, wasm).await?);
        self.lock()
            .insert(adapter.digest().to_string(), adapter.clone());
        Ok(adapter)
    }

    /// Make a new version the current one (hot swap); its sha256. Calls
    /// already running keep the version they started with.
    pub async fn install(&self, runtime: &Runtime, wasm: &[u8]) -> Result<String, VersionError> {
        let adapter = self.load_kept(runtime, wasm).await?;
        let digest = adapter.digest().to_string();
        let old = self.current.swap(adapter);
        tracing::info!(
            network = %self.sandbox.network,
            from = &old.digest()[..12],
            to = &digest[..12],
            "adapter swapped"
        );
        Ok(digest)
    }

    async fn load_kept(&self, runtime: &Runtime, wasm: &[u8]) -> Result<LoadedAdapter, LoadError> {
        let adapter = runtime
            .load(wasm, self.sandbox.clone(), self.services.clone())
            .await?;
        keep(&self.dir, adapter.digest(), wasm);
        Ok(adapter)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedAdapter>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Keep an adapter's bytes by hash (a failure is logged: the version still
/// runs, only a pinned replay after a restart would miss it).
fn keep(dir: &Path, digest: &str, wasm: &[u8]) {
    let path = dir.join(format!("{digest}.wasm"));
    if path.exists() {
        return;
    }
    let write = std::fs::create_dir_all(dir).and_then(|()| atomic_write(&path, wasm));
    if let Err(e) = write {
        tracing::warn!(path = %path.display(), error = %e, "could not keep adapter version");
    }
}

#[cfg(test)]
mod tests {
    use super::is_sha256_hex;

    #[test]
    fn only_lowercase_sha256_hex_names_a_version() {
        assert!(is_sha256_hex(&"a1".repeat(32)));
        assert!(!is_sha256_hex(&"A1".repeat(32)));
        assert!(!is_sha256_hex(&"a1".repeat(31)));
        assert!(!is_sha256_hex("../../etc/passwd"));
    }
}
