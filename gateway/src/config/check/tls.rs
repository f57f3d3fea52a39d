//! TLS, both ways: `[tls]` (the listeners' server side, with each listener's
//! own client CAs and CRLs) and the client side of every origin the gateway
//! calls (`[networks.X.tls]`, `[subscribers.X.tls]`). No plaintext unless a
//! table says `plaintext = true`; the system trust store is never used.

use super::{Problems, must_exist, place};
use crate::config::types::{Config, listener_tls};
use crate::tls::ClientTlsConfig;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// `[tls]` must be there, and every file it names for every listener must exist.
pub(super) fn check_server(config: &Config, p: &mut Problems<'_>, base: &Path) {
    let Some(tls) = &config.tls else {
        p.at(
            0..0,
            "[tls] is missing: every listener is mutually authenticated TLS \
             (cert, key and client-ca; see config/yiwang.example.toml)",
        );
        return;
    };
    let span = tls.span();
    let l = &config.listeners;
    let mut listeners = vec![("intake", &l.intake)];
    listeners.extend(l.callbacks.iter().map(|l| ("callbacks", l)));
    listeners.extend(l.admin.iter().map(|l| ("admin", l)));
    for (listener, l) in listeners {
        let server = listener_tls(tls.get_ref(), l);
        let what = format!("[tls] for the {listener} listener");
        must_exist(p, base, &span, &what, "cert", &server.cert);
        must_exist(p, base, &span, &what, "key", &server.key);
        if server.client_ca.is_empty() {
            p.at(
                span.clone(),
                format!("{what}: client-ca is empty; no client could connect"),
            );
        }
        for f in &server.client_ca {
            must_exist(p, base, &span, &what, "client-ca", f);
        }
        for f in &server.crl {
            must_exist(p, base, &span, &what, "crl", f);
        }
    }
}

/// An origin the gateway calls: `https://` needs `[… .tls]` (the peer's CA
/// and our client certificate); `http://` needs an explicit `plaintext = true`.
pub(super) fn check_origins<'a>(
    p: &mut Problems<'_>,
    base: &Path,
    what: &str,
    span: &Range<usize>,
    origins: impl Iterator<Item = &'a Spanned<String>>,
    tls: Option<&Spanned<ClientTlsConfig>>,
    plaintext: bool,
) {
    for origin in origins {
        let uri = origin.get_ref().parse::<http::Uri>().ok();
        match uri.as_ref().and_then(|u| u.scheme_str()) {
            Some("https") if tls.is_none() => p.at(
                origin.span(),
                format!(
                    "{what}: {} is https but there is no tls table (the peer's CA, the gateway's client certificate and key)",
                    origin.get_ref()
                ),
            ),
            Some("http") if !plaintext => p.at(
                origin.span(),
                format!(
                    "{what}: {} is plaintext http; use https with a tls table, or set plaintext = true for a lab set-up",
                    origin.get_ref()
                ),
            ),
            _ => {}
        }
    }
    if let Some(tls) = tls {
        check_client(p, base, what, &place(tls, span), tls.get_ref());
    }
}

/// A client TLS table: a CA, existing files, pins that are sha256 digests.
fn check_client(
    p: &mut Problems<'_>,
    base: &Path,
    what: &str,
    at: &Range<usize>,
    c: &ClientTlsConfig,
) {
    if c.ca.is_empty() {
        p.at(
            at.clone(),
            format!("{what}: tls.ca is empty; name the peer's CA (the system store is never used)"),
        );
    }
    for f in &c.ca {
        must_exist(p, base, at, what, "tls.ca", f);
    }
    for f in &c.crl {
        must_exist(p, base, at, what, "tls.crl", f);
    }
    must_exist(p, base, at, what, "tls.cert", &c.cert);
    must_exist(p, base, at, what, "tls.key", &c.key);
    for pin in &c.pin_sha256 {
        if !is_sha256_base64(pin) {
            p.at(
                at.clone(),
                format!("{what}: tls.pin-sha256 {pin:?} is not the base64 of a sha256 digest"),
            );
        }
    }
}

fn is_sha256_base64(pin: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(pin)
        .is_ok_and(|b| b.len() == 32)
}
