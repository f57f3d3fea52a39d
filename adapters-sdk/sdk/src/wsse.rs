//! WS-Security (OASIS 2004) `UsernameToken` headers for SOAP 1.1 networks: pure string
//! building, no crypto.
//!
//! Why no digest here: a `PasswordDigest` is `Base64(SHA-1(nonce ‖ created ‖ password))`, and
//! the password is a secret the adapter never sees. The host computes the digest over secret
//! placeholders (see [`crate::host`]); this module only writes the element around whatever
//! value it is given — a digest, a `${secret:NAME}` placeholder for `PasswordText`, or a
//! fixture's constant. `created` is a UTC `Z` timestamp ([`crate::dates::utc_z`]).

use crate::xml::{XmlError, XmlWriter};

/// The `wsse` namespace (WS-Security 1.0 secext).
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// The `wsu` namespace (WS-Security 1.0 utility: `Created`).
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// The `Type` of a password sent in clear (over TLS).
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
/// The `Type` of a password digest.
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
/// The `EncodingType` of a base64 nonce.
pub const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// How the `Password` element's value is to be read by the ministry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordType {
    /// The password itself (normally a `${secret:NAME}` placeholder the host fills in).
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

/// The parts of a `UsernameToken`. `nonce` (base64) and `created` are optional in the
/// profile, but a digest is meaningless without them and most services demand both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsernameToken<'a> {
    /// `wsse:Username` (may be a secret placeholder).
    pub username: &'a str,
    /// The `Type` of `wsse:Password`.
    pub password_type: PasswordType,
    /// The value of `wsse:Password`: a placeholder, or a digest computed by the host.
    pub password: &'a str,
    /// `wsse:Nonce`, already base64.
    pub nonce_b64: Option<&'a str>,
    /// `wsu:Created`, e.g. `2026-12-07T10:00:00Z`.
    pub created: Option<&'a str>,
    /// Write `soapenv:mustUnderstand="1"` on `wsse:Security` (the `soapenv` prefix of
    /// [`crate::soap::envelope_with_header`]).
    pub must_understand: bool,
}

impl UsernameToken<'_> {
    /// The `<wsse:Security>` element, to pass as the header of
    /// [`crate::soap::envelope_with_header`]. Values are escaped.
    ///
    /// ```
    /// use yiwang_adapter_sdk::wsse::{PasswordType, UsernameToken};
    /// let header = UsernameToken {
    ///     username: "u", password_type: PasswordType::Text, password: "${secret:password}",
    ///     nonce_b64: None, created: Some("2026-12-07T10:00:00Z"), must_understand: false,
    /// }.header().unwrap();
    /// assert!(header.contains("<wsse:Username>u</wsse:Username>"));
    /// assert!(header.contains("#PasswordText\">${secret:password}</wsse:Password>"));
    /// ```
    pub fn header(&self) -> Result<String, XmlError> {
        let mut w = XmlWriter::new();
        w.start("wsse:Security")
            .attr("xmlns:wsse", WSSE_NS)
            .attr("xmlns:wsu", WSU_NS);
        if self.must_understand {
            w.attr("soapenv:mustUnderstand", "1");
        }
        w.start("wsse:UsernameToken")
            .elem("wsse:Username", self.username)
            .start("wsse:Password")
            .attr("Type", self.password_type.uri())
            .text(self.password)
            .end("wsse:Password");
        if let Some(nonce) = self.nonce_b64 {
            w.start("wsse:Nonce")
                .attr("EncodingType", BASE64_BINARY)
                .text(nonce)
                .end("wsse:Nonce");
        }
        w.elem_opt("wsu:Created", self.created);
        w.end("wsse:UsernameToken").end("wsse:Security");
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{self, SOAP11_NS};
    use crate::xml::XmlDoc;

    fn digest_token() -> UsernameToken<'static> {
        UsernameToken {
            username: "gw<1>",
            password_type: PasswordType::Digest,
            password: "8k3Q+Zx/Ab0=",
            nonce_b64: Some("bm9uY2U="),
            created: Some("2026-12-07T10:00:00Z"),
            must_understand: true,
        }
    }

    #[test]
    fn a_digest_token_carries_type_nonce_and_created_in_their_namespaces() {
        let header = digest_token().header().expect("writes");
        let env = soap::envelope_with_header(&header, "<q/>", &[]).expect("envelope");
        let doc = XmlDoc::parse(&env).expect("well-formed");
        let security = doc.required("Header/Security").expect("security");
        assert_eq!(security.namespace.as_deref(), Some(WSSE_NS));
        assert_eq!(security.attr("mustUnderstand"), Some("1"));
        let token = security.required("UsernameToken").expect("token");
        assert_eq!(
            token.text_of("Username"),
            Some("gw<1>"),
            "escaped and read back"
        );
        let password = token.required("Password").expect("password");
        assert_eq!(password.attr("Type"), Some(PASSWORD_DIGEST));
        assert_eq!(password.text(), "8k3Q+Zx/Ab0=");
        let nonce = token.required("Nonce").expect("nonce");
        assert_eq!(nonce.attr("EncodingType"), Some(BASE64_BINARY));
        assert_eq!(nonce.text(), "bm9uY2U=");
        let created = token.required("Created").expect("created");
        assert_eq!(created.namespace.as_deref(), Some(WSU_NS));
        assert_eq!(created.text(), "2026-12-07T10:00:00Z");
        assert!(doc.is(SOAP11_NS, "Envelope"));
    }

    #[test]
    fn a_text_token_without_nonce_writes_neither_nonce_nor_must_understand() {
        let token = UsernameToken {
            password_type: PasswordType::Text,
            nonce_b64: None,
            created: None,
            must_understand: false,
            ..digest_token()
        };
        let header = token.header().expect("writes");
        assert!(header.contains(PASSWORD_TEXT), "{header}");
        for absent in ["Nonce", "Created", "mustUnderstand", PASSWORD_DIGEST] {
            assert!(!header.contains(absent), "{absent} in {header}");
        }
    }
}
