//! `yiwang adapter keygen | sign | verify`: the publisher's side of
//! adapter signatures (`crate::publisher` holds the format and the checks;
//! `verify` runs exactly the gateway's checks, the reported version
//! included, so a release can be checked before it is shipped).

use crate::publisher::{AdapterSignature, PublisherKey, Trust, default_signature_path, key_id};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Write `<out>.key` and `<out>.pub`.
pub(super) fn keygen(out: &Path) -> Result<ExitCode> {
    let key = PublisherKey::generate();
    let with = |ext: &str| {
        let mut name = out.as_os_str().to_os_string();
        name.push(ext);
        PathBuf::from(name)
    };
    let (private, public) = (with(".key"), with(".pub"));
    key.write(&private, &public)?;
    println!(
        "publisher key {} written: {} (private: keep it off the gateway) and {} (for [adapters] publisher-keys)",
        key_id(&key.public()),
        private.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Sign `component` for `network`, as `version` or the one it reports.
pub(super) fn sign(
    key: &Path,
    network: &str,
    version: Option<String>,
    out: Option<PathBuf>,
    component: &Path,
) -> Result<ExitCode> {
    let key = PublisherKey::read(key)?;
    let wasm = read(component)?;
    let version = match version {
        Some(v) => v,
        None => {
            super::component::describe(&wasm)
                .context("read the version the component reports (or give --version)")?
                .version
        }
    };
    let sig = key.sign(network, &version, &wasm);
    let out = out.unwrap_or_else(|| default_signature_path(component));
    yiwang_fsutil::atomic_write(&out, sig.to_text().as_bytes())
        .with_context(|| format!("write {}", out.display()))?;
    println!(
        "{}: signed for network `{network}`, version {version}, sha256 {}, by key {} -> {}",
        component.display(),
        sig.sha256,
        sig.key_id,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Check `component`'s signature for `network` against the given keys,
/// then that the component reports the signed version.
pub(super) fn verify(
    publisher_keys: &[PathBuf],
    network: &str,
    signature: Option<PathBuf>,
    component: &Path,
) -> Result<ExitCode> {
    let keys = publisher_keys
        .iter()
        .map(|p| crate::publisher::read_public_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let wasm = read(component)?;
    let sig_path = signature.unwrap_or_else(|| default_signature_path(component));
    let sig = AdapterSignature::read(&sig_path)?;
    let absent = format!("{} does not exist", sig_path.display());
    let trust = Trust::new(keys, false);
    let refused = |check: &str, reason: String| {
        println!(
            "{}: refused for network `{network}` ({check}): {reason}",
            component.display()
        );
        Ok(ExitCode::FAILURE)
    };
    let signed = match trust.check(network, &wasm, sig.as_ref(), &absent) {
        Ok(Some(signed)) => signed,
        // A trust without allow-unsigned never lets an unsigned one through.
        Ok(None) => return refused("no-signature", absent.clone()),
        Err(r) => return refused(r.check(), r.to_string()),
    };
    let reported = super::component::describe(&wasm)
        .context("load the component to read the version it reports")?
        .version;
    if reported != signed.version {
        let reason = format!(
            "signed as version {:?}, but the component reports version {reported:?}",
            signed.version
        );
        return refused("version-mismatch", reason);
    }
    println!(
        "{}: ok for network `{network}`: version {reported}, signed by key {}",
        component.display(),
        signed.key_id
    );
    Ok(ExitCode::SUCCESS)
}

fn read(component: &Path) -> Result<Vec<u8>> {
    std::fs::read(component).with_context(|| format!("read {}", component.display()))
}
