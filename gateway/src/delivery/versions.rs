//! Adapter versions of one network: the current one (hot-swapped by an
//! operator), the others that replays pin, and their bytes kept on disk by
//! sha256 so a pinned replay still loads after a restart. A network whose
//! configured adapter failed to load has no current version: it is down
//! (its queue held in alert) until an install or a reload gives it one.

use crate::runtime::{LoadError, LoadedAdapter, NetworkSandbox, Runtime, Services};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use yiwang_fsutil::atomic_write;
use yiwang_schema::Sha256Digest;

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
    #[error(
        "network `{0}` has no adapter loaded (its configured adapter failed to load; install a working version or resume it)"
    )]
    NotLoaded(String),
    #[error("network `{network}`: cannot read adapter {path}: {source}")]
    Read {
        network: String,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "network `{network}`: adapter {path} has sha256 {actual}, but adapter-sha256 pins {pinned}"
    )]
    PinMismatch {
        network: String,
        path: String,
        actual: String,
        pinned: String,
    },
    #[error("{0}")]
    Load(#[from] LoadError),
}

impl VersionError {
    /// A fault of the configuration (a file config check requires, the
    /// runtime's own limits), which stops `serve`, rather than of the adapter
    /// itself, which takes down only its network.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            VersionError::Read { .. }
                | VersionError::Load(LoadError::MemoryLimit { .. } | LoadError::Engine(_))
        )
    }
}

/// The adapter a network is configured with: its file and optional pin.
#[derive(Debug, Clone)]
pub struct ConfiguredAdapter {
    pub path: PathBuf,
    pub pin: Option<String>,
}

/// One network's adapter versions, all loaded in the network's sandbox.
pub struct Versions {
    /// None while the network is down (its configured adapter did not load).
    current: RwLock<Option<Arc<LoadedAdapter>>>,
    /// Other loaded versions by sha256.
    loaded: Mutex<HashMap<String, Arc<LoadedAdapter>>>,
    sandbox: NetworkSandbox,
    services: Services,
    /// Where versions are kept by hash (`<data-dir>/adapters`).
    dir: PathBuf,
    configured: ConfiguredAdapter,
}

impl Versions {
    /// A network's versions, none loaded yet (see [`Versions::load_configured`]).
    pub fn new(
        sandbox: NetworkSandbox,
        services: Services,
        dir: PathBuf,
        configured: ConfiguredAdapter,
    ) -> Versions {
        Versions {
            current: RwLock::new(None),
            loaded: Mutex::new(HashMap::new()),
            sandbox,
            services,
            dir,
            configured,
        }
    }

    /// The adapter new calls use; None while the network is down.
    pub fn current(&self) -> Option<Arc<LoadedAdapter>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Load the configured adapter file (checked against its pin) and make
    /// it the current version; its sha256.
    pub async fn load_configured(&self, runtime: &Runtime) -> Result<String, VersionError> {
        let network = &self.sandbox.network;
        let ConfiguredAdapter { path, pin } = &self.configured;
        let wasm = std::fs::read(path).map_err(|source| VersionError::Read {
            network: network.clone(),
            path: path.display().to_string(),
            source,
        })?;
        if let Some(pinned) = pin {
            let actual = Sha256Digest::of(&wasm).to_string();
            if &actual != pinned {
                return Err(VersionError::PinMismatch {
                    network: network.clone(),
                    path: path.display().to_string(),
                    actual,
                    pinned: pinned.clone(),
                });
            }
        }
        self.install(runtime, &wasm).await
    }

    /// The adapter a job runs with: its pinned version, else the current one.
    pub async fn for_job(
        &self,
        runtime: &Runtime,
        pinned: Option<&str>,
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        let current = self.current();
        let Some(digest) = pinned else {
            return current.ok_or_else(|| VersionError::NotLoaded(self.sandbox.network.clone()));
        };
        if !is_sha256_hex(digest) {
            return Err(VersionError::NotADigest(digest.to_string()));
        }
        if let Some(current) = current.filter(|c| c.digest() == digest) {
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

    /// Make a new version the current one (hot swap, or a down network's
    /// first); its sha256. Calls already running keep the version they
    /// started with.
    pub async fn install(&self, runtime: &Runtime, wasm: &[u8]) -> Result<String, VersionError> {
        let adapter = self.load_kept(runtime, wasm).await?;
        let digest = adapter.digest().to_string();
        let name = adapter.descriptor().name.clone();
        let version = adapter.descriptor().version.clone();
        let old = self
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Arc::new(adapter));
        tracing::info!(
            network = %self.sandbox.network,
            adapter = %name,
            %version,
            from = old.as_ref().map(|o| &o.digest()[..12]),
            to = &digest[..12],
            "adapter installed"
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
