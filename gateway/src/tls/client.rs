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
//! # Stapled OCSP
//!
//! rustls asks every server to staple an OCSP response; when the ministry
//! does, it is checked after the chain ([`super::ocsp`]): a signed
//! `revoked` fails the call like a CRL entry, and a staple that is
//! malformed, not signed by the issuer or a responder it delegated, or
//! stale fails it as a refused certificate. No staple: nothing to check
//! (the gateway does not query responders itself).
//!
//! # `server-name`
//!
//! Ministry endpoints are often reached by private address (an IP or an
//! internal alias) while their certificate names the service. When
//! `server-name` is set, it — not the URL host — is sent as SNI and checked
//! against the certificate.

use super::ocsp::{self, Staple};
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
    let mut cas = Vec::new();
    for path in &cfg.ca {
        cas.extend(snapshot.certs(path, "CA")?);
    }
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
    builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(MinistryVerifier {
            inner: webpki,
            pins,
            cas,
        }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
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

/// WebPKI verification (chain to `ca`, validity, name, CRLs), then the
/// leaf key must be one of the pins if any, then a stapled OCSP response
/// must not refuse the certificate.
#[derive(Debug)]
struct MinistryVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
    /// The network's CA certificates, where a leaf's issuer may be.
    cas: Vec<CertificateDer<'static>>,
}

/// A refusal of ours surfaces as `CertificateError::Other(Refused)`; its
/// Debug is its message, since rustls prints `Other` through Debug.
struct Refused(String);

impl Refused {
    fn error(message: String) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            Refused(message),
        ))))
    }
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl MinistryVerifier {
    /// The leaf's key is pinned (when pins are configured).
    fn check_pin(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.pins.is_empty() {
            return Ok(());
        }
        let (_, x509) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let got: [u8; 32] = Sha256::digest(x509.public_key().raw).into();
        if self.pins.contains(&got) {
            Ok(())
        } else {
            Err(Refused::error(format!(
                "server public key not pinned: got sha256/{}",
                B64.encode(got)
            )))
        }
    }

    /// A stapled OCSP response does not refuse the leaf.
    fn check_staple(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        staple: &[u8],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let candidates: Vec<&CertificateDer<'_>> =
            intermediates.iter().chain(self.cas.iter()).collect();
        match ocsp::check(staple, end_entity, &candidates, now) {
            Ok(Staple::Revoked) => {
                Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
            }
            Ok(Staple::Silent | Staple::Good | Staple::Unknown) => Ok(()),
            Err(e) => Err(Refused::error(e.to_string())),
        }
    }
}

impl ServerCertVerifier for MinistryVerifier {
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
        self.check_pin(end_entity)?;
        self.check_staple(end_entity, intermediates, ocsp_response, now)?;
        Ok(verified)
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

    /// A ministry that staples: a good answer passes, a revoked one (or a
    /// forged one) fails the handshake.
    #[tokio::test]
    async fn a_stapled_ocsp_response_is_checked_in_the_handshake() {
        use crate::tls::ocsp::testing::{Spec, good, staple};
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Ministry CA");
        let server = ca.issue(&CertSpec::server("mr", &["localhost"], &[]));
        let gw = ca.issue(&CertSpec::client("gateway"));
        let (cert, key) = gw.write(dir.path(), "gw").unwrap();
        let cfg = ClientTlsConfig {
            ca: vec![ca.write(dir.path(), "ca").unwrap().0],
            cert,
            key,
            pin_sha256: vec![],
            server_name: None,
            crl: vec![],
        };
        let client = Arc::new(client_config(&cfg).unwrap());
        let handshake = |ocsp: Vec<u8>| {
            let server_cfg = stapling_server(&server, ocsp);
            let client = client.clone();
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
                tokio::spawn(async move {
                    if let Ok((tcp, _)) = listener.accept().await {
                        let _ = acceptor.accept(tcp).await;
                    }
                });
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                match tokio_rustls::TlsConnector::from(client)
                    .connect(name, tcp)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(crate::tls::find_rustls_error(&e).cloned()),
                }
            }
        };
        assert_eq!(handshake(vec![]).await, Ok(()));
        assert_eq!(handshake(staple(&server, &ca, &good(&ca))).await, Ok(()));
        let revoked = Spec {
            status: x509_ocsp::CertStatus::revoked(x509_ocsp::RevokedInfo {
                revocation_time: x509_ocsp::OcspGeneralizedTime(
                    x509_cert::der::asn1::GeneralizedTime::from_unix_duration(
                        std::time::Duration::from_secs(1_700_000_000),
                    )
                    .unwrap(),
                ),
                revocation_reason: None,
            }),
            ..good(&ca)
        };
        assert_eq!(
            handshake(staple(&server, &ca, &revoked)).await,
            Err(Some(rustls::Error::InvalidCertificate(
                CertificateError::Revoked
            )))
        );
        let impostor = Ca::new("Ministry CA");
        let forged = Spec {
            signer_key_pem: impostor.key_pem(),
            ..good(&ca)
        };
        let err = handshake(staple(&server, &ca, &forged)).await.unwrap_err();
        assert!(
            format!("{err:?}").contains("stapled OCSP response not signed"),
            "{err:?}"
        );
    }

    /// A server config that staples `ocsp` to `server`'s certificate.
    fn stapling_server(server: &yiwang_pki::Issued, ocsp: Vec<u8>) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(crate::tls::PROTOCOL_VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert_with_ocsp(vec![server.cert_der.clone()], server.key_der(), ocsp)
            .unwrap();
        Arc::new(config)
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
