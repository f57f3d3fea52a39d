//! Bodies: always digested; with `keep-bodies`, sealed with an AEAD bound to
//! their record (AAD `yiwang-audit-body\0<seq>\0<label>`).

use crate::chain::read_hex32;
use crate::{AuditConfig, AuditError, Body, BodyCipher, BodyRecord, Record};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::Digest;

type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

/// The body key and cipher of a log that keeps bodies.
#[derive(Clone)]
pub(crate) struct BodyKey {
    pub cipher: BodyCipher,
    pub key: [u8; 32],
}

impl std::fmt::Debug for BodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyKey")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

fn aad(seq: u64, label: &str) -> Vec<u8> {
    format!("yiwang-audit-body\0{seq}\0{label}").into_bytes()
}

/// SM4 takes 128 bits: the first 16 bytes of SM3("yiwang-audit-sm4-key\0" ‖ key).
fn sm4_key(key: &[u8; 32]) -> [u8; 16] {
    let mut h = sm3::Sm3::new();
    h.update(b"yiwang-audit-sm4-key\0");
    h.update(key);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn seal(
    cipher: BodyCipher,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, AuditError> {
    let payload = Payload { msg, aad };
    let nonce = Nonce::from_slice(nonce);
    let sealed = match cipher {
        BodyCipher::Aes256Gcm => Aes256Gcm::new(key.into()).encrypt(nonce, payload),
        BodyCipher::Sm4Gcm => Sm4Gcm::new(&sm4_key(key).into()).encrypt(nonce, payload),
    };
    sealed.map_err(|_| AuditError::Body("encryption failed".into()))
}

fn open(
    cipher: BodyCipher,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, AuditError> {
    let payload = Payload { msg, aad };
    let nonce = Nonce::from_slice(nonce);
    let opened = match cipher {
        BodyCipher::Aes256Gcm => Aes256Gcm::new(key.into()).decrypt(nonce, payload),
        BodyCipher::Sm4Gcm => Sm4Gcm::new(&sm4_key(key).into()).decrypt(nonce, payload),
    };
    opened.map_err(|_| {
        AuditError::Body("decryption failed (wrong key or cipher, or the body was changed)".into())
    })
}

/// Describe (and with a key, seal) the bodies of record `seq`.
pub(crate) fn record_bodies(
    seq: u64,
    bodies: &[Body],
    key: Option<&BodyKey>,
) -> Result<Vec<BodyRecord>, AuditError> {
    bodies
        .iter()
        .map(|b| {
            let mut rec = BodyRecord {
                label: b.label.clone(),
                sha256: hex::encode(sha2::Sha256::digest(&b.bytes)),
                size: b.bytes.len() as u64,
                cipher: None,
                nonce: None,
                data: None,
            };
            if let Some(k) = key {
                let nonce: [u8; 12] = rand::random();
                let sealed = seal(k.cipher, &k.key, &nonce, &aad(seq, &b.label), &b.bytes)?;
                rec.cipher = Some(k.cipher);
                rec.nonce = Some(B64.encode(nonce));
                rec.data = Some(B64.encode(sealed));
            }
            Ok(rec)
        })
        .collect()
}

/// Decrypt the kept bodies of a record, for an auditor holding the body
/// key: `(label, plaintext)` for every body that was kept, each checked
/// against its recorded SHA-256. Bodies recorded as digests only are
/// skipped; a body sealed with another cipher than `cipher` is an error.
pub fn decrypt_bodies(
    record: &Record,
    cipher: BodyCipher,
    key: &[u8; 32],
) -> Result<Vec<(String, Vec<u8>)>, AuditError> {
    let mut out = Vec::new();
    for b in &record.bodies {
        let Some(data) = &b.data else { continue };
        let what =
            |m: &str| AuditError::Body(format!("seq {} body {:?}: {m}", record.seq, b.label));
        if let Some(used) = b.cipher
            && used != cipher
        {
            return Err(what(&format!("sealed with {used}, not {cipher}")));
        }
        let nonce = b
            .nonce
            .as_deref()
            .and_then(|n| B64.decode(n).ok())
            .and_then(|n| <[u8; 12]>::try_from(n).ok())
            .ok_or_else(|| what("missing or bad nonce"))?;
        let sealed = B64.decode(data).map_err(|_| what("data is not base64"))?;
        let plain = open(cipher, key, &nonce, &aad(record.seq, &b.label), &sealed)
            .map_err(|e| what(&e.to_string()))?;
        if hex::encode(sha2::Sha256::digest(&plain)) != b.sha256 {
            return Err(what("plaintext does not match the recorded sha256"));
        }
        out.push((b.label.clone(), plain));
    }
    Ok(out)
}

/// The body key, with `keep-bodies`.
pub(crate) fn body_key(cfg: &AuditConfig) -> Result<Option<BodyKey>, AuditError> {
    if !cfg.keep_bodies {
        return Ok(None);
    }
    let path = cfg
        .body_key_file
        .as_ref()
        .ok_or_else(|| AuditError::Config("keep-bodies needs body-key-file".into()))?;
    Ok(Some(BodyKey {
        cipher: cfg.body_cipher,
        key: read_hex32(path)?,
    }))
}
