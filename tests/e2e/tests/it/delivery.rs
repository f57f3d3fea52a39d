//! The whole gateway against simulated ministry networks: fan-out, chained
//! routes, outages, flapping, dead letters and replay, back-flow to the case
//! view and to a webhook — each counted in the simulators' own stores.

use anyhow::Result;
use serde_json::{Value, json};
use std::time::Duration;
use yiwang_e2e::{
    Client, LISTENERS, NetworkSpec, Webhook, World, case_json, delivery_state, eventually,
    permit_case,
};
use yiwang_gateway::report::{DoubleEntryReport, render};

const MR: &str = "market-regulation";
const ZJ: &str = "housing-construction";

const WAIT: Duration = Duration::from_secs(30);

fn items(route: &str) -> String {
    format!(
        "[items.\"ZJ-SGXK-001\"]\nname = \"施工许可\"\nroute = [{route}]\n\n[items.\"SC-QYKB-001\"]\nroute = [{{ network = \"{MR}\" }}]\n"
    )
}

fn fan_out() -> String {
    items(&format!(
        "{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\" }}"
    ))
}

fn chained() -> String {
    items(&format!(
        "{{ network = \"{MR}\" }}, {{ network = \"{ZJ}\", after = [\"{MR}\"], inputs = {{ licence-number = \"{MR}.certificate_number\" }} }}"
    ))
}

async fn world(mr_interval: Duration, items: &str, subscribers: &str) -> Result<(World, Client)> {
    world_polling(mr_interval, items, subscribers, true).await
}

/// `poll = false` keeps market regulation's feed quiet, so a one-shot fault
/// hits the submit it is meant for rather than a poll.
async fn world_polling(
    mr_interval: Duration,
    items: &str,
    subscribers: &str,
    poll: bool,
) -> Result<(World, Client)> {
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        sim: mr.sim.clone().with_stage_interval(mr_interval),
        poll_interval_ms: if poll { mr.poll_interval_ms } else { None },
        ..mr
    };
    let zj = NetworkSpec::housing_construction(ZJ);
    let zj = NetworkSpec {
        sim: zj.sim.clone().with_stage_interval(Duration::ZERO),
        ..zj
    };
    let mut w = World::prepare(vec![mr, zj], items, subscribers, LISTENERS).await?;
    let c = w.start_gateway().await?;
    Ok((w, c))
}

fn delivered_everywhere(v: &Value, networks: &[&str]) -> bool {
    networks.iter().all(|n| delivery_state(v, n) == "delivered")
}

/// The gateway on a private PostgreSQL database instead of sled: a case
/// reaches the simulator exactly once, its record and job rows are in the
/// database (and no sled store was made), and a repost is answered from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_postgresql_delivers_a_case_end_to_end() -> Result<()> {
    let cluster = tokio::task::spawn_blocking(|| yiwang_pgtest::Cluster::start(&[])).await??;
    cluster.create_database("yiwang").await?;
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        sim: mr.sim.clone().with_stage_interval(Duration::ZERO),
        ..mr
    };
    let route = items(&format!("{{ network = \"{MR}\" }}"));
    let mut w = World::prepare(vec![mr], &route, "", LISTENERS).await?;
    let mut text = std::fs::read_to_string(&w.config_path)?;
    text.push_str(&format!(
        "\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool-size = 4\n",
        cluster.url("yiwang")
    ));
    std::fs::write(&w.config_path, text)?;
    let c = w.start_gateway().await?;
    let case = permit_case("PG-0001")?;
    let (status, body) = c.post("/v1/cases", &case).await?;
    assert_eq!(status, 202, "{body}");
    let view = c
        .wait_case("PG-0001", WAIT, |v| delivered_everywhere(v, &[MR]))
        .await?;
    let n = view["networks"][MR]["network_case_number"]
        .as_str()
        .unwrap_or("");
    assert_eq!(w.sim(MR).cases().len(), 1, "the simulator holds one case");
    assert_eq!(w.sim(MR).case(n).map(|c| c.submissions), Some(1));
    let db = cluster.connect("yiwang").await?;
    let row = db
        .query_one(
            "SELECT count(*), min(state) FROM yiwang_job WHERE case_number = $1",
            &[&"PG-0001"],
        )
        .await?;
    assert_eq!(row.get::<_, i64>(0), 1, "one job row");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("delivered")
    );
    assert!(
        !w.dir.path().join("data/queue").exists(),
        "no sled store beside the database"
    );
    let (status, again) = c.post("/v1/cases", &case).await?;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicate"], json!(true));
    assert_eq!(w.sim(MR).cases().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_case_fans_out_to_every_network_of_its_route() -> Result<()> {
    let (w, c) = world(Duration::ZERO, &fan_out(), "").await?;
    let case = permit_case("FAN-0001")?;
    let (status, body) = c.post("/v1/cases", &case).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["deliveries"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let view = c
        .wait_case("FAN-0001", WAIT, |v| delivered_everywhere(v, &[MR, ZJ]))
        .await?;
    for net in [MR, ZJ] {
        let n = view["networks"][net]["network_case_number"]
            .as_str()
            .unwrap_or("");
        let sim_case = w.sim(net).case(n);
        assert!(sim_case.is_some(), "{net} has no case {n}");
        assert_eq!(w.sim(net).cases().len(), 1, "{net} holds exactly one case");
        assert_eq!(sim_case.map(|c| c.submissions), Some(1));
    }
    // The same case again: same answer, nothing new queued or delivered.
    let (status, again) = c.post("/v1/cases", &case).await?;
    assert_eq!(status, 202);
    assert_eq!(again["duplicate"], json!(true));
    let keys = |b: &Value| -> Vec<Value> {
        b["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["idempotency_key"].clone())
            .collect()
    };
    assert_eq!(keys(&again), keys(&body));
    // Same number, different content: a conflict that says why.
    let mut changed = case.clone();
    changed["applicant"]["contact"]["phone"] = json!("13900000000");
    let (status, problem) = c.post("/v1/cases", &changed).await?;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("FAN-0001")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.sim(MR).cases().len(), 1);
    assert_eq!(w.sim(ZJ).cases().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_step_waits_for_the_upstream_licence_number() -> Result<()> {
    // Market regulation moves on its own; housing waits for its licence.
    let (w, c) = world(Duration::from_millis(150), &chained(), "").await?;
    let case = permit_case("CHAIN-0001")?;
    let (status, _) = c.post("/v1/cases", &case).await?;
    assert_eq!(status, 202);
    let early = c
        .wait_case("CHAIN-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    if early["networks"][MR]["certificate_number"].is_null() {
        assert_eq!(delivery_state(&early, ZJ), "waiting", "{early}");
        assert!(
            w.sim(ZJ).cases().is_empty(),
            "housing got the case before the licence existed"
        );
    }
    let view = c
        .wait_case("CHAIN-0001", WAIT, |v| delivered_everywhere(v, &[MR, ZJ]))
        .await?;
    let licence = view["networks"][MR]["certificate_number"]
        .as_str()
        .unwrap_or("");
    assert!(!licence.is_empty(), "{view}");
    assert_eq!(w.sim(ZJ).cases().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_down_for_a_while_gets_everything_when_it_returns() -> Result<()> {
    let (w, c) = world(Duration::ZERO, &fan_out(), "").await?;
    w.sim(ZJ).faults().update(|f| f.maintenance = true);
    for i in 0..5 {
        let case = permit_case(&format!("DOWN-{i:04}"))?;
        assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    }
    // Market regulation is not slowed by housing's outage.
    for i in 0..5 {
        c.wait_case(&format!("DOWN-{i:04}"), WAIT, |v| {
            delivery_state(v, MR) == "delivered"
        })
        .await?;
    }
    // Housing's first attempt may still be in flight when market regulation
    // is done: wait for it to fail and be scheduled again.
    let v = c
        .wait_case("DOWN-0000", WAIT, |v| delivery_state(v, ZJ) == "retrying")
        .await?;
    let zj = &v["networks"][ZJ]["delivery"];
    assert!(zj["last_error"]["message"].as_str().is_some(), "{v}");
    assert!(w.sim(ZJ).cases().is_empty());
    w.sim(ZJ).faults().update(|f| f.maintenance = false);
    for i in 0..5 {
        c.wait_case(&format!("DOWN-{i:04}"), WAIT, |v| {
            delivered_everywhere(v, &[MR, ZJ])
        })
        .await?;
    }
    for net in [MR, ZJ] {
        let cases = w.sim(net).cases();
        assert_eq!(cases.len(), 5, "{net}");
        assert!(
            cases.iter().all(|c| c.submissions == 1),
            "{net}: a case was submitted twice"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_network_still_gets_each_case_exactly_once() -> Result<()> {
    let (w, c) = world(Duration::ZERO, &fan_out(), "").await?;
    for i in 0..8 {
        // Failures of every kind, including replies lost after the ministry
        // accepted (the ambiguous case the verify rule settles).
        w.sim(MR).faults().update(|f| {
            f.fail_next = 1;
            f.reset_next = 1;
        });
        w.sim(ZJ)
            .faults()
            .update(|f| f.accept_then_timeout_next = 1);
        let case = permit_case(&format!("FLAP-{i:04}"))?;
        assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    }
    for i in 0..8 {
        c.wait_case(&format!("FLAP-{i:04}"), Duration::from_secs(60), |v| {
            delivered_everywhere(v, &[MR, ZJ])
        })
        .await?;
    }
    for net in [MR, ZJ] {
        let cases = w.sim(net).cases();
        assert_eq!(cases.len(), 8, "{net}: {cases:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_case_is_dead_lettered_then_replayed_after_the_fix() -> Result<()> {
    let (w, c) = world_polling(Duration::ZERO, &fan_out(), "", false).await?;
    // A first case logs the adapter in, so the fault hits the submit itself.
    assert_eq!(c.post("/v1/cases", &permit_case("DLQ-0000")?).await?.0, 202);
    c.wait_case("DLQ-0000", WAIT, |v| delivered_everywhere(v, &[MR, ZJ]))
        .await?;
    w.sim(MR).faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "sqrmc".into();
    });
    let case = permit_case("DLQ-0001")?;
    assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    let v = c
        .wait_case("DLQ-0001", WAIT, |v| delivery_state(v, MR) == "dead")
        .await?;
    let reason = v["networks"][MR]["delivery"]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(
        reason.contains("sqrmc"),
        "the dead letter names the field: {reason}"
    );
    // The other network is not held up by this one's dead letter.
    c.wait_case("DLQ-0001", WAIT, |v| delivery_state(v, ZJ) == "delivered")
        .await?;
    let admin = w.admin().expect("admin listener");
    let (_, dlq) = admin.get("/admin/dlq?network=market-regulation").await?;
    let letters = dlq["dead_letters"].as_array().cloned().unwrap_or_default();
    assert_eq!(letters.len(), 1, "{dlq}");
    assert_eq!(letters[0]["case"]["case_number"], json!("DLQ-0001"));
    assert!(
        letters[0]["attempt_log"][0]["adapter"]
            .as_str()
            .is_some_and(|a| a.len() == 64)
    );
    // The fix is on the ministry side (the fault is gone); replay.
    let (status, out) = admin
        .post("/admin/replay", &json!({"case_number": "DLQ-0001"}))
        .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["replayed"].as_array().map(Vec::len), Some(1));
    c.wait_case("DLQ-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    assert_eq!(w.sim(MR).cases().len(), 2);
    let (_, dlq) = admin.get("/admin/dlq").await?;
    assert_eq!(dlq["dead_letters"].as_array().map(Vec::len), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_reaches_the_case_view_and_the_webhook_once() -> Result<()> {
    let hook = Webhook::start().await?;
    *hook.fail_next.lock().unwrap_or_else(|p| p.into_inner()) = 2;
    let subscribers = format!(
        "[subscribers.platform]\nurl = \"{}\"\nevents = [\"stage\"]\n[subscribers.platform.retry]\ninitial-ms = 50\nmax-interval-ms = 200\n{}",
        hook.url,
        hook.tls_toml("platform")
    );
    let (w, c) = world(
        Duration::ZERO,
        &items(&format!("{{ network = \"{MR}\" }}")),
        &subscribers,
    )
    .await?;
    let case = permit_case("HOOK-0001")?;
    assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    let v = c
        .wait_case("HOOK-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    let n = v["networks"][MR]["network_case_number"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let before = hook.notices().len();
    // The ministry moves the case; the poller brings it back.
    let status = w.sim(MR).advance(&n).expect("advance");
    let v = c
        .wait_case("HOOK-0001", WAIT, |v| {
            v["networks"][MR]["events"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["details"]["raw_status"] == json!(status))
            })
        })
        .await?;
    let stage = v["networks"][MR]["stage"].clone();
    eventually(WAIT, "the webhook notice", || {
        hook.notices().iter().any(|(_, n)| n["stage"] == stage)
    })
    .await?;
    // Give duplicates a chance to show up: polls keep returning the feed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let notices = hook.notices();
    let matching: Vec<_> = notices
        .iter()
        .filter(|(_, n)| n["stage"] == stage)
        .collect();
    assert_eq!(matching.len(), 1, "exactly once: {notices:?}");
    assert!(matching[0].0.is_some(), "notices carry an Idempotency-Key");
    assert!(notices.len() > before);
    let events = v["networks"][MR]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        assert!(
            seen.insert((e["stage"].to_string(), e["at"].to_string())),
            "duplicate event {e}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_specific_problem() -> Result<()> {
    let (_w, c) = world(Duration::ZERO, &fan_out(), "").await?;
    let (status, p) = c
        .request(
            http::Method::POST,
            "/v1/cases",
            "application/json",
            b"{not json".to_vec(),
        )
        .await?;
    assert_eq!(status, 422, "{p}");
    let mut case = case_json("enterprise-establishment.json", "BAD-0001")?;
    case["item"]["code"] = json!("NO-SUCH-ITEM");
    let (status, p) = c.post("/v1/cases", &case).await?;
    assert_eq!(status, 422);
    assert_eq!(p["errors"][0]["pointer"], json!("/item/code"), "{p}");
    let (status, p) = c
        .request(
            http::Method::POST,
            "/v1/cases",
            "text/plain",
            b"{}".to_vec(),
        )
        .await?;
    assert_eq!(status, 415, "{p}");
    let (status, p) = c.get("/v1/cases/NOPE").await?;
    assert_eq!(status, 404, "{p}");
    assert!(p["type"].as_str().is_some_and(|t| t.ends_with("not-found")));
    let (status, p) = c.get("/v1/cases?state=sideways").await?;
    assert_eq!(status, 400);
    assert!(p["detail"].as_str().unwrap_or("").contains("state"), "{p}");
    let big = vec![b' '; 5 << 20];
    let (status, p) = c
        .request(http::Method::POST, "/v1/cases", "application/json", big)
        .await?;
    assert_eq!(status, 413, "{p}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_follows_its_submit_and_search_finds_cases() -> Result<()> {
    let (w, c) = world(Duration::ZERO, &fan_out(), "").await?;
    w.sim(MR).faults().update(|f| f.maintenance = true);
    let case = permit_case("CHG-0001")?;
    assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    let change = json!({
        "case_number": "CHG-0001",
        "kind": {"kind": "withdraw", "reason": "申请人撤回"},
        "at": "2026-11-21T14:00:00+08:00",
    });
    let (status, body) = c.post("/v1/cases/CHG-0001/events", &change).await?;
    assert_eq!(status, 202, "{body}");
    // The withdraw waits behind the submit that cannot get through yet.
    let v = c.get("/v1/cases/CHG-0001").await?.1;
    let jobs = v["networks"][MR]["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(jobs.len(), 2, "{v}");
    assert_ne!(jobs[1]["state"], json!("delivered"));
    assert!(w.sim(MR).cases().is_empty());
    w.sim(MR).faults().update(|f| f.maintenance = false);
    c.wait_case("CHG-0001", WAIT, |v| {
        v["networks"][MR]["jobs"]
            .as_array()
            .is_some_and(|j| j.len() == 2 && j.iter().all(|j| j["state"] == json!("delivered")))
    })
    .await?;
    let sim = w.sim(MR).cases();
    assert_eq!(sim.len(), 1);
    assert!(sim[0].status_name.contains("撤"), "{:?}", sim[0]);
    let (_, found) = c
        .get("/v1/cases?item=ZJ-SGXK-001&network=market-regulation")
        .await?;
    assert!(
        found["cases"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["case_number"] == json!("CHG-0001"))),
        "{found}"
    );
    Ok(())
}

/// 企业开办: market regulation's licence number flows to tax (signed
/// open-API) and public security (which pushes its progress back through
/// the gateway's callback endpoint), duplicates and out-of-order pushes
/// included; the platform hears each stage once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_establishment_crosses_three_protocols_with_the_licence_passed_on() -> Result<()>
{
    let hook = Webhook::start().await?;
    let interval = Duration::from_millis(150);
    let mr = NetworkSpec::market_regulation(MR);
    let mr = NetworkSpec {
        sim: mr.sim.clone().with_stage_interval(interval),
        ..mr
    };
    let tax = NetworkSpec::tax("tax");
    let tax = NetworkSpec {
        sim: tax.sim.clone().with_stage_interval(interval),
        ..tax
    };
    let ga = NetworkSpec::public_security("public-security");
    let ga = NetworkSpec {
        sim: ga.sim.clone().with_stage_interval(interval),
        ..ga
    };
    let items = format!(
        "[items.\"SC-QYKB-001\"]\nroute = [{{ network = \"{MR}\" }}, {{ network = \"tax\", after = [\"{MR}\"], inputs = {{ licence-number = \"{MR}.certificate_number\" }} }}, {{ network = \"public-security\", after = [\"{MR}\"], inputs = {{ licence-number = \"{MR}.certificate_number\" }} }}]\n"
    );
    let subscribers = format!(
        "[subscribers.platform]\nurl = \"{}\"\nevents = [\"stage\"]\n{}",
        hook.url,
        hook.tls_toml("platform")
    );
    let mut w = World::prepare(vec![mr, tax, ga], &items, &subscribers, LISTENERS).await?;
    let c = w.start_gateway().await?;
    let ga_sim = w.sim("public-security");
    ga_sim.set_callback_url(w.callback_url("public-security").as_deref())?;
    ga_sim.faults().update(|f| {
        f.push_duplicate_next = 3;
        f.push_reorder_next = 2;
    });
    let case = case_json("enterprise-establishment.json", "QYKB-0001")?;
    assert_eq!(c.post("/v1/cases", &case).await?.0, 202);
    let done = |v: &Value, n: &str| v["networks"][n]["stage"] == json!("completed");
    let v = c
        .wait_case("QYKB-0001", Duration::from_secs(60), |v| {
            done(v, MR) && done(v, "tax") && done(v, "public-security")
        })
        .await?;
    let licence = v["networks"][MR]["certificate_number"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!licence.is_empty());
    let tax_case = &w.sim("tax").cases()[0];
    assert_eq!(
        tax_case.fields["yyzzbh"],
        json!(licence),
        "tax got the licence number"
    );
    let ga_case = &ga_sim.cases()[0];
    assert_eq!(
        ga_case.fields["licenceNo"],
        json!(licence),
        "public security got it too"
    );
    // Pushed events, duplicates dropped, ordered by time then stage.
    let events = v["networks"]["public-security"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        assert!(
            seen.insert((e["stage"].to_string(), e["at"].to_string())),
            "duplicate {e}"
        );
    }
    let ats: Vec<String> = events
        .iter()
        .map(|e| e["at"].as_str().unwrap_or("").to_string())
        .collect();
    let mut sorted = ats.clone();
    sorted.sort();
    assert_eq!(ats, sorted, "events are ordered");
    eventually(WAIT, "the platform hears public security complete", || {
        hook.notices().iter().any(|(_, n)| {
            n["network"] == json!("public-security") && n["stage"] == json!("completed")
        })
    })
    .await?;
    let notices = hook.notices();
    let mut keys = std::collections::BTreeSet::new();
    for (_, n) in &notices {
        let k = (
            n["network"].to_string(),
            n["stage"].to_string(),
            n["at"].to_string(),
        );
        assert!(keys.insert(k), "a stage reached the platform twice: {n}");
    }
    // Every push was acknowledged: the ministry has nothing left to send.
    eventually(WAIT, "all pushes acknowledged", || {
        ga_sim.push_stats().is_some_and(|s| s.pending == 0)
    })
    .await?;
    // The simulators saw the gateway's own client certificate, and the
    // platform's receiver too.
    for n in [MR, "tax", "public-security"] {
        assert_eq!(
            w.sim(n).tls_clients(),
            vec!["yiwang-gateway".to_string()],
            "{n}"
        );
    }
    assert!(
        hook.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .all(|cn| cn == "yiwang-gateway")
    );
    // A push with the right ministry certificate but a forged signature is
    // refused by the adapter and changes nothing.
    let callbacks = w
        .gateway
        .as_ref()
        .and_then(|g| g.callback_addr)
        .expect("callback listener");
    let ministry = w.pki.network("public-security").expect("pki");
    let forged = Client::new(
        format!("https://{callbacks}"),
        &w.pki,
        &ministry.push_client,
    )?;
    let (status, _) = forged
        .post(
            "/v1/callbacks/public-security",
            &json!({"caseNo": "x", "status": "70"}),
        )
        .await?;
    assert!(
        status == 401 || status == 403,
        "forged push answered {status}"
    );
    // A ministry posts for its own network only.
    let (status, p) = forged
        .post("/v1/callbacks/no-such-network", &json!({}))
        .await?;
    assert_eq!(status, 403, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or("")
            .contains("own network (public-security)"),
        "{p}"
    );
    // Metrics name what happened.
    let admin = w.admin().expect("admin");
    let (_, metrics) = admin.get("/metrics").await?;
    let text = metrics.as_str().unwrap_or("");
    for series in [
        "yiwang_attempts_total",
        "yiwang_deliveries_total",
        "yiwang_callbacks_total",
        "yiwang_backflow_events_total",
        "yiwang_adapter_call_seconds",
        "yiwang_intake_accepted_total",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}");
    }
    double_entry_figures_are_the_case_s(&w, &c, "QYKB-0001").await?;
    w.stop_gateway().await;
    Ok(())
}

/// The double-entry report over the enterprise establishment just run
/// (docs/operator-guide.md explains each figure field by field): the
/// operator and the auditor read it, through the API and the CLI; a bureau
/// may not.
async fn double_entry_figures_are_the_case_s(w: &World, c: &Client, case: &str) -> Result<()> {
    let path = "/admin/reports/double-entry?since=2000-01-01T00:00:00%2B08:00&period=total";
    let (status, report) = w.admin().expect("admin").get(path).await?;
    assert_eq!(status, 200, "{report}");
    let (status, by_auditor) = w.admin_as(&w.pki.auditor)?.get(path).await?;
    assert_eq!(status, 200, "{by_auditor}");
    let (status, p) = w.admin_as(&w.pki.bureau_fuzhou)?.get(path).await?;
    assert_eq!(status, 403, "{p}");
    // Bad ranges are refused, naming the parameter.
    let admin = w.admin().expect("admin");
    for (query, names) in [
        ("", "since"),
        ("?since=yesterday", "since"),
        (
            "?since=2026-12-07T00:00:00Z&until=2026-12-06T00:00:00Z",
            "until",
        ),
        ("?since=2026-12-07T00:00:00Z&period=week", "week"),
    ] {
        let (status, p) = admin
            .get(&format!("/admin/reports/double-entry{query}"))
            .await?;
        assert_eq!(status, 400, "{query}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or("").contains(names),
            "{query}: {p}"
        );
    }
    // The answer is the typed shape the CLI, the demo and the console read.
    let typed: DoubleEntryReport = serde_json::from_value(report.clone())?;
    println!("{}\n{}", render::table(&typed), render::fields(&typed));
    let item = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["item"] == json!("SC-QYKB-001"))
        .cloned()
        .unwrap_or_default();
    let keyed: Vec<(String, u64)> = item["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let name = n["network"].as_str().unwrap_or("").to_string();
            (name, n["keyed"].as_u64().unwrap_or(0))
        })
        .collect();
    let keyed_want = [
        (MR.to_string(), 16),
        ("tax".into(), 17),
        ("public-security".into(), 16),
    ];
    assert_eq!(keyed, keyed_want, "{item}");
    assert_eq!(item["keyed_once"], json!(18), "{item}");
    assert_eq!(item["saved_per_case"], json!(49 + 2 - 18), "{item}");
    // One case: 20 + 21 + 19 ministry fields (two materials each), 22
    // unified fields, the licence number passed to two networks.
    let total = &report["total"];
    assert_eq!(total["cases"], json!(1), "{report}");
    assert_eq!(total["keyed_into_networks"], json!(60), "{total}");
    assert_eq!(total["keyed_once"], json!(22), "{total}");
    assert_eq!(total["passed_along"], json!(2), "{total}");
    assert_eq!(total["keyings_saved"], json!(40), "{total}");
    assert_eq!(total["deliveries_not_counted"], json!(0), "{total}");
    // What flowed back is what the case record holds.
    let (_, v) = c.get(&format!("/v1/cases/{case}")).await?;
    let nets: Vec<&Value> = v["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n)
        .collect();
    let count = |f: &dyn Fn(&Value) -> u64| -> u64 { nets.iter().map(|n| f(n)).sum() };
    let events = count(&|n| n["events"].as_array().map_or(0, |e| e.len() as u64));
    let certificates = count(&|n| u64::from(n["certificate_number"].is_string()));
    let decisions = count(&|n| u64::from(n["decision"].is_string()));
    assert_eq!(total["ministry_case_numbers"], json!(3), "{total}");
    assert_eq!(total["stage_changes"], json!(events), "{total}");
    assert_eq!(total["certificate_numbers"], json!(certificates), "{total}");
    assert_eq!(total["decisions"], json!(decisions), "{total}");
    assert!(certificates >= 1 && events >= 3, "{v}");
    assert_eq!(
        total["results_flowed_back"],
        json!(3 + events + certificates + decisions)
    );
    assert_eq!(by_auditor["total"], report["total"]);
    // The CLI prints the same total, as the auditor, in CSV.
    let admin = w
        .gateway
        .as_ref()
        .and_then(|g| g.admin_addr)
        .expect("admin");
    let auditor = w.pki.auditor.clone();
    let ca = w.pki.gateway_ca.cert_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"))
            .args([
                "report",
                "double-entry",
                "--since",
                "2000-01-01",
                "--format",
                "csv",
            ])
            .args(["--admin", &format!("https://{admin}")])
            .arg("--cert")
            .arg(&auditor.cert_path)
            .arg("--key")
            .arg(&auditor.key_path)
            .arg("--ca")
            .arg(&ca)
            .output()
    })
    .await??;
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("total,*,1,60,22,2,40,3,{events},{decisions},{certificates},");
    assert!(csv.lines().any(|l| l.starts_with(&want)), "{csv}");
    Ok(())
}

/// The operator's CLI drives the admin API: list, dead letters, replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_commands_list_and_replay_dead_letters() -> Result<()> {
    let (w, c) = world_polling(Duration::ZERO, &fan_out(), "", false).await?;
    assert_eq!(c.post("/v1/cases", &permit_case("CLI-0000")?).await?.0, 202);
    c.wait_case("CLI-0000", WAIT, |v| delivered_everywhere(v, &[MR, ZJ]))
        .await?;
    w.sim(MR).faults().update(|f| {
        f.reject_next = 1;
        f.reject_field = "zjhm".into();
    });
    assert_eq!(c.post("/v1/cases", &permit_case("CLI-0001")?).await?.0, 202);
    c.wait_case("CLI-0001", WAIT, |v| delivery_state(v, MR) == "dead")
        .await?;
    // A poison case blocks only itself: the next case goes through.
    assert_eq!(c.post("/v1/cases", &permit_case("CLI-0002")?).await?.0, 202);
    c.wait_case("CLI-0002", WAIT, |v| delivered_everywhere(v, &[MR, ZJ]))
        .await?;
    let admin = w
        .gateway
        .as_ref()
        .and_then(|g| g.admin_addr)
        .expect("admin");
    let operator = w.pki.operator.clone();
    let ca = w.pki.gateway_ca.cert_path.clone();
    let cli = move |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang-under-test"))
            .args(["queue"])
            .args(args)
            .args(["--admin", &format!("https://{admin}")])
            .arg("--cert")
            .arg(&operator.cert_path)
            .arg("--key")
            .arg(&operator.key_path)
            .arg("--ca")
            .arg(&ca)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "yiwang queue {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let list = cli.clone();
    let dlq = tokio::task::spawn_blocking(move || list(&["dlq", "--network", MR])).await??;
    assert!(
        dlq.contains("CLI-0001") && dlq.contains("zjhm") && dlq.contains("1 dead letter"),
        "{dlq}"
    );
    let replay =
        tokio::task::spawn_blocking(move || cli(&["replay", "--case", "CLI-0001", "--rate", "5"]))
            .await??;
    assert!(replay.contains("1 job(s) replayed"), "{replay}");
    c.wait_case("CLI-0001", WAIT, |v| delivery_state(v, MR) == "delivered")
        .await?;
    Ok(())
}
