//! Two gateway processes on one PostgreSQL database share one queue: cases
//! posted to either are delivered exactly once per network, counted in the
//! simulators' own stores. Midway one replica is killed with SIGKILL; the
//! other takes over its jobs once their leases expire (each verified with
//! the ministry before any resend), so nothing accepted is lost and nothing
//! is sent twice. And PostgreSQL itself stopped mid-load and started again:
//! the intake answers 503 while it is down and accepts nothing, and every
//! case accepted before and after is delivered exactly once.

use anyhow::{Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yiwang_e2e::{
    Client, LISTENERS, NetworkSpec, Pki, config_text, delivery_state, permit_case, start_simulator,
    until,
};
use yiwang_simulator::Simulator;

const MR: &str = "market-regulation";
const ZJ: &str = "housing-construction";
const WAIT: Duration = Duration::from_secs(120);

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

fn start(config: &std::path::Path) -> Result<Replica> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn");
    let (child, _) = yiwang_e2e::spawn_serving(cmd)?;
    Ok(Replica(child))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One replica's configuration: its own data directory, intake port and
/// replica id, the shared database, and the shortest lease.
fn replica_config(base: &str, name: &str, port: u16, url: &str) -> String {
    let listeners = LISTENERS.replacen(
        "intake = { addr = \"127.0.0.1:0\" }",
        &format!("intake = {{ addr = \"127.0.0.1:{port}\" }}"),
        1,
    );
    let text = base.replacen("LISTENERS\n", &listeners, 1).replacen(
        "[gateway]\ndata-dir = \"data\"\n",
        &format!(
            "[gateway]\ndata-dir = \"data-{name}\"\nreplica-id = \"{name}\"\nlease-ms = 3000\n"
        ),
        1,
    );
    format!("{text}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npool-size = 4\n")
}

/// Post cases from four writers, each case to one replica and, when that
/// one does not answer 202, to the other (as a load balancer would),
/// until `stop`; every case number posted, those acknowledged, and how many
/// answers of each other status came back (0: no answer).
type Cases = Arc<Mutex<BTreeSet<String>>>;
type Answers = Arc<Mutex<BTreeMap<u16, usize>>>;

struct Writers {
    posted: Cases,
    accepted: Cases,
    refused: Answers,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

fn writers(clients: [Client; 2], stop: Arc<AtomicBool>) -> Writers {
    let (posted, accepted): (Cases, Cases) = Default::default();
    let refused = Answers::default();
    let mut handles = Vec::new();
    for w in 0..4usize {
        let (clients, posted, accepted, refused, stop) = (
            clients.clone(),
            posted.clone(),
            accepted.clone(),
            refused.clone(),
            stop.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let number = format!("REPL-{w}-{n:05}");
                let Ok(case) = permit_case(&number) else {
                    return;
                };
                posted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(number.clone());
                let mut target = (w + n) % 2;
                loop {
                    let status = match clients[target].post("/v1/cases", &case).await {
                        Ok((status, _)) => status,
                        Err(_) => 0,
                    };
                    if status == 202 {
                        accepted
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(number.clone());
                        break;
                    }
                    *refused
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(status)
                        .or_default() += 1;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    target = 1 - target;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n += 1;
            }
        }));
    }
    Writers {
        posted,
        accepted,
        refused,
        handles,
    }
}

impl Writers {
    /// Stop posting; the case numbers posted and those acknowledged.
    async fn finish(self, stop: &AtomicBool) -> (BTreeSet<String>, BTreeSet<String>) {
        stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        let take = |c: &Cases| c.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (take(&self.posted), take(&self.accepted))
    }

    fn refused(&self, status: u16) -> usize {
        let answers = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        answers.get(&status).copied().unwrap_or(0)
    }
}

fn count(cases: &Cases) -> usize {
    cases.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// A private PostgreSQL cluster, two simulated networks (housing with slow replies, so
/// calls are in flight when something dies) and one configuration per replica.
struct World {
    cluster: yiwang_pgtest::Cluster,
    _dir: tempfile::TempDir,
    pki: Pki,
    sims: BTreeMap<&'static str, Simulator>,
    configs: Vec<std::path::PathBuf>,
    ports: Vec<u16>,
}

async fn world(replicas: &[&str]) -> Result<World> {
    let cluster = tokio::task::spawn_blocking(|| yiwang_pgtest::Cluster::start(&[])).await??;
    cluster.create_database("yiwang").await?;
    let dir = tempfile::tempdir()?;
    let mr = NetworkSpec::market_regulation(MR);
    let zj = NetworkSpec::housing_construction(ZJ);
    let pki = Pki::generate(&dir.path().join("pki"), &[MR, ZJ])?;
    let mut sims: BTreeMap<&str, Simulator> = BTreeMap::new();
    for (name, spec) in [(MR, &mr), (ZJ, &zj)] {
        let sim = spec.sim.clone().with_stage_interval(Duration::ZERO);
        sims.insert(name, start_simulator(name, &pki, sim, "127.0.0.1:0").await?);
    }
    sims[ZJ].faults().update(|f| f.latency_ms = 30);
    let items = format!(
        "[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\" }}]\n"
    );
    let base = config_text(
        &[(mr, sims[MR].base_url()), (zj, sims[ZJ].base_url())],
        &items,
        "",
        "LISTENERS\n",
        "",
    );
    let url = cluster.url("yiwang");
    let (mut configs, mut ports) = (Vec::new(), Vec::new());
    for name in replicas {
        let port = free_port()?;
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, replica_config(&base, name, port, &url))?;
        configs.push(path);
        ports.push(port);
    }
    yiwang_e2e::sign_adapters(&configs[0])?;
    Ok(World {
        cluster,
        _dir: dir,
        pki,
        sims,
        configs,
        ports,
    })
}

impl World {
    fn client(&self, replica: usize) -> Result<Client> {
        Client::new(
            format!("https://127.0.0.1:{}", self.ports[replica]),
            &self.pki,
            &self.pki.bureau_fuzhou,
        )
    }

    /// Every accepted case delivered to both networks (asked of `gateway`), and held
    /// exactly once by each simulator; nothing the simulators hold was never posted; no
    /// attempt left in flight.
    async fn delivered_once(
        &self,
        gateway: &Client,
        posted: &BTreeSet<String>,
        accepted: &BTreeSet<String>,
    ) -> Result<()> {
        for case in accepted {
            until(
                WAIT,
                &format!("{case} delivered to both networks"),
                || async {
                    let (status, v): (u16, Value) = gateway
                        .get(&format!("/v1/cases/{case}"))
                        .await
                        .unwrap_or((0, Value::Null));
                    (status == 200
                        && [MR, ZJ]
                            .iter()
                            .all(|n| delivery_state(&v, n) == "delivered"))
                    .then_some(())
                },
            )
            .await?;
        }
        for (name, sim) in &self.sims {
            let mut per_case: BTreeMap<String, usize> = BTreeMap::new();
            for c in sim.cases() {
                let unified = c.unified_case_number.clone().unwrap_or_default();
                if !posted.contains(&unified) {
                    bail!("{name} holds a case nobody sent: {unified}");
                }
                *per_case.entry(unified).or_default() += 1;
            }
            for case in accepted {
                assert_eq!(per_case.get(case), Some(&1), "{name}: {case} exactly once");
            }
            let dupes: Vec<_> = per_case.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                dupes.is_empty(),
                "{name}: duplicate ministry records {dupes:?}"
            );
        }
        let db = self.cluster.connect("yiwang").await?;
        let left: i64 = db
            .query_one("SELECT count(*) FROM yiwang_job WHERE in_flight", &[])
            .await?
            .get(0);
        assert_eq!(left, 0, "no attempt left in flight");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_deliver_once_and_one_survives_the_other_killed() -> Result<()> {
    let w = world(&["replica-a", "replica-b"]).await?;
    let a = start(&w.configs[0])?;
    let b = start(&w.configs[1])?;
    let clients = [w.client(0)?, w.client(1)?];

    let stop = Arc::new(AtomicBool::new(false));
    let load = writers(clients.clone(), stop.clone());
    until(WAIT, "20 cases accepted by the two replicas", || {
        let n = count(&load.accepted);
        async move { (n >= 20).then_some(()) }
    })
    .await?;
    drop(a); // SIGKILL, mid-load
    let at_kill = count(&load.accepted);
    until(WAIT, "20 more cases accepted by the survivor", || {
        let n = count(&load.accepted);
        async move { (n >= at_kill + 20).then_some(()) }
    })
    .await?;
    let (posted, accepted) = load.finish(&stop).await;
    w.delivered_once(&clients[1], &posted, &accepted).await?;
    eprintln!(
        "two replicas, one killed at {at_kill} accepted: {} cases acknowledged, {} posted, all delivered exactly once to {} networks",
        accepted.len(),
        posted.len(),
        w.sims.len()
    );
    drop(b);
    Ok(())
}

/// PostgreSQL stopped mid-load (an immediate shutdown, as a crash leaves it) and started
/// again on the same data: while it is down the intake answers 503 and accepts nothing;
/// afterwards every case it accepted, before and after, is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_mid_load_answers_503_and_loses_nothing_accepted() -> Result<()> {
    let w = world(&["replica-a"]).await?;
    let gateway = start(&w.configs[0])?;
    let client = w.client(0)?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = writers([client.clone(), client.clone()], stop.clone());
    until(WAIT, "20 cases accepted", || {
        let n = count(&load.accepted);
        async move { (n >= 20).then_some(()) }
    })
    .await?;
    let cluster = &w.cluster;
    tokio::task::block_in_place(|| cluster.stop_server())?;
    // Answers already on their way when the server went are let through first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let while_down = count(&load.accepted);
    let refused_before = load.refused(503);
    until(WAIT, "ten 503 answers while PostgreSQL is down", || {
        let n = load.refused(503);
        async move { (n >= refused_before + 10).then_some(()) }
    })
    .await?;
    assert_eq!(
        count(&load.accepted),
        while_down,
        "nothing accepted while the database is down"
    );
    tokio::task::block_in_place(|| cluster.start_server())?;
    until(WAIT, "20 more cases accepted after the restart", || {
        let n = count(&load.accepted);
        async move { (n >= while_down + 20).then_some(()) }
    })
    .await?;
    let refused = load.refused(503) - refused_before;
    let (posted, accepted) = load.finish(&stop).await;
    w.delivered_once(&client, &posted, &accepted).await?;
    eprintln!(
        "PostgreSQL restarted at {while_down} accepted: {refused} answers 503 while it was down, {} cases acknowledged, all delivered exactly once",
        accepted.len()
    );
    drop(gateway);
    Ok(())
}
