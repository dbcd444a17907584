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
    let key = SpaceKey {
        model_id: "test/model".into(),
        dims: 8,
        digest: "d".repeat(64),
        model_dir: "/models/test".into(),
    };
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
    sqlx::query(
        "INSERT INTO chunk_vectors (chunk_id, space_id, document_id, embedding) \
         SELECT c.id, $1, c.document_id, \
                (SELECT array_agg(sin(c.id * 7.13 + k))::real[] FROM generate_series(1, 8) k)::halfvec \
         FROM chunks c",
    )
    .bind(space.id)
    .execute(&db)
    .await
    .expect("vectors");
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
    let (_, outcome) = uploading.await.expect("task").expect("upload");
    assert_eq!(outcome, hearth_core::store::documents::Outcome::Created);
}
