//! Ingest and search end to end: the real hearthd, PostgreSQL + pgvector, the real model, over real HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use hearth_api::ErrorCode;
use hearth_testkit::{TestHearthd, TestPostgres};

mod common;
use reqwest::StatusCode;
use serde_json::{Value, json};

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

struct Appliance {
    hearthd: TestHearthd,
    http: reqwest::Client,
    // Dropped after hearthd.
    _postgres: TestPostgres,
}

impl Appliance {
    fn start(extra: &[(&str, &str)]) -> Self {
        let postgres = TestPostgres::start().expect("postgres");
        let database = postgres.create_database().expect("database");
        let hearthd = TestHearthd::start(Path::new(HEARTHD), &database, extra).expect("hearthd");
        Self {
            hearthd,
            http: reqwest::Client::new(),
            _postgres: postgres,
        }
    }

    /// Waits for /readyz: schema migrated and model loaded.
    async fn ready(self) -> Self {
        self.hearthd.ready().await;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hearthd.url)
    }

    async fn upload_raw(&self, body: &[u8], content_type: &str, query: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("/v1/documents{query}")))
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("upload");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("get");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn search(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v1/search"))
            .json(&body)
            .send()
            .await
            .expect("search");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    /// Waits until the document leaves pending/processing; returns its final state.
    async fn settled(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (status, document) = self.get(&format!("/v1/documents/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{document}");
            if document["status"] == "ready" || document["status"] == "failed" {
                return document;
            }
            assert!(
                Instant::now() < deadline,
                "never settled: {document}\n{}",
                self.hearthd.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn id(body: &Value) -> String {
    body["id"].as_str().expect("an id").to_owned()
}

fn titles(hits: &Value) -> Vec<String> {
    hits["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const BREAD: &str = "# Baking bread\n\nKnead the dough for ten minutes, let it rise for an hour, then bake the loaf \
                     at 220 degrees until the crust is golden.\n\n## Storing\n\nKeep the loaf in a linen bag.";
const GARAGE: &str = "Garage is a lightweight object store that speaks the S3 protocol. It replicates data across \
                      nodes and survives the loss of a machine.";

#[tokio::test(flavor = "multi_thread")]
async fn upload_three_ways_then_search_read_and_delete() {
    let hub = Appliance::start(&[]).ready().await;
    let (status, bread) = hub
        .upload_raw(
            BREAD.as_bytes(),
            "text/markdown",
            "?title=Bread&metadata=%7B%22kind%22%3A%22recipe%22%7D",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{bread}");
    assert_eq!(bread["outcome"], "created");

    let json_upload = hub
        .http
        .post(hub.url("/v1/documents"))
        .json(&json!({ "text": GARAGE, "title": "Garage", "metadata": { "kind": "software" } }))
        .send()
        .await
        .expect("json upload");
    assert_eq!(json_upload.status(), StatusCode::ACCEPTED);
    let garage: Value = json_upload.json().await.expect("json");

    let html = "<html><head><style>.x { color: red }</style><script>var secretScript = 1;</script></head>\
                <body><h1>Sourdough starter</h1><p>Feed the starter flour and water every day.</p></body></html>";
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(html.as_bytes().to_vec())
                .file_name("starter.html")
                .mime_str("text/html")
                .expect("mime"),
        )
        .text("metadata", r#"{"kind": "recipe"}"#);
    let multipart = hub
        .http
        .post(hub.url("/v1/documents"))
        .multipart(form)
        .send()
        .await
        .expect("multipart upload");
    assert_eq!(multipart.status(), StatusCode::ACCEPTED);
    let starter: Value = multipart.json().await.expect("json");

    for document in [&bread, &garage, &starter] {
        let settled = hub.settled(&id(document)).await;
        assert_eq!(settled["status"], "ready", "{settled}");
        assert!(settled["chunk_count"].as_i64().expect("count") >= 1, "{settled}");
        assert_eq!(settled["job"], Value::Null);
    }
    assert_eq!(hub.settled(&id(&starter)).await["title"], "starter.html");

    // By meaning: no word in common with the bread document's key terms.
    let (status, hits) = hub
        .search(json!({ "query": "how long should dough rest before the oven", "mode": "vector" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert_eq!(titles(&hits)[0], "Bread", "{hits}");
    assert_eq!(hits["hits"][0]["retrievers"], json!(["vector"]));
    let span = &hits["hits"][0]["span"];
    let text = hits["hits"][0]["text"].as_str().expect("text");
    let chars: Vec<char> = BREAD.chars().collect();
    let (start, end) = (
        span[0].as_u64().expect("start") as usize,
        span[1].as_u64().expect("end") as usize,
    );
    assert_eq!(
        chars[start..end].iter().collect::<String>(),
        text,
        "the span points at the chunk"
    );

    // By words.
    let (_, hits) = hub
        .search(json!({ "query": "S3 protocol", "mode": "keyword" }))
        .await;
    assert_eq!(titles(&hits), ["Garage"], "{hits}");
    // Scripts and styles are not text.
    let (_, hits) = hub
        .search(json!({ "query": "secretScript", "mode": "keyword" }))
        .await;
    assert_eq!(titles(&hits), Vec::<String>::new(), "{hits}");
    // Both, fused; and filtered by metadata.
    let (_, hits) = hub.search(json!({ "query": "bake the loaf", "k": 3 })).await;
    assert_eq!(titles(&hits)[0], "Bread", "{hits}");
    assert_eq!(
        hits["hits"][0]["retrievers"],
        json!(["vector", "keyword"]),
        "{hits}"
    );
    let (_, hits) = hub
        .search(json!({ "query": "storing data safely", "filter": { "metadata": { "kind": "recipe" } } }))
        .await;
    assert!(titles(&hits).iter().all(|t| t != "Garage"), "{hits}");
    let (_, hits) = hub
        .search(json!({ "query": "storing", "mode": "vector", "filter": { "document_ids": [id(&garage)] } }))
        .await;
    assert_eq!(titles(&hits), ["Garage"], "{hits}");

    // The original, byte for byte, with its type.
    let content = hub
        .http
        .get(hub.url(&format!("/v1/documents/{}/content", id(&bread))))
        .send()
        .await
        .expect("content");
    assert_eq!(content.headers()["content-type"], "text/markdown; charset=utf-8");
    assert_eq!(content.bytes().await.expect("bytes").as_ref(), BREAD.as_bytes());

    // Listing pages through everything once.
    let (_, page) = hub.get("/v1/documents?limit=2").await;
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = hub.get(&format!("/v1/documents?limit=2&cursor={cursor}")).await;
    assert_eq!(page["documents"].as_array().expect("docs").len(), 2);
    assert_eq!(rest["documents"].as_array().expect("docs").len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, recipes) = hub
        .get("/v1/documents?metadata=%7B%22kind%22%3A%22recipe%22%7D")
        .await;
    assert_eq!(recipes["documents"].as_array().expect("docs").len(), 2);

    // Delete: rows, vectors and blob; twice is fine.
    let sha = bread["content_sha256"].as_str().expect("sha").to_owned();
    let blob = hub.hearthd.blob_dir.join("sha256").join(&sha[..2]).join(&sha);
    assert!(blob.is_file(), "{}", blob.display());
    for expected in [true, false] {
        let deleted: Value = hub
            .http
            .delete(hub.url(&format!("/v1/documents/{}", id(&bread))))
            .send()
            .await
            .expect("delete")
            .json()
            .await
            .expect("json");
        assert_eq!(deleted["deleted"], expected);
    }
    assert!(!blob.exists(), "the original is still stored");
    assert_eq!(
        hub.get(&format!("/v1/documents/{}", id(&bread))).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, hits) = hub
        .search(json!({ "query": "bake the loaf", "mode": "keyword" }))
        .await;
    assert_eq!(titles(&hits), Vec::<String>::new(), "{hits}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_bytes_are_one_document_and_an_external_id_gets_versions() {
    let hub = Appliance::start(&[]).ready().await;
    let (first_status, first) = hub.upload_raw(GARAGE.as_bytes(), "text/plain", "").await;
    let (again_status, again) = hub.upload_raw(GARAGE.as_bytes(), "text/plain", "").await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(again_status, StatusCode::OK, "{again}");
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(id(&first), id(&again));

    let (_, v1) = hub
        .upload_raw(
            b"The meeting is on Tuesday in room 4.",
            "text/plain",
            "?external_id=notes",
        )
        .await;
    assert_eq!(hub.settled(&id(&v1)).await["status"], "ready");
    let (status, v2) = hub
        .upload_raw(
            b"The meeting moved to Friday in the library.",
            "text/plain",
            "?external_id=notes",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(v2["outcome"], "new_version");
    assert_eq!(id(&v1), id(&v2));
    assert_eq!(v2["version"], 2);
    assert_eq!(hub.settled(&id(&v2)).await["status"], "ready");
    let (_, old) = hub.search(json!({ "query": "Tuesday", "mode": "keyword" })).await;
    assert_eq!(old["hits"].as_array().expect("hits").len(), 0, "{old}");
    let (_, new) = hub
        .search(json!({ "query": "Friday library", "mode": "keyword" }))
        .await;
    assert_eq!(new["hits"].as_array().expect("hits").len(), 1, "{new}");
    let (_, same) = hub
        .upload_raw(
            b"The meeting moved to Friday in the library.",
            "text/plain",
            "?external_id=notes",
        )
        .await;
    assert_eq!(same["outcome"], "unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_status_that_says_what_to_change() {
    let hub = Appliance::start(&[("HEARTH_INGEST__MAX_DOCUMENT_BYTES", "1000")])
        .ready()
        .await;
    let cases: [(&[u8], &str, &str, StatusCode, &str); 6] = [
        (
            b"\x89PNG",
            "image/png",
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain, text/markdown, text/html, application/pdf",
        ),
        (
            &[b'a'; 1001],
            "text/plain",
            "",
            StatusCode::PAYLOAD_TOO_LARGE,
            "1000 bytes",
        ),
        (
            b"caf\xe9",
            "text/plain",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not valid UTF-8",
        ),
        (b"", "text/plain", "", StatusCode::UNPROCESSABLE_ENTITY, "empty"),
        (
            b"hello",
            "text/plain",
            "?metadata=%5B1%5D",
            StatusCode::BAD_REQUEST,
            "JSON object",
        ),
        (
            b"hello",
            "text/plain; charset=latin1",
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UTF-8",
        ),
    ];
    for (body, content_type, query, status, hint) in cases {
        let (got, answer) = hub.upload_raw(body, content_type, query).await;
        assert_eq!(got, status, "{content_type} {query}: {answer}");
        assert!(
            answer["message"].as_str().expect("message").contains(hint),
            "{answer}"
        );
        assert!(answer["code"].is_string(), "{answer}");
    }
    for (body, hint) in [
        (json!({ "query": "" }), "query is empty"),
        (json!({ "query": "x", "k": 0 }), "k must be between"),
        (json!({ "query": "x", "mode": "fuzzy" }), "hybrid|vector|keyword"),
    ] {
        let (status, answer) = hub.search(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["message"].as_str().expect("message").contains(hint),
            "{answer}"
        );
    }
    let (status, _) = hub
        .get("/v1/documents/0190a0a0-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A PDF that cannot be parsed is accepted (it might have been fine) and then fails with the reason.
    let (status, broken) = hub
        .upload_raw(b"%PDF-1.7 this is not really a pdf", "application/pdf", "")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{broken}");
    let settled = hub.settled(&id(&broken)).await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert!(
        settled["error"].as_str().expect("error").contains("PDF"),
        "{settled}"
    );
    // Uploading the same bytes again is the retry: a fresh set of attempts (it fails the same way here).
    let (status, again) = hub
        .upload_raw(b"%PDF-1.7 this is not really a pdf", "application/pdf", "")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["outcome"], "retried");
    assert_eq!(again["status"], "pending");
    assert_eq!(hub.settled(&id(&again)).await["status"], "failed");

    // A list filter PostgreSQL cannot take is the client's to fix, not a 500.
    let api = hub.hearthd.api();
    for (query, code) in [
        ("content_sha256=%00", ErrorCode::InvalidRequest),
        ("content_sha256=ABC", ErrorCode::InvalidRequest),
        ("metadata=%7B%22a%22%3A%22%5Cu0000%22%7D", ErrorCode::InvalidText),
        ("metadata=%5B1%5D", ErrorCode::InvalidMetadata),
    ] {
        let status = if code == ErrorCode::InvalidText { 422 } else { 400 };
        api.get(&format!("/v1/documents?{query}"))
            .await
            .assert_error(status, code);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdf_text_layer_is_searchable() {
    let hub = Appliance::start(&[]).ready().await;
    let pdf = common::pdf_with_text("Lighthouses guide the ships home at night");
    let (status, uploaded) = hub.upload_raw(&pdf, "application/pdf", "?title=Lighthouse").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{uploaded}");
    let settled = hub.settled(&id(&uploaded)).await;
    assert_eq!(settled["status"], "ready", "{settled}");
    let (_, hits) = hub
        .search(json!({ "query": "lighthouses ships", "mode": "keyword" }))
        .await;
    assert_eq!(titles(&hits), ["Lighthouse"], "{hits}");
}

#[tokio::test(flavor = "multi_thread")]
async fn originals_can_live_in_garage() {
    use object_store::ObjectStoreExt as _;
    let garage = hearth_testkit::TestGarage::start().expect("garage");
    let credentials = tempfile::tempdir().expect("tempdir");
    for (name, value) in [
        ("s3-access-key-id", &garage.access_key_id),
        ("s3-secret-key", &garage.secret_access_key),
    ] {
        std::fs::write(credentials.path().join(name), value).expect("write");
    }
    let hub = Appliance::start(&[
        ("HEARTH_BLOBS__BACKEND", "s3"),
        ("HEARTH_BLOBS__ENDPOINT", &garage.s3_endpoint),
        ("HEARTH_BLOBS__BUCKET", &garage.bucket),
        (
            "CREDENTIALS_DIRECTORY",
            credentials.path().to_str().expect("utf-8"),
        ),
    ])
    .ready()
    .await;
    let (status, uploaded) = hub
        .upload_raw(GARAGE.as_bytes(), "text/plain", "?title=Garage")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{uploaded}");
    assert_eq!(hub.settled(&id(&uploaded)).await["status"], "ready");

    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&garage.s3_endpoint)
        .with_region(&garage.region)
        .with_bucket_name(&garage.bucket)
        .with_access_key_id(&garage.access_key_id)
        .with_secret_access_key(&garage.secret_access_key)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("s3 client");
    let sha = uploaded["content_sha256"].as_str().expect("sha").to_owned();
    let key = object_store::path::Path::from(format!("sha256/{}/{sha}", &sha[..2]));
    let stored = bucket
        .get(&key)
        .await
        .expect("the original is in Garage")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(stored.as_ref(), GARAGE.as_bytes());

    let deleted = hub
        .http
        .delete(hub.url(&format!("/v1/documents/{}", id(&uploaded))))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(
        matches!(bucket.head(&key).await, Err(object_store::Error::NotFound { .. })),
        "the original is still in Garage"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_search_sees_the_old_version_or_the_new_one_never_a_mix() {
    let hub = Appliance::start(&[
        ("HEARTH_INGEST__CHUNKING__MAX_TOKENS", "16"),
        ("HEARTH_INGEST__CHUNKING__OVERLAP_TOKENS", "0"),
        ("HEARTH_EMBEDDING__MAX_BATCH_INPUTS", "2"),
    ])
    .ready()
    .await;
    let version = |word: &str| -> String {
        (0..60)
            .map(|i| format!("Paragraph {i} mentions the codeword {word} once.\n\n"))
            .collect()
    };
    let (_, v1) = hub
        .upload_raw(version("alpha").as_bytes(), "text/plain", "?external_id=mix")
        .await;
    assert_eq!(hub.settled(&id(&v1)).await["status"], "ready");
    let (_, v2) = hub
        .upload_raw(version("bravo").as_bytes(), "text/plain", "?external_id=mix")
        .await;
    assert_eq!(v2["outcome"], "new_version");

    let (mut old_seen, mut new_seen) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, hits) = hub
            .search(json!({ "query": "alpha OR bravo", "mode": "keyword", "k": 100 }))
            .await;
        assert_eq!(status, StatusCode::OK, "{hits}");
        let texts: Vec<&str> = hits["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|hit| hit["text"].as_str().expect("text"))
            .collect();
        let alpha = texts.iter().filter(|t| t.contains("alpha")).count();
        let bravo = texts.iter().filter(|t| t.contains("bravo")).count();
        assert!(
            alpha == 0 || bravo == 0,
            "a search saw both versions: {alpha} old and {bravo} new chunks"
        );
        assert!(alpha + bravo > 0, "a search saw neither version");
        if bravo > 0 {
            new_seen += 1;
            break;
        }
        old_seen += 1;
        assert!(
            Instant::now() < deadline,
            "the new version never became searchable"
        );
    }
    assert!(old_seen > 0, "no search ran while the new version was processed");
    assert_eq!(new_seen, 1);
    assert_eq!(hub.settled(&id(&v2)).await["version"], 2);
}

/// Parses OpenMetrics text with the reference parser (Python `prometheus_client`) and returns every sample as
/// `{name, labels, value}`; a parse error fails the test.
fn parse_openmetrics(text: &str) -> Vec<Value> {
    use std::io::Write;
    let python = hearth_testkit::test_python().expect("run `cargo xtask deps`");
    let script = "import json, sys\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                  samples = [{'name': s.name, 'labels': s.labels, 'value': s.value}\n\
                             for family in text_string_to_metric_families(sys.stdin.read())\n\
                             for s in family.samples]\n\
                  print(json.dumps(samples))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("python");
    assert!(
        output.status.success(),
        "not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

/// The value of the one sample named `name` whose labels include `labels`.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} matches {matching:?}");
    matching.first().copied()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_carry_every_series_after_real_traffic() {
    let hearth = Appliance::start(&[]).ready().await;
    let (status, created) = hearth
        .upload_raw(BREAD.as_bytes(), "text/markdown", "?title=bread")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = id(&created);
    let document = hearth.settled(&id).await;
    assert_eq!(document["status"], "ready", "{document}");
    for mode in ["hybrid", "vector", "keyword"] {
        let (status, hits) = hearth
            .search(json!({"query": "kneading dough", "mode": mode}))
            .await;
        assert_eq!(status, StatusCode::OK, "{hits}");
    }
    assert_eq!(hearth.get("/no/such/route").await.0, StatusCode::NOT_FOUND);

    let response = hearth
        .http
        .get(hearth.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    let samples = parse_openmetrics(&text);
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };

    // HTTP, by route pattern: the document's id is not a label value.
    let route = "/v1/documents/{id}";
    assert!(
        value(
            "hearth_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", "200")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            "hearth_http_requests_total",
            &[("method", "POST"), ("route", "/v1/search"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        value(
            "hearth_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(!text.contains(&id), "a document id became a label:\n{text}");
    assert_eq!(
        value(
            "hearth_http_request_duration_seconds_count",
            &[("route", "/v1/search")]
        ),
        3.0
    );

    for mode in ["hybrid", "vector", "keyword"] {
        assert_eq!(
            value("hearth_search_duration_seconds_count", &[("mode", mode)]),
            1.0,
            "{mode}"
        );
    }
    assert_eq!(
        value(
            "hearth_ingest_jobs_total",
            &[("kind", "ingest"), ("outcome", "done")]
        ),
        1.0
    );
    assert_eq!(
        value("hearth_ingest_job_duration_seconds_count", &[("kind", "ingest")]),
        1.0
    );
    assert_eq!(
        value("hearth_ingest_chunks_total", &[]),
        document["chunk_count"].as_f64().expect("chunk count")
    );
    assert_eq!(value("hearth_documents", &[("status", "ready")]), 1.0);
    assert_eq!(value("hearth_documents", &[("status", "failed")]), 0.0);
    assert!(value("hearth_db_pool_connections", &[("state", "idle")]) >= 0.0);
    assert!(value("hearth_db_pool_connections", &[("state", "in_use")]) >= 0.0);
    assert_eq!(value("hearth_db_pool_max_connections", &[]), 10.0);
    assert_eq!(
        value("hearth_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    // The embedder's own series are there too, with the searches' queries counted.
    assert!(value("hearth_embed_inputs_total", &[("class", "query")]) >= 2.0);
    assert!(value("hearth_embed_inference_seconds_count", &[]) >= 1.0);
}
