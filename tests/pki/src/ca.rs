//! Certificate authorities, certificate specifications and issued certificates.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The organisation (`O=`) of every certificate this crate makes: nobody mistakes them for
/// production ones.
pub const ORGANISATION: &str = "Yiwang test PKI";

/// How long a CA certificate is valid (from a day before it is made).
const CA_VALIDITY: Duration = Duration::days(3650);
/// Default validity of a leaf certificate: from an hour ago (clock skew) for a year.
const LEAF_BACKDATE: Duration = Duration::hours(1);
const LEAF_VALIDITY: Duration = Duration::days(365);
/// A CRL is valid for this long after it is made.
const CRL_VALIDITY: Duration = Duration::days(30);

/// A certificate authority: a self-signed root with an ECDSA P-256 key that issues leaf
/// certificates ([`Ca::issue`]) and CRLs ([`Ca::crl`]). Path length 0: it issues only leaves.
pub struct Ca {
    common_name: String,
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    crl_number: AtomicU64,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is left out on purpose.
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new root CA `CN=<common_name>, O=Yiwang test PKI`, valid from a day ago for ten years.
    ///
    /// # Panics
    /// When the name is not printable or the system's random generator fails; use
    /// [`Ca::try_new`] to get an error instead.
    pub fn new(common_name: &str) -> Ca {
        match Ca::try_new(common_name) {
            Ok(ca) => ca,
            Err(e) => panic!("cannot create CA {common_name:?}: {e:#}"),
        }
    }

    /// [`Ca::new`], with an error instead of a panic.
    pub fn try_new(common_name: &str) -> anyhow::Result<Ca> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - Duration::days(1);
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(serial_of(&key.subject_public_key_info()));
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params
            .self_signed(&key)
            .with_context(|| format!("self-signing CA {common_name:?}"))?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            common_name: common_name.to_owned(),
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem,
            crl_number: AtomicU64::new(1),
        })
    }

    /// The CA's common name.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The CA certificate, PEM: what a peer puts in its trust store.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's private key, PKCS#8 PEM (only the PKI operator needs it).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issue a leaf certificate for `spec` with a fresh ECDSA P-256 key.
    ///
    /// # Panics
    /// When a name in `spec` cannot be encoded (a DNS name or URI that is not ASCII) or the
    /// validity is empty; use [`Ca::try_issue`] to get an error instead.
    pub fn issue(&self, spec: &CertSpec) -> Issued {
        match self.try_issue(spec) {
            Ok(issued) => issued,
            Err(e) => panic!(
                "CA {:?} cannot issue {:?}: {e:#}",
                self.common_name, spec.common_name
            ),
        }
    }

    /// [`Ca::issue`], with an error instead of a panic.
    pub fn try_issue(&self, spec: &CertSpec) -> anyhow::Result<Issued> {
        anyhow::ensure!(
            spec.not_before < spec.not_after,
            "not_before {} is not before not_after {}",
            spec.not_before,
            spec.not_after
        );
        let key = KeyPair::generate().context("generating the key")?;
        let spki_der = key.subject_public_key_info();
        let serial = serial_of(&spki_der);
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&spec.common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = [
            (spec.server, ExtendedKeyUsagePurpose::ServerAuth),
            (spec.client, ExtendedKeyUsagePurpose::ClientAuth),
            (spec.ocsp_signing, ExtendedKeyUsagePurpose::OcspSigning),
        ]
        .into_iter()
        .filter_map(|(wanted, eku)| wanted.then_some(eku))
        .collect();
        let mut sans = Vec::new();
        for dns in &spec.dns {
            let ia5 = dns
                .as_str()
                .try_into()
                .with_context(|| format!("DNS name {dns:?}"))?;
            sans.push(SanType::DnsName(ia5));
        }
        for uri in &spec.uris {
            let ia5 = uri
                .as_str()
                .try_into()
                .with_context(|| format!("URI {uri:?}"))?;
            sans.push(SanType::URI(ia5));
        }
        for email in &spec.emails {
            let ia5 = email
                .as_str()
                .try_into()
                .with_context(|| format!("e-mail {email:?}"))?;
            sans.push(SanType::Rfc822Name(ia5));
        }
        sans.extend(spec.ips.iter().copied().map(SanType::IpAddress));
        params.subject_alt_names = sans;
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.serial_number = Some(serial.clone());
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing {:?}", spec.common_name))?;
        Ok(Issued {
            common_name: spec.common_name.clone(),
            issuer: self.common_name.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
            spki_der,
            serial: serial.to_bytes(),
        })
    }

    /// A CRL (PEM) listing `revoked` (each must have been issued by this CA), valid from a
    /// minute ago for 30 days. An empty slice gives an empty but valid CRL. Each call gets
    /// the next CRL number.
    ///
    /// # Panics
    /// When a certificate in `revoked` was issued by another CA.
    pub fn crl(&self, revoked: &[&Issued]) -> String {
        match self.try_crl(revoked) {
            Ok(pem) => pem,
            Err(e) => panic!("CA {:?} cannot make a CRL: {e:#}", self.common_name),
        }
    }

    /// [`Ca::crl`], with an error instead of a panic.
    pub fn try_crl(&self, revoked: &[&Issued]) -> anyhow::Result<String> {
        let now = OffsetDateTime::now_utc();
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for cert in revoked {
            anyhow::ensure!(
                cert.issuer == self.common_name,
                "{:?} was issued by {:?}, not by this CA",
                cert.common_name,
                cert.issuer
            );
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&cert.serial),
                revocation_time: now - Duration::minutes(1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + CRL_VALIDITY,
            crl_number: SerialNumber::from(self.crl_number.fetch_add(1, Ordering::Relaxed)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).context("signing the CRL")?;
        crl.pem().context("encoding the CRL")
    }

    /// Write `<stem>.crt` (mode 0644) and `<stem>.key` (mode 0600) into `dir` (created if
    /// missing); returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<(PathBuf, PathBuf)> {
        write_pair(dir, stem, &self.cert_pem, &self.key_pem)
    }
}

/// What to put in a leaf certificate. Build one with [`CertSpec::server`] or
/// [`CertSpec::client`] and the chained setters, or fill the fields directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// `CN=` of the subject (the subject also carries `O=Yiwang test PKI`).
    pub common_name: String,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// URI subject alternative names, e.g. `yiwang://bureau/fuzhou`.
    pub uris: Vec<String>,
    /// E-mail (RFC 822) subject alternative names.
    pub emails: Vec<String>,
    /// IP address subject alternative names.
    pub ips: Vec<IpAddr>,
    /// Extended key usage `serverAuth`.
    pub server: bool,
    /// Extended key usage `clientAuth`.
    pub client: bool,
    /// Extended key usage `OCSPSigning` (a delegated OCSP responder).
    pub ocsp_signing: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertSpec {
    /// A certificate with no names nor usages, valid from an hour ago for a year.
    pub fn new(common_name: &str) -> CertSpec {
        let now = OffsetDateTime::now_utc();
        CertSpec {
            common_name: common_name.to_owned(),
            dns: Vec::new(),
            uris: Vec::new(),
            emails: Vec::new(),
            ips: Vec::new(),
            server: false,
            client: false,
            ocsp_signing: false,
            not_before: now - LEAF_BACKDATE,
            not_after: now + LEAF_VALIDITY,
        }
    }

    /// A TLS server certificate (`serverAuth`) for these DNS names and IP addresses.
    pub fn server(common_name: &str, dns: &[&str], ips: &[IpAddr]) -> CertSpec {
        CertSpec {
            dns: dns.iter().map(|d| (*d).to_owned()).collect(),
            ips: ips.to_vec(),
            server: true,
            ..CertSpec::new(common_name)
        }
    }

    /// A delegated OCSP responder's certificate (`OCSPSigning`).
    pub fn ocsp_responder(common_name: &str) -> CertSpec {
        CertSpec {
            ocsp_signing: true,
            ..CertSpec::new(common_name)
        }
    }

    /// A TLS client certificate (`clientAuth`) with no alternative names.
    pub fn client(common_name: &str) -> CertSpec {
        CertSpec {
            client: true,
            ..CertSpec::new(common_name)
        }
    }

    /// Add a DNS name.
    pub fn dns(mut self, name: &str) -> CertSpec {
        self.dns.push(name.to_owned());
        self
    }

    /// Add a URI name, e.g. `yiwang://bureau/fuzhou`.
    pub fn uri(mut self, uri: &str) -> CertSpec {
        self.uris.push(uri.to_owned());
        self
    }

    /// Add an e-mail address.
    pub fn email(mut self, email: &str) -> CertSpec {
        self.emails.push(email.to_owned());
        self
    }

    /// Add an IP address.
    pub fn ip(mut self, ip: IpAddr) -> CertSpec {
        self.ips.push(ip);
        self
    }

    /// Valid between these two instants.
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertSpec {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Expired: valid from 60 days ago until yesterday.
    pub fn expired(self) -> CertSpec {
        let now = OffsetDateTime::now_utc();
        self.validity(now - Duration::days(60), now - Duration::days(1))
    }

    /// Not yet valid: valid from tomorrow for a year.
    pub fn not_yet_valid(self) -> CertSpec {
        let now = OffsetDateTime::now_utc();
        self.validity(now + Duration::days(1), now + Duration::days(366))
    }
}

/// A leaf certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The subject's `CN=`.
    pub common_name: String,
    /// The issuing CA's common name.
    pub issuer: String,
    /// The certificate, PEM (the leaf only: the CAs are roots, there are no intermediates).
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    spki_der: Vec<u8>,
    serial: Vec<u8>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is left out on purpose.
        f.debug_struct("Issued")
            .field("common_name", &self.common_name)
            .field("issuer", &self.issuer)
            .field("serial", &hex(&self.serial))
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// The server public-key pin: base64 (standard alphabet, padded) of the SHA-256 of the
    /// certificate's DER SubjectPublicKeyInfo, as HPKP's `pin-sha256`. Stays the same when a
    /// certificate is re-issued for the same key.
    pub fn spki_sha256_b64(&self) -> String {
        pin_of_spki(&self.spki_der)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The serial number (big-endian bytes), as a CRL lists it.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The private key, DER, for rustls.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Write `<stem>.crt` (mode 0644) and `<stem>.key` (mode 0600) into `dir` (created if
    /// missing); returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<(PathBuf, PathBuf)> {
        write_pair(dir, stem, &self.cert_pem, &self.key_pem)
    }
}

/// [`Issued::spki_sha256_b64`] of any certificate (DER), e.g. one a peer presented.
pub fn spki_sha256_b64(cert_der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(pin_of_spki(cert.tbs_certificate.subject_pki.raw))
}

/// The first `CN=` of a certificate's subject (DER); `None` for no CN or a bad certificate.
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn pin_of_spki(spki_der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki_der))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANISATION);
    dn
}

/// 16 bytes of the key's SHA-256, positive and without a leading zero byte: unique per key
/// (keys are random), so no serial repeats within a CA.
fn serial_of(spki_der: &[u8]) -> SerialNumber {
    let digest = Sha256::digest(spki_der);
    let mut bytes = digest[..16].to_vec();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_pair(
    dir: &Path,
    stem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    write_file(&cert, cert_pem.as_bytes(), 0o644)?;
    write_file(&key, key_pem.as_bytes(), 0o600)?;
    Ok((cert, key))
}

/// Write `contents` to `path` with `mode` (also when the file existed with another mode).
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        // A key must never be readable by others, not even for a moment: tighten an
        // existing file before writing into it.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
