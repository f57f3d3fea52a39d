//! `yiwang queue …`: the admin API's client. Lists the queue and the dead
//! letters of a running gateway and replays dead letters, over mTLS with the
//! operator's client certificate.

use super::tokio_rt;
use crate::wire::{DeadLettersAnswer, QueueAnswer, ReplayAnswer};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the running gateway's admin API is, and the caller's identity
/// (the admin listener is mTLS: a client certificate mapped to an operator,
/// or to an auditor for `yiwang report`).
#[derive(clap::Args)]
pub(super) struct AdminAddr {
    /// Admin API base URL (`https://127.0.0.1:8441`).
    #[arg(long, conflicts_with = "config")]
    admin: Option<String>,
    /// Read the admin listener's address from this configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The operator's client certificate (PEM).
    #[arg(long, env = "YIWANG_CLIENT_CERT")]
    cert: PathBuf,
    /// The operator's private key (PEM).
    #[arg(long, env = "YIWANG_CLIENT_KEY")]
    key: PathBuf,
    /// The CA that issued the gateway's server certificate (PEM).
    #[arg(long, env = "YIWANG_CA")]
    ca: PathBuf,
    /// Verify the gateway's certificate for this name instead of the URL's host.
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum QueueCmd {
    /// Unfinished jobs, oldest first.
    List {
        #[command(flatten)]
        at: AdminAddr,
        /// Only this network (or `subscriber:<name>`).
        #[arg(long)]
        network: Option<String>,
        /// Only jobs in this state (pending, waiting, blocked, retrying, verifying, in_flight).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Dead letters with their case, adapter version and every attempt.
    Dlq {
        #[command(flatten)]
        at: AdminAddr,
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        case: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put dead letters back in the queue: one (--case and --job), a case's,
    /// or a network's, at most --rate per second, optionally with a newer
    /// adapter version.
    Replay {
        #[command(flatten)]
        at: AdminAddr,
        #[arg(long)]
        network: Option<String>,
        #[arg(long)]
        case: Option<String>,
        #[arg(long)]
        job: Option<u32>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Replayed jobs falling due per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Replay with this adapter component (loaded and checked by the
        /// gateway); its signature `<component>.sig` is sent with it.
        #[arg(long)]
        adapter: Option<PathBuf>,
    },
}

/// `GET /admin/queue` filters.
#[derive(Serialize)]
struct QueueQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    limit: usize,
}

/// `GET /admin/dlq` filters.
#[derive(Serialize)]
struct DlqQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    case_number: Option<String>,
    limit: usize,
}

/// `path?query`, the query form-encoded.
pub(super) fn with_query(path: &str, query: &impl Serialize) -> Result<String> {
    let query = serde_urlencoded::to_string(query).context("encode the query")?;
    Ok(if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    })
}

/// Run one `yiwang queue` command.
pub(super) fn run(cmd: QueueCmd) -> Result<ExitCode> {
    match cmd {
        QueueCmd::List {
            at,
            network,
            state,
            limit,
        } => list(
            &at,
            QueueQuery {
                network,
                state,
                limit,
            },
        )?,
        QueueCmd::Dlq {
            at,
            network,
            case,
            limit,
        } => dlq(
            &at,
            DlqQuery {
                network,
                case_number: case,
                limit,
            },
        )?,
        QueueCmd::Replay {
            at,
            network,
            case,
            job,
            limit,
            rate,
            adapter,
        } => {
            let body = serde_json::json!({
                "network": network,
                "case_number": case,
                "job": job,
                "limit": limit,
                "rate_per_second": rate,
            });
            replay(&at, body, adapter)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn admin_base(at: &AdminAddr) -> Result<String> {
    if let Some(a) = &at.admin {
        return Ok(a.trim_end_matches('/').to_string());
    }
    let file = at
        .config
        .clone()
        .context("give --admin URL or --config FILE (with [listeners] admin)")?;
    let loaded = crate::config::Config::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = loaded
        .config
        .listeners
        .admin
        .as_ref()
        .with_context(|| format!("{} has no [listeners] admin listener", file.display()))?;
    Ok(format!("https://{}", admin.addr))
}

/// An answer read as the shape the API publishes (`crate::wire`): a drift
/// between server and client is an error here, not an empty listing.
pub(super) fn typed<T: serde::de::DeserializeOwned>(answer: serde_json::Value) -> Result<T> {
    serde_json::from_value(answer)
        .context("the admin API's answer is not the shape this client knows")
}

/// One request to the admin API; the JSON answer, or the problem it reported.
pub(super) fn admin_call(
    at: &AdminAddr,
    base: &str,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    use crate::transport::{OutboundRequest, Transport};
    let uri: http::Uri = format!("{base}{path}").parse().context("admin URL")?;
    let request = OutboundRequest {
        network: "admin".into(),
        method,
        uri,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body
            .map(|b| b.to_string().into_bytes().into())
            .unwrap_or_default(),
        timeout: std::time::Duration::from_secs(120),
        max_response_bytes: 256 << 20,
    };
    let transport = crate::transport::GatewayTransport::new(std::time::Duration::from_secs(5));
    transport
        .add(
            "admin",
            &crate::tls::ClientTlsConfig {
                ca: vec![at.ca.clone()],
                cert: at.cert.clone(),
                key: at.key.clone(),
                pin_sha256: Vec::new(),
                crl: Vec::new(),
                server_name: at.server_name.clone(),
            },
        )
        .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?;
    let resp = tokio_rt()?
        .block_on(transport.send(request))
        .map_err(|e| anyhow::anyhow!("admin API at {base}: {e}"))?;
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&resp.body).into_owned())
    });
    if !(200..300).contains(&resp.status) {
        let detail = json
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        bail!(
            "admin API answered {}: {detail} {}",
            resp.status,
            if detail.is_empty() {
                json.to_string()
            } else {
                String::new()
            }
        );
    }
    Ok(json)
}

/// `yiwang queue list`: unfinished jobs, oldest first.
fn list(at: &AdminAddr, query: QueueQuery) -> Result<()> {
    let base = admin_base(at)?;
    let path = with_query("/admin/queue", &query)?;
    let out: QueueAnswer = typed(admin_call(at, &base, http::Method::GET, &path, None)?)?;
    for e in &out.jobs {
        let j = &e.job;
        let note = j
            .last_error
            .as_ref()
            .map(|l| l.message.as_str())
            .or(j.waiting_for.as_deref())
            .unwrap_or("");
        println!(
            "{:<24} {:<6} {:<32} {:<10} attempts={} {note}",
            e.case_number,
            j.job,
            j.destination,
            j.state.as_str(),
            j.attempts,
        );
    }
    println!("{} job(s)", out.jobs.len());
    Ok(())
}

/// `yiwang queue dlq`: dead letters with every attempt.
fn dlq(at: &AdminAddr, query: DlqQuery) -> Result<()> {
    let base = admin_base(at)?;
    let path = with_query("/admin/dlq", &query)?;
    let out: DeadLettersAnswer = typed(admin_call(at, &base, http::Method::GET, &path, None)?)?;
    for d in &out.dead_letters {
        println!(
            "{} job {} → {} ({} attempts)\n  reason: {}",
            d.case_number,
            d.job.job,
            d.job.destination,
            d.job.attempts,
            d.job.reason.as_deref().unwrap_or("")
        );
        for a in &d.attempt_log {
            let adapter = a.adapter.as_deref().map(|d| &d[..12.min(d.len())]);
            println!(
                "    {} {:<10} {:<22} adapter={} {}",
                a.at.as_deref().unwrap_or(""),
                a.outcome,
                a.kind.as_deref().unwrap_or("-"),
                adapter.unwrap_or("-"),
                a.message
            );
        }
    }
    println!("{} dead letter(s)", out.dead_letters.len());
    Ok(())
}

/// `yiwang queue replay`: dead letters back in the queue, optionally with a
/// newer adapter component.
fn replay(at: &AdminAddr, mut body: serde_json::Value, adapter: Option<PathBuf>) -> Result<()> {
    let base = admin_base(at)?;
    if let Some(path) = adapter {
        use base64::Engine as _;
        let wasm = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        body["adapter_wasm_base64"] =
            serde_json::json!(base64::engine::general_purpose::STANDARD.encode(wasm));
        // Its signature file travels with it (the gateway refuses it without one).
        let sig_path = crate::publisher::default_signature_path(&path);
        if let Some(sig) = crate::publisher::AdapterSignature::read(&sig_path)? {
            body["adapter_signature"] = serde_json::to_value(sig)?;
        }
    }
    let out: ReplayAnswer = typed(admin_call(
        at,
        &base,
        http::Method::POST,
        "/admin/replay",
        Some(body),
    )?)?;
    for r in &out.replayed {
        let due = r.due.as_deref().unwrap_or("");
        println!("replayed {} job {} (due {due})", r.case_number, r.job);
    }
    if let Some(a) = &out.adapter {
        println!("with adapter {a}");
    }
    let n = out.replayed.len();
    println!("{n} job(s) replayed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_left_out_are_not_sent_and_values_are_form_encoded() -> Result<()> {
        let list = QueueQuery {
            network: Some("subscriber:platform".into()),
            state: None,
            limit: 5,
        };
        assert_eq!(
            with_query("/admin/queue", &list)?,
            "/admin/queue?network=subscriber%3Aplatform&limit=5"
        );
        let dlq = DlqQuery {
            network: None,
            case_number: Some("ZJ 2026/001&limit=1".into()),
            limit: 100,
        };
        let path = with_query("/admin/dlq", &dlq)?;
        assert_eq!(
            path,
            "/admin/dlq?case_number=ZJ+2026%2F001%26limit%3D1&limit=100"
        );
        // What the admin API's `Query` extractor reads back.
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let back: Vec<(String, String)> = serde_urlencoded::from_str(query)?;
        assert_eq!(
            back,
            [
                ("case_number".into(), "ZJ 2026/001&limit=1".into()),
                ("limit".into(), "100".into())
            ]
        );
        Ok(())
    }
}
