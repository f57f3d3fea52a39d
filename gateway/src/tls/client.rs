//! TLS clients towards ministry networks and subscriber webhooks: one per
//! network, each with its own trust roots, client certificate, optional key
//! pins and optional server-name override.
//!
//! # Roots come only from the network's `ca`
//!
//! The system trust store is never consulted (hyper-rustls is built without
//! native or webpki roots). Ministry endpoints live on private networks
//! behind certificates from the ministry's own CA; a public CA has no say in
//! who may receive a citizen's case. Trusting exactly the ministry's CA also
//! means that a certificate wrongly issued by any other CA — public or
//! another ministry's — is refused for this network.
//!
//! # Key pins (`pin-sha256`)
//!
//! Optional. Each pin is the standard base64 of SHA-256 over the server
//! certificate's DER `SubjectPublicKeyInfo` (the format of HPKP and of
//! `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der |
//! openssl dgst -sha256 -binary | base64`), optionally prefixed `sha256/`.
//! When pins are configured the normal WebPKI verification still runs first
//! (chain to `ca`, validity, name); then the leaf's key must match one of
//! the pins. Pinning the key rather than the certificate lets the ministry
//! renew its certificate with the same key without a gateway change; list
//! the next key's pin alongside the current one before rotating.
//! [`spki_sha256_b64`] computes a pin from a certificate.
//!
//! # Revocation (`crl`)
//!
//! Optional CRL files (PEM) for the ministry's server certificate chain,
//! checked by rustls' WebPKI verifier for every certificate of the chain
//! whose issuer has a CRL configured; they are reloaded with the other
//! files. A revoked certificate fails the handshake as
//! `CertificateError::Revoked`, which the transport classes as a peer
//! rejection ("server certificate revoked", naming the network) — the
//! class of an untrusted ministry certificate, which raises the network's
//! TLS alert. The policy is the listeners' (see [`super::server`]): a
//! certificate whose issuer has no CRL configured is accepted (status
//! unknown), and a CRL past its nextUpdate stays in force with a warning.
//! Unlike the listeners, intermediates are checked too: the ministry's
//! chain is short and its CA's CRL covers the intermediates it issued.
//!
//! # Stapled OCSP is not checked
//!
//! rustls hands a verifier the OCSP response a server staples, and its
//! WebPKI verifier ignores it (rustls-webpki checks CRLs only). The RustCrypto
//! `x509-ocsp` crate parses responses but leaves the checks to its caller:
//! matching the CertID to the certificate and its issuer, the responder's
//! delegation (issued by the CA, `id-kp-OCSPSigning`), the signature and the
//! freshness window. That is security code the gateway would write by hand,
//! so it does not: stapled responses are ignored, and CRL files are the
//! revocation control. A ministry that only publishes OCSP is not checked
//! for revocation (say so in its network's review).
//!
//! # `server-name`
//!
//! Ministry endpoints are often reached by private address (an IP or an
//! internal alias) while their certificate names the service. When
//! `server-name` is set, it — not the URL host — is sent as SNI and checked
//! against the certificate.

use super::{Snapshot, TlsError, crypto_provider, root_store};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS settings towards one ministry network (`[networks.X.tls]`) or
/// subscriber; paths are resolved by the config loader.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientTlsConfig {
    /// The ministry's CA certificates (PEM) — the only trusted roots.
    pub ca: Vec<PathBuf>,
    /// The gateway's client certificate chain for this network (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Optional pins: base64 SHA-256 of the server key's SubjectPublicKeyInfo
    /// DER (optionally prefixed `sha256/`); any match passes.
    #[serde(default)]
    pub pin_sha256: Vec<String>,
    /// Name to send as SNI and verify instead of the URL host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// CRLs (PEM) for the server's certificate chain; a revoked ministry
    /// certificate fails the call as a peer rejection.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
}

impl ClientTlsConfig {
    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.ca
            .iter()
            .map(PathBuf::as_path)
            .chain([self.cert.as_path(), self.key.as_path()])
            .chain(self.crl.iter().map(PathBuf::as_path))
    }

    /// The configured server-name override, checked.
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, TlsError> {
        self.server_name
            .as_ref()
            .map(|name| {
                ServerName::try_from(name.clone()).map_err(|e| {
                    TlsError::Config(format!(
                        "server-name {name:?} is not a DNS name or IP address: {e}"
                    ))
                })
            })
            .transpose()
    }

    /// The configured pins, decoded.
    fn pins(&self) -> Result<Vec<[u8; 32]>, TlsError> {
        self.pin_sha256
            .iter()
            .map(|pin| {
                let b64 = pin.trim().strip_prefix("sha256/").unwrap_or(pin.trim());
                B64.decode(b64)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        TlsError::Config(format!(
                            "pin-sha256 {pin:?} is not the base64 of a 32-byte SHA-256 digest"
                        ))
                    })
            })
            .collect()
    }
}

/// Builds the client config for one network from its files: roots only from
/// `ca`, the client certificate, pins if any. ALPN is left empty (the HTTP
/// connector sets it).
pub fn client_config(cfg: &ClientTlsConfig) -> Result<ClientConfig, TlsError> {
    let snapshot = Snapshot::read(cfg.paths());
    build(cfg, &snapshot)
}

/// Builds from files already read (the reload path hashes the same bytes).
pub(crate) fn build(cfg: &ClientTlsConfig, snapshot: &Snapshot) -> Result<ClientConfig, TlsError> {
    let roots = root_store(snapshot, &cfg.ca, "CA")?;
    let chain = snapshot.certs(&cfg.cert, "certificate")?;
    let key = snapshot.key(&cfg.key)?;
    let pins = cfg.pins()?;
    cfg.server_name()?;
    let mut crls = Vec::new();
    for path in &cfg.crl {
        crls.extend(snapshot.crls(path)?);
    }
    let provider = crypto_provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsError::Config(format!("server verification: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;
    let builder = if pins.is_empty() {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                inner: webpki,
                pins,
            }))
    };
    builder.with_client_auth_cert(chain, key).map_err(|e| {
        TlsError::Config(format!(
            "client certificate {} with key {}: {e}",
            cfg.cert.display(),
            cfg.key.display()
        ))
    })
}

/// Base64 of SHA-256 over the certificate's SubjectPublicKeyInfo DER: the
/// value to put in `pin-sha256`. Empty if the certificate does not parse.
pub fn spki_sha256_b64(cert_der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(cert_der) {
        Ok((_, x509)) => B64.encode(Sha256::digest(x509.public_key().raw)),
        Err(_) => String::new(),
    }
}

/// WebPKI verification, then the leaf key must be one of the pins.
#[derive(Debug)]
struct PinnedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

/// The error a pin mismatch surfaces as (inside
/// `CertificateError::Other`); its Debug is its message, since rustls
/// prints `Other` through Debug.
struct NotPinned(String);

impl std::fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotPinned {}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let (_, x509) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let got: [u8; 32] = Sha256::digest(x509.public_key().raw).into();
        if self.pins.contains(&got) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(NotPinned(format!(
                    "server public key not pinned: got sha256/{}",
                    B64.encode(got)
                )))),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yiwang_pki::{Ca, CertSpec};

    #[test]
    fn config_deserializes_kebab_case_and_refuses_unknown_fields() {
        let cfg: ClientTlsConfig = toml::from_str(
            r#"
            ca = ["/etc/yiwang/mr-ca.pem"]
            cert = "/etc/yiwang/gw-mr.pem"
            key = "/etc/yiwang/gw-mr.key"
            pin-sha256 = ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
            server-name = "mr.zwfw.internal"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.server_name.as_deref(), Some("mr.zwfw.internal"));
        assert_eq!(cfg.pins().unwrap(), vec![[0u8; 32]]);
        assert!(
            toml::from_str::<ClientTlsConfig>("ca = []\ncert = \"a\"\nkey = \"b\"\nroots = []")
                .is_err()
        );
    }

    #[test]
    fn spki_pin_is_sha256_of_the_subject_public_key_info() {
        let ca = Ca::new("Ministry CA");
        let leaf = ca.issue(&CertSpec::server("mr", &["mr.zwfw.internal"], &[]));
        let expected = B64.encode(Sha256::digest(leaf.spki_der()));
        assert_eq!(spki_sha256_b64(leaf.cert_der.as_ref()), expected);
        assert_eq!(spki_sha256_b64(b"not a certificate"), "");
    }

    #[test]
    fn bad_settings_are_refused_with_their_value() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Ministry CA");
        let gw = ca.issue(&CertSpec::client("gateway"));
        let (cert, key) = gw.write(dir.path(), "gw").unwrap();
        let mut cfg = ClientTlsConfig {
            ca: vec![ca.write(dir.path(), "ca").unwrap().0],
            cert,
            key,
            pin_sha256: vec![],
            server_name: None,
            crl: vec![],
        };
        client_config(&cfg).unwrap();

        cfg.pin_sha256 = vec!["c2hvcnQ=".into()];
        let err = client_config(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("\"c2hvcnQ=\"") && err.contains("32-byte"),
            "{err}"
        );

        cfg.pin_sha256 = vec![];
        cfg.server_name = Some("not a name!".into());
        let err = client_config(&cfg).unwrap_err().to_string();
        assert!(err.starts_with("server-name \"not a name!\""), "{err}");

        cfg.server_name = None;
        let key_as_ca = dir.path().join("key-as-ca.pem");
        std::fs::write(&key_as_ca, &gw.key_pem).unwrap();
        cfg.ca = vec![key_as_ca];
        let err = client_config(&cfg).unwrap_err().to_string();
        assert!(err.ends_with("key-as-ca.pem holds no certificate"), "{err}");
    }
}
