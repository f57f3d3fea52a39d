//! What is recorded: the [`Entry`] the gateway hands in, the [`Record`]
//! line read back, and the [`Kind`]s of record (kebab-case on disk, in
//! `yiwang audit export --kind` and in `GET /admin/audit?kind=`).

use crate::config::BodyCipher;
use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};

/// What a record is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    EnumIter,
    EnumString,
    IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = UnknownKind,
    parse_err_fn = UnknownKind::named
)]
pub enum Kind {
    /// A case entered through intake.
    Intake,
    /// A case changed (status, correction, withdrawal).
    Change,
    /// Case data read (admin API, queries).
    Read,
    /// A ministry network called back.
    Callback,
    /// An adapter call towards a network (request and response).
    AdapterCall,
    /// An outbound delivery attempt.
    Outbound,
    /// A result brought back from a network.
    Backflow,
    /// An administrative action (queue repair, config reload).
    Admin,
    /// A request refused for lack of authority.
    Denial,
    /// A TLS handshake refused (unknown or revoked peer).
    TlsRefused,
    /// A request refused at a listener limit (slow body, a principal's
    /// share of the listener, body size).
    Limit,
    /// A security alert.
    Alert,
    /// A signed checkpoint (written by the log itself).
    Checkpoint,
    /// A torn tail cut off at open (written by the log itself).
    Recovered,
    /// Open found the existing chain broken (written by the log itself).
    ChainBreakFound,
    /// The signing key changed (written by the log itself).
    KeyChange,
    /// Retention deleted old segments (written by the log itself).
    Prune,
    /// The log was opened (written by the log itself).
    Start,
    /// The log was closed cleanly (written by the log itself).
    Stop,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A kind name that is none of [`Kind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {name:?} (one of {})", Kind::iter().map(Kind::as_str).collect::<Vec<_>>().join(", "))]
pub struct UnknownKind {
    pub name: String,
}

impl UnknownKind {
    pub(crate) fn named(name: &str) -> Self {
        UnknownKind {
            name: name.to_string(),
        }
    }
}

/// One body crossing the gateway (a request, a response, an intake form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// `request`, `response`, `intake`, …
    pub label: String,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn new(label: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Body {
            label: label.into(),
            bytes: bytes.into(),
        }
    }
}

/// What the gateway asks to be recorded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// Who: the authenticated client, operator, or network peer.
    pub principal: Option<String>,
    /// The unified case id.
    pub case: Option<String>,
    /// The ministry network.
    pub network: Option<String>,
    /// Free JSON; an empty object by default.
    pub detail: serde_json::Value,
    /// Bodies: always digested, kept (encrypted) only with `keep-bodies`.
    pub bodies: Vec<Body>,
}

impl Entry {
    pub fn new(kind: Kind) -> Self {
        Entry {
            kind,
            principal: None,
            case: None,
            network: None,
            detail: serde_json::Value::Object(serde_json::Map::new()),
            bodies: Vec::new(),
        }
    }

    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    pub fn case(mut self, case: impl Into<String>) -> Self {
        self.case = Some(case.into());
        self
    }

    pub fn network(mut self, network: impl Into<String>) -> Self {
        self.network = Some(network.into());
        self
    }

    /// The case and network the record is about, where known.
    pub fn about(mut self, case: Option<&str>, network: Option<&str>) -> Self {
        self.case = case.map(str::to_string).or(self.case);
        self.network = network.map(str::to_string).or(self.network);
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn body(mut self, label: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.bodies.push(Body::new(label, bytes));
        self
    }
}

/// One line of the trail, as read back (see the module docs for the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339 with milliseconds and offset.
    #[serde(with = "at_format")]
    pub at: chrono::DateTime<chrono::FixedOffset>,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
    #[serde(default)]
    pub bodies: Vec<BodyRecord>,
    /// Hex of the previous record's hash (written after the body, see the
    /// module docs; empty while a record is being built).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev: String,
    /// Hex of this record's hash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// A body as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRecord {
    pub label: String,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// With `keep-bodies`: the AEAD used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<BodyCipher>,
    /// With `keep-bodies`: base64 of the 96-bit nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// With `keep-bodies`: base64 of the ciphertext and tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

mod at_format {
    use chrono::{DateTime, FixedOffset, SecondsFormat};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, false))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}
