//! PostgreSQL + pgvector: the schema (forward-only migrations embedded in the binary) and every query hearth runs.

pub mod chunks;
pub mod documents;
pub mod jobs;
pub mod search;
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
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
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
