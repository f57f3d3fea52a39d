//! Build the plugins workspace for wasm32-wasip2 and write the component
//! paths into `$OUT_DIR/artifacts.rs`. Adapters live in their own workspace
//! (so wasm never enters the host's build graph); this is the bridge.

use std::collections::BTreeMap;
use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", plugins.display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("adapters-sdk").display()
    );
    println!("cargo:rerun-if-env-changed=YIWANG_PLUGINS_TARGET_DIR");

    let target_dir = env::var_os("YIWANG_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("plugins"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Do not leak the outer build's flags, wrappers (clippy) or jobserver
    // into the guest build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    let mut child = cmd.spawn().expect("run cargo for the plugins workspace");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut wasm = BTreeMap::new();
    for message in cargo_metadata::Message::parse_stream(std::io::BufReader::new(stdout)) {
        let message = message.expect("read cargo's build messages");
        if let cargo_metadata::Message::CompilerArtifact(artifact) = message {
            for f in artifact
                .filenames
                .iter()
                .filter(|f| f.extension() == Some("wasm"))
            {
                wasm.insert(artifact.target.name.clone(), f.to_string());
            }
        }
    }
    let status = child.wait().expect("wait for cargo");
    if !status.success() {
        panic!(
            "building the adapters in {} failed (see above). If the target is missing: rustup target add wasm32-wasip2",
            plugins.display()
        );
    }
    let mut out = String::new();
    out.push_str(
        "/// Every adapter component, by crate name.\npub const ALL: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &wasm {
        out.push_str(&format!("    ({name:?}, {path:?}),\n"));
    }
    out.push_str("];\n");
    for (name, path) in &wasm {
        let ident = name.to_uppercase().replace('-', "_");
        out.push_str(&format!(
            "/// Path of the `{name}` component.\npub const {ident}: &str = {path:?};\n"
        ));
    }
    out.push_str(&format!(
        "/// The plugins folder.\npub const PLUGINS_DIR: &str = {:?};\n",
        plugins.display().to_string()
    ));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("artifacts.rs"), out).expect("write artifacts.rs");
}
