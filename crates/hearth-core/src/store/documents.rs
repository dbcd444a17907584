//! Documents: accepting an upload (dedup by bytes or by external id), listing, reading and deleting.

use hearth_api::documents::DocumentStatus;
use serde_json::Value;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Document {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub metadata: Value,
    pub content_sha256: String,
    pub content_type: String,
    pub byte_size: i64,
    pub version: i32,
    pub status: String,
    pub error: Option<String>,
    /// What processing changed in the text without failing the document (e.g. characters removed).
    pub notes: Vec<String>,
    pub chunk_count: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl Document {
    /// The row's status; the table's CHECK constraint admits only the four the API knows.
    pub fn status(&self) -> DocumentStatus {
        DocumentStatus::parse(&self.status).unwrap_or_else(|| {
            tracing::error!(id = %self.id, status = %self.status, "a document row has an unknown status");
            DocumentStatus::Failed
        })
    }
}

impl From<Document> for hearth_api::documents::Document {
    fn from(row: Document) -> Self {
        Self {
            status: row.status(),
            id: row.id,
            external_id: row.external_id,
            title: row.title,
            metadata: row.metadata,
            content_sha256: row.content_sha256,
            content_type: row.content_type,
            byte_size: row.byte_size,
            version: row.version,
            error: row.error,
            notes: row.notes,
            chunk_count: row.chunk_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

macro_rules! document_columns {
    () => {
        "id, external_id, title, metadata, content_sha256, content_type, byte_size, version, status, \
                           error, notes, chunk_count, created_at, updated_at"
    };
}

#[derive(Debug, Clone)]
pub struct NewDocument {
    pub content_sha256: String,
    pub content_type: String,
    pub byte_size: i64,
    pub title: Option<String>,
    pub external_id: Option<String>,
    pub metadata: Value,
}

pub use hearth_api::documents::Outcome;

/// What [`accept`] did, and the bytes a new version replaced (their blob may now be unreferenced).
#[derive(Debug)]
pub struct Accepted {
    pub document: Document,
    pub outcome: Outcome,
    pub replaced_sha256: Option<String>,
}

/// Records an upload whose blob is already durable, and queues its ingest job, inside the caller's transaction
/// (which holds the external id's lock, then the content's).
pub async fn accept(tx: &mut Transaction<'_, Postgres>, new: &NewDocument) -> Result<Accepted, StoreError> {
    let mut replaced_sha256 = None;
    let result = match &new.external_id {
        Some(external_id) => {
            let existing: Option<Document> = sqlx::query_as(concat!(
                "SELECT ",
                document_columns!(),
                " FROM documents WHERE external_id = $1 FOR UPDATE"
            ))
            .bind(external_id)
            .fetch_optional(&mut **tx)
            .await?;
            match existing {
                Some(document) if document.content_sha256 == new.content_sha256 => {
                    unchanged_or_retried(tx, document).await?
                }
                Some(document) => {
                    replaced_sha256 = Some(document.content_sha256.clone());
                    let updated: Document = sqlx::query_as(concat!("UPDATE documents SET content_sha256 = $2, content_type = $3, byte_size = $4, \
                         title = coalesce($5, title), metadata = $6, version = version + 1, status = 'pending', \
                         error = NULL, updated_at = now() WHERE id = $1 RETURNING ", document_columns!()))
                    .bind(document.id)
                    .bind(&new.content_sha256)
                    .bind(&new.content_type)
                    .bind(new.byte_size)
                    .bind(&new.title)
                    .bind(&new.metadata)
                    .fetch_one(&mut **tx)
                    .await?;
                    queue_ingest(tx, updated.id).await?;
                    (updated, Outcome::NewVersion)
                }
                None => (insert(tx, new).await?, Outcome::Created),
            }
        }
        None => {
            let existing: Option<Document> = sqlx::query_as(concat!(
                "SELECT ",
                document_columns!(),
                " FROM documents WHERE content_sha256 = $1 AND external_id IS NULL"
            ))
            .bind(&new.content_sha256)
            .fetch_optional(&mut **tx)
            .await?;
            match existing {
                Some(document) => unchanged_or_retried(tx, document).await?,
                None => (insert(tx, new).await?, Outcome::Created),
            }
        }
    };
    let (document, outcome) = result;
    Ok(Accepted {
        document,
        outcome,
        replaced_sha256,
    })
}

/// Known bytes again: nothing to do, unless the document failed, in which case it gets a fresh set of attempts.
async fn unchanged_or_retried(
    tx: &mut Transaction<'_, Postgres>,
    document: Document,
) -> Result<(Document, Outcome), StoreError> {
    if document.status != "failed" {
        return Ok((document, Outcome::Unchanged));
    }
    let retried: Document = sqlx::query_as(concat!(
        "UPDATE documents SET status = 'pending', error = NULL, updated_at = now() WHERE id = $1 RETURNING ",
        document_columns!()
    ))
    .bind(document.id)
    .fetch_one(&mut **tx)
    .await?;
    queue_ingest(tx, retried.id).await?;
    Ok((retried, Outcome::Retried))
}

async fn insert(tx: &mut Transaction<'_, Postgres>, new: &NewDocument) -> Result<Document, StoreError> {
    let document: Document = sqlx::query_as(concat!("INSERT INTO documents (id, external_id, title, metadata, content_sha256, content_type, byte_size, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending') RETURNING ", document_columns!()))
    .bind(Uuid::now_v7())
    .bind(&new.external_id)
    .bind(&new.title)
    .bind(&new.metadata)
    .bind(&new.content_sha256)
    .bind(&new.content_type)
    .bind(new.byte_size)
    .fetch_one(&mut **tx)
    .await?;
    queue_ingest(tx, document.id).await?;
    Ok(document)
}

/// Queues (or re-arms) the document's ingest job. Re-arming resets the attempt counter, which is also the claim's
/// fencing token: a worker still busy with the previous version can no longer commit.
async fn queue_ingest(tx: &mut Transaction<'_, Postgres>, document: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO jobs (kind, document_id) VALUES ('ingest', $1) \
         ON CONFLICT (document_id, kind, coalesce(space_id, 0)) DO UPDATE \
         SET attempts = 0, run_after = now(), claimed_until = NULL, claim_token = NULL, last_error = NULL",
    )
    .bind(document)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Locks a document's row for a job's commit and returns the hash of its current bytes (`None`: deleted). Every
/// transaction that changes a document and its jobs locks the document first, as an upload does: the other order
/// deadlocks with an upload of a new version, and PostgreSQL then fails one of them.
pub async fn lock_for_job(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT content_sha256 FROM documents WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Document>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub metadata: Option<Value>,
    pub content_sha256: Option<String>,
    /// Continue after this (created_at, id) position.
    pub after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<Document>, StoreError> {
    let (after_time, after_id) = filter.after.unzip();
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents \
         WHERE ($1::text IS NULL OR status = $1) AND ($2::jsonb IS NULL OR metadata @> $2) \
           AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4)) \
           AND ($6::text IS NULL OR content_sha256 = $6) \
         ORDER BY created_at, id LIMIT $5"
    ))
    .bind(&filter.status)
    .bind(&filter.metadata)
    .bind(after_time)
    .bind(after_id)
    .bind(filter.limit)
    .bind(&filter.content_sha256)
    .fetch_all(pool)
    .await?)
}

/// Deletes the document (its chunks, vectors and jobs go with it by cascade) inside the caller's transaction, and
/// returns it. Its original is collected after the commit ([`collectable`]), never before.
pub async fn delete(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<Option<Document>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "DELETE FROM documents WHERE id = $1 RETURNING ",
        document_columns!()
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Whether nothing needs the original with these bytes: no document references them and no upload announced
/// them. Ask under the content's lock, and delete the blob before that transaction ends.
pub async fn collectable(tx: &mut Transaction<'_, Postgres>, sha256: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM documents WHERE content_sha256 = $1) \
            AND NOT EXISTS (SELECT 1 FROM blob_uploads WHERE content_sha256 = $1)",
    )
    .bind(sha256)
    .fetch_one(&mut **tx)
    .await?)
}

/// Of these hashes (of blobs in the store), the ones no document references and no upload announced.
pub async fn unreferenced(pool: &PgPool, hashes: &[String]) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT h FROM unnest($1::text[]) AS h \
         WHERE NOT EXISTS (SELECT 1 FROM documents WHERE content_sha256 = h) \
           AND NOT EXISTS (SELECT 1 FROM blob_uploads WHERE content_sha256 = h)",
    )
    .bind(hashes)
    .fetch_all(pool)
    .await?)
}

/// Announces an upload of these bytes before its blob is written (a short transaction of its own, under the
/// content's lock, so it cannot fall between a collector's check and its delete). Returns the announcement.
pub async fn announce_upload(pool: &PgPool, sha256: &str) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_content(&mut tx, sha256).await?;
    let id = sqlx::query_scalar("INSERT INTO blob_uploads (content_sha256) VALUES ($1) RETURNING id")
        .bind(sha256)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Withdraws an announcement: in the upload's own transaction when it commits, or alone when it failed.
pub async fn withdraw_upload<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    announcement: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM blob_uploads WHERE id = $1")
        .bind(announcement)
        .execute(executor)
        .await?;
    Ok(())
}

/// Drops announcements older than `grace`: their uploads died (a crash between the write and the commit).
pub async fn expire_uploads(pool: &PgPool, grace: std::time::Duration) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM blob_uploads WHERE started_at < now() - make_interval(secs => $1)")
            .bind(grace.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Marks the document failed with a reason the user can read.
pub async fn fail(pool: &PgPool, id: Uuid, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE documents SET status = 'failed', error = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(pool)
        .await?;
    Ok(())
}

/// Shows that a worker has started on the document.
pub async fn mark_processing(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE documents SET status = 'processing', updated_at = now() WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Holds the per-external-id lock for the rest of the transaction: two first uploads under one new id take turns,
/// so the second becomes a new version instead of a unique-key violation. Taken before the content's lock.
pub async fn lock_external_id(
    tx: &mut Transaction<'_, Postgres>,
    external_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
        .bind(external_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Holds the per-content lock for the rest of the transaction: uploads and deletes of the same bytes take turns,
/// so a delete never removes a blob that a concurrent upload is about to reference.
pub async fn lock_content(tx: &mut Transaction<'_, Postgres>, sha256: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(sha256)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks a document failed with the reason the user sees, inside the job's transaction.
pub async fn mark_failed(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE documents SET status = 'failed', error = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks a document ready with its chunk count and processing notes, inside the job's transaction.
pub async fn mark_ready(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    chunk_count: usize,
    notes: &[String],
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE documents SET status = 'ready', error = NULL, notes = $3, chunk_count = $2, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(chunk_count as i32)
    .bind(notes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
