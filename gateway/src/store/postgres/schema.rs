//! Versioned schema migrations (refinery, SQL files in `migrations/`,
//! embedded in the binary) and the check that refuses a database whose
//! schema is newer than this binary knows: an older gateway must not write
//! rows a newer schema gives a different meaning.
//!
//! Migrations run under a PostgreSQL advisory lock, so replicas starting at
//! the same time apply each migration once.

use super::{PgFailure, Result, StoreError};

refinery::embed_migrations!("src/store/postgres/migrations");

/// Where the history of applied migrations is kept.
const HISTORY: &str = "yiwang_schema_history";

/// The advisory lock key taken while migrating ("yiwang" in ASCII).
const MIGRATION_LOCK: i64 = 0x79_69_77_61_6e_67;

/// A database's schema against this binary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The last migration applied to the database (none: an empty database).
    pub applied: Option<i32>,
    /// The newest migration this binary carries.
    pub known: i32,
}

impl SchemaStatus {
    /// Migrations this binary would apply.
    pub fn pending(&self) -> i32 {
        (self.known - self.applied.unwrap_or(0)).max(0)
    }
}

fn runner() -> refinery::Runner {
    let mut r = migrations::runner();
    r.set_migration_table_name(HISTORY);
    r
}

/// The newest version among the embedded migrations.
pub fn known_version() -> i32 {
    runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

fn migration_error(e: refinery::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL schema migration: {e}"))
}

/// The schema version of the database, without changing anything.
pub async fn status(client: &mut tokio_postgres::Client) -> Result<SchemaStatus> {
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY])
        .await
        .map_err(PgFailure::from)?;
    let applied = if exists.get::<_, bool>(0) {
        client
            .query_one(&format!("SELECT max(version) FROM {HISTORY}"), &[])
            .await
            .map_err(PgFailure::from)?
            .get::<_, Option<i32>>(0)
    } else {
        None
    };
    Ok(SchemaStatus {
        applied,
        known: known_version(),
    })
}

/// Refuse a schema newer than this binary's.
pub fn check(status: SchemaStatus) -> Result<()> {
    match status.applied {
        Some(applied) if applied > status.known => Err(StoreError::SchemaTooNew {
            database: applied,
            binary: status.known,
        }),
        _ => Ok(()),
    }
}

/// Apply every pending migration, one replica at a time.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(PgFailure::from)?;
    let done = async {
        check(status(client).await?)?;
        runner()
            .run_async(client)
            .await
            .map_err(migration_error)
            .map(|_| ())
    }
    .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(PgFailure::from);
    done?;
    unlocked?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PostgresOptions, PostgresStore};

    fn options(database: &str) -> PostgresOptions {
        PostgresOptions {
            url: yiwang_pgtest::shared().url(database),
            password: None,
            pool_size: 2,
            ca: None,
        }
    }

    /// An empty database is migrated to this binary's version; one that a
    /// newer binary migrated is refused, by the start and by the check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_newer_than_the_binary_is_refused() {
        let cluster = yiwang_pgtest::shared();
        cluster
            .create_database("schema_newer")
            .await
            .expect("create database");
        let options = options("schema_newer");
        let before = PostgresStore::status(&options).await.expect("status");
        assert_eq!(before.applied, None);
        assert_eq!(before.pending(), known_version());
        let after = PostgresStore::migrate(&options).await.expect("migrate");
        assert_eq!(after.applied, Some(known_version()));
        assert_eq!(after.pending(), 0);
        let newer = known_version() + 1;
        let c = cluster.connect("schema_newer").await.expect("connect");
        c.execute(
            &format!(
                "INSERT INTO {HISTORY} (version, name, applied_on, checksum) VALUES ($1, 'future', 'now', '0')"
            ),
            &[&newer],
        )
        .await
        .expect("record a future migration");
        let refused = PostgresStore::connect(&options).await.err();
        assert!(
            matches!(refused, Some(StoreError::SchemaTooNew { database, binary })
                if database == newer && binary == known_version()),
            "{refused:?}"
        );
        let status = PostgresStore::status(&options).await.expect("status");
        assert!(check(status).is_err());
    }
}
