//! Status follow-up against the lookup-only filing service (archetype 6):
//! the network has no change feed and no callbacks, so every stage after
//! the receipt reaches the case view only because the gateway asks
//! (`query-status`) on its schedule; it stops asking at the final stage,
//! and a kill -9 mid-follow-up resumes from the durable schedule.

use anyhow::Result;
use serde_json::{Value, json};
use std::process::{Child, Command};
use std::time::Duration;
use yiwang_e2e::{Client, LISTENERS, NetworkSpec, World, permit_case, until};

const BA: &str = "provincial-filing";
const WAIT: Duration = Duration::from_secs(60);

fn items() -> String {
    format!("[items.\"BA-XMBA-001\"]\nroute = [{{ network = \"{BA}\" }}]\n")
}

fn filing(number: &str) -> Result<Value> {
    let mut case = permit_case(number)?;
    case["item"]["code"] = json!("BA-XMBA-001");
    Ok(case)
}

fn network(view: &Value) -> &Value {
    &view["networks"][BA]
}

fn stages(view: &Value) -> Vec<String> {
    network(view)["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["stage"].as_str().map(str::to_string))
        .collect()
}

fn queries(view: &Value) -> u64 {
    network(view)["follow_up"]["queries"].as_u64().unwrap_or(0)
}

/// The simulator's filing number for a case, once the gateway has it.
async fn filed(client: &Client, case: &str) -> Result<String> {
    let view = client
        .wait_case(case, WAIT, |v| {
            network(v)["network_case_number"].is_string()
        })
        .await?;
    Ok(network(&view)["network_case_number"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookup_only_statuses_arrive_by_follow_up_and_stop_at_the_final_stage() -> Result<()> {
    let spec = NetworkSpec::provincial_filing(BA);
    let sim = spec.sim.clone().with_stage_interval(Duration::ZERO);
    let spec = NetworkSpec { sim, ..spec };
    let mut world = World::prepare(vec![spec], &items(), "", LISTENERS).await?;
    let client = world.start_gateway().await?;
    for case in ["BA-FU-1", "BA-FU-2"] {
        assert_eq!(client.post("/v1/cases", &filing(case)?).await?.0, 202);
    }
    let number = filed(&client, "BA-FU-1").await?;
    // Asked while nothing changed: the same status again records nothing.
    let view = client
        .wait_case("BA-FU-1", WAIT, |v| queries(v) >= 2)
        .await?;
    assert_eq!(
        stages(&view),
        ["received"],
        "an unchanged answer adds no event"
    );

    world.sim(BA).advance(&number);
    let view = client
        .wait_case("BA-FU-1", WAIT, |v| stages(v).len() == 2)
        .await?;
    assert_eq!(stages(&view), ["received", "under_review"]);
    assert!(
        !network(&view)["follow_up"]["next_at"].is_null(),
        "still open"
    );

    world.sim(BA).advance(&number);
    let view = client
        .wait_case("BA-FU-1", WAIT, |v| network(v)["stage"] == "completed")
        .await?;
    assert_eq!(stages(&view), ["received", "under_review", "completed"]);
    assert_eq!(network(&view)["decision"], "approved");
    assert!(network(&view)["certificate_number"].is_string());
    assert!(
        network(&view)["follow_up"]["next_at"].is_null(),
        "a final stage closes the follow-up: {}",
        network(&view)
    );

    // No query after the final stage: while the other, still open filing is
    // asked several more times, the finished one is asked no more.
    let sim = world.sim(BA);
    let lookups = |n: &str| sim.case(n).map_or(0, |c| c.lookups);
    let done_at = lookups(&number);
    let other = filed(&client, "BA-FU-2").await?;
    let other_then = lookups(&other);
    until(
        WAIT,
        "the open filing is asked three more times",
        || async { (lookups(&other) >= other_then + 3).then_some(()) },
    )
    .await?;
    assert_eq!(
        lookups(&number),
        done_at,
        "the final filing was asked again"
    );
    let view = client
        .wait_case("BA-FU-1", WAIT, |v| v["case_number"] == "BA-FU-1")
        .await?;
    assert_eq!(stages(&view).len(), 3, "no event after the final stage");
    world.stop_gateway().await;
    Ok(())
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        // SIGKILL: no drain, no checkpoint.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path) -> Result<Gateway> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn");
    let (child, _) = yiwang_e2e::spawn_serving(cmd)?;
    Ok(Gateway(child))
}

/// The intake's address in the configuration (a fixed port, so a restart
/// listens where the client connects).
fn fixed_listeners() -> Result<(String, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listeners = LISTENERS.replacen(
        "intake = { addr = \"127.0.0.1:0\" }",
        &format!("intake = {{ addr = \"127.0.0.1:{port}\" }}"),
        1,
    );
    Ok((listeners, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_follow_up_resumes_from_the_durable_schedule() -> Result<()> {
    let spec = NetworkSpec::provincial_filing(BA);
    let sim = spec.sim.clone().with_stage_interval(Duration::ZERO);
    let spec = NetworkSpec { sim, ..spec };
    let (listeners, port) = fixed_listeners()?;
    let world = World::prepare(vec![spec], &items(), "", &listeners).await?;
    let client = Client::new(
        format!("https://127.0.0.1:{port}"),
        &world.pki,
        &world.pki.bureau_fuzhou,
    )?;
    let gw = serve(&world.config_path)?;
    assert_eq!(client.post("/v1/cases", &filing("BA-K9-1")?).await?.0, 202);
    let number = filed(&client, "BA-K9-1").await?;
    let sim = world.sim(BA);
    // Slow lookups, so the kill lands while one is in flight.
    sim.faults().update(|f| f.latency_ms = 300);
    let before = sim.case(&number).map_or(0, |c| c.lookups);
    until(WAIT, "a follow-up lookup reaches the simulator", || async {
        (sim.case(&number).map_or(0, |c| c.lookups) > before).then_some(())
    })
    .await?;
    drop(gw);
    sim.faults().update(|f| f.latency_ms = 0);
    sim.advance(&number);
    sim.advance(&number);

    let gw = serve(&world.config_path)?;
    let view = client
        .wait_case("BA-K9-1", WAIT, |v| network(v)["stage"] == "completed")
        .await?;
    assert_eq!(
        stages(&view),
        ["received", "completed"],
        "{}",
        network(&view)
    );
    assert!(queries(&view) >= 1);
    assert!(network(&view)["follow_up"]["next_at"].is_null());
    assert_eq!(
        sim.case(&number).map(|c| c.submissions),
        Some(1),
        "filed exactly once"
    );
    drop(gw);
    Ok(())
}
