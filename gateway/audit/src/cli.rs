//! `yiwang audit verify|export`: the security team's offline tools. They
//! read a directory (or a copy of it) and never need the running gateway;
//! several directories are several replicas' trails.

use crate::{
    BodyCipher, Kind, Query, VerifyReport, WITNESS_FORMAT, WitnessDoc, decrypt_bodies,
    query_merged, trail_label, verify, verify_witnessed,
};
use anyhow::{Context, Result};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use clap::Subcommand;
use ed25519_dalek::VerifyingKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `yiwang audit …`
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail: seq continuity, every prev link, every hash
    /// and every checkpoint signature, from anchor.json through the last
    /// segment. Exit 0 when intact, 1 when broken (naming the first broken
    /// record's seq, file and line).
    Verify {
        /// The audit directory (`[audit] dir`, by default DATA-DIR/audit),
        /// or a copy of it; several (one per replica) are each verified on
        /// their own, one line each, and the exit is 1 if any is broken.
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// The Ed25519 public key to check checkpoints with: a file of 64 hex
        /// chars. Default: DIR/signing.pub. Use a copy kept off the
        /// gateway host, or someone who edited the log may have swapped it.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// Also check the trail against what a witness holds: its
        /// `https://…/admin/witness` URL (with `--witness-ca`, `-cert`,
        /// `-key`: an auditor's identity at the witness), or a file of that
        /// answer. Every witnessed checkpoint must be in the trail and
        /// identical, and the witnessed key among the verifying keys, so a
        /// cut tail, stripped checkpoints or a swapped key are found up to
        /// the last witnessed checkpoint.
        #[arg(long, value_name = "URL|FILE")]
        witness: Option<String>,
        #[command(flatten)]
        witness_client: WitnessClient,
        /// With `--witness`: the witnessed trail(s) to check, by trail id
        /// (SHA-256 of the public key). Default: those signed by the
        /// verifying keys, and any other trail the same principal pushed.
        #[arg(long = "trail", value_name = "ID", requires = "witness")]
        trails: Vec<String>,
        /// Print the full report as JSON instead of one line.
        #[arg(long)]
        json: bool,
    },
    /// Print the records that match, one JSON line each, in seq order.
    /// Does not verify (run `verify` first).
    Export {
        /// The audit directory, or a copy of it; with several (one per
        /// replica) their records are merged by time, each line naming its
        /// trail in "trail" (the replica id).
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Only records of this case id.
        #[arg(long)]
        case: Option<String>,
        /// Only records of this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only records of this ministry network.
        #[arg(long)]
        network: Option<String>,
        /// Only records of this kind (intake, change, read, callback,
        /// adapter-call, outbound, backflow, admin, denial, tls-refused,
        /// limit, alert, checkpoint, recovered, chain-break-found, key-change,
        /// prune, start, stop).
        #[arg(long)]
        kind: Option<Kind>,
        /// Only records at or after this time (RFC 3339, e.g.
        /// 2026-11-21T00:00:00+08:00).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<FixedOffset>>,
        /// Only records before this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<FixedOffset>>,
        /// Decrypt kept bodies with this body key file (64 hex chars); each
        /// record then carries "decrypted": [{"label", "text" or "base64"}].
        #[arg(long, value_name = "FILE")]
        body_key: Option<PathBuf>,
        /// The body cipher the log was written with.
        #[arg(long, default_value = "aes-256-gcm")]
        cipher: BodyCipher,
    },
}

/// The client identity `verify --witness https://…` fetches with.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WitnessClient {
    /// The CA that issued the witness's server certificate (PEM).
    #[arg(long = "witness-ca", value_name = "FILE", requires = "witness")]
    pub ca: Option<PathBuf>,
    /// A client certificate the witness maps to an auditor (PEM).
    #[arg(long = "witness-cert", value_name = "FILE", requires = "witness")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long = "witness-key", value_name = "FILE", requires = "witness")]
    pub key: Option<PathBuf>,
    /// Verify the witness's certificate for this name instead of the URL's host.
    #[arg(
        long = "witness-server-name",
        value_name = "NAME",
        requires = "witness"
    )]
    pub server_name: Option<String>,
}

/// Fetches a witness's answer over the network: the gateway's binary
/// supplies one (with its mTLS client); this crate has no HTTP client.
pub trait FetchWitness {
    fn fetch(&self, url: &str, client: &WitnessClient) -> Result<Vec<u8>>;
}

/// A `--since`/`--until` that is not an RFC 3339 time.
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 time ({0})")]
pub struct NotATime(#[from] chrono::ParseError);

fn parse_time(s: &str) -> std::result::Result<DateTime<FixedOffset>, NotATime> {
    Ok(DateTime::parse_from_rfc3339(s)?)
}

/// Run a command, printing to stdout; the exit code is 0 when the trail is
/// intact (or the export done), 1 when it is broken.
pub fn run(cmd: AuditCommand) -> Result<i32> {
    run_with(cmd, None)
}

/// [`run`], fetching `--witness https://…` with `fetch`.
pub fn run_with(cmd: AuditCommand, fetch: Option<&dyn FetchWitness>) -> Result<i32> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = run_to_with(cmd, &mut out, fetch)?;
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        other => other.map(|()| code).context("writing to stdout"),
    }
}

/// [`run`], writing to `out`.
pub fn run_to(cmd: AuditCommand, out: &mut dyn Write) -> Result<i32> {
    run_to_with(cmd, out, None)
}

/// [`run_with`], writing to `out`.
pub fn run_to_with(
    cmd: AuditCommand,
    out: &mut dyn Write,
    fetch: Option<&dyn FetchWitness>,
) -> Result<i32> {
    match cmd {
        AuditCommand::Verify {
            dirs,
            public_key,
            witness,
            witness_client,
            trails,
            json,
        } => {
            if witness.is_some() && dirs.len() > 1 {
                anyhow::bail!("--witness checks one trail at a time: name one directory");
            }
            let key = public_key.as_deref().map(read_key).transpose()?;
            let mut reports = Vec::new();
            for dir in &dirs {
                let report = match &witness {
                    None => verify(dir, key.as_ref()),
                    Some(source) => {
                        let doc = read_witness(source, &witness_client, fetch)?;
                        verify_witnessed(dir, key.as_ref(), &doc, &trails)
                    }
                }
                .with_context(|| format!("verifying {}", dir.display()))?;
                reports.push((trail_label(dir)?, report));
            }
            let intact = reports.iter().all(|(_, r)| r.intact());
            match (json, reports.as_slice()) {
                (true, [(_, report)]) => serde_json::to_writer_pretty(&mut *out, report)?,
                (true, _) => {
                    let all: Vec<_> = reports
                        .iter()
                        .map(|(trail, r)| serde_json::json!({"trail": trail, "report": r}))
                        .collect();
                    serde_json::to_writer_pretty(&mut *out, &all)?;
                }
                (false, [(_, report)]) => write!(out, "{}", summary(report))?,
                (false, _) => {
                    for (i, (trail, report)) in reports.iter().enumerate() {
                        let sep = if i == 0 { "" } else { "\n" };
                        write!(out, "{sep}{trail}: {}", summary(report))?;
                    }
                }
            }
            writeln!(out)?;
            Ok(if intact { 0 } else { 1 })
        }
        AuditCommand::Export {
            dirs,
            case,
            principal,
            network,
            kind,
            since,
            until,
            body_key,
            cipher,
        } => {
            let key = body_key
                .as_deref()
                .map(crate::chain::read_hex32)
                .transpose()?;
            let q = Query {
                case,
                principal,
                network,
                kind,
                since,
                until,
            };
            let merged = dirs.len() > 1;
            for (trail, rec) in query_merged(&dirs, &q)? {
                let rec = rec?;
                let mut value = serde_json::to_value(&rec)?;
                if merged {
                    value["trail"] = trail.into();
                }
                if let Some(key) = &key {
                    let bodies = decrypt_bodies(&rec, cipher, key)?;
                    let decrypted: Vec<serde_json::Value> = bodies
                        .into_iter()
                        .map(|(label, bytes)| match String::from_utf8(bytes) {
                            Ok(text) => serde_json::json!({"label": label, "text": text}),
                            Err(e) => serde_json::json!({
                                "label": label,
                                "base64": base64::engine::general_purpose::STANDARD
                                    .encode(e.into_bytes()),
                            }),
                        })
                        .collect();
                    value["decrypted"] = decrypted.into();
                }
                serde_json::to_writer(&mut *out, &value)?;
                match writeln!(out) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                    other => other?,
                }
            }
            Ok(0)
        }
    }
}

/// A witness's answer: fetched from its URL, or saved to a file.
fn read_witness(
    source: &str,
    client: &WitnessClient,
    fetch: Option<&dyn FetchWitness>,
) -> Result<WitnessDoc> {
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        let fetch = fetch.context(
            "this build cannot fetch a witness; save its answer (GET /admin/witness) to a file",
        )?;
        fetch.fetch(source, client)?
    } else {
        std::fs::read(source).with_context(|| format!("reading {source}"))?
    };
    let doc: WitnessDoc = serde_json::from_slice(&text)
        .with_context(|| format!("{source}: not a witness's answer"))?;
    if doc.format != WITNESS_FORMAT {
        anyhow::bail!(
            "{source}: format {:?}, expected {WITNESS_FORMAT:?}",
            doc.format
        );
    }
    Ok(doc)
}

fn read_key(path: &Path) -> Result<VerifyingKey> {
    let keys = crate::read_public_keys(path)?;
    match keys.as_slice() {
        [key] => Ok(*key),
        _ => anyhow::bail!(
            "{} holds {} keys; --public-key takes one",
            path.display(),
            keys.len()
        ),
    }
}

/// The one-line verdict.
pub fn summary(r: &VerifyReport) -> String {
    if let Some(b) = &r.broken {
        return format!("audit trail BROKEN at {b}");
    }
    let Some(last) = r.last_seq else {
        return match r.anchor_seq {
            Some(a) => format!("audit trail intact: no records after the anchor (seq {a})"),
            None => "audit trail intact: empty".to_string(),
        };
    };
    let mut s = format!(
        "audit trail intact: {} records (seq {}..={last}), {} checkpoints",
        r.records,
        r.first_seq.unwrap_or(last),
        r.checkpoints
    );
    if let Some(a) = r.anchor_seq {
        s.push_str(&format!(", anchored at seq {a}"));
    }
    match r.last_checkpoint_seq {
        Some(c) => s.push_str(&format!(
            "; last checkpoint seq {c}, {} records after it not yet signed",
            r.records_after_last_checkpoint
        )),
        None => s.push_str("; no checkpoint yet: nothing is signed"),
    }
    if let Some(w) = &r.witness {
        match w.last_witnessed_seq {
            Some(seq) => s.push_str(&format!(
                "; witnessed: {} checkpoints identical up to seq {seq} (trail {}), {} records \
                 after it not witnessed",
                w.checkpoints,
                w.trails.join(", "),
                w.records_not_witnessed
            )),
            None => s.push_str("; the witness holds no checkpoint of this trail yet"),
        }
    }
    if r.unterminated_tail_bytes > 0 {
        s.push_str(&format!(
            "; {} bytes of an unfinished last line (a write in flight, or a crash)",
            r.unterminated_tail_bytes
        ));
    }
    s
}
