//! The PEM files of one TLS configuration read once into memory, hashed (to see a change)
//! and parsed from the same bytes: certificates, private keys, CA roots and CRLs.
//!
//! A CRL past its nextUpdate is accepted with a warning; why, see [`super::server`].

use super::{TlsError, now_unix};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The files of one TLS configuration, read once: their combined digest (to
/// detect change) and each file's bytes or read error.
pub(crate) struct Snapshot {
    pub(crate) digest: [u8; 32],
    files: Vec<(PathBuf, std::io::Result<Vec<u8>>)>,
}

impl Snapshot {
    /// Reads every file. A file that cannot be read is recorded with its
    /// error (which also enters the digest, so the same failure is
    /// recognised as unchanged).
    pub(crate) fn read<'p>(paths: impl IntoIterator<Item = &'p Path>) -> Snapshot {
        let mut hasher = Sha256::new();
        let mut files = Vec::new();
        for path in paths {
            let contents = std::fs::read(path);
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
                    hasher.update(e.to_string().as_bytes());
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
