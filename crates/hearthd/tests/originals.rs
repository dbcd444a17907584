//! The originals' life cycle against the real hearthd and its local blob store: nothing is left behind by a
//! replaced version, a deleted document or a dead upload, nothing a document needs is ever removed, and an
//! acknowledged original is never rewritten.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_testkit::{TestHearthd, TestPostgres};
use reqwest::StatusCode;
use serde_json::Value;

mod common;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

struct Store {
    hearthd: TestHearthd,
    http: reqwest::Client,
    postgres: TestPostgres,
    database: String,
}

impl Store {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let postgres = TestPostgres::start().expect("postgres");
        let database = postgres.create_database().expect("database");
        let hearthd = TestHearthd::start(Path::new(HEARTHD), &database, extra).expect("hearthd");
        hearthd.ready().await;
        Self {
            hearthd,
            http: reqwest::Client::new(),
            postgres,
            database: common::database_name(&database),
        }
    }

    async fn upload(&self, text: &str, query: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/documents{query}", self.hearthd.url))
            .header("content-type", "text/plain")
            .body(text.to_owned())
            .send()
            .await
            .expect("upload");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    async fn delete(&self, id: &str) {
        let response = self
            .http
            .delete(format!("{}/v1/documents/{id}", self.hearthd.url))
            .send()
            .await
            .expect("delete");
        assert_eq!(response.status(), StatusCode::OK);
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.hearthd
            .blob_dir
            .join("sha256")
            .join(&sha256[..2])
            .join(sha256)
    }

    /// Every original in the store, by hash.
    fn blobs(&self) -> Vec<String> {
        common::originals_in(&self.hearthd.blob_dir)
    }
}

fn sha(body: &Value) -> String {
    body["content_sha256"].as_str().expect("sha").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_version_and_a_deleted_document_leave_no_original_behind() {
    let store = Store::start(&[]).await;
    let (_, first) = store
        .upload("The first draft of the tide tables.", "?external_id=tides")
        .await;
    let (status, second) = store
        .upload("The corrected tide tables, second edition.", "?external_id=tides")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["outcome"], "new_version");
    assert!(
        !store.blob(&sha(&first)).exists(),
        "the replaced version's original is still there"
    );
    assert!(store.blob(&sha(&second)).exists());

    // Bytes two documents share stay until the last one goes.
    let (_, shared) = store.upload("A lighthouse log kept twice.", "").await;
    let (_, twin) = store
        .upload("A lighthouse log kept twice.", "?external_id=log-copy")
        .await;
    assert_eq!(sha(&shared), sha(&twin));
    store.delete(shared["id"].as_str().expect("id")).await;
    assert!(
        store.blob(&sha(&twin)).exists(),
        "an original another document needs was removed"
    );
    store.delete(twin["id"].as_str().expect("id")).await;
    store.delete(second["id"].as_str().expect("id")).await;
    assert_eq!(
        store.blobs(),
        Vec::<String>::new(),
        "originals left after every document went"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_first_uploads_under_one_new_external_id_make_one_document_in_two_versions() {
    let store = Store::start(&[]).await;
    for round in 0..10 {
        let query = format!("?external_id=race-{round}");
        let a = format!("Version A of document {round}: the miller grinds the barley.");
        let b = format!("Version B of document {round}: the baker shapes the loaves.");
        let ((status_a, body_a), (status_b, body_b)) =
            tokio::join!(store.upload(&a, &query), store.upload(&b, &query));
        assert_eq!(status_a, StatusCode::ACCEPTED, "{body_a}");
        assert_eq!(status_b, StatusCode::ACCEPTED, "{body_b}");
        assert_eq!(body_a["id"], body_b["id"], "one document");
        let mut outcomes = [body_a["outcome"].clone(), body_b["outcome"].clone()];
        outcomes.sort_by_key(|o| o.to_string());
        assert_eq!(outcomes, [Value::from("created"), Value::from("new_version")]);
        // Only the version that won is kept.
        let current = if body_a["version"] == 2 {
            sha(&body_a)
        } else {
            sha(&body_b)
        };
        let lost = if body_a["version"] == 2 {
            sha(&body_b)
        } else {
            sha(&body_a)
        };
        assert!(store.blob(&current).exists());
        assert!(
            !store.blob(&lost).exists(),
            "round {round}: the replaced version's original stayed"
        );
    }
}

/// An upload locks the document, then re-arms its job; a worker finishing the previous version must take the
/// same locks in the same order, or PostgreSQL breaks the deadlock by failing one side (a 503 for the upload).
/// Triggers that pause while holding those row locks widen the windows from microseconds to 30 ms.
#[tokio::test(flavor = "multi_thread")]
async fn new_versions_landing_while_the_previous_one_commits_are_all_accepted() {
    let store = Store::start(&[]).await;
    store
        .postgres
        .psql(
            &store.database,
            "CREATE FUNCTION test_pause() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(0.03); RETURN NULL; END $$; \
             CREATE TRIGGER test_pause_job_delete AFTER DELETE ON jobs \
             FOR EACH ROW EXECUTE FUNCTION test_pause(); \
             CREATE TRIGGER test_pause_document_update AFTER UPDATE ON documents \
             FOR EACH ROW EXECUTE FUNCTION test_pause();",
        )
        .expect("pause triggers");
    let (_, first) = store
        .upload("The tide tables, first edition.", "?external_id=tides")
        .await;
    let id = first["id"].as_str().expect("id").to_owned();
    let rounds = 40;
    let client = |client: usize| {
        let store = &store;
        async move {
            for round in 0..rounds {
                let text = format!("Client {client}, round {round}: the tide turns at the harbour wall.");
                let (status, body) = store.upload(&text, "?external_id=tides").await;
                assert_eq!(
                    status,
                    StatusCode::ACCEPTED,
                    "client {client} round {round}: {body}"
                );
            }
        }
    };
    tokio::join!(client(0), client(1), client(2), client(3));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let document: Value = store
            .http
            .get(format!("{}/v1/documents/{id}", store.hearthd.url))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if document["status"] == "ready" && document["version"] == 1 + 4 * rounds {
            break;
        }
        assert_ne!(document["status"], "failed", "{document}");
        assert!(
            Instant::now() < deadline,
            "the last version never became ready: {document}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // When PostgreSQL picks the worker as the deadlock's victim, the upload succeeds and the job retries.
    let log = store.hearthd.log_text();
    assert!(
        !log.contains("deadlock"),
        "a job's commit deadlocked with an upload:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_racing_a_delete_of_the_same_bytes_never_loses_the_original() {
    let store = Store::start(&[]).await;
    for round in 0..20 {
        let text = format!("Round {round}: the ferryman counts the passengers twice.");
        let (_, existing) = store.upload(&text, "").await;
        let id = existing["id"].as_str().expect("id").to_owned();
        let query = format!("?external_id=racer-{round}");
        let (_, (status, racer)) = tokio::join!(store.delete(&id), store.upload(&text, &query));
        assert_eq!(status, StatusCode::ACCEPTED, "{racer}");
        let content = store
            .http
            .get(format!(
                "{}/v1/documents/{}/content",
                store.hearthd.url,
                racer["id"].as_str().expect("id")
            ))
            .send()
            .await
            .expect("content");
        assert_eq!(
            content.status(),
            StatusCode::OK,
            "round {round}: the acknowledged document lost its original"
        );
        assert_eq!(content.text().await.expect("text"), text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploading_bytes_already_stored_does_not_rewrite_their_original() {
    let store = Store::start(&[]).await;
    let text = "The archivist never rewrites a finished ledger.";
    let (_, first) = store.upload(text, "").await;
    let before = std::fs::metadata(store.blob(&sha(&first))).expect("original");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, again) = store.upload(text, "?external_id=ledger-copy").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let after = std::fs::metadata(store.blob(&sha(&first))).expect("original");
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "the original was rewritten"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_removes_orphans_staging_files_and_probes_after_their_grace_and_nothing_else() {
    let store = Store::start(&[
        ("HEARTH_BLOBS__SWEEP_INTERVAL_SECONDS", "1"),
        ("HEARTH_BLOBS__SWEEP_GRACE_SECONDS", "2"),
    ])
    .await;
    let (_, kept) = store
        .upload("A document whose original must survive every sweep.", "")
        .await;
    // What a crash between an original's write and its commit leaves, and a staging file and a probe.
    let orphan = "ab".repeat(32);
    std::fs::create_dir_all(store.blob(&orphan).parent().expect("dir")).expect("dir");
    std::fs::write(store.blob(&orphan), b"an original no document refers to").expect("orphan");
    let staging = store.blob(&orphan).with_file_name(".staging-leftover");
    std::fs::write(&staging, b"half a write").expect("staging");
    let probe = store
        .hearthd
        .blob_dir
        .join("probe")
        .join("0192f4e8-6b1c-7c3a-9d2e-5f6a7b8c9d0e");
    std::fs::create_dir_all(probe.parent().expect("dir")).expect("dir");
    std::fs::write(&probe, b"hearth readiness probe").expect("probe");

    let deadline = Instant::now() + Duration::from_secs(30);
    while store.blob(&orphan).exists() || staging.exists() || probe.exists() {
        assert!(
            Instant::now() < deadline,
            "not swept:\n{}",
            store.hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        store.blob(&sha(&kept)).exists(),
        "the sweep removed an original a document needs"
    );
    let metrics = store
        .http
        .get(format!("{}/metrics", store.hearthd.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let swept = |kind: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(&format!("hearth_blob_swept_total{{kind=\"{kind}\"}}")))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(swept("original") >= 1.0, "{metrics}");
    assert!(swept("leftover") >= 2.0, "{metrics}");
}
