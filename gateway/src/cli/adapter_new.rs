//! `yiwang adapter new NAME --archetype …`: an out-of-tree adapter crate — its own
//! workspace, lock file, release profile, sample case and fixtures — that builds and passes
//! `yiwang adapter test` as generated. The templates are adapters-sdk/templates/, embedded
//! in the binary; the lock file is the one the gateway's own adapters are tested with.

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../adapters-sdk/templates");
/// The adapters' lock file: a new crate starts from the versions its SDK is tested with.
const LOCK: &str = include_str!("../../../plugins/Cargo.lock");
/// Where the SDK was when this binary was built (a source checkout or a release tree).
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters-sdk/sdk");

/// The network shapes a new adapter can start from (docs/adapter-guide.md, "Archetypes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Archetype {
    /// JSON over HTTPS with a bearer token; file, then look up by number or client reference.
    JsonRest,
    /// SOAP 1.1 with faults read before the HTTP status and dotted fault codes.
    Soap,
    /// A signed open API: HMAC-SHA256 over a canonical string with a secret the host holds.
    SignedApi,
    /// Statuses pushed by the ministry to the gateway's callback listener, signature checked.
    Callback,
    /// Only a status look-up: statuses flow back by the gateway's status follow-up.
    LookupOnly,
}

impl Archetype {
    fn dir(self) -> &'static str {
        match self {
            Archetype::JsonRest => "json-rest",
            Archetype::Soap => "soap",
            Archetype::SignedApi => "signed-api",
            Archetype::Callback => "callback",
            Archetype::LookupOnly => "lookup-only",
        }
    }
}

/// Write the crate; print what to do next.
pub(super) fn new(
    name: &str,
    archetype: Archetype,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> Result<ExitCode> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let sdk = find_sdk(sdk)?;
    let vars = [
        ("{{name}}", name.to_owned()),
        ("{{crate}}", name.replace('-', "_")),
        ("{{archetype}}", archetype.dir().to_owned()),
        ("{{sdk}}", toml_path(&sdk)),
    ];
    for (from, to) in files(archetype)? {
        let path = dir.join(&to.0);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let text = vars.iter().fold(to.1, |t, (k, v)| t.replace(k, v));
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        tracing::debug!(template = %from, file = %path.display(), "wrote");
    }
    std::fs::write(dir.join("Cargo.lock"), LOCK).context("write Cargo.lock")?;
    println!(
        "created {} ({}), built against the SDK at {}\n\nnext:\n  yiwang adapter test {}",
        dir.display(),
        archetype.dir(),
        sdk.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A file to write: (template path, (path in the crate, text)).
type Planned = (String, (PathBuf, String));

/// The common files, then the archetype's (which may replace a common one).
fn files(archetype: Archetype) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    for root in ["common", archetype.dir()] {
        let dir = TEMPLATES
            .get_dir(root)
            .with_context(|| format!("this binary carries no {root} template"))?;
        for file in walk(dir) {
            let rel = file.path().strip_prefix(root)?;
            let target = crate_path(rel);
            let text = file
                .contents_utf8()
                .with_context(|| format!("template {} is not UTF-8", file.path().display()))?;
            out.retain(|(_, (p, _))| *p != target);
            out.push((file.path().display().to_string(), (target, text.to_owned())));
        }
    }
    Ok(out)
}

fn walk<'a>(dir: &'a Dir<'a>) -> Vec<&'a include_dir::File<'a>> {
    let mut files: Vec<_> = dir.files().collect();
    for sub in dir.dirs() {
        files.extend(walk(sub));
    }
    files
}

/// `Cargo.toml.tmpl` → `Cargo.toml`, `gitignore` → `.gitignore` (a dot file would be
/// ignored by the tools that package the templates).
fn crate_path(rel: &Path) -> PathBuf {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = match name.strip_suffix(".tmpl") {
        Some(stem) => stem.to_owned(),
        None if name == "gitignore" => ".gitignore".to_owned(),
        None => name.to_owned(),
    };
    rel.with_file_name(name)
}

/// A Cargo package name: lower-case ASCII letters, digits, `-` and `_`, starting with a letter.
fn check_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if !ok {
        bail!(
            "adapter name {name:?}: use 1–64 lower-case ASCII letters, digits, '-' or '_', starting with a letter"
        );
    }
    Ok(())
}

/// `--sdk` (or `YIWANG_SDK`), else the SDK beside the sources this binary was built from.
fn find_sdk(given: Option<PathBuf>) -> Result<PathBuf> {
    let candidate = given.unwrap_or_else(|| PathBuf::from(BUILT_SDK));
    let manifest = candidate.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "no adapter SDK at {}: pass --sdk PATH (the adapters-sdk/sdk folder of the gateway release) or set YIWANG_SDK",
            candidate.display()
        );
    }
    candidate
        .canonicalize()
        .with_context(|| format!("resolve {}", candidate.display()))
}

/// A path as a TOML basic-string body (backslashes and quotes escaped).
fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cargo_rules() {
        for ok in ["tax", "provincial-filing", "a_b2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Tax", "2tax", "ta x", "税务", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_archetype_has_an_adapter_and_fixtures_and_the_common_files() {
        for a in Archetype::value_variants() {
            let files = files(*a).unwrap();
            let has = |p: &str| files.iter().any(|(_, (path, _))| path == Path::new(p));
            for p in [
                "Cargo.toml",
                ".gitignore",
                ".cargo/config.toml",
                "src/lib.rs",
            ] {
                assert!(has(p), "{a:?} lacks {p}");
            }
            let fixtures = files
                .iter()
                .filter(|(_, (p, _))| {
                    p.starts_with("fixtures") && p.extension().is_some_and(|e| e == "toml")
                })
                .count();
            assert!(fixtures >= 3, "{a:?} has {fixtures} fixtures");
        }
    }
}
