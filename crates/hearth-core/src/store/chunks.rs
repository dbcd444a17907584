//! Writing a document's chunks and vectors. Everything a job produces is committed in one transaction, together
//! with the job's deletion, so a search sees a document's old chunks or its new ones, never a mix, and a crash
//! leaves no orphans.

use pgvector::HalfVector;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::chunk::Chunk;

/// Vectors for one space, in chunk order.
#[derive(Debug)]
pub struct SpaceVectors {
    pub space_id: i64,
    pub vectors: Vec<Vec<f32>>,
}

/// Replaces the document's chunks (and with them, by cascade, all their vectors) and writes the new vectors.
pub async fn replace(
    tx: &mut Transaction<'_, Postgres>,
    document: Uuid,
    chunks: &[Chunk],
    token_counts: &[usize],
    spaces: &[SpaceVectors],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM chunks WHERE document_id = $1")
        .bind(document)
        .execute(&mut **tx)
        .await?;
    let ordinals: Vec<i32> = (0..chunks.len()).map(|i| i as i32).collect();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let starts: Vec<i32> = chunks.iter().map(|c| c.char_start as i32).collect();
    let ends: Vec<i32> = chunks.iter().map(|c| c.char_end as i32).collect();
    let tokens: Vec<i32> = token_counts.iter().map(|t| *t as i32).collect();
    sqlx::query(
        "INSERT INTO chunks (document_id, ordinal, text, char_start, char_end, token_count) \
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::int[], $5::int[], $6::int[])",
    )
    .bind(document)
    .bind(&ordinals)
    .bind(&texts)
    .bind(&starts)
    .bind(&ends)
    .bind(&tokens)
    .execute(&mut **tx)
    .await?;
    let ids = order_by_ordinal(tx, document, chunks.len()).await?;
    for space in spaces {
        insert_vectors(tx, document, &ids, space).await?;
    }
    Ok(())
}

/// Adds vectors for the document's existing chunks in one more space (re-embedding after a model switch).
pub async fn add_space(
    tx: &mut Transaction<'_, Postgres>,
    document: Uuid,
    space: &SpaceVectors,
) -> Result<(), StoreError> {
    let ids = order_by_ordinal(tx, document, space.vectors.len()).await?;
    sqlx::query("DELETE FROM chunk_vectors WHERE document_id = $1 AND space_id = $2")
        .bind(document)
        .bind(space.space_id)
        .execute(&mut **tx)
        .await?;
    insert_vectors(tx, document, &ids, space).await
}

/// The document's chunk ids in ordinal order (RETURNING does not promise an order).
async fn order_by_ordinal(
    tx: &mut Transaction<'_, Postgres>,
    document: Uuid,
    expected: usize,
) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM chunks WHERE document_id = $1 ORDER BY ordinal")
        .bind(document)
        .fetch_all(&mut **tx)
        .await?;
    if ids.len() != expected {
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "document {document} has {} chunks, {expected} vectors were computed",
            ids.len()
        ))));
    }
    Ok(ids)
}

async fn insert_vectors(
    tx: &mut Transaction<'_, Postgres>,
    document: Uuid,
    ids: &[i64],
    space: &SpaceVectors,
) -> Result<(), StoreError> {
    let vectors: Vec<HalfVector> = space
        .vectors
        .iter()
        .map(|v| HalfVector::from_f32_slice(v))
        .collect();
    sqlx::query(
        "INSERT INTO chunk_vectors (chunk_id, space_id, document_id, embedding) \
         SELECT id, $2, $3, embedding FROM UNNEST($1::bigint[], $4::halfvec[]) AS t(id, embedding)",
    )
    .bind(ids)
    .bind(space.space_id)
    .bind(document)
    .bind(&vectors)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Chunk texts of a document in order, for re-embedding into a new space.
pub async fn texts(tx: &mut Transaction<'_, Postgres>, document: Uuid) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT text FROM chunks WHERE document_id = $1 ORDER BY ordinal")
            .bind(document)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// One stored chunk, as a document's page shows it: its place in the extracted text and its words.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredChunk {
    pub id: i64,
    pub ordinal: i32,
    pub text: String,
    pub char_start: i32,
    pub char_end: i32,
}

/// The document's chunks in order.
pub async fn of_document(pool: &sqlx::PgPool, document: Uuid) -> Result<Vec<StoredChunk>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, ordinal, text, char_start, char_end FROM chunks WHERE document_id = $1 ORDER BY ordinal",
    )
    .bind(document)
    .fetch_all(pool)
    .await?)
}
