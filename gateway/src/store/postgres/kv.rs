//! Adapter key-value data in PostgreSQL. The adapter's `kv` import is
//! synchronous (it runs inside a Wasm call), so the store answers it from
//! a thread of its own with one connection and a small runtime: the
//! calling thread waits for that thread's answer and never needs an async
//! runtime of its own, whatever runtime (if any) it runs on.
//!
//! Each `set` and `delete` changes the entry and its network's usage row
//! in one transaction, with the usage row locked, so the quota holds across
//! replicas. Like the embedded backend, kv writes do not wait for the WAL
//! flush (`synchronous_commit = off` for that transaction alone): adapter
//! state is a cache, and losing the last write in a crash costs a re-login.

use super::{Result, StoreError, Target, describe};
use crate::runtime::{KvError, KvStore, KvUsage, check_kv_sizes};
use std::sync::mpsc;

enum Op {
    Get {
        network: String,
        key: String,
    },
    Set {
        network: String,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        network: String,
        key: String,
    },
    Usage {
        network: String,
    },
}

enum Answer {
    Value(Option<Vec<u8>>),
    Done(std::result::Result<(), KvError>),
    Usage(std::result::Result<KvUsage, KvError>),
}

type Request = (Op, mpsc::SyncSender<Answer>);

/// The [`KvStore`] of a [`PostgresStore`](super::PostgresStore).
pub(super) struct PostgresKv {
    requests: mpsc::Sender<Request>,
}

/// A backend failure in the words the adapter sees.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct KvBackend(String);

fn kv_backend(e: impl std::fmt::Display) -> KvError {
    KvError::Backend(Box::new(KvBackend(e.to_string())))
}

impl PostgresKv {
    /// Start the kv thread; it ends when the store is dropped.
    pub(super) fn start(target: Target) -> Result<PostgresKv> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("kv runtime: {e}")))?;
        std::thread::Builder::new()
            .name("yiwang-pg-kv".into())
            .spawn(move || {
                let mut worker = Worker {
                    target,
                    client: None,
                };
                while let Ok((op, reply)) = incoming.recv() {
                    let answer = runtime.block_on(worker.answer(op));
                    let _ = reply.send(answer);
                }
            })
            .map_err(|e| StoreError::Backend(format!("kv thread: {e}")))?;
        Ok(PostgresKv { requests })
    }

    fn ask(&self, op: Op) -> Option<Answer> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests.send((op, reply)).ok()?;
        answer.recv().ok()
    }
}

const GONE: &str = "the kv thread has stopped";

impl KvStore for PostgresKv {
    fn get(&self, network: &str, key: &str) -> Option<Vec<u8>> {
        let op = Op::Get {
            network: network.into(),
            key: key.into(),
        };
        match self.ask(op) {
            Some(Answer::Value(v)) => v,
            _ => None,
        }
    }

    fn set(&self, network: &str, key: &str, value: &[u8]) -> std::result::Result<(), KvError> {
        check_kv_sizes(key, value)?;
        let op = Op::Set {
            network: network.into(),
            key: key.into(),
            value: value.to_vec(),
        };
        match self.ask(op) {
            Some(Answer::Done(r)) => r,
            _ => Err(kv_backend(GONE)),
        }
    }

    fn delete(&self, network: &str, key: &str) {
        let op = Op::Delete {
            network: network.into(),
            key: key.into(),
        };
        if let Some(Answer::Done(Err(e))) = self.ask(op) {
            tracing::warn!(%network, error = %e, "kv delete failed");
        }
    }

    fn usage(&self, network: &str) -> std::result::Result<KvUsage, KvError> {
        match self.ask(Op::Usage {
            network: network.into(),
        }) {
            Some(Answer::Usage(u)) => u,
            _ => Err(kv_backend(GONE)),
        }
    }
}

/// The kv thread's side: one connection, made again when it breaks.
struct Worker {
    target: Target,
    client: Option<tokio_postgres::Client>,
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

impl Worker {
    async fn client(&mut self) -> PgResult<&mut tokio_postgres::Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let c = self.target.connector.connect(&self.target.config).await?;
            self.client = Some(c);
        }
        match self.client.as_mut() {
            Some(c) => Ok(c),
            None => unreachable!("a client was just set"),
        }
    }

    async fn answer(&mut self, op: Op) -> Answer {
        let failed = |e: tokio_postgres::Error| kv_backend(format!("PostgreSQL: {}", describe(&e)));
        match op {
            Op::Get { network, key } => match self.get(&network, &key).await {
                Ok(v) => Answer::Value(v),
                Err(e) => {
                    tracing::warn!(%network, error = %describe(&e), "kv get failed");
                    Answer::Value(None)
                }
            },
            Op::Set {
                network,
                key,
                value,
            } => Answer::Done(
                self.change(&network, &key, Some(&value))
                    .await
                    .unwrap_or_else(|e| Err(failed(e))),
            ),
            Op::Delete { network, key } => Answer::Done(
                self.change(&network, &key, None)
                    .await
                    .unwrap_or_else(|e| Err(failed(e))),
            ),
            Op::Usage { network } => Answer::Usage(self.usage(&network).await.map_err(failed)),
        }
    }

    async fn get(&mut self, network: &str, key: &str) -> PgResult<Option<Vec<u8>>> {
        let c = self.client().await?;
        let st = c
            .prepare("SELECT value FROM yiwang_kv WHERE network = $1 AND key = $2")
            .await?;
        Ok(c.query_opt(&st, &[&network, &key]).await?.map(|r| r.get(0)))
    }

    async fn usage(&mut self, network: &str) -> PgResult<KvUsage> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT bytes, keys FROM yiwang_kv_usage WHERE network = $1",
                &[&network],
            )
            .await?;
        Ok(row.map(|r| usage_of(&r)).unwrap_or_default())
    }

    /// Set (`Some`) or delete (`None`) one entry and change its network's
    /// usage with it; the outer error is the database's, the inner the quota's.
    async fn change(
        &mut self,
        network: &str,
        key: &str,
        value: Option<&[u8]>,
    ) -> PgResult<std::result::Result<(), KvError>> {
        let c = self.client().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        tx.execute(
            "INSERT INTO yiwang_kv_usage (network, bytes, keys) VALUES ($1, 0, 0) \
             ON CONFLICT (network) DO NOTHING",
            &[&network],
        )
        .await?;
        let usage = tx
            .query_one(
                "SELECT bytes, keys FROM yiwang_kv_usage WHERE network = $1 FOR UPDATE",
                &[&network],
            )
            .await?;
        let usage = usage_of(&usage);
        let old = tx
            .query_opt(
                "SELECT octet_length(value) FROM yiwang_kv WHERE network = $1 AND key = $2",
                &[&network, &key],
            )
            .await?
            .map(|r| r.get::<_, i32>(0) as usize);
        let usage = match value {
            Some(v) => match usage.after_set(key, old, v) {
                Ok(u) => u,
                Err(refused) => return Ok(Err(refused)),
            },
            None if old.is_none() => return Ok(Ok(())),
            None => usage.after_delete(key, old),
        };
        match value {
            Some(v) => {
                tx.execute(
                    "INSERT INTO yiwang_kv (network, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (network, key) DO UPDATE SET value = excluded.value",
                    &[&network, &key, &v],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM yiwang_kv WHERE network = $1 AND key = $2",
                    &[&network, &key],
                )
                .await?
            }
        };
        tx.execute(
            "UPDATE yiwang_kv_usage SET bytes = $2, keys = $3 WHERE network = $1",
            &[&network, &(usage.bytes as i64), &(usage.keys as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}

fn usage_of(row: &tokio_postgres::Row) -> KvUsage {
    KvUsage {
        bytes: row.get::<_, i64>(0).max(0) as u64,
        keys: row.get::<_, i64>(1).max(0) as u64,
    }
}
