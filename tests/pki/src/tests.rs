//! Unit tests: chains, refusals (expired, revoked, unknown CA, wrong usage), pins, layout.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, ClientConfig, Error as TlsError, ProtocolVersion};
use rustls_pki_types::{ServerName, UnixTime};

use crate::*;

fn client_cfg(ca: &Ca, id: &Issued) -> Arc<ClientConfig> {
    Arc::new(client_config(&[ca.cert_pem()], &id.cert_pem, &id.key_pem).expect("client config"))
}

fn mtls_server(ca: &Ca, server: &Issued) -> Arc<rustls::ServerConfig> {
    Arc::new(
        server_config(&server.cert_pem, &server.key_pem, Some(ca.cert_pem()))
            .expect("server config"),
    )
}

fn cert_error(e: &TlsError) -> Option<&CertificateError> {
    match e {
        TlsError::InvalidCertificate(c) => Some(c),
        _ => None,
    }
}

fn is_expired(e: &TlsError) -> bool {
    matches!(
        cert_error(e),
        Some(CertificateError::Expired | CertificateError::ExpiredContext { .. })
    )
}

fn verify_client(verifier: &Arc<dyn ClientCertVerifier>, id: &Issued) -> Result<(), TlsError> {
    verifier
        .verify_client_cert(&id.cert_der, &[], UnixTime::now())
        .map(drop)
}

fn verify_server(ca: &Ca, server: &Issued, name: &str) -> Result<(), TlsError> {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    server_verifier(&[ca.cert_pem()])
        .expect("verifier")
        .verify_server_cert(&server.cert_der, &[], &name, &[], UnixTime::now())
        .map(drop)
}

#[test]
fn mutual_tls_handshake_over_both_protocol_versions() {
    let ca = Ca::new("test-ca");
    let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let client = ca.issue(&CertSpec::client("alice"));
    let done = handshake(
        client_cfg(&ca, &client),
        mtls_server(&ca, &server),
        "svc.internal",
    )
    .expect("handshake");
    assert_eq!(done.client_cn.as_deref(), Some("alice"));
    assert_eq!(done.server_cn.as_deref(), Some("svc"));
    assert_eq!(done.protocol, Some(ProtocolVersion::TLSv1_3));

    let tls12 = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(root_store(&[ca.cert_pem()]).expect("roots"))
        .with_client_auth_cert(
            certs_from_pem(&client.cert_pem).expect("certs"),
            key_from_pem(&client.key_pem).expect("key"),
        )
        .expect("client auth");
    let done = handshake(Arc::new(tls12), mtls_server(&ca, &server), "svc.internal")
        .expect("TLS 1.2 handshake");
    assert_eq!(done.protocol, Some(ProtocolVersion::TLSv1_2));
    assert_eq!(done.client_cn.as_deref(), Some("alice"));
}

#[test]
fn server_without_client_ca_asks_for_no_certificate() {
    let ca = Ca::new("test-ca");
    let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let cfg = Arc::new(server_config(&server.cert_pem, &server.key_pem, None).expect("config"));
    let anonymous = Arc::new(client_config_without_cert(&[ca.cert_pem()]).expect("client"));
    let done = handshake(anonymous, cfg, "svc.internal").expect("handshake");
    assert_eq!(done.client_cn, None);
}

#[test]
fn a_client_without_certificate_is_refused_by_the_server() {
    let ca = Ca::new("test-ca");
    let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let anonymous = Arc::new(client_config_without_cert(&[ca.cert_pem()]).expect("client"));
    let err = handshake(anonymous, mtls_server(&ca, &server), "svc.internal")
        .expect_err("no client certificate");
    assert_eq!(err.side, "server");
    assert!(
        matches!(err.error, TlsError::NoCertificatesPresented),
        "{err}"
    );
}

#[test]
fn expired_certificates_are_refused() {
    let ca = Ca::new("test-ca");
    let good = ca.issue(&CertSpec::client("alice"));
    let expired = ca.issue(&CertSpec::client("alice").expired());
    let verifier = client_verifier(&[ca.cert_pem()], &[]).expect("verifier");
    verify_client(&verifier, &good).expect("valid certificate");
    let err = verify_client(&verifier, &expired).expect_err("expired");
    assert!(is_expired(&err), "{err:?}");

    let not_yet = ca.issue(&CertSpec::client("alice").not_yet_valid());
    let err = verify_client(&verifier, &not_yet).expect_err("not yet valid");
    assert!(
        matches!(
            cert_error(&err),
            Some(CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. })
        ),
        "{err:?}"
    );

    // An expired server certificate fails the client's side of a handshake.
    let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]).expired());
    let err = handshake(
        client_cfg(&ca, &good),
        mtls_server(&ca, &server),
        "svc.internal",
    )
    .expect_err("expired server");
    assert_eq!(err.side, "client");
    assert!(is_expired(&err.error), "{err}");
}

#[test]
fn revoked_certificates_are_refused_when_the_crl_is_loaded() {
    let ca = Ca::new("test-ca");
    let good = ca.issue(&CertSpec::client("alice"));
    let revoked = ca.issue(&CertSpec::client("alice"));
    let crl = ca.crl(&[&revoked]);
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");

    let without = client_verifier(&[ca.cert_pem()], &[]).expect("verifier");
    verify_client(&without, &revoked).expect("no CRL, no revocation check");

    let with = client_verifier(&[ca.cert_pem()], &[&crl]).expect("verifier with CRL");
    verify_client(&with, &good).expect("not revoked");
    let err = verify_client(&with, &revoked).expect_err("revoked");
    assert!(
        matches!(cert_error(&err), Some(CertificateError::Revoked)),
        "{err:?}"
    );

    // And in a handshake.
    let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let cfg = Arc::new(
        server_config_with_verifier(&server.cert_pem, &server.key_pem, with).expect("config"),
    );
    handshake(client_cfg(&ca, &good), Arc::clone(&cfg), "svc.internal").expect("good client");
    let err = handshake(client_cfg(&ca, &revoked), cfg, "svc.internal").expect_err("revoked");
    assert_eq!(err.side, "server");
    assert!(
        matches!(cert_error(&err.error), Some(CertificateError::Revoked)),
        "{err}"
    );
}

#[test]
fn crl_is_current_and_numbered() {
    let ca = Ca::new("test-ca");
    let first = ca.crl(&[]);
    let second = ca.crl(&[]);
    let der = |pem: &str| crls_from_pem(pem).expect("CRL PEM").remove(0);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut numbers = Vec::new();
    for pem in [&first, &second] {
        let der = der(pem);
        let (_, crl) = x509_parser::parse_x509_crl(&der).expect("CRL parses");
        let next = crl.next_update().expect("next update").timestamp();
        assert!(next > now + 29 * 86_400, "next update {next} vs now {now}");
        assert!(crl.last_update().timestamp() <= now);
        assert_eq!(crl.iter_revoked_certificates().count(), 0);
        numbers.push(crl.crl_number().map(ToString::to_string));
    }
    assert_ne!(numbers[0], numbers[1]);
    // An empty CRL is usable: nothing revoked, status known.
    let verifier = client_verifier(&[ca.cert_pem()], &[&first]).expect("verifier");
    verify_client(&verifier, &ca.issue(&CertSpec::client("bob"))).expect("not revoked");
}

#[test]
#[should_panic(expected = "not by this CA")]
fn a_crl_lists_only_the_cas_own_certificates() {
    let ca = Ca::new("test-ca");
    let other = Ca::new("other-ca").issue(&CertSpec::client("x"));
    let _ = ca.crl(&[&other]);
}

#[test]
fn certificates_of_an_unknown_ca_are_refused() {
    let ca = Ca::new("test-ca");
    let rogue = Ca::new("rogue-ca");
    let impostor = rogue.issue(&CertSpec::client("alice"));
    let verifier = client_verifier(&[ca.cert_pem()], &[]).expect("verifier");
    let err = verify_client(&verifier, &impostor).expect_err("unknown issuer");
    assert!(
        matches!(cert_error(&err), Some(CertificateError::UnknownIssuer)),
        "{err:?}"
    );
    let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let err = handshake(
        client_cfg(&ca, &impostor),
        mtls_server(&ca, &server),
        "svc.internal",
    )
    .expect_err("rogue client");
    assert_eq!(err.side, "server");

    let rogue_server = rogue.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let good = ca.issue(&CertSpec::client("alice"));
    let err = handshake(
        client_cfg(&ca, &good),
        mtls_server(&ca, &rogue_server),
        "svc.internal",
    )
    .expect_err("rogue server");
    assert_eq!(err.side, "client");
}

#[test]
fn usages_and_names_are_enforced() {
    let ca = Ca::new("test-ca");
    let client_only = ca.issue(&CertSpec::client("svc").dns("svc.internal"));
    let err = verify_server(&ca, &client_only, "svc.internal").expect_err("no serverAuth");
    assert!(cert_error(&err).is_some(), "{err:?}");
    let server_only = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
    let verifier = client_verifier(&[ca.cert_pem()], &[]).expect("verifier");
    verify_client(&verifier, &server_only).expect_err("no clientAuth");

    verify_server(&ca, &server_only, "svc.internal").expect("its name");
    let err = verify_server(&ca, &server_only, "other.internal").expect_err("another name");
    assert!(
        matches!(
            cert_error(&err),
            Some(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{err:?}"
    );
    verify_server(&ca, &server_only, "127.0.0.1").expect_err("no IP address in it");
    let with_ip = ca.issue(&CertSpec::server(
        "svc",
        &[],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
    ));
    verify_server(&ca, &with_ip, "127.0.0.1").expect("its IP address");
}

#[test]
fn spki_pin_is_stable_and_per_key() {
    let ca = Ca::new("test-ca");
    let a = ca.issue(&CertSpec::server("a", &["a.internal"], &[]));
    let b = ca.issue(&CertSpec::server("a", &["a.internal"], &[]));
    let pin = a.spki_sha256_b64();
    assert_eq!(pin.len(), 44, "{pin}");
    assert!(pin.ends_with('='), "{pin}");
    assert_eq!(pin, a.spki_sha256_b64());
    assert_eq!(spki_sha256_b64(&a.cert_der).expect("parses"), pin);
    let reparsed = certs_from_pem(&a.cert_pem).expect("PEM").remove(0);
    assert_eq!(spki_sha256_b64(&reparsed).expect("parses"), pin);
    assert_ne!(b.spki_sha256_b64(), pin, "a new key, a new pin");
    assert!(spki_sha256_b64(b"not a certificate").is_err());
}

#[test]
fn issued_certificates_carry_the_spec() {
    let ca = Ca::new("test-ca");
    let spec = CertSpec::client("fuzhou-bureau").uri("yiwang://bureau/fuzhou");
    let id = ca.issue(&spec);
    assert_eq!(common_name(&id.cert_der).as_deref(), Some("fuzhou-bureau"));
    assert_eq!(id.issuer, "test-ca");
    let (_, cert) = x509_parser::parse_x509_certificate(&id.cert_der).expect("parses");
    let sans = cert
        .subject_alternative_name()
        .expect("SAN extension parses")
        .expect("SAN present");
    let uris: Vec<&str> = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["yiwang://bureau/fuzhou"]);
    assert_eq!(sans.value.general_names.len(), 1, "no other name");
    assert!(
        !format!("{id:?}").contains("PRIVATE KEY"),
        "Debug hides the key"
    );
    assert!(
        !format!("{ca:?}").contains("PRIVATE KEY"),
        "Debug hides the key"
    );
    // Invalid names are errors, not panics, with try_issue.
    assert!(
        ca.try_issue(&CertSpec::server("x", &["名字.internal"], &[]))
            .is_err()
    );
    let mut empty = CertSpec::client("x");
    empty.not_after = empty.not_before;
    assert!(ca.try_issue(&empty).is_err());
}

#[cfg(unix)]
#[test]
fn files_are_written_with_private_keys_unreadable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test-ca");
    let id = ca.issue(&CertSpec::client("alice"));
    // A pre-existing, world-readable key file is tightened too.
    std::fs::write(dir.path().join("alice.key"), "old").expect("old key");
    let (crt, key) = id.write(dir.path(), "alice").expect("written");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&crt) & 0o600, 0o600);
    assert_eq!(std::fs::read_to_string(&crt).expect("crt"), id.cert_pem);
    assert_eq!(std::fs::read_to_string(&key).expect("key"), id.key_pem);
    let (ca_crt, ca_key) = ca.write(dir.path(), "test-ca").expect("CA written");
    assert_eq!(mode(&ca_key), 0o600);
    assert_eq!(std::fs::read_to_string(ca_crt).expect("crt"), ca.cert_pem());
}

#[test]
fn the_layout_is_complete_and_works_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nets = ["market-regulation", "tax"];
    let started = std::time::Instant::now();
    let pki = Pki::generate(dir.path(), &nets).expect("generated");
    assert!(started.elapsed().as_secs() < 5, "generation is fast");

    // Every listed file exists, and the file names depend only on the network names.
    let files = pki.files();
    let mut names: Vec<String> = files
        .iter()
        .map(|f| {
            assert!(f.path.is_file(), "{} missing", f.path.display());
            f.path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(names, on_disk, "Pki::files lists exactly what was written");
    assert_eq!(names.len(), 5 * 2 + 10 * 2 + 2 + nets.len() * 8);
    // The crate docs' table names every file (with <net> for the network).
    let docs = include_str!("lib.rs");
    for name in &names {
        let generic = nets
            .iter()
            .fold(name.clone(), |n, net| n.replace(net, "<net>"));
        let stem = generic
            .rsplit_once('.')
            .map_or(generic.as_str(), |(s, _)| s);
        let ext = generic.rsplit_once('.').map_or("", |(_, e)| e);
        let documented = docs.contains(&format!("`{generic}`"))
            || (ext == "key" && docs.contains(&format!("`{stem}.crt`, `.key`")))
            || (ext == "key" && stem.ends_with("-ca") && docs.contains("`*-ca.key`"));
        assert!(documented, "{generic} is not in the crate docs' table");
    }

    let ca_of = |files: &CaFiles| files.cert_pem().to_owned();
    let gateway_roots = ca_of(&pki.gateway_ca);
    let gateway_clients = |crls: bool| {
        let cas = [pki.bureau_ca.cert_pem(), pki.ministry_ca.cert_pem()];
        let crl_pems: Vec<&str> = if crls {
            vec![&pki.bureau_crl.pem, &pki.ministry_crl.pem]
        } else {
            vec![]
        };
        let verifier = client_verifier(&cas, &crl_pems).expect("verifier");
        Arc::new(
            server_config_with_verifier(&pki.gateway.cert_pem, &pki.gateway.key_pem, verifier)
                .expect("gateway server config"),
        )
    };
    let connect = |id: &Issued, name: &str| {
        let client =
            Arc::new(client_config(&[&gateway_roots], &id.cert_pem, &id.key_pem).expect("client"));
        handshake(client, gateway_clients(true), name)
    };
    // The gateway's server certificate answers to all its names.
    for name in ["localhost", "gateway.yiwang.internal", "127.0.0.1", "::1"] {
        let done = connect(&pki.bureau_fuzhou, name).expect(name);
        assert_eq!(done.client_cn.as_deref(), Some(BUREAU_FUZHOU_CN));
    }
    for (id, cn) in [
        (&pki.platform, PLATFORM_CN),
        (&pki.operator, OPERATOR_CN),
        (&pki.auditor, AUDITOR_CN),
    ] {
        let done = connect(id, "localhost").expect(cn);
        assert_eq!(done.client_cn.as_deref(), Some(cn));
    }
    // The hostile ones all carry Fuzhou's name and are all refused.
    for hostile in [&pki.expired_bureau, &pki.rogue_bureau, &pki.revoked_bureau] {
        assert_eq!(hostile.common_name, BUREAU_FUZHOU_CN);
        let err = connect(hostile, "localhost").expect_err("hostile certificate");
        assert_eq!(err.side, "server", "{err}");
    }
    let err = connect(&pki.revoked_bureau, "localhost").expect_err("revoked");
    assert!(
        matches!(cert_error(&err.error), Some(CertificateError::Revoked)),
        "{err}"
    );
    // Without the CRLs only the revoked one gets in.
    let client = Arc::new(
        client_config(
            &[&gateway_roots],
            &pki.revoked_bureau.cert_pem,
            &pki.revoked_bureau.key_pem,
        )
        .expect("client"),
    );
    handshake(client, gateway_clients(false), "localhost").expect("no CRL loaded");

    for net in &pki.networks {
        assert_eq!(pki.network(&net.name).map(|n| &n.name), Some(&net.name));
        assert_eq!(net.server_name, format!("{}.zwfw.internal", net.name));
        // The gateway reaches the simulator with its per-network client certificate,
        // by the server name only.
        let gateway = Arc::new(
            client_config(
                &[net.ca.cert_pem()],
                &net.gateway_client.cert_pem,
                &net.gateway_client.key_pem,
            )
            .expect("gateway client"),
        );
        let sim = mtls_server(&net.ca, &net.server);
        let done = handshake(Arc::clone(&gateway), Arc::clone(&sim), &net.server_name)
            .expect("gateway to simulator");
        assert_eq!(done.client_cn.as_deref(), Some(GATEWAY_CLIENT_CN));
        let err = handshake(Arc::clone(&gateway), Arc::clone(&sim), "127.0.0.1")
            .expect_err("no IP address in a ministry's certificate");
        assert_eq!(err.side, "client");
        // Another network's gateway certificate is refused.
        let other = pki
            .networks
            .iter()
            .find(|n| n.name != net.name)
            .expect("two nets");
        let wrong = Arc::new(
            client_config(
                &[net.ca.cert_pem()],
                &other.gateway_client.cert_pem,
                &other.gateway_client.key_pem,
            )
            .expect("client"),
        );
        handshake(wrong, sim, &net.server_name).expect_err("other network's CA");
        // The simulator pushes to the gateway with its ministry identity.
        let done = connect(&net.push_client, "127.0.0.1").expect("push client");
        assert_eq!(done.client_cn, Some(format!("{}-push", net.name)));
    }

    // The webhook receiver and the gateway as its client.
    let receiver = mtls_server(&pki.platform_ca, &pki.platform_webhook);
    let gateway = Arc::new(
        client_config(
            &[pki.platform_ca.cert_pem()],
            &pki.gateway_to_platform.cert_pem,
            &pki.gateway_to_platform.key_pem,
        )
        .expect("client"),
    );
    for name in ["localhost", "127.0.0.1"] {
        let done = handshake(Arc::clone(&gateway), Arc::clone(&receiver), name).expect(name);
        assert_eq!(done.client_cn.as_deref(), Some(GATEWAY_CLIENT_CN));
    }

    // The files are the same as the struct's PEMs, and reload.
    let on_disk = std::fs::read_to_string(&pki.gateway.cert_path).expect("gateway.crt");
    assert_eq!(on_disk, pki.gateway.cert_pem);
    let paths = NetworkPaths::new(dir.path(), "tax");
    let tax = pki.network("tax").expect("tax");
    assert_eq!(paths.server_cert, tax.server.cert_path);
    assert_eq!(paths.server_key, tax.server.key_path);
    assert_eq!(paths.ca_cert, tax.ca.cert_path);
    assert_eq!(paths.gateway_ca_cert, pki.gateway_ca.cert_path);
    assert_eq!(paths.push_cert, tax.push_client.cert_path);
    assert_eq!(paths.push_key, tax.push_client.key_path);
    assert_eq!(paths.gateway_client_cert, tax.gateway_client.cert_path);
    assert_eq!(paths.gateway_client_key, tax.gateway_client.key_path);

    // Generating again over the same directory gives the same file names, fresh keys.
    let again = Pki::generate(dir.path(), &nets).expect("regenerated");
    let again_names: Vec<_> = again.files().into_iter().map(|f| f.path).collect();
    let first_names: Vec<_> = files.into_iter().map(|f| f.path).collect();
    assert_eq!(again_names, first_names);
    assert_ne!(
        again.gateway.spki_sha256_b64(),
        pki.gateway.spki_sha256_b64()
    );
}

#[test]
fn network_names_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [
        &["bureau"][..],
        &["Tax"],
        &[""],
        &["tax", "tax"],
        &["-x"],
        &["a/b"],
    ] {
        assert!(Pki::generate(dir.path(), bad).is_err(), "{bad:?} accepted");
    }
    let pki = Pki::generate(dir.path(), &[]).expect("no network at all is fine");
    assert!(pki.networks.is_empty());
}
