//! The real hearthd binary against the kit's real PostgreSQL and the real test model, over real HTTP.

use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::Value;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

async fn wait_ready(hearthd: &TestHearthd) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = reqwest::get(format!("{}/readyz", hearthd.url))
            .await
            .expect("readyz");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        if status == 200 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {body}\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

#[test]
fn a_broken_model_stops_hearthd_naming_the_file() {
    let model = hearth_testkit::test_model_copy().expect("model copy");
    std::fs::write(model.path().join("tokenizer.json"), b"{}").expect("tamper");
    let output = Command::new(HEARTHD)
        .arg("serve")
        .env("HEARTH_LISTEN", "127.0.0.1:0")
        .env("HEARTH_EMBEDDING__MODEL_DIR", model.path())
        .env("HEARTH_BLOBS__PATH", model.path().join("blobs"))
        .output()
        .expect("hearthd runs");
    assert!(
        !output.status.success(),
        "hearthd kept running with a tampered model"
    );
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("tokenizer.json") && log.contains("sha256"), "{log}");
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
