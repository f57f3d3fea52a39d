//! `[storage]` / `[store]`: a PostgreSQL backend has a URL the driver can
//! parse, one password source at most and no password written into a URL
//! that leaves the machine, a pool it can open, and a CA file that is there;
//! the embedded backend takes none of these keys (a half-switched
//! configuration would silently keep the old store).

use super::Problems;
use crate::config::types::{Config, MAX_STORE_POOL, StorageBackend};
use std::path::Path;

pub(super) fn check(config: &Config, p: &mut Problems<'_>, base: &Path) {
    let s = &config.storage;
    if s.backend == StorageBackend::Sled {
        let postgres_only = [
            ("url", s.url.as_ref().map(|u| u.span())),
            ("password-file", s.password_file.as_ref().map(|v| v.span())),
            ("password-env", s.password_env.as_ref().map(|v| v.span())),
            ("tls-ca", s.tls_ca.as_ref().map(|v| v.span())),
        ];
        for (key, span) in postgres_only {
            if let Some(span) = span {
                p.at(
                    span,
                    format!(
                        "storage.{key} is for backend = \"postgres\", but the backend is \"sled\": set backend = \"postgres\" or remove {key}"
                    ),
                );
            }
        }
        return;
    }
    let Some(url) = &s.url else {
        p.at(
            p.key_span("backend"),
            "storage backend \"postgres\" needs url = \"postgres://<user>@<host>:<port>/<database>\"",
        );
        return;
    };
    match url.get_ref().parse::<tokio_postgres::Config>() {
        Err(e) => p.at(
            url.span(),
            format!("storage.url is not a PostgreSQL URL: {e}"),
        ),
        Ok(c) => {
            if c.get_password().is_some() && !is_loopback(&c) {
                p.at(
                    url.span(),
                    "storage.url holds a password for a database off this machine: put it in password-file or password-env (a password in the URL is for a loopback development database only)",
                );
            }
        }
    }
    if let (Some(_), Some(env)) = (&s.password_file, &s.password_env) {
        p.at(
            env.span(),
            "storage.password-file and storage.password-env are both set: keep one",
        );
    }
    if let Some(file) = &s.password_file
        && let Err(e) = std::fs::metadata(base.join(file.get_ref()))
    {
        p.at(
            file.span(),
            format!(
                "storage.password-file {} cannot be read: {e}",
                file.get_ref().display()
            ),
        );
    }
    if let Some(ca) = &s.tls_ca
        && let Err(e) = std::fs::metadata(base.join(ca.get_ref()))
    {
        p.at(
            ca.span(),
            format!(
                "storage.tls-ca {} cannot be read: {e}",
                ca.get_ref().display()
            ),
        );
    }
    if s.pool_size == 0 || s.pool_size > MAX_STORE_POOL {
        p.at(
            p.key_span("pool-size"),
            format!(
                "storage.pool-size {} is outside 1..={MAX_STORE_POOL} (the default is 16)",
                s.pool_size
            ),
        );
    }
}

/// Every host is this machine (a development database).
fn is_loopback(c: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    c.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }) && c.get_hostaddrs().iter().all(|ip| ip.is_loopback())
}
