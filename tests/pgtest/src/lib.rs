//! A private PostgreSQL 15 cluster for tests and benchmarks, started from
//! Debian's `postgresql-15` package: `initdb` into a fresh temporary
//! folder, the server on a free loopback port, no mocks.
//!
//! Why a watchdog shell: a cluster shared by a whole test binary lives in a
//! `static`, and statics are never dropped. The server therefore runs under
//! a small shell that waits for end-of-file on a pipe from this process;
//! when the process ends (normally, by a panic, or by `kill -9`) the pipe
//! closes, and the shell stops the server (immediate shutdown) and removes
//! the folder. Nothing is left running after a test run.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian puts PostgreSQL 15's server programs.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// What to install when the programs are missing.
pub const INSTALL_HINT: &str =
    "install Debian's PostgreSQL 15: `apt-get install -y postgresql-15` (`.ci/run` does)";

/// The watchdog: start the server, then obey one command a line on stdin —
/// `stop` (an immediate shutdown, as a crash leaves the data: recovery runs
/// at the next start) and `start` (again, on the same folder and port) —
/// and at end-of-file stop the server and remove the folder. Arguments:
/// bin, folder, port, then `-c` settings. A background job of a
/// non-interactive shell reads /dev/null, so the server never holds the pipe
/// open itself.
const WATCHDOG: &str = r#"
bin="$1"; dir="$2"; port="$3"; shift 3
up() { "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 "$@" >>"$dir/server.log" 2>&1 & pid=$!; }
up "$@"
while read -r cmd; do
  case "$cmd" in
    stop) kill -QUIT "$pid" 2>/dev/null; wait "$pid";;
    start) up "$@";;
  esac
done
kill -QUIT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
"#;

/// A running cluster; its user `postgres` connects without a password over
/// loopback (`trust`), as a test needs.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

/// One cluster for the whole process, started on first use. Panics with
/// what to install when PostgreSQL is missing: a test suite that needs it
/// must fail loudly, never skip.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| match Cluster::start(&[]) {
        Ok(c) => c,
        Err(e) => panic!("cannot start the test PostgreSQL cluster: {e:#}"),
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A PostgreSQL program; as root, run as the `postgres` user (the server
/// refuses to run as root).
fn pg_command(program: &str, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c.output().with_context(|| format!("{what}: cannot run"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Write the server's certificate and key (the key private to its owner,
/// as the server demands) and the settings that serve them.
fn serve_tls(dir: &Path, cert: &str, key: &str) -> Result<Vec<(String, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let cert_file = dir.join("server.crt");
    let key_file = dir.join("server.key");
    std::fs::write(&cert_file, cert)?;
    std::fs::write(&key_file, key)?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    Ok(vec![
        ("ssl".into(), "on".into()),
        ("ssl_cert_file".into(), cert_file.display().to_string()),
        ("ssl_key_file".into(), key_file.display().to_string()),
    ])
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    /// A new cluster with these extra `-c name=value` settings, accepting
    /// connections when this returns.
    pub fn start(settings: &[(&str, &str)]) -> Result<Cluster> {
        Cluster::start_with(settings, None)
    }

    /// [`Cluster::start`], also serving TLS with this certificate and key
    /// (PEM) when given (plain connections are still accepted).
    pub fn start_with(settings: &[(&str, &str)], tls: Option<(&str, &str)>) -> Result<Cluster> {
        let postgres = Path::new(BIN).join("postgres");
        if !postgres.exists() {
            bail!(
                "PostgreSQL 15 is not installed ({} is missing): {INSTALL_HINT}",
                postgres.display()
            );
        }
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("yiwang-pg-")
            .tempdir()?
            .keep();
        let mut settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some((cert, key)) = tls {
            settings.extend(serve_tls(&dir, cert, key)?);
        }
        if root {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir);
            run(chown, "chown the PostgreSQL folder")?;
        }
        let mut init = pg_command(&format!("{BIN}/initdb"), root);
        init.arg("-D").arg(dir.join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(init, "initdb")?;
        let port = free_port()?;
        let mut server = pg_command("sh", root);
        server
            .args(["-c", WATCHDOG, "sh", BIN])
            .arg(&dir)
            .arg(port.to_string());
        for (name, value) in &settings {
            server.arg("-c").arg(format!("{name}={value}"));
        }
        let mut child = server
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start the PostgreSQL watchdog")?;
        let stdin = child.stdin.take().context("the watchdog's stdin")?;
        let cluster = Cluster {
            port,
            dir,
            watchdog: Mutex::new(Some((child, stdin))),
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(format!("{BIN}/pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline || self.exited() {
                let mut log = String::new();
                if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
                    let _ = f.read_to_string(&mut log);
                }
                bail!(
                    "PostgreSQL on port {} did not start: {}",
                    self.port,
                    log.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn exited(&self) -> bool {
        let mut w = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        w.as_mut()
            .is_none_or(|(child, _)| !matches!(child.try_wait(), Ok(None)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the `postgres` user.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// One connection over loopback TCP (no TLS).
    pub async fn connect(&self, database: &str) -> Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connect to PostgreSQL database {database}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Create `database` unless it exists.
    pub async fn create_database(&self, database: &str) -> Result<()> {
        let c = self.connect("postgres").await?;
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await?
            .is_some();
        if !exists {
            let quoted = database.replace('"', "\"\"");
            c.batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
                .await
                .with_context(|| format!("create database {database}"))?;
        }
        Ok(())
    }

    /// The postmaster's process id (for CPU accounting).
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
    }

    /// Stop the server at once (SIGQUIT: an immediate shutdown, no
    /// checkpoint, crash recovery at the next start), keeping its folder and
    /// port; connections are cut. Returns when the server has exited.
    pub fn stop_server(&self) -> Result<()> {
        self.command("stop")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.postmaster_pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        match self.postmaster_pid() {
            None => Ok(()),
            Some(pid) => bail!("PostgreSQL (pid {pid}) did not stop within a minute"),
        }
    }

    /// Start the server again after [`Cluster::stop_server`], on the same
    /// folder and port; returns when it accepts connections.
    pub fn start_server(&self) -> Result<()> {
        self.command("start")?;
        self.wait_ready()
    }

    fn command(&self, line: &str) -> Result<()> {
        use std::io::Write;
        let mut w = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        let (_, stdin) = w.as_mut().context("the cluster was stopped for good")?;
        writeln!(stdin, "{line}").context("tell the PostgreSQL watchdog")?;
        stdin.flush().context("tell the PostgreSQL watchdog")
    }

    /// Stop the server and remove its folder; waits until both are done.
    pub fn stop(&self) {
        let taken = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
