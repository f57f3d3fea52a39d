//! nginx (Debian's package) as an mTLS reverse proxy: the baseline of P2.
//! It terminates the bureau's mTLS exactly as the gateway's intake does
//! (the gateway's server certificate, the bureau CA required) and proxies
//! over mTLS to the ministry simulator exactly as the gateway's transport
//! does (the gateway's client certificate for that network, the network's
//! CA, its server name), keeping upstream connections alive. No transform,
//! no durability: the limit of a proxy on this machine.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

/// The files and addresses of one proxy.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    pub listen_port: u16,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_ca: PathBuf,
    pub upstream: std::net::SocketAddr,
    pub upstream_ca: PathBuf,
    pub upstream_cert: PathBuf,
    pub upstream_key: PathBuf,
    pub upstream_name: String,
}

pub struct Nginx {
    child: Child,
}

impl Nginx {
    /// Write `dir/nginx.conf` and start nginx in the foreground; wait until
    /// it accepts connections.
    pub fn start(dir: &Path, spec: &ProxySpec) -> Result<Nginx> {
        if !Path::new(NGINX).exists() {
            bail!(
                "nginx is not installed ({NGINX}): `make bench` installs it (Debian package nginx)"
            );
        }
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, spec))?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start nginx")?;
        let mut nginx = Nginx { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", spec.listen_port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                bail!("nginx exited ({status}): {log}");
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {} within 10 s", spec.listen_port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    /// Resident memory of the master and its workers together.
    pub fn rss_mib(&self) -> f64 {
        crate::gateway::tree_rss_mib(self.child.id())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: fast shutdown of the workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// One master, a worker per core, mTLS in and out, upstream keep-alive.
fn config(dir: &Path, s: &ProxySpec) -> String {
    let d = dir.display();
    let p = |p: &Path| p.display().to_string();
    format!(
        r#"daemon off;
master_process on;
worker_processes auto;
user root;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    upstream ministry {{
        server {upstream};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        client_max_body_size 16m;
        location / {{
            proxy_pass https://ministry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_certificate {up_cert};
            proxy_ssl_certificate_key {up_key};
            proxy_ssl_trusted_certificate {up_ca};
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_name {name};
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
        }}
    }}
}}
"#,
        upstream = s.upstream,
        port = s.listen_port,
        cert = p(&s.server_cert),
        key = p(&s.server_key),
        client_ca = p(&s.client_ca),
        up_cert = p(&s.upstream_cert),
        up_key = p(&s.upstream_key),
        up_ca = p(&s.upstream_ca),
        name = s.upstream_name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_requires_client_certificates_and_verifies_the_ministry() {
        let spec = ProxySpec {
            listen_port: 8443,
            server_cert: "/p/gateway.crt".into(),
            server_key: "/p/gateway.key".into(),
            client_ca: "/p/bureau-ca.crt".into(),
            upstream: "127.0.0.1:9000".parse().unwrap(),
            upstream_ca: "/p/m-ca.crt".into(),
            upstream_cert: "/p/gateway-to-m.crt".into(),
            upstream_key: "/p/gateway-to-m.key".into(),
            upstream_name: "m.zwfw.internal".into(),
        };
        let text = config(Path::new("/run/n"), &spec);
        for line in [
            "listen 127.0.0.1:8443 ssl;",
            "ssl_verify_client on;",
            "ssl_client_certificate /p/bureau-ca.crt;",
            "proxy_pass https://ministry;",
            "server 127.0.0.1:9000;",
            "proxy_ssl_certificate /p/gateway-to-m.crt;",
            "proxy_ssl_verify on;",
            "proxy_ssl_name m.zwfw.internal;",
            "proxy_set_header Connection \"\";",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }
}
