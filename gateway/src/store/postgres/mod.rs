//! The shared backend: case records and their index rows in PostgreSQL, so
//! several gateway replicas can share one queue and the database the
//! bureaus already run and back up holds the state.
//!
//! The rules are the embedded backend's, kept by the same conformance
//! suite: `update` is one transaction that locks the case row
//! (`SELECT … FOR UPDATE`), runs the caller's closure, writes the record
//! and the index rows that changed (derived by [`CaseRecord::index_entries`],
//! diffed against the old record's), and commits before returning; a
//! serialization failure, a deadlock or two replicas creating the same case
//! at once roll back and run the closure again. With `synchronous_commit`
//! on (PostgreSQL's default) a returned commit is on disk, which is what
//! `update` promises.
//!
//! Tables (schema in `migrations/`, applied at start by [`schema`]):
//! - `yiwang_case`: the record as JSONB, with the columns search, retention
//!   and the deadline monitor filter on;
//! - `yiwang_job`: one row per job; `pending`, `due`, `in_flight` and
//!   `dead_at` are the index entries, each with a partial index, so `due`,
//!   `pending`, `in_flight` and `dead_letters` read an index range;
//! - `yiwang_xref`, `yiwang_cursor`, `yiwang_kv`, `yiwang_kv_usage`.
//!
//! Every text key uses the "C" collation, so orderings are byte order and
//! match the embedded backend's whatever the database's locale.

mod claim;
mod kv;
mod leader;
mod listen;
mod queries;
pub mod schema;
#[cfg(test)]
mod tls_tests;
mod update;

use super::{
    CaseQuery, CaseRecord, CaseUpdate, ClaimRequest, Claims, CommitStats, Due, DueSignal,
    FollowUpsDue, JobRef, Leadership, Millis, QueueDepth, Result, Store, StoreError,
};
use crate::runtime::KvStore;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;
use tokio_postgres::config::SslMode;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use schema::SchemaStatus;

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/database` (a key=value string works too).
    pub url: String,
    /// Overrides a password in the URL (read from a file or the environment).
    pub password: Option<String>,
    /// Connections in the pool (the kv thread holds one more).
    pub pool_size: usize,
    /// CA certificates (PEM) that sign the server's certificate: TLS is
    /// required when set.
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("ca", &self.ca)
            .finish()
    }
}

/// A URL with any password left out, for logs and errors.
pub fn redact(url: &str) -> String {
    let Ok(c) = url.parse::<tokio_postgres::Config>() else {
        return "<unparsable URL>".into();
    };
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}@{}:{}/{}",
        c.get_user().unwrap_or(""),
        hosts.join(","),
        c.get_ports().first().copied().unwrap_or(5432),
        c.get_dbname().unwrap_or("")
    )
}

/// A failure on the way to PostgreSQL, kept typed until it becomes a
/// [`StoreError`] so `update` can tell what is worth a retry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgFailure {
    #[error("PostgreSQL connection pool: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// The server's own words (SQLSTATE and message) when there are any.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A pool failure with the cause of a failed connection (TLS, password,
/// refused), not just "could not create a connection".
fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

impl PgFailure {
    /// Another run of the transaction may succeed.
    fn retryable(&self) -> bool {
        use tokio_postgres::error::SqlState;
        let PgFailure::Db(e) = self else { return false };
        e.code().is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::UNIQUE_VIOLATION
        })
    }
}

impl From<PgFailure> for StoreError {
    fn from(e: PgFailure) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// How connections are made: plain, or TLS checked against the configured CA.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Connector {
    fn new(ca: Option<&std::path::Path>) -> Result<Connector> {
        let Some(ca) = ca else {
            return Ok(Connector::Plain);
        };
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| StoreError::Backend(format!("PostgreSQL CA {}: {e}", ca.display())))?;
        for cert in certs {
            let cert = cert
                .map_err(|e| StoreError::Backend(format!("PostgreSQL CA {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::Backend(format!("PostgreSQL CA {}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("TLS to PostgreSQL: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector::Tls(
            tokio_postgres_rustls::MakeRustlsConnect::new(config),
        ))
    }

    /// One connection, its protocol task spawned on the current runtime.
    async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        match self {
            Connector::Plain => {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                Ok(client)
            }
            Connector::Tls(tls) => {
                let (client, conn) = config.connect(tls.clone()).await?;
                tokio::spawn(conn);
                Ok(client)
            }
        }
    }
}

/// The parsed connection settings and how to connect.
#[derive(Clone)]
pub(crate) struct Target {
    config: tokio_postgres::Config,
    connector: Connector,
}

impl Target {
    fn new(options: &PostgresOptions) -> Result<Target> {
        let mut config: tokio_postgres::Config = options.url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "PostgreSQL URL {} is invalid: {e}",
                redact(&options.url)
            ))
        })?;
        if let Some(p) = &options.password {
            config.password(p.as_str());
        }
        if options.ca.is_some() {
            config.ssl_mode(SslMode::Require);
        }
        config.application_name("yiwang");
        Ok(Target {
            config,
            connector: Connector::new(options.ca.as_deref())?,
        })
    }

    fn pool(&self, size: usize) -> Result<Pool> {
        let recycle = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &self.connector {
            Connector::Plain => {
                Manager::from_config(self.config.clone(), tokio_postgres::NoTls, recycle)
            }
            Connector::Tls(tls) => Manager::from_config(self.config.clone(), tls.clone(), recycle),
        };
        Pool::builder(manager)
            .max_size(size.max(1))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL connection pool: {e}")))
    }
}

/// PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
    kv: Arc<kv::PostgresKv>,
    commits: AtomicU64,
    target: Target,
    /// The notification listener, started by the first
    /// [`Store::due_signals`] and stopped with the store.
    listener: OnceLock<(broadcast::Sender<DueSignal>, DropGuard)>,
}

impl PostgresStore {
    /// Connect, apply pending migrations (refusing a database whose schema
    /// is newer than this binary knows), and start the kv connection.
    pub async fn connect(options: &PostgresOptions) -> Result<PostgresStore> {
        let target = Target::new(options)?;
        let pool = target.pool(options.pool_size)?;
        {
            let mut client = pool.get().await.map_err(PgFailure::from)?;
            schema::migrate(&mut client).await?;
        }
        Ok(PostgresStore {
            pool,
            kv: Arc::new(kv::PostgresKv::start(target.clone())?),
            commits: AtomicU64::new(0),
            target,
            listener: OnceLock::new(),
        })
    }

    /// Where the database's schema stands, without changing it.
    pub async fn status(options: &PostgresOptions) -> Result<SchemaStatus> {
        let target = Target::new(options)?;
        let mut client = target
            .connector
            .connect(&target.config)
            .await
            .map_err(PgFailure::from)?;
        schema::status(&mut client).await
    }

    /// Apply pending migrations; the schema as it is afterwards.
    pub async fn migrate(options: &PostgresOptions) -> Result<SchemaStatus> {
        let target = Target::new(options)?;
        let mut client = target
            .connector
            .connect(&target.config)
            .await
            .map_err(PgFailure::from)?;
        schema::migrate(&mut client).await?;
        schema::status(&mut client).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await.map_err(PgFailure::from)?)
    }

    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    PgFailure::Db(e).into()
}

#[async_trait]
impl Store for PostgresStore {
    async fn case(&self, case_number: &str) -> Result<Option<CaseRecord>> {
        queries::case(&*self.client().await?, case_number).await
    }

    async fn update(
        &self,
        case_number: &str,
        f: &mut CaseUpdate<'_>,
    ) -> Result<Option<CaseRecord>> {
        let (stored, wrote) = update::update(&self.pool, case_number, f).await?;
        if wrote {
            self.committed();
        }
        Ok(stored)
    }

    async fn due(&self, destination: &str, now: Millis, limit: usize) -> Result<Due> {
        queries::due(&*self.client().await?, destination, now, limit).await
    }

    async fn claim(&self, destination: &str, request: &ClaimRequest<'_>) -> Result<Claims> {
        let claims = claim::claim(&self.pool, destination, request).await?;
        if !claims.jobs.is_empty() {
            self.committed();
        }
        Ok(claims)
    }

    fn due_signals(&self) -> Option<broadcast::Receiver<DueSignal>> {
        let (sender, _) = self.listener.get_or_init(|| {
            let stop = CancellationToken::new();
            let sender = listen::start(&self.target, stop.clone());
            (sender, stop.drop_guard())
        });
        Some(sender.subscribe())
    }

    async fn in_flight(&self) -> Result<Vec<JobRef>> {
        queries::in_flight(&*self.client().await?).await
    }

    async fn lead(&self, task: &str, owner: &str, now: Millis, until: Millis) -> Result<bool> {
        leader::lead(&*self.client().await?, task, owner, now, until).await
    }

    async fn resign(&self, task: &str, owner: &str) -> Result<()> {
        leader::resign(&*self.client().await?, task, owner).await
    }

    async fn leader(&self, task: &str, now: Millis) -> Result<Option<Leadership>> {
        leader::leader(&*self.client().await?, task, now).await
    }

    async fn dead_letters(&self, destination: Option<&str>, limit: usize) -> Result<Vec<JobRef>> {
        queries::dead_letters(&*self.client().await?, destination, limit).await
    }

    async fn pending(&self, destination: Option<&str>, limit: usize) -> Result<Vec<JobRef>> {
        queries::pending(&*self.client().await?, destination, limit).await
    }

    async fn case_for_network_number(
        &self,
        network: &str,
        network_case_number: &str,
    ) -> Result<Option<String>> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT case_number FROM yiwang_xref WHERE network = $1 AND network_case_number = $2",
            )
            .await
            .map_err(pg)?;
        let row = c
            .query_opt(&st, &[&network, &network_case_number])
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn deadlines_due(&self, now: Millis, limit: usize) -> Result<Vec<String>> {
        queries::deadlines_due(&*self.client().await?, now, limit).await
    }

    async fn follow_ups_due(
        &self,
        network: &str,
        now: Millis,
        limit: usize,
    ) -> Result<FollowUpsDue> {
        queries::follow_ups_due(&*self.client().await?, network, now, limit).await
    }

    async fn search(&self, query: &CaseQuery) -> Result<Vec<CaseRecord>> {
        queries::search(&*self.client().await?, query).await
    }

    async fn cursor(&self, network: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        let st = c
            .prepare_cached("SELECT cursor FROM yiwang_cursor WHERE network = $1")
            .await
            .map_err(pg)?;
        let row = c.query_opt(&st, &[&network]).await.map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn set_cursor(&self, network: &str, cursor: &str) -> Result<()> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO yiwang_cursor (network, cursor) VALUES ($1, $2) \
                 ON CONFLICT (network) DO UPDATE SET cursor = excluded.cursor",
            )
            .await
            .map_err(pg)?;
        c.execute(&st, &[&network, &cursor]).await.map_err(pg)?;
        self.committed();
        Ok(())
    }

    async fn depth(&self) -> Result<Vec<QueueDepth>> {
        queries::depth(&*self.client().await?).await
    }

    async fn compact(&self, before: Millis) -> Result<usize> {
        let c = self.client().await?;
        // Rows of jobs and cross-references go with their case (ON DELETE
        // CASCADE); `settled` and `updated_at` are written with the record.
        let st = c
            .prepare_cached("DELETE FROM yiwang_case WHERE settled AND updated_at < $1")
            .await
            .map_err(pg)?;
        let removed = c.execute(&st, &[&before]).await.map_err(pg)?;
        if removed > 0 {
            self.committed();
        }
        Ok(removed as usize)
    }

    fn kv(&self) -> Arc<dyn KvStore> {
        self.kv.clone()
    }

    fn commit_stats(&self) -> CommitStats {
        // Each commit waited for its own WAL flush as far as the gateway can
        // tell (PostgreSQL's group commit may share flushes; pg_stat_wal shows it).
        let n = self.commits.load(Ordering::Relaxed);
        CommitStats {
            writes: n,
            fsyncs: n,
        }
    }
}

#[cfg(test)]
mod conformance {
    use super::*;
    use std::path::Path;

    /// The same directory opens the same database (so a reopen sees the
    /// data), in the process's private cluster.
    fn open(dir: &Path) -> Arc<dyn Store> {
        use std::hash::{Hash, Hasher};
        let cluster = yiwang_pgtest::shared();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        let database = format!("conformance_{:016x}", h.finish());
        let options = PostgresOptions {
            url: cluster.url(&database),
            password: None,
            pool_size: 4,
            ca: None,
        };
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                cluster
                    .create_database(&database)
                    .await
                    .expect("create the test database");
                Arc::new(
                    PostgresStore::connect(&options)
                        .await
                        .expect("open the PostgreSQL store"),
                ) as Arc<dyn Store>
            })
        })
    }

    crate::store_conformance!(open);
}
