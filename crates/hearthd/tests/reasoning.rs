//! Reasoning against a real OpenAI-compatible server: llama.cpp's (llama-cpp-python), with a tiny random-weight
//! model. Its text is noise; the protocol, streaming, keys, errors and timeouts are real, and the server logs every
//! request, so the tests can prove what hearth sent.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_api::ErrorCode;
use hearth_testkit::{LLAMA_MODEL, TestHearthd, TestLlama, TestPostgres};
use serde_json::{Value, json};

mod common;

const PRIVATE_MARKER: &str = "zanzibarquokka";

struct Rig {
    postgres: TestPostgres,
    database_url: String,
    hearthd: TestHearthd,
    llama: TestLlama,
    keys: tempfile::TempDir,
    /// The bearer token, when loopback is not trusted.
    token: Option<String>,
}

/// A 32-byte key file, 0400, as first boot mints it.
fn key_file(dir: &std::path::Path, name: &str, byte: u8) -> String {
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)
        .expect("key file");
    file.write_all(
        &[byte; 16]
            .iter()
            .chain(&[byte.wrapping_add(1); 16])
            .copied()
            .collect::<Vec<u8>>(),
    )
    .expect("write key");
    path.display().to_string()
}

impl Rig {
    fn api(&self) -> hearth_testkit::Api {
        match &self.token {
            Some(token) => self.hearthd.api().with_token(token),
            None => self.hearthd.api(),
        }
    }

    /// hearthd requiring a bearer token even on loopback.
    async fn start_with_token() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = "t".repeat(20) + "-mcp-test-token-0123456789";
        let path = dir.path().join("api-token");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .and_then(|mut f| f.write_all(token.as_bytes()))
            .expect("token file");
        let files = format!("[\"{}\"]", path.display());
        let mut rig = Self::start(&[
            ("HEARTH_AUTH__TOKEN_FILES", files.as_str()),
            ("HEARTH_AUTH__TRUST_LOOPBACK", "false"),
            ("HEARTH_AUTH__OPEN_ROUTES", "[\"/healthz\", \"/readyz\"]"),
        ])
        .await;
        // The token file must outlive the rig: keep its directory with the keys.
        std::fs::rename(&path, rig.keys.path().join("api-token")).expect("move token");
        rig.token = Some(token);
        rig
    }

    async fn start(extra: &[(&str, &str)]) -> Self {
        let llama = tokio::task::spawn_blocking(|| TestLlama::start().expect("llama.cpp's server"))
            .await
            .expect("join");
        let postgres = TestPostgres::start().expect("postgres");
        let database_url = postgres.create_database().expect("database");
        let keys = tempfile::tempdir().expect("tempdir");
        let key = key_file(keys.path(), "encryption-key", 7);
        let mut settings = vec![
            ("HEARTH_REASONING__ENCRYPTION_KEY_FILE", key.as_str()),
            ("HEARTH_REASONING__MAX_ANSWER_TOKENS", "24"),
        ];
        settings.extend_from_slice(extra);
        let hearthd = TestHearthd::start(env!("CARGO_BIN_EXE_hearthd").as_ref(), &database_url, &settings)
            .expect("hearthd");
        hearthd.ready().await;
        Self {
            postgres,
            database_url,
            hearthd,
            llama,
            keys,
            token: None,
        }
    }

    async fn set_provider(&self, api_key: &str) -> Value {
        let reply = self
            .api()
            .put_json(
                "/v1/settings/reasoning",
                &json!({"base_url": self.llama.base_url, "model": LLAMA_MODEL, "api_key": api_key, "answers": true}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    async fn upload(&self, text: &str, title: &str, metadata: Value) -> String {
        let api = self.api();
        let reply = api
            .post_json(
                "/v1/documents",
                &json!({"text": text, "title": title, "metadata": metadata}),
            )
            .await;
        assert!(reply.status == 202 || reply.status == 201, "{}", reply.body);
        let id = reply.body["id"].as_str().expect("id").to_owned();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let document = api.get(&format!("/v1/documents/{id}")).await.body;
            if document["status"] == "ready" {
                return id;
            }
            assert!(Instant::now() < deadline, "never ready: {document}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The harbour corpus, and one private document that matches the question best.
    async fn library(&self) -> String {
        self.upload(
            "The fishing boats leave the harbour at dawn, when the tide turns, and return before night.",
            "Harbour",
            json!({}),
        )
        .await;
        self.upload(
            "The library opens at nine and closes at five; the reading room is on the first floor.",
            "Library",
            json!({}),
        )
        .await;
        self.upload(
            &format!("Private: the fishing boats leave the harbour at dawn from the {PRIVATE_MARKER} pier."),
            "Diary",
            json!({"private": true}),
        )
        .await
    }

    /// A streamed answer to the harbour question, its response still being read.
    async fn stream_answer(&self) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/answer", self.hearthd.url))
            .json(&json!({"question": "when do the fishing boats leave the harbour", "stream": true}))
            .send()
            .await
            .expect("stream")
    }

    fn assert_no_secret_logged(&self, secret: &str) {
        let log = self.hearthd.log_text();
        assert!(!log.contains(secret), "hearthd logged a provider key");
    }
}

/// The events of a server-sent event stream: (event name, data).
fn events(text: &str) -> Vec<(String, String)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.trim_start().to_owned());
                }
            }
            (!data.is_empty()).then(|| (name, data.join("\n")))
        })
        .collect()
}

#[tokio::test]
async fn the_provider_key_is_sealed_at_rest_never_returned_and_opens_only_with_this_boxs_key() {
    let mut rig = Rig::start(&[]).await;
    let api = rig.hearthd.api();
    let key = rig.llama.api_key.clone();

    let none = api.get("/v1/settings/reasoning").await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.body["provider"], Value::Null);
    assert_eq!(none.body["can_store_keys"], true);
    api.post_json("/v1/answer", &json!({"question": "when do boats leave?"}))
        .await
        .assert_error(409, ErrorCode::ReasoningOff);

    let set = rig.set_provider(&key).await;
    let fingerprint = hearth_core::digest::fingerprint(key.as_bytes());
    assert_eq!(set["key_fingerprint"], fingerprint.as_str(), "{set}");
    let shown = api.get("/v1/settings/reasoning").await;
    assert!(!shown.body.to_string().contains(&key), "GET returned the key");
    assert_eq!(shown.body["provider"]["key_fingerprint"], fingerprint.as_str());
    assert!(
        shown.body["sends"].as_str().expect("sends").contains("127.0.0.1"),
        "{}",
        shown.body
    );

    // In the database: sealed bytes, not the key.
    let db = common::database_name(&rig.database_url);
    let row = rig
        .postgres
        .psql(
            &db,
            &format!(
                "SELECT length(key_sealed), position(convert_to('{key}', 'UTF8') in key_sealed), \
                 position(convert_to('{}', 'UTF8') in key_sealed) FROM reasoning_provider",
                &key[8..20]
            ),
        )
        .expect("psql");
    let fields: Vec<&str> = row.trim().split('|').collect();
    assert!(fields[0].parse::<usize>().expect("length") > key.len(), "{row}");
    assert_eq!(&fields[1..], ["0", "0"], "the key's bytes are in the row: {row}");

    let test = api.post_json("/v1/settings/reasoning/test", &json!({})).await;
    assert_eq!(test.status, 200, "{}", test.body);
    assert_eq!(test.body["ok"], true, "{}", test.body);
    assert_eq!(test.body["model_listed"], true, "{}", test.body);

    // Same address without a key: the stored key stays. A new address: it does not follow.
    let kept = api
        .put_json(
            "/v1/settings/reasoning",
            &json!({"base_url": rig.llama.base_url, "model": LLAMA_MODEL, "answers": true}),
        )
        .await;
    assert_eq!(
        kept.body["key_fingerprint"],
        fingerprint.as_str(),
        "{}",
        kept.body
    );
    assert_eq!(
        api.post_json("/v1/settings/reasoning/test", &json!({}))
            .await
            .body["ok"],
        true
    );

    // Bad settings are 400s that say what to change: a key in the clear to the internet, contradictions.
    let cleartext = api
        .put_json(
            "/v1/settings/reasoning",
            &json!({"base_url": "http://api.example.com/v1", "model": "m", "api_key": "sk-would-leak"}),
        )
        .await;
    assert!(
        cleartext
            .assert_error(400, ErrorCode::InvalidRequest)
            .message
            .contains("https://")
    );
    let both = api
        .put_json(
            "/v1/settings/reasoning",
            &json!({"base_url": rig.llama.base_url, "model": "m", "api_key": "sk-x", "remove_key": true}),
        )
        .await;
    both.assert_error(400, ErrorCode::InvalidRequest);
    // A hearth asked by a hearth's provider client (itself, set as its own provider) refuses instead of looping.
    let looped = reqwest::Client::new()
        .post(format!("{}/v1/answer", rig.hearthd.url))
        .header("x-hearth-hop", "1")
        .json(&json!({"question": "boats?"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(looped.status(), 400);
    // Bad settings are 400s that say what to change.
    let bad = api
        .put_json(
            "/v1/settings/reasoning",
            &json!({"base_url": "ftp://x/v1", "model": "m"}),
        )
        .await;
    assert!(
        bad.assert_error(400, ErrorCode::InvalidRequest)
            .message
            .contains("http://"),
        "{}",
        bad.body
    );

    // Another box's encryption key cannot open it: a clear 503, and hearthd keeps serving.
    rig.hearthd.terminate();
    let other = key_file(rig.keys.path(), "other-key", 9);
    rig.hearthd = TestHearthd::start(
        env!("CARGO_BIN_EXE_hearthd").as_ref(),
        &rig.database_url,
        &[("HEARTH_REASONING__ENCRYPTION_KEY_FILE", &other)],
    )
    .expect("hearthd");
    rig.hearthd.ready().await;
    let api = rig.hearthd.api();
    let unreadable = api
        .post_json("/v1/answer", &json!({"question": "when do boats leave?"}))
        .await;
    let error = unreadable.assert_error(503, ErrorCode::ProviderKeyUnreadable);
    assert!(
        error.message.contains("enter the provider's key again"),
        "{}",
        error.message
    );
    assert_eq!(api.get("/healthz").await.status, 200);

    // Without any encryption key a key is refused rather than stored in plain text.
    rig.hearthd.terminate();
    rig.hearthd =
        TestHearthd::start(env!("CARGO_BIN_EXE_hearthd").as_ref(), &rig.database_url, &[]).expect("hearthd");
    rig.hearthd.ready().await;
    let api = rig.hearthd.api();
    assert_eq!(
        api.get("/v1/settings/reasoning").await.body["can_store_keys"],
        false
    );
    let refused = api
        .put_json(
            "/v1/settings/reasoning",
            &json!({"base_url": rig.llama.base_url, "model": LLAMA_MODEL, "api_key": "sk-new-key", "answers": true}),
        )
        .await;
    let error = refused.assert_error(503, ErrorCode::EncryptionUnavailable);
    assert!(error.message.contains("encryption-key"), "{}", error.message);
    assert_eq!(api.delete("/v1/settings/reasoning").await.status, 204);
    assert_eq!(
        api.get("/v1/settings/reasoning").await.body["provider"],
        Value::Null
    );
    rig.assert_no_secret_logged(&key);
}

#[tokio::test]
async fn answers_stream_cite_only_retrieved_chunks_and_never_send_a_private_document() {
    let rig = Rig::start(&[]).await;
    let private_id = rig.library().await;
    rig.set_provider(&rig.llama.api_key).await;
    let api = rig.hearthd.api();
    let question = "when do the fishing boats leave the harbour";

    let answer = api
        .post_json("/v1/answer", &json!({"question": question, "k": 4}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["asked_provider"], true);
    assert!(
        !answer.body["answer"].as_str().expect("text").is_empty(),
        "{}",
        answer.body
    );
    let retrieved: Vec<Value> = api
        .post_json("/v1/search", &json!({"query": question, "k": 12}))
        .await
        .body["hits"]
        .as_array()
        .expect("hits")
        .clone();
    let citations = answer.body["citations"].as_array().expect("citations");
    assert!(!citations.is_empty(), "{}", answer.body);
    for citation in citations {
        assert_ne!(
            citation["document_id"],
            private_id.as_str(),
            "a private document was cited"
        );
        let hit = retrieved
            .iter()
            .find(|hit| hit["chunk_id"] == citation["chunk_id"])
            .unwrap_or_else(|| panic!("cited a chunk search did not retrieve: {citation}"));
        assert_eq!(hit["span"], citation["span"]);
        assert_eq!(hit["document_id"], citation["document_id"]);
    }

    // Streamed: deltas, then the sources, then done.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/answer", rig.hearthd.url))
        .json(&json!({"question": question, "stream": true}))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let streamed = events(&response.text().await.expect("body"));
    let names: Vec<&str> = streamed.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.iter().filter(|n| **n == "delta").count() >= 1, "{names:?}");
    assert_eq!(&names[names.len() - 2..], ["citations", "done"], "{names:?}");
    let sources: Vec<Value> = serde_json::from_str(&streamed[names.len() - 2].1).expect("citations JSON");
    assert!(sources.iter().all(|c| c["document_id"] != private_id.as_str()));

    // Nothing matches: said so, and the provider is not asked.
    let before = rig.llama.requests().len();
    let nothing = api
        .post_json(
            "/v1/answer",
            &json!({"question": question, "filter": {"document_ids": [uuid::Uuid::new_v4()]}}),
        )
        .await;
    assert_eq!(nothing.status, 200, "{}", nothing.body);
    assert_eq!(nothing.body["asked_provider"], false);
    assert!(
        nothing.body["answer"]
            .as_str()
            .expect("text")
            .contains("Nothing in the library")
    );
    assert_eq!(
        rig.llama.requests().len(),
        before,
        "the provider was asked anyway"
    );

    // Bad questions are 400s.
    api.post_json("/v1/answer", &json!({"question": "  "}))
        .await
        .assert_error(400, ErrorCode::InvalidRequest);
    api.post_json("/v1/answer", &json!({"question": "x", "k": 99}))
        .await
        .assert_error(400, ErrorCode::InvalidRequest);

    // The official OpenAI client streams and fetches a chat completion from model `hearth`.
    openai_chat(&rig.hearthd.url).await;

    let requests = rig.llama.requests();
    assert!(requests.len() >= 4, "{requests:?}");
    for request in &requests {
        assert_eq!(request["bearer"], true);
        let body = request["body"].as_str().unwrap_or_default();
        assert!(
            !body.contains(PRIVATE_MARKER),
            "a private document reached the provider: {body}"
        );
    }
    assert!(
        requests.iter().any(|r| r["body"]
            .as_str()
            .unwrap_or_default()
            .contains("leave the harbour at dawn")),
        "the retrieved chunk was not in the prompt: {requests:?}"
    );
    rig.assert_no_secret_logged(&rig.llama.api_key);
}

const OPENAI_CHAT: &str = r#"
import json, sys
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed-on-loopback", max_retries=0)
models = [m.id for m in client.models.list().data]
pieces = []
for chunk in client.chat.completions.create(
        model="hearth", stream=True,
        messages=[{"role": "user", "content": "when do the fishing boats leave the harbour"}]):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
whole = client.chat.completions.create(
    model="hearth", messages=[{"role": "user", "content": "when do the fishing boats leave the harbour"}])
print(json.dumps({"models": models, "pieces": len(pieces), "streamed": "".join(pieces),
                  "content": whole.choices[0].message.content, "finish": whole.choices[0].finish_reason}))
"#;

async fn openai_chat(url: &str) {
    let report = common::run_python(OPENAI_CHAT, vec![url.to_owned()], String::new).await;
    assert!(
        report["models"]
            .as_array()
            .expect("models")
            .contains(&json!("hearth")),
        "{report}"
    );
    assert!(report["pieces"].as_u64().expect("pieces") >= 2, "{report}");
    assert!(
        report["streamed"].as_str().expect("text").contains("Sources:"),
        "{report}"
    );
    assert!(
        report["content"]
            .as_str()
            .expect("text")
            .contains("Sources:\n[1] Harbour"),
        "{report}"
    );
    assert_eq!(report["finish"], "stop");
}

#[tokio::test]
async fn provider_failures_name_the_providers_answer_and_leave_hearthd_healthy() {
    let mut rig = Rig::start(&[("HEARTH_REASONING__TIMEOUT_SECONDS", "2")]).await;
    rig.library().await;
    let api = rig.hearthd.api();
    let question = json!({"question": "when do the fishing boats leave the harbour"});

    // A wrong key: the provider's 401, named.
    rig.set_provider("sk-wrong-key").await;
    let wrong = api.post_json("/v1/answer", &question).await;
    let error = wrong.assert_error(502, ErrorCode::ProviderRefused);
    assert!(
        error.message.contains("401") && error.message.contains("API key"),
        "{}",
        error.message
    );
    let test = api.post_json("/v1/settings/reasoning/test", &json!({})).await;
    assert_eq!(
        (test.body["ok"].clone(), test.body["status"].clone()),
        (json!(false), json!(401)),
        "{}",
        test.body
    );
    api.post_json(
        "/v1/chat/completions",
        &json!({"model": "hearth", "messages": [{"role": "user", "content": "boats?"}]}),
    )
    .await
    .assert_openai_error(502, ErrorCode::ProviderRefused);

    // Slow: silent past reasoning.timeout_seconds is a 504.
    rig.set_provider(&rig.llama.api_key).await;
    rig.llama
        .set_behaviour(Duration::from_secs(4), Duration::ZERO)
        .expect("slow");
    let started = Instant::now();
    let slow = api.post_json("/v1/answer", &question).await;
    slow.assert_error(504, ErrorCode::ProviderTimeout);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timeouts are not retried: {:?}",
        started.elapsed()
    );

    // The client goes away mid-stream: the provider's generation is cancelled.
    rig.llama
        .set_behaviour(Duration::ZERO, Duration::from_millis(300))
        .expect("paced");
    let mut stream = rig.stream_answer().await;
    let first = stream.chunk().await.expect("a chunk").expect("bytes");
    assert!(!first.is_empty());
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !rig.llama.log_text().contains("disconnected") {
        assert!(
            Instant::now() < deadline,
            "the provider kept generating:\n{}",
            rig.llama.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Killed mid-stream: an `error` event naming it, then the stream ends.
    let mut stream = rig.stream_answer().await;
    let mut received = String::new();
    while !received.contains("event: delta") && !received.contains("event:delta") {
        let chunk = stream
            .chunk()
            .await
            .expect("a chunk")
            .expect("bytes before the end");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    rig.llama.kill();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
        .await
        .expect("the stream ends after the provider dies")
        .expect("chunk")
    {
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    let streamed = events(&received);
    let (name, data) = streamed.last().expect("events");
    assert_eq!(name, "error", "{received}");
    let error: Value = serde_json::from_str(data).expect("error JSON");
    assert!(
        ["provider_refused", "provider_timeout"].contains(&error["code"].as_str().unwrap_or_default()),
        "{error}"
    );

    // hearthd is fine; the provider being down is a 503 that names it.
    assert_eq!(api.get("/healthz").await.status, 200);
    assert_eq!(api.get("/readyz").await.status, 200);
    let down = api.post_json("/v1/answer", &question).await;
    let error = down.assert_error(503, ErrorCode::ProviderUnreachable);
    assert!(error.message.contains("127.0.0.1"), "{}", error.message);
    let search = api.post_json("/v1/search", &json!({"query": "harbour"})).await;
    assert_eq!(search.status, 200, "search still works: {}", search.body);
    rig.assert_no_secret_logged(&rig.llama.api_key);
}

const MCP_CLIENT: &str = r#"
import asyncio, json, sys
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

async def main(url, token, private_id):
    out = {}
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
                search = await session.call_tool("search", {"query": "when do the fishing boats leave", "k": 5})
                out["search_error"] = search.is_error
                hits = json.loads(search.content[0].text)
                out["hit_titles"] = [h["title"] for h in hits]
                listed = json.loads((await session.call_tool("list_documents", {})).content[0].text)
                out["listed"] = sorted(d["title"] for d in listed["documents"])
                first = [h for h in hits if h["title"] == "Harbour"][0]
                doc = await session.call_tool("get_document", {"id": first["document_id"]})
                out["document_text"] = json.loads(doc.content[0].text)["passages"][0]["text"]
                private = await session.call_tool("get_document", {"id": private_id})
                out["private_error"] = private.is_error
                bad = await session.call_tool("get_document", {"id": "not-a-uuid"})
                out["bad_id"] = [bad.is_error, bad.content[0].text]
                answer = await session.call_tool("answer", {"question": "when do the fishing boats leave the harbour"})
                out["answer_error"] = answer.is_error
                out["answer"] = json.loads(answer.content[0].text)
    async with httpx2.AsyncClient(timeout=10) as anonymous:
        refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                       headers={"Accept": "application/json, text/event-stream"})
        out["without_token"] = refused.status_code
    print(json.dumps(out))

asyncio.run(main(*sys.argv[1:]))
"#;

#[tokio::test]
async fn the_official_mcp_sdk_lists_and_calls_the_tools_behind_the_bearer_token() {
    let rig = Rig::start_with_token().await;
    let private_id = rig.library().await;
    rig.set_provider(&rig.llama.api_key).await;
    let args = vec![
        format!("{}/mcp", rig.hearthd.url),
        rig.token.clone().expect("token"),
        private_id,
    ];
    let report = common::run_python(MCP_CLIENT, args, || rig.hearthd.log_text()).await;
    assert_eq!(
        report["tools"],
        json!(["answer", "get_document", "list_documents", "search"]),
        "{report}"
    );
    assert_eq!(report["search_error"], false, "{report}");
    assert_eq!(report["hit_titles"][0], "Harbour", "{report}");
    assert!(
        !report["hit_titles"]
            .as_array()
            .expect("titles")
            .contains(&json!("Diary")),
        "{report}"
    );
    assert_eq!(
        report["listed"],
        json!(["Harbour", "Library"]),
        "private documents are not listed: {report}"
    );
    assert!(
        report["document_text"]
            .as_str()
            .expect("text")
            .contains("leave the harbour at dawn"),
        "{report}"
    );
    assert_eq!(report["private_error"], true, "{report}");
    assert_eq!(report["bad_id"][0], true, "{report}");
    assert!(
        report["bad_id"][1].as_str().expect("message").contains("UUID"),
        "{report}"
    );
    assert_eq!(report["answer_error"], false, "{report}");
    assert_eq!(report["answer"]["asked_provider"], true, "{report}");
    assert_eq!(report["without_token"], 401, "{report}");
    for request in rig.llama.requests() {
        assert!(
            !request["body"]
                .as_str()
                .unwrap_or_default()
                .contains(PRIVATE_MARKER)
        );
    }
}

/// Every `connect()` and addressed `sendto()`/`sendmsg()` hearthd (and any process it starts) makes while `work`
/// runs, as strace writes them.
async fn traced_network_calls(pid: u32, work: impl std::future::Future<Output = ()>) -> Vec<String> {
    let log = tempfile::NamedTempFile::new().expect("trace log");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o"])
        .arg(log.path())
        .args(["-p", &pid.to_string()])
        .spawn()
        .expect("strace runs (`cargo xtask deps` installs it)");
    // Attached once the kernel names a tracer for hearthd.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .any(|line| line.starts_with("TracerPid:") && line.trim_end() != "TracerPid:\t0")
    {
        assert!(Instant::now() < deadline, "strace did not attach");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    work.await;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(strace.id() as i32).expect("pid"),
        rustix::process::Signal::INT,
    )
    .expect("stop strace");
    strace.wait().expect("strace exits");
    std::fs::read_to_string(log.path())
        .expect("trace")
        .lines()
        .filter(|line| line.contains("sa_family=AF_INET"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn without_a_provider_hearthd_opens_no_connection_beyond_its_database() {
    let rig = Rig::start(&[]).await;
    let api = rig.api();
    let postgres_port = rig.postgres.port();
    let question = json!({"question": "when do the fishing boats leave the harbour"});
    let calls = traced_network_calls(rig.hearthd.pid(), async {
        rig.library().await;
        assert_eq!(
            api.post_json("/v1/search", &json!({"query": "harbour"}))
                .await
                .status,
            200
        );
        api.post_json("/v1/answer", &question)
            .await
            .assert_error(409, ErrorCode::ReasoningOff);
        api.post_json(
            "/v1/chat/completions",
            &json!({"model": "hearth", "stream": true, "messages": [{"role": "user", "content": "boats?"}]}),
        )
        .await
        .assert_openai_error(409, ErrorCode::ReasoningOff);
        api.post_json("/v1/settings/reasoning/test", &json!({}))
            .await
            .assert_error(409, ErrorCode::ReasoningOff);
        // A provider set with answers off sends nothing either.
        let off = api
            .put_json(
                "/v1/settings/reasoning",
                &json!({"base_url": rig.llama.base_url, "model": LLAMA_MODEL, "answers": false}),
            )
            .await;
        assert_eq!(off.status, 200, "{}", off.body);
        api.post_json("/v1/answer", &question)
            .await
            .assert_error(409, ErrorCode::ReasoningOff);
    })
    .await;
    let allowed = [
        format!("sin_port=htons({postgres_port}), sin_addr=inet_addr(\"127.0.0.1\")"),
        format!("sin6_port=htons({postgres_port}), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\""),
    ];
    let outbound: Vec<&String> = calls
        .iter()
        .filter(|call| !allowed.iter().any(|ok| call.contains(ok.as_str())))
        .collect();
    assert!(
        outbound.is_empty(),
        "hearthd reached beyond its database: {outbound:#?}"
    );
    assert!(rig.llama.requests().is_empty(), "{:?}", rig.llama.requests());

    // The trace sees connections: once answers are on, the provider's is there.
    rig.set_provider(&rig.llama.api_key).await;
    let calls = traced_network_calls(rig.hearthd.pid(), async {
        assert_eq!(api.post_json("/v1/answer", &question).await.status, 200);
    })
    .await;
    let provider = format!(
        "sin_port=htons({}), sin_addr=inet_addr(\"127.0.0.1\")",
        rig.llama.port()
    );
    assert!(calls.iter().any(|call| call.contains(&provider)), "{calls:#?}");
}

/// The web UI's side: Settings sets the provider (the key never shown back), Ask answers with its sources as
/// links to the passages and says what was sent.
#[tokio::test]
async fn the_web_ui_sets_the_provider_and_asks_with_sources_linking_to_the_passages() {
    let rig = Rig::start_with_token().await;
    rig.library().await;
    let url = rig.hearthd.url.clone();
    let token = rig.token.clone().expect("token");
    let session = common::Session::sign_in(&url, &token, "/settings").await;
    let (http, cookie) = (&session.http, &session.cookie);
    let (status, before) = session.page("/ask?q=boats").await;
    assert_eq!(status, 409, "{before}");
    assert!(before.contains("nothing: no provider is set"), "{before}");

    let form = format!(
        "base_url={}&model={LLAMA_MODEL}&api_key={}&answers=on",
        rig.llama.base_url.replace(':', "%3A").replace('/', "%2F"),
        rig.llama.api_key
    );
    let saved = http
        .post(format!("{url}/settings/reasoning"))
        .header("cookie", cookie)
        .header("origin", &url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), 303);
    let (_, settings) = session.page("/settings").await;
    assert!(!settings.contains(&rig.llama.api_key), "Settings shows the key");
    let fingerprint = hearth_core::digest::fingerprint(rig.llama.api_key.as_bytes());
    assert!(settings.contains(&fingerprint), "{settings}");
    assert!(
        settings.contains("the question and the text of the chunks retrieved for it"),
        "{settings}"
    );
    let tested = http
        .post(format!("{url}/settings/reasoning/test"))
        .header("cookie", cookie)
        .header("origin", &url)
        .send()
        .await
        .expect("test");
    assert!(
        tested
            .text()
            .await
            .expect("html")
            .contains("answered with 1 model")
    );

    let (status, asked) = session
        .page("/ask?q=when+do+the+fishing+boats+leave+the+harbour")
        .await;
    assert_eq!(status, 200, "{asked}");
    let sources = asked.split("id=\"sources\"").nth(1).expect("a sources list");
    assert!(sources.contains("href=\"/library/"), "{sources}");
    assert!(
        sources.contains("?chunk=") && sources.contains("#chunk-"),
        "{sources}"
    );
    assert!(sources.contains(">Harbour<"), "{sources}");
    assert!(
        !sources.contains(">Diary<"),
        "the private document is not a source: {sources}"
    );
    // The passage a source links to opens with the passage marked.
    let link = sources
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link")
        .replace("&amp;", "&");
    let (status, passage) = session.page(&link).await;
    assert_eq!(status, 200);
    assert!(
        passage.contains("class=\"passage target\"") && passage.contains("at dawn, when the tide turns"),
        "{passage}"
    );
    rig.assert_no_secret_logged(&rig.llama.api_key);
}

/// A fleet declares its provider in the configuration, the key in a file: the API shows it, cannot change it,
/// and answers with it.
#[tokio::test]
async fn a_provider_declared_in_the_configuration_answers_and_cannot_be_changed_through_the_api() {
    let llama = tokio::task::spawn_blocking(|| TestLlama::start().expect("llama.cpp's server"))
        .await
        .expect("join");
    let postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    let keys = tempfile::tempdir().expect("tempdir");
    let key_path = keys.path().join("provider-key");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&key_path)
        .and_then(|mut f| f.write_all(format!("{}\n", llama.api_key).as_bytes()))
        .expect("key file");
    let key_file = key_path.display().to_string();
    let settings = [
        ("HEARTH_REASONING__PROVIDER__BASE_URL", llama.base_url.as_str()),
        ("HEARTH_REASONING__PROVIDER__MODEL", LLAMA_MODEL),
        ("HEARTH_REASONING__PROVIDER__API_KEY_FILE", key_file.as_str()),
        ("HEARTH_REASONING__PROVIDER__ANSWERS", "true"),
        ("HEARTH_REASONING__MAX_ANSWER_TOKENS", "16"),
    ];
    let hearthd = TestHearthd::start(env!("CARGO_BIN_EXE_hearthd").as_ref(), &database_url, &settings)
        .expect("hearthd");
    hearthd.ready().await;
    let api = hearthd.api();
    let shown = api.get("/v1/settings/reasoning").await;
    assert_eq!(shown.body["provider"]["source"], "config", "{}", shown.body);
    let fingerprint = hearth_core::digest::fingerprint(llama.api_key.as_bytes());
    assert_eq!(shown.body["provider"]["key_fingerprint"], fingerprint.as_str());
    assert!(!shown.body.to_string().contains(&llama.api_key));
    api.put_json(
        "/v1/settings/reasoning",
        &json!({"base_url": "https://elsewhere.example/v1", "model": "m"}),
    )
    .await
    .assert_error(409, ErrorCode::ProviderDeclared);
    api.delete("/v1/settings/reasoning")
        .await
        .assert_error(409, ErrorCode::ProviderDeclared);
    let uploaded = api
        .post_json(
            "/v1/documents",
            &json!({"text": "The fishing boats leave the harbour at dawn.", "title": "Harbour"}),
        )
        .await;
    let id = uploaded.body["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    while api.get(&format!("/v1/documents/{id}")).await.body["status"] != "ready" {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = api
        .post_json(
            "/v1/answer",
            &json!({"question": "when do the fishing boats leave"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["asked_provider"], true);
    assert!(llama.requests().iter().all(|r| r["bearer"] == true));
    assert!(
        !hearthd.log_text().contains(&llama.api_key),
        "hearthd logged the key"
    );

    // A declared provider that is not an address stops hearthd's configuration check, naming the key.
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_hearthd"))
        .arg("check-config")
        .env("HEARTH_REASONING__PROVIDER__BASE_URL", "workstation:8000/v1")
        .env("HEARTH_REASONING__PROVIDER__MODEL", "m")
        .output()
        .expect("check-config runs");
    assert!(!checked.status.success());
    let said =
        String::from_utf8_lossy(&checked.stderr).to_string() + &String::from_utf8_lossy(&checked.stdout);
    assert!(
        said.contains("reasoning.provider") && said.contains("base_url"),
        "{said}"
    );
}
