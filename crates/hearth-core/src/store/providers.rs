//! The reasoning provider's row (see migration 0006): at most one, its key sealed.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub id: Uuid,
    pub base_url: String,
    pub model: String,
    /// Nonce and ciphertext; never decrypted here.
    pub key_sealed: Option<Vec<u8>>,
    pub key_fingerprint: Option<String>,
    pub answers: bool,
    pub concepts: bool,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(pool: &PgPool) -> Result<Option<ProviderRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, base_url, model, key_sealed, key_fingerprint, answers, concepts, updated_by, updated_at \
         FROM reasoning_provider",
    )
    .fetch_optional(pool)
    .await?)
}

/// Replaces the provider (there is only ever one row).
pub async fn put(pool: &PgPool, row: &ProviderRow) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM reasoning_provider WHERE id <> $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO reasoning_provider \
             (id, base_url, model, key_sealed, key_fingerprint, answers, concepts, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET base_url = $2, model = $3, key_sealed = $4, key_fingerprint = $5, \
             answers = $6, concepts = $7, updated_by = $8, updated_at = now()",
    )
    .bind(row.id)
    .bind(&row.base_url)
    .bind(&row.model)
    .bind(&row.key_sealed)
    .bind(&row.key_fingerprint)
    .bind(row.answers)
    .bind(row.concepts)
    .bind(&row.updated_by)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether there was one to delete.
pub async fn delete(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(sqlx::query("DELETE FROM reasoning_provider")
        .execute(pool)
        .await?
        .rows_affected()
        > 0)
}
