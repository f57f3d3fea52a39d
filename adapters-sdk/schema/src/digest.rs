//! SHA-256 digests as one type: computed from bytes, written and read as 64 lowercase hex
//! characters, the form every Yiwang record, file name and header shows them in.
//!
//! It lives here, the lowest crate both the gateway and adapters (built for `wasm32-wasip2`)
//! depend on, so that a digest is spelled the same way on both sides of the sandbox.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The SHA-256 of some bytes. Shown (and serialized) as lowercase hex; parsed from hex of
/// either case.
///
/// ```
/// use yiwang_schema::Sha256Digest;
/// let d = Sha256Digest::of(b"");
/// assert_eq!(
///     d.to_string(),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// assert_eq!(d.to_string().parse::<Sha256Digest>(), Ok(d));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: impl AsRef<[u8]>) -> Self {
        Sha256Digest(Sha256::digest(bytes.as_ref()).into())
    }

    /// A digest already computed elsewhere, from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Sha256Digest {
    fn from(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }
}

impl AsRef<[u8]> for Sha256Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// Text that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a SHA-256 digest (64 hex characters): {0}")]
pub struct ParseDigestError(hex::FromHexError);

impl FromStr for Sha256Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(ParseDigestError)?;
        Ok(Sha256Digest(bytes))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 test vectors.
    const VECTORS: &[(&[u8], &str)] = &[
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
    ];

    #[test]
    fn shows_the_known_vectors_in_lowercase_hex() {
        for (input, want) in VECTORS {
            assert_eq!(Sha256Digest::of(input).to_string(), *want);
        }
    }

    #[test]
    fn parses_either_case_and_round_trips() {
        for (input, hex) in VECTORS {
            let d = Sha256Digest::of(input);
            assert_eq!(hex.parse::<Sha256Digest>(), Ok(d));
            assert_eq!(hex.to_uppercase().parse::<Sha256Digest>(), Ok(d));
            assert_eq!(Sha256Digest::from_bytes(*d.as_bytes()), d);
        }
    }

    #[test]
    fn refuses_what_is_not_64_hex_characters() {
        let good = VECTORS[1].1;
        for bad in [
            "",
            &good[..62],
            &format!("{good}00"),
            &format!("{}zz", &good[..62]),
            &format!("{} ", &good[..63]),
        ] {
            assert!(bad.parse::<Sha256Digest>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serializes_as_its_hex_string() {
        let d = Sha256Digest::of(b"abc");
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", VECTORS[1].1));
        let back: Sha256Digest = serde_json::from_str(&json).unwrap_or(Sha256Digest::of(b""));
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Sha256Digest>("\"abc\"").is_err());
    }
}
