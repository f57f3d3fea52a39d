//! `[audit]`: its own rules (`AuditConfig::check`); the section has no span,
//! so its problems point at the file's start.

use super::Problems;
use crate::config::Config;

pub(super) fn check(config: &Config, p: &mut Problems<'_>) {
    for problem in config.audit.check() {
        p.at(0..0, format!("[audit]: {problem}"));
    }
}
