//! Hostile neighbours: each attack of the adapter-isolation table, caused by
//! the hostile test adapter (plugins/testing/hostile) on one network of a
//! running gateway, next to a healthy network. Each test asserts the
//! contained outcome and that the healthy network still delivers, with one
//! attempt per case (a neighbour's harm is never counted against it).

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::Duration;
use yiwang_e2e::{
    Client, LISTENERS, NetworkSpec, Webhook, World, delivery_state, permit_case, until,
};

const WAIT: Duration = Duration::from_secs(60);

/// An `[items]` table routing item `code` to `network` only.
fn item(code: &str, network: &str) -> String {
    format!("[items.\"{code}\"]\nroute = [{{ network = \"{network}\" }}]\n")
}

/// A valid case of item `code`.
fn case(code: &str, number: &str) -> Result<Value> {
    let mut v = permit_case(number)?;
    v["item"]["code"] = json!(code);
    Ok(v)
}

async fn submit(c: &Client, code: &str, number: &str) -> Result<()> {
    let (status, body) = c.post("/v1/cases", &case(code, number)?).await?;
    if status != 202 {
        bail!("case {number} refused at intake: {status} {body}");
    }
    Ok(())
}

/// The healthy network's item in every world here.
const HEALTHY_ITEM: &str = "NB-HEALTHY";

/// Submit `n` cases to the healthy network and wait until each is delivered,
/// each with one attempt.
async fn healthy_delivers(c: &Client, network: &str, prefix: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let number = format!("{prefix}-OK-{i:04}");
        submit(c, HEALTHY_ITEM, &number).await?;
        let view = c
            .wait_case(&number, WAIT, |v| delivery_state(v, network) == "delivered")
            .await
            .with_context(|| format!("the healthy network {network} did not deliver {number}"))?;
        let attempts = &view["networks"][network]["delivery"]["attempts"];
        assert_eq!(
            attempts,
            &json!(1),
            "{number}: a neighbour's harm was counted against the healthy network {network}:\n{view:#}"
        );
    }
    Ok(())
}

/// A world of `hostile` networks (each with its own item, named after the
/// network) and one healthy echo network `<prefix>-healthy`.
async fn world_with(
    prefix: &str,
    hostile: Vec<NetworkSpec>,
    subscribers: &str,
) -> Result<(World, String)> {
    let healthy = format!("{prefix}-healthy");
    let mut items = item(HEALTHY_ITEM, &healthy);
    for h in &hostile {
        items.push_str(&item(&h.name.to_uppercase(), &h.name));
    }
    let mut networks = hostile;
    networks.push(NetworkSpec::hostile(&healthy, "echo"));
    let w = World::prepare(networks, &items, subscribers, LISTENERS).await?;
    Ok((w, healthy))
}

/// Start the gateway, failing (rather than hanging) if it does not come up.
async fn start(w: &mut World) -> Result<Client> {
    tokio::time::timeout(WAIT, w.start_gateway())
        .await
        .context("the gateway did not start in time")?
}

/// The case view once `network`'s delivery has a last error or is settled.
async fn failed_view(c: &Client, number: &str, network: &str) -> Result<Value> {
    c.wait_case(number, WAIT, |v| {
        let d = &v["networks"][network]["delivery"];
        !d["last_error"].is_null() || d["state"] == "dead" || d["state"] == "delivered"
    })
    .await
}

/// The dead letter of `network`'s job for `number`, once there is one.
async fn dead_letter(admin: &Client, network: &str, number: &str) -> Result<Value> {
    until(
        WAIT,
        &format!("a dead letter for {number} on {network}"),
        || async {
            let (status, body) = admin
                .get(&format!("/admin/dlq?network={network}"))
                .await
                .ok()?;
            if status != 200 {
                return None;
            }
            body["dead_letters"]
                .as_array()?
                .iter()
                .find(|d| d["case_number"] == number)
                .cloned()
        },
    )
    .await
}

/// `network`'s jobs in the queue listing.
async fn queued(admin: &Client, network: &str) -> Result<Vec<Value>> {
    let (status, body) = admin
        .get(&format!("/admin/queue?network={network}&limit=1000"))
        .await?;
    if status != 200 {
        bail!("GET /admin/queue: {status} {body}");
    }
    Ok(body["jobs"].as_array().cloned().unwrap_or_default())
}

/// The sum of a counter's series that name `network`, from `/metrics`.
async fn counter(admin: &Client, name: &str, network: &str) -> Result<f64> {
    let (_, metrics) = admin.get("/metrics").await?;
    let label = format!("network=\"{network}\"");
    Ok(metrics
        .as_str()
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// `text` with `[runtime] max-instances` set to `max` (or unset).
fn with_max_instances(text: &str, max: Option<u32>) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("max-instances") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if let (Some(max), "[runtime]") = (max, line.trim()) {
            out.push_str(&format!("max-instances = {max}\n"));
        }
    }
    out
}

/// Row 1: a legal slow adapter at concurrency 128 holds its own slots, not
/// the healthy network's; `config check` refuses a pool smaller than the sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleepers_at_full_concurrency_leave_the_healthy_network_its_slots() -> Result<()> {
    const SLEEPERS: usize = 128;
    let sleep = NetworkSpec::hostile("nb1-sleep", "sleep")
        .with_concurrency(SLEEPERS as u32)
        .with_config("sleep-ms", "20000")
        .with_wall_time_ms(30_000);
    let (mut w, healthy) = world_with("nb1", vec![sleep], "").await?;

    // `config check` of the same file with a pool of 64: oversubscribed.
    let text = std::fs::read_to_string(&w.config_path)?;
    let checked = w.dir.path().join("checked.toml");
    std::fs::write(&checked, with_max_instances(&text, Some(64)))?;
    let refused = yiwang_gateway::config::Config::load(&checked)
        .err()
        .context("config check accepted a concurrency of 128 in a pool of 64")?
        .to_string();
    for word in ["nb1-sleep", "128", "64"] {
        assert!(
            refused.contains(word),
            "the refusal does not name {word}:\n{refused}"
        );
    }

    // Unset, the pool is sized from the networks' own slots.
    std::fs::write(&w.config_path, with_max_instances(&text, None))?;
    let c = start(&mut w).await?;
    let admin = w.admin().context("admin")?;
    let mut posts = tokio::task::JoinSet::new();
    for batch in 0..8 {
        let c = c.clone();
        posts.spawn(async move {
            for i in 0..SLEEPERS / 8 {
                submit(&c, "NB1-SLEEP", &format!("NB1-Z-{batch}-{i:03}")).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = posts.join_next().await {
        done??;
    }
    until(WAIT, "every sleeper in flight", || async {
        let jobs = queued(&admin, "nb1-sleep").await.ok()?;
        let in_flight = jobs.iter().filter(|j| j["state"] == "in_flight").count();
        (in_flight == SLEEPERS).then_some(())
    })
    .await?;
    healthy_delivers(&c, &healthy, "NB1", 2).await?;
    // It did so while the sleepers held every one of their slots.
    let in_flight = queued(&admin, "nb1-sleep")
        .await?
        .iter()
        .filter(|j| j["state"] == "in_flight")
        .count();
    assert_eq!(
        in_flight, SLEEPERS,
        "the sleepers settled before the healthy network delivered"
    );
    Ok(())
}

/// Row 2 and point 3: a looping and a spinning adapter hit the CPU limit on
/// every call; each job is dead-lettered after `limit-hits`, naming the limit
/// and the count, while the healthy network delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_and_spins_are_dead_lettered_after_their_limit_hits() -> Result<()> {
    let cpu_bound = |name: &str, mode: &str| {
        NetworkSpec::hostile(name, mode)
            .with_limits("cpu-time-ms = 200")
            .with_retry("limit-hits = 2")
    };
    let hostile = vec![
        cpu_bound("nb2-loop", "loop"),
        cpu_bound("nb2-spin", "spin").with_config("spin-ms", "1900"),
    ];
    let (mut w, healthy) = world_with("nb2", hostile, "").await?;
    let c = start(&mut w).await?;
    let admin = w.admin().context("admin")?;
    submit(&c, "NB2-LOOP", "NB2-LOOP-0001").await?;
    submit(&c, "NB2-SPIN", "NB2-SPIN-0001").await?;
    healthy_delivers(&c, &healthy, "NB2", 3).await?;
    for (network, number) in [("nb2-loop", "NB2-LOOP-0001"), ("nb2-spin", "NB2-SPIN-0001")] {
        let dead = dead_letter(&admin, network, number).await?;
        let reason = dead["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("limit_cpu_time") && reason.contains('2'),
            "{network}: the reason names neither the limit nor the count:\n{dead:#}"
        );
        assert_eq!(dead["attempts"], json!(2), "{network}:\n{dead:#}");
    }
    Ok(())
}

/// Row 3 and point 4: a network's poll and callback name a case never
/// routed to it; the event is refused, counted, audited, and reaches neither
/// the record nor a subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_flow_for_another_networks_case_is_refused() -> Result<()> {
    const VICTIM: &str = "NB3-OK-0000";
    const INJECTOR: &str = "nb3-inject";
    let hook = Webhook::start().await?;
    let subscribers = format!(
        "[subscribers.platform]\nurl = \"{}\"\nevents = [\"stage\", \"delivery\"]\n{}",
        hook.url,
        hook.tls_toml("platform")
    );
    let mut injector = NetworkSpec::hostile(INJECTOR, "echo").with_config("inject-case", VICTIM);
    injector.poll_interval_ms = Some(100);
    let (mut w, healthy) = world_with("nb3", vec![injector], &subscribers).await?;
    let c = start(&mut w).await?;
    let admin = w.admin().context("admin")?;
    healthy_delivers(&c, &healthy, "NB3", 1).await?;

    // The same forgery pushed through the callback listener, as the network.
    let push = &w.pki.network(INJECTOR).context("injector PKI")?.push_client;
    let url = w.callback_url(INJECTOR).context("callback listener")?;
    let base = url.trim_end_matches(&format!("/v1/callbacks/{INJECTOR}"));
    let ministry = Client::new(base, &w.pki, push)?;
    let _ = ministry
        .post(
            &format!("/v1/callbacks/{INJECTOR}"),
            &json!({"forged": true}),
        )
        .await?;
    until(WAIT, "three refused back-flow events", || async {
        let refused = counter(&admin, "yiwang_backflow_refused_total", INJECTOR)
            .await
            .ok()?;
        (refused >= 3.0).then_some(())
    })
    .await?;

    let (_, view) = c.get(&format!("/v1/cases/{VICTIM}")).await?;
    assert!(view["networks"].get(INJECTOR).is_none(), "{view:#}");
    assert!(!view.to_string().contains("FORGED"), "{view:#}");
    assert_eq!(delivery_state(&view, &healthy), "delivered", "{view:#}");
    let forged: Vec<_> = hook
        .notices()
        .into_iter()
        .filter(|(_, n)| n.to_string().contains("FORGED") || n.to_string().contains(INJECTOR))
        .collect();
    assert!(
        forged.is_empty(),
        "forged notices reached the platform: {forged:?}"
    );

    let auditor = w.admin_as(&w.pki.auditor)?;
    let path = format!("/admin/audit?network={INJECTOR}&kind=alert");
    until(WAIT, "the refusal in the audit trail", || async {
        let (_, trail) = auditor.get(&path).await.ok()?;
        trail
            .as_str()?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["case"] == VICTIM && r.to_string().contains("violation"))
    })
    .await?;
    Ok(())
}

/// Row 4 and point 5: a refused send decides the call, whatever follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_destination_is_final_for_the_call() -> Result<()> {
    let foreign = NetworkSpec::hostile("nb4-foreign", "foreign-then-legit");
    let (mut w, healthy) = world_with("nb4", vec![foreign], "").await?;
    let c = start(&mut w).await?;
    submit(&c, "NB4-FOREIGN", "NB4-F-0001").await?;
    healthy_delivers(&c, &healthy, "NB4", 2).await?;
    let view = c
        .wait_case("NB4-F-0001", WAIT, |v| {
            matches!(
                delivery_state(v, "nb4-foreign").as_str(),
                "dead" | "delivered"
            )
        })
        .await?;
    let d = &view["networks"]["nb4-foreign"]["delivery"];
    assert_eq!(d["state"], "dead", "{view:#}");
    assert_eq!(d["last_error"]["kind"], "violation_destination", "{view:#}");
    Ok(())
}

/// Row 5 and point 6: `retry_after_ms = u64::MAX` is capped by the
/// network's maximum backoff, and attempts stay paced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_is_capped_by_the_maximum_backoff() -> Result<()> {
    const MAX_INTERVAL_MS: i64 = 5_000;
    let mut retry = NetworkSpec::hostile("nb5-retry", "retry-forever").with_breaker(100, 300);
    retry.retry_max_interval_ms = MAX_INTERVAL_MS as u64;
    let (mut w, healthy) = world_with("nb5", vec![retry], "").await?;
    let c = start(&mut w).await?;
    submit(&c, "NB5-RETRY", "NB5-R-0001").await?;
    let view = failed_view(&c, "NB5-R-0001", "nb5-retry").await?;
    let seen = chrono::Utc::now();
    let d = &view["networks"]["nb5-retry"]["delivery"];
    let next = d["next_attempt_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .with_context(|| format!("no next attempt time:\n{view:#}"))?;
    let latest = seen + chrono::Duration::milliseconds(MAX_INTERVAL_MS + 1_000);
    assert!(
        next <= latest,
        "next attempt at {next}, beyond now + max-interval-ms ({latest}):\n{view:#}"
    );
    healthy_delivers(&c, &healthy, "NB5", 2).await?;
    let (_, view) = c.get("/v1/cases/NB5-R-0001").await?;
    let attempts = view["networks"]["nb5-retry"]["delivery"]["attempts"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(attempts <= 2, "{attempts} attempts: not paced:\n{view:#}");
    Ok(())
}

/// Row 6 and point 7: an adapter whose `describe` never returns takes down
/// only its own network, which starts in alert with its queue held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_describe_takes_down_only_its_network() -> Result<()> {
    let bad = NetworkSpec::hostile("nb6-bad", "echo")
        .with_config("describe", "loop")
        .with_limits("cpu-time-ms = 200");
    let (mut w, healthy) = world_with("nb6", vec![bad], "").await?;
    let c = start(&mut w).await?;
    let admin = w.admin().context("admin")?;
    submit(&c, "NB6-BAD", "NB6-B-0001").await?;
    healthy_delivers(&c, &healthy, "NB6", 2).await?;
    let (status, destinations) = admin.get("/admin/destinations").await?;
    assert_eq!(status, 200, "{destinations}");
    let reason = destinations["network:nb6-bad"]["alert"]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(reason.contains("describe"), "{destinations:#}");
    let (_, view) = c.get("/v1/cases/NB6-B-0001").await?;
    let d = &view["networks"]["nb6-bad"]["delivery"];
    assert_eq!(d["state"], "pending", "{view:#}");
    assert_eq!(d["attempts"], json!(0), "{view:#}");
    Ok(())
}

/// Row 7 and point 8: a kv flood costs the gateway O(1) per set; submits
/// after the quota is full still complete; a call that writes more than
/// `max-kv-writes-per-call` is stopped, and its job dead-lettered after its
/// limit hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_flood_past_the_quota_still_completes() -> Result<()> {
    // About 0.8 MiB of the 1 MiB quota per submit: full during the second.
    let flood = NetworkSpec::hostile("nb7-flood", "kv-flood")
        .with_concurrency(1)
        .with_config("kv-keys", "3000")
        .with_config("kv-value-bytes", "256")
        .with_limits("max-kv-writes-per-call = 4000");
    // 1000 writes a call at the default cap of 256.
    let burst = NetworkSpec::hostile("nb7-burst", "kv-flood").with_retry("limit-hits = 2");
    let (mut w, healthy) = world_with("nb7", vec![flood, burst], "").await?;
    let c = start(&mut w).await?;
    for i in 0..4 {
        submit(&c, "NB7-FLOOD", &format!("NB7-F-{i:04}")).await?;
    }
    submit(&c, "NB7-BURST", "NB7-B-0000").await?;
    healthy_delivers(&c, &healthy, "NB7", 2).await?;
    for i in 0..4 {
        let number = format!("NB7-F-{i:04}");
        let view = c
            .wait_case(&number, WAIT, |v| {
                matches!(
                    delivery_state(v, "nb7-flood").as_str(),
                    "dead" | "delivered"
                )
            })
            .await?;
        assert_eq!(delivery_state(&view, "nb7-flood"), "delivered", "{view:#}");
    }
    let admin = w.admin().context("admin")?;
    let dead = dead_letter(&admin, "nb7-burst", "NB7-B-0000").await?;
    let reason = dead.to_string();
    assert!(
        reason.contains("limit_kv_writes") && reason.contains("2 times"),
        "{dead:#}"
    );
    Ok(())
}

/// Row 8 and point 9: a 200 MiB output is `limit_output`; a panic's message
/// reaches the dead-letter reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_output_is_limit_output_and_a_panic_keeps_its_message() -> Result<()> {
    let hostile = vec![
        NetworkSpec::hostile("nb8-huge", "huge-output").with_limits("memory-bytes = 268435456"),
        NetworkSpec::hostile("nb8-panic", "panic"),
    ];
    let (mut w, healthy) = world_with("nb8", hostile, "").await?;
    let c = start(&mut w).await?;
    let admin = w.admin().context("admin")?;
    submit(&c, "NB8-HUGE", "NB8-H-0001").await?;
    submit(&c, "NB8-PANIC", "NB8-P-0001").await?;
    let view = failed_view(&c, "NB8-H-0001", "nb8-huge").await?;
    assert_eq!(
        view["networks"]["nb8-huge"]["delivery"]["last_error"]["kind"], "limit_output",
        "{view:#}"
    );
    let dead = dead_letter(&admin, "nb8-panic", "NB8-P-0001").await?;
    let reason = dead["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("hostile adapter panics on purpose"),
        "{dead:#}"
    );
    healthy_delivers(&c, &healthy, "NB8", 2).await?;
    Ok(())
}

/// Row 8: a 200 MiB kv value is refused (or the call fails `limit_output`);
/// the gateway stays up and the healthy network delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_kv_value_is_refused_and_harms_nobody() -> Result<()> {
    let kv = NetworkSpec::hostile("nb9-kv", "kv-huge").with_limits("memory-bytes = 268435456");
    let (mut w, healthy) = world_with("nb9", vec![kv], "").await?;
    let c = start(&mut w).await?;
    submit(&c, "NB9-KV", "NB9-K-0001").await?;
    let view = failed_view(&c, "NB9-K-0001", "nb9-kv").await?;
    let d = &view["networks"]["nb9-kv"]["delivery"];
    match d["state"].as_str() {
        Some("delivered") => {}
        _ => assert_eq!(d["last_error"]["kind"], "limit_output", "{view:#}"),
    }
    healthy_delivers(&c, &healthy, "NB9", 2).await?;
    Ok(())
}
