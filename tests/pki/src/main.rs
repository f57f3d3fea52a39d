//! `yiwang-pki`: write a demo PKI (CAs, certificates, keys, CRLs) for a gateway, its
//! clients and simulated ministry networks. The layout is in the crate docs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use yiwang_pki::{DEMO_NETWORKS, Pki};

/// Create a demo PKI for Yiwang's mutual TLS (never for production: test CAs, keys on disk).
#[derive(Debug, Parser)]
#[command(name = "yiwang-pki", version)]
struct Cli {
    /// Directory to write into (created if missing; files already there are overwritten).
    #[arg(long)]
    out: PathBuf,

    /// A ministry network to make a CA, server and client certificates for. Repeat for more;
    /// none: the demo's market-regulation, housing, tax and public-security.
    #[arg(long = "network")]
    networks: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let networks: Vec<&str> = if cli.networks.is_empty() {
        DEMO_NETWORKS.to_vec()
    } else {
        cli.networks.iter().map(String::as_str).collect()
    };
    let pki = Pki::generate(&cli.out, &networks)
        .with_context(|| format!("writing the PKI into {}", cli.out.display()))?;
    let files = pki.files();
    println!(
        "wrote {} files into {} (networks: {})",
        files.len(),
        pki.dir.display(),
        networks.join(", ")
    );
    let width = files
        .iter()
        .filter_map(|f| f.path.file_name())
        .map(|n| n.to_string_lossy().chars().count())
        .max()
        .unwrap_or(0);
    let held = files
        .iter()
        .map(|f| f.held_by.chars().count())
        .max()
        .unwrap_or(0);
    println!("{:width$}  {:held$}  trusted by", "file", "held by");
    for f in &files {
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("{name:width$}  {:held$}  {}", f.held_by, f.trusted_by);
    }
    println!(
        "gateway server certificate pin (sha256 of its public key, base64): {}",
        pki.gateway.spki_sha256_b64()
    );
    for net in &pki.networks {
        println!(
            "{} server: name {}, pin {}",
            net.name,
            net.server_name,
            net.server.spki_sha256_b64()
        );
    }
    Ok(())
}
