//! Fuzz targets: the gateway's parsers of untrusted input, each with the
//! properties it must keep on *any* bytes. cargo-fuzz runs them under
//! libFuzzer (`gateway/fuzz/`, see docs/security-model.md § Fuzzing); the
//! unit tests below run the same functions over the seed corpus and
//! thousands of deterministic mutations of it on every `cargo test`, so a
//! regression shows up in CI without a fuzzer.
//!
//! - [`case`]: a case body from a bureau (`parse_case`: JSON, schema, ID
//!   checksums). Never panics; an accepted case re-serializes to a body that
//!   is accepted again as the same case.
//! - [`config`]: a configuration file. Never panics; every error names a
//!   place in the file.
//! - [`callback`]: what an adapter makes of a ministry push (the
//!   `callback-outcome` it returns: status, events) going through the
//!   gateway's normalization and into a case record. Never panics; applying
//!   the same events twice adds nothing the second time; the record still
//!   serializes and reads back.

use crate::delivery::backflow::apply_events;
use crate::runtime::{CallbackOutcome, Decision, Event, HttpResponse, Stage};
use crate::store::CaseRecord;
use std::path::Path;

/// A bureau's case body.
pub fn case(data: &[u8]) {
    let Ok(validated) = yiwang_schema::parse_case(data) else {
        return;
    };
    let again = serde_json::to_vec(&validated.case).unwrap_or_default();
    match yiwang_schema::parse_case(&again) {
        Ok(v) => assert_eq!(v.case, validated.case, "a case must round-trip"),
        Err(e) => panic!("an accepted case re-serialized to a refused one: {e}"),
    }
}

/// A configuration file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = crate::config::Config::parse(text, Path::new("/nonexistent/fuzz.toml")) {
        assert!(
            !errors.errors.is_empty(),
            "a refusal names at least one problem"
        );
        let lines = text.lines().count().max(1);
        for e in &errors.errors {
            assert!(e.line <= lines + 1, "error line {} past the file", e.line);
        }
    }
}

/// A tiny reader that turns fuzz bytes into structured values.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A string up to the next 0xff byte (lossy UTF-8).
    fn text(&mut self) -> String {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0xff)
            .unwrap_or(self.0.len());
        let (s, rest) = self.0.split_at(end);
        self.0 = rest.get(1..).unwrap_or_default();
        String::from_utf8_lossy(s).into_owned()
    }

    fn maybe_text(&mut self) -> Option<String> {
        (self.byte() & 1 == 1).then(|| self.text())
    }
}

const STAGES: [Stage; 12] = [
    Stage::Received,
    Stage::Accepted,
    Stage::Rejected,
    Stage::SupplementRequested,
    Stage::UnderReview,
    Stage::SiteInspection,
    Stage::Decided,
    Stage::CertificateIssued,
    Stage::Completed,
    Stage::Withdrawn,
    Stage::SpecialProcedureStarted,
    Stage::SpecialProcedureEnded,
];

/// What an adapter returned for a push, built from the bytes.
fn outcome(data: &[u8]) -> CallbackOutcome {
    let mut b = Bytes(data);
    let status = u16::from_le_bytes([b.byte(), b.byte()]);
    let n = (b.byte() % 8) as usize;
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        let at = match b.byte() % 4 {
            // Mostly well-formed times, so events get past the parser.
            0 | 1 => format!(
                "2026-11-{:02}T{:02}:{:02}:00+08:00",
                1 + b.byte() % 28,
                b.byte() % 24,
                b.byte() % 60
            ),
            _ => b.text(),
        };
        events.push(Event {
            network_case_number: b.text(),
            case_number: b.maybe_text(),
            stage: STAGES[(b.byte() as usize) % STAGES.len()],
            at,
            reason: b.maybe_text(),
            supplement: (0..b.byte() % 3).map(|_| b.text()).collect(),
            decision: match b.byte() % 3 {
                0 => None,
                1 => Some(Decision::Approved),
                _ => Some(Decision::Denied),
            },
            certificate_number: b.maybe_text(),
            raw_status: b.maybe_text(),
        });
    }
    CallbackOutcome {
        events,
        response: HttpResponse {
            status,
            headers: Vec::new(),
            body: b.0.to_vec(),
        },
    }
}

/// An adapter's reading of a ministry push, through normalization into a case.
pub fn callback(data: &[u8]) {
    let Ok(normalized) = crate::runtime::normalize_callback("fuzz-net", outcome(data)) else {
        return;
    };
    let mut record = CaseRecord::blank("FZ-0001");
    // A case routed to the network: only such a case takes its events.
    let submit = crate::store::JobKind::Submit {
        after: Vec::new(),
        inputs: Default::default(),
    };
    record.push_job(
        crate::store::Destination::Network("fuzz-net".into()),
        submit,
        0,
    );
    let first = apply_events(&mut record, "fuzz-net", normalized.events.clone());
    let second = apply_events(&mut record, "fuzz-net", normalized.events);
    assert!(
        second.fresh.is_empty(),
        "the same events twice must add nothing"
    );
    assert!(first.fresh.len() <= 8);
    let json = serde_json::to_vec(&record).unwrap_or_default();
    let back: CaseRecord = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!("a record with applied events must read back: {e}");
    });
    assert_eq!(back, record);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed corpus (`gateway/fuzz/corpus/<target>/`).
    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds in {}", dir.display());
        out
    }

    /// Deterministic mutations: truncations, byte flips, insertions of
    /// structural characters, duplications (a poor man's fuzzer, bounded).
    fn mutations(seed: &[u8], rounds: usize) -> Vec<Vec<u8>> {
        let mut out = vec![seed.to_vec(), Vec::new()];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.len() as u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const SPICE: &[u8] = b"{}[]\":,\\0-9eE.\xff\xfe\x00\n ";
        for _ in 0..rounds {
            let mut m = seed.to_vec();
            for _ in 0..1 + next() % 4 {
                let len = m.len().max(1);
                let at = (next() as usize) % len;
                match next() % 5 {
                    0 => m.truncate(at),
                    1 if !m.is_empty() => m[at] ^= 1 << (next() % 8),
                    2 => m.insert(at.min(m.len()), SPICE[(next() as usize) % SPICE.len()]),
                    3 if !m.is_empty() => {
                        m.remove(at);
                    }
                    _ => {
                        let end = (at + (next() as usize) % 32).min(m.len());
                        let chunk = m[at.min(end)..end].to_vec();
                        m.splice(at.min(m.len())..at.min(m.len()), chunk);
                    }
                }
            }
            out.push(m);
        }
        out
    }

    #[test]
    fn case_target_survives_the_corpus_and_its_mutations() {
        let mut accepted = 0;
        for seed in seeds("case") {
            if yiwang_schema::parse_case(&seed).is_ok() {
                accepted += 1;
            }
            for m in mutations(&seed, 400) {
                case(&m);
            }
        }
        assert!(accepted > 0, "the corpus must hold valid cases");
        // Deep nesting and a huge number: refused, never a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        case(deep.as_bytes());
        case(b"{\"case_number\": 1e999999}");
    }

    #[test]
    fn config_target_survives_the_corpus_and_its_mutations() {
        for seed in seeds("config") {
            for m in mutations(&seed, 300) {
                config(&m);
            }
        }
        config("[".repeat(50_000).as_bytes());
    }

    #[test]
    fn callback_target_survives_the_corpus_and_its_mutations() {
        let mut applied = 0;
        for seed in seeds("callback") {
            if crate::runtime::normalize_callback("fuzz-net", outcome(&seed))
                .is_ok_and(|n| !n.events.is_empty())
            {
                applied += 1;
            }
            for m in mutations(&seed, 400) {
                callback(&m);
            }
        }
        assert!(applied > 0, "the corpus must reach apply_events");
    }
}
