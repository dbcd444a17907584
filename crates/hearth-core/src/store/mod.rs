//! PostgreSQL + pgvector: the schema (forward-only migrations embedded in the binary) and every query hearth runs.

pub mod chunks;
pub mod concepts;
pub mod documents;
pub mod graph;
pub mod jobs;
pub mod providers;
pub mod schema;
pub mod search;
pub mod sessions;
pub mod spaces;

use sqlx::PgPool;

/// The migrations in `crates/hearth-core/migrations`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether trying again later can help (the database is restarting, a connection dropped), as opposed to a
    /// bug or a constraint that will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => transient(error),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(error)) => transient(error),
            StoreError::Migrate(_) => false,
        }
    }
}

fn transient(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    ) || error
        .as_database_error()
        .and_then(|e| e.code())
        // Class 08: connection exceptions; 57P01-03: admin shutdown, crash shutdown, cannot connect now;
        // 40001/40P01: serialization failure and deadlock; class 28 (no pg_hba entry, wrong password) and 3D000
        // (no such database): a server that is not set up for hearth yet, as while an operator gives the role
        // its password on another machine.
        .is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("28")
                || code == "3D000"
                || code == "40001"
                || code == "40P01"
        })
}

/// Brings the schema to the newest version. Takes PostgreSQL's advisory lock, so two hearthd starting at once
/// (an upgrade racing a restart) migrate once; a failed migration rolls back and leaves the data as it was.
/// Each migration's compatibility declaration is recorded as it is applied.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    migrate_recorded(pool, false).await
}

/// [`migrate`], optionally leaving alone migrations a newer release applied (see [`schema::migrate`]).
pub async fn migrate_recorded(pool: &PgPool, newer_allowed: bool) -> Result<(), StoreError> {
    schema::migrate(pool, newer_allowed).await?;
    // An undeclared migration cannot be shipped (the schema module's tests refuse it), so none is skipped here.
    let declarations: Vec<(i64, String, bool)> = MIGRATOR
        .iter()
        .filter_map(|migration| {
            let compat = crate::schema::declared(migration).ok()?;
            Some((
                migration.version,
                migration.description.to_string(),
                compat == crate::schema::Compat::Breaking,
            ))
        })
        .collect();
    schema::record_compat(pool, &declarations).await
}

/// The oldest pgvector with what hearth's schema uses (halfvec, HNSW on halfvec, iterative index scans).
pub const MIN_PGVECTOR: (u32, u32) = (0, 8);

/// What the database says about itself: the one probe `/readyz` and the doctor both judge it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseProbe {
    pub postgres: String,
    /// The installed pgvector's version, if the extension is there.
    pub pgvector: Option<String>,
}

/// Why a database that answers cannot serve hearth.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseProblem {
    #[error("pgvector is missing: as a superuser, in that database, run CREATE EXTENSION vector")]
    NoPgvector,
    #[error(
        "pgvector {found} is too old: install pgvector {}.{} or newer, then ALTER EXTENSION vector UPDATE",
        MIN_PGVECTOR.0,
        MIN_PGVECTOR.1
    )]
    PgvectorTooOld { found: String },
}

impl DatabaseProbe {
    /// What keeps this database from serving hearth, if anything.
    pub fn problem(&self) -> Option<DatabaseProblem> {
        match &self.pgvector {
            None => Some(DatabaseProblem::NoPgvector),
            Some(found) if parse_version(found) < MIN_PGVECTOR => {
                Some(DatabaseProblem::PgvectorTooOld { found: found.clone() })
            }
            Some(_) => None,
        }
    }
}

fn parse_version(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// PostgreSQL's version and pgvector's, in one round trip.
pub async fn probe(pool: &PgPool) -> Result<DatabaseProbe, StoreError> {
    let (postgres, pgvector) = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT current_setting('server_version'), \
                (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
    )
    .fetch_one(pool)
    .await?;
    Ok(DatabaseProbe { postgres, pgvector })
}

/// Documents by status, for metrics.
pub async fn documents_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM documents GROUP BY status")
            .fetch_all(pool)
            .await?,
    )
}

/// Bytes on disk: the database's (tables, indexes, vectors) and the originals' (each distinct content once, as
/// the blob store keeps it).
pub async fn disk_usage(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT pg_database_size(current_database()), \
                COALESCE((SELECT sum(byte_size)::bigint FROM \
                    (SELECT DISTINCT ON (content_sha256) byte_size FROM documents) AS originals), 0)",
    )
    .fetch_one(pool)
    .await?)
}

/// The newest migration applied to the database and the newest this binary knows.
pub async fn schema_version(pool: &PgPool) -> Result<(Option<i64>, i64), StoreError> {
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .or_else(|error| match &error {
            // No migrations table yet: nothing applied.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(None),
            _ => Err(error),
        })?;
    let newest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    Ok((applied, newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_without_pgvector_or_with_an_old_one_has_a_problem_and_a_recent_one_none() {
        let probe = |pgvector: Option<&str>| DatabaseProbe {
            postgres: "18.1".into(),
            pgvector: pgvector.map(str::to_owned),
        };
        assert_eq!(probe(None).problem(), Some(DatabaseProblem::NoPgvector));
        assert_eq!(
            probe(Some("0.7.4")).problem(),
            Some(DatabaseProblem::PgvectorTooOld {
                found: "0.7.4".into()
            })
        );
        assert_eq!(probe(Some("0.8.0")).problem(), None);
        assert_eq!(probe(Some("1.0")).problem(), None);
    }
}
