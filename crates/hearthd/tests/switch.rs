//! Switching the embedding model: a new space is filled in the background while search keeps answering from the
//! old one, then search moves to the new space in one step and the old vectors go.

use std::path::Path;
use std::time::{Duration, Instant};

use common::{database_name, ready};
use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::{Value, json};

mod common;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

/// The test model under another id: the same weights, but to hearth a different model, so a different space.
fn renamed_model() -> tempfile::TempDir {
    let copy = hearth_testkit::test_model_copy().expect("model copy");
    let path = copy.path().join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
    manifest["id"] = json!("hearth-test/minilm-renamed");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
    copy
}

async fn search(hearthd: &TestHearthd, query: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/search", hearthd.url))
        .json(&json!({ "query": query, "mode": "vector", "k": 1 }))
        .send()
        .await
        .expect("search");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn spaces(postgres: &TestPostgres, database: &str) -> String {
    postgres
        .psql(
            database,
            "SELECT string_agg(model_id || ':' || state || ':' || \
                    (SELECT count(*) FROM chunk_vectors v WHERE v.space_id = s.id), ' ' ORDER BY s.id) \
             FROM embedding_spaces s",
        )
        .expect("psql")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_answers_throughout_a_model_switch_and_then_from_the_new_space() {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = database_name(&url);
    let texts = [
        (
            "bread",
            "Knead the dough and bake the loaf until the crust is golden.",
        ),
        (
            "garage",
            "An object store that keeps files replicated across machines.",
        ),
        (
            "sea",
            "The tide comes in twice a day and the harbour fills with boats.",
        ),
    ];

    let mut first = TestHearthd::start(Path::new(HEARTHD), &url, &[]).expect("hearthd");
    ready(&first).await;
    let client = reqwest::Client::new();
    for (title, text) in texts {
        let response = client
            .post(format!("{}/v1/documents?title={title}", first.url))
            .header("content-type", "text/plain")
            .body(text)
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while spaces(&postgres, &database) != "sentence-transformers/all-MiniLM-L6-v2:active:3" {
        assert!(
            Instant::now() < deadline,
            "not ingested: {}",
            spaces(&postgres, &database)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first.terminate(), "hearthd did not stop on SIGTERM");
    let blob_dir = first.blob_dir.display().to_string();

    let renamed = renamed_model();
    let model_dir = renamed.path().display().to_string();
    let with_new_model = |workers: &'static str| {
        TestHearthd::start(
            Path::new(HEARTHD),
            &url,
            &[
                ("HEARTH_BLOBS__PATH", &blob_dir),
                ("HEARTH_EMBEDDING__MODEL_DIR", &model_dir),
                ("HEARTH_INGEST__WORKERS", workers),
            ],
        )
        .expect("hearthd with the new model")
    };

    // No workers: the new space is created and queued, but nothing fills it, so we can look at the middle.
    let mut serving_only = with_new_model("0");
    ready(&serving_only).await;
    let state = spaces(&postgres, &database);
    assert_eq!(
        state,
        "sentence-transformers/all-MiniLM-L6-v2:active:3 hearth-test/minilm-renamed:building:0"
    );
    let queued = postgres
        .psql(&database, "SELECT count(*) FROM jobs WHERE kind = 'embed'")
        .expect("psql");
    assert_eq!(queued.trim(), "3");
    let hits = search(&serving_only, "a boat in the port").await;
    assert_eq!(
        hits["hits"][0]["title"], "sea",
        "search during the switch: {hits}"
    );
    assert!(serving_only.terminate());

    let working = with_new_model("1");
    ready(&working).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while spaces(&postgres, &database)
        != "sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:3"
    {
        assert!(
            Instant::now() < deadline,
            "switch never completed: {}\n{}",
            spaces(&postgres, &database),
            working.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = search(&working, "a boat in the port").await;
    assert_eq!(hits["hits"][0]["title"], "sea", "search after the switch: {hits}");
    // Logged just after the switch commits, so give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !working.log_text().contains("search switched to it") {
        assert!(Instant::now() < deadline, "{}", working.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_library_switches_at_once() {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = database_name(&url);
    let mut first = TestHearthd::start(Path::new(HEARTHD), &url, &[]).expect("hearthd");
    ready(&first).await;
    assert!(first.terminate());
    let renamed = renamed_model();
    let model_dir = renamed.path().display().to_string();
    let second = TestHearthd::start(
        Path::new(HEARTHD),
        &url,
        &[("HEARTH_EMBEDDING__MODEL_DIR", &model_dir)],
    )
    .expect("hearthd with the new model");
    ready(&second).await;
    assert_eq!(
        spaces(&postgres, &database),
        "sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:0"
    );
    let hits = search(&second, "anything").await;
    assert_eq!(hits["hits"], json!([]));
}
