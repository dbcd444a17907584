//! The durable job queue. A worker claims a due job in a short transaction (`FOR UPDATE SKIP LOCKED`), which
//! counts the attempt and gives the job a fresh claim token and a lease; it then works without holding a
//! transaction, renews the lease while it works, and commits the result together with the job's deletion, fenced by
//! its claim token. A worker that dies (kill -9, power cut) simply stops renewing: the lease runs out and another
//! worker takes the job. A worker that lost its claim cannot commit.

use std::time::Duration;

use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub document_id: Uuid,
    pub space_id: Option<i64>,
    pub attempts: i32,
    pub claim_token: Uuid,
    pub last_error: Option<String>,
}

/// Claims the oldest due job, or returns `None` when nothing is due.
pub async fn claim(pool: &PgPool, lease: Duration) -> Result<Option<Job>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE jobs SET attempts = attempts + 1, claim_token = $1, \
                claimed_until = now() + make_interval(secs => $2) \
         WHERE id = (SELECT id FROM jobs \
                     WHERE run_after <= now() AND (claimed_until IS NULL OR claimed_until < now()) \
                     ORDER BY run_after, id FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING id, kind, document_id, space_id, attempts, claim_token, last_error",
    )
    .bind(Uuid::new_v4())
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// Extends the lease; `false` when the claim was lost (the job was re-armed or taken over).
pub async fn renew(pool: &PgPool, job: &Job, lease: Duration) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE jobs SET claimed_until = now() + make_interval(secs => $3) WHERE id = $1 AND claim_token = $2",
    )
    .bind(job.id)
    .bind(job.claim_token)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Deletes the finished job inside the transaction that commits its result; `false` means the claim was lost and
/// the caller must roll back.
pub async fn finish(tx: &mut Transaction<'_, Postgres>, job: &Job) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM jobs WHERE id = $1 AND claim_token = $2")
        .bind(job.id)
        .bind(job.claim_token)
        .execute(&mut **tx)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Releases the claim and schedules a retry after `delay`, remembering why.
pub async fn retry_later(pool: &PgPool, job: &Job, delay: Duration, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET run_after = now() + make_interval(secs => $3), claimed_until = NULL, claim_token = NULL, \
                last_error = $4 \
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(job.id)
    .bind(job.claim_token)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands a job back because this worker is stopping, not because the job failed: due at once, and the attempt
/// it was claimed with is returned, so restarts (an upgrade, a reboot) never use up `ingest.max_attempts`.
pub async fn release(pool: &PgPool, job: &Job) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET run_after = now(), claimed_until = NULL, claim_token = NULL, \
                attempts = greatest(attempts - 1, 0), last_error = 'interrupted by shutdown' \
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(job.id)
    .bind(job.claim_token)
    .execute(pool)
    .await?;
    Ok(())
}

/// Where a document's job stands, for `GET /v1/documents/{id}`.
#[derive(Debug, Clone, FromRow)]
pub struct Progress {
    pub kind: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
}

pub async fn progress(pool: &PgPool, document: Uuid) -> Result<Option<Progress>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT kind, attempts, last_error, run_after AS next_attempt_at FROM jobs WHERE document_id = $1 \
         ORDER BY id LIMIT 1",
    )
    .bind(document)
    .fetch_optional(pool)
    .await?)
}

impl From<Progress> for hearth_api::documents::JobProgress {
    fn from(progress: Progress) -> Self {
        Self {
            kind: progress.kind,
            attempts: progress.attempts,
            last_error: progress.last_error,
            next_attempt_at: progress.next_attempt_at,
        }
    }
}

/// Number of jobs waiting and the age in seconds of the oldest, for `/readyz` and metrics.
pub async fn depth(pool: &PgPool) -> Result<(i64, Option<f64>), StoreError> {
    Ok(
        sqlx::query_as("SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM jobs")
            .fetch_one(pool)
            .await?,
    )
}
