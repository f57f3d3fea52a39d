//! rustls configurations for test clients and servers, always with the ring provider (never
//! a process-wide default) and TLS 1.2 and 1.3 only.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};

/// The protocol versions every configuration here allows.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ring crypto provider, for building configurations and verifiers.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM text (an error when there is none).
pub fn certs_from_pem(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
    anyhow::ensure!(!certs.is_empty(), "no CERTIFICATE in the PEM text");
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM text.
pub fn key_from_pem(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("private key PEM: {e}"))
}

/// Every CRL in a PEM text (an error when there is none).
pub fn crls_from_pem(pem: &str) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("CRL PEM: {e}"))?;
    anyhow::ensure!(!crls.is_empty(), "no X509 CRL in the PEM text");
    Ok(crls)
}

/// A trust store of every certificate in `ca_pems`.
pub fn root_store(ca_pems: &[&str]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for pem in ca_pems {
        for cert in certs_from_pem(pem)? {
            roots.add(cert).context("adding a trust anchor")?;
        }
    }
    anyhow::ensure!(!roots.is_empty(), "no trust anchor given");
    Ok(roots)
}

/// A verifier of client certificates issued by `ca_pems`, refusing anyone without one. With
/// CRLs, every client certificate's revocation status must be known: give a CRL for each
/// CA (an empty one for a CA that revoked nothing).
pub fn client_verifier(
    ca_pems: &[&str],
    crl_pems: &[&str],
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut crls = Vec::new();
    for pem in crl_pems {
        crls.extend(crls_from_pem(pem)?);
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca_pems)?), provider())
        .with_crls(crls)
        .build()
        .context("building the client certificate verifier")
}

/// A verifier of server certificates issued by `ca_pems`.
pub fn server_verifier(ca_pems: &[&str]) -> anyhow::Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(ca_pems)?), provider())
        .build()
        .context("building the server certificate verifier")
}

/// An mTLS client: trusts servers issued by `ca_pems`, presents `cert_pem` (leaf first, then
/// any intermediates) with `key_pem`.
pub fn client_config(
    ca_pems: &[&str],
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<ClientConfig> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("protocol versions")?
        .with_root_certificates(root_store(ca_pems)?)
        .with_client_auth_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)
        .context("client certificate and key")
}

/// A client that trusts servers issued by `ca_pems` and has no certificate to present (what
/// an mTLS server must refuse).
pub fn client_config_without_cert(ca_pems: &[&str]) -> anyhow::Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("protocol versions")?
        .with_root_certificates(root_store(ca_pems)?)
        .with_no_client_auth())
}

/// A server presenting `cert_pem` with `key_pem`. With `client_ca_pem` it requires a client
/// certificate issued by that CA (the handshake fails without one); with `None` it asks for
/// none.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> anyhow::Result<ServerConfig> {
    match client_ca_pem {
        Some(ca) => server_config_with_verifier(cert_pem, key_pem, client_verifier(&[ca], &[])?),
        None => {
            server_config_with_verifier(cert_pem, key_pem, WebPkiClientVerifier::no_client_auth())
        }
    }
}

/// A server presenting `cert_pem` with `key_pem`, checking clients with `verifier` (e.g.
/// [`client_verifier`] with CRLs).
pub fn server_config_with_verifier(
    cert_pem: &str,
    key_pem: &str,
    verifier: Arc<dyn ClientCertVerifier>,
) -> anyhow::Result<ServerConfig> {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .context("protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)
        .context("server certificate and key")
}

/// What an in-memory [`handshake`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The common name of the certificate the client presented, as the server saw it.
    pub client_cn: Option<String>,
    /// The common name of the server's certificate, as the client saw it.
    pub server_cn: Option<String>,
    pub protocol: Option<rustls::ProtocolVersion>,
}

/// Which side of an in-memory [`handshake`] gave up, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeError {
    /// `"client"` or `"server"`.
    pub side: &'static str,
    pub error: rustls::Error,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} refused the handshake: {}", self.side, self.error)
    }
}

impl std::error::Error for HandshakeError {}

/// Run a full TLS handshake between `client` and `server` in memory (no sockets), the client
/// expecting `server_name` (a DNS name or an IP address). Errors say which side refused:
/// with TLS 1.3 a refused client certificate is the server's refusal after the client
/// already considered itself connected.
pub fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    server_name: &str,
) -> Result<Handshake, HandshakeError> {
    let client_err = |error| HandshakeError {
        side: "client",
        error,
    };
    let server_err = |error| HandshakeError {
        side: "server",
        error,
    };
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| client_err(rustls::Error::General(format!("server name: {e}"))))?;
    let mut c = ClientConnection::new(client, name).map_err(client_err)?;
    let mut s = ServerConnection::new(server).map_err(server_err)?;
    // Each round moves everything pending in both directions; a handshake takes a few.
    for _ in 0..16 {
        let to_server = drain(|buf| c.write_tls(buf));
        feed(&to_server, |rd| {
            s.read_tls(rd).map_err(io_error)?;
            s.process_new_packets().map(drop)
        })
        .map_err(server_err)?;
        let to_client = drain(|buf| s.write_tls(buf));
        feed(&to_client, |rd| {
            c.read_tls(rd).map_err(io_error)?;
            c.process_new_packets().map(drop)
        })
        .map_err(client_err)?;
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            let cn = |certs: Option<&[CertificateDer<'static>]>| {
                certs
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| crate::common_name(leaf))
            };
            return Ok(Handshake {
                client_cn: cn(s.peer_certificates()),
                server_cn: cn(c.peer_certificates()),
                protocol: c.protocol_version(),
            });
        }
    }
    Err(client_err(rustls::Error::General(
        "handshake did not finish".to_owned(),
    )))
}

fn drain(mut write: impl FnMut(&mut Vec<u8>) -> std::io::Result<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail; 0 means nothing is pending.
    while let Ok(n) = write(&mut out) {
        if n == 0 {
            break;
        }
    }
    out
}

/// Hand `data` to a connection (`read_and_process` reads some of it and processes it).
fn feed(
    mut data: &[u8],
    mut read_and_process: impl FnMut(&mut &[u8]) -> Result<(), rustls::Error>,
) -> Result<(), rustls::Error> {
    while !data.is_empty() {
        read_and_process(&mut data)?;
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> rustls::Error {
    rustls::Error::General(format!("reading TLS: {e}"))
}
