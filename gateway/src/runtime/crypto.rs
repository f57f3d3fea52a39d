//! Secrets used without being seen, and randomness: the `secrets` (1.0),
//! `crypto` and `random` (1.1) host interfaces.
//!
//! Why the host hashes: a ministry that wants a WS-Security PasswordDigest
//! (`Base64(SHA-1(nonce ‖ created ‖ password))`) or an HMAC signature needs
//! the password or key inside the hash. If the adapter computed it, the
//! secret would have to cross into the guest, where a compromised or buggy
//! adapter could log it or send it elsewhere in its network. So the adapter
//! hands the host a list of parts, some of them secret *names*; the host
//! puts each secret's value in place, hashes, and returns only the digest.
//! The value never enters guest memory, the trace, or a log.
//!
//! Why randomness is the host's: nonces must be unpredictable in service,
//! and reproducible in fixture tests so a recorded request (nonce, digest)
//! compares equal run after run. [`RandomSource`] is the seam: the system
//! generator for the gateway, [`SeededRandom`] (one fresh seed per fixture)
//! for the harness.

use super::bindings::yiwang::adapter::{crypto, random, secrets};
use super::host::{HostState, SecretError};
use super::random::MAX_RANDOM_BYTES;
use hmac::digest::{Digest, KeyInit, Update};
use hmac::{Hmac, Mac};
use std::collections::BTreeMap;

/// The most input bytes one `digest` or `hmac` call hashes (the secrets'
/// values included): enough for any signature base string, small enough
/// that hashing stays a sliver of a call's CPU time.
pub const MAX_CRYPTO_INPUT: usize = 1 << 20;

/// Why a digest or HMAC could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no secret named `{name}` for this network")]
    UnknownSecret { name: String },
    #[error("the parts add up to more than {limit} bytes")]
    TooLarge { limit: usize },
}

impl From<CryptoError> for crypto::CryptoError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::UnknownSecret { name } => crypto::CryptoError::UnknownSecret(name),
            CryptoError::TooLarge { limit } => crypto::CryptoError::TooLarge(limit as u64),
        }
    }
}

/// The parts' bytes in order, each secret's value put in place.
fn assemble(
    parts: &[crypto::Part],
    secrets: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::new();
    for part in parts {
        let bytes = match part {
            crypto::Part::Bytes(b) => b.as_slice(),
            crypto::Part::Secret(name) => secrets
                .get(name)
                .ok_or_else(|| CryptoError::UnknownSecret { name: name.clone() })?
                .as_bytes(),
        };
        if out.len() + bytes.len() > MAX_CRYPTO_INPUT {
            return Err(CryptoError::TooLarge {
                limit: MAX_CRYPTO_INPUT,
            });
        }
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// The digest of `input` under `algorithm`.
pub fn digest(algorithm: crypto::Algorithm, input: &[u8]) -> Vec<u8> {
    use crypto::Algorithm as A;
    match algorithm {
        A::Sha1 => sha1::Sha1::digest(input).to_vec(),
        A::Sha256 => sha2::Sha256::digest(input).to_vec(),
        A::Sm3 => sm3::Sm3::digest(input).to_vec(),
    }
}

/// The HMAC of `input` keyed with `key` under `algorithm` (any key length).
pub fn hmac(algorithm: crypto::Algorithm, key: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit + Update>(key: &[u8], input: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of every length (long ones are hashed first).
        let mut mac = <M as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        Mac::update(&mut mac, input);
        mac.finalize().into_bytes().to_vec()
    }
    use crypto::Algorithm as A;
    match algorithm {
        A::Sha1 => run::<Hmac<sha1::Sha1>>(key, input),
        A::Sha256 => run::<Hmac<sha2::Sha256>>(key, input),
        A::Sm3 => run::<Hmac<sm3::Sm3>>(key, input),
    }
}

impl HostState {
    fn secret_value(&self, name: &str) -> Result<&str, CryptoError> {
        self.sandbox()
            .secrets
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| CryptoError::UnknownSecret {
                name: name.to_string(),
            })
    }
}

impl crypto::Host for HostState {
    fn digest(
        &mut self,
        algorithm: crypto::Algorithm,
        parts: Vec<crypto::Part>,
    ) -> wasmtime::Result<Result<Vec<u8>, crypto::CryptoError>> {
        Ok(assemble(&parts, &self.sandbox().secrets)
            .map(|input| digest(algorithm, &input))
            .map_err(Into::into))
    }

    fn hmac(
        &mut self,
        algorithm: crypto::Algorithm,
        key_secret: String,
        parts: Vec<crypto::Part>,
    ) -> wasmtime::Result<Result<Vec<u8>, crypto::CryptoError>> {
        let result = self.secret_value(&key_secret).and_then(|key| {
            let input = assemble(&parts, &self.sandbox().secrets)?;
            Ok(hmac(algorithm, key.as_bytes(), &input))
        });
        Ok(result.map_err(Into::into))
    }
}

impl secrets::Host for HostState {
    fn hmac_sha256(
        &mut self,
        secret: String,
        message: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let result = match self.secret_value(&secret) {
            Ok(key) => Ok(hmac(crypto::Algorithm::Sha256, key.as_bytes(), &message)),
            Err(_) => Err(SecretError::Unknown { name: secret }.to_string()),
        };
        Ok(result)
    }
}

impl random::Host for HostState {
    fn random_bytes(&mut self, n: u32) -> wasmtime::Result<Result<Vec<u8>, u32>> {
        if n > MAX_RANDOM_BYTES {
            return Ok(Err(MAX_RANDOM_BYTES));
        }
        let mut out = vec![0; n as usize];
        self.services().random.fill(&mut out);
        Ok(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use crypto::{Algorithm, Part};

    fn secrets() -> BTreeMap<String, String> {
        BTreeMap::from([("password".to_string(), "IloveDogs".to_string())])
    }

    /// The OASIS example's inputs give this PasswordDigest (computed
    /// independently with Python's hashlib), the password put in place by
    /// the host.
    #[test]
    fn a_password_digest_is_computed_with_the_secret_in_place() {
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("WScqanjCEAC4mQoBE07sAQ==")
            .expect("nonce");
        let parts = [
            Part::Bytes(nonce),
            Part::Bytes(b"2003-07-16T01:24:32Z".to_vec()),
            Part::Secret("password".into()),
        ];
        let input = assemble(&parts, &secrets()).expect("assembled");
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest(Algorithm::Sha1, &input));
        assert_eq!(b64, "cywFYG+KaPMK3PCWR+m+DWtqzac=");
    }

    #[test]
    fn unknown_secrets_and_oversized_input_are_refused() {
        let unknown = assemble(&[Part::Secret("nope".into())], &secrets());
        assert_eq!(
            unknown,
            Err(CryptoError::UnknownSecret {
                name: "nope".into()
            })
        );
        let big = vec![Part::Bytes(vec![0; MAX_CRYPTO_INPUT]), Part::Bytes(vec![1])];
        assert_eq!(
            assemble(&big, &secrets()),
            Err(CryptoError::TooLarge {
                limit: MAX_CRYPTO_INPUT
            })
        );
    }

    /// Known answers: SHA-256 and SM3 of "abc" (FIPS 180-2, GB/T 32905
    /// appendix A), HMAC-SHA256 from RFC 4231 test case 2.
    #[test]
    fn every_algorithm_gives_its_known_answer() {
        assert_eq!(
            hex::encode(digest(Algorithm::Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(digest(Algorithm::Sm3, b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(digest(Algorithm::Sha1, b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(hmac(
                Algorithm::Sha256,
                b"Jefe",
                b"what do ya want for nothing?"
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
