//! The store a configuration names, resolved for opening: the PostgreSQL
//! password read from its file or variable at start, never kept in the
//! configuration itself.

use super::LoadedConfig;
use super::types::StorageBackend;
use crate::store::PostgresOptions;
use std::path::PathBuf;

/// Why the configured PostgreSQL store cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum StoreConfigError {
    #[error("[storage] backend is \"sled\": there is no PostgreSQL database to use")]
    NotPostgres,
    #[error("[storage] backend \"postgres\" has no url")]
    NoUrl,
    #[error("[storage] password-env {var} is not set")]
    PasswordEnv { var: String },
    #[error("[storage] password-file {}: {source}", file.display())]
    PasswordFile {
        file: PathBuf,
        source: std::io::Error,
    },
}

impl LoadedConfig {
    /// The PostgreSQL store's connection options, password resolved.
    pub fn postgres_options(&self) -> Result<PostgresOptions, StoreConfigError> {
        let s = &self.config.storage;
        if s.backend != StorageBackend::Postgres {
            return Err(StoreConfigError::NotPostgres);
        }
        let url = s.url.as_ref().ok_or(StoreConfigError::NoUrl)?;
        let password =
            match (&s.password_env, &s.password_file) {
                (Some(var), _) => Some(std::env::var(var.get_ref()).map_err(|_| {
                    StoreConfigError::PasswordEnv {
                        var: var.get_ref().clone(),
                    }
                })?),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(self.base.join(file.get_ref()))
                        .map_err(|source| StoreConfigError::PasswordFile {
                            file: file.get_ref().clone(),
                            source,
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                ),
                (None, None) => None,
            };
        Ok(PostgresOptions {
            url: url.get_ref().clone(),
            password,
            pool_size: s.pool_size as usize,
            ca: s.tls_ca.as_ref().map(|ca| self.base.join(ca.get_ref())),
        })
    }
}
