//! `/v1/embeddings` and `/v1/models` over real HTTP, with the real model.

use base64::Engine as _;
use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::{Value, json};

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");
const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

struct Server {
    hearthd: TestHearthd,
    _postgres: TestPostgres,
    client: reqwest::Client,
}

impl Server {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let postgres = TestPostgres::start().expect("postgres");
        let database_url = postgres.create_database().expect("database");
        let hearthd = TestHearthd::start(HEARTHD.as_ref(), &database_url, extra).expect("hearthd");
        let server = Self {
            hearthd,
            _postgres: postgres,
            client: reqwest::Client::new(),
        };
        server.hearthd.serving("/v1/models").await;
        server
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.hearthd.url))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn embed(&self, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/embeddings", self.hearthd.url))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }
}

fn vector(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeds_strings_and_batches_in_float_and_base64() {
    let server = Server::start(&[]).await;

    let (status, one) = server
        .embed(json!({ "input": "The cat sat on the mat.", "model": MODEL }))
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], MODEL);
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["index"], 0);
    let single = vector(&one["data"][0]["embedding"]);
    assert_eq!(single.len(), 384);
    assert!(
        one["usage"]["prompt_tokens"].as_u64().is_some_and(|t| t > 2),
        "{one}"
    );
    assert_eq!(one["usage"]["prompt_tokens"], one["usage"]["total_tokens"]);

    let texts = [
        "The cat sat on the mat.",
        "A dog barked at the mailman.",
        "Stocks fell sharply on Monday.",
    ];
    let (status, floats) = server.embed(json!({ "input": texts, "model": MODEL })).await;
    assert_eq!(status, 200, "{floats}");
    let (status, encoded) = server
        .embed(json!({ "input": texts, "model": MODEL, "encoding_format": "base64" }))
        .await;
    assert_eq!(status, 200, "{encoded}");
    for i in 0..texts.len() {
        assert_eq!(floats["data"][i]["index"], i);
        let float = vector(&floats["data"][i]["embedding"]);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded["data"][i]["embedding"].as_str().expect("base64 string"))
            .expect("valid base64");
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(decoded, float, "base64 and float encodings of input {i} differ");
    }
    // The same sentence alone and in a batch: the int8 model quantizes activations per batch, so close, not equal.
    let batched = vector(&floats["data"][0]["embedding"]);
    assert!(dot(&single, &batched) > 0.99, "{}", dot(&single, &batched));

    let (status, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], MODEL);
}

#[tokio::test]
async fn bad_requests_get_openai_errors_that_say_what_to_change() {
    let server = Server::start(&[
        ("HEARTH_API__MAX_INPUTS_PER_REQUEST", "4"),
        ("HEARTH_API__MAX_BODY_BYTES", "4096"),
    ])
    .await;
    let long = "word ".repeat(400);

    let cases = [
        (
            json!({ "input": long, "model": MODEL }),
            400,
            "input_too_long",
            "256",
        ),
        (
            json!({ "input": "hi", "model": "gpt-4" }),
            404,
            "model_not_found",
            "gpt-4",
        ),
        (
            json!({ "input": ["a", "b", "c", "d", "e"] }),
            400,
            "too_many_inputs",
            "at most 4",
        ),
        (
            json!({ "input": "hi", "dimensions": 128 }),
            400,
            "dimensions_not_supported",
            "384",
        ),
        (
            json!({ "input": [1, 2, 3] }),
            400,
            "invalid_request",
            "token arrays",
        ),
        (
            json!({ "input": ["ok", ""] }),
            400,
            "invalid_input",
            "input 1 is empty",
        ),
        (json!({ "model": MODEL }), 400, "invalid_request", "input"),
        (
            json!({ "input": "x".repeat(5000) }),
            413,
            "payload_too_large",
            "4096",
        ),
    ];
    for (body, status, code, needle) in cases {
        let (got, response) = server.embed(body.clone()).await;
        assert_eq!(got, status, "{body} -> {response}");
        let error = &response["error"];
        assert_eq!(error["code"], code, "{response}");
        assert!(error["type"].is_string(), "{response}");
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }

    let (status, response) = server.embed(json!({ "input": long, "truncate": true })).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["truncated"], json!([0]));
    assert_eq!(response["usage"]["prompt_tokens"], 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    // One input per batch and room for four waiting: concurrent four-input requests must overflow.
    let server = Server::start(&[
        ("HEARTH_EMBEDDING__QUEUE_CAPACITY", "4"),
        ("HEARTH_API__MAX_INPUTS_PER_REQUEST", "4"),
        ("HEARTH_EMBEDDING__MAX_BATCH_INPUTS", "1"),
    ])
    .await;
    // Long inputs make each one-input batch take milliseconds, so the requests overlap in the queue.
    let long = "many words in a long sentence ".repeat(40);
    let body = json!({ "input": [long, long, long, long] });
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let client = server.client.clone();
            let url = format!("{}/v1/embeddings", server.hearthd.url);
            let body = body.clone();
            tokio::spawn(async move { client.post(url).json(&body).send().await.expect("POST") })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for request in requests {
        let response = request.await.expect("task");
        match response.status().as_u16() {
            200 => served += 1,
            429 => {
                refused += 1;
                let retry_after = response.headers().get("retry-after").cloned();
                assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
                let body: Value = response.json().await.expect("json");
                assert_eq!(body["error"]["code"], "queue_full", "{body}");
                assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "no request was refused with 429");
    assert!(served > 0, "every request was refused");

    // Refusals leave the server healthy.
    let (status, _) = server.embed(json!({ "input": "still here" })).await;
    assert_eq!(status, 200);
    let metrics = server
        .client
        .get(format!("{}/metrics", server.hearthd.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("hearth_embed_rejected_total{reason=\"queue_full\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("hearth_embed_batch_inputs_bucket"), "{metrics}");
    assert!(
        metrics.contains("hearth_embed_queue_wait_seconds_count{class=\"api\"}"),
        "{metrics}"
    );
}
