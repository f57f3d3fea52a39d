//! P7 memory after hostile input: the gateway's resident memory after a
//! corpus of oversized and malformed cases (each refused 413 or 422), against
//! the same gateway after the same number of valid cases, in the same run.
//!
//! The corpus is issue 18's: a 3 MiB name, a 1 MiB address, 150 000 form
//! keys, a deeply nested 2.4 MB form, control and bidi characters in a name,
//! `submitted_at` in year 0000 and 2099, a 5 MiB body. The question is not
//! whether they are refused (the tests prove that) but whether the memory
//! their parsing took is given back: RSS is sampled while the corpus runs,
//! after it settles and after an idle period — for a gateway with
//! `[gateway] return-memory = false` (glibc's allocator as it comes) and one
//! with the default `true` (`gateway::memory`), one after the other.

use crate::Scale;
use crate::gateway::{GatewayProcess, Setup};
use crate::load::{Until, closed_loop, ratio};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use yiwang_e2e::case_json;

const NETWORK: &str = "p7-market";
const ITEM: &str = "SC-QYKB-001";

pub async fn run(scale: Scale) -> Result<()> {
    println!("\n== P7 memory after hostile input: refused cases against valid ones ==");
    let kept = measure(scale, false).await?;
    let returned = measure(scale, true).await?;
    let template = case_json("enterprise-establishment.json", "P7")?;
    let corpus = corpus(&template);
    let bytes: usize = corpus.iter().map(|(_, b)| b.len()).sum();
    println!(
        "\nCorpus: {} bodies, {:.1} MiB a round, {} rounds ({} requests); as many valid \
         cases before it. Each column is its own gateway, one after the other.",
        corpus.len(),
        bytes as f64 / 1048576.0,
        returned.rounds,
        returned.requests
    );
    for (answer, n) in &returned.answers {
        println!("  {answer}: {n}");
    }
    println!(
        "\n| RSS MiB | return-memory = false | ÷ after valid | return-memory = true (default) | ÷ after valid |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, moment) in [
        "started, settled",
        "after the valid cases",
        "peak during the hostile corpus",
        "after the hostile corpus, settled",
        "after a further idle period",
    ]
    .iter()
    .enumerate()
    {
        let (a, b) = (kept.rss[i], returned.rss[i]);
        println!(
            "| {moment} | {a:.0} | {:.2} | {b:.0} | {:.2} |",
            ratio(a, kept.rss[1]),
            ratio(b, returned.rss[1])
        );
    }
    println!(
        "\nHostile requests answered at {:.0}/s and {:.0}/s; valid cases accepted at {:.0}/s \
         and {:.0}/s.",
        kept.hostile_rate, returned.hostile_rate, kept.valid_rate, returned.valid_rate
    );
    Ok(())
}

/// One gateway's figures: RSS at the five moments, rates, answers.
struct Measured {
    rss: [f64; 5],
    rounds: u64,
    requests: u64,
    answers: BTreeMap<String, u64>,
    valid_rate: f64,
    hostile_rate: f64,
}

async fn measure(scale: Scale, return_memory: bool) -> Result<Measured> {
    let setup = Setup::new(&[NETWORK])?;
    setup.write_unreachable(NETWORK, ITEM)?;
    let text = std::fs::read_to_string(&setup.config)?.replacen(
        "data-dir = \"data\"\n",
        &format!("data-dir = \"data\"\nreturn-memory = {return_memory}\n"),
        1,
    );
    std::fs::write(&setup.config, text)?;
    let intake = setup.intake()?;
    let template = case_json("enterprise-establishment.json", "P7")?;
    let corpus = Arc::new(corpus(&template));
    let rounds: u64 = scale.pick(40, 4);
    let requests = rounds * corpus.len() as u64;
    let settle = Duration::from_secs(3);
    // Longer than the trim period (10 s), so a trim has run.
    let idle = Duration::from_secs(scale.pick(30, 12));

    let gateway = GatewayProcess::spawn(&setup.config)?;
    tokio::time::sleep(settle).await;
    let start = gateway.memory()?.rss_mib;

    // The baseline: as many valid cases as hostile requests follow.
    let valid = {
        let (client, template) = (intake.clone(), template.clone());
        closed_loop(8, Until::Count(requests), move |i| {
            let (client, mut case) = (client.clone(), template.clone());
            async move {
                case["case_number"] = Value::String(format!("P7-{i:07}"));
                match client.post("/v1/cases", &case).await? {
                    (202, _) => Ok(()),
                    (s, body) => bail!("a valid case was answered {s}: {body}"),
                }
            }
        })
        .await
    };
    valid.check("valid cases")?;
    tokio::time::sleep(settle).await;
    let after_valid = gateway.memory()?.rss_mib;

    // The corpus, every body once a round, 8 at a time, RSS sampled meanwhile.
    let answers = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (pid, sampling) = (gateway.pid(), sampling.clone());
        async move {
            let mut peak = 0f64;
            while sampling.load(Ordering::Relaxed) {
                if let Ok(m) = crate::gateway::Memory::of(pid) {
                    peak = peak.max(m.rss_mib);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        }
    });
    let hostile = {
        let (client, corpus, answers) = (intake.clone(), corpus.clone(), answers.clone());
        closed_loop(8, Until::Count(requests), move |i| {
            let (client, corpus, answers) = (client.clone(), corpus.clone(), answers.clone());
            async move {
                let (name, body) = &corpus[i as usize % corpus.len()];
                let (status, _) = client
                    .request_with(
                        http::Method::POST,
                        "/v1/cases",
                        "application/json",
                        &[],
                        body.clone(),
                    )
                    .await?;
                if !matches!(status, 413 | 422) {
                    bail!("{name} was answered {status}, not refused");
                }
                *answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(format!("{name} → {status}"))
                    .or_default() += 1;
                Ok(())
            }
        })
        .await
    };
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await?;
    hostile.check("hostile corpus")?;
    tokio::time::sleep(settle).await;
    let after_hostile = gateway.memory()?.rss_mib;
    tokio::time::sleep(idle).await;
    let after_idle = gateway.memory()?.rss_mib;
    gateway.stop()?;
    let answers = answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Measured {
        rss: [start, after_valid, peak, after_hostile, after_idle],
        rounds,
        requests,
        answers,
        valid_rate: valid.rate(),
        hostile_rate: hostile.rate(),
    })
}

/// The hostile bodies, each with a name for the report.
fn corpus(template: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let with = |pointer: &str, value: Value| {
        let mut case = template.clone();
        if let Some(slot) = case.pointer_mut(pointer) {
            *slot = value;
        }
        case["case_number"] = json!("P7-HOSTILE");
        serde_json::to_vec(&case).unwrap_or_default()
    };
    let many_keys: serde_json::Map<String, Value> =
        (0..150_000).map(|i| (format!("k{i}"), json!(i))).collect();
    // 2.4 MB: 100 levels deep (inside serde's recursion limit), wide at each level.
    let mut nested = json!({ "leaf": "x".repeat(1000) });
    for level in 0..100 {
        let mut wide = serde_json::Map::new();
        for k in 0..24 {
            wide.insert(format!("f{level}-{k}"), json!("y".repeat(1000)));
        }
        wide.insert("next".into(), nested);
        nested = Value::Object(wide);
    }
    vec![
        (
            "3 MiB name",
            with("/applicant/name", json!("名".repeat(1 << 20))),
        ),
        (
            "1 MiB address",
            with("/applicant/contact/address", json!("址".repeat(349_526))),
        ),
        ("150 000 form keys", with("/form", Value::Object(many_keys))),
        ("2.4 MB nested form", with("/form", nested)),
        (
            "control and bidi characters",
            with("/applicant/name", json!("张\u{0}三\u{7}\u{202e}")),
        ),
        (
            "year 0000",
            with("/submitted_at", json!("0000-01-01T00:00:00+08:00")),
        ),
        (
            "year 2099",
            with("/submitted_at", json!("2099-01-01T00:00:00+08:00")),
        ),
        ("5 MiB body", vec![b' '; 5 << 20]),
    ]
}
