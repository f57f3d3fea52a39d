//! A small test PKI (rcgen): CAs, server and client certificates, CRLs,
//! written as PEM files into a temporary directory.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

static SERIAL: AtomicU8 = AtomicU8::new(1);

/// A certificate authority able to issue certificates and CRLs.
pub struct Ca {
    pub cert_pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// An issued certificate with its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub serial: Vec<u8>,
}

/// What to put in a leaf certificate.
#[derive(Default)]
pub struct LeafSpec<'a> {
    pub cn: &'a str,
    pub dns: &'a [&'a str],
    pub uris: &'a [&'a str],
    pub emails: &'a [&'a str],
    pub ips: &'a [&'a str],
    /// Validity 2000-2001 instead of 2020-2099.
    pub expired: bool,
    /// Client certificate (clientAuth EKU) rather than server.
    pub client: bool,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Yiwang test PKI");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2099, 1, 1);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn issue(&self, spec: LeafSpec<'_>) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, spec.cn);
        for dns in spec.dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*dns).try_into().expect("dns name")));
        }
        for uri in spec.uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().expect("uri")));
        }
        for email in spec.emails {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name((*email).try_into().expect("email")));
        }
        for ip in spec.ips {
            params
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().expect("ip")));
        }
        let serial = vec![0x42, SERIAL.fetch_add(1, Ordering::Relaxed), 0x17];
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if spec.client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;
        if spec.expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        } else {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2099, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            serial,
        }
    }

    /// A server certificate for these DNS names / IPs.
    pub fn server(&self, cn: &str, dns: &[&str], ips: &[&str]) -> Leaf {
        self.issue(LeafSpec {
            cn,
            dns,
            ips,
            ..Default::default()
        })
    }

    /// A client certificate.
    pub fn client(&self, cn: &str) -> Leaf {
        self.issue(LeafSpec {
            cn,
            client: true,
            ..Default::default()
        })
    }

    /// A CRL (PEM) revoking these certificates.
    pub fn crl(&self, revoked: &[&Leaf]) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2098, 1, 1),
            crl_number: SerialNumber::from_slice(&[SERIAL.fetch_add(1, Ordering::Relaxed)]),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|leaf| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&leaf.serial),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("CRL")
            .pem()
            .expect("CRL PEM")
    }
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write PEM");
    path
}
