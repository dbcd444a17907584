//! The library's schema at start: what it is next to this binary's, the backup before a migration, the
//! migration itself, and what holds it up meanwhile (shown by `/readyz`).

use std::time::Duration;

use super::{Library, LibraryError};
use crate::schema::SchemaPlan;
use crate::schema::backup::{BackupError, BackupManifest, BackupReason, Backups};

/// Why the schema is not current yet, while hearthd waits with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaHold {
    /// A dump of schema `from` is being written before migrating to `to`.
    BackingUp { from: i64, to: i64 },
    /// The backup before the migration cannot be made (no space, no pg_dump); checked again every 15 s.
    Blocked { from: i64, to: i64, reason: String },
    /// The database is newer than this binary and declared that it cannot run on it.
    Incompatible {
        version: i64,
        known: i64,
        reason: String,
    },
}

impl Library {
    /// The schema next to this binary's, as soon as PostgreSQL answers: waits (saying so every 10 s) while it
    /// does not.
    pub async fn schema_plan_when_reachable(&self) -> Result<SchemaPlan, LibraryError> {
        self.retrying("read the schema version", || async {
            let (applied, known) = crate::store::schema_version(&self.pool).await?;
            let newer = match applied {
                Some(version) if version > known => {
                    crate::store::schema::newer_than(&self.pool, known).await?
                }
                _ => Vec::new(),
            };
            Ok(SchemaPlan::decide(applied, known, newer))
        })
        .await
    }

    /// Applies this binary's migrations (with `newer_allowed`, leaving a newer release's alone) and records their
    /// declarations; a migration that fails returns its error, its transaction rolled back.
    pub async fn apply_migrations(&self, newer_allowed: bool) -> Result<Option<i64>, LibraryError> {
        self.retrying("run migrations", || async {
            crate::store::migrate_recorded(&self.pool, newer_allowed).await?;
            Ok(crate::store::schema_version(&self.pool).await?.0)
        })
        .await
    }

    /// A verified dump of the database before migrating it from schema `from` to `to`.
    pub async fn backup_before_migrate(
        &self,
        backups: &Backups,
        from: i64,
        to: i64,
    ) -> Result<BackupManifest, BackupError> {
        backups
            .dump(&self.pool, BackupReason::BeforeMigrate, from, Some(to))
            .await
    }

    /// The oldest schema version whose hearthd can run on this database (newest breaking migration applied).
    pub async fn oldest_compatible_schema(&self) -> Result<i64, LibraryError> {
        let applied = crate::store::schema::applied_compat(self.pool()?).await?;
        Ok(crate::schema::oldest_compatible(&applied))
    }

    pub fn set_schema_hold(&self, hold: Option<SchemaHold>) {
        *self
            .schema_hold
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hold;
    }

    pub fn schema_hold(&self) -> Option<SchemaHold> {
        self.schema_hold
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `step` until it succeeds or fails for a reason waiting cannot fix.
    async fn retrying<T, F, Fut>(&self, what: &str, step: F) -> Result<T, LibraryError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    {
        let mut waited = Duration::ZERO;
        loop {
            match step().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() => {
                    if waited.as_secs().is_multiple_of(10) {
                        tracing::warn!(%error, "waiting for the database to {what}");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    waited += Duration::from_secs(1);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}
