//! A real browser for the console test: Debian's headless Chromium driven
//! over WebDriver (`chromedriver`, through the fantoccini client), doing the
//! mTLS handshake itself. Each [`Browser`] has a fresh `$HOME` whose NSS
//! database (`~/.pki/nssdb`, filled with `certutil` and `pk12util`) trusts
//! the gateway's CA and holds one principal's client certificate, and a
//! fresh profile whose `auto_select_certificate` content setting (what the
//! `AutoSelectCertificateForUrls` policy sets, here per profile rather than
//! machine-wide under /etc) picks that certificate for the gateway's origin
//! without a dialog. Nothing is trusted beyond that: no
//! `--ignore-certificate-errors`.

use anyhow::{Context, Result, bail};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use yiwang_pki::{IssuedFiles, Pki};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show an element (a bound, not a measurement).
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Chromium's flags: headless, offline-quiet, no first-run noise.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// A headless Chromium presenting one principal's client certificate.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _home: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a browser session for `identity` (a client
    /// certificate of `pki`) that will present it to `origin`
    /// (`https://127.0.0.1:<port>`).
    pub async fn start(pki: &Pki, identity: &IssuedFiles, origin: &str) -> Result<Browser> {
        for tool in [
            CHROMIUM,
            CHROMEDRIVER,
            "/usr/bin/certutil",
            "/usr/bin/pk12util",
        ] {
            if !Path::new(tool).exists() {
                bail!(
                    "{tool} is missing: the console's browser test needs Debian's packages \
                     chromium, chromium-driver and libnss3-tools (.ci/run installs them)"
                );
            }
        }
        let home = tempfile::tempdir()?;
        nss_database(home.path(), pki, identity)?;
        let profile = home.path().join("profile");
        auto_select(&profile, origin)?;
        let port = free_port()?;
        let log = std::fs::File::create(home.path().join("chromedriver.log"))?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting chromedriver")?;
        let caps = capabilities(&profile);
        let url = format!("http://127.0.0.1:{port}");
        let client = yiwang_e2e::until(PAGE_WAIT, "chromedriver to start a session", || {
            let caps = caps.clone();
            let url = url.clone();
            async move {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await?;
        let browser = Browser {
            client,
            driver,
            _home: home,
        };
        browser.viewport(1280, 800).await?;
        Ok(browser)
    }

    /// Size the window so that the page itself gets `width`×`height`.
    async fn viewport(&self, width: u32, height: u32) -> Result<()> {
        self.client.set_window_size(width, height).await?;
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let got = |i: usize| inner[i].as_u64().unwrap_or_default() as u32;
        let (w, h) = (
            width + width.saturating_sub(got(0)),
            height + height.saturating_sub(got(1)),
        );
        self.client.set_window_size(w, h).await?;
        Ok(())
    }

    /// Open a console page (`#/<page>`) and wait for the element that says
    /// it drew.
    pub async fn page(&self, origin: &str, page: &str, ready: &str) -> Result<()> {
        self.client
            .goto(&format!("{origin}/console/#/{page}"))
            .await?;
        match self.wait(ready).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // What the page showed instead, beside the other screenshots.
                let body = self.text("page").await.unwrap_or_default();
                Err(e.context(format!("page {page} showed: {body}")))
            }
        }
    }

    /// The element with this `data-testid`, once it is there.
    pub async fn wait(&self, testid: &str) -> Result<fantoccini::elements::Element> {
        let css = format!("[data-testid=\"{testid}\"]");
        self.client
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(&css))
            .await
            .with_context(|| format!("waiting for [data-testid={testid}]"))
    }

    /// Click the element with this `data-testid` (again if a redraw
    /// replaced it between finding and clicking).
    pub async fn click(&self, testid: &str) -> Result<()> {
        let css = format!("[data-testid=\"{testid}\"]");
        self.click_css(&css).await
    }

    /// Click the element a CSS selector finds (again if a redraw replaced it).
    pub async fn click_css(&self, css: &str) -> Result<()> {
        yiwang_e2e::until(PAGE_WAIT, &format!("a click on {css}"), || async {
            let e = self.client.find(Locator::Css(css)).await.ok()?;
            e.click().await.ok()
        })
        .await
    }

    /// The text of the element with this `data-testid` now, if it is there.
    pub async fn text(&self, testid: &str) -> Option<String> {
        let css = format!("[data-testid=\"{testid}\"]");
        let e = self.client.find(Locator::Css(&css)).await.ok()?;
        e.text().await.ok()
    }

    /// Save a screenshot of the window as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await?)?;
        Ok(path)
    }

    /// The browser console's entries since the last call that are errors
    /// (level SEVERE: script errors, failed requests, CSP violations).
    pub async fn console_errors(&self) -> Result<Vec<String>> {
        let out = self.client.issue_cmd(BrowserLog).await?;
        let entries = out.as_array().cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    pub async fn close(mut self) -> Result<()> {
        let closed = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        closed.map_err(Into::into)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `$HOME/.pki/nssdb`: the gateway CA trusted for TLS servers, and the
/// principal's certificate with its key (through a PKCS#12 file).
fn nss_database(home: &Path, pki: &Pki, identity: &IssuedFiles) -> Result<()> {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db)?;
    let db_arg = format!("sql:{}", db.display());
    run(Command::new("certutil").args(["-N", "-d", &db_arg, "--empty-password"]))?;
    let ca = pki.gateway_ca.cert_path.to_string_lossy().to_string();
    run(Command::new("certutil").args([
        "-A",
        "-d",
        &db_arg,
        "-n",
        "gateway-ca",
        "-t",
        "C,,",
        "-i",
        &ca,
    ]))?;
    let p12 = home.join("identity.p12");
    run(Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-passout",
            "pass:",
            "-name",
            "console-identity",
        ])
        .arg("-in")
        .arg(&identity.cert_path)
        .arg("-inkey")
        .arg(&identity.key_path)
        .arg("-out")
        .arg(&p12))?;
    run(Command::new("pk12util")
        .args(["-d", &db_arg, "-W", ""])
        .arg("-i")
        .arg(&p12))
}

/// The profile's content setting that answers the gateway's certificate
/// request with the one certificate of the NSS database.
fn auto_select(profile: &Path, origin: &str) -> Result<()> {
    let prefs = json!({ "profile": { "content_settings": { "exceptions": {
        "auto_select_certificate": {
            format!("{origin},*"): { "setting": { "filters": [{}] } }
        }
    }}}});
    std::fs::create_dir_all(profile.join("Default"))?;
    std::fs::write(profile.join("Default/Preferences"), prefs.to_string())?;
    Ok(())
}

fn capabilities(profile: &Path) -> serde_json::Map<String, Value> {
    let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    caps.as_object().cloned().unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// chromedriver's browser log (`POST /session/{id}/se/log`), which returns
/// and clears the console entries collected so far.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}
