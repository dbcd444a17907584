//! The real hearthd binary against the kit's real PostgreSQL and the real test model, over real HTTP.

use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::{Value, json};

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

/// The kit's wait for `/readyz` 200, with the body as JSON for these tests' field-by-field assertions.
async fn wait_ready(hearthd: &TestHearthd) -> Value {
    hearthd.serving("/readyz").await.body
}

#[tokio::test]
async fn readyz_reports_database_and_model_and_503_when_the_database_is_down() {
    let mut postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(HEARTHD.as_ref(), &database_url, &[]).expect("hearthd");

    let health = reqwest::get(format!("{}/healthz", hearthd.url))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    let ready = wait_ready(&hearthd).await;
    assert_eq!(ready["status"], "ready");
    assert!(
        ready["database"]["pgvector"]
            .as_str()
            .is_some_and(|v| v.starts_with("0.")),
        "{ready}"
    );
    assert_eq!(ready["model"]["dims"], 384);
    assert_eq!(ready["blobs"]["status"], "ready", "{ready}");

    // A blob store that cannot take a write makes hearthd not ready, saying so; it recovers when fixed.
    std::fs::remove_dir_all(&hearthd.blob_dir).expect("remove the blob directory");
    std::fs::write(&hearthd.blob_dir, b"not a directory").expect("a file in its place");
    let broken = reqwest::get(format!("{}/readyz", hearthd.url))
        .await
        .expect("readyz");
    assert_eq!(broken.status(), 503);
    let body: Value = broken.json().await.expect("json");
    assert_eq!(body["blobs"]["status"], "failed", "{body}");
    assert!(
        body["blobs"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["database"]["pgvector"], ready["database"]["pgvector"]);
    std::fs::remove_file(&hearthd.blob_dir).expect("remove the file");
    std::fs::create_dir(&hearthd.blob_dir).expect("the directory again");
    assert_eq!(wait_ready(&hearthd).await["blobs"]["status"], "ready");

    postgres.stop().expect("stop postgres");
    let down = reqwest::get(format!("{}/readyz", hearthd.url))
        .await
        .expect("readyz");
    assert_eq!(down.status(), 503);
    let body: Value = down.json().await.expect("json");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["model"]["status"], "ready");

    postgres.restart().expect("restart postgres");
    let back = wait_ready(&hearthd).await;
    assert_eq!(back["status"], "ready", "did not recover by itself");
}

#[tokio::test]
async fn oversized_headers_get_431_and_control_characters_400() {
    // /healthz needs neither the database nor the model.
    let hearthd =
        TestHearthd::start(HEARTHD.as_ref(), "postgres:///unused?host=/nonexistent", &[]).expect("hearthd");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/healthz", hearthd.url))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{}", hearthd.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fine = client
        .get(format!("{}/healthz", hearthd.url))
        .header("x-note", "a".repeat(7 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(fine.status(), 200);
    let big = client
        .get(format!("{}/healthz", hearthd.url))
        .header("x-note", "a".repeat(9 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(big.status(), 431);
    let body: Value = big.json().await.expect("json");
    assert_eq!(body["code"], "headers_too_large", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 8192")),
        "{body}"
    );

    // reqwest refuses to send a control character, so write the request by hand.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = hearthd.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hearth\r\nX-Note: a\x01b\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[test]
fn refuses_a_non_loopback_bind() {
    let output = Command::new(HEARTHD)
        .arg("serve")
        .env("HEARTH_LISTEN", "0.0.0.0:0")
        .output()
        .expect("hearthd runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
}

/// Polls `/readyz` until the model's status is `failed`; returns the body.
async fn wait_model_failed(hearthd: &TestHearthd) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = reqwest::get(format!("{}/readyz", hearthd.url))
            .await
            .expect("readyz");
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.expect("json");
        if body["model"]["status"] == "failed" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the model never failed: {body}\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A damaged model does not take the documents down with it: hearthd stays up, not ready, naming the file, and
/// keyword search keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_model_leaves_hearthd_up_but_not_ready_naming_the_file() {
    let postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    let model = hearth_testkit::test_model_copy().expect("model copy");
    std::fs::write(model.path().join("tokenizer.json"), b"{}").expect("tamper");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    let notifications = collect_notifications(socket);
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        &database_url,
        &[
            (
                "HEARTH_EMBEDDING__MODEL_DIR",
                model.path().to_str().expect("utf-8"),
            ),
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8")),
        ],
    )
    .expect("hearthd");

    let body = wait_model_failed(&hearthd).await;
    let error = body["model"]["error"].as_str().expect("error");
    assert!(
        error.contains("tokenizer.json") && error.contains("sha256"),
        "{body}"
    );
    assert_eq!(body["model"]["model"], "sentence-transformers/all-MiniLM-L6-v2");
    // systemd hears it started, degraded, and why (a restart would not help).
    let messages = wait_for_notifications(&notifications, 30, |m| m.iter().any(|m| m.contains("READY=1")));
    assert!(
        messages.iter().any(
            |m| m.contains("STATUS=degraded: the embedding model failed") && m.contains("tokenizer.json")
        ),
        "{messages:?}"
    );

    let client = reqwest::Client::new();
    let embed = client
        .post(format!("{}/v1/embeddings", hearthd.url))
        .json(&serde_json::json!({"input": "hello"}))
        .send()
        .await
        .expect("embeddings");
    assert_eq!(embed.status(), 503);
    let text = embed.text().await.expect("text");
    assert!(text.contains("failed to load"), "{text}");
    assert!(
        !text.contains("tokenizer.json"),
        "internal detail in an API answer: {text}"
    );

    // Documents and keyword search still work once the schema is migrated.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keyword = client
            .post(format!("{}/v1/search", hearthd.url))
            .json(&serde_json::json!({"query": "anything", "mode": "keyword"}))
            .send()
            .await
            .expect("search");
        if keyword.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keyword search never worked: {}",
            keyword.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upload = client
        .post(format!("{}/v1/documents", hearthd.url))
        .header("content-type", "text/plain")
        .body("kept safe while the model is broken")
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), 202, "uploads are still accepted and queued");
}

/// No silent fallback: asked for CUDA with an onnxruntime that has none (the CPU build the kit uses), hearthd
/// says so at once and does not embed on the CPU. The GPU path itself needs a machine with one.
#[tokio::test]
async fn cuda_without_a_cuda_onnxruntime_is_a_failed_model_saying_so() {
    let deps = hearth_testkit::Deps::load().expect("deps");
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        "postgres:///unused?host=/nonexistent",
        &[("HEARTH_EMBEDDING__EXECUTION_PROVIDER", "cuda")],
    )
    .expect("hearthd");
    let body = wait_model_failed(&hearthd).await;
    let error = body["model"]["error"].as_str().expect("error");
    assert!(error.contains("no CUDA execution provider"), "{body}");
    assert!(error.contains(&deps.ort_dylib.display().to_string()), "{body}");
}

#[test]
fn check_config_rejects_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hearth.toml");
    std::fs::write(&path, "[embedding]\nmodel_dri = \"/x\"\n").expect("write");
    let output = Command::new(HEARTHD)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("hearthd runs");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("model_dri"), "{log}");
}

/// Collects every systemd notification hearthd sends to `socket`, on a thread of its own so that the socket's
/// queue never fills up while the test does something else (a notifier must not block when it does, but then
/// messages would be lost to the test).
fn collect_notifications(
    socket: std::os::unix::net::UnixDatagram,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collected = std::sync::Arc::clone(&messages);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(size) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..size]).into_owned();
            collected.lock().expect("lock").push(message);
        }
    });
    messages
}

/// Waits until `done` holds for the notifications so far, or fails after `seconds`; returns a copy of them.
fn wait_for_notifications(
    messages: &std::sync::Mutex<Vec<String>>,
    seconds: u64,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let copy = messages.lock().expect("lock").clone();
        if done(&copy) {
            return copy;
        }
        assert!(Instant::now() < deadline, "notifications so far: {copy:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test model plus a large (sparse) file its manifest lists, so verifying it at load takes long enough to be
/// watched.
fn slow_loading_model(dir: &std::path::Path) -> std::path::PathBuf {
    let source = hearth_testkit::Deps::load().expect("deps").test_model_dir;
    let model = dir.join("model");
    std::fs::create_dir(&model).expect("model dir");
    let manifest_path = source.join(hearth_core::model::MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).expect("manifest");
    let mut manifest = hearth_core::model::ModelManifest::from_json(&manifest_path, &text).expect("parse");
    for file in &manifest.files {
        std::fs::copy(source.join(&file.path), model.join(&file.path)).expect("copy a model file");
    }
    let padding = model.join("padding.bin");
    std::fs::File::create(&padding)
        .and_then(|file| file.set_len(768 << 20))
        .expect("padding");
    manifest.files.push(hearth_core::model::ModelFile {
        path: "padding.bin".into(),
        sha256: hearth_core::digest::sha256_file(&padding).expect("hash"),
    });
    std::fs::write(
        model.join(hearth_core::model::MANIFEST_FILE),
        serde_json::to_string(&manifest).expect("json"),
    )
    .expect("write the manifest");
    model
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_is_reported_on_readyz_and_to_systemd_then_ready_watchdog_pings_and_stopping() {
    let mut postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    // Down at first, so startup has to wait for it after the model is in.
    postgres.stop().expect("stop postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let model = slow_loading_model(dir.path());
    let socket_path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let notifications = collect_notifications(socket);
    let mut hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        &database_url,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "400000"),
            ("HEARTH_EMBEDDING__MODEL_DIR", model.to_str().expect("utf-8 path")),
        ],
    )
    .expect("hearthd");
    let readyz = async || {
        let response = reqwest::get(format!("{}/readyz", hearthd.url))
            .await
            .expect("readyz");
        (response.status(), response.json::<Value>().await.expect("json"))
    };

    let (status, loading) = readyz().await;
    assert_eq!(status, 503);
    assert_eq!(loading["model"]["status"], "loading", "{loading}");
    assert_eq!(
        loading["model"]["model"],
        "sentence-transformers/all-MiniLM-L6-v2"
    );
    assert!(loading["model"]["elapsed_seconds"].is_u64(), "{loading}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readyz().await;
        assert_eq!(status, 503);
        if body["model"]["status"] == "loaded" {
            assert_eq!(body["model"]["waiting_for"], "the database", "{body}");
            assert_eq!(
                body["serving"],
                json!({ "embeddings": true, "documents": false, "keyword_search": false, "search": false }),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the model never loaded: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Embeddings need no database: the model serves while PostgreSQL is down.
    let client = reqwest::Client::new();
    let models = client
        .get(format!("{}/v1/models", hearthd.url))
        .send()
        .await
        .expect("models");
    assert_eq!(models.status(), 200);
    let embedded: Value = client
        .post(format!("{}/v1/embeddings", hearthd.url))
        .json(&json!({ "input": ["a lamp by the window"] }))
        .send()
        .await
        .expect("embeddings")
        .json()
        .await
        .expect("json");
    assert_eq!(
        embedded["data"][0]["embedding"].as_array().map(Vec::len),
        Some(384),
        "{embedded}"
    );
    let search = client
        .post(format!("{}/v1/search", hearthd.url))
        .json(&json!({ "query": "lamp" }))
        .send()
        .await
        .expect("search");
    assert_eq!(search.status(), 503, "search without a database");

    let has = |messages: &[String], line: &str| messages.iter().any(|m| m.lines().any(|l| l == line));
    let messages = wait_for_notifications(&notifications, 10, |m| {
        has(
            m,
            "STATUS=model sentence-transformers/all-MiniLM-L6-v2 loaded, serving embeddings; waiting for the \
             database",
        )
    });
    assert!(
        !has(&messages, "READY=1"),
        "ready without a database: {messages:?}"
    );
    // Waiting for the database extends systemd's start timeout, so a slow or unconfigured server is not a
    // restart loop.
    assert!(
        has(&messages, "EXTEND_TIMEOUT_USEC=30000000"),
        "no start timeout extension while waiting for the database: {messages:?}"
    );
    let first_status = messages
        .iter()
        .flat_map(|m| m.lines())
        .find(|line| line.starts_with("STATUS="))
        .expect("a STATUS= line");
    assert!(
        first_status.starts_with("STATUS=loading model sentence-transformers/all-MiniLM-L6-v2 ("),
        "{messages:?}"
    );

    postgres.restart().expect("restart postgres");
    let messages = wait_for_notifications(&notifications, 60, |m| has(m, "READY=1"));
    // READY=1 means ready: /readyz agrees at once, without polling.
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "READY=1 was sent before /readyz said ready: {body}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("READY=1\nSTATUS=serving on 127.0.0.1:")),
        "{messages:?}"
    );

    // Pings every WATCHDOG_USEC / 2 = 200 ms.
    let pings_before = messages.iter().filter(|m| *m == "WATCHDOG=1").count();
    wait_for_notifications(&notifications, 10, |m| {
        m.iter().filter(|m| *m == "WATCHDOG=1").count() >= pings_before + 3
    });

    assert!(hearthd.terminate(), "hearthd did not stop within 10 s of SIGTERM");
    let messages = wait_for_notifications(&notifications, 5, |m| {
        has(m, "STOPPING=1") && has(m, "STATUS=stopped")
    });
    let position = |line: &str| messages.iter().position(|m| m.lines().any(|l| l == line));
    assert!(
        position("STOPPING=1") < position("STATUS=stopped"),
        "{messages:?}"
    );
    assert!(
        hearthd.log_text().contains("hearthd stopped"),
        "{}",
        hearthd.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_request_times_out_and_requests_over_the_limit_are_shed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Neither limit needs the database or the model.
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        "postgres:///unused?host=/nonexistent",
        &[
            ("HEARTH_API__REQUEST_TIMEOUT_SECONDS", "1"),
            ("HEARTH_API__MAX_CONCURRENT_REQUESTS", "1"),
        ],
    )
    .expect("hearthd");
    let address = hearthd.url.trim_start_matches("http://");

    // A client that announces a body and stops sending it holds the only slot.
    let mut stalled = tokio::net::TcpStream::connect(address).await.expect("connect");
    stalled
        .write_all(
            b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"query\":",
        )
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let shed = reqwest::get(format!("{}/healthz", hearthd.url))
        .await
        .expect("healthz");
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body: Value = shed.json().await.expect("json");
    assert_eq!(body["code"], "overloaded", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("api.max_concurrent_requests")),
        "{body}"
    );

    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stalled.read_to_string(&mut answer))
        .await
        .expect("the stalled request was never answered")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    assert!(answer.contains("api.request_timeout_seconds"), "{answer}");

    // The slot is free again.
    let health = reqwest::get(format!("{}/healthz", hearthd.url))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_name_the_build_the_model_files_the_space_and_the_limits() {
    let postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        &database_url,
        &[("HEARTH_API__MAX_CONCURRENT_REQUESTS", "17")],
    )
    .expect("hearthd");
    wait_ready(&hearthd).await;
    let response = reqwest::get(format!("{}/v1/capabilities", hearthd.url))
        .await
        .expect("capabilities");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");

    assert_eq!(body["hearth"]["version"], env!("CARGO_PKG_VERSION"));
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(body["hearth"]["revision"], head.as_str(), "{body}"),
        None => assert!(body["hearth"]["revision"].is_string(), "{body}"),
    }
    let on_nixos = std::fs::read_link("/run/current-system").is_ok();
    assert_eq!(body["system"]["nixos_generation"].is_string(), on_nixos, "{body}");

    let model = &body["model"];
    assert_eq!(model["status"], "ready");
    assert_eq!(model["id"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(model["dims"], 384);
    assert_eq!(model["max_tokens"], 256);
    assert_eq!(model["quantization"], "dynamic-int8");
    // Every file with the sha256 that was verified, the same as the manifest on disk says.
    let model_dir = hearth_testkit::Deps::load().expect("deps").test_model_dir;
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    assert_eq!(model["files"], manifest["files"]);
    assert_eq!(model["files"].as_array().map(Vec::len), Some(5));

    assert_eq!(
        body["embedding_space"]["active"]["model_id"],
        "sentence-transformers/all-MiniLM-L6-v2"
    );
    assert_eq!(body["embedding_space"]["active"]["dims"], 384);
    assert_eq!(body["embedding_space"]["target"], Value::Null, "not switching");
    let types = body["ingest"]["content_types"].as_array().expect("types");
    assert!(types.contains(&"application/pdf".into()), "{body}");
    assert_eq!(body["ingest"]["chunking"]["max_tokens"], 256);
    assert_eq!(body["search"]["max_k"], 100);
    assert_eq!(body["limits"]["max_concurrent_requests"], 17);
    assert_eq!(body["limits"]["max_body_bytes"], 16 * 1024 * 1024);
}

/// The Nix package sets the revision in hearthd's wrapper rather than compiling it in (a new commit then does not
/// rebuild the workspace): that one is what hearthd reports.
#[tokio::test]
async fn a_revision_set_at_run_time_is_the_one_reported() {
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        "postgres:///unused?host=/nonexistent",
        &[(
            "HEARTH_BUILD_REVISION",
            "0123456789abcdef0123456789abcdef01234567",
        )],
    )
    .expect("hearthd");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body: Value = loop {
        if let Ok(response) = reqwest::get(format!("{}/v1/capabilities", hearthd.url)).await {
            break response.json().await.expect("json");
        }
        assert!(
            Instant::now() < deadline,
            "hearthd never answered:\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        body["hearth"]["revision"], "0123456789abcdef0123456789abcdef01234567",
        "{body}"
    );
    let metrics = reqwest::get(format!("{}/metrics", hearthd.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("revision=\"0123456789abcdef0123456789abcdef01234567\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let mut hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        "postgres:///unused?host=/nonexistent",
        &[("HEARTH_LOG_FORMAT", "json")],
    )
    .expect("hearthd");
    let health = reqwest::get(format!("{}/healthz", hearthd.url))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert!(hearthd.terminate(), "hearthd did not stop");
    let log = hearthd.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{log}"
    );
    let request = lines
        .iter()
        .find(|l| l["message"] == "request")
        .unwrap_or_else(|| panic!("no request line: {log}"));
    assert_eq!(request["route"], "/healthz");
    assert_eq!(request["status"], 200);
    assert_eq!(request["identity"], "localhost");
    assert!(request["duration_ms"].is_f64(), "{request}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notify_socket_nobody_reads_does_not_stall_hearthd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify");
    // Bound and never read: its queue fills after a few watchdog pings.
    let _socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        "postgres:///unused?host=/nonexistent",
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "20000"),
        ],
    )
    .expect("hearthd");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for _ in 0..20 {
        let health = client
            .get(format!("{}/healthz", hearthd.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("hearthd stalled: {e}\n{}", hearthd.log_text()));
        assert_eq!(health.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own_that_serves_nothing_else() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let hearthd = TestHearthd::start(
        HEARTHD.as_ref(),
        "postgres:///unused?host=/nonexistent",
        &[("HEARTH_METRICS__LISTEN", &address)],
    )
    .expect("hearthd");
    let metrics = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.expect("text").contains("hearth_build_info"));
    let api = reqwest::get(format!("http://{address}/healthz"))
        .await
        .expect("healthz on the metrics listener");
    assert_eq!(api.status(), 404, "the metrics listener serves the API");
    // The API listener keeps /metrics too.
    let own = reqwest::get(format!("{}/metrics", hearthd.url))
        .await
        .expect("metrics");
    assert_eq!(own.status(), 200);

    // A metrics address on the LAN falls under the bind policy like `listen`.
    let refused = Command::new(HEARTHD)
        .arg("check-config")
        .env("HEARTH_METRICS__LISTEN", "0.0.0.0:9100")
        .output()
        .expect("check-config");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("0.0.0.0:9100")
            || String::from_utf8_lossy(&refused.stdout).contains("0.0.0.0:9100"),
        "{refused:?}"
    );
}

/// The server runs with glibc's malloc tunables (it re-executes itself once with them), keeps its pid while doing
/// so, and leaves an operator's own malloc tunables alone.
#[tokio::test]
async fn the_server_runs_with_its_malloc_tunables_unless_the_operator_set_their_own() {
    // The process's environment as the kernel holds it. glibc's loader cuts GLIBC_TUNABLES into its parts in
    // place, so the parts are looked for one by one.
    let environ = |pid: u32| -> String {
        let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        String::from_utf8_lossy(&raw).replace('\0', "\n")
    };
    let ours = ["glibc.malloc.mmap_threshold=131072", "glibc.malloc.arena_max=2"];
    for (given, present, absent) in [
        (None, &ours[..], &[][..]),
        (
            Some("glibc.rtld.optional_static_tls=1024"),
            &["glibc.rtld.optional_static_tls=1024", ours[0], ours[1]][..],
            &[][..],
        ),
        (
            Some("glibc.malloc.arena_max=4"),
            &["glibc.malloc.arena_max=4"][..],
            &ours[..],
        ),
    ] {
        let extra: Vec<(&str, &str)> = given.map(|value| ("GLIBC_TUNABLES", value)).into_iter().collect();
        let hearthd = TestHearthd::start(HEARTHD.as_ref(), "postgres:///unused?host=/nonexistent", &extra)
            .expect("hearthd");
        // TestHearthd::start returned once /healthz answered: the pid it started is the one serving.
        let environment = environ(hearthd.pid());
        for tunable in present {
            assert!(
                environment.contains(tunable),
                "given {given:?}: {tunable} missing"
            );
        }
        for tunable in absent {
            assert!(
                !environment.contains(tunable),
                "given {given:?}: {tunable} was added"
            );
        }
        let health = reqwest::get(format!("{}/healthz", hearthd.url))
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
    }
}
