//! WS-Security (OASIS 2004) `UsernameToken` headers for SOAP 1.1 networks, with a
//! PasswordDigest whose password the adapter never sees.
//!
//! `PasswordDigest = Base64(SHA-1(nonce ‖ created ‖ password))` (OASIS UsernameToken
//! Profile 1.0). The password is one of the network's secrets: the host puts it in place and
//! hashes ([`host::digest`]), the nonce comes from the host's generator
//! ([`host::random_bytes`], fixed in fixture tests), and Base64 is done here. So the request
//! carries only the digest, and it can be sent with the plain `send` — no placeholder in a
//! body that also holds case data. A service that takes only `PasswordText` (over its mutual
//! TLS) gets a `${secret:NAME}` placeholder instead, sent with `send_with_secrets`.
//!
//! The element is written for [`crate::soap::envelope_with_header`]; `created` is a UTC `Z`
//! time ([`crate::dates::utc_z`]).

use crate::AdapterError;
use crate::host::{self, Algorithm, Part};
use crate::xml::XmlWriter;
use base64::Engine as _;

/// The `wsse` namespace (WS-Security 1.0 secext).
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// The `wsu` namespace (WS-Security 1.0 utility: `Created`).
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// The `Type` of a password sent in clear (over TLS).
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
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
    crate::dates::utc_z(&host::now())
}

/// How the `Password` element's value is to be read by the ministry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordType {
    /// The password itself: a `${secret:NAME}` placeholder the host fills in.
    Text,
    /// `Base64(SHA-1(nonce ‖ created ‖ password))`, computed by the host.
    Digest,
}

impl PasswordType {
    /// The URI written in the `Type` attribute.
    pub fn uri(self) -> &'static str {
        match self {
            PasswordType::Text => PASSWORD_TEXT,
            PasswordType::Digest => PASSWORD_DIGEST,
        }
    }
}

/// A `UsernameToken`: made by [`UsernameToken::password_digest`] (or
/// [`UsernameToken::password_text`]), written by [`UsernameToken::security_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password_type: PasswordType,
    /// The digest (Base64), or the secret's placeholder for `Text`.
    pub password: String,
    /// Base64 of the nonce (a digest needs one).
    pub nonce: Option<String>,
    pub created: Option<String>,
    /// Write `soapenv:mustUnderstand="1"` on `wsse:Security` (the `soapenv` prefix of
    /// [`crate::soap::envelope_with_header`]).
    pub must_understand: bool,
}

impl UsernameToken {
    /// A PasswordDigest token: a fresh nonce, `created` from the host clock, the digest
    /// over the secret `password_secret`.
    pub fn password_digest(username: &str, password_secret: &str) -> Result<Self, AdapterError> {
        let nonce = host::random_bytes(NONCE_BYTES)?;
        let created = created_now();
        let digest = password_digest(&nonce, &created, password_secret)?;
        Ok(UsernameToken {
            username: username.to_owned(),
            password_type: PasswordType::Digest,
            password: digest,
            nonce: Some(base64(&nonce)),
            created: Some(created),
            must_understand: false,
        })
    }

    /// A PasswordText token carrying the secret `password_secret` as a placeholder: send
    /// the request with `send_with_secrets`, and only over the network's mutual TLS.
    pub fn password_text(username: &str, password_secret: &str) -> Self {
        UsernameToken {
            username: username.to_owned(),
            password_type: PasswordType::Text,
            password: host::secret_placeholder(password_secret),
            nonce: None,
            created: Some(created_now()),
            must_understand: false,
        }
    }

    /// The `wsse:Security` header element, namespaces declared on it, every value escaped.
    /// A username XML cannot carry is a configuration error (permanent).
    pub fn security_header(&self) -> Result<String, AdapterError> {
        let mut w = XmlWriter::new();
        w.start("wsse:Security")
            .attr("xmlns:wsse", WSSE_NS)
            .attr("xmlns:wsu", WSU_NS);
        if self.must_understand {
            w.attr("soapenv:mustUnderstand", "1");
        }
        w.start("wsse:UsernameToken")
            .elem("wsse:Username", &self.username)
            .start("wsse:Password")
            .attr("Type", self.password_type.uri())
            .text(&self.password)
            .end("wsse:Password");
        if let Some(nonce) = &self.nonce {
            w.start("wsse:Nonce")
                .attr("EncodingType", BASE64_BINARY)
                .text(nonce)
                .end("wsse:Nonce");
        }
        w.elem_opt("wsu:Created", self.created.as_deref());
        w.end("wsse:UsernameToken").end("wsse:Security");
        w.finish().map_err(|e| {
            crate::permanent(format!("cannot write the UsernameToken (username?): {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{self, SOAP11_NS};
    use crate::xml::XmlDoc;

    fn token(username: &str) -> UsernameToken {
        UsernameToken {
            username: username.to_owned(),
            password_type: PasswordType::Digest,
            password: "dLNoqRJag9aXSXTCXvRe9Sz6Za4=".to_owned(),
            nonce: Some(base64(&[0x59, 0x69, 0x77])),
            created: Some("2026-12-07T10:00:00Z".to_owned()),
            must_understand: false,
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
    fn a_digest_token_reads_back_in_its_namespaces_inside_an_envelope() {
        let header = UsernameToken {
            must_understand: true,
            ..token("gw<1>")
        }
        .security_header()
        .expect("writes");
        let env = soap::envelope_with_header(&header, "<q/>", &[]).expect("envelope");
        let doc = XmlDoc::parse(&env).expect("well-formed");
        let security = doc.required("Header/Security").expect("security");
        assert_eq!(security.namespace.as_deref(), Some(WSSE_NS));
        assert_eq!(security.attr("mustUnderstand"), Some("1"));
        let t = security.required("UsernameToken").expect("token");
        assert_eq!(
            t.text_of("Username"),
            Some("gw<1>"),
            "escaped and read back"
        );
        let created = t.required("Created").expect("created");
        assert_eq!(created.namespace.as_deref(), Some(WSU_NS));
        assert!(doc.is(SOAP11_NS, "Envelope"));
    }

    #[test]
    fn a_text_token_without_nonce_writes_neither_nonce_nor_must_understand() {
        let t = UsernameToken {
            password_type: PasswordType::Text,
            password: "${secret:password}".into(),
            nonce: None,
            created: None,
            ..token("u")
        };
        let header = t.security_header().expect("writes");
        assert!(header.contains(PASSWORD_TEXT), "{header}");
        for absent in ["Nonce", "Created", "mustUnderstand", PASSWORD_DIGEST] {
            assert!(!header.contains(absent), "{absent} in {header}");
        }
    }

    #[test]
    fn a_username_xml_cannot_carry_is_refused() {
        let e = token("bad\u{1}name")
            .security_header()
            .expect_err("refused");
        assert!(
            matches!(&e, AdapterError::Permanent(r) if r.message.contains("UsernameToken")),
            "{e:?}"
        );
    }
}
