//! `[audit]`: the section of the gateway's config, and the two algorithm
//! choices it names. Their strings are both the config's and the on-disk
//! records' (`"hash":"sm3"`, `"cipher":"sm4-gcm"`), so serde and strum are
//! told the same names and a test holds them equal.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct AuditConfig {
    /// The audit directory; by default `<data-dir>/audit` (the caller passes
    /// the resolved directory to [`AuditLog::open`]).
    pub dir: Option<PathBuf>,
    /// `sha256` (default) or `sm3`: the hash of the chain.
    pub hash: HashAlg,
    /// An Ed25519 seed, 64 hex chars; a file named here must exist. By
    /// default the gateway keeps it outside the audit directory
    /// (`<data-dir>/keys/audit-signing.key`, see
    /// [`default_signing_key_file`](Self::default_signing_key_file)).
    pub signing_key_file: Option<PathBuf>,
    /// Where the key is created (0600, in a 0700 folder) when
    /// `signing-key-file` is not set: not a config key, the caller's
    /// default. A key already at `<dir>/signing.key` (the old default) is
    /// still used there, with a warning. `None`: `<dir>/signing.key`.
    #[serde(skip)]
    pub default_signing_key_file: Option<PathBuf>,
    /// The replica writing this trail (`[gateway] replica-id`): recorded in
    /// `trail.json` at the first open and checked at every later one. Not a
    /// config key of `[audit]`; the caller sets it.
    #[serde(skip)]
    pub replica: Option<String>,
    /// Records between signed checkpoints (1000).
    pub checkpoint_every: u64,
    /// And a checkpoint at least this often while records arrive (60000).
    pub checkpoint_interval_ms: u64,
    /// Keep the bodies themselves, encrypted (default: only their digests).
    pub keep_bodies: bool,
    /// The 32-byte body key, 64 hex chars; required with `keep-bodies`.
    pub body_key_file: Option<PathBuf>,
    /// `aes-256-gcm` (default) or `sm4-gcm`.
    pub body_cipher: BodyCipher,
    /// Delete whole segments older than this (default: keep forever).
    pub retention_days: Option<u64>,
    /// Roll to a new segment (after a checkpoint) past this size (64 MiB).
    pub segment_max_bytes: u64,
    /// `[audit.witness.<name>]`: where signed checkpoints are pushed (the
    /// gateway's push loop; see [`WitnessConfig`]).
    pub witness: BTreeMap<String, WitnessConfig>,
}

/// `[audit.witness.<name>]`: a witness the gateway pushes every signed
/// checkpoint to — another gateway's `POST /admin/witness`
/// (`url = "https://witness.example:8442/admin/witness"`), or an RFC 3161
/// time-stamping authority (`protocol = "rfc3161"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WitnessConfig {
    pub url: String,
    /// `yiwang` (default: a gateway's witness API) or `rfc3161` (a TSA).
    #[serde(default)]
    pub protocol: WitnessProtocol,
    /// Time allowed for one push (`timeout-ms = 10000`).
    #[serde(default = "default_witness_timeout")]
    pub timeout_ms: u64,
    /// `[audit.witness.<name>.tls]`: the gateway's outbound mTLS client
    /// settings, the same table as `[subscribers.X.tls]` (`ca`, `cert`,
    /// `key`, `pin-sha256`, `server-name`); read and checked by the
    /// gateway, which owns TLS. Required for https.
    #[serde(default)]
    pub tls: Option<serde_json::Value>,
    /// Allow an `http://` url (a lab set-up only).
    #[serde(default)]
    pub plaintext: bool,
}

/// What a witness speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WitnessProtocol {
    /// Another gateway's `POST /admin/witness`: it holds the checkpoints.
    #[default]
    Yiwang,
    /// An RFC 3161 time-stamping authority: it signs each checkpoint's
    /// SHA-256 with a time; the replies are kept by the pusher.
    Rfc3161,
}

fn default_witness_timeout() -> u64 {
    10_000
}

impl WitnessConfig {
    /// Problems with this witness (`name` for the messages).
    fn check(&self, name: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let at = format!("[audit.witness.{name}]");
        if self.url.starts_with("https://") {
            if self.tls.is_none() {
                problems.push(format!(
                    "{at} url is https but there is no [audit.witness.{name}.tls] (ca, cert, key)"
                ));
            }
        } else if self.url.starts_with("http://") {
            // A time-stamp is signed by the TSA: plain HTTP is the usual
            // way to reach one.
            if !self.plaintext && self.protocol != WitnessProtocol::Rfc3161 {
                problems.push(format!(
                    "{at} url {:?} is plain http: set plaintext = true (a lab only) or use https",
                    self.url
                ));
            }
        } else {
            problems.push(format!(
                "{at} url {:?} must start with https:// (or http:// with plaintext = true)",
                self.url
            ));
        }
        if self.timeout_ms == 0 {
            problems.push(format!("{at} timeout-ms must be at least 1"));
        }
        problems
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            dir: None,
            hash: HashAlg::Sha256,
            signing_key_file: None,
            default_signing_key_file: None,
            replica: None,
            checkpoint_every: 1000,
            checkpoint_interval_ms: 60_000,
            keep_bodies: false,
            body_key_file: None,
            body_cipher: BodyCipher::Aes256Gcm,
            retention_days: None,
            segment_max_bytes: 64 * 1024 * 1024,
            witness: BTreeMap::new(),
        }
    }
}

impl AuditConfig {
    /// Problems with this section, for `config check` (empty when fine).
    /// Key files are only read by [`AuditLog::open`].
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.keep_bodies && self.body_key_file.is_none() {
            problems.push(
                "[audit] keep-bodies = true needs body-key-file (a 32-byte key, 64 hex chars)"
                    .to_string(),
            );
        }
        if !self.keep_bodies && self.body_key_file.is_some() {
            problems.push(
                "[audit] body-key-file is set but keep-bodies is false: bodies are not kept"
                    .to_string(),
            );
        }
        if self.checkpoint_every == 0 {
            problems.push("[audit] checkpoint-every must be at least 1".to_string());
        }
        if self.checkpoint_interval_ms == 0 {
            problems.push("[audit] checkpoint-interval-ms must be at least 1".to_string());
        }
        if self.segment_max_bytes < 4096 {
            problems.push(format!(
                "[audit] segment-max-bytes = {} is too small (at least 4096)",
                self.segment_max_bytes
            ));
        }
        if self.retention_days == Some(0) {
            problems.push(
                "[audit] retention-days = 0 would delete the trail; leave it out to keep forever"
                    .to_string(),
            );
        }
        for (name, witness) in &self.witness {
            problems.extend(witness.check(name));
        }
        problems
    }
}

/// The hash of the chain.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::Display,
    EnumIter,
    IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum HashAlg {
    /// SHA-256 (FIPS 180-4).
    #[default]
    Sha256,
    /// SM3 (GB/T 32905-2016).
    Sm3,
}

impl HashAlg {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The AEAD of kept bodies.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::Display,
    EnumIter,
    EnumString,
    IntoStaticStr,
)]
#[strum(parse_err_ty = UnknownCipher, parse_err_fn = UnknownCipher::named)]
pub enum BodyCipher {
    /// AES-256-GCM.
    #[default]
    #[serde(rename = "aes-256-gcm")]
    #[strum(serialize = "aes-256-gcm")]
    Aes256Gcm,
    /// SM4 in GCM mode (GB/T 32907, 128-bit key derived from the body key).
    #[serde(rename = "sm4-gcm")]
    #[strum(serialize = "sm4-gcm")]
    Sm4Gcm,
}

impl BodyCipher {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A body cipher name that is none of [`BodyCipher`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown body cipher {name:?} ({})", BodyCipher::iter().map(BodyCipher::as_str).collect::<Vec<_>>().join(" or "))]
pub struct UnknownCipher {
    pub name: String,
}

impl UnknownCipher {
    pub(crate) fn named(name: &str) -> Self {
        UnknownCipher {
            name: name.to_string(),
        }
    }
}
