//! Crash safety: hearthd killed with SIGKILL in the middle of a job or of a burst of uploads, stopped with SIGTERM
//! while a client holds an upload open, and PostgreSQL crashing under it. Every document must complete after the
//! restart with exactly one set of chunks and vectors, and every acknowledged upload must keep its original.

use std::path::Path;
use std::time::{Duration, Instant};

use common::database_name;
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
    hearthd.ready().await;
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
    use tokio::io::AsyncWriteExt as _;
    let (postgres, url, mut first, id) = a_job_in_progress().await;
    // An upload whose body never finishes: it must not hold the stop up (the request timeout is 5 minutes).
    let address = first.url.trim_start_matches("http://").to_owned();
    let mut slow_upload = tokio::net::TcpStream::connect(address).await.expect("connect");
    slow_upload
        .write_all(
            b"POST /v1/documents HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 100000\r\n\r\nthe first bytes of many",
        )
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    assert!(
        first.terminate(),
        "hearthd did not stop within 10 s of SIGTERM:\n{}",
        first.log_text()
    );
    let took = started.elapsed();
    assert!(
        first.log_text().contains("hearthd stopped"),
        "{}",
        first.log_text()
    );
    assert!(
        first.log_text().contains("cutting them"),
        "the slow upload was not what the stop waited for ({took:?}):\n{}",
        first.log_text()
    );
    drop(slow_upload);

    // Released at once, not left to a lease running out: unclaimed, due now, the reason recorded.
    let database = database_name(&url);
    let job = postgres
        .psql(
            &database,
            &format!(
                "SELECT d.status || ',' || (j.claim_token IS NULL) || ',' || (j.run_after <= now()) || ',' || \
                 j.attempts || ',' || j.last_error FROM documents d JOIN jobs j ON j.document_id = d.id \
                 WHERE d.id = '{id}'"
            ),
        )
        .expect("psql");
    // The interrupted attempt is handed back: a reboot is not a failure of the document.
    assert_eq!(job.trim(), "processing,true,true,0,interrupted by shutdown");

    let (_second, chunk_count) = restart_and_finish(&first, &url, &id).await;
    assert_whole(&postgres, &database, &id, chunk_count);
}

/// Uploads distinct documents, `in_flight` at a time, until hearthd stops answering; returns what it acknowledged
/// (id and text).
async fn upload_until_refused(url: String, in_flight: usize) -> Vec<(String, String)> {
    let http = reqwest::Client::new();
    let uploaders = (0..in_flight).map(|uploader| {
        let http = http.clone();
        let url = format!("{url}/v1/documents");
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                let text = format!(
                    "Uploader {uploader} sends note {n}: the lamp at window {} burns {} hours.",
                    n * 31 + uploader,
                    (n * 7 + uploader) % 24
                );
                let sent = http
                    .post(&url)
                    .header("content-type", "text/plain")
                    .body(text.clone())
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != reqwest::StatusCode::ACCEPTED {
                    break;
                }
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                acknowledged.push((body["id"].as_str().expect("id").to_owned(), text));
            }
            acknowledged
        })
    });
    let mut acknowledged = Vec::new();
    for uploader in uploaders.collect::<Vec<_>>() {
        acknowledged.extend(uploader.await.expect("uploader"));
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_during_a_burst_of_uploads_loses_no_acknowledged_document_and_leaves_no_orphan() {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = database_name(&url);
    let mut first = TestHearthd::start(Path::new(HEARTHD), &url, &SETTINGS).expect("hearthd");
    first.ready().await;
    let burst = tokio::spawn(upload_until_refused(first.url.clone(), 8));
    // Strike once a good number are acknowledged, with uploads, writes and jobs in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = postgres
            .psql(&database, "SELECT count(*) FROM documents")
            .expect("psql");
        if count.trim().parse::<u32>().unwrap_or(0) >= 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uploads too slow:\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let acknowledged = burst.await.expect("burst");
    // 40 committed; each of the 8 uploaders may have lost the answer to one of them.
    assert!(acknowledged.len() >= 32, "{} acknowledged", acknowledged.len());

    // The next start, with the sweep on and no grace: nothing an interrupted upload left may survive it.
    let blob_dir = first.blob_dir.display().to_string();
    let mut settings = SETTINGS.to_vec();
    settings.extend([
        ("HEARTH_BLOBS__PATH", blob_dir.as_str()),
        ("HEARTH_BLOBS__SWEEP_INTERVAL_SECONDS", "1"),
        ("HEARTH_BLOBS__SWEEP_GRACE_SECONDS", "0"),
    ]);
    let second = TestHearthd::start(Path::new(HEARTHD), &url, &settings).expect("hearthd again");
    second.ready().await;
    let http = reqwest::Client::new();
    for (id, text) in &acknowledged {
        let document = wait_for(&second, id, "ready", Duration::from_secs(180)).await;
        assert!(document["chunk_count"].as_i64() > Some(0), "{document}");
        let original = http
            .get(format!("{}/v1/documents/{id}/content", second.url))
            .send()
            .await
            .expect("content");
        assert_eq!(original.status(), reqwest::StatusCode::OK, "{id}");
        assert_eq!(
            original.text().await.expect("text"),
            *text,
            "{id}: the original changed"
        );
    }
    // Documents the kill caught between their commit and the reply exist too: every row has its original, and
    // after a sweep no original is left that no row refers to.
    let referenced = || -> Vec<String> {
        let rows = postgres
            .psql(
                &database,
                "SELECT DISTINCT content_sha256 FROM documents ORDER BY 1",
            )
            .expect("psql");
        rows.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::originals_in(&first.blob_dir) != referenced() {
        assert!(
            Instant::now() < deadline,
            "originals {:?}\nrows {:?}\n{}",
            common::originals_in(&first.blob_dir),
            referenced(),
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pending = postgres
        .psql(&database, "SELECT count(*) FROM blob_uploads")
        .expect("psql");
    assert_eq!(
        pending.trim(),
        "0",
        "announcements of dead uploads were not swept"
    );
}
