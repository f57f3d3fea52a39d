//! Test and demo PKI for Yiwang's mutual TLS: certificate authorities, server and client
//! certificates, CRLs (ECDSA P-256, made with rcgen), rustls configurations for test
//! clients and servers (ring provider, TLS 1.2 and 1.3), and a complete deployment layout.
//!
//! **Never use these certificates in production**: every subject carries
//! `O=Yiwang test PKI`, CA keys are written next to the certificates.
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use yiwang_pki::{Ca, CertSpec, client_config, handshake, server_config};
//!
//! let ca = Ca::new("demo-ca");
//! let server = ca.issue(&CertSpec::server("svc", &["svc.internal"], &[]));
//! let client = ca.issue(&CertSpec::client("alice").uri("yiwang://bureau/fuzhou"));
//! let done = handshake(
//!     Arc::new(client_config(&[ca.cert_pem()], &client.cert_pem, &client.key_pem)?),
//!     Arc::new(server_config(&server.cert_pem, &server.key_pem, Some(ca.cert_pem()))?),
//!     "svc.internal",
//! )?;
//! assert_eq!(done.client_cn.as_deref(), Some("alice"));
//! let crl = ca.crl(&[&client]); // PEM, valid for 30 days
//! # let _ = crl;
//! # Ok(()) }
//! ```
//!
//! # The deployment layout
//!
//! [`Pki::generate`]`(dir, networks)` (and the `yiwang-pki` binary:
//! `yiwang-pki --out DIR --network market-regulation --network tax …`) writes these files
//! into one directory. Each `.crt` is one PEM certificate, each `.key` a PKCS#8 PEM key with
//! mode 0600, each `.crl` a PEM CRL valid for 30 days. Every CA is a self-signed root
//! (path length 0); there are no intermediates. `<net>` stands for each network name.
//!
//! | file | what it is | who holds it | who trusts it (for what) |
//! |---|---|---|---|
//! | `gateway-ca.crt` | CA of the gateway's server certificate | (public) | bureau, platform, operators, auditors and the ministries' push clients: the gateway's server certificate |
//! | `gateway.crt`, `gateway.key` | gateway server certificate: DNS `localhost`, `gateway.yiwang.internal`, IP `127.0.0.1`, `::1` | gateway (intake, admin and callback listeners) | its clients, via `gateway-ca.crt` |
//! | `bureau-ca.crt` | CA of the bureau-side client certificates | (public) | gateway: clients of intake and admin |
//! | `bureau-ca.crl` | CRL of `bureau-ca`, lists `revoked-bureau` | (public) | gateway |
//! | `bureau-fuzhou.crt`, `.key` | client: CN `fuzhou-bureau`, URI `yiwang://bureau/fuzhou` | Fuzhou bureau's approval system | gateway, via `bureau-ca` |
//! | `platform.crt`, `.key` | client: CN `unified-platform` | the unified platform | gateway, via `bureau-ca` |
//! | `operator.crt`, `.key` | client: CN `ops-1` | an operator (admin API, CLI) | gateway, via `bureau-ca` |
//! | `auditor.crt`, `.key` | client: CN `audit-1` | an auditor | gateway, via `bureau-ca` |
//! | `ministry-ca.crt` | CA of the ministries' push (callback) client certificates | (public) | gateway: clients of the callback endpoint |
//! | `ministry-ca.crl` | CRL of `ministry-ca`, empty but valid | (public) | gateway |
//! | `ministry-<net>.crt`, `.key` | client: CN `<net>-push`, URI `yiwang://ministry/<net>` | simulator `<net>`'s push client | gateway, via `ministry-ca` |
//! | `<net>-ca.crt` | ministry `<net>`'s own CA | (public) | gateway: `<net>`'s server certificate; simulator `<net>`: the gateway's client certificate |
//! | `<net>-server.crt`, `.key` | server: DNS `<net>.zwfw.internal` only, no IP (the gateway connects with a server-name override) | simulator `<net>` | gateway, via `<net>-ca` |
//! | `gateway-to-<net>.crt`, `.key` | client: CN `yiwang-gateway` | gateway, as a client of `<net>` | simulator `<net>`, via `<net>-ca` |
//! | `platform-ca.crt` | the unified platform's CA | (public) | gateway: the webhook receiver; the webhook receiver: the gateway |
//! | `platform-webhook.crt`, `.key` | server: DNS `localhost`, IP `127.0.0.1` | the platform's event (webhook) receiver | gateway, via `platform-ca` |
//! | `gateway-to-platform.crt`, `.key` | client: CN `yiwang-gateway` | gateway, as the webhook client | the webhook receiver, via `platform-ca` |
//! | `rogue-ca.crt` | a CA nobody trusts | (public) | nobody |
//! | `rogue-bureau.crt`, `.key` | client: Fuzhou's CN and URI, from `rogue-ca` | hostile tests | nobody: unknown CA |
//! | `expired-bureau.crt`, `.key` | client: Fuzhou's CN and URI, from `bureau-ca`, validity entirely in the past | hostile tests | nobody: expired |
//! | `revoked-bureau.crt`, `.key` | client: Fuzhou's CN and URI, from `bureau-ca`, listed in `bureau-ca.crl` | hostile tests | nobody once the CRL is loaded |
//! | `*-ca.key` | each CA's key | the PKI operator only (no service needs one) | — |
//!
//! The hostile certificates carry exactly the identity of `bureau-fuzhou`: a gateway must
//! refuse them for their chain, validity or revocation, not for their name. rustls refuses a
//! client certificate whose revocation status it cannot determine once any CRL is loaded,
//! so a gateway loading CRLs loads one per client CA (hence the empty `ministry-ca.crl`).
//!
//! [`Pki::files`] lists the same table for a generated layout, [`NetworkPaths`] names one
//! network's files without generating anything.
#![forbid(unsafe_code)]

mod ca;
mod layout;
mod tls;

pub use ca::{Ca, CertSpec, Issued, ORGANISATION, common_name, spki_sha256_b64};
pub use layout::{
    AUDITOR_CN, BUREAU_FUZHOU_CN, BUREAU_FUZHOU_URI, CaFiles, CrlFile, DEMO_NETWORKS, FileEntry,
    GATEWAY_CLIENT_CN, GATEWAY_DNS, GATEWAY_SERVER_CN, IssuedFiles, NetworkPaths, NetworkPki,
    OPERATOR_CN, PLATFORM_CN, Pki, RESERVED_NETWORK_NAMES, network_push_cn, network_push_uri,
    network_server_name,
};
pub use tls::{
    Handshake, HandshakeError, VERSIONS, certs_from_pem, client_config, client_config_without_cert,
    client_verifier, crls_from_pem, handshake, key_from_pem, provider, root_store, server_config,
    server_config_with_verifier, server_verifier,
};

/// The `time` crate, for [`CertSpec`]'s validity fields.
pub use time;

#[cfg(test)]
mod tests;
