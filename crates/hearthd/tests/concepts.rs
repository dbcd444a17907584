//! The concept graph against the real llama.cpp server (llama-cpp-python with a tiny random-weight model: its
//! concepts are noise, but the requests, the JSON-schema grammar that constrains the answer, the tokens it counts
//! and its failures are real), the real hearthd, PostgreSQL and the test model. The server logs every request, so
//! the tests prove what was sent and what was not.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_api::ErrorCode;
use hearth_testkit::{LLAMA_MODEL, TestHearthd, TestLlama, TestPostgres};
use serde_json::{Value, json};

mod common;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");
const PRIVATE_MARKER: &str = "zanzibarquokka";
const TOKEN: &str = "concepts-test-token-0123456789abcdefghijklmnop";

const HARBOUR: &str = "The fishing boats leave the harbour at dawn, when the tide turns, and return before night \
                       with the catch for the market. The harbour master keeps the tide tables.";
const LIBRARY: &str = "The library opens at nine and closes at five; the reading room is on the first floor, and the \
                       archive of sea charts is in the basement.";

struct Rig {
    postgres: TestPostgres,
    database: String,
    url: String,
    hearthd: TestHearthd,
    llama: TestLlama,
    /// The encryption key and the API token, and the originals: they outlive a restarted hearthd.
    _secrets: tempfile::TempDir,
    _blobs: tempfile::TempDir,
    extra: Vec<(String, String)>,
}

fn secret_file(dir: &Path, name: &str, content: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)
        .and_then(|mut file| file.write_all(content))
        .expect("secret file");
    path.display().to_string()
}

impl Rig {
    /// llama.cpp's server, PostgreSQL and a ready hearthd that wants a token even on loopback (so the web UI's
    /// pages can be read with a session), with `extra` settings.
    async fn start(extra: &[(&str, &str)]) -> Self {
        let llama = tokio::task::spawn_blocking(|| TestLlama::start().expect("llama.cpp's server"))
            .await
            .expect("join");
        let postgres = TestPostgres::start().expect("postgres");
        let url = postgres.create_database().expect("database");
        let secrets = tempfile::tempdir().expect("tempdir");
        let key: Vec<u8> = (0..32).collect();
        let key = secret_file(secrets.path(), "encryption-key", &key);
        let token = secret_file(secrets.path(), "api-token", TOKEN.as_bytes());
        let blobs = tempfile::tempdir().expect("tempdir");
        let mut settings: Vec<(String, String)> = [
            ("HEARTH_REASONING__ENCRYPTION_KEY_FILE", key),
            ("HEARTH_AUTH__TOKEN_FILES", format!("[\"{token}\"]")),
            ("HEARTH_AUTH__TRUST_LOOPBACK", "false".into()),
            ("HEARTH_AUTH__OPEN_ROUTES", "[\"/healthz\", \"/readyz\"]".into()),
            ("HEARTH_BLOBS__PATH", blobs.path().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let hearthd = start_hearthd(&url, &settings).await;
        Self {
            database: common::database_name(&url),
            postgres,
            url,
            hearthd,
            llama,
            _secrets: secrets,
            _blobs: blobs,
            extra: settings,
        }
    }

    /// A new hearthd on the same database, blobs and secrets (after a kill).
    async fn restart(&mut self) {
        self.hearthd = start_hearthd(&self.url, &self.extra).await;
    }

    fn api(&self) -> hearth_testkit::Api {
        self.hearthd.api().with_token(TOKEN)
    }

    /// The provider: llama.cpp's server with concept extraction consented to (answers off: nothing else asks it).
    async fn consent(&self) {
        let reply = self
            .api()
            .put_json(
                "/v1/settings/reasoning",
                &json!({
                    "base_url": self.llama.base_url, "model": LLAMA_MODEL, "api_key": self.llama.api_key,
                    "answers": false, "concepts": true,
                }),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["concepts"], true, "{}", reply.body);
    }

    async fn upload(&self, text: &str, title: &str, metadata: Value, external_id: Option<&str>) -> String {
        let mut body = json!({"text": text, "title": title, "metadata": metadata});
        if let Some(external_id) = external_id {
            body["external_id"] = external_id.into();
        }
        let reply = self.api().post_json("/v1/documents", &body).await;
        assert!(reply.status == 202 || reply.status == 200, "{}", reply.body);
        let id = reply.body["id"].as_str().expect("id").to_owned();
        self.wait_ready(&id).await;
        id
    }

    async fn wait_ready(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let document = self.api().get(&format!("/v1/documents/{id}")).await.body;
            if document["status"] == "ready" && document["job"].is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "never ready: {document}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn extraction(&self) -> Value {
        let reply = self.api().get("/v1/concepts/extraction").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    /// Polls `GET /v1/concepts/extraction` until `done` holds; fails with the last status and hearthd's log.
    async fn wait_extraction(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let status = self.extraction().await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; last status {status}\nhearthd:\n{}",
                self.hearthd.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn sql(&self, query: &str) -> String {
        self.postgres
            .psql(&self.database, query)
            .expect("psql")
            .trim()
            .to_owned()
    }

    fn number(&self, query: &str) -> i64 {
        self.sql(query).parse().expect("a number")
    }

    /// The chat completion requests the provider received, as JSON bodies.
    fn extraction_requests(&self) -> Vec<Value> {
        self.llama
            .requests()
            .into_iter()
            .filter(|r| r["path"] == "/v1/chat/completions")
            .map(|r| serde_json::from_str(r["body"].as_str().unwrap_or("{}")).expect("a JSON body"))
            .collect()
    }

    /// `(concept name, chunk ordinal)` of every mention in the document, sorted.
    fn mentions_of(&self, document: &str) -> Vec<String> {
        let rows = self.sql(&format!(
            "SELECT c.normalized || '@' || k.ordinal FROM concept_mentions m JOIN concepts c ON c.id = m.concept_id \
             JOIN chunks k ON k.id = m.chunk_id WHERE m.document_id = '{document}' ORDER BY 1"
        ));
        rows.lines().map(str::to_owned).collect()
    }
}

async fn start_hearthd(url: &str, settings: &[(String, String)]) -> TestHearthd {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let hearthd = TestHearthd::start(HEARTHD.as_ref(), url, &settings).expect("hearthd");
    hearthd.ready().await;
    hearthd
}

/// Every mention lies inside its chunk and points at the chunk's own document; every name and alias is 1 to 60
/// characters; every relation joins two concepts and is one of the schema's.
fn assert_graph_is_well_formed(rig: &Rig) {
    let bad_spans = rig.number(
        "SELECT count(*) FROM concept_mentions m JOIN chunks k ON k.id = m.chunk_id \
         WHERE m.char_start < k.char_start OR m.char_end > k.char_end OR m.document_id <> k.document_id",
    );
    assert_eq!(bad_spans, 0, "mentions outside their chunk");
    let bad_names = rig.number(
        "SELECT count(*) FROM concepts WHERE char_length(name) NOT BETWEEN 1 AND 60 OR name <> btrim(name) \
         OR EXISTS (SELECT 1 FROM unnest(aliases) a WHERE char_length(a) NOT BETWEEN 1 AND 60)",
    );
    assert_eq!(bad_names, 0, "names out of bounds");
    let relations = hearth_api::concepts::RELATIONS
        .map(|r| format!("'{r}'"))
        .join(",");
    let bad_relations = rig.number(&format!(
        "SELECT count(*) FROM concept_relations WHERE relation NOT IN ({relations}) OR source_id = target_id"
    ));
    assert_eq!(bad_relations, 0, "relations outside the schema");
    let unmentioned = rig.number(
        "SELECT count(*) FROM concepts c WHERE NOT EXISTS (SELECT 1 FROM concept_mentions m WHERE m.concept_id = c.id)",
    );
    assert_eq!(unmentioned, 0, "concepts nothing mentions");
}

#[tokio::test(flavor = "multi_thread")]
async fn extraction_stores_schema_valid_concepts_and_never_sends_a_private_document() {
    let rig = Rig::start(&[]).await;
    let api = rig.api();
    let off = rig.extraction().await;
    assert_eq!(off["enabled"], false, "{off}");
    assert!(
        off["waiting"]
            .as_str()
            .expect("why")
            .contains("no reasoning provider"),
        "{off}"
    );

    let harbour = rig.upload(HARBOUR, "Harbour", json!({}), None).await;
    let library = rig.upload(LIBRARY, "Library", json!({}), None).await;
    let diary =
        format!("Private: the fishing boats leave the harbour at dawn from the {PRIVATE_MARKER} pier.");
    let diary = rig.upload(&diary, "Diary", json!({"private": true}), None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        rig.extraction_requests().is_empty(),
        "asked the provider without consent"
    );

    rig.consent().await;
    let status = rig
        .wait_extraction("three documents extracted or kept back", |s| {
            s["done"].as_i64().unwrap_or(0) + s["private"].as_i64().unwrap_or(0) == 3
        })
        .await;
    assert_eq!(
        (status["done"].as_i64(), status["private"].as_i64()),
        (Some(2), Some(1)),
        "{status}"
    );
    assert_eq!(status["failed"], 0, "{status}");
    assert_eq!(status["enabled"], true, "{status}");
    assert!(
        status["sends"].as_str().expect("sends").contains("127.0.0.1"),
        "{status}"
    );
    assert!(
        status["budget"]["used_today"].as_u64().expect("used") > 0,
        "{status}"
    );

    let requests = rig.extraction_requests();
    assert!(requests.len() >= 2, "{requests:?}");
    for request in &requests {
        let text = request.to_string();
        assert!(
            !text.contains(PRIVATE_MARKER),
            "a private document was sent: {text}"
        );
        let format = &request["response_format"];
        let schema = match format["type"].as_str() {
            Some("json_schema") => &format["json_schema"]["schema"],
            Some("json_object") => &format["schema"],
            other => panic!("no structured output asked for: {other:?}"),
        };
        assert_eq!(schema["properties"]["concepts"]["maxItems"], 12, "{schema}");
        assert_eq!(request["model"], LLAMA_MODEL);
    }
    assert!(
        requests.iter().any(|r| r.to_string().contains("harbour master")),
        "the harbour was not sent"
    );
    let private_job = rig.sql(&format!(
        "SELECT state FROM concept_jobs WHERE document_id = '{diary}'"
    ));
    assert_eq!(private_job, "private");
    assert_eq!(rig.mentions_of(&diary), Vec::<String>::new());

    let concepts = status["concepts"].as_i64().expect("concepts");
    assert!(concepts > 0, "the provider's answers gave no concept: {status}");
    assert_graph_is_well_formed(&rig);
    let booked = rig.number("SELECT coalesce(sum(tokens), 0) FROM concept_token_usage");
    assert_eq!(
        Some(booked as u64),
        status["budget"]["used_today"].as_u64(),
        "tokens booked"
    );

    let listed = api.get("/v1/concepts?limit=100").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let list = listed.body["concepts"].as_array().expect("concepts").clone();
    assert_eq!(list.len() as i64, concepts, "{}", listed.body);
    let first = &list[0];
    let id = first["id"].as_str().expect("id");
    let name = first["name"].as_str().expect("name");
    let found = api.get(&format!("/v1/concepts?query={}", urlencode(name))).await;
    assert_eq!(
        found.body["concepts"][0]["id"], id,
        "searching its own name: {}",
        found.body
    );

    let detail = api.get(&format!("/v1/concepts/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let documents: Vec<&str> = detail.body["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert!(
        !documents.is_empty() && documents.iter().all(|d| *d == harbour || *d == library),
        "{documents:?}"
    );
    let mentions = detail.body["mentions"].as_array().expect("mentions");
    assert!(
        !mentions.is_empty()
            && mentions
                .iter()
                .all(|m| !m["snippet"].as_str().unwrap_or("").is_empty())
    );

    // Search carries the chips, and the concept narrows it to the documents that mention it.
    let hits = api
        .post_json("/v1/search", &json!({"query": "harbour tide boats", "k": 10}))
        .await;
    assert_eq!(hits.status, 200, "{}", hits.body);
    let chips = hits.body["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .flat_map(|h| h["concepts"].as_array().cloned().unwrap_or_default())
        .count();
    assert!(chips > 0, "no chips on hits: {}", hits.body);
    let narrowed = api
        .post_json(
            "/v1/search",
            &json!({"query": "harbour tide boats library", "filter": {"concept": id}}),
        )
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    let narrowed = narrowed.body["hits"].as_array().expect("hits");
    assert!(!narrowed.is_empty(), "the concept's own documents are found");
    for hit in narrowed {
        assert!(
            documents.contains(&hit["document_id"].as_str().expect("document")),
            "{hit}"
        );
    }
    let unknown = uuid::Uuid::new_v4();
    api.post_json(
        "/v1/search",
        &json!({"query": "boats", "filter": {"concept": unknown}}),
    )
    .await
    .assert_error(404, ErrorCode::NotFound);

    // Bad input is refused with what to change.
    api.get(&format!("/v1/concepts/{unknown}"))
        .await
        .assert_error(404, ErrorCode::NotFound);
    api.get("/v1/concepts/not-a-uuid")
        .await
        .assert_error(400, ErrorCode::InvalidRequest);
    for bad in ["limit=0", "limit=101", "limit=ten"] {
        let reply = api.get(&format!("/v1/concepts?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
    let long = api.get(&format!("/v1/concepts?query={}", "a".repeat(201))).await;
    assert_eq!(long.status, 400, "{}", long.body);
    let nul = api.get("/v1/concepts?query=a%00b").await;
    assert_eq!(nul.status, 422, "{}", nul.body);
    let huge = api.get(&format!("/v1/concepts?query={}", "a".repeat(6000))).await;
    assert!(huge.status == 400 || huge.status == 431, "{}", huge.body);
    // Invalid UTF-8 in a query string is decoded lossily (U+FFFD), as for every route: an answer, not an error.
    let lossy = api.get("/v1/concepts?query=%FF%FE").await;
    assert_eq!(lossy.status, 200, "{}", lossy.body);
    let empty = api.get("/v1/concepts?query=").await;
    assert_eq!(
        empty.status, 200,
        "an empty query lists the most mentioned: {}",
        empty.body
    );
    api.get(&format!("/v1/concepts/{}", "9".repeat(5000)))
        .await
        .assert_error(400, ErrorCode::InvalidRequest);
    let foreign = reqwest::Client::new()
        .get(format!("{}/v1/concepts", rig.hearthd.url))
        .bearer_auth(TOKEN)
        .header("host", "evil.example")
        .send()
        .await
        .expect("answers");
    assert_eq!(foreign.status(), 403, "a Host hearthd does not answer to");

    the_concept_pages_show_the_graph(&rig, id, name).await;
}

/// The web UI's Concepts page lists the concept and its own page links its documents and passages.
async fn the_concept_pages_show_the_graph(rig: &Rig, id: &str, name: &str) {
    let session = common::Session::sign_in(&rig.hearthd.url, TOKEN, "/concepts").await;
    let escaped = maud::html! { (name) }.into_string();
    let (status, listing) = session.page("/concepts").await;
    assert_eq!(status, 200, "{listing}");
    assert!(listing.contains(&format!("href=\"/concepts/{id}\"")), "{listing}");
    assert!(listing.contains("document(s) extracted"), "{listing}");
    let (status, concept) = session.page(&format!("/concepts/{id}")).await;
    assert_eq!(status, 200, "{concept}");
    assert!(concept.contains(&escaped), "{concept}");
    assert!(
        concept.contains("id=\"concept-documents\"") && concept.contains("href=\"/library/"),
        "{concept}"
    );
    assert!(
        concept.contains("id=\"mentions\"") && concept.contains("#chunk-"),
        "{concept}"
    );
    assert!(
        concept.contains("id=\"concept-graph\"") || concept.contains("id=\"no-neighbours\""),
        "{concept}"
    );
    let (status, missing) = session.page(&format!("/concepts/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, 404, "{missing}");
    let (status, search) = session.page("/search?q=harbour+tide").await;
    assert_eq!(status, 200);
    assert!(
        search.contains("class=\"chip\""),
        "no chips on the search page: {search}"
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_replaces_the_mentions_and_deleting_removes_them_and_their_concepts() {
    let rig = Rig::start(&[]).await;
    rig.consent().await;
    let id = rig.upload(HARBOUR, "Notes", json!({}), Some("notes")).await;
    rig.wait_extraction("the first version extracted", |s| s["done"] == 1)
        .await;
    let first = rig.mentions_of(&id);
    assert!(!first.is_empty(), "the first version has no mentions");

    let again = rig.upload(LIBRARY, "Notes", json!({}), Some("notes")).await;
    assert_eq!(again, id, "a new version of the same document");
    rig.wait_extraction("the second version extracted", |_| {
        rig.sql(&format!(
            "SELECT version || state FROM concept_jobs WHERE document_id = '{id}'"
        )) == "2done"
    })
    .await;
    let stale = rig.number(&format!(
        "SELECT count(*) FROM concept_mentions m JOIN chunks k ON k.id = m.chunk_id \
         WHERE m.document_id = '{id}' AND k.document_id <> '{id}'"
    ));
    assert_eq!(stale, 0);
    let second = rig.mentions_of(&id);
    assert!(!second.is_empty(), "the second version has no mentions");
    let requests = rig.extraction_requests();
    assert!(
        requests.last().expect("asked").to_string().contains("sea charts"),
        "the new text was sent"
    );
    assert_graph_is_well_formed(&rig);

    let concept_ids = rig.sql("SELECT string_agg(id::text, ' ') FROM concepts");
    let deleted = rig.api().delete(&format!("/v1/documents/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(rig.number("SELECT count(*) FROM concept_mentions"), 0);
    assert_eq!(
        rig.number("SELECT count(*) FROM concepts"),
        0,
        "concepts nothing mentions are gone"
    );
    assert_eq!(rig.number("SELECT count(*) FROM concept_jobs"), 0);
    for concept in concept_ids.split_whitespace() {
        rig.api()
            .get(&format!("/v1/concepts/{concept}"))
            .await
            .assert_error(404, ErrorCode::NotFound);
    }
    assert_eq!(rig.extraction().await["concepts"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hearthd_killed_mid_extraction_resumes_and_writes_the_graph_once() {
    let mut rig = Rig::start(&[("HEARTH_INGEST__LEASE_SECONDS", "2")]).await;
    let first = rig.upload(HARBOUR, "Harbour", json!({}), Some("first")).await;
    rig.llama
        .set_behaviour(Duration::from_secs(6), Duration::ZERO)
        .expect("slow provider");
    rig.consent().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.extraction_requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "never asked: {}",
            rig.hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.hearthd.kill();
    let state = rig.sql(&format!(
        "SELECT state || ',' || (claim_token IS NOT NULL) FROM concept_jobs WHERE document_id = '{first}'"
    ));
    assert_eq!(state, "pending,true", "the kill did not land mid-job");
    assert_eq!(
        rig.number("SELECT count(*) FROM concept_mentions"),
        0,
        "written before the answer came"
    );

    rig.llama
        .set_behaviour(Duration::ZERO, Duration::ZERO)
        .expect("fast provider");
    rig.restart().await;
    rig.wait_extraction("the interrupted job finished", |s| s["done"] == 1)
        .await;
    let resumed = rig.mentions_of(&first);
    assert!(!resumed.is_empty(), "no mentions after the restart");
    assert!(rig.hearthd.log_text().contains("concepts extracted"));

    // The same text again, extracted without a crash, gives the same graph: the interrupted attempt left nothing.
    let second = rig
        .upload(HARBOUR, "Harbour again", json!({}), Some("second"))
        .await;
    rig.wait_extraction("the second copy extracted", |s| s["done"] == 2)
        .await;
    assert_eq!(
        rig.mentions_of(&second),
        resumed,
        "a crash-free extraction of the same text"
    );
    let recorded = rig.number(&format!(
        "SELECT concepts FROM concept_jobs WHERE document_id = '{first}'"
    ));
    let distinct = rig.number(&format!(
        "SELECT count(DISTINCT concept_id) FROM concept_mentions WHERE document_id = '{first}'"
    ));
    assert_eq!(recorded, distinct, "the job's count is its graph's");
    assert_graph_is_well_formed(&rig);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_outage_leaves_jobs_pending_with_back_off_and_a_working_provider_finishes_them() {
    let mut rig = Rig::start(&[]).await;
    let id = rig.upload(HARBOUR, "Harbour", json!({}), None).await;
    rig.llama.kill();
    rig.consent().await;
    let waiting = rig
        .wait_extraction("the outage noticed", |s| {
            s["waiting"].as_str().is_some_and(|w| w.contains("127.0.0.1"))
        })
        .await;
    assert_eq!(
        (waiting["pending"].as_i64(), waiting["failed"].as_i64()),
        (Some(1), Some(0)),
        "{waiting}"
    );
    let next: chrono::DateTime<chrono::Utc> = waiting["next_attempt_at"]
        .as_str()
        .expect("next attempt")
        .parse()
        .expect("a time");
    let wait = next - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::seconds(5) && wait <= chrono::Duration::seconds(16),
        "{waiting}"
    );
    let job = rig.sql(&format!(
        "SELECT state || ',' || waits || ',' || attempts || ',' || (last_error IS NOT NULL) FROM concept_jobs \
         WHERE document_id = '{id}'"
    ));
    assert_eq!(job, "pending,1,0,true", "waits once, no attempt counted");

    // A provider that answers, saved in Settings, is asked at once rather than after the back-off.
    rig.llama = tokio::task::spawn_blocking(|| TestLlama::start().expect("llama.cpp's server"))
        .await
        .expect("join");
    rig.consent().await;
    let done = rig
        .wait_extraction("extracted after the outage", |s| s["done"] == 1)
        .await;
    assert_eq!(done["failed"], 0, "{done}");
    assert!(done["waiting"].is_null(), "{done}");
    assert!(!rig.mentions_of(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_switch_keeps_the_graph_and_embeds_the_names_into_the_new_space() {
    let mut rig = Rig::start(&[]).await;
    rig.consent().await;
    let id = rig.upload(HARBOUR, "Harbour", json!({}), None).await;
    rig.wait_extraction("extracted with the first model", |s| s["done"] == 1)
        .await;
    let before = rig.mentions_of(&id);
    let concepts = rig.sql("SELECT string_agg(id::text, ' ' ORDER BY id) FROM concepts");
    assert!(!before.is_empty());
    rig.hearthd.kill();

    // The test model under another id: to hearth a different model, so a new space that the library moves to.
    let renamed = hearth_testkit::test_model_copy().expect("model copy");
    let manifest = renamed.path().join("manifest.json");
    let mut text: Value = serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    text["id"] = json!("hearth-test/minilm-renamed");
    std::fs::write(&manifest, serde_json::to_vec_pretty(&text).expect("json")).expect("write");
    rig.extra.push((
        "HEARTH_EMBEDDING__MODEL_DIR".into(),
        renamed.path().display().to_string(),
    ));
    rig.restart().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let space_of_names = "SELECT string_agg(s.model_id || ':' || s.state || ':' || \
        (SELECT count(*) FROM concept_vectors v WHERE v.space_id = s.id), ' ' ORDER BY s.id) FROM embedding_spaces s";
    let names = rig.number("SELECT count(*) FROM concepts");
    let expected =
        format!("sentence-transformers/all-MiniLM-L6-v2:retired:0 hearth-test/minilm-renamed:active:{names}");
    while rig.sql(space_of_names) != expected {
        assert!(
            Instant::now() < deadline,
            "names not in the new space: {}",
            rig.sql(space_of_names)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        rig.sql("SELECT string_agg(id::text, ' ' ORDER BY id) FROM concepts"),
        concepts
    );
    assert_eq!(rig.mentions_of(&id), before, "the graph is the same");
    let status = rig.extraction().await;
    assert_eq!(
        (status["done"].as_i64(), status["pending"].as_i64()),
        (Some(1), Some(0)),
        "not extracted again"
    );
    let name = rig.sql("SELECT name FROM concepts LIMIT 1");
    let found = rig
        .api()
        .get(&format!("/v1/concepts?query={}", urlencode(&name)))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        !found.body["concepts"].as_array().expect("concepts").is_empty(),
        "{}",
        found.body
    );
}
