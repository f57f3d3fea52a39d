//! The gateway under measurement: a PKI, a configuration file and
//! `yiwang serve` as a child process, with its memory and metrics.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use yiwang_e2e::{Client, NetworkSpec, Pki, config_text};

/// A folder with a PKI and the ports of one gateway.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub intake: u16,
    pub admin: u16,
    pub config: PathBuf,
}

impl Setup {
    /// A fresh folder (readable by other users: PostgreSQL's server runs as
    /// its own user under it) with a PKI for these networks.
    pub fn new(networks: &[&str]) -> Result<Setup> {
        let dir = tempfile::Builder::new().prefix("yiwang-bench-").tempdir()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let pki = Pki::generate(&dir.path().join("pki"), networks)?;
        let config = dir.path().join("yiwang.toml");
        Ok(Setup {
            dir,
            pki,
            intake: free_port()?,
            admin: free_port()?,
            config,
        })
    }

    /// Write the configuration: these networks at these URLs, these items.
    pub fn write_config(&self, networks: &[(NetworkSpec, String)], items: &str) -> Result<()> {
        let listeners = format!(
            // The benchmarks measure the gateway's capacity, not one
            // client's budget: the load generator is one principal at one
            // address, opening all its connections at once.
            "[listeners]\nintake = {{ addr = \"127.0.0.1:{}\", rate-per-principal = 0, \
             handshake-rate-per-peer = 0, max-handshakes = 512, max-handshakes-per-peer = 512 }}\n\
             admin = {{ addr = \"127.0.0.1:{}\" }}\n",
            self.intake, self.admin
        );
        let text = config_text(networks, items, "", &listeners, "");
        std::fs::write(&self.config, text)?;
        yiwang_e2e::sign_adapters(&self.config)
    }

    /// The configuration of a gateway whose one network, `network`, is
    /// unreachable (nothing listens; its breaker opens on the first failure
    /// and stays open; no change-feed polling): cases of `item` wait, and
    /// only the intake works.
    pub fn write_unreachable(&self, network: &str, item: &str) -> Result<()> {
        let mut spec = NetworkSpec::market_regulation(network).with_breaker(1, 3_600_000);
        spec.poll_interval_ms = Some(3_600_000);
        let dead = free_port()?;
        self.write_config(
            &[(spec, format!("https://127.0.0.1:{dead}"))],
            &route(item, &[network]),
        )
    }

    /// The intake API as the Fuzhou bureau.
    pub fn intake(&self) -> Result<Client> {
        Client::new(
            format!("https://127.0.0.1:{}", self.intake),
            &self.pki,
            &self.pki.bureau_fuzhou,
        )
    }

    /// The admin API as the operator.
    pub fn admin(&self) -> Result<Client> {
        Client::new(
            format!("https://127.0.0.1:{}", self.admin),
            &self.pki,
            &self.pki.operator,
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes under the gateway's data folder.
    pub fn data_bytes(&self) -> u64 {
        dir_bytes(&self.dir.path().join("data"))
    }
}

/// `[items."<item>"]` routing to these networks.
pub fn route(item: &str, networks: &[&str]) -> String {
    let route: Vec<String> = networks
        .iter()
        .map(|n| format!("{{ network = \"{n}\" }}"))
        .collect();
    format!("[items.\"{item}\"]\nroute = [{}]\n", route.join(", "))
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `yiwang serve` as a child process.
pub struct GatewayProcess {
    child: Child,
    /// From spawning the process to its intake listener accepting.
    pub ready_after: Duration,
}

impl GatewayProcess {
    /// Start the gateway on `config` and wait until it listens.
    pub fn spawn(config: &Path) -> Result<GatewayProcess> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg(crate::GATEWAY_ARG)
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "error");
        let (child, ready_after) = yiwang_e2e::spawn_serving(cmd)?;
        Ok(GatewayProcess { child, ready_after })
    }

    /// Start the gateway on `config` with its log (stderr) in `log`, and wait
    /// at most `within` for it to listen. A gateway that exits first, or is
    /// still not listening by then (it is killed), is an error that quotes
    /// the end of its log.
    pub fn spawn_logged(config: &Path, log: &Path, within: Duration) -> Result<GatewayProcess> {
        use std::io::{BufRead, BufReader};
        use std::sync::mpsc::RecvTimeoutError;
        let started = std::time::Instant::now();
        let mut child = Command::new(std::env::current_exe()?)
            .arg(crate::GATEWAY_ARG)
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("spawn the gateway")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if !told && line.contains("intake listening") {
                    told = tx.send(()).is_ok();
                }
            }
        });
        let heard = rx.recv_timeout(within);
        let mut gateway = GatewayProcess {
            ready_after: started.elapsed(),
            child,
        };
        let status = match heard {
            Ok(()) => return Ok(gateway),
            // Its stdout closed: it is exiting.
            Err(RecvTimeoutError::Disconnected) => format!("exited ({})", gateway.child.wait()?),
            Err(RecvTimeoutError::Timeout) => {
                format!("was not listening after {} s", within.as_secs())
            }
        };
        drop(gateway);
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        bail!(
            "the gateway {status}; its log ends: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    }

    /// Resident memory now and at its peak.
    pub fn memory(&self) -> Result<Memory> {
        Memory::of(self.child.id())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far (every thread, user + system).
    pub fn cpu(&self) -> Result<Duration> {
        cpu_time(self.child.id())
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM: a clean stop.
    pub fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's resident memory, in MiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| -> Result<f64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .with_context(|| format!("no {key} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss_mib: kib("VmRSS:")? / 1024.0,
            peak_mib: kib("VmHWM:")? / 1024.0,
        })
    }
}

/// User + system CPU time of a process (every thread), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("/proc/{pid}/stat has no field {i}"))
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / clock_ticks()))
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once (100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// CPU time of `pid` and every process below it.
pub fn tree_cpu_time(pid: u32) -> Duration {
    let mut total = cpu_time(pid).unwrap_or_default();
    for kid in children(pid) {
        total += tree_cpu_time(kid);
    }
    total
}

/// Resident memory of `pid` and every process below it, in MiB.
pub fn tree_rss_mib(pid: u32) -> f64 {
    let own = Memory::of(pid).map_or(0.0, |m| m.rss_mib);
    own + children(pid).into_iter().map(tree_rss_mib).sum::<f64>()
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|k| k.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The gateway's Prometheus text.
pub async fn scrape(admin: &Client) -> Result<String> {
    let (status, body) = admin.get("/metrics").await?;
    match (status, body) {
        (200, serde_json::Value::String(text)) => Ok(text),
        (s, b) => bail!("GET /metrics: {s} {b}"),
    }
}

/// The sum of every series of `name` in Prometheus text (with or without labels).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Total size of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_every_series_of_one_name_only() {
        let text = "# HELP yiwang_x x\nyiwang_x{a=\"1\"} 2\nyiwang_x{a=\"2\"} 3.5\nyiwang_x_total 100\nyiwang_x 1\n";
        assert_eq!(metric(text, "yiwang_x"), 6.5);
        assert_eq!(metric(text, "yiwang_x_total"), 100.0);
        assert_eq!(metric(text, "yiwang_y"), 0.0);
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = cpu_time(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = tree_cpu_time(std::process::id());
        assert!(after > before, "{before:?} -> {after:?}");
    }

    #[test]
    fn own_memory_is_readable() {
        let m = Memory::of(std::process::id()).unwrap();
        assert!(m.rss_mib > 0.0 && m.peak_mib >= m.rss_mib, "{m:?}");
    }

    #[test]
    fn a_route_lists_every_network() {
        assert_eq!(
            route("SC-QYKB-001", &["a", "b"]),
            "[items.\"SC-QYKB-001\"]\nroute = [{ network = \"a\" }, { network = \"b\" }]\n"
        );
    }
}
