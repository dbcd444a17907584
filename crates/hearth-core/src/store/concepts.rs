//! The concept graph's tables (migration 0007): the extraction queue, the token ledger, and the graph itself.
//! Extraction jobs are claimed like ingest jobs (a claim token and a lease, `FOR UPDATE SKIP LOCKED`), but every
//! time is hearthd's clock passed in, so a test can move a day ahead.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use pgvector::HalfVector;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;

/// An extraction job as claimed.
#[derive(Debug, Clone, FromRow)]
pub struct ConceptJob {
    pub document_id: Uuid,
    pub version: i32,
    pub attempts: i32,
    pub waits: i32,
    pub claim_token: Uuid,
}

/// Queues (again) the document's extraction for its current version, inside the transaction that committed its
/// chunks: due at once whatever the clock says ('epoch', not '-infinity': chrono cannot hold an infinite time, and
/// reading one back would panic).
pub async fn enqueue(tx: &mut Transaction<'_, Postgres>, document: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO concept_jobs (document_id, version, state, run_after) \
         SELECT id, version, 'pending', 'epoch' FROM documents WHERE id = $1 \
         ON CONFLICT (document_id) DO UPDATE SET version = EXCLUDED.version, state = 'pending', attempts = 0, \
             waits = 0, run_after = 'epoch', claimed_until = NULL, claim_token = NULL, last_error = NULL, \
             model = NULL, tokens = 0, concepts = 0, updated_at = now()",
    )
    .bind(document)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims the pending job due first at `now`.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<ConceptJob>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE concept_jobs SET claim_token = $2, claimed_until = $1 + make_interval(secs => $3) \
         WHERE document_id = (SELECT document_id FROM concept_jobs \
                              WHERE state = 'pending' AND run_after <= $1 \
                                AND (claimed_until IS NULL OR claimed_until < $1) \
                              ORDER BY run_after, updated_at FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING document_id, version, attempts, waits, claim_token",
    )
    .bind(now)
    .bind(Uuid::new_v4())
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// Extends the lease; `false` when the claim was lost (a new version re-queued the job).
pub async fn renew(
    pool: &PgPool,
    job: &ConceptJob,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE concept_jobs SET claimed_until = $3 + make_interval(secs => $4) \
         WHERE document_id = $1 AND claim_token = $2",
    )
    .bind(job.document_id)
    .bind(job.claim_token)
    .bind(now)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// How a claimed job is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handback {
    /// The provider could not be asked (down, refusing, over budget): only the back-off grows.
    Wait,
    /// The provider's result was unusable: one attempt more.
    Attempt,
    /// hearthd is stopping: as it was, due at once.
    Release,
}

/// Back to pending, due at `until`, remembering why.
pub async fn hand_back(
    pool: &PgPool,
    job: &ConceptJob,
    how: Handback,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<(), StoreError> {
    let (waits, attempts) = match how {
        Handback::Wait => (1, 0),
        Handback::Attempt => (0, 1),
        Handback::Release => (0, 0),
    };
    sqlx::query(
        "UPDATE concept_jobs SET run_after = $3, claimed_until = NULL, claim_token = NULL, last_error = $4, \
                waits = CASE WHEN $5 > 0 THEN waits + 1 ELSE waits END, attempts = attempts + $6, \
                updated_at = now() \
         WHERE document_id = $1 AND claim_token = $2",
    )
    .bind(job.document_id)
    .bind(job.claim_token)
    .bind(until)
    .bind(reason)
    .bind(waits)
    .bind(attempts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends the job without concepts: `failed` with the reason, or `private` (never sent).
pub async fn close(pool: &PgPool, job: &ConceptJob, state: &str, reason: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if fence(&mut tx, job).await? {
        sqlx::query(
            "UPDATE concept_jobs SET state = $2, last_error = $3, claimed_until = NULL, claim_token = NULL, \
                    updated_at = now() WHERE document_id = $1",
        )
        .bind(job.document_id)
        .bind(state)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        // A document that became private keeps nothing a provider extracted from it.
        delete_document_graph(&mut tx, job.document_id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Locks the job row if this claim still holds it: what fences a commit against a new version and a lost lease.
/// The document's row is locked first, as an ingest commit or a deletion locks it before the job's: the other
/// order deadlocks against them.
pub async fn fence(tx: &mut Transaction<'_, Postgres>, job: &ConceptJob) -> Result<bool, StoreError> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM documents WHERE id = $1 FOR KEY SHARE")
        .bind(job.document_id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_none() {
        return Ok(false);
    }
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM concept_jobs WHERE document_id = $1 AND claim_token = $2 FOR UPDATE",
    )
    .bind(job.document_id)
    .bind(job.claim_token)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(held == Some(job.version))
}

/// Marks the job done, with what it cost and found.
pub async fn finish(
    tx: &mut Transaction<'_, Postgres>,
    job: &ConceptJob,
    model: &str,
    tokens: u64,
    concepts: usize,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE concept_jobs SET state = 'done', last_error = NULL, claimed_until = NULL, claim_token = NULL, \
                model = $2, tokens = $3, concepts = $4, updated_at = now() WHERE document_id = $1",
    )
    .bind(job.document_id)
    .bind(model)
    .bind(tokens as i64)
    .bind(concepts as i32)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes the document's mentions and relations (the trigger removes concepts left unmentioned).
pub async fn delete_document_graph(
    tx: &mut Transaction<'_, Postgres>,
    document: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM concept_relations WHERE chunk_id IN (SELECT id FROM chunks WHERE document_id = $1)",
    )
    .bind(document)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM concept_mentions WHERE document_id = $1")
        .bind(document)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Tokens spent on `day`.
pub async fn tokens_spent(pool: &PgPool, day: NaiveDate) -> Result<u64, StoreError> {
    let spent: Option<i64> = sqlx::query_scalar("SELECT tokens FROM concept_token_usage WHERE day = $1")
        .bind(day)
        .fetch_optional(pool)
        .await?;
    Ok(spent.unwrap_or(0).max(0) as u64)
}

/// Adds to `day`'s spending, at once: tokens a provider was paid for count even if the job never commits.
pub async fn spend(pool: &PgPool, day: NaiveDate, tokens: u64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO concept_token_usage (day, tokens) VALUES ($1, $2) \
         ON CONFLICT (day) DO UPDATE SET tokens = concept_token_usage.tokens + EXCLUDED.tokens",
    )
    .bind(day)
    .bind(tokens as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// A chunk as extraction reads it.
#[derive(Debug, Clone, FromRow)]
pub struct SourceChunk {
    pub id: i64,
    pub text: String,
    pub char_start: i32,
    pub char_end: i32,
}

/// The document, if it is still at `version` and ready: its metadata and chunks in order.
pub async fn source(
    pool: &PgPool,
    document: Uuid,
    version: i32,
) -> Result<Option<(serde_json::Value, Vec<SourceChunk>)>, StoreError> {
    // One snapshot for both reads: otherwise a new version committed between them could pair the old version's
    // metadata (not private) with the new version's chunks (private).
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let metadata: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT metadata FROM documents WHERE id = $1 AND version = $2 AND status = 'ready'",
    )
    .bind(document)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(metadata) = metadata else {
        return Ok(None);
    };
    let chunks = sqlx::query_as(
        "SELECT id, text, char_start, char_end FROM chunks WHERE document_id = $1 ORDER BY ordinal",
    )
    .bind(document)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((metadata, chunks)))
}

/// Serializes concept merges: two extractions naming the same new concept at once would otherwise both insert it.
pub async fn lock_graph(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hearth concept graph'))")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The concept whose name or alias normalizes to `key`.
pub async fn by_key(tx: &mut Transaction<'_, Postgres>, key: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM concepts WHERE normalized = $1 OR alias_keys @> ARRAY[$1] ORDER BY created_at LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The concept nearest to `vector` in `space`, with its cosine similarity.
pub async fn nearest(
    tx: &mut Transaction<'_, Postgres>,
    space: i64,
    vector: &[f32],
) -> Result<Option<(Uuid, f64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT concept_id, (1 - (embedding <=> $2::halfvec))::float8 FROM concept_vectors \
         WHERE space_id = $1 ORDER BY embedding <=> $2::halfvec LIMIT 1",
    )
    .bind(space)
    .bind(HalfVector::from_f32_slice(vector))
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    key: &str,
    space: i64,
    vector: &[f32],
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO concepts (id, name, normalized) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    add_vector(tx, id, space, vector).await?;
    Ok(id)
}

pub async fn add_vector(
    tx: &mut Transaction<'_, Postgres>,
    concept: Uuid,
    space: i64,
    vector: &[f32],
) -> Result<(), StoreError> {
    sqlx::query(
        // Never into a retired space: a worker that read the spaces before a switch finished would put back what the
        // switch removed.
        "INSERT INTO concept_vectors (concept_id, space_id, embedding) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $2 AND state <> 'retired') \
         ON CONFLICT (space_id, concept_id) DO UPDATE SET embedding = EXCLUDED.embedding",
    )
    .bind(concept)
    .bind(space)
    .bind(HalfVector::from_f32_slice(vector))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds a name the concept also goes by, unless it is its own name or already an alias.
pub async fn add_alias(
    tx: &mut Transaction<'_, Postgres>,
    concept: Uuid,
    alias: &str,
    key: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE concepts SET aliases = aliases || $2::text, alias_keys = alias_keys || $3::text \
         WHERE id = $1 AND normalized <> $3 AND NOT alias_keys @> ARRAY[$3] AND cardinality(aliases) < 20",
    )
    .bind(concept)
    .bind(alias)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn add_mention(
    tx: &mut Transaction<'_, Postgres>,
    concept: Uuid,
    document: Uuid,
    chunk: i64,
    span: (i32, i32),
    exact: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO concept_mentions (concept_id, chunk_id, document_id, char_start, char_end, exact) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (concept_id, chunk_id) DO UPDATE SET char_start = EXCLUDED.char_start, \
             char_end = EXCLUDED.char_end, exact = EXCLUDED.exact \
         WHERE NOT concept_mentions.exact AND EXCLUDED.exact",
    )
    .bind(concept)
    .bind(chunk)
    .bind(document)
    .bind(span.0)
    .bind(span.1)
    .bind(exact)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn add_relation(
    tx: &mut Transaction<'_, Postgres>,
    source: Uuid,
    target: Uuid,
    relation: &str,
    chunk: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO concept_relations (source_id, target_id, relation, chunk_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(source)
    .bind(target)
    .bind(relation)
    .bind(chunk)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` concepts with no vector in `space` yet (after a model switch), with their names.
pub async fn unembedded(pool: &PgPool, space: i64, limit: i64) -> Result<Vec<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.name FROM concepts c WHERE NOT EXISTS \
             (SELECT 1 FROM concept_vectors v WHERE v.concept_id = c.id AND v.space_id = $1) \
           AND EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $1 AND state <> 'retired') \
         ORDER BY c.created_at LIMIT $2",
    )
    .bind(space)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Makes the jobs waiting out a failure and the failed ones due now, their counts reset.
pub async fn requeue(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE concept_jobs SET state = 'pending', run_after = 'epoch', waits = 0, attempts = 0 \
         WHERE (state = 'pending' AND waits > 0) OR state = 'failed'",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Jobs by state.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT state, count(*) FROM concept_jobs GROUP BY state")
            .fetch_all(pool)
            .await?,
    )
}

pub async fn concept_count(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM concepts")
        .fetch_one(pool)
        .await?)
}

/// The pending job due first that has waited for a reason: the reason and when it is due.
pub async fn first_waiting(pool: &PgPool) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT last_error, run_after FROM concept_jobs \
         WHERE state = 'pending' AND last_error IS NOT NULL ORDER BY run_after LIMIT 1",
    )
    .fetch_optional(pool)
    .await?)
}

/// A document's extraction, for its page.
#[derive(Debug, Clone, FromRow)]
pub struct JobRecord {
    pub state: String,
    pub last_error: Option<String>,
    pub run_after: DateTime<Utc>,
    pub model: Option<String>,
    pub tokens: i64,
    pub concepts: i32,
}

pub async fn job_of(pool: &PgPool, document: Uuid) -> Result<Option<JobRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT state, last_error, run_after, model, tokens, concepts FROM concept_jobs WHERE document_id = $1",
    )
    .bind(document)
    .fetch_optional(pool)
    .await?)
}
