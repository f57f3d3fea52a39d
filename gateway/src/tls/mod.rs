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
//!   the config it was established with, so swapping never drops one. Both
//!   sides share one state machine for this, `reload::Reloadable`.
//!
//! # Rooms
//!
//! `files` reads and parses PEM files (certificates, keys, CAs, CRLs);
//! [`server`] builds and reloads a listener's config; `peer` reads a peer's
//! identity and words a refused handshake; [`client`] builds the per-network
//! client configs ([`ocsp`] checks a ministry's stapled OCSP response);
//! `reload` swaps a config when its files change; [`open`]
//! keeps a listener's open connections so a reloaded CRL can close those it
//! revokes.

pub mod client;
mod files;
pub mod ocsp;
pub mod open;
mod peer;
pub(crate) mod reload;
pub mod server;

pub use client::{ClientTlsConfig, client_config, spki_sha256_b64};
pub(crate) use files::{Snapshot, root_store};
pub use peer::{PeerIdentity, handshake_refusal, peer_identity, peer_identity_in};
pub use server::{ServerTls, ServerTlsConfig};

use rustls::SupportedCipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as suite;
use rustls::version::{TLS12, TLS13};
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

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
