//! `[audit]`: its own rules (`AuditConfig::check`); the section has no span,
//! so its problems point at the file's start.

use super::Problems;
use crate::config::Config;
use crate::tls::ClientTlsConfig;
use serde::Deserialize;

pub(super) fn check(config: &Config, p: &mut Problems<'_>) {
    for problem in config.audit.check() {
        p.at(0..0, format!("[audit]: {problem}"));
    }
    // The witnesses' TLS tables are the gateway's client TLS (the audit
    // crate does not know TLS).
    for (name, w) in &config.audit.witness {
        if let Some(tls) = &w.tls
            && let Err(e) = ClientTlsConfig::deserialize(tls.clone())
        {
            p.at(0..0, format!("[audit.witness.{name}.tls]: {e}"));
        }
    }
}
