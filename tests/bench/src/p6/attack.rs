//! P6's neighbours and the configuration of one run: the healthy network
//! (the market-regulation adapter against its simulator) and, unless the
//! run is the baseline, a neighbour network running the hostile test
//! adapter in one of its attack modes.

use std::fmt::Write as _;
use std::path::Path;

pub const HEALTHY: &str = "p6-healthy";
pub const NEIGHBOUR: &str = "p6-neighbour";
/// The healthy network's item (routed to it alone).
pub const HEALTHY_ITEM: &str = "SC-QYKB-001";
/// The neighbour's item (routed to it alone).
pub const NEIGHBOUR_ITEM: &str = "ZJ-SGXK-001";

/// The largest linear memory the runtime allows by default (256 MiB): the
/// output and kv-value attacks need room for what they return or store.
const BIG_MEMORY: u64 = 256 << 20;
/// What the output and kv-value attacks hand the host in one call.
const HUGE_BYTES: &str = "200000000";

/// One neighbour: the hostile adapter's settings and its network's.
#[derive(Debug, Clone)]
pub struct Neighbour {
    /// The row's name in the tables.
    pub name: &'static str,
    /// `[networks.p6-neighbour.adapter-config]` (mode and its settings).
    pub adapter_config: Vec<(&'static str, String)>,
    /// `concurrency`: also how many cases are queued for it before the load starts.
    pub concurrency: u32,
    /// `poll-interval-ms`, for the back-flow attack.
    pub poll_interval_ms: Option<u64>,
    /// `[networks.p6-neighbour.limits] memory-bytes`, when not the default.
    pub memory_bytes: Option<u64>,
    /// Whether `inject-case` names the healthy network's seed case.
    pub injects: bool,
}

impl Neighbour {
    fn new(name: &'static str, mode: &str) -> Neighbour {
        Neighbour {
            name,
            adapter_config: vec![("mode", mode.to_string())],
            concurrency: 8,
            poll_interval_ms: None,
            memory_bytes: None,
            injects: false,
        }
    }

    /// The neighbour that behaves (`echo`): the control row.
    pub fn polite() -> Neighbour {
        Neighbour::new("polite (echo)", "echo")
    }

    fn with(mut self, key: &'static str, value: &str) -> Neighbour {
        self.adapter_config.push((key, value.to_string()));
        self
    }
}

/// Every neighbour of a full run, in order: a polite one (the control),
/// then one per attack of issue 14's table.
pub fn all() -> Vec<Neighbour> {
    let mut sleep =
        Neighbour::new("sleep 28 s at concurrency 128", "sleep").with("sleep-ms", "28000");
    sleep.concurrency = 128;
    let mut inject = Neighbour::new("inject-case (poll back-flow)", "echo");
    inject.poll_interval_ms = Some(100);
    inject.injects = true;
    let mut huge_output =
        Neighbour::new("huge-output 200 MB", "huge-output").with("output-bytes", HUGE_BYTES);
    huge_output.memory_bytes = Some(BIG_MEMORY);
    huge_output.concurrency = 1;
    let mut kv_huge =
        Neighbour::new("kv-huge 200 MB value", "kv-huge").with("value-bytes", HUGE_BYTES);
    kv_huge.memory_bytes = Some(BIG_MEMORY);
    kv_huge.concurrency = 1;
    vec![
        Neighbour::polite(),
        sleep,
        Neighbour::new("spin 1.9 s CPU", "spin").with("spin-ms", "1900"),
        Neighbour::new("loop (CPU limit)", "loop"),
        Neighbour::new("kv-flood", "kv-flood").with("kv-keys", "10000"),
        Neighbour::new("foreign-then-legit", "foreign-then-legit"),
        inject,
        Neighbour::new("retry-forever", "retry-forever"),
        Neighbour::new("describe loops", "echo").with("describe", "loop"),
        huge_output,
        kv_huge,
    ]
}

/// Where one run's networks are and what they run.
pub struct Plan<'a> {
    pub intake_port: u16,
    pub admin_port: u16,
    /// The compiled-component cache shared by every run.
    pub cache_dir: &'a Path,
    pub healthy_url: &'a str,
    /// The healthy simulator's login.
    pub credentials: (&'a str, &'a str),
    /// The neighbour, its simulator's URL and the case it injects for.
    pub neighbour: Option<(&'a Neighbour, &'a str, &'a str)>,
}

/// The configuration file of one run. Both networks keep their own
/// breaker; the neighbour's never opens (a million failures), so its
/// attack is continuous: the worst case for the healthy network.
pub fn config_text(plan: &Plan) -> String {
    let mut out = format!(
        "[gateway]\ndata-dir = \"data\"\n\n[listeners]\nintake = {{ addr = \"127.0.0.1:{}\" }}\nadmin = {{ addr = \"127.0.0.1:{}\" }}\n\n{}\n[runtime]\ncache-dir = {}\n\n",
        plan.intake_port,
        plan.admin_port,
        yiwang_e2e::TLS,
        quoted(&plan.cache_dir.display().to_string()),
    );
    out.push_str(yiwang_e2e::ADAPTERS);
    let mut names = vec![HEALTHY];
    if plan.neighbour.is_some() {
        names.push(NEIGHBOUR);
    }
    out.push_str(&yiwang_e2e::default_principals(&names));
    let (user, pass) = plan.credentials;
    let healthy = Net {
        name: HEALTHY,
        adapter: yiwang_artifacts::MARKET_REGULATION,
        url: plan.healthy_url,
        concurrency: 8,
        poll_interval_ms: Some(5000),
        secrets: vec![
            ("username", user.to_string()),
            ("password", pass.to_string()),
        ],
        adapter_config: Vec::new(),
        limits: vec![("send-timeout-ms", 2000)],
        breaker: (5, 1000),
    };
    healthy.write(&mut out);
    let _ = writeln!(
        out,
        "[items.\"{HEALTHY_ITEM}\"]\nroute = [{{ network = \"{HEALTHY}\" }}]\n"
    );
    if let Some((n, url, inject_case)) = plan.neighbour {
        let mut adapter_config = n.adapter_config.clone();
        if n.injects {
            adapter_config.push(("inject-case", inject_case.to_string()));
        }
        let mut limits = vec![("send-timeout-ms", 2000)];
        if let Some(bytes) = n.memory_bytes {
            limits.push(("memory-bytes", bytes));
        }
        Net {
            name: NEIGHBOUR,
            adapter: yiwang_artifacts::HOSTILE_ADAPTER,
            url,
            concurrency: n.concurrency,
            poll_interval_ms: n.poll_interval_ms,
            secrets: Vec::new(),
            adapter_config,
            limits,
            breaker: (1_000_000, 100),
        }
        .write(&mut out);
        let _ = writeln!(
            out,
            "[items.\"{NEIGHBOUR_ITEM}\"]\nroute = [{{ network = \"{NEIGHBOUR}\" }}]\n"
        );
    }
    out
}

/// One `[networks.<name>]` with its tables.
struct Net<'a> {
    name: &'a str,
    adapter: &'a str,
    url: &'a str,
    concurrency: u32,
    poll_interval_ms: Option<u64>,
    secrets: Vec<(&'a str, String)>,
    adapter_config: Vec<(&'a str, String)>,
    limits: Vec<(&'a str, u64)>,
    breaker: (u32, u64),
}

impl Net<'_> {
    fn write(&self, out: &mut String) {
        let n = self.name;
        let _ = writeln!(
            out,
            "\n[networks.{n}]\nadapter = {}\nadapter-signature = \"signatures/{n}.sig\"\nendpoints = [{}]\nconcurrency = {}",
            quoted(self.adapter),
            quoted(self.url),
            self.concurrency
        );
        if let Some(ms) = self.poll_interval_ms {
            let _ = writeln!(out, "poll-interval-ms = {ms}");
        }
        let _ = writeln!(
            out,
            "[networks.{n}.tls]\nca = [\"pki/{n}-ca.crt\"]\ncert = \"pki/gateway-to-{n}.crt\"\nkey = \"pki/gateway-to-{n}.key\"\nserver-name = {}",
            quoted(&yiwang_pki::network_server_name(n))
        );
        let _ = writeln!(
            out,
            "[networks.{n}.retry]\ninitial-ms = 50\nmax-interval-ms = 1000\n[networks.{n}.breaker]\nfailures = {}\ncooldown-ms = {}",
            self.breaker.0, self.breaker.1
        );
        let _ = writeln!(out, "[networks.{n}.limits]");
        for (k, v) in &self.limits {
            let _ = writeln!(out, "{k} = {v}");
        }
        if !self.secrets.is_empty() {
            let _ = writeln!(out, "[networks.{n}.secrets]");
            for (k, v) in &self.secrets {
                let _ = writeln!(out, "{k} = {{ value = {} }}", quoted(v));
            }
        }
        if !self.adapter_config.is_empty() {
            let _ = writeln!(out, "[networks.{n}.adapter-config]");
            for (k, v) in &self.adapter_config {
                let _ = writeln!(out, "{k} = {}", quoted(v));
            }
        }
    }
}

/// A TOML basic string (JSON's escaping is a subset TOML accepts).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(neighbour: Option<(&'a Neighbour, &'a str, &'a str)>) -> Plan<'a> {
        Plan {
            intake_port: 1,
            admin_port: 2,
            cache_dir: Path::new("/tmp/cache"),
            healthy_url: "https://127.0.0.1:3",
            credentials: ("u", "p"),
            neighbour,
        }
    }

    #[test]
    fn the_baseline_has_no_neighbour_and_an_attack_run_has_its_settings() {
        let base = config_text(&plan(None));
        assert!(base.contains("[networks.p6-healthy]"), "{base}");
        assert!(!base.contains(NEIGHBOUR), "{base}");
        let all = all();
        let sleep = all.iter().find(|n| n.name.starts_with("sleep")).unwrap();
        let text = config_text(&plan(Some((sleep, "https://127.0.0.1:4", "SEED"))));
        assert!(
            text.contains("[networks.p6-neighbour]\nadapter = "),
            "{text}"
        );
        assert!(text.contains("concurrency = 128"), "{text}");
        assert!(
            text.contains("mode = \"sleep\"\nsleep-ms = \"28000\""),
            "{text}"
        );
        assert!(!text.contains("inject-case"), "{text}");
        let inject = all.iter().find(|n| n.injects).unwrap();
        let text = config_text(&plan(Some((inject, "https://127.0.0.1:4", "SEED-1"))));
        assert!(text.contains("inject-case = \"SEED-1\""), "{text}");
        assert!(text.contains("poll-interval-ms = 100"), "{text}");
    }

    #[test]
    fn every_configuration_is_valid_toml_with_distinct_row_names() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|n| n.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for n in &all {
            let text = config_text(&plan(Some((n, "https://127.0.0.1:4", "SEED"))));
            if let Err(e) = text.parse::<toml::Table>() {
                panic!("{}: {e}\n{text}", n.name);
            }
        }
    }
}
