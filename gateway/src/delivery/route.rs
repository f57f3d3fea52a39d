//! Routes: which networks an item's case goes to, in which order, and what
//! each step takes from the results of the steps before it (a chained
//! route: market regulation's licence number to tax and public security).
//! The configuration holds the spanned form it checks; this is the form the
//! intake runs on.

use crate::config::ItemConfig;
use std::collections::BTreeMap;
use toml::Spanned;

/// One step of an item's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStep {
    pub network: String,
    /// Networks whose delivery (and result fields) this step waits for.
    pub after: Vec<String>,
    /// Input name → `<network>.<result field>` it is filled from.
    pub inputs: BTreeMap<String, String>,
}

/// Every item's route, by item code.
#[derive(Debug, Clone, Default)]
pub struct Routes(BTreeMap<String, Vec<RouteStep>>);

impl Routes {
    /// The routes of the `[items]` table (already checked by the config).
    pub fn from_config(items: &BTreeMap<String, Spanned<ItemConfig>>) -> Routes {
        Routes(
            items
                .iter()
                .map(|(code, item)| {
                    let steps = item.get_ref().route.iter().map(|s| step(s.get_ref()));
                    (code.clone(), steps.collect())
                })
                .collect(),
        )
    }

    /// The route of an item.
    pub fn get(&self, item: &str) -> Option<&[RouteStep]> {
        self.0.get(item).map(Vec::as_slice)
    }

    /// Every item's route, by item code.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[RouteStep])> {
        self.0
            .iter()
            .map(|(code, steps)| (code.as_str(), steps.as_slice()))
    }
}

fn step(s: &crate::config::RouteStep) -> RouteStep {
    RouteStep {
        network: s.network.get_ref().clone(),
        after: s.after.iter().map(|a| a.get_ref().clone()).collect(),
        inputs: s
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect(),
    }
}
