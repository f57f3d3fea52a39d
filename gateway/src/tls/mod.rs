//! Mutually authenticated TLS for every connection in and out of the gateway.
//!
//! [`server`] terminates TLS on the gateway's listeners and requires a client
//! certificate from every caller; [`client`] builds one TLS client per
//! ministry network (and per subscriber webhook), each with its own roots,
//! client certificate, optional key pin and optional server-name override.
//! [`crate::transport::GatewayTransport`] puts the clients to work.
//!
//! # Choices common to both sides
//!
//! * **Crypto provider.** Always rustls' *ring* provider, passed explicitly to
//!   every config builder ([`crypto_provider`]). Nothing here reads or
//!   installs a process-wide default provider, so the behaviour cannot change
//!   with what another crate in the process happens to install.
//! * **Versions.** TLS 1.3 and TLS 1.2 only ([`PROTOCOL_VERSIONS`]). Older
//!   versions are refused (rustls implements none of them anyway); TLS 1.2 is
//!   kept because several ministry front ends still terminate with it.
//! * **Cipher suites.** An explicit list of AEAD suites ([`CIPHER_SUITES`]):
//!   TLS 1.3 AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305; TLS 1.2
//!   ECDHE-ECDSA / ECDHE-RSA with AES-GCM or CHACHA20-POLY1305. All are
//!   forward secret; no CBC, no RSA key exchange, no SHA-1 MACs. The list is
//!   spelled out rather than taken from the provider's defaults so that a
//!   rustls upgrade cannot silently widen it.
//! * **Files.** Certificates, keys and CRLs are PEM files, parsed with
//!   `rustls_pki_types::pem::PemObject`. Each file is read once per load into
//!   memory and both hashed (to detect change on reload) and parsed from that
//!   same buffer, so a reload never hashes one version of a file and parses
//!   another. Errors name the file and the problem.
//! * **Reload.** Files are re-read on a timer; a load that fails keeps the
//!   previous configuration in force. Configs are `Arc`s: a connection keeps
//!   the config it was established with, so swapping never drops one.

pub mod client;
pub mod server;
#[cfg(test)]
pub(crate) mod testpki;

pub use client::{ClientTlsConfig, client_config, spki_sha256_b64};
pub use server::{PeerIdentity, ServerTls, ServerTlsConfig, handshake_refusal, peer_identity};

use rustls::SupportedCipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as suite;
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS material could not be loaded or a peer certificate not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable or does not hold what it should.
    #[error("{0}")]
    File(String),
    /// The files were read but do not make a usable configuration
    /// (certificate and key do not match, a CA is not a valid trust anchor…).
    #[error("{0}")]
    Config(String),
    /// A peer certificate could not be parsed.
    #[error("cannot parse certificate: {0}")]
    Certificate(String),
}

/// TLS versions offered and accepted, newest first.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// Cipher suites offered and accepted, in preference order: AEAD only.
pub static CIPHER_SUITES: &[SupportedCipherSuite] = &[
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS13_AES_128_GCM_SHA256,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The *ring* provider restricted to [`CIPHER_SUITES`]; every config in the
/// gateway is built from it.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        ..rustls::crypto::ring::default_provider()
    })
}

/// The first `rustls::Error` in an error's source chain. `std::io::Error`
/// does not report its payload as a source (its `source()` skips to the
/// payload's own source), so each `io::Error` met on the way is opened with
/// `get_ref` — tokio-rustls wraps handshake failures in one, and
/// hyper-rustls wraps that again.
pub fn find_rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &'a (dyn std::error::Error + 'static) = inner;
            if let Some(r) = find_rustls_error(inner) {
                return Some(r);
            }
        }
        current = e.source();
    }
    None
}

/// The files of one TLS configuration, read once: their combined digest (to
/// detect change) and each file's bytes or read error.
pub(crate) struct Snapshot {
    pub(crate) digest: [u8; 32],
    files: Vec<(PathBuf, Result<Vec<u8>, String>)>,
}

impl Snapshot {
    /// Reads every file. A file that cannot be read is recorded with its
    /// error (which also enters the digest, so the same failure is
    /// recognised as unchanged).
    pub(crate) fn read<'p>(paths: impl IntoIterator<Item = &'p Path>) -> Snapshot {
        let mut hasher = Sha256::new();
        let mut files = Vec::new();
        for path in paths {
            let contents = std::fs::read(path).map_err(|e| e.to_string());
            hasher.update(path.as_os_str().as_encoded_bytes());
            hasher.update([0u8]);
            match &contents {
                Ok(bytes) => {
                    hasher.update(b"ok");
                    hasher.update((bytes.len() as u64).to_be_bytes());
                    hasher.update(bytes);
                }
                Err(e) => {
                    hasher.update(b"err");
                    hasher.update(e.as_bytes());
                }
            }
            hasher.update([0u8]);
            files.push((path.to_path_buf(), contents));
        }
        Snapshot {
            digest: hasher.finalize().into(),
            files,
        }
    }

    /// The bytes of `path`; `what` names the file's role in the error.
    pub(crate) fn bytes(&self, path: &Path, what: &str) -> Result<&[u8], TlsError> {
        match self.files.iter().find(|(p, _)| p == path) {
            Some((_, Ok(bytes))) => Ok(bytes),
            Some((_, Err(e))) => Err(TlsError::File(format!(
                "cannot read {what} file {}: {e}",
                path.display()
            ))),
            None => Err(TlsError::File(format!(
                "{what} file {} was not read",
                path.display()
            ))),
        }
    }

    /// The PEM certificates in `path` (at least one).
    pub(crate) fn certs(
        &self,
        path: &Path,
        what: &str,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.bytes(path, what)?;
        let certs = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                TlsError::File(format!(
                    "{what} file {}: bad PEM: {}",
                    path.display(),
                    pem_problem(&e)
                ))
            })?;
        if certs.is_empty() {
            return Err(TlsError::File(format!(
                "{} holds no certificate",
                path.display()
            )));
        }
        Ok(certs)
    }

    /// The private key in `path` (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn key(&self, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
        let bytes = self.bytes(path, "key")?;
        PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::File(format!(
                "{} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)",
                path.display()
            )),
            e => TlsError::File(format!(
                "key file {}: bad PEM: {}",
                path.display(),
                pem_problem(&e)
            )),
        })
    }

    /// The PEM CRLs in `path` (at least one), each checked to parse.
    pub(crate) fn crls(
        &self,
        path: &Path,
    ) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
        let bytes = self.bytes(path, "CRL")?;
        let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                TlsError::File(format!(
                    "CRL {}: bad PEM: {}",
                    path.display(),
                    pem_problem(&e)
                ))
            })?;
        if crls.is_empty() {
            return Err(TlsError::File(format!(
                "CRL {}: holds no CRL",
                path.display()
            )));
        }
        for crl in &crls {
            match x509_parser::parse_x509_crl(crl.as_ref()) {
                Ok((_, parsed)) => {
                    if let Some(next) = parsed.next_update()
                        && next.timestamp() < now_unix()
                    {
                        // Kept in force: a stale list still names the
                        // certificates revoked so far (see server docs).
                        tracing::warn!(
                            crl = %path.display(),
                            issuer = %parsed.issuer(),
                            next_update = next.timestamp(),
                            "CRL is past its nextUpdate; using it until a newer one is installed"
                        );
                    }
                }
                Err(e) => {
                    return Err(TlsError::File(format!("CRL {}: {e}", path.display())));
                }
            }
        }
        Ok(crls)
    }
}

/// A PEM error in words (the library prints markers as byte arrays).
fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as P;
    match e {
        P::MissingSectionEnd { end_marker } => format!(
            "no \"-----END {}-----\" line (truncated file?)",
            String::from_utf8_lossy(end_marker)
        ),
        P::IllegalSectionStart { line } => {
            format!("malformed BEGIN line \"{}\"", String::from_utf8_lossy(line))
        }
        other => other.to_string(),
    }
}

/// A root store from CA files; `what` names their role in errors.
pub(crate) fn root_store(
    snapshot: &Snapshot,
    paths: &[PathBuf],
    what: &str,
) -> Result<rustls::RootCertStore, TlsError> {
    if paths.is_empty() {
        return Err(TlsError::Config(format!("no {what} file configured")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for path in paths {
        for cert in snapshot.certs(path, what)? {
            roots.add(cert).map_err(|e| {
                TlsError::Config(format!(
                    "{what} file {}: not a usable CA certificate: {e}",
                    path.display()
                ))
            })?;
        }
    }
    Ok(roots)
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Wait one `interval` for the reload pollers; false once `stop` turns true
/// (or its sender goes away).
pub(crate) async fn tick(
    interval: std::time::Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            _ = tokio::time::sleep(interval) => return true,
        }
    }
}
