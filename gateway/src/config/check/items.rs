//! `[items."<code>"]`: a route reaches at least one configured network, each
//! once; a step waits only for earlier steps (so `after` can have no cycle)
//! and reads inputs only from a result field of a network it waits for.

use super::Problems;
use crate::config::types::{ItemConfig, NetworkConfig, RESULT_FIELDS, RouteStep};
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

pub(super) fn check(
    code: &str,
    item: &Spanned<ItemConfig>,
    networks: &BTreeMap<String, Spanned<NetworkConfig>>,
    p: &mut Problems<'_>,
) {
    if item.get_ref().route.is_empty() {
        p.at(
            item.span(),
            format!("item `{code}`: route is empty; a case must reach at least one network"),
        );
    }
    let mut earlier: BTreeSet<&str> = BTreeSet::new();
    for step in &item.get_ref().route {
        let step = step.get_ref();
        let network = step.network.get_ref().as_str();
        check_network(code, step, networks, &earlier, p);
        for dep in &step.after {
            if !earlier.contains(dep.get_ref().as_str()) {
                p.at(
                    dep.span(),
                    format!(
                        "item `{code}`: `{network}` waits for `{}`, which is not an earlier step of this route",
                        dep.get_ref()
                    ),
                );
            }
        }
        check_inputs(code, step, p);
        earlier.insert(network);
    }
}

/// The step's network is configured and not already in the route.
fn check_network(
    code: &str,
    step: &RouteStep,
    networks: &BTreeMap<String, Spanned<NetworkConfig>>,
    earlier: &BTreeSet<&str>,
    p: &mut Problems<'_>,
) {
    let network = step.network.get_ref().as_str();
    if !networks.contains_key(network) {
        p.at(
            step.network.span(),
            format!("item `{code}`: route names network `{network}`, which is not configured"),
        );
    }
    if earlier.contains(network) {
        p.at(
            step.network.span(),
            format!("item `{code}`: network `{network}` appears twice in the route"),
        );
    }
}

/// Each input is `<network>.<field>`, the network one the step waits for.
fn check_inputs(code: &str, step: &RouteStep, p: &mut Problems<'_>) {
    let network = step.network.get_ref();
    for (input, source) in &step.inputs {
        let (from, field) = source.get_ref().split_once('.').unwrap_or(("", ""));
        if !step.after.iter().any(|a| a.get_ref() == from) {
            p.at(
                source.span(),
                format!(
                    "item `{code}`: input `{input}` of `{network}` reads from `{from}`, which `{network}` does not wait for (add it to `after`)"
                ),
            );
        }
        if !RESULT_FIELDS.contains(&field) {
            p.at(
                source.span(),
                format!(
                    "item `{code}`: input `{input}`: field `{field}` is not one of {}",
                    RESULT_FIELDS.join(", ")
                ),
            );
        }
    }
}
