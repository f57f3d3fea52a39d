//! The open connections of one listener and the client certificate each was
//! established with, so that a CRL reload can close those it revokes.
//!
//! # Why
//!
//! A TLS connection is authenticated once, at its handshake. A client that
//! keeps its connection busy (HTTP/1.1 keep-alive) would otherwise go on
//! being served under a certificate revoked since: the new CRL only refuses
//! its next handshake. With `[tls] close-revoked-connections` (the default),
//! every reload that swaps a listener's configuration re-checks the chain of
//! every open connection with the **new** client verifier — the same rustls
//! WebPKI verifier, CRL signatures and policy that judge a handshake — and
//! cancels the connections whose certificate it now finds revoked. The
//! connection's owner (the HTTP server) then shuts it down gracefully: the
//! request in progress is answered, the next one is not read.
//!
//! Only a `Revoked` verdict closes a connection: a certificate that expired
//! while its connection was open, or a CA removed from `client-ca`, is left
//! alone (those are not what the setting promises).
//!
//! # Races
//!
//! A connection accepted under the old configuration may register after the
//! sweep that followed a swap. [`OpenConnections::register`] therefore checks
//! the new entry against the verifier in force right after inserting it:
//! either the sweep sees the entry, or the entry sees the swapped verifier.

use rustls::CertificateError;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

struct Open {
    chain: Vec<CertificateDer<'static>>,
    closed: CancellationToken,
}

/// The open connections of one listener.
#[derive(Default)]
pub struct OpenConnections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
}

/// One registered connection; dropping it unregisters the connection.
pub struct Registration {
    id: u64,
    registry: Arc<OpenConnections>,
    closed: CancellationToken,
}

impl Registration {
    /// Cancelled when the connection's certificate is found revoked.
    pub fn revoked(&self) -> &CancellationToken {
        &self.closed
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl OpenConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection established with `chain` (leaf first), then
    /// checks it against `current` (the verifier in force now).
    pub(crate) fn register(
        self: &Arc<Self>,
        chain: &[CertificateDer<'_>],
        current: &dyn ClientCertVerifier,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let closed = CancellationToken::new();
        let chain: Vec<CertificateDer<'static>> =
            chain.iter().map(|c| c.clone().into_owned()).collect();
        let revoked_now = is_revoked(current, &chain);
        self.lock().insert(
            id,
            Open {
                chain,
                closed: closed.clone(),
            },
        );
        if revoked_now {
            closed.cancel();
        }
        Registration {
            id,
            registry: Arc::clone(self),
            closed,
        }
    }

    /// Cancels every open connection whose certificate `verifier` finds
    /// revoked; returns how many it cancelled (each for the first time).
    pub(crate) fn close_revoked(&self, verifier: &dyn ClientCertVerifier) -> usize {
        let open = self.lock();
        let mut closed = 0;
        for conn in open.values() {
            if !conn.closed.is_cancelled() && is_revoked(verifier, &conn.chain) {
                conn.closed.cancel();
                closed += 1;
            }
        }
        closed
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `verifier` refuses `chain` because a certificate is revoked.
fn is_revoked(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'_>]) -> bool {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return false;
    };
    matches!(
        verifier.verify_client_cert(leaf, intermediates, UnixTime::now()),
        Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
    )
}

#[cfg(test)]
mod tests {
    use crate::tls::{ServerTls, ServerTlsConfig};
    use std::net::{IpAddr, Ipv4Addr};
    use yiwang_pki::{Ca, CertSpec};

    #[test]
    fn a_reloaded_crl_signals_the_connections_it_revokes_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Bureau client CA");
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (cert, key) = ca
            .issue(&CertSpec::server("gateway", &["localhost"], &[localhost]))
            .write(dir.path(), "server")
            .unwrap();
        let crl = dir.path().join("ca.crl");
        std::fs::write(&crl, ca.crl(&[])).unwrap();
        let mut cfg = ServerTlsConfig {
            cert,
            key,
            client_ca: vec![ca.write(dir.path(), "ca").unwrap().0],
            crl: vec![crl.clone()],
            reload_interval_ms: 5000,
            close_revoked_connections: true,
        };
        let tls = ServerTls::load("intake", &cfg).unwrap();
        let soon_revoked = ca.issue(&CertSpec::client("soon-revoked"));
        let neighbour = ca.issue(&CertSpec::client("neighbour"));
        let revoked = tls
            .register(std::slice::from_ref(&soon_revoked.cert_der))
            .unwrap();
        let kept = tls
            .register(std::slice::from_ref(&neighbour.cert_der))
            .unwrap();
        assert_eq!(tls.open_connections(), 2);

        std::fs::write(&crl, ca.crl(&[&soon_revoked])).unwrap();
        assert!(tls.reload().unwrap());
        assert!(revoked.revoked().is_cancelled());
        assert!(!kept.revoked().is_cancelled());

        // A connection established under the old CRL that registers only
        // now is signalled at once.
        let late = tls
            .register(std::slice::from_ref(&soon_revoked.cert_der))
            .unwrap();
        assert!(late.revoked().is_cancelled());
        drop((revoked, late));
        assert_eq!(tls.open_connections(), 1, "a dropped registration leaves");

        // Off: nothing is registered.
        cfg.close_revoked_connections = false;
        let off = ServerTls::load("intake", &cfg).unwrap();
        assert!(
            off.register(std::slice::from_ref(&neighbour.cert_der))
                .is_none()
        );
        assert_eq!(off.open_connections(), 0);
    }
}
