//! The concept extraction's daily token budget, with the clock injected: the library, the model and the
//! extraction worker in this process against real PostgreSQL + pgvector, the test model and llama.cpp's server;
//! only the time is the test's.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use hearth_api::ContentType;
use hearth_api::concepts::ExtractionStatus;
use hearth_api::reasoning::ProviderSettings;
use hearth_core::blob::{BlobConfig, BlobStore};
use hearth_core::concepts::{Concepts, ConceptsConfig, ManualClock, estimate_tokens, messages};
use hearth_core::embed::{EmbedMetrics, Embedder, EmbedderConfig};
use hearth_core::extract::Sandbox;
use hearth_core::library::{IngestConfig, Library, Upload};
use hearth_core::reasoning::{Reasoning, ReasoningConfig};
use hearth_core::store::concepts::SourceChunk;
use hearth_testkit::{Deps, LLAMA_MODEL, TestLlama, TestPostgres};
use tokio::sync::watch;

const FIRST: &str = "The fishing boats leave the harbour at dawn, when the tide turns.";
const SECOND: &str = "The lighthouse keeper lights the lamp at dusk, when the ships come in.";

/// Polls the extraction's status until `done` holds.
async fn wait_for(
    concepts: &Concepts,
    what: &str,
    done: impl Fn(&ExtractionStatus) -> bool,
) -> ExtractionStatus {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = concepts.status().await.expect("status");
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; last status {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn library(postgres: &TestPostgres, blobs: &std::path::Path) -> Arc<Library> {
    let url = postgres.create_database().expect("database");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("connect");
    hearth_core::store::migrate(&pool).await.expect("migrate");
    let blobs = BlobStore::open(
        &BlobConfig {
            path: blobs.to_owned(),
            ..BlobConfig::default()
        },
        None,
    )
    .expect("blob store");
    let ingest = IngestConfig::default();
    // Plain text never reaches the extraction sandbox: any program will do.
    let sandbox = Sandbox::new("/bin/false".into(), Vec::new(), ingest.extraction);
    let library = Library::new(pool, blobs, ingest, sandbox);
    library.set_schema_ready();
    let deps = Deps::load().expect("run `cargo xtask deps`");
    let mut config = EmbedderConfig::new(deps.test_model_dir);
    config.onnxruntime = Some(deps.ort_dylib);
    let embedder = Embedder::load(&config, EmbedMetrics::default()).expect("model loads");
    library.set_models(embedder, None).await.expect("models");
    library
}

async fn upload(library: &Library, text: &str) {
    library
        .upload(Upload {
            bytes: Bytes::from(text.to_owned()),
            content_type: ContentType::Plain,
            title: None,
            external_id: None,
            metadata: serde_json::json!({}),
        })
        .await
        .expect("upload");
}

/// The budget's estimate for a one-chunk document, as the worker makes it.
fn estimate(text: &str, config: &ConceptsConfig) -> u64 {
    let chunk = SourceChunk {
        id: 1,
        text: text.to_owned(),
        char_start: 0,
        char_end: text.chars().count() as i32,
    };
    estimate_tokens(&messages(&[chunk]), config.max_output_tokens)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_daily_budget_stops_extraction_with_its_reason_until_the_next_day() {
    let llama = tokio::task::spawn_blocking(|| TestLlama::start().expect("llama.cpp's server"))
        .await
        .expect("join");
    let postgres = TestPostgres::start().expect("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let library = library(&postgres, dir.path()).await;
    let key = dir.path().join("encryption-key");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&key)
        .and_then(|mut f| f.write_all(&[9u8; 32]))
        .expect("key");
    let reasoning = ReasoningConfig {
        encryption_key_file: Some(key),
        ..ReasoningConfig::default()
    };
    let reasoning = Arc::new(Reasoning::new(reasoning, None, Arc::clone(&library)).expect("reasoning"));
    reasoning
        .put(
            ProviderSettings {
                base_url: llama.base_url.clone(),
                model: LLAMA_MODEL.into(),
                api_key: Some(llama.api_key.clone()),
                remove_key: false,
                answers: false,
                concepts: true,
            },
            "test",
        )
        .await
        .expect("provider");

    // Room for one of the two documents a day: the first's tokens (at least its prompt's) leave less than the
    // second one's estimate.
    let mut config = ConceptsConfig::default();
    config.daily_token_budget = estimate(FIRST, &config).max(estimate(SECOND, &config)) + 40;
    let budget = config.daily_token_budget;
    let start = Utc
        .with_ymd_and_hms(2031, 3, 14, 22, 30, 0)
        .single()
        .expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let concepts = Concepts::new(config, Arc::clone(&library), reasoning, clock.clone());
    let (stop, stopped) = watch::channel(false);
    let ingest = tokio::spawn(Arc::clone(&library).run_worker(stopped.clone()));
    let extraction = tokio::spawn(Arc::clone(&concepts).run_worker(stopped));

    upload(&library, FIRST).await;
    let first = wait_for(&concepts, "the first document extracted", |s| s.done == 1).await;
    assert!(
        first.budget.used_today > 40 && first.budget.used_today <= budget,
        "{first:?}"
    );
    upload(&library, SECOND).await;
    let waiting = wait_for(&concepts, "the second document waiting for the budget", |s| {
        s.waiting.as_deref().is_some_and(|w| w.contains("budget"))
    })
    .await;
    let reason = waiting.waiting.clone().unwrap_or_default();
    assert!(reason.contains("concepts.daily_token_budget"), "{reason}");
    assert!(
        reason.contains("2031-03-15 00:00"),
        "says when it resumes: {reason}"
    );
    let midnight = Utc.with_ymd_and_hms(2031, 3, 15, 0, 0, 0).single().expect("time");
    assert_eq!(waiting.next_attempt_at, Some(midnight), "{waiting:?}");
    assert_eq!(waiting.budget.resets_at, midnight);
    assert_eq!(
        (waiting.pending, waiting.done, waiting.failed),
        (1, 1, 0),
        "{waiting:?}"
    );
    let asked = llama
        .requests()
        .iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = concepts.status().await.expect("status");
    assert_eq!(
        (still.pending, still.done),
        (1, 1),
        "nothing more is done the same day: {still:?}"
    );
    let asked_later = llama
        .requests()
        .iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .count();
    assert_eq!(asked, asked_later, "the provider was asked over budget");

    clock.advance(chrono::Duration::hours(2));
    let next_day = wait_for(&concepts, "the second document extracted the next day", |s| {
        s.done == 2
    })
    .await;
    assert_eq!(next_day.failed, 0);
    assert!(next_day.waiting.is_none(), "{next_day:?}");
    assert!(
        next_day.budget.used_today > 0 && next_day.budget.used_today <= budget,
        "{next_day:?}"
    );
    assert_eq!(next_day.budget.resets_at, midnight + chrono::Duration::days(1));

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = ingest.await;
        let _ = extraction.await;
    })
    .await;
}
