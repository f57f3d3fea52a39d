//! kill -9 at any instant loses no accepted case and creates no duplicate
//! ministry record: the gateway runs as a separate process, is killed with
//! SIGKILL again and again during a burst of intakes, and afterwards every
//! case that got a 202 is delivered exactly once per network, counted in
//! the simulators' own stores. The audit trail survives the same kills: it
//! still verifies, every acknowledged case has its intake record, and each
//! start signed what the run before it left unsigned.

use anyhow::{Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yiwang_e2e::{
    Client, LISTENERS, NetworkSpec, Pki, config_text, delivery_state, permit_case, start_simulator,
};
use yiwang_simulator::Simulator;

const MR: &str = "market-regulation";
const ZJ: &str = "housing-construction";

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Gateway {
    /// SIGTERM: a clean stop (the audit trail closes with a checkpoint).
    fn terminate(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()?;
        self.0.wait()?;
        Ok(())
    }
}

/// Start `yiwang serve` and wait for its intake listener line.
fn start(config: &std::path::Path) -> Result<Gateway> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn");
    let (child, _) = yiwang_e2e::spawn_serving(cmd)?;
    Ok(Gateway(child))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_burst_loses_nothing_and_duplicates_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mr = NetworkSpec::market_regulation(MR);
    let zj = NetworkSpec::housing_construction(ZJ);
    let pki = Pki::generate(&dir.path().join("pki"), &[MR, ZJ])?;
    let mut sims: BTreeMap<&str, Simulator> = BTreeMap::new();
    for (name, spec) in [(MR, &mr), (ZJ, &zj)] {
        let sim = spec.sim.clone().with_stage_interval(Duration::ZERO);
        sims.insert(name, start_simulator(name, &pki, sim, "127.0.0.1:0").await?);
    }
    // Slow replies make kills land while calls are in flight.
    sims[ZJ].faults().update(|f| f.latency_ms = 30);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let listeners = LISTENERS.replacen(
        "intake = { addr = \"127.0.0.1:0\" }",
        &format!("intake = {{ addr = \"127.0.0.1:{port}\" }}"),
        1,
    );
    let items = format!(
        "[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\" }}]\n"
    );
    let text = config_text(
        &[(mr, sims[MR].base_url()), (zj, sims[ZJ].base_url())],
        &items,
        "",
        &listeners,
        "",
    );
    let config = dir.path().join("yiwang.toml");
    std::fs::write(&config, text)?;
    yiwang_e2e::sign_adapters(&config)?;
    let client = Client::new(
        format!("https://127.0.0.1:{port}"),
        &pki,
        &pki.bureau_fuzhou,
    )?;

    let accepted: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let attempted: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, accepted, attempted, stop) = (
            client.clone(),
            accepted.clone(),
            attempted.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let number = format!("KILL-{w}-{n:05}");
                let Ok(case) = permit_case(&number) else {
                    return;
                };
                attempted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(number.clone());
                // Retry the same case until it is acknowledged: intake is idempotent.
                loop {
                    match client.post("/v1/cases", &case).await {
                        Ok((202, _)) => {
                            accepted
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(number.clone());
                            break;
                        }
                        _ if stop.load(std::sync::atomic::Ordering::Relaxed) => return,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                n += 1;
            }
        }));
    }

    let mut kills = 0;
    for round in 0..8u64 {
        let gw = start(&config)?;
        // Vary the moment of death.
        tokio::time::sleep(Duration::from_millis(250 + (round * 137) % 400)).await;
        drop(gw); // SIGKILL
        kills += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let accepted = accepted.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let attempted = attempted.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        accepted.len() >= 10,
        "the burst got only {} cases in",
        accepted.len()
    );

    all_but_the_last_run_signed(&dir.path().join("data/audit"))?;

    // Restart for good: everything accepted must arrive.
    let gw = start(&config)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for case in &accepted {
        loop {
            let (status, v): (u16, Value) = client
                .get(&format!("/v1/cases/{case}"))
                .await
                .unwrap_or((0, Value::Null));
            assert_ne!(status, 404, "accepted case {case} was lost");
            if status == 200
                && [MR, ZJ]
                    .iter()
                    .all(|n| delivery_state(&v, n) == "delivered")
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("case {case} not delivered everywhere after the kills: {v}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (name, sim) in &sims {
        let mut per_case: BTreeMap<String, usize> = BTreeMap::new();
        for c in sim.cases() {
            let unified = c.unified_case_number.clone().unwrap_or_default();
            assert!(
                attempted.contains(&unified),
                "{name} holds a case nobody sent: {unified}"
            );
            *per_case.entry(unified).or_default() += 1;
        }
        for case in &accepted {
            assert_eq!(
                per_case.get(case),
                Some(&1),
                "{name}: {case} must exist exactly once"
            );
        }
        let dupes: Vec<_> = per_case.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            dupes.is_empty(),
            "{name}: duplicate ministry records {dupes:?}"
        );
    }
    // The audit trail went through the same kills: after a clean stop it
    // verifies end to end, and every acknowledged case has an intake record.
    gw.terminate()?;
    let audit = dir.path().join("data/audit");
    let report = yiwang_audit::verify(&audit, None)?;
    assert!(
        report.broken.is_none(),
        "audit trail broken: {:?}",
        report.broken
    );
    let audited: BTreeSet<String> = yiwang_audit::query(
        &audit,
        &yiwang_audit::Query {
            kind: Some(yiwang_audit::Kind::Intake),
            ..Default::default()
        },
    )
    .filter_map(|r| r.ok())
    .filter(|r| r.detail["status"] == 202)
    .filter_map(|r| r.case)
    .collect();
    let unaudited: Vec<_> = accepted.difference(&audited).collect();
    assert!(
        unaudited.is_empty(),
        "acknowledged without an intake record: {unaudited:?}"
    );
    eprintln!(
        "kill -9 ×{kills}: {} cases acknowledged, {} attempted, all delivered exactly once to {} networks; audit trail of {} records intact",
        accepted.len(),
        attempted.len(),
        sims.len(),
        report.records
    );
    Ok(())
}

/// After kills only (no clean stop), every record written before the last
/// start is covered by a signed checkpoint: each open signed what the run
/// before it left unsigned.
fn all_but_the_last_run_signed(audit: &std::path::Path) -> Result<()> {
    use yiwang_audit::Kind;
    let report = yiwang_audit::verify(audit, None)?;
    assert!(report.intact(), "audit trail broken: {:?}", report.broken);
    let records: Vec<yiwang_audit::Record> =
        yiwang_audit::query(audit, &yiwang_audit::Query::default())
            .filter_map(|r| r.ok())
            .collect();
    // The trail's own `start` (it names the pid), not the gateway's.
    let opened = |r: &yiwang_audit::Record| r.kind == Kind::Start && r.detail.get("pid").is_some();
    let Some(last_start) = records.iter().rposition(opened) else {
        bail!("no start record in the audit trail");
    };
    // The last open's own notes come just before its `start`.
    let Some(earlier_run) = records[..last_start].iter().rfind(|r| {
        !matches!(
            r.kind,
            Kind::Recovered | Kind::ChainBreakFound | Kind::KeyChange
        )
    }) else {
        bail!("the trail holds a single run");
    };
    assert!(
        report.last_checkpoint_seq >= Some(earlier_run.seq),
        "records up to seq {} (written before the last start) are unsigned: {report:?}",
        earlier_run.seq
    );
    let opens = records.iter().filter(|r| opened(r)).count() as u64;
    assert!(
        report.checkpoints >= opens - 1,
        "{opens} opens but {} checkpoints: not every open signed",
        report.checkpoints
    );
    Ok(())
}
