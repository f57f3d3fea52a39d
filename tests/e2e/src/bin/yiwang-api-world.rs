//! A live gateway for API conformance runs (`tests/schemathesis/run.sh`):
//! two simulated networks (one taking submissions, one pushing callbacks),
//! the test PKI, and the gateway on ephemeral ports. Once every listener
//! is up it writes, to the file named by its argument, shell assignments
//! naming each listener's URL, the CA and one client identity per listener;
//! then it serves until killed.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use yiwang_e2e::{LISTENERS, NetworkSpec, World};

const MR: &str = "market-regulation";
const PS: &str = "public-security";

#[tokio::main]
async fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .context("usage: yiwang-api-world <file to write the addresses to>")?;
    let items = format!("[items.\"SC-SPJY-001\"]\nroute = [{{ network = \"{MR}\" }}]\n");
    let networks = vec![
        NetworkSpec::market_regulation(MR),
        NetworkSpec::public_security(PS),
    ];
    let mut world = World::prepare(networks, &items, "", LISTENERS).await?;
    world.start_gateway().await?;
    let gw = world.gateway.as_ref().context("gateway started")?;
    let pki = &world.pki;
    let push = pki
        .networks
        .iter()
        .find(|n| n.name == PS)
        .context("the callback network's PKI")?;
    let url = |addr: Option<std::net::SocketAddr>| addr.map(|a| format!("https://{a}"));
    let mut env = String::new();
    for (key, value) in [
        ("INTAKE_URL", Some(format!("https://{}", gw.intake_addr))),
        ("CALLBACKS_URL", url(gw.callback_addr)),
        ("ADMIN_URL", url(gw.admin_addr)),
        ("CA", Some(pki.gateway_ca.cert_path.display().to_string())),
        (
            "INTAKE_CERT",
            Some(pki.bureau_fuzhou.cert_path.display().to_string()),
        ),
        (
            "INTAKE_KEY",
            Some(pki.bureau_fuzhou.key_path.display().to_string()),
        ),
        (
            "CALLBACKS_CERT",
            Some(push.push_client.cert_path.display().to_string()),
        ),
        (
            "CALLBACKS_KEY",
            Some(push.push_client.key_path.display().to_string()),
        ),
        (
            "ADMIN_CERT",
            Some(pki.operator.cert_path.display().to_string()),
        ),
        (
            "ADMIN_KEY",
            Some(pki.operator.key_path.display().to_string()),
        ),
    ] {
        let value = value.with_context(|| format!("{key}: listener not configured"))?;
        writeln!(env, "{key}='{value}'")?;
    }
    // Written whole, then renamed: the reader never sees half a file.
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, env).with_context(|| format!("write {tmp}"))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("rename {tmp} to {out}"))?;
    tokio::signal::ctrl_c().await?;
    world.stop_gateway().await;
    Ok(())
}
