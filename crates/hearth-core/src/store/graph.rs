//! Reading the concept graph: listings, a concept's documents, mentions and neighbours, and the concepts a chunk
//! mentions.

use pgvector::HalfVector;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct ConceptRow {
    pub id: Uuid,
    pub name: String,
    pub aliases: Vec<String>,
    pub mentions: i64,
    pub documents: i64,
}

impl From<ConceptRow> for hearth_api::concepts::Concept {
    fn from(row: ConceptRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            aliases: row.aliases,
            mentions: row.mentions,
            documents: row.documents,
        }
    }
}

const CONCEPT_COLUMNS: &str = "c.id, c.name, c.aliases, \
     (SELECT count(*) FROM concept_mentions m WHERE m.concept_id = c.id) AS mentions, \
     (SELECT count(DISTINCT m.document_id) FROM concept_mentions m WHERE m.concept_id = c.id) AS documents";

/// Concepts whose name or an alias contains `key` (normalized), most mentioned first; without a key, the most
/// mentioned.
pub async fn matching(pool: &PgPool, key: Option<&str>, limit: i64) -> Result<Vec<ConceptRow>, StoreError> {
    let pattern = key.map(|key| format!("%{}%", like_escaped(key)));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONCEPT_COLUMNS} FROM concepts c \
         WHERE $1::text IS NULL OR c.normalized LIKE $1 \
            OR EXISTS (SELECT 1 FROM unnest(c.alias_keys) a WHERE a LIKE $1) \
         ORDER BY (c.normalized = $2) DESC, mentions DESC, c.name LIMIT $3"
    )))
    .bind(pattern)
    .bind(key)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Concepts nearest in meaning to `vector`, except `skip`.
pub async fn similar(
    pool: &PgPool,
    space: i64,
    vector: &[f32],
    skip: &[Uuid],
    limit: i64,
) -> Result<Vec<ConceptRow>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONCEPT_COLUMNS} FROM concept_vectors v JOIN concepts c ON c.id = v.concept_id \
         WHERE v.space_id = $1 AND NOT c.id = ANY($3) \
         ORDER BY v.embedding <=> $2::halfvec LIMIT $4"
    )))
    .bind(space)
    .bind(HalfVector::from_f32_slice(vector))
    .bind(skip)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<ConceptRow>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONCEPT_COLUMNS} FROM concepts c WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn documents(pool: &PgPool, id: Uuid) -> Result<Vec<(Uuid, Option<String>, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.id, d.title, count(*) AS mentions FROM concept_mentions m JOIN documents d ON d.id = m.document_id \
         WHERE m.concept_id = $1 GROUP BY d.id, d.title ORDER BY mentions DESC, d.title NULLS LAST, d.id LIMIT 50",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// A mention with the chunk it is in.
#[derive(Debug, Clone, FromRow)]
pub struct MentionRow {
    pub document_id: Uuid,
    pub chunk_id: i64,
    pub ordinal: i32,
    pub char_start: i32,
    pub char_end: i32,
    pub exact: bool,
    pub chunk_text: String,
    pub chunk_start: i32,
}

pub async fn mentions(pool: &PgPool, id: Uuid) -> Result<Vec<MentionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.document_id, m.chunk_id, c.ordinal, m.char_start, m.char_end, m.exact, \
                c.text AS chunk_text, c.char_start AS chunk_start \
         FROM concept_mentions m JOIN chunks c ON c.id = m.chunk_id \
         WHERE m.concept_id = $1 ORDER BY m.document_id, c.ordinal LIMIT 100",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct NeighbourRow {
    pub id: Uuid,
    pub name: String,
    pub relation: String,
    /// `out`, `in` or `both`.
    pub direction: String,
    pub weight: i64,
}

/// Typed relations either way, then concepts mentioned in the same chunks; heaviest first.
pub async fn neighbours(pool: &PgPool, id: Uuid) -> Result<Vec<NeighbourRow>, StoreError> {
    Ok(sqlx::query_as(
        "WITH typed AS ( \
             SELECT r.target_id AS id, r.relation, 'out' AS direction, count(*) AS weight \
             FROM concept_relations r WHERE r.source_id = $1 GROUP BY r.target_id, r.relation \
             UNION ALL \
             SELECT r.source_id, r.relation, 'in', count(*) \
             FROM concept_relations r WHERE r.target_id = $1 GROUP BY r.source_id, r.relation), \
         together AS ( \
             SELECT other.concept_id AS id, 'mentioned_together' AS relation, 'both' AS direction, \
                    count(*) AS weight \
             FROM concept_mentions mine JOIN concept_mentions other \
               ON other.chunk_id = mine.chunk_id AND other.concept_id <> mine.concept_id \
             WHERE mine.concept_id = $1 GROUP BY other.concept_id) \
         SELECT n.id, c.name, n.relation, n.direction, n.weight FROM \
             (SELECT *, 0 AS rank FROM typed UNION ALL SELECT *, 1 FROM together) n \
         JOIN concepts c ON c.id = n.id \
         ORDER BY n.rank, n.weight DESC, c.name LIMIT 20",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// The concepts each of these chunks mentions, by name.
pub async fn chips(pool: &PgPool, chunks: &[i64]) -> Result<Vec<(i64, Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.chunk_id, c.id, c.name FROM concept_mentions m JOIN concepts c ON c.id = m.concept_id \
         WHERE m.chunk_id = ANY($1) ORDER BY m.chunk_id, c.name",
    )
    .bind(chunks)
    .fetch_all(pool)
    .await?)
}

/// The documents that mention the concept, for a search's concept filter.
pub async fn documents_mentioning(pool: &PgPool, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT document_id FROM concept_mentions WHERE concept_id = $1")
            .bind(id)
            .fetch_all(pool)
            .await?,
    )
}

pub async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM concepts WHERE id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
