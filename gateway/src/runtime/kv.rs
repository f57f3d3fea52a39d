//! The per-network key-value store behind the adapter's `kv` import, its
//! caps, and the quota arithmetic every backend shares.
//!
//! Why counters: a quota check that sums the network's entries costs host
//! work proportional to what the adapter stored (an adapter with 10⁶ keys
//! made each `kv.set` scan them all, seconds of host CPU per call). Each
//! backend instead keeps a [`KvUsage`] per network, changed together with
//! the entry it accounts for, so a `set` or `delete` reads one entry and
//! one counter whatever the network holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The per-network key-value store behind the `kv` import. The delivery
/// service supplies a durable one; [`MemoryKv`] serves tests and fixtures.
pub trait KvStore: Send + Sync + 'static {
    fn get(&self, network: &str, key: &str) -> Option<Vec<u8>>;
    fn set(&self, network: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, network: &str, key: &str);
    /// What the network holds, as its quota counts it.
    fn usage(&self, network: &str) -> Result<KvUsage, KvError>;
}

/// Keys, values and a network's total are capped so an adapter cannot use
/// the store to exhaust the gateway's memory or disk.
pub const KV_MAX_KEY: usize = 256;
pub const KV_MAX_VALUE: usize = 64 << 10;
pub const KV_MAX_TOTAL: usize = 1 << 20;

/// Why a [`KvStore`] refused a write. The adapter sees this message as the `kv.set` error.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("key must be 1..={KV_MAX_KEY} bytes")]
    KeySize,
    #[error("value of {len} bytes over the {KV_MAX_VALUE}-byte cap")]
    ValueSize { len: usize },
    #[error("network quota of {KV_MAX_TOTAL} bytes is full")]
    QuotaFull,
    /// The backend failed (its own message, unchanged).
    #[error("{0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The size rules every [`KvStore`] enforces.
pub fn check_kv_sizes(key: &str, value: &[u8]) -> Result<(), KvError> {
    if key.is_empty() || key.len() > KV_MAX_KEY {
        return Err(KvError::KeySize);
    }
    if value.len() > KV_MAX_VALUE {
        return Err(KvError::ValueSize { len: value.len() });
    }
    Ok(())
}

/// One network's kv usage: the bytes of its keys and values (what
/// [`KV_MAX_TOTAL`] caps) and how many keys it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KvUsage {
    pub bytes: u64,
    pub keys: u64,
}

impl KvUsage {
    /// The usage once `key` holds `value`, replacing a value of `old` bytes
    /// if the key was set; refused when the total would pass the quota.
    pub fn after_set(
        self,
        key: &str,
        old: Option<usize>,
        value: &[u8],
    ) -> Result<KvUsage, KvError> {
        check_kv_sizes(key, value)?;
        let without = self.after_delete(key, old);
        let bytes = without.bytes + (key.len() + value.len()) as u64;
        if bytes > KV_MAX_TOTAL as u64 {
            return Err(KvError::QuotaFull);
        }
        Ok(KvUsage {
            bytes,
            keys: without.keys + 1,
        })
    }

    /// The usage once `key` (holding `old` bytes, if set) is gone.
    pub fn after_delete(self, key: &str, old: Option<usize>) -> KvUsage {
        match old {
            Some(len) => KvUsage {
                bytes: self.bytes.saturating_sub((key.len() + len) as u64),
                keys: self.keys.saturating_sub(1),
            },
            None => self,
        }
    }

    /// As stored by a durable backend: 16 bytes, big-endian bytes then keys.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.bytes.to_be_bytes());
        out[8..].copy_from_slice(&self.keys.to_be_bytes());
        out
    }

    /// Read back what [`KvUsage::to_bytes`] wrote; None if it is not that.
    pub fn from_bytes(b: &[u8]) -> Option<KvUsage> {
        let bytes = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let keys = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        (b.len() == 16).then_some(KvUsage { bytes, keys })
    }
}

/// An in-memory [`KvStore`]: each network's entries and their usage under
/// one lock, so the counter never disagrees with the entries.
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<HashMap<String, MemoryNetwork>>,
}

#[derive(Debug, Default)]
struct MemoryNetwork {
    entries: BTreeMap<String, Vec<u8>>,
    usage: KvUsage,
}

impl MemoryKv {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MemoryNetwork>> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KvStore for MemoryKv {
    fn get(&self, network: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .get(network)
            .and_then(|m| m.entries.get(key))
            .cloned()
    }
    fn set(&self, network: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let mut data = self.lock();
        let net = data.entry(network.to_string()).or_default();
        let old = net.entries.get(key).map(Vec::len);
        net.usage = net.usage.after_set(key, old, value)?;
        net.entries.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, network: &str, key: &str) {
        if let Some(net) = self.lock().get_mut(network) {
            let old = net.entries.remove(key).map(|v| v.len());
            net.usage = net.usage.after_delete(key, old);
        }
    }
    fn usage(&self, network: &str) -> Result<KvUsage, KvError> {
        Ok(self
            .lock()
            .get(network)
            .map(|n| n.usage)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adapters see these words as the `kv.set` error (adapters-sdk/wit/adapter.wit).
    #[test]
    fn kv_refusals_keep_their_wording() {
        let kv = MemoryKv::default();
        let said = |r: Result<(), KvError>| r.map_err(|e| e.to_string());
        assert_eq!(
            said(kv.set("n", "", b"v")),
            Err("key must be 1..=256 bytes".into())
        );
        assert_eq!(
            said(kv.set("n", "k", &vec![0; KV_MAX_VALUE + 1])),
            Err("value of 65537 bytes over the 65536-byte cap".into())
        );
        assert_eq!(
            KvError::QuotaFull.to_string(),
            "network quota of 1048576 bytes is full"
        );
    }

    #[test]
    fn kv_quota_is_enforced() {
        let kv = MemoryKv::default();
        assert!(kv.set("n", "k", &vec![0; KV_MAX_VALUE + 1]).is_err());
        for i in 0..16 {
            kv.set("n", &format!("k{i}"), &vec![0; KV_MAX_VALUE - 8])
                .unwrap();
        }
        assert!(
            kv.set("n", "overflow", &[0; 1024])
                .unwrap_err()
                .to_string()
                .contains("quota")
        );
        assert!(kv.set("other", "k", b"v").is_ok(), "quota is per network");
        assert_eq!(kv.get("other", "k").as_deref(), Some(&b"v"[..]));
        assert_eq!(kv.get("n", "missing"), None);
    }

    #[test]
    fn usage_follows_overwrites_and_deletes() {
        let kv = MemoryKv::default();
        kv.set("n", "ab", b"1234").unwrap();
        kv.set("n", "ab", b"12").unwrap();
        kv.set("n", "c", b"").unwrap();
        assert_eq!(kv.usage("n").unwrap(), KvUsage { bytes: 5, keys: 2 });
        kv.delete("n", "ab");
        kv.delete("n", "never-set");
        assert_eq!(kv.usage("n").unwrap(), KvUsage { bytes: 1, keys: 1 });
        assert_eq!(kv.usage("other").unwrap(), KvUsage::default());
    }

    #[test]
    fn an_overwrite_is_judged_without_the_value_it_replaces() {
        let full = KvUsage {
            bytes: KV_MAX_TOTAL as u64,
            keys: 16,
        };
        let value = vec![0; 100];
        // The key already holds 100 bytes: the same size again fits exactly.
        assert!(full.after_set("k", Some(100), &value).is_ok());
        assert!(matches!(
            full.after_set("k", Some(99), &value),
            Err(KvError::QuotaFull)
        ));
        assert!(matches!(
            full.after_set("new", None, b""),
            Err(KvError::QuotaFull)
        ));
    }

    #[test]
    fn usage_round_trips_its_stored_form() {
        let u = KvUsage {
            bytes: 1 << 40,
            keys: 7,
        };
        assert_eq!(KvUsage::from_bytes(&u.to_bytes()), Some(u));
        assert_eq!(KvUsage::from_bytes(&[0; 15]), None);
        assert_eq!(KvUsage::from_bytes(&[0; 17]), None);
    }
}
