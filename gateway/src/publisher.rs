//! Adapter publisher signatures: who may say "this exact component is the
//! adapter of network X, version V".
//!
//! An adapter is code the gateway runs with a network's secrets, so holding
//! an operator certificate must not be enough to make the gateway run it.
//! A publisher (whoever builds and releases adapters) signs each component
//! with an Ed25519 key; the configuration trusts the publisher's public keys
//! (`[adapters] publisher-keys`); start-up and every hot swap check the
//! detached signature before the component is even compiled.
//!
//! What is signed (byte-exact, so anyone can re-implement the check):
//!
//! ```text
//! "yiwang-adapter-signature/1\0"
//! ‖ sha256(component)              32 bytes
//! ‖ u32 big-endian len ‖ network   UTF-8
//! ‖ u32 big-endian len ‖ version   UTF-8, the `version` its `describe` reports
//! ```
//!
//! The network binds a component to the one network it was released for
//! (a component signed for `tax` is refused on `housing-construction`),
//! the version binds it to what operators and audit records see. The
//! signature file (`<component>.sig` by default) is one JSON object:
//! `{"format": "yiwang-adapter-signature/1", "key_id", "network",
//! "version", "sha256", "signature"}` — `key_id` is the first 16 hex chars
//! of SHA-256 of the public key (as the audit trail names its keys),
//! `signature` 128 hex chars. Key files are 64 hex chars each (the private
//! key's seed, or the public key), as the audit trail's keys are.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use yiwang_schema::Sha256Digest;

/// The `format` of a signature file, and the domain of the signed message.
pub const FORMAT: &str = "yiwang-adapter-signature/1";

/// The header that carries a hot swap's signature (`PUT
/// /admin/networks/<network>/adapter`): the signature file, base64.
pub const SIGNATURE_HEADER: &str = "yiwang-adapter-signature";

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an Ed25519 {what} key (need 64 hex chars)", path.display())]
    Malformed { path: PathBuf, what: &'static str },
    #[error("{}: refusing to overwrite an existing key file", path.display())]
    Exists { path: PathBuf },
}

/// A signature file that cannot be read as one.
#[derive(Debug, thiserror::Error)]
pub enum SignatureFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a {FORMAT} file: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
}

/// Which check refused a component, for a network; the `check` word is
/// what audit records and metrics carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no signature ({0}); sign it with `yiwang adapter sign`")]
    NoSignature(String),
    #[error("unreadable signature: {0}")]
    Malformed(String),
    #[error("signed by key {key_id}, which is not in [adapters] publisher-keys")]
    UnknownKey { key_id: String },
    #[error("signed for network `{signed_for}`, not this one")]
    OtherNetwork { signed_for: String },
    #[error("the component's sha256 is {actual}, the signature covers {signed}")]
    ShaMismatch { signed: String, actual: String },
    #[error("the signature does not verify with key {key_id}")]
    BadSignature { key_id: String },
    #[error("signed as version {signed:?}, but the component reports version {reported:?}")]
    VersionMismatch { signed: String, reported: String },
}

impl Refusal {
    /// One word per check (`no-signature`, `unknown-key`, …).
    pub fn check(&self) -> &'static str {
        match self {
            Refusal::NoSignature(_) => "no-signature",
            Refusal::Malformed(_) => "malformed-signature",
            Refusal::UnknownKey { .. } => "unknown-key",
            Refusal::OtherNetwork { .. } => "other-network",
            Refusal::ShaMismatch { .. } => "sha-mismatch",
            Refusal::BadSignature { .. } => "bad-signature",
            Refusal::VersionMismatch { .. } => "version-mismatch",
        }
    }
}

/// A publisher's private key.
pub struct PublisherKey(SigningKey);

impl PublisherKey {
    /// A fresh random key.
    pub fn generate() -> PublisherKey {
        PublisherKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// Read a key file (64 hex chars).
    pub fn read(path: &Path) -> Result<PublisherKey, KeyError> {
        let bytes = read_hex32(path, "private")?;
        Ok(PublisherKey(SigningKey::from_bytes(&bytes)))
    }

    /// Its public half.
    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Write the private key (0600, never over an existing file) and the
    /// public key beside it.
    pub fn write(&self, key: &Path, public: &Path) -> Result<(), KeyError> {
        let secret = format!("{}\n", hex::encode(self.0.to_bytes()));
        create_new(key, secret.as_bytes(), 0o600)?;
        let public_hex = format!("{}\n", hex::encode(self.public().as_bytes()));
        create_new(public, public_hex.as_bytes(), 0o644)
    }

    /// Sign `wasm` as version `version` of network `network`'s adapter.
    pub fn sign(&self, network: &str, version: &str, wasm: &[u8]) -> AdapterSignature {
        let sha256 = Sha256Digest::of(wasm).to_string();
        let sig = self.0.sign(&message(&sha256, network, version));
        AdapterSignature {
            format: FORMAT.to_string(),
            key_id: key_id(&self.public()),
            network: network.to_string(),
            version: version.to_string(),
            sha256,
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

impl std::fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublisherKey({})", key_id(&self.public()))
    }
}

/// Read a public key file (64 hex chars).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let bytes = read_hex32(path, "public")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
        what: "public",
    })
}

/// A key's id: the first 16 hex chars of SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    yiwang_audit::key_id(key)
}

/// A detached signature, as kept in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterSignature {
    pub format: String,
    pub key_id: String,
    pub network: String,
    pub version: String,
    pub sha256: String,
    pub signature: String,
}

impl AdapterSignature {
    /// Parse a signature file's text.
    pub fn parse(text: &str) -> Result<AdapterSignature, String> {
        let sig: AdapterSignature = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if sig.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", sig.format));
        }
        Ok(sig)
    }

    /// Read a signature file; None if there is none.
    pub fn read(path: &Path) -> Result<Option<AdapterSignature>, SignatureFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                let path = path.to_path_buf();
                return Err(SignatureFileError::Io { path, source });
            }
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|message| SignatureFileError::Malformed {
                path: path.to_path_buf(),
                message,
            })
    }

    /// The file's text (pretty JSON and a newline).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The signature file of a component by default: `<component>.sig`.
pub fn default_signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

/// A component whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub key_id: String,
    pub version: String,
}

/// The publisher keys a gateway trusts, and whether unsigned components
/// are let through (development only).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<VerifyingKey>,
    allow_unsigned: bool,
}

impl Trust {
    pub fn new(keys: Vec<VerifyingKey>, allow_unsigned: bool) -> Trust {
        Trust {
            keys,
            allow_unsigned,
        }
    }

    /// Whether a component without a signature is let through.
    pub fn allows_unsigned(&self) -> bool {
        self.allow_unsigned
    }

    /// Check `sig` over `wasm` for `network`: each check in turn, the first
    /// failing one named. Ok(None) for an unsigned component let through by
    /// `allow-unsigned` (a signature that is there is always checked).
    pub fn check(
        &self,
        network: &str,
        wasm: &[u8],
        sig: Option<&AdapterSignature>,
        absent: &str,
    ) -> Result<Option<Signed>, Refusal> {
        let Some(sig) = sig else {
            if self.allow_unsigned {
                return Ok(None);
            }
            return Err(Refusal::NoSignature(absent.to_string()));
        };
        let key = self
            .keys
            .iter()
            .find(|k| key_id(k) == sig.key_id)
            .ok_or_else(|| Refusal::UnknownKey {
                key_id: sig.key_id.clone(),
            })?;
        if sig.network != network {
            return Err(Refusal::OtherNetwork {
                signed_for: sig.network.clone(),
            });
        }
        let actual = Sha256Digest::of(wasm).to_string();
        if sig.sha256 != actual {
            let signed = sig.sha256.clone();
            return Err(Refusal::ShaMismatch { signed, actual });
        }
        let mut bytes = [0u8; 64];
        let bad = || Refusal::BadSignature {
            key_id: sig.key_id.clone(),
        };
        hex::decode_to_slice(&sig.signature, &mut bytes).map_err(|_| bad())?;
        key.verify_strict(
            &message(&actual, network, &sig.version),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| bad())?;
        Ok(Some(Signed {
            key_id: sig.key_id.clone(),
            version: sig.version.clone(),
        }))
    }
}

/// The signed message (see the module's opener).
fn message(sha256_hex: &str, network: &str, version: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(FORMAT.len() + 1 + 32 + 8 + network.len() + version.len());
    m.extend_from_slice(FORMAT.as_bytes());
    m.push(0);
    let mut digest = [0u8; 32];
    // The digest is ours (64 hex chars); a malformed one signs as zeros and
    // can never match a component's real hash.
    let _ = hex::decode_to_slice(sha256_hex, &mut digest);
    m.extend_from_slice(&digest);
    for part in [network, version] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(part.as_bytes());
    }
    m
}

fn read_hex32(path: &Path, what: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let malformed = || KeyError::Malformed {
        path: path.to_path_buf(),
        what,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed())?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| malformed())?;
    Ok(out)
}

fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(e)
        }
    })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: &[u8] = b"\0asm not really a component";

    fn trust(key: &PublisherKey) -> Trust {
        Trust::new(vec![key.public()], false)
    }

    #[test]
    fn a_signature_checks_out_for_its_network_only() {
        let key = PublisherKey::generate();
        let sig = key.sign("tax", "1.2.0", WASM);
        let ok = trust(&key).check("tax", WASM, Some(&sig), "-");
        assert_eq!(
            ok,
            Ok(Some(Signed {
                key_id: key_id(&key.public()),
                version: "1.2.0".into()
            }))
        );
        let other = trust(&key).check("housing", WASM, Some(&sig), "-");
        assert_eq!(other.map_err(|e| e.check()), Err("other-network"));
    }

    #[test]
    fn each_refusal_names_its_check() {
        let key = PublisherKey::generate();
        let sig = key.sign("tax", "1.2.0", WASM);
        let t = trust(&key);
        let check = |wasm: &[u8], sig: Option<&AdapterSignature>| {
            t.check("tax", wasm, sig, "tax.wasm.sig")
                .map_err(|e| e.check())
        };
        assert_eq!(check(WASM, None), Err("no-signature"));
        assert_eq!(check(b"tampered", Some(&sig)), Err("sha-mismatch"));
        let stranger = PublisherKey::generate().sign("tax", "1.2.0", WASM);
        assert_eq!(check(WASM, Some(&stranger)), Err("unknown-key"));
        // A version or network edited in the file breaks the signature.
        let relabelled = AdapterSignature {
            version: "9.9.9".into(),
            ..sig.clone()
        };
        assert_eq!(check(WASM, Some(&relabelled)), Err("bad-signature"));
        let garbled = AdapterSignature {
            signature: "zz".into(),
            ..sig
        };
        assert_eq!(check(WASM, Some(&garbled)), Err("bad-signature"));
    }

    #[test]
    fn allow_unsigned_lets_only_unsigned_components_through() {
        let key = PublisherKey::generate();
        let t = Trust::new(vec![key.public()], true);
        assert_eq!(t.check("tax", WASM, None, "-"), Ok(None));
        let stranger = PublisherKey::generate().sign("tax", "1", WASM);
        assert!(t.check("tax", WASM, Some(&stranger), "-").is_err());
    }

    #[test]
    fn keys_and_signatures_round_trip_through_their_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (k, p) = (dir.path().join("p.key"), dir.path().join("p.pub"));
        let key = PublisherKey::generate();
        key.write(&k, &p).expect("write");
        assert!(matches!(key.write(&k, &p), Err(KeyError::Exists { .. })));
        let again = PublisherKey::read(&k).expect("read key");
        assert_eq!(again.public(), read_public_key(&p).expect("read pub"));
        let sig = again.sign("tax", "1", WASM);
        let parsed = AdapterSignature::parse(&sig.to_text()).expect("parse");
        assert_eq!(parsed, sig);
        assert!(AdapterSignature::parse("{}").is_err());
        let missing = dir.path().join("none.sig");
        assert_eq!(AdapterSignature::read(&missing).ok(), Some(None));
    }
}
