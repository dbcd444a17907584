//! Browser sessions of the web UI: rows keyed by the sha256 of the cookie's secret.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

/// A signed-in browser, as the Settings page lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_by: String,
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(
    pool: &PgPool,
    id: Uuid,
    secret_sha256: &[u8],
    created_by: &str,
    user_agent: &str,
    lifetime_seconds: i64,
) -> Result<SessionRow, StoreError> {
    Ok(sqlx::query_as(
        "INSERT INTO browser_sessions (id, secret_sha256, created_by, user_agent, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
         RETURNING id, created_by, user_agent, created_at, last_seen_at, expires_at",
    )
    .bind(id)
    .bind(secret_sha256)
    .bind(created_by)
    .bind(user_agent)
    .bind(lifetime_seconds as f64)
    .fetch_one(pool)
    .await?)
}

/// The unexpired session whose secret hashes to `secret_sha256`, marked as seen now (at most once a minute, so a
/// busy page does not write on every request).
pub async fn touch(pool: &PgPool, secret_sha256: &[u8]) -> Result<Option<SessionRow>, StoreError> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT id, created_by, user_agent, created_at, last_seen_at, expires_at FROM browser_sessions \
         WHERE secret_sha256 = $1 AND expires_at > now()",
    )
    .bind(secret_sha256)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = &row
        && Utc::now() - row.last_seen_at > chrono::TimeDelta::minutes(1)
    {
        sqlx::query("UPDATE browser_sessions SET last_seen_at = now() WHERE id = $1")
            .bind(row.id)
            .execute(pool)
            .await?;
    }
    Ok(row)
}

/// Unexpired sessions, most recently seen first.
pub async fn list(pool: &PgPool) -> Result<Vec<SessionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, created_by, user_agent, created_at, last_seen_at, expires_at FROM browser_sessions \
         WHERE expires_at > now() ORDER BY last_seen_at DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Removes one session; whether it existed.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM browser_sessions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes expired sessions; how many.
pub async fn delete_expired(pool: &PgPool) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM browser_sessions WHERE expires_at <= now()")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
