//! Pushing the trail's signed checkpoints to its witnesses
//! (`[audit.witness.<name>]`), so that cutting the tail, stripping
//! checkpoints or swapping the key is found up to the last witnessed one.
//!
//! Each witness has a cursor on disk (`<data-dir>/witness/pushed/<name>.json`:
//! the last checkpoint seq it acknowledged); every checkpoint after it is
//! read back from the trail and pushed, oldest first, the cursor moving
//! only on the witness's 2xx. So nothing is lost to a restart, a crash or a
//! witness that is down: the next round starts at the cursor. A witness
//! that is down or refuses is retried with a doubling delay (1 s to 5 min)
//! and never blocks the trail: the trail is written by its own thread, this
//! loop only reads it. A refusal (409: the witness holds a conflicting
//! checkpoint; 422: ours does not verify) is an `alert` record as well: the
//! trail or the key is not what the witness saw before.
//!
//! Rounds run when a checkpoint is made durable (the audit log's watch),
//! at least every minute, and after each failure's delay.
//!
//! A witness with `protocol = "rfc3161"` is a time-stamping authority: it
//! gets a `TimeStampReq` over the checkpoint line's SHA-256, and its
//! granted reply is kept as `<data-dir>/witness/timestamps/<name>/<seq>.tsr`
//! (`openssl ts -verify` checks it offline); a refused or unrelated reply
//! is a refusal like a witness's 409.

use super::Delivery;
use crate::transport::{OutboundRequest, TransportError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use yiwang_audit::{
    AuditError, Entry, Kind, PendingCheckpoint, WitnessConfig, WitnessProtocol, timestamp,
};

/// A round also runs this often without a new checkpoint.
const POLL: Duration = Duration::from_secs(60);
/// Checkpoints read from the trail per batch.
const BATCH: usize = 64;

/// One configured witness, as the loop runs it.
#[derive(Debug, Clone)]
pub struct Witness {
    pub name: String,
    pub url: http::Uri,
    pub protocol: WitnessProtocol,
    pub timeout: Duration,
    /// The cursor file.
    pub cursor: PathBuf,
    /// An RFC 3161 witness's replies: `<seq>.tsr`.
    pub replies: PathBuf,
}

impl Witness {
    /// From `[audit.witness.<name>]`; its cursor and (for a TSA) its
    /// replies live under `dir`.
    pub fn from_config(
        name: &str,
        cfg: &WitnessConfig,
        dir: &std::path::Path,
    ) -> Result<Witness, http::uri::InvalidUri> {
        Ok(Witness {
            name: name.to_string(),
            url: cfg.url.parse()?,
            protocol: cfg.protocol,
            timeout: Duration::from_millis(cfg.timeout_ms),
            cursor: dir.join("pushed").join(format!("{name}.json")),
            replies: dir.join("timestamps").join(name),
        })
    }

    /// The transport key its mTLS client is registered under.
    pub fn transport_key(name: &str) -> String {
        format!("witness:{name}")
    }
}

/// The cursor file's contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cursor {
    /// The seq of the last checkpoint the witness acknowledged.
    acknowledged_seq: u64,
}

/// The delay after `failures` failed rounds in a row: 1 s, doubling, at
/// most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs.min(300))
}

/// Why a round stopped before the witness had everything.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("witness `{witness}`: {source}")]
    Transport {
        witness: String,
        source: TransportError,
    },
    #[error("witness `{witness}` refused checkpoint seq {seq} ({status}): {body}")]
    Refused {
        witness: String,
        seq: u64,
        status: u16,
        body: String,
    },
    #[error("witness `{witness}` answered {status} for checkpoint seq {seq}: {body}")]
    Unavailable {
        witness: String,
        seq: u64,
        status: u16,
        body: String,
    },
    #[error("witness `{witness}`: reading the trail: {source}")]
    Trail { witness: String, source: AuditError },
    #[error("witness `{witness}`: writing {}: {source}", path.display())]
    Write {
        witness: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Push until stopped; rounds as the module docs say.
pub async fn run(delivery: Arc<Delivery>, witness: Arc<Witness>) {
    let stop = delivery.stopping();
    let mut checkpoints = delivery.audit.checkpoints();
    let mut failures = 0u32;
    // The seq last raised as refused: one alert per refused checkpoint.
    let mut alerted = None;
    loop {
        let round = tokio::select! {
            () = stop.cancelled() => return,
            r = push_pending(&delivery, &witness) => r,
        };
        let wait = match round {
            Ok(_) => {
                failures = 0;
                None
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                failed(&delivery, &witness, &e, failures, &mut alerted);
                Some(backoff(failures))
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            changed = checkpoints.changed(), if wait.is_none() => {
                if changed.is_err() {
                    return; // the trail is closed: the gateway is stopping
                }
            }
            () = tokio::time::sleep(wait.unwrap_or(POLL)) => {}
        }
    }
}

/// Log, count, and for a refusal raise an alert record (once per refused
/// checkpoint, not at every retry).
fn failed(
    delivery: &Delivery,
    witness: &Witness,
    e: &PushError,
    failures: u32,
    alerted: &mut Option<u64>,
) {
    metrics::counter!("yiwang_witness_push_failures_total", "witness" => witness.name.clone())
        .increment(1);
    if let PushError::Refused {
        seq, status, body, ..
    } = e
    {
        tracing::error!(witness = %witness.name, error = %e, "a witness refused a checkpoint");
        if alerted.replace(*seq) != Some(*seq) {
            delivery
                .audit
                .record(Entry::new(Kind::Alert).detail(serde_json::json!({
                    "witness": witness.name,
                    "refused-seq": seq,
                    "status": status,
                    "reason": body,
                })));
        }
    } else {
        tracing::warn!(witness = %witness.name, error = %e, failures,
            "checkpoints not pushed to a witness; retrying");
    }
}

/// Push every checkpoint after the cursor; how many were pushed.
async fn push_pending(delivery: &Delivery, witness: &Witness) -> Result<u64, PushError> {
    let mut cursor = read_cursor(witness)?;
    let mut pushed = 0;
    loop {
        let dir = delivery.audit.dir().to_path_buf();
        let after = cursor.acknowledged_seq;
        let trail = |source| PushError::Trail {
            witness: witness.name.clone(),
            source,
        };
        let batch = tokio::task::spawn_blocking(move || {
            yiwang_audit::checkpoints_after(&dir, after, BATCH)
        })
        .await
        // The read panicked: reported as a failed round, retried.
        .map_err(|e| trail(AuditError::Write(e.to_string())))?
        .map_err(trail)?;
        if batch.is_empty() {
            return Ok(pushed);
        }
        for pending in batch {
            post(delivery, witness, &pending).await?;
            cursor.acknowledged_seq = pending.seq;
            write_cursor(witness, cursor)?;
            pushed += 1;
            metrics::counter!("yiwang_witness_pushed_total", "witness" => witness.name.clone())
                .increment(1);
            metrics::gauge!("yiwang_witness_acknowledged_seq", "witness" => witness.name.clone())
                .set(pending.seq as f64);
        }
    }
}

/// POST one checkpoint; `Ok` on the witness's 2xx (for a TSA: a granted
/// time-stamp of this checkpoint, kept as `<seq>.tsr`).
async fn post(
    delivery: &Delivery,
    witness: &Witness,
    pending: &PendingCheckpoint,
) -> Result<(), PushError> {
    let line = pending.push.line.as_bytes();
    let (content_type, body) = match witness.protocol {
        WitnessProtocol::Yiwang => (
            "application/json",
            serde_json::to_vec(&pending.push).unwrap_or_default(),
        ),
        WitnessProtocol::Rfc3161 => (
            "application/timestamp-query",
            timestamp::request(line, rand::random::<u64>()),
        ),
    };
    let request = OutboundRequest {
        network: Witness::transport_key(&witness.name),
        method: http::Method::POST,
        uri: witness.url.clone(),
        headers: vec![
            ("content-type".into(), content_type.into()),
            (
                "user-agent".into(),
                concat!("yiwang/", env!("CARGO_PKG_VERSION")).into(),
            ),
        ],
        body: body.into(),
        timeout: witness.timeout,
        max_response_bytes: 64 << 10,
    };
    let resp = delivery
        .webhook
        .send(request)
        .await
        .map_err(|source| PushError::Transport {
            witness: witness.name.clone(),
            source,
        })?;
    let text = || String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).into_owned();
    match resp.status {
        200..=299 if witness.protocol == WitnessProtocol::Rfc3161 => {
            keep_reply(witness, pending, &resp.body)
        }
        200..=299 => Ok(()),
        409 | 422 => Err(PushError::Refused {
            witness: witness.name.clone(),
            seq: pending.seq,
            status: resp.status,
            body: text(),
        }),
        status => Err(PushError::Unavailable {
            witness: witness.name.clone(),
            seq: pending.seq,
            status,
            body: text(),
        }),
    }
}

/// A TSA's reply: checked (granted, over this checkpoint) and kept.
fn keep_reply(
    witness: &Witness,
    pending: &PendingCheckpoint,
    reply: &[u8],
) -> Result<(), PushError> {
    if let Err(e) = timestamp::check_reply(reply, pending.push.line.as_bytes()) {
        return Err(PushError::Refused {
            witness: witness.name.clone(),
            seq: pending.seq,
            status: 200,
            body: e.to_string(),
        });
    }
    let path = witness.replies.join(format!("{}.tsr", pending.seq));
    let io = |source| PushError::Write {
        witness: witness.name.clone(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&witness.replies).map_err(io)?;
    yiwang_fsutil::atomic_write(&path, reply).map_err(io)
}

fn read_cursor(witness: &Witness) -> Result<Cursor, PushError> {
    let io = |source| PushError::Write {
        witness: witness.name.clone(),
        path: witness.cursor.clone(),
        source,
    };
    match std::fs::read(&witness.cursor) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
        Err(e) => Err(io(e)),
    }
}

fn write_cursor(witness: &Witness, cursor: Cursor) -> Result<(), PushError> {
    let io = |source| PushError::Write {
        witness: witness.name.clone(),
        path: witness.cursor.clone(),
        source,
    };
    if let Some(dir) = witness.cursor.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let bytes = serde_json::to_vec(&cursor).unwrap_or_default();
    yiwang_fsutil::atomic_write(&witness.cursor, &bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_from_one_second_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 4, 9, 10, 40, u32::MAX]
            .into_iter()
            .map(|n| backoff(n).as_secs())
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 256, 300, 300, 300]);
    }
}
