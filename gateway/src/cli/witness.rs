//! `yiwang audit verify --witness https://…`: fetching what a witness holds
//! (`GET /admin/witness`) over mTLS with an auditor's identity at the
//! witness. The audit crate has no HTTP client; it asks this one.

use super::tokio_rt;
use crate::tls::ClientTlsConfig;
use crate::transport::{GatewayTransport, OutboundRequest, Transport};
use anyhow::{Context, Result, bail};
use std::time::Duration;
use yiwang_audit::cli::{FetchWitness, WitnessClient};

/// The gateway's mTLS client, for `verify --witness URL`.
pub(super) struct Fetcher;

impl FetchWitness for Fetcher {
    fn fetch(&self, url: &str, client: &WitnessClient) -> Result<Vec<u8>> {
        let uri: http::Uri = url.parse().with_context(|| format!("--witness {url}"))?;
        let transport = GatewayTransport::new(Duration::from_secs(5));
        if url.starts_with("https://") {
            let (Some(ca), Some(cert), Some(key)) = (&client.ca, &client.cert, &client.key) else {
                bail!("--witness {url} needs --witness-ca, --witness-cert and --witness-key");
            };
            let tls = ClientTlsConfig {
                ca: vec![ca.clone()],
                cert: cert.clone(),
                key: key.clone(),
                pin_sha256: Vec::new(),
                crl: Vec::new(),
                server_name: client.server_name.clone(),
            };
            transport
                .add("witness", &tls)
                .map_err(|e| anyhow::anyhow!("witness client certificate: {e}"))?;
        }
        let request = OutboundRequest {
            network: "witness".into(),
            method: http::Method::GET,
            uri,
            headers: vec![("accept".into(), "application/json".into())],
            body: Default::default(),
            timeout: Duration::from_secs(120),
            max_response_bytes: 512 << 20,
        };
        let resp = tokio_rt()?
            .block_on(transport.send(request))
            .map_err(|e| anyhow::anyhow!("witness at {url}: {e}"))?;
        if !(200..300).contains(&resp.status) {
            bail!(
                "witness at {url} answered {}: {}",
                resp.status,
                String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)])
            );
        }
        Ok(resp.body.to_vec())
    }
}
