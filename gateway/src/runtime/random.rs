//! Where the host's `random-bytes` (contract 1.1) come from: the operating system's
//! generator when serving, a seeded sequence in fixture tests (the same fixture sends the
//! same nonce every run).

use rand::{RngCore, SeedableRng};
use std::sync::Mutex;

/// The most bytes `random-bytes` hands out in one call.
pub const MAX_RANDOM_BYTES: u32 = 1024;

/// Where `random-bytes` comes from.
pub trait RandomSource: Send + Sync + 'static {
    fn fill(&self, out: &mut [u8]);
}

/// The operating system's generator, through rand's thread-local CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&self, out: &mut [u8]) {
        rand::rng().fill_bytes(out);
    }
}

/// A repeatable sequence from a seed: fixture tests, where the same
/// fixture must send the same nonce every run.
#[derive(Debug)]
pub struct SeededRandom(Mutex<rand::rngs::StdRng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)))
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, out: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_source_repeats_and_the_system_one_does_not() {
        let (a, b) = (SeededRandom::new(7), SeededRandom::new(7));
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        let mut next = [0u8; 16];
        a.fill(&mut next);
        assert_ne!(x, next, "the sequence moves on");
        let (mut s, mut t) = ([0u8; 16], [0u8; 16]);
        SystemRandom.fill(&mut s);
        SystemRandom.fill(&mut t);
        assert_ne!(s, t);
    }
}
