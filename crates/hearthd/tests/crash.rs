//! Crash safety: hearthd killed with SIGKILL in the middle of a job, and PostgreSQL crashing under it. The document
//! must complete after the restart with exactly one set of chunks and vectors.

use std::path::Path;
use std::time::{Duration, Instant};

use common::{database_name, ready};
use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::Value;

mod common;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

/// Small chunks and a short lease make a long job that a restarted worker takes over quickly.
const SETTINGS: [(&str, &str); 5] = [
    // Tiny batches: slower embedding, so the job is surely still running when the test strikes.
    ("HEARTH_EMBEDDING__MAX_BATCH_INPUTS", "2"),
    ("HEARTH_INGEST__LEASE_SECONDS", "2"),
    ("HEARTH_INGEST__WORKERS", "1"),
    ("HEARTH_INGEST__CHUNKING__MAX_TOKENS", "24"),
    ("HEARTH_INGEST__CHUNKING__OVERLAP_TOKENS", "4"),
];

/// A long, varied text (each paragraph different) so the job takes seconds, not milliseconds.
fn long_text() -> String {
    let subjects = [
        "The river",
        "A small library",
        "Our garden",
        "The old bridge",
        "This recipe",
        "The server",
    ];
    let verbs = ["carries", "remembers", "needs", "survives", "explains", "hides"];
    let objects = [
        "autumn leaves",
        "forgotten letters",
        "fresh water",
        "heavy storms",
        "quiet mornings",
        "old maps",
    ];
    (0..600)
        .map(|i| {
            format!(
                "{} {} {} in paragraph {i}, and nobody knows why the number {} matters.\n\n",
                subjects[i % 6],
                verbs[(i / 6) % 6],
                objects[(i / 36) % 6],
                i * 7919 % 1000
            )
        })
        .collect()
}

async fn upload(hearthd: &TestHearthd, text: &str) -> String {
    ready(hearthd).await;
    let response: Value = reqwest::Client::new()
        .post(format!("{}/v1/documents", hearthd.url))
        .header("content-type", "text/plain")
        .body(text.to_owned())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    response["id"].as_str().expect("id").to_owned()
}

async fn status(hearthd: &TestHearthd, id: &str) -> Option<Value> {
    let response = reqwest::get(format!("{}/v1/documents/{id}", hearthd.url))
        .await
        .ok()?;
    response.json().await.ok()
}

async fn wait_for(hearthd: &TestHearthd, id: &str, wanted: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(document) = status(hearthd, id).await
            && document["status"] == wanted
        {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "not {wanted} in time:\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exactly one set: every chunk has one vector, ordinals are 0..n, and no job is left.
fn assert_whole(postgres: &TestPostgres, database: &str, id: &str, chunk_count: i64) {
    let query = format!(
        "SELECT (SELECT count(*) FROM chunks WHERE document_id = '{id}') || ',' || \
                (SELECT count(DISTINCT ordinal) FROM chunks WHERE document_id = '{id}') || ',' || \
                (SELECT coalesce(max(ordinal) + 1, 0) FROM chunks WHERE document_id = '{id}') || ',' || \
                (SELECT count(*) FROM chunk_vectors WHERE document_id = '{id}') || ',' || \
                (SELECT count(*) FROM chunk_vectors v LEFT JOIN chunks c ON c.id = v.chunk_id WHERE c.id IS NULL) \
                || ',' || (SELECT count(*) FROM jobs)"
    );
    let row = postgres.psql(database, &query).expect("psql");
    let counts: Vec<i64> = row
        .trim()
        .split(',')
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(
        counts,
        [chunk_count, chunk_count, chunk_count, chunk_count, 0, 0],
        "chunks, distinct ordinals, ordinal span, vectors, orphan vectors, jobs"
    );
}

/// PostgreSQL, a hearthd, and a long document it is processing right now: returns them with the database URL and
/// the document's id.
async fn a_job_in_progress() -> (TestPostgres, String, TestHearthd, String) {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let first = TestHearthd::start(Path::new(HEARTHD), &url, &SETTINGS).expect("hearthd");
    let id = upload(&first, &long_text()).await;
    wait_for(&first, &id, "processing", Duration::from_secs(60)).await;
    (postgres, url, first, id)
}

/// A second hearthd on the first one's database and blob directory; waits until it has made `id` ready and returns
/// it with the document's chunk count.
async fn restart_and_finish(first: &TestHearthd, url: &str, id: &str) -> (TestHearthd, i64) {
    let blob_dir = first.blob_dir.display().to_string();
    let mut settings = SETTINGS.to_vec();
    settings.push(("HEARTH_BLOBS__PATH", &blob_dir));
    let second = TestHearthd::start(Path::new(HEARTHD), url, &settings).expect("hearthd again");
    let done = wait_for(&second, id, "ready", Duration::from_secs(180)).await;
    let chunk_count = done["chunk_count"].as_i64().expect("count");
    assert!(chunk_count > 50, "{done}");
    (second, chunk_count)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_job_is_replaced_and_the_document_completes_once() {
    let (postgres, url, mut first, id) = a_job_in_progress().await;
    first.kill();
    let database = database_name(&url);
    let state = postgres
        .psql(
            &database,
            &format!("SELECT status || ',' || (SELECT count(*) FROM jobs) FROM documents WHERE id = '{id}'"),
        )
        .expect("psql");
    assert_eq!(state.trim(), "processing,1", "the kill did not land mid-job");

    let (second, chunk_count) = restart_and_finish(&first, &url, &id).await;
    // The line is written just after the commit that made the document ready, so give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.log_text().contains("job done") {
        assert!(
            Instant::now() < deadline,
            "the restarted hearthd did not do the job:\n{}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_whole(&postgres, &database, &id, chunk_count);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_crashing_mid_ingest_delays_the_document_but_loses_nothing() {
    let mut postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(Path::new(HEARTHD), &url, &SETTINGS).expect("hearthd");
    let id = upload(&hearthd, &long_text()).await;
    wait_for(&hearthd, &id, "processing", Duration::from_secs(60)).await;
    postgres.crash().expect("crash postgres");
    tokio::time::sleep(Duration::from_secs(1)).await;
    postgres.restart().expect("restart postgres");
    let done = wait_for(&hearthd, &id, "ready", Duration::from_secs(180)).await;
    let chunk_count = done["chunk_count"].as_i64().expect("count");
    assert_whole(&postgres, &database_name(&url), &id, chunk_count);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_job_returns_it_to_the_queue_and_the_next_start_completes_it() {
    let (postgres, url, mut first, id) = a_job_in_progress().await;
    assert!(first.terminate(), "hearthd did not stop within 10 s of SIGTERM");
    assert!(
        first.log_text().contains("hearthd stopped"),
        "{}",
        first.log_text()
    );

    // Released at once, not left to a lease running out: unclaimed, due now, the reason recorded.
    let database = database_name(&url);
    let job = postgres
        .psql(
            &database,
            &format!(
                "SELECT d.status || ',' || (j.claim_token IS NULL) || ',' || (j.run_after <= now()) || ',' || \
                 j.last_error FROM documents d JOIN jobs j ON j.document_id = d.id WHERE d.id = '{id}'"
            ),
        )
        .expect("psql");
    assert_eq!(job.trim(), "processing,true,true,interrupted by shutdown");

    let (_second, chunk_count) = restart_and_finish(&first, &url, &id).await;
    assert_whole(&postgres, &database, &id, chunk_count);
}
