//! The schema and the vector query against real PostgreSQL + pgvector.

use hearth_core::store::search::vector_sql;
use hearth_core::store::spaces::{self, SpaceKey};
use hearth_core::store::{self, MIGRATOR};
use hearth_testkit::TestPostgres;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

async fn pool(postgres: &TestPostgres) -> PgPool {
    let url = postgres.create_database().expect("database");
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect")
}

/// An 8-dimensional space of a model that does not exist: the tests store vectors, nothing embeds.
fn test_space_key() -> SpaceKey {
    SpaceKey {
        model_id: "test/model".into(),
        dims: 8,
        digest: "d".repeat(64),
        model_dir: "/models/test".into(),
    }
}

/// An 8-dimensional pseudo-random vector for every chunk, in `space`.
async fn pseudo_random_vectors(db: &PgPool, space: &hearth_core::store::spaces::Space) {
    sqlx::query(
        "INSERT INTO chunk_vectors (chunk_id, space_id, document_id, embedding) \
         SELECT c.id, $1, c.document_id, \
                (SELECT array_agg(sin(c.id * 7.13 + k))::real[] FROM generate_series(1, 8) k)::halfvec \
         FROM chunks c",
    )
    .bind(space.id)
    .execute(db)
    .await
    .expect("vectors");
}

#[tokio::test]
async fn migrations_run_from_empty_and_from_every_earlier_version_and_twice() {
    let postgres = TestPostgres::start().expect("postgres");
    let newest = MIGRATOR.iter().map(|m| m.version).max().expect("migrations");
    let fresh = pool(&postgres).await;
    assert_eq!(
        store::schema_version(&fresh).await.expect("version"),
        (None, newest)
    );
    store::migrate(&fresh).await.expect("from empty");
    store::migrate(&fresh).await.expect("again: nothing to do");
    assert_eq!(
        store::schema_version(&fresh).await.expect("version"),
        (Some(newest), newest)
    );
    for migration in MIGRATOR.iter() {
        let db = pool(&postgres).await;
        MIGRATOR
            .run_to(migration.version, &db)
            .await
            .expect("up to this version");
        store::migrate(&db)
            .await
            .expect("from this version to the newest");
        assert_eq!(store::schema_version(&db).await.expect("version").0, Some(newest));
    }
}

#[tokio::test]
async fn vector_search_uses_the_space_hnsw_index_filtered_or_not() {
    let postgres = TestPostgres::start().expect("postgres");
    let db = pool(&postgres).await;
    store::migrate(&db).await.expect("migrate");
    let key = test_space_key();
    let spaces = spaces::ensure(&db, &key).await.expect("space");
    assert!(!spaces.switching());
    let space = spaces.active;
    // 50 documents × 100 chunks with pseudo-random vectors, enough that a scan would cost more than the index.
    sqlx::query(
        "INSERT INTO documents (id, content_sha256, content_type, byte_size, status, metadata) \
         SELECT gen_random_uuid(), lpad(to_hex(d), 64, '0'), 'text/plain', 1, 'ready', \
                jsonb_build_object('group', d % 5) FROM generate_series(1, 50) d",
    )
    .execute(&db)
    .await
    .expect("documents");
    sqlx::query(
        "INSERT INTO chunks (document_id, ordinal, text, char_start, char_end, token_count) \
         SELECT d.id, o, 'chunk ' || o, 0, 1, 1 FROM documents d, generate_series(0, 99) o",
    )
    .execute(&db)
    .await
    .expect("chunks");
    pseudo_random_vectors(&db, &space).await;
    sqlx::query("ANALYZE").execute(&db).await.expect("analyze");

    let query = pgvector::HalfVector::from_f32_slice(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
    let index = format!("chunk_vectors_hnsw_space_{}", space.id);
    for (filter, iterative) in [(None, false), (Some(serde_json::json!({ "group": 3 })), true)] {
        let mut tx = db.begin().await.expect("tx");
        if iterative {
            sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                .execute(&mut *tx)
                .await
                .expect("set");
        }
        let plan: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", vector_sql(&space))))
                .bind(&query)
                .bind(None::<Vec<uuid::Uuid>>)
                .bind(&filter)
                .bind(10_i64)
                .fetch_all(&mut *tx)
                .await
                .expect("explain");
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("Index Scan using {index}")),
            "filter {filter:?}:\n{plan}"
        );
        let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ({}) hits",
            vector_sql(&space)
        )))
        .bind(&query)
        .bind(None::<Vec<uuid::Uuid>>)
        .bind(&filter)
        .bind(10_i64)
        .fetch_one(&mut *tx)
        .await
        .expect("search");
        // With iterative scan a selective filter still fills k; without it HNSW could return fewer.
        assert_eq!(found, 10, "filter {filter:?}");
    }
}

/// A server that wants a password gets it from database.password_file or the `postgres-password` credential,
/// and refuses hearth without it or with a wrong one.
#[tokio::test]
async fn the_database_password_comes_from_a_file_or_the_credential() {
    use hearth_core::config::DatabaseConfig;
    use hearth_core::database::{PASSWORD_CREDENTIAL, connect_options};

    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres
        .add_password_role("hearth_pw", "correct-horse-battery-staple", "postgres")
        .expect("role");
    let dir = tempfile::tempdir().expect("tempdir");
    let connects = |password_file: Option<std::path::PathBuf>, credentials: Option<&std::path::Path>| {
        let options = connect_options(
            &DatabaseConfig {
                url: url.clone(),
                password_file,
            },
            credentials,
        )
        .expect("options");
        async move {
            PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map(|_| ())
        }
    };

    let refused = connects(None, None).await.expect_err("no password");
    assert!(refused.to_string().contains("password"), "{refused}");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password").expect("write");
    connects(Some(wrong), None).await.expect_err("wrong password");

    let right = dir.path().join("right");
    std::fs::write(&right, "correct-horse-battery-staple\n").expect("write");
    connects(Some(right), None)
        .await
        .expect("the password file's password");

    let credentials = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        credentials.path().join(PASSWORD_CREDENTIAL),
        "correct-horse-battery-staple",
    )
    .expect("write");
    connects(None, Some(credentials.path()))
        .await
        .expect("the credential's password");
}

/// The original is written before the transaction that records it: an upload whose blob write is slow holds no
/// database connection meanwhile (with one connection in the pool, another query still gets it).
#[tokio::test]
async fn an_upload_holds_no_database_connection_while_its_original_is_written() {
    use std::sync::Arc;
    use std::time::Duration;

    use hearth_core::blob::BlobStore;
    use hearth_core::extract::{ContentType, Sandbox};
    use hearth_core::library::{IngestConfig, Library, Upload};
    use object_store::throttle::{ThrottleConfig, ThrottledStore};

    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await
        .expect("connect");
    store::migrate(&pool).await.expect("migrate");
    let slow = ThrottledStore::new(
        object_store::memory::InMemory::new(),
        ThrottleConfig {
            wait_put_per_call: Duration::from_secs(5),
            ..ThrottleConfig::default()
        },
    );
    let library = Library::new(
        pool.clone(),
        BlobStore::with_store(Arc::new(slow), "a slow in-memory store"),
        IngestConfig::default(),
        Sandbox::new("/nonexistent".into(), Vec::new(), Default::default()),
    );
    library.set_schema_ready();
    let uploading = tokio::spawn({
        let library = Arc::clone(&library);
        async move {
            library
                .upload(Upload {
                    bytes: bytes::Bytes::from_static(b"A slow disk still keeps every word of this document."),
                    content_type: ContentType::Plain,
                    title: None,
                    external_id: None,
                    metadata: serde_json::json!({}),
                })
                .await
        }
    });
    // Well inside the five-second write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("the pool's only connection is free while the original is written");
    assert_eq!(answer, 1);
    let uploaded = uploading.await.expect("task").expect("upload");
    assert_eq!(uploaded.outcome, hearth_core::store::documents::Outcome::Created);
}

/// The lexicon with its unfolded changes, and the same statistics counted from the chunks themselves.
async fn lexicon_against_chunks(db: &PgPool) -> (Vec<(String, i64, i64)>, Vec<(String, i64, i64)>) {
    let kept: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT lexeme, sum(chunks)::int8, sum(occurrences)::int8 \
         FROM (SELECT * FROM lexicon UNION ALL SELECT * FROM lexicon_changes) s \
         GROUP BY lexeme HAVING sum(chunks) <> 0 ORDER BY lexeme",
    )
    .fetch_all(db)
    .await
    .expect("lexicon");
    let counted: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT * FROM ( \
             SELECT u.lexeme, count(*)::int8 AS chunks, sum(coalesce(array_length(u.positions, 1), 1))::int8 \
             FROM chunks c, unnest(c.tsv) u GROUP BY u.lexeme \
             UNION ALL SELECT '', count(*)::int8, coalesce(sum(length(tsv)), 0)::int8 FROM chunks) s \
         WHERE chunks <> 0 ORDER BY lexeme",
    )
    .fetch_all(db)
    .await
    .expect("counted");
    (kept, counted)
}

async fn insert_document(db: &PgPool, texts: &[&str]) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO documents (id, content_sha256, content_type, byte_size, status) \
         VALUES ($1, encode(sha256($1::text::bytea), 'hex'), 'text/plain', 1, 'ready')",
    )
    .bind(id)
    .execute(db)
    .await
    .expect("document");
    replace_chunks(db, id, texts).await;
    id
}

async fn replace_chunks(db: &PgPool, document: uuid::Uuid, texts: &[&str]) {
    let chunks: Vec<hearth_core::chunk::Chunk> = texts
        .iter()
        .map(|text| hearth_core::chunk::Chunk {
            text: (*text).to_owned(),
            char_start: 0,
            char_end: text.chars().count(),
        })
        .collect();
    let mut tx = db.begin().await.expect("tx");
    hearth_core::store::chunks::replace(&mut tx, document, &chunks, &vec![1; texts.len()], &[])
        .await
        .expect("chunks");
    tx.commit().await.expect("commit");
}

/// BM25's statistics are kept by triggers and folded later; at every point they must equal a count over the
/// chunks, including chunks stored before the migration that introduced them, replaced versions and deletions.
#[tokio::test]
async fn keyword_statistics_equal_a_count_of_the_chunks_through_every_change() {
    let postgres = TestPostgres::start().expect("postgres");
    let db = pool(&postgres).await;
    MIGRATOR
        .run_to(3, &db)
        .await
        .expect("the schema before the lexicon");
    let early = insert_document(
        &db,
        &["Lighthouses guide ships past the rocks", "ships ships ships"],
    )
    .await;
    store::migrate(&db).await.expect("migrate");
    let check = async |when: &str| {
        let (kept, counted) = lexicon_against_chunks(&db).await;
        assert_eq!(kept, counted, "{when}");
    };
    check("after the migration counted existing chunks").await;
    let second = insert_document(&db, &["a queue of ships", "the harbour queue is long"]).await;
    check("after an insert, unfolded").await;
    hearth_core::store::search::fold_lexicon(&db).await.expect("fold");
    let unfolded: i64 = sqlx::query_scalar("SELECT count(*) FROM lexicon_changes")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(unfolded, 0, "a fold moves every change");
    check("after a fold").await;
    replace_chunks(&db, early, &["rocks and lighthouses", "a new version"]).await;
    check("after a new version replaced the chunks").await;
    sqlx::query("DELETE FROM documents WHERE id = $1")
        .bind(second)
        .execute(&db)
        .await
        .expect("delete");
    check("after a deletion cascaded").await;
    hearth_core::store::search::fold_lexicon(&db).await.expect("fold");
    check("after the second fold").await;
    let gone: Option<i64> = sqlx::query_scalar("SELECT chunks FROM lexicon WHERE lexeme = 'harbour'")
        .fetch_optional(&db)
        .await
        .expect("query");
    assert_eq!(gone, None, "a word no chunk has any more leaves the lexicon");
}

/// Keyword search ranks by BM25: the chunk with the rarer query word and more of it wins; and hybrid retrieval
/// gives the same two rankings whether a second connection is free (both at once) or not (one after the other).
#[tokio::test]
async fn bm25_ranks_rare_words_first_and_hybrid_retrieval_agrees_with_and_without_a_free_connection() {
    use hearth_core::store::search::{self, SearchFilter};
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect");
    store::migrate(&db).await.expect("migrate");
    let key = test_space_key();
    let space = spaces::ensure(&db, &key).await.expect("space").active;
    let mut texts = vec!["the file and the file again"; 30];
    texts.push("the lighthouse file");
    texts.push("lighthouse lighthouse, a lighthouse keeper");
    texts.push("nothing relevant here");
    insert_document(&db, &texts).await;
    pseudo_random_vectors(&db, &space).await;
    let texts_of = async |ranked: &[search::Ranked]| -> Vec<String> {
        let ids: Vec<i64> = ranked.iter().map(|r| r.chunk_id).collect();
        let mut tx = search::snapshot(&db).await.expect("snapshot");
        let details = search::details(&mut tx, &ids).await.expect("details");
        ids.iter()
            .map(|id| {
                details
                    .iter()
                    .find(|d| d.chunk_id == *id)
                    .expect("detail")
                    .text
                    .clone()
            })
            .collect()
    };
    let filter = SearchFilter::default();
    let mut tx = search::snapshot(&db).await.expect("snapshot");
    let ranked = search::keyword(&mut tx, "lighthouse file", &filter, 5, 1000)
        .await
        .expect("keyword");
    tx.commit().await.expect("commit");
    let found = texts_of(&ranked).await;
    assert_eq!(
        found[0], "lighthouse lighthouse, a lighthouse keeper",
        "{found:?}"
    );
    assert_eq!(found[1], "the lighthouse file", "{found:?}");
    assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score), "{ranked:?}");
    // A budget smaller than the common word's chunks: candidates come from the rare word alone.
    let mut tx = search::snapshot(&db).await.expect("snapshot");
    let bounded = search::keyword(&mut tx, "lighthouse file", &filter, 5, 5)
        .await
        .expect("keyword");
    tx.commit().await.expect("commit");
    assert_eq!(bounded.len(), 2, "{bounded:?}");
    assert_eq!(texts_of(&bounded).await, found[..2]);

    let query = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let mut tx = search::snapshot(&db).await.expect("snapshot");
    let at_once = search::both(&db, &mut tx, &space, &query, "lighthouse file", &filter, 10)
        .await
        .expect("both at once");
    tx.commit().await.expect("commit");
    let held = db.acquire().await.expect("the other connection");
    let mut tx = search::snapshot(&db).await.expect("snapshot");
    let in_turn = search::both(&db, &mut tx, &space, &query, "lighthouse file", &filter, 10)
        .await
        .expect("both in turn");
    tx.commit().await.expect("commit");
    drop(held);
    let ids = |ranked: &[search::Ranked]| ranked.iter().map(|r| r.chunk_id).collect::<Vec<_>>();
    assert_eq!(ids(&at_once.0), ids(&in_turn.0));
    assert_eq!(ids(&at_once.1), ids(&in_turn.1));
    assert_eq!(at_once.0.len(), 10);
    assert_eq!(
        ids(&at_once.1)[..ranked.len()],
        ids(&ranked)[..],
        "the same BM25 order at any depth"
    );
}
