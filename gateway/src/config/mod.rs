//! The gateway's TOML configuration: listeners, storage, networks (endpoints,
//! adapter, limits, retry policy, concurrency), items → routes and forms,
//! and the code tables forms share.
//!
//! Unknown keys are errors, and every error names `file:line:col`. The
//! annotated reference is `config/yiwang.example.toml`.
//!
//! Rooms: `types` (the tables as deserialized, with their spans), `check/`
//! (the rules of each section), `error` (problems and their places); this
//! file loads a file through both and resolves its relative paths.

mod check;
mod error;
mod store;
mod types;

pub use error::{ConfigError, ConfigErrors, Holder, SecretError};
pub use store::StoreConfigError;
pub use types::*;

use crate::forms::FormCatalogue;
use crate::policy::Policy;
use crate::tls::{ClientTlsConfig, ServerTlsConfig};
use error::{Problems, line_col};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use types::listener_tls;
use yiwang_audit::AuditConfig;

impl Config {
    /// Read, parse and check a file; relative paths in it resolve against
    /// its folder.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![ConfigError {
                line: 0,
                col: 0,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<LoadedConfig, ConfigErrors> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let fail = |errors| ConfigErrors {
            file: path.to_path_buf(),
            errors,
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            fail(vec![ConfigError {
                line,
                col,
                message: e.message().trim().to_string(),
            }])
        })?;
        let mut p = Problems::new(text);
        check::check(&config, &mut p, &base);
        let forms = Arc::new(check::forms(&config, &mut p, &base));
        let errors = p.into_sorted();
        if errors.is_empty() {
            Ok(LoadedConfig {
                config,
                base,
                forms,
            })
        } else {
            Err(fail(errors))
        }
    }
}

/// A network's adapter-config, resolved: what the adapter reads, and which
/// keys hold sensitive values (redacted wherever the gateway shows them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResolvedAdapterConfig {
    pub values: BTreeMap<String, String>,
    pub sensitive: BTreeSet<String>,
}

/// A checked configuration and the folder its relative paths resolve against.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub base: PathBuf,
    /// The items' form schemas, compiled (`[items.X] form`).
    pub forms: Arc<FormCatalogue>,
}

impl LoadedConfig {
    /// The data directory, resolved.
    pub fn data_dir(&self) -> PathBuf {
        self.base.join(&self.config.gateway.data_dir)
    }

    /// `[gateway] replica-id`, or `<host name>-<8 hex digits>` of the data
    /// directory's absolute path: stable across restarts of one
    /// installation, distinct between two on one host.
    pub fn replica_id(&self) -> String {
        if let Some(id) = &self.config.gateway.replica_id {
            return id.clone();
        }
        let dir = self.data_dir();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        default_replica_id(&host_name(), &dir)
    }

    /// An adapter's path, resolved.
    pub fn adapter_path(&self, network: &NetworkConfig) -> PathBuf {
        self.base.join(network.adapter.get_ref())
    }

    /// Where an adapter's signature file is, resolved (`adapter-signature`,
    /// else `<adapter>.sig`).
    pub fn adapter_signature_path(&self, network: &NetworkConfig) -> PathBuf {
        match &network.adapter_signature {
            Some(s) => self.base.join(s.get_ref()),
            None => crate::publisher::default_signature_path(&self.adapter_path(network)),
        }
    }

    /// The adapter publishers `[adapters]` trusts, their key files read.
    pub fn adapter_trust(&self) -> Result<crate::publisher::Trust, crate::publisher::KeyError> {
        let adapters = &self.config.adapters;
        let keys = adapters
            .publisher_keys
            .iter()
            .map(|k| crate::publisher::read_public_key(&self.base.join(k.get_ref())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::publisher::Trust::new(keys, adapters.allow_unsigned))
    }

    /// What `config check` warns about without refusing the file: adapter
    /// checking switched off, or adapters that will be refused at start.
    pub fn warnings(&self) -> Vec<String> {
        let adapters = &self.config.adapters;
        let mut out = Vec::new();
        if adapters.allow_unsigned {
            out.push(
                "[adapters] allow-unsigned = true: components without a signature run (development only; never in production)"
                    .to_string(),
            );
        } else if adapters.publisher_keys.is_empty() && !self.config.networks.is_empty() {
            out.push(
                "[adapters] publisher-keys is empty: every network's adapter will be refused at start (sign them with `yiwang adapter sign` and trust the key)"
                    .to_string(),
            );
        }
        for (name, net) in &self.config.networks {
            let sig = self.adapter_signature_path(net.get_ref());
            if !adapters.allow_unsigned && !sig.is_file() {
                out.push(format!(
                    "network `{name}`: no signature file {}: its adapter will be refused at start",
                    sig.display()
                ));
            }
        }
        out
    }

    /// A listener's server TLS with every path resolved.
    pub fn server_tls(&self, listener: &ListenerConfig) -> Option<ServerTlsConfig> {
        let tls = self.config.tls.as_ref()?;
        let mut out = listener_tls(tls.get_ref(), listener);
        out.cert = self.base.join(&out.cert);
        out.key = self.base.join(&out.key);
        for f in out.client_ca.iter_mut().chain(out.crl.iter_mut()) {
            *f = self.base.join(&*f);
        }
        Some(out)
    }

    /// A client TLS table with every path resolved.
    pub fn client_tls(&self, tls: &ClientTlsConfig) -> ClientTlsConfig {
        let mut out = tls.clone();
        out.cert = self.base.join(&out.cert);
        out.key = self.base.join(&out.key);
        for f in out.ca.iter_mut().chain(out.crl.iter_mut()) {
            *f = self.base.join(&*f);
        }
        out
    }

    /// The audit trail's folder (`[audit] dir`, default `<data-dir>/audit`).
    pub fn audit_dir(&self) -> PathBuf {
        match &self.config.audit.dir {
            Some(d) => self.base.join(d),
            None => self.data_dir().join("audit"),
        }
    }

    /// What this gateway holds as a witness (`<data-dir>/witness/held`).
    pub fn witness_dir(&self) -> PathBuf {
        self.data_dir().join("witness/held")
    }

    /// The push side: the cursors of the witnesses it pushes to
    /// (`<data-dir>/witness/pushed`) and a TSA's replies
    /// (`<data-dir>/witness/timestamps`).
    pub fn witness_push_dir(&self) -> PathBuf {
        self.data_dir().join("witness")
    }

    /// The audit settings with key paths resolved.
    pub fn audit_config(&self) -> AuditConfig {
        let mut out = self.config.audit.clone();
        out.dir = Some(self.audit_dir());
        out.signing_key_file = out.signing_key_file.map(|f| self.base.join(f));
        // Outside the audit directory: a copy of the trail (a backup, the
        // SIEM's, an auditor's) must not carry the key that can re-sign it.
        out.default_signing_key_file = Some(self.data_dir().join("keys/audit-signing.key"));
        // Each replica keeps its own trail, named by its configured replica
        // id (a default id follows the host name, which may change; a trail
        // left unnamed is never refused).
        out.replica = self.config.gateway.replica_id.clone();
        out.body_key_file = out.body_key_file.map(|f| self.base.join(f));
        out
    }

    /// The authorization policy of `[principals]`.
    pub fn policy(&self) -> Policy {
        Policy::new(self.config.principals.iter().map(|(n, c)| (n, c.get_ref())))
    }

    /// Resolve a network's secrets; a missing variable or file names the
    /// network and the secret, never its value.
    pub fn resolve_secrets(
        &self,
        network: &str,
        net: &NetworkConfig,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        net.secrets
            .iter()
            .map(|(name, source)| {
                let value = self.resolve_secret(network, Holder::Secret, name, source.get_ref())?;
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// Resolve a network's adapter-config: every value, and the keys whose
    /// values are sensitive (read from the environment or a file, or given
    /// as `{ value = … }`). A missing variable or file names the network
    /// and the key.
    pub fn resolve_adapter_config(
        &self,
        network: &str,
        net: &NetworkConfig,
    ) -> Result<ResolvedAdapterConfig, SecretError> {
        let mut out = ResolvedAdapterConfig::default();
        for (key, value) in &net.adapter_config {
            let value = match value.get_ref() {
                AdapterConfigValue::Plain(v) => v.clone(),
                AdapterConfigValue::Sensitive(source) => {
                    out.sensitive.insert(key.clone());
                    self.resolve_secret(network, Holder::AdapterConfig, key, source)?
                }
            };
            out.values.insert(key.clone(), value);
        }
        Ok(out)
    }

    fn resolve_secret(
        &self,
        network: &str,
        holder: Holder,
        name: &str,
        source: &SecretSource,
    ) -> Result<String, SecretError> {
        Ok(match source {
            SecretSource::Env(var) => std::env::var(var).map_err(|_| SecretError::Env {
                network: network.to_string(),
                holder,
                name: name.to_string(),
                var: var.clone(),
            })?,
            SecretSource::File(file) => std::fs::read_to_string(self.base.join(file))
                .map_err(|source| SecretError::File {
                    network: network.to_string(),
                    holder,
                    name: name.to_string(),
                    file: file.clone(),
                    source,
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            SecretSource::Value(v) => v.clone(),
        })
    }
}

/// The machine's host name as the kernel has it, or `gateway`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into())
}

/// `<host>-<first 8 hex digits of sha256(data dir)>`, kept to the
/// characters and length `replica-id` allows.
fn default_replica_id(host: &str, data_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(55)
        .collect();
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    format!("{host}-{}", &hex::encode(digest)[..8])
}

#[cfg(test)]
mod replica_tests {
    use super::*;

    #[test]
    fn the_default_replica_id_is_stable_per_host_and_data_dir() {
        let a = default_replica_id("gw1.example", Path::new("/var/lib/yiwang"));
        assert_eq!(
            a,
            default_replica_id("gw1.example", Path::new("/var/lib/yiwang"))
        );
        assert!(a.starts_with("gw1.example-") && a.len() == "gw1.example-".len() + 8);
        assert_ne!(
            a,
            default_replica_id("gw1.example", Path::new("/srv/yiwang"))
        );
        assert_ne!(
            a,
            default_replica_id("gw2.example", Path::new("/var/lib/yiwang"))
        );
        let odd = default_replica_id(&"h\u{e9}/x".repeat(40), Path::new("/d"));
        assert!(super::check::valid_replica_id(&odd), "{odd}");
    }
}
