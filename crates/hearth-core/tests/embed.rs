//! The embedding engine with the real test model on the real onnxruntime.

use hearth_core::embed::{
    EmbedError, EmbedMetrics, EmbedRequest, Embedder, EmbedderConfig, InputKind, Priority,
};
use hearth_testkit::Deps;
use serde_json::Value;

fn config() -> EmbedderConfig {
    let deps = Deps::load().expect("run `cargo xtask deps`");
    let mut config = EmbedderConfig::new(deps.test_model_dir);
    config.onnxruntime = Some(deps.ort_dylib);
    config
}

fn load(config: &EmbedderConfig) -> Embedder {
    Embedder::load(config, EmbedMetrics::default()).expect("model loads")
}

fn request(texts: &[&str], priority: Priority) -> EmbedRequest {
    EmbedRequest::new(
        texts.iter().map(|t| (*t).to_owned()).collect(),
        InputKind::Document,
        priority,
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn paraphrases_score_above_unrelated_pairs_and_vectors_are_unit_norm() {
    let embedder = load(&config());
    let pairs = [
        (
            "How do I reset my password?",
            "I forgot my password and need to change it.",
        ),
        (
            "The weather is sunny and warm today.",
            "It is a bright, hot day outside.",
        ),
        (
            "The committee approved the annual budget.",
            "The yearly budget was passed by the committee.",
        ),
    ];
    let texts: Vec<&str> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let embedded = embedder
        .embed(request(&texts, Priority::Api))
        .await
        .expect("embeds");
    for v in &embedded.vectors {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let v = &embedded.vectors;
    for i in 0..pairs.len() {
        let paraphrase = cosine(&v[2 * i], &v[2 * i + 1]);
        for j in (0..pairs.len()).filter(|&j| j != i) {
            let unrelated = cosine(&v[2 * i], &v[2 * j + 1]);
            assert!(
                paraphrase > unrelated + 0.2,
                "pair {i}: paraphrase {paraphrase:.3} vs unrelated {unrelated:.3}"
            );
        }
    }
}

#[tokio::test]
async fn vectors_match_an_independent_onnxruntime_reference() {
    // tests/fixtures/make_reference.py: onnxruntime's Python API + the tokenizers package, one sentence per run.
    let reference: Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).expect("fixture parses");
    // Both ways hearth loads the model: weights expanded to float32 (the ingest session by default) and kept
    // int8 (`keep_quantized_weights`, for both sessions).
    let mut kept = config();
    kept.keep_quantized_weights = true;
    for config in [config(), kept] {
        let embedder = load(&config);
        let label = format!("keep_quantized_weights = {}", config.keep_quantized_weights);
        match_reference(&embedder, &reference, &label).await;
    }
}

async fn match_reference(embedder: &Embedder, reference: &Value, label: &str) {
    for entry in reference["vectors"].as_array().expect("vectors") {
        let text = entry["text"].as_str().expect("text");
        let expected: Vec<f32> = entry["embedding"]
            .as_array()
            .expect("embedding")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect();
        // One request per sentence, so each runs alone as in the reference (activations are quantized per batch).
        let embedded = embedder
            .embed(request(&[text], Priority::Api))
            .await
            .expect("embeds");
        assert_eq!(
            embedded.tokens[0] as u64,
            entry["tokens"].as_u64().expect("tokens"),
            "{text}"
        );
        let got = &embedded.vectors[0];
        let max_diff = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "{label}: {text}: max |Δ| = {max_diff}");
        assert!(cosine(got, &expected) > 0.9999, "{label}: {text}");
    }
}

#[tokio::test]
async fn without_a_query_lane_a_query_waits_for_at_most_the_batch_in_flight() {
    let mut config = config();
    config.query_lane_threads = 0;
    config.max_batch_inputs = 16;
    let embedder = load(&config);
    let chunks: Vec<String> = (0..1000)
        .map(|i| format!("Chunk {i} of a long report about the harvest, the weather and the markets."))
        .collect();
    let ingest = embedder
        .submit(EmbedRequest::new(chunks, InputKind::Document, Priority::Ingest))
        .expect("1000 chunks queue");
    // Let the scheduler get going on the ingest backlog first.
    while embedder.batches_started() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let query = EmbedRequest::new(vec!["harvest weather".into()], InputKind::Query, Priority::Query);
    let pending = embedder.submit(query).expect("query queues");
    // Read after submitting: the batch running when the query arrived has at most this number.
    let before = embedder.batches_started();
    let answered = pending.wait().await.expect("query");
    // Only the batch that was running when the query arrived may finish first; the query runs in the next one.
    assert!(
        answered.last_batch <= before + 1,
        "query ran in batch {} though batch {before} was running when it arrived",
        answered.last_batch
    );
    let done = ingest.wait().await.expect("ingest completes");
    assert_eq!(done.vectors.len(), 1000);
    assert!(
        done.last_batch > answered.last_batch,
        "the ingest backlog did not outlast the query"
    );
}

#[tokio::test]
async fn the_query_lane_answers_while_an_ingest_batch_is_still_running() {
    let mut config = config();
    config.query_lane_threads = 1;
    config.max_batch_inputs = 64;
    config.max_batch_tokens = 64 * 256;
    let embedder = load(&config);
    // One batch of 64 long inputs: it runs for a second or more; a one-line query takes milliseconds.
    let chunks: Vec<String> = (0..64)
        .map(|i| format!("{i} {}", "harvest weather markets ".repeat(40)))
        .collect();
    let ingest = embedder
        .submit(EmbedRequest::new(chunks, InputKind::Document, Priority::Ingest))
        .expect("64 chunks queue");
    while embedder.batches_started() < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let query = EmbedRequest::new(vec!["harvest weather".into()], InputKind::Query, Priority::Query);
    let answered = embedder.embed(query).await.expect("query");
    assert_eq!(answered.last_batch, 2, "the query ran in its own batch");
    // Without the lane the query would start only after the ingest batch, whose request would be answered by now.
    let ingest_done = tokio::time::timeout(std::time::Duration::ZERO, ingest.wait()).await;
    assert!(
        ingest_done.is_err(),
        "the ingest batch in flight when the query arrived finished first"
    );
}

#[tokio::test]
async fn withdrawn_requests_cost_no_compute() {
    let mut config = config();
    config.max_batch_inputs = 8;
    let embedder = load(&config);
    let chunks: Vec<String> = (0..800).map(|i| format!("abandoned chunk number {i}")).collect();
    let pending = embedder
        .submit(EmbedRequest::new(chunks, InputKind::Document, Priority::Ingest))
        .expect("queued");
    drop(pending);
    let after = embedder
        .embed(request(&["still served"], Priority::Api))
        .await
        .expect("embeds");
    // 800 inputs would take 100 batches; dropped, at most the one or two already started are computed.
    assert!(
        after.last_batch <= 3,
        "{} batches ran for a withdrawn request",
        after.last_batch
    );
}

#[tokio::test]
async fn refusals_name_the_numbers() {
    let mut config = config();
    config.queue_capacity = 10;
    let embedder = load(&config);

    let long = "word ".repeat(300);
    let err = embedder
        .submit(request(&["fine", &long], Priority::Api))
        .expect_err("too long");
    match err {
        EmbedError::InputTooLong {
            index,
            tokens,
            max_tokens,
        } => {
            assert_eq!((index, max_tokens), (1, 256));
            assert_eq!(tokens, 302, "300 words + [CLS] + [SEP]");
        }
        other => panic!("{other}"),
    }

    let mut truncating = request(&[&long], Priority::Api);
    truncating.truncate = true;
    let embedded = embedder.embed(truncating).await.expect("truncated");
    assert_eq!(embedded.truncated, vec![0]);
    assert_eq!(embedded.tokens, vec![256]);

    let eleven: Vec<&str> = vec!["x"; 11];
    assert!(matches!(
        embedder.submit(request(&eleven, Priority::Api)),
        Err(EmbedError::RequestLargerThanQueue {
            inputs: 11,
            capacity: 10
        })
    ));

    let mut dims = request(&["x"], Priority::Api);
    dims.dimensions = Some(128);
    let err = embedder.submit(dims).expect_err("no matryoshka for MiniLM");
    assert!(err.to_string().contains("384"), "{err}");
}

#[tokio::test]
async fn queue_full_is_refused_while_the_backlog_waits() {
    let mut config = config();
    config.queue_capacity = 64;
    config.max_batch_inputs = 1;
    let embedder = load(&config);
    let backlog: Vec<String> = (0..64).map(|i| format!("backlog {i}")).collect();
    let _held = embedder
        .submit(EmbedRequest::new(backlog, InputKind::Document, Priority::Ingest))
        .expect("fills the queue");
    // One input per batch: draining 32 of the 64 takes 32 batches, far longer than submitting the next request.
    let err = embedder
        .submit(request(&["more"; 32], Priority::Query))
        .expect_err("full");
    assert!(matches!(err, EmbedError::QueueFull { capacity: 64 }), "{err}");
}

#[test]
fn a_tampered_model_file_is_named_with_both_hashes() {
    let copy = hearth_testkit::test_model_copy().expect("model copy");
    std::fs::write(copy.path().join("tokenizer.json"), b"{}").expect("tamper");
    let mut config = config();
    config.model_dir = copy.path().to_owned();
    let err = Embedder::load(&config, EmbedMetrics::default()).expect_err("must refuse");
    let message = err.to_string();
    assert!(message.contains("tokenizer.json"), "{message}");
    assert!(
        message.contains("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        "{message}"
    );
}

#[test]
fn a_missing_onnxruntime_is_a_clear_error() {
    let mut config = config();
    config.onnxruntime = Some("/nonexistent/libonnxruntime.so".into());
    // Another test in this process may have loaded onnxruntime already; nextest runs each test alone.
    match Embedder::load(&config, EmbedMetrics::default()) {
        Err(error) => assert!(
            error.to_string().contains("/nonexistent/libonnxruntime.so"),
            "{error}"
        ),
        Ok(_) => panic!("loaded without onnxruntime"),
    }
}
