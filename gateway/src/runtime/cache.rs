//! Compiled components cached on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a restart does not recompile and
//! a wasmtime upgrade never loads stale machine code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;
use yiwang_fsutil::atomic_write;

/// A directory of `<sha256>-<engine>.cwasm` files.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// Use (and create, private to this user) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(ComponentCache { dir })
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// Load the compiled form of `wasm`, compiling and storing it on a miss.
    /// Returns the component and whether it came from the cache.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(engine, digest);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        let bytes = component.serialize()?;
        if let Err(e) = atomic_write(&path, &bytes) {
            // A cache that cannot be written costs a recompile next time; it
            // must not stop the adapter from loading.
            tracing::warn!(path = %path.display(), error = %e, "could not write component cache");
        }
        Ok((component, false))
    }
}

#[expect(
    unsafe_code,
    reason = "loading a compiled component is unsafe in wasmtime's API; see SAFETY below"
)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the cache directory is created private (0700) to the gateway's
    // user and only ever receives bytes this process produced with
    // `Component::serialize`; wasmtime additionally checks the engine
    // configuration and version embedded in the file. Write access to this
    // directory is equivalent to code execution, as the security model says.
    unsafe { Component::deserialize_file(engine, path) }
}
