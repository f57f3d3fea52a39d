//! The deployment layout: every CA, certificate, key and CRL a gateway, its clients, the
//! simulated ministry networks and the platform's webhook receiver need, in one directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::ca::{Ca, CertSpec, Issued, write_file};

/// Common name of every client certificate the gateway presents (to a ministry network or
/// to the platform's webhook receiver).
pub const GATEWAY_CLIENT_CN: &str = "yiwang-gateway";
/// Common name of the gateway's server certificate.
pub const GATEWAY_SERVER_CN: &str = "gateway.yiwang.internal";
/// DNS names of the gateway's server certificate (its IP addresses are 127.0.0.1 and ::1).
pub const GATEWAY_DNS: &[&str] = &["localhost", "gateway.yiwang.internal"];
/// The Fuzhou bureau's client identity (also carried by the hostile certificates).
pub const BUREAU_FUZHOU_CN: &str = "fuzhou-bureau";
pub const BUREAU_FUZHOU_URI: &str = "yiwang://bureau/fuzhou";
pub const PLATFORM_CN: &str = "unified-platform";
pub const OPERATOR_CN: &str = "ops-1";
pub const AUDITOR_CN: &str = "audit-1";
/// Names no network may take: they would collide with the other files of the layout.
pub const RESERVED_NETWORK_NAMES: &[&str] = &["bureau", "ministry", "gateway", "platform", "rogue"];
/// The networks `yiwang-pki` makes when none is named: the demo's four.
pub const DEMO_NETWORKS: &[&str] = &["market-regulation", "housing", "tax", "public-security"];

/// The name in a ministry network's server certificate: `<net>.zwfw.internal` (no IP
/// address, so the gateway must connect to the loopback address with a server-name
/// override).
pub fn network_server_name(network: &str) -> String {
    format!("{network}.zwfw.internal")
}

/// Push (callback) client identity of a ministry network: `<net>-push`.
pub fn network_push_cn(network: &str) -> String {
    format!("{network}-push")
}

/// Push client URI name of a ministry network: `yiwang://ministry/<net>`.
pub fn network_push_uri(network: &str) -> String {
    format!("yiwang://ministry/{network}")
}

/// Where a simulated ministry network's files are in a layout written to `dir` (no file is
/// read: this is naming only, for `yiwang-sim --pki DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPaths {
    /// `<net>-server.crt` / `.key`: what the simulator presents.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `<net>-ca.crt`: what the simulator requires the gateway's client certificate from.
    pub ca_cert: PathBuf,
    /// `gateway-ca.crt`: what the simulator's push client trusts the gateway by.
    pub gateway_ca_cert: PathBuf,
    /// `ministry-<net>.crt` / `.key`: the simulator's push client identity.
    pub push_cert: PathBuf,
    pub push_key: PathBuf,
    /// `gateway-to-<net>.crt` / `.key`: the gateway's client identity for this network.
    pub gateway_client_cert: PathBuf,
    pub gateway_client_key: PathBuf,
}

impl NetworkPaths {
    pub fn new(dir: &Path, network: &str) -> NetworkPaths {
        let file = |name: String| dir.join(name);
        NetworkPaths {
            server_cert: file(format!("{network}-server.crt")),
            server_key: file(format!("{network}-server.key")),
            ca_cert: file(format!("{network}-ca.crt")),
            gateway_ca_cert: file("gateway-ca.crt".to_owned()),
            push_cert: file(format!("ministry-{network}.crt")),
            push_key: file(format!("ministry-{network}.key")),
            gateway_client_cert: file(format!("gateway-to-{network}.crt")),
            gateway_client_key: file(format!("gateway-to-{network}.key")),
        }
    }
}

/// A CA of the layout and where it was written.
#[derive(Debug)]
pub struct CaFiles {
    pub ca: Ca,
    /// `<stem>.crt`
    pub cert_path: PathBuf,
    /// `<stem>.key` (mode 0600)
    pub key_path: PathBuf,
}

impl Deref for CaFiles {
    type Target = Ca;

    fn deref(&self) -> &Ca {
        &self.ca
    }
}

/// A certificate of the layout and where it was written.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    pub issued: Issued,
    /// `<stem>.crt`
    pub cert_path: PathBuf,
    /// `<stem>.key` (mode 0600)
    pub key_path: PathBuf,
}

impl Deref for IssuedFiles {
    type Target = Issued;

    fn deref(&self) -> &Issued {
        &self.issued
    }
}

/// A CRL of the layout and where it was written.
#[derive(Debug, Clone)]
pub struct CrlFile {
    pub pem: String,
    /// `<ca>.crl`
    pub path: PathBuf,
}

/// One simulated ministry network's share of the layout.
#[derive(Debug)]
pub struct NetworkPki {
    pub name: String,
    /// `<net>.zwfw.internal`: the only name in `server`.
    pub server_name: String,
    /// `<net>-ca`: the ministry's own CA.
    pub ca: CaFiles,
    /// `<net>-server`: the simulator's server certificate, from `<net>-ca`.
    pub server: IssuedFiles,
    /// `gateway-to-<net>`: the gateway's client certificate for this network, from `<net>-ca`.
    pub gateway_client: IssuedFiles,
    /// `ministry-<net>`: the network's push client certificate, from `ministry-ca`.
    pub push_client: IssuedFiles,
}

/// One line of [`Pki::files`]: a file, who holds it, who trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    pub held_by: String,
    pub trusted_by: String,
}

/// A complete test or demo deployment PKI, written by [`Pki::generate`]; the crate docs
/// have the table of its files.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
    /// Issues the gateway's server certificate; every client of the gateway trusts it.
    pub gateway_ca: CaFiles,
    /// Issues the bureau, platform, operator and auditor client certificates.
    pub bureau_ca: CaFiles,
    /// Issues the ministries' push (callback) client certificates.
    pub ministry_ca: CaFiles,
    /// The unified platform's CA: its webhook receiver and the gateway's client certificate
    /// for it.
    pub platform_ca: CaFiles,
    /// Unrelated to everything: issues `rogue-bureau`.
    pub rogue_ca: CaFiles,
    /// The gateway's server certificate.
    pub gateway: IssuedFiles,
    pub bureau_fuzhou: IssuedFiles,
    pub platform: IssuedFiles,
    pub operator: IssuedFiles,
    pub auditor: IssuedFiles,
    /// Fuzhou's identity from `bureau-ca`, validity entirely in the past.
    pub expired_bureau: IssuedFiles,
    /// Fuzhou's identity from `rogue-ca`.
    pub rogue_bureau: IssuedFiles,
    /// Fuzhou's identity from `bureau-ca`, listed in `bureau-ca.crl`.
    pub revoked_bureau: IssuedFiles,
    /// The platform's webhook receiver (server), from `platform-ca`.
    pub platform_webhook: IssuedFiles,
    /// The gateway's client certificate for the webhook receiver, from `platform-ca`.
    pub gateway_to_platform: IssuedFiles,
    /// `bureau-ca.crl`: lists `revoked-bureau`.
    pub bureau_crl: CrlFile,
    /// `ministry-ca.crl`: empty but valid.
    pub ministry_crl: CrlFile,
    /// In the order given to [`Pki::generate`].
    pub networks: Vec<NetworkPki>,
}

impl Pki {
    /// Create every CA, certificate, key and CRL of the layout in `dir` (created if missing;
    /// files already there are overwritten) for these ministry networks. Names are
    /// lowercase ASCII letters, digits and `-`, distinct, none of
    /// [`RESERVED_NETWORK_NAMES`]. Keys are fresh each time; file names depend only on the
    /// network names.
    pub fn generate(dir: &Path, networks: &[&str]) -> anyhow::Result<Pki> {
        check_network_names(networks)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = |stem: &str| -> anyhow::Result<CaFiles> {
            let ca = Ca::try_new(stem)?;
            let (cert_path, key_path) = ca
                .write(dir, stem)
                .with_context(|| format!("writing {stem} into {}", dir.display()))?;
            Ok(CaFiles {
                ca,
                cert_path,
                key_path,
            })
        };
        let issue = |ca: &Ca, stem: &str, spec: &CertSpec| -> anyhow::Result<IssuedFiles> {
            let issued = ca
                .try_issue(spec)
                .with_context(|| format!("issuing {stem}"))?;
            let (cert_path, key_path) = issued
                .write(dir, stem)
                .with_context(|| format!("writing {stem} into {}", dir.display()))?;
            Ok(IssuedFiles {
                issued,
                cert_path,
                key_path,
            })
        };
        let crl = |ca: &Ca, stem: &str, revoked: &[&Issued]| -> anyhow::Result<CrlFile> {
            let pem = ca.try_crl(revoked)?;
            let path = dir.join(format!("{stem}.crl"));
            write_file(&path, pem.as_bytes(), 0o644)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(CrlFile { pem, path })
        };
        let loopback = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        let fuzhou = || CertSpec::client(BUREAU_FUZHOU_CN).uri(BUREAU_FUZHOU_URI);

        let gateway_ca = ca("gateway-ca")?;
        let bureau_ca = ca("bureau-ca")?;
        let ministry_ca = ca("ministry-ca")?;
        let platform_ca = ca("platform-ca")?;
        let rogue_ca = ca("rogue-ca")?;

        let gateway = issue(
            &gateway_ca,
            "gateway",
            &CertSpec::server(GATEWAY_SERVER_CN, GATEWAY_DNS, &loopback),
        )?;
        let bureau_fuzhou = issue(&bureau_ca, "bureau-fuzhou", &fuzhou())?;
        let platform = issue(&bureau_ca, "platform", &CertSpec::client(PLATFORM_CN))?;
        let operator = issue(&bureau_ca, "operator", &CertSpec::client(OPERATOR_CN))?;
        let auditor = issue(&bureau_ca, "auditor", &CertSpec::client(AUDITOR_CN))?;
        let expired_bureau = issue(&bureau_ca, "expired-bureau", &fuzhou().expired())?;
        let rogue_bureau = issue(&rogue_ca, "rogue-bureau", &fuzhou())?;
        let revoked_bureau = issue(&bureau_ca, "revoked-bureau", &fuzhou())?;
        let platform_webhook = issue(
            &platform_ca,
            "platform-webhook",
            &CertSpec::server(
                "platform-webhook",
                &["localhost"],
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ),
        )?;
        let gateway_to_platform = issue(
            &platform_ca,
            "gateway-to-platform",
            &CertSpec::client(GATEWAY_CLIENT_CN),
        )?;
        let bureau_crl = crl(&bureau_ca, "bureau-ca", &[&revoked_bureau.issued])?;
        let ministry_crl = crl(&ministry_ca, "ministry-ca", &[])?;

        let mut nets = Vec::with_capacity(networks.len());
        for &name in networks {
            let server_name = network_server_name(name);
            let net_ca = ca(&format!("{name}-ca"))?;
            let server = issue(
                &net_ca,
                &format!("{name}-server"),
                &CertSpec::server(&server_name, &[&server_name], &[]),
            )?;
            let gateway_client = issue(
                &net_ca,
                &format!("gateway-to-{name}"),
                &CertSpec::client(GATEWAY_CLIENT_CN),
            )?;
            let push_client = issue(
                &ministry_ca,
                &format!("ministry-{name}"),
                &CertSpec::client(&network_push_cn(name)).uri(&network_push_uri(name)),
            )?;
            nets.push(NetworkPki {
                name: name.to_owned(),
                server_name,
                ca: net_ca,
                server,
                gateway_client,
                push_client,
            });
        }
        Ok(Pki {
            dir: dir.to_owned(),
            gateway_ca,
            bureau_ca,
            ministry_ca,
            platform_ca,
            rogue_ca,
            gateway,
            bureau_fuzhou,
            platform,
            operator,
            auditor,
            expired_bureau,
            rogue_bureau,
            revoked_bureau,
            platform_webhook,
            gateway_to_platform,
            bureau_crl,
            ministry_crl,
            networks: nets,
        })
    }

    /// One network's share, by name.
    pub fn network(&self, name: &str) -> Option<&NetworkPki> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// Every file written, with who holds it and who trusts it (the crate docs' table, for
    /// this layout's networks).
    pub fn files(&self) -> Vec<FileEntry> {
        let mut out = Vec::new();
        let mut entry = |path: &Path, held_by: &str, trusted_by: &str| {
            out.push(FileEntry {
                path: path.to_owned(),
                held_by: held_by.to_owned(),
                trusted_by: trusted_by.to_owned(),
            });
        };
        let operator_only = "the PKI operator only (no service needs it)";
        let mut ca = |files: &CaFiles, trusted_by: &str| {
            entry(&files.cert_path, "(public)", trusted_by);
            entry(&files.key_path, operator_only, "-");
        };
        ca(
            &self.gateway_ca,
            "bureau, platform, operators, auditors, ministries' push clients: the gateway's server",
        );
        ca(&self.bureau_ca, "gateway: clients of intake and admin");
        ca(
            &self.ministry_ca,
            "gateway: push clients of the callback endpoint",
        );
        ca(
            &self.platform_ca,
            "gateway: the webhook receiver; the webhook receiver: the gateway",
        );
        ca(&self.rogue_ca, "nobody");
        let mut pair = |files: &IssuedFiles, held_by: &str, trusted_by: &str| {
            entry(&files.cert_path, held_by, trusted_by);
            entry(&files.key_path, held_by, "-");
        };
        pair(
            &self.gateway,
            "gateway (intake, admin and callback listeners)",
            "clients, via gateway-ca",
        );
        pair(
            &self.bureau_fuzhou,
            "Fuzhou bureau's approval system",
            "gateway, via bureau-ca",
        );
        pair(&self.platform, "unified platform", "gateway, via bureau-ca");
        pair(
            &self.operator,
            "operator ops-1 (admin API, CLI)",
            "gateway, via bureau-ca",
        );
        pair(&self.auditor, "auditor audit-1", "gateway, via bureau-ca");
        pair(&self.expired_bureau, "hostile tests", "nobody: expired");
        pair(&self.rogue_bureau, "hostile tests", "nobody: unknown CA");
        pair(
            &self.revoked_bureau,
            "hostile tests",
            "nobody: in bureau-ca.crl",
        );
        pair(
            &self.platform_webhook,
            "the platform's webhook receiver",
            "gateway, via platform-ca",
        );
        pair(
            &self.gateway_to_platform,
            "gateway (webhook client)",
            "the webhook receiver, via platform-ca",
        );
        entry(
            &self.bureau_crl.path,
            "(public)",
            "gateway: revokes revoked-bureau",
        );
        entry(&self.ministry_crl.path, "(public)", "gateway: empty");
        for net in &self.networks {
            let n = &net.name;
            entry(
                &net.ca.cert_path,
                "(public)",
                &format!("gateway: simulator {n}'s server; simulator {n}: the gateway"),
            );
            entry(&net.ca.key_path, operator_only, "-");
            let mut pair = |files: &IssuedFiles, held_by: String, trusted_by: String| {
                entry(&files.cert_path, &held_by, &trusted_by);
                entry(&files.key_path, &held_by, "-");
            };
            pair(
                &net.server,
                format!("simulator {n} (server, {})", net.server_name),
                format!("gateway, via {n}-ca (server-name override)"),
            );
            pair(
                &net.gateway_client,
                format!("gateway (client of {n})"),
                format!("simulator {n}, via {n}-ca"),
            );
            pair(
                &net.push_client,
                format!("simulator {n} (push client)"),
                "gateway, via ministry-ca".to_owned(),
            );
        }
        out
    }
}

fn check_network_names(networks: &[&str]) -> anyhow::Result<()> {
    for (i, name) in networks.iter().enumerate() {
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-'),
            "network name {name:?}: use lowercase ASCII letters, digits and inner dashes"
        );
        anyhow::ensure!(
            !RESERVED_NETWORK_NAMES.contains(name),
            "network name {name:?} is reserved (it would collide with another file)"
        );
        anyhow::ensure!(
            !networks[..i].contains(name),
            "network {name:?} named twice"
        );
    }
    Ok(())
}
