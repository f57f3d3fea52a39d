//! Who is at the other end of a TLS connection, read from their certificate
//! for the audit trail, and a short specific reason when a handshake is
//! refused (for logs, the audit trail and the operator who must fix it).
//!
//! # Which CA issued it
//!
//! A listener may trust several CAs, and a CA's name is only a claim: any
//! CA can call itself `CN=Fuzhou Bureau CA`. So besides the issuer's name
//! the identity carries `issuer_sha256`, the SHA-256 of the CA certificate
//! that really signed the peer's certificate: among the certificates the
//! peer presented and those the listener trusts, the one whose subject is
//! the certificate's issuer **and whose key verifies its signature**
//! ([`peer_identity_in`]). Only the holder of that CA's private key can
//! produce a certificate that resolves to that fingerprint.

use super::TlsError;
use rustls::{CertificateError, PeerIncompatible};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use yiwang_schema::Sha256Digest;

/// Who is at the other end of a connection, from their certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerIdentity {
    /// Subject distinguished name (RFC 4514 style).
    pub subject: String,
    pub subject_cn: Option<String>,
    pub issuer: String,
    /// SHA-256 (lowercase hex) of the issuing CA's certificate, when it is
    /// among the certificates at hand and its key verifies this one (see
    /// the module docs); `None` when not resolved.
    pub issuer_sha256: Option<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_email: Vec<String>,
    /// Serial number, lowercase hex without separators.
    pub serial_hex: String,
    /// SHA-256 of the whole certificate DER, lowercase hex.
    pub fingerprint_sha256: String,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

/// Reads a certificate's identity (the issuer by name only).
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
    peer_identity_in(std::slice::from_ref(cert), &[])
}

/// Reads the identity of `chain[0]` and resolves its issuer among the rest
/// of `chain` (what the peer presented) and `trusted` (the CAs the listener
/// trusts): see the module docs.
pub fn peer_identity_in(
    chain: &[CertificateDer<'_>],
    trusted: &[CertificateDer<'_>],
) -> Result<PeerIdentity, TlsError> {
    let Some(cert) = chain.first() else {
        return Err(TlsError::Certificate("no certificate presented".into()));
    };
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let issuer_sha256 = chain[1..]
        .iter()
        .chain(trusted)
        .find(|ca| signed_by(&x509, ca))
        .map(|ca| Sha256Digest::of(ca.as_ref()).to_string());
    let subject_cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut san_dns = Vec::new();
    let mut san_uri = Vec::new();
    let mut san_email = Vec::new();
    let san = x509
        .subject_alternative_name()
        .map_err(|e| TlsError::Certificate(format!("subjectAltName: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(s) => san_dns.push(s.to_string()),
                x509_parser::extensions::GeneralName::URI(s) => san_uri.push(s.to_string()),
                x509_parser::extensions::GeneralName::RFC822Name(s) => {
                    san_email.push(s.to_string())
                }
                _ => {}
            }
        }
    }
    Ok(PeerIdentity {
        subject: x509.subject().to_string(),
        subject_cn,
        issuer: x509.issuer().to_string(),
        issuer_sha256,
        san_dns,
        san_uri,
        san_email,
        serial_hex: hex::encode(x509.raw_serial()),
        fingerprint_sha256: Sha256Digest::of(cert.as_ref()).to_string(),
        not_after: x509.validity().not_after.timestamp(),
    })
}

/// Whether `ca` is the certificate that issued `cert`: its subject is the
/// issuer's name and its key verifies the signature.
fn signed_by(cert: &X509Certificate<'_>, ca: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(ca.as_ref()).is_ok_and(|(_, ca)| issued_by(cert, &ca))
}

/// [`signed_by`] for a CA already parsed.
pub(super) fn issued_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    ca.subject().as_raw() == cert.issuer().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// A short, specific reason why a server-side handshake failed, for logs and
/// the audit trail.
pub fn handshake_refusal(err: &std::io::Error) -> String {
    if let Some(e) = super::find_rustls_error(err) {
        return describe_refusal(e);
    }
    use std::io::ErrorKind as K;
    match err.kind() {
        K::UnexpectedEof => "client closed the connection during the handshake".into(),
        K::ConnectionReset => "connection reset during the handshake".into(),
        K::TimedOut => "handshake timed out".into(),
        _ => format!("handshake failed: {err}"),
    }
}

fn describe_refusal(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::NoCertificatesPresented => "no client certificate".into(),
        E::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "client certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "client certificate not yet valid".into()
            }
            CertificateError::UnknownIssuer => "client certificate issued by an unknown CA".into(),
            CertificateError::Revoked => "client certificate revoked".into(),
            CertificateError::UnknownRevocationStatus => {
                "client certificate revocation status unknown".into()
            }
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => {
                "CRL for the client certificate expired".into()
            }
            CertificateError::BadSignature => "client certificate has a bad signature".into(),
            CertificateError::BadEncoding => "client certificate malformed".into(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "client certificate not valid for client authentication".into()
            }
            other => format!("client certificate rejected: {other}"),
        },
        E::PeerIncompatible(p) => match p {
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::SupportedVersionsExtensionRequired => {
                "protocol version too old".into()
            }
            PeerIncompatible::NoCipherSuitesInCommon => "no shared cipher suite".into(),
            PeerIncompatible::NoKxGroupsInCommon => "no shared key exchange group".into(),
            PeerIncompatible::NoSignatureSchemesInCommon => "no shared signature scheme".into(),
            other => format!("client incompatible: {other:?}"),
        },
        E::NoApplicationProtocol => "no shared application protocol (ALPN)".into(),
        E::AlertReceived(
            alert @ (rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnsupportedCertificate
            | rustls::AlertDescription::CertificateRevoked
            | rustls::AlertDescription::CertificateExpired
            | rustls::AlertDescription::CertificateUnknown
            | rustls::AlertDescription::UnknownCA),
        ) => format!("client refused our server certificate (alert {alert:?})"),
        E::AlertReceived(alert) => format!("client aborted the handshake (alert {alert:?})"),
        E::InvalidMessage(_) => format!("not a TLS client ({e})"),
        other => other.to_string(),
    }
}
