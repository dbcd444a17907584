//! Switching the embedding model: a new space is filled in the background while search keeps answering from the
//! old one, then search moves to the new space in one step and the old vectors go.

use std::path::Path;
use std::time::{Duration, Instant};

use common::database_name;
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

/// Three documents ingested with the test model; returns the stopped hearthd (whose blob directory the next one
/// shares).
async fn three_documents_in_the_first_space(postgres: &TestPostgres, url: &str) -> TestHearthd {
    let database = database_name(url);
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

    let mut first = TestHearthd::start(Path::new(HEARTHD), url, &[]).expect("hearthd");
    first.ready().await;
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
    while spaces(postgres, &database) != "sentence-transformers/all-MiniLM-L6-v2:active:3" {
        assert!(
            Instant::now() < deadline,
            "not ingested: {}",
            spaces(postgres, &database)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first.terminate(), "hearthd did not stop on SIGTERM");
    first
}

#[tokio::test(flavor = "multi_thread")]
async fn search_answers_throughout_a_model_switch_and_then_from_the_new_space() {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = database_name(&url);
    let first = three_documents_in_the_first_space(&postgres, &url).await;
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
    serving_only.ready().await;
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
    working.ready().await;
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
    first.ready().await;
    assert!(first.terminate());
    let renamed = renamed_model();
    let model_dir = renamed.path().display().to_string();
    let second = TestHearthd::start(
        Path::new(HEARTHD),
        &url,
        &[("HEARTH_EMBEDDING__MODEL_DIR", &model_dir)],
    )
    .expect("hearthd with the new model");
    second.ready().await;
    assert_eq!(
        spaces(&postgres, &database),
        "sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:0"
    );
    let hits = search(&second, "anything").await;
    assert_eq!(hits["hits"], json!([]));
}

/// A hearthd on `first`'s database and blobs, with `model_dir` (the test model when `None`) and `workers`.
fn restart(first: &TestHearthd, url: &str, model_dir: Option<&Path>, workers: &str) -> TestHearthd {
    let blob_dir = first.blob_dir.display().to_string();
    let model_dir = model_dir.map(|dir| dir.display().to_string());
    let mut settings = vec![
        ("HEARTH_BLOBS__PATH", blob_dir.as_str()),
        ("HEARTH_INGEST__WORKERS", workers),
    ];
    if let Some(dir) = &model_dir {
        settings.push(("HEARTH_EMBEDDING__MODEL_DIR", dir));
    }
    TestHearthd::start(Path::new(HEARTHD), url, &settings).expect("hearthd")
}

fn until(what: &str, hearthd: &TestHearthd, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}\n{}", hearthd.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three documents in the first model's space, then hearthd restarted on a renamed model with no workers: the
/// switch has begun and nothing is embedded into the new space yet.
struct Midway {
    postgres: TestPostgres,
    url: String,
    database: String,
    first: TestHearthd,
    renamed: tempfile::TempDir,
    hearthd: TestHearthd,
}

async fn switched_midway() -> Midway {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = database_name(&url);
    let first = three_documents_in_the_first_space(&postgres, &url).await;
    let renamed = renamed_model();
    let hearthd = restart(&first, &url, Some(renamed.path()), "0");
    hearthd.ready().await;
    Midway {
        postgres,
        url,
        database,
        first,
        renamed,
        hearthd,
    }
}

const FIRST_ACTIVE: &str = "sentence-transformers/all-MiniLM-L6-v2:active:3";

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_reverted_midway_leaves_every_document_ready_and_can_be_taken_up_again() {
    // Switched to the renamed model, stopped before a single document is embedded into it ...
    let Midway {
        postgres,
        url,
        database,
        first,
        renamed,
        hearthd: mut midway,
    } = switched_midway().await;
    assert_eq!(
        spaces(&postgres, &database),
        format!("{FIRST_ACTIVE} hearth-test/minilm-renamed:building:0")
    );
    assert!(midway.terminate());

    // ... and configured back: the queued work for the abandoned model goes, no document is failed for it.
    let mut reverted = restart(&first, &url, None, "1");
    reverted.ready().await;
    assert_eq!(
        spaces(&postgres, &database),
        format!("{FIRST_ACTIVE} hearth-test/minilm-renamed:retired:0")
    );
    let jobs = postgres
        .psql(&database, "SELECT count(*) FROM jobs")
        .expect("psql");
    assert_eq!(jobs.trim(), "0");
    // Give the worker time to have taken up anything left behind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let statuses = postgres
        .psql(&database, "SELECT string_agg(status, ',') FROM documents")
        .expect("psql");
    assert_eq!(statuses.trim(), "ready,ready,ready", "{}", reverted.log_text());
    assert_eq!(
        search(&reverted, "a boat in the port").await["hits"][0]["title"],
        "sea"
    );
    assert!(reverted.terminate());

    // The renamed model configured again: its space is rebuilt from nothing and the switch completes.
    let again = restart(&first, &url, Some(renamed.path()), "1");
    again.ready().await;
    until("the switch taken up again never completed", &again, || {
        spaces(&postgres, &database)
            == "sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:3"
    });
    assert_eq!(
        search(&again, "a boat in the port").await["hits"][0]["title"],
        "sea"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_documents_still_waiting_for_the_new_model_completes_the_switch() {
    // No workers: only the deletes can finish what the switch waits for. The stopped first hearthd holds the
    // shared blob directory and `renamed` the model: both stay alive to the end.
    let Midway {
        postgres,
        url: _,
        database,
        first: _first,
        renamed: _renamed,
        hearthd: midway,
    } = switched_midway().await;
    let client = reqwest::Client::new();
    let ids = postgres
        .psql(&database, "SELECT id FROM documents")
        .expect("psql");
    for id in ids.lines().map(str::trim).filter(|id| !id.is_empty()) {
        let response = client
            .delete(format!("{}/v1/documents/{id}", midway.url))
            .send()
            .await
            .expect("delete");
        assert_eq!(response.status(), 200);
    }
    until("the emptied switch never completed", &midway, || {
        spaces(&postgres, &database)
            == "sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:0"
    });
    // This hearthd itself searches the new space now (the old model is no longer needed).
    let capabilities: Value = client
        .get(format!("{}/v1/capabilities", midway.url))
        .send()
        .await
        .expect("capabilities")
        .json()
        .await
        .expect("json");
    assert_eq!(
        capabilities["embedding_space"]["active"]["model_id"], "hearth-test/minilm-renamed",
        "{capabilities}"
    );
    assert_eq!(capabilities["embedding_space"]["target"], Value::Null);
    assert_eq!(search(&midway, "anything").await["hits"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_given_up_on_as_the_last_one_still_completes_the_switch() {
    let Midway {
        postgres,
        url,
        database,
        first,
        renamed,
        hearthd: mut midway,
    } = switched_midway().await;
    assert!(midway.terminate());
    // One embed job has used up its attempts, and it comes due last.
    postgres
        .psql(
            &database,
            "UPDATE jobs SET attempts = 99, last_error = 'the test wore it out', \
                    run_after = now() + interval '3 seconds' \
             WHERE document_id = (SELECT id FROM documents WHERE title = 'sea')",
        )
        .expect("psql");
    let working = restart(&first, &url, Some(renamed.path()), "1");
    working.ready().await;
    until("the switch never completed after the give-up", &working, || {
        spaces(&postgres, &database)
            == "sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:2"
    });
    let failed = postgres
        .psql(
            &database,
            "SELECT title || ':' || status FROM documents WHERE status <> 'ready'",
        )
        .expect("psql");
    assert_eq!(failed.trim(), "sea:failed");
}
