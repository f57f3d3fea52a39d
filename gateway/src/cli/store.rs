//! `yiwang store migrate` and `yiwang store check`: the store a
//! configuration names, from the operator's shell. The gateway migrates at
//! start too; `migrate` lets an operator do it ahead of a rolling upgrade,
//! and `check` answers "can this binary use that database?" without
//! changing anything.

use super::tokio_rt;
use crate::config::{LoadedConfig, StorageBackend};
use crate::store::postgres::{SchemaStatus, redact};
use crate::store::{PostgresStore, SledStore, Store};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum StoreCmd {
    /// Apply the schema migrations this binary carries to the configured
    /// PostgreSQL database (refused when the database is newer).
    Migrate {
        /// The configuration file naming the store.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Connect to the configured store and compare its schema with this
    /// binary's, changing nothing; exits 1 unless they match.
    Check {
        /// The configuration file naming the store.
        #[arg(long, short)]
        config: PathBuf,
    },
}

pub(super) fn run(cmd: StoreCmd) -> Result<ExitCode> {
    let (StoreCmd::Migrate { config } | StoreCmd::Check { config }) = &cmd;
    let Some(loaded) = load(config) else {
        return Ok(ExitCode::FAILURE);
    };
    if loaded.config.storage.backend == StorageBackend::Sled {
        return sled(&loaded, matches!(cmd, StoreCmd::Migrate { .. }));
    }
    let options = loaded.postgres_options()?;
    let shown = redact(&options.url);
    tokio_rt()?.block_on(async {
        let status = match cmd {
            StoreCmd::Migrate { .. } => PostgresStore::migrate(&options).await,
            StoreCmd::Check { .. } => PostgresStore::status(&options).await,
        }
        .with_context(|| format!("PostgreSQL store at {shown}"))?;
        Ok(report(&shown, status))
    })
}

fn load(config: &Path) -> Option<LoadedConfig> {
    match crate::config::Config::load(config) {
        Ok(l) => Some(l),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

/// Print where the schema stands; success only when it is this binary's.
fn report(shown: &str, status: SchemaStatus) -> ExitCode {
    let applied = status
        .applied
        .map_or("none (an empty database)".to_string(), |v| v.to_string());
    println!(
        "store: PostgreSQL {shown}: schema version {applied}, this binary's {}",
        status.known
    );
    if crate::store::postgres::schema::check(status).is_err() {
        println!(
            "  refused: the database is newer than this binary; run a gateway at least as new as the one that migrated it"
        );
        return ExitCode::FAILURE;
    }
    match status.pending() {
        0 => {
            println!("  ok");
            ExitCode::SUCCESS
        }
        n => {
            println!(
                "  {n} migration(s) pending: `yiwang store migrate` (or a gateway start) applies them"
            );
            ExitCode::FAILURE
        }
    }
}

/// The embedded store has no schema versions: `migrate` has nothing to
/// do, `check` opens it (refused while a gateway holds it) and counts.
fn sled(loaded: &LoadedConfig, migrate: bool) -> Result<ExitCode> {
    let dir = loaded.data_dir();
    if migrate {
        println!(
            "store: sled in {}: nothing to migrate (the embedded store has no schema versions)",
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store = SledStore::open(&dir)?;
    let pending: u64 = tokio_rt()?
        .block_on(store.depth())?
        .iter()
        .map(|d| d.pending)
        .sum();
    println!(
        "store: sled in {}: ok ({pending} unfinished job(s))",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
