//! `[runtime]`: a set `max-instances` must hold every network's reserved
//! instance slots (`concurrency + callback-concurrency + poller + follow-up + 1`), or one
//! network's calls could take another's and fail them to instantiate.

use super::Problems;
use crate::config::types::Config;

pub(super) fn check(config: &Config, p: &mut Problems<'_>) {
    let Some(max) = config.runtime.max_instances else {
        return;
    };
    let reserved: Vec<(&String, u32)> = config
        .networks
        .iter()
        .map(|(name, net)| (name, net.get_ref().reserved_slots()))
        .collect();
    let sum = reserved
        .iter()
        .fold(0u32, |sum, (_, r)| sum.saturating_add(*r));
    if sum <= max {
        return;
    }
    let each = reserved
        .iter()
        .map(|(name, _)| {
            let net = config.networks[*name].get_ref();
            format!(
                "`{name}` {} (concurrency {} + callback-concurrency {} + poller {} + follow-up {} + 1)",
                net.reserved_slots(),
                net.concurrency.get_ref(),
                net.callback_concurrency.get_ref(),
                u32::from(net.poll_interval_ms.is_some()),
                u32::from(net.follow_up.is_some()),
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    p.at(
        p.key_span("max-instances"),
        format!(
            "runtime.max-instances {max} is below the {sum} instance slots the networks reserve: \
             {each}; raise it to at least {sum}, or leave it unset to size the pool from the networks"
        ),
    );
}
