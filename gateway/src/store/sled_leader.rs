//! Leader leases in sled: a tree of task → [`Leadership`] (JSON), changed by
//! compare-and-swap so the rule ([`leader::may_lead`]) holds however calls interleave. A
//! sled store has one writer process, so this matters only within it; the semantics are
//! the shared store's, checked by the same conformance suite.

use super::leader::{self, Leadership};
use super::{Millis, Result, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("leader leases: {e}"))
}

fn read(tree: &sled::Tree, task: &str) -> Result<(Option<sled::IVec>, Option<Leadership>)> {
    let raw = tree.get(task).map_err(backend)?;
    let parsed = match &raw {
        Some(bytes) => Some(serde_json::from_slice(bytes).map_err(backend)?),
        None => None,
    };
    Ok((raw, parsed))
}

pub(super) fn lead(
    tree: &sled::Tree,
    task: &str,
    owner: &str,
    now: Millis,
    until: Millis,
) -> Result<bool> {
    loop {
        let (raw, current) = read(tree, task)?;
        if !leader::may_lead(current.as_ref(), owner, now) {
            return Ok(false);
        }
        let next = Leadership {
            owner: owner.to_owned(),
            until,
        };
        let bytes = serde_json::to_vec(&next).map_err(backend)?;
        match tree
            .compare_and_swap(task, raw, Some(bytes))
            .map_err(backend)?
        {
            Ok(()) => return Ok(true),
            Err(_) => continue, // changed in between: decide again
        }
    }
}

pub(super) fn resign(tree: &sled::Tree, task: &str, owner: &str) -> Result<()> {
    loop {
        let (raw, current) = read(tree, task)?;
        if current.is_none_or(|c| c.owner != owner) {
            return Ok(());
        }
        if tree
            .compare_and_swap(task, raw, None::<&[u8]>)
            .map_err(backend)?
            .is_ok()
        {
            return Ok(());
        }
    }
}

pub(super) fn leader(tree: &sled::Tree, task: &str, now: Millis) -> Result<Option<Leadership>> {
    Ok(read(tree, task)?.1.filter(|l| l.until > now))
}
