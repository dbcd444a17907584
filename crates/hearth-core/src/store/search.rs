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

impl From<&hearth_api::search::SearchFilter> for SearchFilter {
    fn from(filter: &hearth_api::search::SearchFilter) -> Self {
        Self {
            metadata: filter.metadata.clone(),
            document_ids: filter.document_ids.clone(),
        }
    }
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        self.metadata.is_none() && self.document_ids.is_none()
    }
}

/// A chunk ranked by one retriever: `score` is cosine similarity (vector) or BM25 (keyword).
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

/// Makes `second` (a transaction that has run nothing yet) see exactly the snapshot of `first` (an open
/// [`snapshot`]), so two retrievers can run at once and still agree on the committed state.
async fn join_snapshot(first: &mut PgConnection, second: &mut PgConnection) -> Result<(), StoreError> {
    let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *first)
        .await?;
    // SET TRANSACTION SNAPSHOT takes no parameters; PostgreSQL's snapshot ids are hex digits and dashes.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "unexpected snapshot id {id:?}"
        ))));
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("SET TRANSACTION SNAPSHOT '{id}'")))
        .execute(&mut *second)
        .await?;
    Ok(())
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

/// Hybrid search's two rankings, vector and keyword, in `snapshot`. With a connection free in the pool they run at
/// once, the keyword half on that connection joined to the same snapshot; without one, one after the other. The
/// second connection is only ever taken if it is free at once: searches that each held one connection and waited
/// for another could exhaust the pool and wait on each other.
pub async fn both(
    pool: &PgPool,
    snapshot: &mut PgConnection,
    space: &Space,
    query_vector: &[f32],
    query: &str,
    filter: &SearchFilter,
    depth: i64,
) -> Result<(Vec<Ranked>, Vec<Ranked>), StoreError> {
    let Some(mut second) = pool.try_acquire() else {
        let by_vector = vector(&mut *snapshot, space, query_vector, filter, depth).await?;
        let by_keyword = keyword(&mut *snapshot, query, filter, depth, KEYWORD_CANDIDATES).await?;
        return Ok((by_vector, by_keyword));
    };
    // Dropped on any error, the transaction rolls back before the connection serves anyone else.
    let mut joined =
        sqlx::Connection::begin_with(&mut *second, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    join_snapshot(&mut *snapshot, &mut joined).await?;
    let both = tokio::try_join!(
        vector(&mut *snapshot, space, query_vector, filter, depth),
        keyword(&mut joined, query, filter, depth, KEYWORD_CANDIDATES),
    )?;
    joined.commit().await?;
    Ok(both)
}

/// Whether a query uses web-search syntax ("quoted phrase", -exclusion, OR) and should keep those meanings.
fn uses_search_syntax(query: &str) -> bool {
    query.contains('"')
        || query
            .split_whitespace()
            .any(|word| word.starts_with('-') || word == "OR")
}

/// BM25's term-frequency saturation and length normalisation, the values most BM25 implementations default to.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;
/// Most chunks one keyword search scores (see [`keyword`]). Chosen by `cargo xtask bench search` at 100k chunks:
/// scoring costs about 6 µs a candidate, so 1,000 missed the 5 ms p50 goal (7.4 ms) and 500 lost too much of
/// BM25's own top 10 (0.87 of it); docs/benchmarks.md has the budgets tried.
pub const KEYWORD_CANDIDATES: i64 = 600;

/// A query lexeme and how many chunks contain it.
#[derive(Debug, Clone, FromRow)]
struct LexemeStats {
    lexeme: String,
    chunks: i64,
    occurrences: i64,
}

/// The query's lexemes (stemmed as chunks are) with their statistics, and the totals as the lexeme ''.
/// `lexicon` plus the changes not folded yet: exact at this snapshot.
async fn query_statistics(tx: &mut PgConnection, query: &str) -> Result<Vec<LexemeStats>, StoreError> {
    Ok(sqlx::query_as(
        "WITH terms AS (SELECT lexeme FROM unnest(to_tsvector('english', $1)) UNION SELECT '') \
         SELECT t.lexeme, \
                (coalesce((SELECT l.chunks FROM lexicon l WHERE l.lexeme = t.lexeme), 0) \
                 + coalesce((SELECT sum(c.chunks) FROM lexicon_changes c WHERE c.lexeme = t.lexeme), 0))::int8 \
                  AS chunks, \
                (coalesce((SELECT l.occurrences FROM lexicon l WHERE l.lexeme = t.lexeme), 0) \
                 + coalesce((SELECT sum(c.occurrences) FROM lexicon_changes c WHERE c.lexeme = t.lexeme), 0))::int8 \
                  AS occurrences \
         FROM terms t",
    )
    .bind(query)
    .fetch_all(tx)
    .await?)
}

/// A lexeme as a tsquery operand: quoted, so that stems with punctuation stay one lexeme.
fn tsquery_operand(lexeme: &str) -> String {
    format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"))
}

/// How keyword search will rank one query: BM25 weights per lexeme and the chunks worth scoring.
#[derive(Debug, Clone, PartialEq)]
struct KeywordPlan {
    lexemes: Vec<String>,
    idfs: Vec<f64>,
    average_length: f64,
    /// Which chunks to score: a tsquery.
    candidates: String,
}

/// Plans a plain-sentence query: every lexeme some chunk has is scored, but candidates come from the rarest
/// lexemes whose chunks fit within `budget`, so a common word ("file", "return") never makes the search rank
/// tens of thousands of chunks. A chunk with none of the rare words scores less than the chunks with them.
fn plan_keyword(mut stats: Vec<LexemeStats>, budget: i64) -> Option<KeywordPlan> {
    let totals = stats.iter().position(|s| s.lexeme.is_empty())?;
    let totals = stats.swap_remove(totals);
    if totals.chunks <= 0 {
        return None;
    }
    let corpus = totals.chunks as f64;
    let average_length = (totals.occurrences as f64 / corpus).max(1.0);
    stats.retain(|s| s.chunks > 0);
    // Rarest first; ties by lexeme, so a query plans the same way every time.
    stats.sort_by(|a, b| a.chunks.cmp(&b.chunks).then_with(|| a.lexeme.cmp(&b.lexeme)));
    let first = stats.first()?;
    let mut candidates = vec![tsquery_operand(&first.lexeme)];
    let mut covered = first.chunks;
    for s in &stats[1..] {
        if covered + s.chunks > budget {
            break;
        }
        covered += s.chunks;
        candidates.push(tsquery_operand(&s.lexeme));
    }
    let idfs = stats
        .iter()
        .map(|s| {
            // Statistics and snapshot agree, but a clamp keeps the weight positive whatever happens.
            let df = (s.chunks as f64).min(corpus);
            (1.0 + (corpus - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    Some(KeywordPlan {
        lexemes: stats.into_iter().map(|s| s.lexeme).collect(),
        idfs,
        average_length,
        candidates: candidates.join(" | "),
    })
}

/// Keyword search, ranked by BM25 over chunks with the library's own statistics. A query written with web-search
/// syntax matches exactly that (`websearch_to_tsquery`); a plain sentence matches chunks with any of its words —
/// requiring every word of a natural-language question would find almost nothing. At most `budget` chunks are
/// scored ([`KEYWORD_CANDIDATES`] in hearthd).
pub async fn keyword(
    tx: &mut PgConnection,
    query: &str,
    filter: &SearchFilter,
    limit: i64,
    budget: i64,
) -> Result<Vec<Ranked>, StoreError> {
    let stats = query_statistics(&mut *tx, query).await?;
    let Some(plan) = plan_keyword(stats, budget) else {
        return Ok(Vec::new());
    };
    // tf: the positions of each query lexeme in the chunk, picked out of its tsvector by weighting just those
    // lexemes and filtering on the weight (cheaper than unnesting every lexeme of every candidate).
    Ok(sqlx::query_as(
        "SELECT c.id AS chunk_id, \
                sum(w.idf * t.tf * ($7 + 1) / (t.tf + $7 * (1 - $8 + $8 * length(c.tsv) / $9)))::float8 AS score \
         FROM (SELECT c.id, c.tsv FROM chunks c \
               WHERE c.tsv @@ (CASE WHEN $10 THEN websearch_to_tsquery('english', $1) ELSE $6::tsquery END) \
                 AND ($2::uuid[] IS NULL OR c.document_id = ANY($2)) \
                 AND ($3::jsonb IS NULL OR c.document_id IN (SELECT id FROM documents WHERE metadata @> $3)) \
               LIMIT $11) c \
         CROSS JOIN LATERAL ( \
             SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf \
             FROM unnest(ts_filter(setweight(c.tsv, 'A', $4::text[]), '{a}')) u) t \
         JOIN unnest($4::text[], $5::float8[]) AS w(lexeme, idf) ON w.lexeme = t.lexeme \
         GROUP BY c.id \
         ORDER BY score DESC, c.id \
         LIMIT $12",
    )
    .bind(query)
    .bind(&filter.document_ids)
    .bind(&filter.metadata)
    .bind(&plan.lexemes)
    .bind(&plan.idfs)
    .bind(&plan.candidates)
    .bind(BM25_K1)
    .bind(BM25_B)
    .bind(plan.average_length)
    .bind(uses_search_syntax(query))
    .bind(budget)
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Folds the lexicon's appended changes into its totals (migration 0004), unless another fold is running.
pub async fn fold_lexicon(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('hearth.lexicon'))")
        .fetch_one(&mut *tx)
        .await?;
    if ours {
        sqlx::query("SELECT lexicon_fold()").execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(lexeme: &str, chunks: i64) -> LexemeStats {
        LexemeStats {
            lexeme: lexeme.into(),
            chunks,
            occurrences: chunks,
        }
    }

    #[test]
    fn candidates_come_from_the_rarest_lexemes_within_the_budget() {
        let plan = plan_keyword(
            vec![
                stats("return", 15_000),
                stats("queue", 250),
                LexemeStats {
                    lexeme: String::new(),
                    chunks: 100_000,
                    occurrences: 900_000,
                },
                stats("size", 1_100),
                stats("absent", 0),
                stats("lock", 600),
            ],
            1_000,
        )
        .expect("a plan");
        assert_eq!(plan.lexemes, ["queue", "lock", "size", "return"]);
        assert_eq!(plan.candidates, "'queue' | 'lock'");
        assert!((plan.average_length - 9.0).abs() < 1e-9);
        // Rarer lexemes weigh more, and every weight is positive.
        assert!(plan.idfs.windows(2).all(|w| w[0] > w[1]), "{:?}", plan.idfs);
        assert!(plan.idfs.iter().all(|idf| *idf > 0.0));
    }

    #[test]
    fn a_lexeme_more_common_than_the_budget_still_finds_candidates() {
        let totals = LexemeStats {
            lexeme: String::new(),
            chunks: 10,
            occurrences: 10,
        };
        let plan = plan_keyword(vec![stats("file", 5_000), totals.clone()], 10).expect("a plan");
        assert_eq!(plan.candidates, "'file'");
        assert_eq!(plan_keyword(vec![stats("absent", 0), totals], 10), None);
        assert_eq!(plan_keyword(vec![stats("file", 1)], 10), None, "no totals row");
    }

    #[test]
    fn lexemes_are_quoted_for_tsquery() {
        assert_eq!(tsquery_operand("it's"), "'it''s'");
        assert_eq!(tsquery_operand(r"a\b"), r"'a\\b'");
    }
}
