//! WS-Security UsernameToken with a PasswordDigest whose password the
//! adapter never sees.
//!
//! `PasswordDigest = Base64(SHA-1(nonce ‖ created ‖ password))` (OASIS
//! UsernameToken Profile 1.0). The password is one of the network's
//! secrets: the host puts it in place and hashes ([`host::digest`]), the
//! nonce comes from the host's generator ([`host::random_bytes`], fixed in
//! fixture tests), and Base64 is done here. So the request carries only the
//! digest, and it can be sent with the plain `send` — no placeholder in a
//! body that also holds case data.

use crate::AdapterError;
use crate::host::{self, Algorithm, Part};
use base64::Engine as _;

const OASIS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss";
/// The `Type` of a `wsse:Password` holding a digest.
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
/// The `EncodingType` of a Base64 `wsse:Nonce`.
pub const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
/// Bytes of a fresh nonce.
pub const NONCE_BYTES: u32 = 16;

/// Base64 (standard alphabet, padded), as WS-Security writes nonces and digests.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Base64(SHA-1(nonce ‖ created ‖ password))`, the password being the
/// network's secret `password_secret`, hashed by the host.
pub fn password_digest(
    nonce: &[u8],
    created: &str,
    password_secret: &str,
) -> Result<String, AdapterError> {
    let parts = [
        Part::Bytes(nonce.to_vec()),
        Part::Bytes(created.as_bytes().to_vec()),
        Part::Secret(password_secret.to_owned()),
    ];
    Ok(base64(&host::digest(Algorithm::Sha1, &parts)?))
}

/// The host clock as WS-Security's `wsu:Created`: UTC with a `Z`.
pub fn created_now() -> String {
    host::now()
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A UsernameToken with a PasswordDigest: a fresh nonce, `created` from
/// the host clock, the digest over the secret `password_secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    /// Base64 of the nonce.
    pub nonce: String,
    pub created: String,
    /// Base64 of the digest.
    pub digest: String,
}

impl UsernameToken {
    pub fn password_digest(username: &str, password_secret: &str) -> Result<Self, AdapterError> {
        let nonce = host::random_bytes(NONCE_BYTES)?;
        let created = created_now();
        let digest = password_digest(&nonce, &created, password_secret)?;
        Ok(UsernameToken {
            username: username.to_owned(),
            nonce: base64(&nonce),
            created,
            digest,
        })
    }

    /// The `wsse:Security` header element, namespaces declared on it; the
    /// username escaped (nonce, created and digest are Base64 and a time).
    /// A username XML cannot carry is a configuration error (permanent).
    pub fn security_header(&self) -> Result<String, AdapterError> {
        let user = crate::xml::escape(&self.username, false).map_err(|(at, c)| {
            crate::permanent(format!(
                "username: character {c:?} at {at} cannot be written in XML"
            ))
        })?;
        Ok(format!(
            r#"<wsse:Security xmlns:wsse="{OASIS}-wssecurity-secext-1.0.xsd" xmlns:wsu="{OASIS}-wssecurity-utility-1.0.xsd"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username><wsse:Password Type="{PASSWORD_DIGEST}">{}</wsse:Password><wsse:Nonce EncodingType="{BASE64_BINARY}">{}</wsse:Nonce><wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>"#,
            self.digest, self.nonce, self.created
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(username: &str) -> UsernameToken {
        UsernameToken {
            username: username.to_owned(),
            nonce: base64(&[0x59, 0x69, 0x77]),
            created: "2026-12-07T10:00:00Z".to_owned(),
            digest: "dLNoqRJag9aXSXTCXvRe9Sz6Za4=".to_owned(),
        }
    }

    #[test]
    fn the_header_carries_digest_nonce_and_created_and_escapes_the_username() {
        let header = token("a<b&c").security_header().expect("header");
        assert!(
            header.contains("<wsse:Username>a&lt;b&amp;c</wsse:Username>"),
            "{header}"
        );
        assert!(
            header.contains(&format!(
                r#"<wsse:Password Type="{PASSWORD_DIGEST}">dLNoqRJag9aXSXTCXvRe9Sz6Za4=</wsse:Password>"#
            )),
            "{header}"
        );
        assert!(
            header.contains(&format!(
                r#"<wsse:Nonce EncodingType="{BASE64_BINARY}">WWl3</wsse:Nonce>"#
            )),
            "{header}"
        );
        assert!(header.contains("<wsu:Created>2026-12-07T10:00:00Z</wsu:Created>"));
        assert!(!header.contains("PasswordText"));
    }

    #[test]
    fn a_username_xml_cannot_carry_is_refused() {
        let e = token("bad\u{1}name")
            .security_header()
            .expect_err("refused");
        assert!(
            matches!(&e, AdapterError::Permanent(r) if r.message.contains("username")),
            "{e:?}"
        );
    }
}
