//! `[principals.<name>]`: the policy's own rules (`Policy::check_config`),
//! with the networks they may name; each problem points at its principal.

use super::Problems;
use crate::config::Config;
use crate::policy::Policy;
use std::collections::BTreeSet;

pub(super) fn check(config: &Config, p: &mut Problems<'_>) {
    let networks: BTreeSet<&str> = config.networks.keys().map(String::as_str).collect();
    let principals = config.principals.iter().map(|(n, c)| (n, c.get_ref()));
    for (name, problem) in Policy::check_config(principals, &networks) {
        let span = config
            .principals
            .get(&name)
            .map(|c| c.span())
            .unwrap_or(0..0);
        p.at(span, problem);
    }
}
