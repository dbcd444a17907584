//! The two retrievers: pgvector kNN on the active space's HNSW index, and PostgreSQL full-text search.

use pgvector::HalfVector;
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use super::spaces::Space;

/// Restricts a search to some documents.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Documents whose metadata contains this JSON object.
    pub metadata: Option<Value>,
    pub document_ids: Option<Vec<Uuid>>,
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        self.metadata.is_none() && self.document_ids.is_none()
    }
}

/// A chunk ranked by one retriever: `score` is cosine similarity (vector) or `ts_rank_cd` (keyword).
#[derive(Debug, Clone, FromRow)]
pub struct Ranked {
    pub chunk_id: i64,
    pub score: f64,
}

/// The vector query: the ORDER BY is exactly the indexed expression, so the space's partial HNSW index serves it;
/// with a filter, `hnsw.iterative_scan` keeps scanning until enough rows pass.
pub fn vector_sql(space: &Space) -> String {
    format!(
        "SELECT v.chunk_id, (1 - (v.embedding::halfvec({dims}) <=> $1::halfvec({dims})))::float8 AS score \
         FROM chunk_vectors v \
         WHERE v.space_id = {id} \
           AND ($2::uuid[] IS NULL OR v.document_id = ANY($2)) \
           AND ($3::jsonb IS NULL OR v.document_id IN (SELECT id FROM documents WHERE metadata @> $3)) \
         ORDER BY v.embedding::halfvec({dims}) <=> $1::halfvec({dims}) \
         LIMIT $4",
        dims = space.dims,
        id = space.id,
    )
}

/// Opens the read-only snapshot one search runs in: every retriever and the details then see the same committed
/// state, so a version replaced mid-search shows up whole or not at all, never as a mix or as vanished hits.
pub async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?)
}

/// Vector kNN in a space. Run inside [`snapshot`]: the HNSW settings are `SET LOCAL` to that transaction.
pub async fn vector(
    tx: &mut PgConnection,
    space: &Space,
    query: &[f32],
    filter: &SearchFilter,
    limit: i64,
) -> Result<Vec<Ranked>, StoreError> {
    // Candidates examined; more than k so the top k are good.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL hnsw.ef_search = {}",
        (limit * 2).clamp(40, 1000)
    )))
    .execute(&mut *tx)
    .await?;
    if !filter.is_empty() {
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
            .execute(&mut *tx)
            .await?;
    }
    // The space's id and dimension are integers from our own table.
    let ranked = sqlx::query_as(sqlx::AssertSqlSafe(vector_sql(space)))
        .bind(HalfVector::from_f32_slice(query))
        .bind(&filter.document_ids)
        .bind(&filter.metadata)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    Ok(ranked)
}

/// Whether a query uses web-search syntax ("quoted phrase", -exclusion, OR) and should keep those meanings.
fn uses_search_syntax(query: &str) -> bool {
    query.contains('"')
        || query
            .split_whitespace()
            .any(|word| word.starts_with('-') || word == "OR")
}

/// Keyword search. A query written with web-search syntax means exactly that (`websearch_to_tsquery`); a plain
/// sentence matches chunks containing any of its words, ranked by how many and how close (`ts_rank_cd`) — requiring
/// every word of a natural-language question would find almost nothing.
pub async fn keyword(
    tx: &mut PgConnection,
    query: &str,
    filter: &SearchFilter,
    limit: i64,
) -> Result<Vec<Ranked>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.id AS chunk_id, ts_rank_cd(c.tsv, q)::float8 AS score \
         FROM chunks c, \
              (SELECT CASE WHEN $5 THEN websearch_to_tsquery('english', $1) \
                      ELSE replace(plainto_tsquery('english', $1)::text, '&', '|')::tsquery END AS q) query \
         WHERE c.tsv @@ q \
           AND ($2::uuid[] IS NULL OR c.document_id = ANY($2)) \
           AND ($3::jsonb IS NULL OR c.document_id IN (SELECT id FROM documents WHERE metadata @> $3)) \
         ORDER BY score DESC, c.id \
         LIMIT $4",
    )
    .bind(query)
    .bind(&filter.document_ids)
    .bind(&filter.metadata)
    .bind(limit)
    .bind(uses_search_syntax(query))
    .fetch_all(tx)
    .await?)
}

/// What a hit shows: the chunk and its document.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ChunkDetail {
    pub chunk_id: i64,
    pub document_id: Uuid,
    pub ordinal: i32,
    pub text: String,
    pub char_start: i32,
    pub char_end: i32,
    pub title: Option<String>,
    pub metadata: Value,
    pub external_id: Option<String>,
}

pub async fn details(tx: &mut PgConnection, chunk_ids: &[i64]) -> Result<Vec<ChunkDetail>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.id AS chunk_id, c.document_id, c.ordinal, c.text, c.char_start, c.char_end, \
                d.title, d.metadata, d.external_id \
         FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ANY($1)",
    )
    .bind(chunk_ids)
    .fetch_all(tx)
    .await?)
}
