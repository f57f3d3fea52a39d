//! A call that outlasts its job lease keeps the lease by renewal: nobody,
//! not even its own dispatcher (which looks again when a lease expires),
//! takes the job over while the call runs, so the case is sent once, in
//! one attempt.

use anyhow::Result;
use std::time::Duration;
use yiwang_e2e::{LISTENERS, NetworkSpec, World, delivery_state, permit_case};

const MR: &str = "market-regulation";
const WAIT: Duration = Duration::from_secs(120);

/// One gateway, a lease of 3 s and a ministry that answers each request
/// after 4 s (the adapter logs in, then submits: about 8 s in the call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_its_lease_keeps_it_by_renewal() -> Result<()> {
    let mr = NetworkSpec {
        poll_interval_ms: None,
        send_timeout_ms: 8_000,
        ..NetworkSpec::market_regulation(MR).with_wall_time_ms(30_000)
    };
    let items = format!("[items.\"ZJ-SGXK-001\"]\nroute = [{{ network = \"{MR}\" }}]\n");
    let mut w = World::prepare(vec![mr], &items, "", LISTENERS).await?;
    let text = std::fs::read_to_string(&w.config_path)?.replacen(
        "data-dir = \"data\"\n",
        "data-dir = \"data\"\nlease-ms = 3000\n",
        1,
    );
    std::fs::write(&w.config_path, text)?;
    w.sim(MR).faults().update(|f| f.latency_ms = 4_000);
    let c = w.start_gateway().await?;
    let (status, body) = c.post("/v1/cases", &permit_case("LEASE-0001")?).await?;
    assert_eq!(status, 202, "{body}");
    let view = c
        .wait_case("LEASE-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    let delivery = &view["networks"][MR]["delivery"];
    assert_eq!(
        delivery["attempts"], 1,
        "one attempt, never taken over: {view:#}"
    );
    let n = view["networks"][MR]["network_case_number"]
        .as_str()
        .unwrap_or("");
    assert_eq!(w.sim(MR).case(n).map(|c| c.submissions), Some(1));
    assert_eq!(w.sim(MR).cases().len(), 1);
    w.stop_gateway().await;
    Ok(())
}
