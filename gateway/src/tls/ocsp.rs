//! The OCSP response a ministry server staples to its certificate
//! (RFC 6960, RFC 6066 `status_request`), checked after the WebPKI
//! verification of its chain.
//!
//! rustls asks every server for a staple and hands it to the verifier, but
//! its WebPKI verifier ignores it. `x509-ocsp` decodes it; the checks are
//! here, each one a rule of RFC 6960:
//!
//! * **About this certificate**: a `SingleResponse` whose CertID names the
//!   certificate's serial and its issuer (SHA-1 or SHA-256 of the issuer's
//!   name and key). A staple about nothing we hold says nothing.
//! * **Signed** by the issuing CA itself, or by a responder certificate
//!   the staple carries that the issuing CA signed, that has the
//!   `id-kp-OCSPSigning` usage and is valid now (§ 4.2.2.2).
//! * **Fresh**: `thisUpdate` not in the future, `nextUpdate` not past
//!   (each with [`SKEW_SECS`] of clock skew); without `nextUpdate`,
//!   `thisUpdate` at most [`MAX_AGE_SECS`] old.
//!
//! Verdicts: a signed `revoked` refuses the certificate (fresh or not: a
//! revocation is not undone); `good` and `unknown` let it pass (`unknown`
//! like a CA without a CRL). A staple that does not decode, is not signed
//! as above, or is stale refuses the certificate: a server that staples
//! claims a current proof, and a wrong one is misconfiguration or tampering
//! the operator must see (it raises the network's TLS alert). A response
//! whose status is not `successful` carries no signature and is ignored.

use super::peer::issued_by;
use ring::digest;
use rustls_pki_types::{CertificateDer, UnixTime};
use std::borrow::Cow;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus, SingleResponse};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Clock skew allowed on `thisUpdate` and `nextUpdate`.
pub const SKEW_SECS: i64 = 300;
/// The oldest `thisUpdate` accepted when a response has no `nextUpdate`.
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;

const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// What a staple says about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staple {
    /// No staple, an unsigned (not `successful`) one, or one about other
    /// certificates.
    Silent,
    Good,
    Unknown,
    Revoked,
}

/// Why a staple is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StapleError {
    #[error("stapled OCSP response malformed: {0}")]
    Malformed(String),
    #[error(
        "stapled OCSP response: the certificate's issuer is not among the certificates at hand"
    )]
    NoIssuer,
    #[error(
        "stapled OCSP response not signed by the certificate's issuer nor by a responder it delegated"
    )]
    NotSigned,
    #[error("stapled OCSP response is from the future (thisUpdate {this_update}, now {now})")]
    Future { this_update: i64, now: i64 },
    #[error(
        "stapled OCSP response is stale (thisUpdate {this_update}, nextUpdate {next_update:?}, now {now})"
    )]
    Stale {
        this_update: i64,
        next_update: Option<i64>,
        now: i64,
    },
}

fn malformed(e: impl std::fmt::Display) -> StapleError {
    StapleError::Malformed(e.to_string())
}

/// Checks `staple` for `leaf`, whose issuer is one of `candidates` (the
/// chain the server sent and the network's CAs); see the module docs.
pub fn check(
    staple: &[u8],
    leaf: &CertificateDer<'_>,
    candidates: &[&CertificateDer<'_>],
    now: UnixTime,
) -> Result<Staple, StapleError> {
    if staple.is_empty() {
        return Ok(Staple::Silent);
    }
    let response = OcspResponse::from_der(staple).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Ok(Staple::Silent);
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| malformed("successful but no responseBytes"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(malformed(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(malformed)?;
    let parsed: Vec<X509Certificate<'_>> = candidates
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .map(|(_, c)| c)
        .collect();
    let issuer = parsed
        .iter()
        .find(|ca| issued_by(&cert, ca))
        .ok_or(StapleError::NoIssuer)?;
    let Some(single) = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| is_about(r, &cert, issuer))
    else {
        return Ok(Staple::Silent);
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    verify_signed(&basic, issuer, now)?;
    if let CertStatus::Revoked(_) = single.cert_status {
        return Ok(Staple::Revoked);
    }
    check_fresh(single, now)?;
    Ok(match single.cert_status {
        CertStatus::Good(_) => Staple::Good,
        _ => Staple::Unknown,
    })
}

/// The CertID names `cert` (serial) and `issuer` (name and key hashes).
fn is_about(r: &SingleResponse, cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let algorithm = match r.cert_id.hash_algorithm.oid {
        ID_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        ID_SHA256 => &digest::SHA256,
        _ => return false,
    };
    let hash = |data: &[u8]| digest::digest(algorithm, data);
    magnitude(r.cert_id.serial_number.as_bytes()) == magnitude(cert.raw_serial())
        && r.cert_id.issuer_name_hash.as_bytes() == hash(cert.issuer().as_raw()).as_ref()
        && r.cert_id.issuer_key_hash.as_bytes()
            == hash(&issuer.public_key().subject_public_key.data).as_ref()
}

/// A positive integer's bytes without leading zeros (one decoder keeps
/// the sign octet, the other does not).
fn magnitude(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// The response is signed by `issuer`, or by a responder certificate it
/// carries that `issuer` signed for OCSP signing and that is valid `now`.
fn verify_signed(
    basic: &BasicOcspResponse,
    issuer: &X509Certificate<'_>,
    now: i64,
) -> Result<(), StapleError> {
    let tbs = basic.tbs_response_data.to_der().map_err(malformed)?;
    let algorithm = basic.signature_algorithm.to_der().map_err(malformed)?;
    let (_, algorithm) =
        x509_parser::x509::AlgorithmIdentifier::from_der(&algorithm).map_err(malformed)?;
    let signature = x509_parser::der_parser::asn1_rs::BitString {
        unused_bits: 0,
        data: Cow::Borrowed(basic.signature.raw_bytes()),
    };
    let signs = |key: &x509_parser::x509::SubjectPublicKeyInfo<'_>| {
        x509_parser::verify::verify_signature(key, &algorithm, &signature, &tbs).is_ok()
    };
    if signs(issuer.public_key()) {
        return Ok(());
    }
    for responder in basic.certs.iter().flatten() {
        let der = responder.to_der().map_err(malformed)?;
        let Ok((_, responder)) = x509_parser::parse_x509_certificate(&der) else {
            continue;
        };
        let delegated = responder
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|eku| eku.value.ocsp_signing);
        let validity = responder.validity();
        let valid = validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp();
        if delegated && valid && issued_by(&responder, issuer) && signs(responder.public_key()) {
            return Ok(());
        }
    }
    Err(StapleError::NotSigned)
}

/// `thisUpdate` not ahead of `now`, `nextUpdate` (or the maximum age) not
/// behind it, give or take the skew.
fn check_fresh(single: &SingleResponse, now: i64) -> Result<(), StapleError> {
    let secs = |t: &x509_ocsp::OcspGeneralizedTime| {
        i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let this_update = secs(&single.this_update);
    let next_update = single.next_update.as_ref().map(secs);
    if this_update > now + SKEW_SECS {
        return Err(StapleError::Future { this_update, now });
    }
    let until = next_update.unwrap_or(this_update + MAX_AGE_SECS) + SKEW_SECS;
    if until < now {
        return Err(StapleError::Stale {
            this_update,
            next_update,
            now,
        });
    }
    Ok(())
}

/// Builds stapled responses for tests (here and in `client`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    use std::time::Duration;
    use x509_cert::der::asn1::{BitString, GeneralizedTime, OctetString};
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::AlgorithmIdentifierOwned;
    use x509_ocsp::{CertId, OcspGeneralizedTime, ResponderId, ResponseData, Version};
    use yiwang_pki::{Ca, Issued};

    const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

    /// One response about `leaf` (issued by `issuer`).
    pub(crate) struct Spec<'a> {
        pub status: CertStatus,
        pub this_update: i64,
        pub next_update: Option<i64>,
        /// PEM PKCS#8 key that signs (the CA's, or a responder's).
        pub signer_key_pem: &'a str,
        /// Certificates carried (a delegated responder's).
        pub certs: Vec<&'a Issued>,
        pub sha256_cert_id: bool,
    }

    pub(crate) fn now() -> i64 {
        i64::try_from(UnixTime::now().as_secs()).unwrap()
    }

    fn time(secs: i64) -> OcspGeneralizedTime {
        let secs = u64::try_from(secs).unwrap();
        OcspGeneralizedTime(GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
    }

    /// A good response signed by `issuer`, valid for a day.
    pub(crate) fn good<'a>(issuer: &'a Ca) -> Spec<'a> {
        Spec {
            status: CertStatus::good(),
            this_update: now() - 60,
            next_update: Some(now() + 86_400),
            signer_key_pem: issuer.key_pem(),
            certs: vec![],
            sha256_cert_id: false,
        }
    }

    /// The DER of an `OCSPResponse` for `leaf` per `spec`.
    pub(crate) fn staple(leaf: &Issued, issuer: &Ca, spec: &Spec<'_>) -> Vec<u8> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.cert_der.as_ref()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(issuer.cert_der().as_ref()).unwrap();
        let (oid, algorithm) = if spec.sha256_cert_id {
            (ID_SHA256, &digest::SHA256)
        } else {
            (ID_SHA1, &digest::SHA1_FOR_LEGACY_USE_ONLY)
        };
        let hash =
            |data: &[u8]| OctetString::new(digest::digest(algorithm, data).as_ref()).unwrap();
        let key = &ca.public_key().subject_public_key.data;
        let cert_id = CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid,
                parameters: None,
            },
            issuer_name_hash: hash(cert.issuer().as_raw()),
            issuer_key_hash: hash(key),
            serial_number: SerialNumber::new(cert.raw_serial()).unwrap(),
        };
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key).as_ref())
                    .unwrap(),
            ),
            produced_at: time(spec.this_update),
            responses: vec![SingleResponse {
                cert_id,
                cert_status: spec.status,
                this_update: time(spec.this_update),
                next_update: spec.next_update.map(time),
                single_extensions: None,
            }],
            response_extensions: None,
        };
        let key = PrivateKeyDer::from_pem_slice(spec.signer_key_pem.as_bytes()).unwrap();
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key.secret_der(), &rng)
                .unwrap();
        let signature = pair.sign(&rng, &tbs.to_der().unwrap()).unwrap();
        let certs = spec
            .certs
            .iter()
            .map(|c| x509_cert::Certificate::from_der(c.cert_der.as_ref()).unwrap())
            .collect::<Vec<_>>();
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            signature: BitString::from_bytes(signature.as_ref()).unwrap(),
            certs: (!certs.is_empty()).then_some(certs),
        };
        OcspResponse::successful(basic).unwrap().to_der().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Spec, good, now, staple};
    use super::*;
    use x509_ocsp::RevokedInfo;
    use yiwang_pki::{Ca, CertSpec, Issued};

    fn verdict(leaf: &Issued, ca: &Ca, spec: &Spec<'_>) -> Result<Staple, StapleError> {
        check(
            &staple(leaf, ca, spec),
            &leaf.cert_der,
            &[ca.cert_der()],
            UnixTime::now(),
        )
    }

    fn revoked() -> CertStatus {
        CertStatus::revoked(RevokedInfo {
            revocation_time: x509_ocsp::OcspGeneralizedTime(
                x509_cert::der::asn1::GeneralizedTime::from_unix_duration(
                    std::time::Duration::from_secs(1_700_000_000),
                )
                .unwrap(),
            ),
            revocation_reason: None,
        })
    }

    #[test]
    fn a_good_or_revoked_answer_signed_by_the_issuer_is_believed() {
        let ca = Ca::new("Ministry CA");
        let leaf = ca.issue(&CertSpec::server("mr", &["localhost"], &[]));
        assert_eq!(verdict(&leaf, &ca, &good(&ca)), Ok(Staple::Good));
        let sha256 = Spec {
            sha256_cert_id: true,
            ..good(&ca)
        };
        assert_eq!(verdict(&leaf, &ca, &sha256), Ok(Staple::Good));
        let unknown = Spec {
            status: CertStatus::unknown(),
            ..good(&ca)
        };
        assert_eq!(verdict(&leaf, &ca, &unknown), Ok(Staple::Unknown));
        let revoked_long_ago = Spec {
            status: revoked(),
            this_update: now() - 30 * 86_400,
            next_update: Some(now() - 29 * 86_400),
            ..good(&ca)
        };
        assert_eq!(
            verdict(&leaf, &ca, &revoked_long_ago),
            Ok(Staple::Revoked),
            "a revocation stays a revocation, stale or not"
        );
    }

    #[test]
    fn a_response_signed_by_anyone_else_is_refused() {
        let ca = Ca::new("Ministry CA");
        let leaf = ca.issue(&CertSpec::server("mr", &["localhost"], &[]));
        let other = Ca::new("Ministry CA");
        let forged = Spec {
            status: revoked(),
            signer_key_pem: other.key_pem(),
            ..good(&ca)
        };
        assert_eq!(
            verdict(&leaf, &ca, &forged),
            Err(StapleError::NotSigned),
            "a forged revocation is refused, not believed"
        );

        // A delegated responder needs the CA's signature and OCSPSigning.
        let responder = ca.issue(&CertSpec::ocsp_responder("mr-ocsp"));
        let delegated = Spec {
            signer_key_pem: &responder.key_pem,
            certs: vec![&responder],
            ..good(&ca)
        };
        assert_eq!(verdict(&leaf, &ca, &delegated), Ok(Staple::Good));
        let plain = ca.issue(&CertSpec::client("not-a-responder"));
        let undelegated = Spec {
            signer_key_pem: &plain.key_pem,
            certs: vec![&plain],
            ..good(&ca)
        };
        assert_eq!(
            verdict(&leaf, &ca, &undelegated),
            Err(StapleError::NotSigned)
        );
        let foreign = other.issue(&CertSpec::ocsp_responder("foreign-ocsp"));
        let foreign = Spec {
            signer_key_pem: &foreign.key_pem,
            certs: vec![&foreign],
            ..good(&ca)
        };
        assert_eq!(verdict(&leaf, &ca, &foreign), Err(StapleError::NotSigned));
    }

    #[test]
    fn a_stale_or_future_response_is_refused() {
        let ca = Ca::new("Ministry CA");
        let leaf = ca.issue(&CertSpec::server("mr", &["localhost"], &[]));
        let past_next_update = Spec {
            this_update: now() - 2 * 86_400,
            next_update: Some(now() - 86_400),
            ..good(&ca)
        };
        assert!(matches!(
            verdict(&leaf, &ca, &past_next_update),
            Err(StapleError::Stale { .. })
        ));
        let too_old = Spec {
            this_update: now() - MAX_AGE_SECS - 3600,
            next_update: None,
            ..good(&ca)
        };
        assert!(matches!(
            verdict(&leaf, &ca, &too_old),
            Err(StapleError::Stale {
                next_update: None,
                ..
            })
        ));
        let recent = Spec {
            next_update: None,
            ..good(&ca)
        };
        assert_eq!(verdict(&leaf, &ca, &recent), Ok(Staple::Good));
        let future = Spec {
            this_update: now() + 3600,
            ..good(&ca)
        };
        assert!(matches!(
            verdict(&leaf, &ca, &future),
            Err(StapleError::Future { .. })
        ));
    }

    #[test]
    fn no_staple_one_about_another_certificate_or_garbage() {
        let ca = Ca::new("Ministry CA");
        let leaf = ca.issue(&CertSpec::server("mr", &["localhost"], &[]));
        let sibling = ca.issue(&CertSpec::server("mr-2", &["localhost"], &[]));
        let now = UnixTime::now();
        assert_eq!(
            check(&[], &leaf.cert_der, &[ca.cert_der()], now),
            Ok(Staple::Silent)
        );
        let about_sibling = staple(
            &sibling,
            &ca,
            &Spec {
                status: revoked(),
                ..good(&ca)
            },
        );
        assert_eq!(
            check(&about_sibling, &leaf.cert_der, &[ca.cert_der()], now),
            Ok(Staple::Silent)
        );
        assert!(matches!(
            check(b"not DER", &leaf.cert_der, &[ca.cert_der()], now),
            Err(StapleError::Malformed(_))
        ));
        let try_later = OcspResponse::try_later().to_der().unwrap();
        assert_eq!(
            check(&try_later, &leaf.cert_der, &[ca.cert_der()], now),
            Ok(Staple::Silent)
        );
        assert_eq!(
            check(&staple(&leaf, &ca, &good(&ca)), &leaf.cert_der, &[], now),
            Err(StapleError::NoIssuer)
        );
    }
}
