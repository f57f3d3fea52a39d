//! Adapter key-value data (`k\0<network>\0<key>`) and each network's usage
//! counter (`u\0<network>`) in their own sled tree, beside the case store;
//! `m\0counted` marks a tree whose counters were built.

use super::{Result, StoreError};
use crate::runtime::{KvError, KvStore, KvUsage, check_kv_sizes};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A key of the tree: its parts joined by `\0` (the layout of the case store).
fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Adapter key-value data in its own tree, capped per network. Each
/// network's [`KvUsage`] sits in the same tree and changes in the same sled
/// transaction as the entry it counts, so after a crash the counter and the
/// entries agree (both writes are in the log, or neither is) and a `set`
/// reads one entry and one counter, never the network's whole prefix.
pub(super) struct SledKv {
    tree: sled::Tree,
    /// Entries read on behalf of `set` and `delete` (what the quota costs).
    reads: AtomicU64,
}

/// Written once every network's counter has been built (stores made before
/// counters existed are counted by one scan at open).
const KV_COUNTED: &str = "m\0counted";

fn kv_backend(e: impl std::error::Error + Send + Sync + 'static) -> KvError {
    KvError::Backend(Box::new(e))
}

impl SledKv {
    pub(super) fn open(tree: sled::Tree) -> Result<SledKv> {
        if !tree.contains_key(KV_COUNTED).map_err(backend)? {
            let mut usage: HashMap<String, KvUsage> = HashMap::new();
            for r in tree.scan_prefix(key(&["k", ""])) {
                let (k, v) = r.map_err(backend)?;
                let Some((network, user_key)) = kv_parts(&k) else {
                    continue;
                };
                let u = usage.entry(network.to_string()).or_default();
                u.bytes += (user_key.len() + v.len()) as u64;
                u.keys += 1;
            }
            let mut batch = sled::Batch::default();
            for (network, u) in &usage {
                batch.insert(key(&["u", network]), &u.to_bytes()[..]);
            }
            batch.insert(KV_COUNTED, &[][..]);
            tree.apply_batch(batch).map_err(backend)?;
        }
        Ok(SledKv {
            tree,
            reads: AtomicU64::new(0),
        })
    }

    /// Entries read so far by `set` and `delete` (tests check it does not
    /// grow with what a network holds).
    #[cfg(test)]
    pub(crate) fn entries_read(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Change one entry and its network's counter together.
    fn change(
        &self,
        network: &str,
        k: &str,
        value: Option<&[u8]>,
    ) -> std::result::Result<(), KvError> {
        let entry = key(&["k", network, k]);
        let counter = key(&["u", network]);
        let done = self.tree.transaction(|tx| {
            let old = tx.get(&entry)?.map(|v| v.len());
            let usage = tx.get(&counter)?;
            self.reads.fetch_add(2, Ordering::Relaxed);
            let usage = usage
                .and_then(|u| KvUsage::from_bytes(&u))
                .unwrap_or_default();
            let usage = match value {
                Some(v) => usage.after_set(k, old, v).map_err(abort)?,
                None if old.is_none() => return Ok(()),
                None => usage.after_delete(k, old),
            };
            match value {
                Some(v) => tx.insert(&entry[..], v)?,
                None => tx.remove(&entry[..])?,
            };
            tx.insert(&counter[..], &usage.to_bytes()[..])?;
            Ok(())
        });
        done.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => kv_backend(e),
        })
    }
}

fn abort(e: KvError) -> ConflictableTransactionError<KvError> {
    ConflictableTransactionError::Abort(e)
}

/// Network and key of a `k\0<network>\0<key>` entry.
fn kv_parts(k: &[u8]) -> Option<(&str, &str)> {
    let s = std::str::from_utf8(k).ok()?;
    let mut parts = s.splitn(3, '\0');
    parts.next()?;
    Some((parts.next()?, parts.next()?))
}

impl KvStore for SledKv {
    fn get(&self, network: &str, k: &str) -> Option<Vec<u8>> {
        self.tree
            .get(key(&["k", network, k]))
            .ok()
            .flatten()
            .map(|v| v.to_vec())
    }

    fn set(&self, network: &str, k: &str, value: &[u8]) -> std::result::Result<(), KvError> {
        check_kv_sizes(k, value)?;
        // Adapter state (tokens, counters) is a cache: losing the last write
        // in a crash costs a re-login, so it does not wait for an fsync.
        self.change(network, k, Some(value))
    }

    fn delete(&self, network: &str, k: &str) {
        if let Err(e) = self.change(network, k, None) {
            tracing::warn!(%network, error = %e, "kv delete failed");
        }
    }

    fn usage(&self, network: &str) -> std::result::Result<KvUsage, KvError> {
        let u = self.tree.get(key(&["u", network])).map_err(kv_backend)?;
        Ok(u.and_then(|u| KvUsage::from_bytes(&u)).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &std::path::Path) -> sled::Tree {
        let db = sled::open(dir).expect("open sled");
        db.open_tree("adapter-kv").expect("tree")
    }

    fn entries_read_by_one_set(kv: &SledKv, network: &str) -> u64 {
        let before = kv.entries_read();
        kv.set(network, "probe", b"value").expect("set");
        kv.entries_read() - before
    }

    /// What a `set` reads does not grow with what the network holds (the
    /// quota is a counter, not a scan of the network's entries).
    #[test]
    fn a_set_reads_the_same_whatever_the_network_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = &SledKv::open(tree(dir.path())).expect("open");
        let few = entries_read_by_one_set(kv, "n");
        for i in 0..5_000 {
            kv.set("n", &format!("key-{i}"), b"v").expect("set");
        }
        let many = entries_read_by_one_set(kv, "n");
        assert_eq!(few, many, "entries read by one set, at 0 and 5000 keys");
        assert!(few <= 2, "one entry and one counter, read {few}");
        assert_eq!(kv.usage("n").expect("usage").keys, 5_001);
    }

    /// A store written before counters existed is counted once at open. (Opened
    /// again on the same database: sled's flusher may hold the file lock for a moment
    /// after the last handle is dropped, so reopening the file would race it.)
    #[test]
    fn entries_without_a_counter_are_counted_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open sled");
        {
            let tree = &SledKv::open(db.open_tree("adapter-kv").expect("tree"))
                .expect("open")
                .tree;
            tree.insert(key(&["k", "n", "ab"]), &b"123"[..])
                .expect("raw");
            tree.insert(key(&["k", "n", "c"]), &b""[..]).expect("raw");
            tree.insert(key(&["k", "m", "x"]), &b"1"[..]).expect("raw");
            tree.remove(KV_COUNTED).expect("raw");
            tree.remove(key(&["u", "n"])).expect("raw");
        }
        let kv = SledKv::open(db.open_tree("adapter-kv").expect("tree")).expect("reopen");
        let usage = |n: &str| kv.usage(n).expect("usage");
        assert_eq!(usage("n"), KvUsage { bytes: 6, keys: 2 });
        assert_eq!(usage("m"), KvUsage { bytes: 2, keys: 1 });
    }
}
