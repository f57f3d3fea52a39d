//! Adapter versions of one network: the current one (hot-swapped by an
//! operator), the others that replays pin, and their bytes kept on disk by
//! sha256 so a pinned replay still loads after a restart. A network whose
//! configured adapter failed to load has no current version: it is down
//! (its queue held in alert) until an install or a reload gives it one.
//!
//! Every way in checks the component's publisher signature first (before
//! it is compiled), then that the version its `describe` reports is the
//! signed one: the configured file at start, a hot swap, a replay's upload,
//! and a kept version a replay pins (with the signature kept beside it for
//! this network). Which version is current after a restart is
//! [`super::active`]'s rule.

use super::active::{self, ActiveRecord, Choice, Source};
use crate::publisher::{AdapterSignature, Refusal, Trust};
use crate::runtime::{LoadError, LoadedAdapter, NetworkSandbox, Runtime, Services};
use crate::store::now_millis;
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
    #[error("network `{network}`: adapter {sha256} refused: {refusal}")]
    Refused {
        network: String,
        sha256: String,
        refusal: Refusal,
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

/// The adapter a network is configured with: its file, optional pin and
/// signature file.
#[derive(Debug, Clone)]
pub struct ConfiguredAdapter {
    pub path: PathBuf,
    pub pin: Option<String>,
    pub signature: PathBuf,
}

/// What loading at start (or at a resume) made current.
#[derive(Debug, Clone)]
pub struct Started {
    pub sha256: String,
    /// The hot-swapped version on record stayed active.
    pub kept_swap: bool,
    /// Why a swapped version on record was not made current, if one was
    /// set aside (the configured file changed since, or it no longer loads).
    pub swap_set_aside: Option<String>,
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
    /// The publisher keys whose signatures make a component runnable.
    trust: Arc<Trust>,
    /// The configured file's sha256 when last read (recorded with a swap).
    configured_sha256: Mutex<Option<String>>,
}

impl Versions {
    /// A network's versions, none loaded yet (see [`Versions::load_at_start`]).
    pub fn new(
        sandbox: NetworkSandbox,
        services: Services,
        dir: PathBuf,
        configured: ConfiguredAdapter,
        trust: Arc<Trust>,
    ) -> Versions {
        Versions {
            current: RwLock::new(None),
            loaded: Mutex::new(HashMap::new()),
            sandbox,
            services,
            dir,
            configured,
            trust,
            configured_sha256: Mutex::new(None),
        }
    }

    /// The adapter new calls use; None while the network is down.
    pub fn current(&self) -> Option<Arc<LoadedAdapter>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn network(&self) -> &str {
        &self.sandbox.network
    }

    /// Make current what [`active::choose`] says: the hot-swapped version
    /// on record while the configured file is unchanged since the swap,
    /// else the configured file (checked against its pin and signature).
    pub async fn load_at_start(&self, runtime: &Runtime) -> Result<Started, VersionError> {
        let wasm = self.read_configured()?;
        let configured_sha256 = Sha256Digest::of(&wasm).to_string();
        let record = active::read(&self.dir, self.network()).unwrap_or_else(|e| {
            tracing::warn!(network = %self.network(), error = %e,
                "the active-adapter record is unreadable; loading the configured file");
            None
        });
        let swap_set_aside = match active::choose(record, &configured_sha256) {
            Choice::Configured => None,
            Choice::Swapped(record) => match self.load_swapped(runtime, &record).await {
                Ok(sha256) => {
                    tracing::info!(network = %self.network(), adapter = &sha256[..12],
                        "the hot-swapped adapter stays active: the configured file is unchanged since the swap");
                    let started = Started {
                        sha256,
                        kept_swap: true,
                        swap_set_aside: None,
                    };
                    return Ok(started);
                }
                Err(e) => Some(format!(
                    "the hot-swapped version {} no longer loads ({e}); the configured file is loaded instead",
                    short(&record.sha256)
                )),
            },
            Choice::ConfiguredChangedSinceSwap { swapped } => Some(format!(
                "the configured file changed since the hot swap to {}; the configured file wins",
                short(&swapped)
            )),
        };
        if let Some(why) = &swap_set_aside {
            tracing::warn!(network = %self.network(), "{why}");
        }
        let absent = self.configured.signature.display().to_string();
        let sig = self.read_signature(&self.configured.signature, &wasm)?;
        let sha256 = self
            .accept_and_install(runtime, &wasm, sig, &absent, Source::Configured)
            .await?;
        Ok(Started {
            sha256,
            kept_swap: false,
            swap_set_aside,
        })
    }

    /// The configured file's bytes, checked against the pin.
    fn read_configured(&self) -> Result<Vec<u8>, VersionError> {
        let network = self.network().to_string();
        let ConfiguredAdapter { path, pin, .. } = &self.configured;
        let wasm = std::fs::read(path).map_err(|source| VersionError::Read {
            network: network.clone(),
            path: path.display().to_string(),
            source,
        })?;
        let actual = Sha256Digest::of(&wasm).to_string();
        if let Some(pinned) = pin.as_ref().filter(|p| **p != actual) {
            return Err(VersionError::PinMismatch {
                network,
                path: path.display().to_string(),
                actual,
                pinned: pinned.clone(),
            });
        }
        *self.lock_configured() = Some(actual);
        Ok(wasm)
    }

    /// The swapped version on record, from its kept bytes, checked again.
    async fn load_swapped(
        &self,
        runtime: &Runtime,
        record: &ActiveRecord,
    ) -> Result<String, VersionError> {
        let wasm = self.read_kept(&record.sha256)?;
        let absent = format!("the active-adapter record of `{}`", self.network());
        let sig = record.signature.clone();
        self.accept_and_install(runtime, &wasm, sig, &absent, Source::Swap)
            .await
    }

    /// The adapter a job runs with: its pinned version, else the current one.
    pub async fn for_job(
        &self,
        runtime: &Runtime,
        pinned: Option<&str>,
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        let current = self.current();
        let Some(digest) = pinned else {
            return current.ok_or_else(|| VersionError::NotLoaded(self.network().to_string()));
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
        // A kept version runs here only with a signature for this network.
        let wasm = self.read_kept(digest)?;
        let sig_path = kept_signature(&self.dir, digest, self.network());
        let sig = self.read_signature(&sig_path, &wasm)?;
        let absent = sig_path.display().to_string();
        self.load(runtime, &wasm, sig.as_ref(), &absent).await
    }

    /// Load another version (kept on disk by hash so replays pinned to it
    /// survive a restart), once its signature checks out.
    pub async fn load(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        sig: Option<&AdapterSignature>,
        absent: &str,
    ) -> Result<Arc<LoadedAdapter>, VersionError> {
        let adapter = Arc::new(self.accept(runtime, wasm, sig, absent).await?);
        self.lock()
            .insert(adapter.digest().to_string(), adapter.clone());
        Ok(adapter)
    }

    /// Hot swap: make a new version the current one (or a down network's
    /// first), once its signature checks out, and record it as the active
    /// version a restart keeps; its sha256. Calls already running keep the
    /// version they started with.
    pub async fn install(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        sig: Option<AdapterSignature>,
    ) -> Result<String, VersionError> {
        let absent = "the request (header yiwang-adapter-signature)";
        self.accept_and_install(runtime, wasm, sig, absent, Source::Swap)
            .await
    }

    async fn accept_and_install(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        sig: Option<AdapterSignature>,
        absent: &str,
        source: Source,
    ) -> Result<String, VersionError> {
        let adapter = self.accept(runtime, wasm, sig.as_ref(), absent).await?;
        let digest = adapter.digest().to_string();
        let version = adapter.descriptor().version.clone();
        let name = adapter.descriptor().name.clone();
        let old = self
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Arc::new(adapter));
        tracing::info!(
            network = %self.network(),
            adapter = %name,
            %version,
            ?source,
            signed_by = sig.as_ref().map(|s| s.key_id.as_str()),
            from = old.as_ref().map(|o| short(o.digest())),
            to = short(&digest),
            "adapter installed"
        );
        self.record_active(&digest, version, source, sig);
        Ok(digest)
    }

    /// The signature, the load, the version: a component that passes all
    /// three is kept by hash (with its signature for this network). Every
    /// refusal is counted by network and check.
    async fn accept(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        sig: Option<&AdapterSignature>,
        absent: &str,
    ) -> Result<LoadedAdapter, VersionError> {
        let accepted = self.accept_checked(runtime, wasm, sig, absent).await;
        if let Err(VersionError::Refused { refusal, .. }) = &accepted {
            metrics::counter!("yiwang_adapter_refused_total",
                "network" => self.network().to_string(), "check" => refusal.check())
            .increment(1);
        }
        accepted
    }

    async fn accept_checked(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        sig: Option<&AdapterSignature>,
        absent: &str,
    ) -> Result<LoadedAdapter, VersionError> {
        let refused = |refusal| VersionError::Refused {
            network: self.network().to_string(),
            sha256: Sha256Digest::of(wasm).to_string(),
            refusal,
        };
        let signed = self
            .trust
            .check(self.network(), wasm, sig, absent)
            .map_err(refused)?;
        let adapter = runtime
            .load(wasm, self.sandbox.clone(), self.services.clone())
            .await?;
        if let Some(signed) = signed {
            let reported = &adapter.descriptor().version;
            if *reported != signed.version {
                return Err(refused(Refusal::VersionMismatch {
                    signed: signed.version,
                    reported: reported.clone(),
                }));
            }
        }
        keep(&self.dir, adapter.digest(), wasm);
        if let Some(sig) = sig {
            let path = kept_signature(&self.dir, adapter.digest(), self.network());
            keep_file(&path, sig.to_text().as_bytes());
        }
        Ok(adapter)
    }

    /// Write the active-version record (a failure is logged: the version
    /// runs, only a restart would not find it).
    fn record_active(
        &self,
        sha256: &str,
        version: String,
        source: Source,
        signature: Option<AdapterSignature>,
    ) {
        let configured_sha256 = self.lock_configured().clone().unwrap_or_else(|| {
            std::fs::read(&self.configured.path)
                .map(|w| Sha256Digest::of(&w).to_string())
                .unwrap_or_default()
        });
        let record = ActiveRecord {
            sha256: sha256.to_string(),
            version,
            source,
            signature,
            configured_sha256,
            since: now_millis(),
        };
        if let Err(e) = active::write(&self.dir, self.network(), &record) {
            tracing::error!(network = %self.network(), error = %e,
                "could not record the active adapter: a restart would not keep it");
        }
    }

    fn read_kept(&self, digest: &str) -> Result<Vec<u8>, VersionError> {
        let path = self.dir.join(format!("{digest}.wasm"));
        std::fs::read(&path).map_err(|source| VersionError::Missing {
            short: short(digest).to_string(),
            path: path.display().to_string(),
            source,
        })
    }

    /// The signature file of `wasm`; unreadable or malformed is a refusal
    /// naming it.
    fn read_signature(
        &self,
        path: &Path,
        wasm: &[u8],
    ) -> Result<Option<AdapterSignature>, VersionError> {
        AdapterSignature::read(path).map_err(|e| VersionError::Refused {
            network: self.network().to_string(),
            sha256: Sha256Digest::of(wasm).to_string(),
            refusal: Refusal::Malformed(e.to_string()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedAdapter>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_configured(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.configured_sha256
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// The version a component reports through `describe` (what a signature
/// must name): loaded in a sandbox with no endpoints and no services.
pub async fn reported_version(runtime: &Runtime, wasm: &[u8]) -> Result<String, LoadError> {
    let sandbox = NetworkSandbox::new("describe", Vec::new());
    let services = Services::new(Arc::new(crate::transport::HttpTransport::default()));
    let adapter = runtime.load(wasm, sandbox, services).await?;
    Ok(adapter.descriptor().version.clone())
}

/// The first 12 hex chars of a sha256 (as logs name versions).
fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Where a kept version's signature for a network is.
fn kept_signature(dir: &Path, digest: &str, network: &str) -> PathBuf {
    dir.join(format!("{digest}.{network}.sig"))
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
    keep_file(&path, wasm);
}

fn keep_file(path: &Path, bytes: &[u8]) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let write = std::fs::create_dir_all(dir).and_then(|()| atomic_write(path, bytes));
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
