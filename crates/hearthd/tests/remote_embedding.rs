//! A fleet's embedding: one hearthd (a Pi) embeds its ingest, and by setting its queries, on another hearthd (the
//! workstation) through `/v1/embeddings`, only while that one serves the same space, and falls back to its own
//! model (or waits) when the remote is gone. Two real hearthd processes, one PostgreSQL, the test model.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::{Value, json};

const TOKEN: &str = "fleet-token-of-the-remote-embedding-test-0123456789";
const BREAD: &str = "Knead the dough for ten minutes, let it rise for an hour, then bake the loaf at 220 degrees \
                     until the crust is golden. Keep the loaf in a linen bag.";
const GARAGE: &str = "Garage is a lightweight object store that speaks the S3 protocol and replicates data across \
                      several machines in different zones.";

fn hearthd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hearthd"))
}

/// The workstation's own API token (the fleet token opens only its embedding routes, not /metrics).
const WS_API_TOKEN: &str = "the-workstations-own-api-token-0123456789abcdef";

/// A credentials directory holding `name` = `value`, 0400, as systemd would pass it.
fn credentials(name: &str, value: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    add_credential(dir.path(), name, value);
    dir
}

fn add_credential(dir: &Path, name: &str, value: &str) {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write the credential");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
}

/// The workstation's credentials: its api-token and the fleet's token.
fn workstation_credentials() -> tempfile::TempDir {
    let dir = credentials("fleet-token", TOKEN);
    add_credential(dir.path(), "api-token", WS_API_TOKEN);
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The workstation: it accepts the fleet token and nothing from loopback without one.
fn workstation(db: &str, credentials: &Path, extra: &[(&str, &str)]) -> TestHearthd {
    let mut settings = vec![
        ("CREDENTIALS_DIRECTORY", path_str(credentials)),
        ("HEARTH_AUTH__TRUST_LOOPBACK", "false"),
        ("HEARTH_AUTH__OPEN_ROUTES", r#"["/healthz", "/readyz"]"#),
    ];
    settings.extend_from_slice(extra);
    TestHearthd::start(&hearthd_bin(), db, &settings).expect("the workstation's hearthd starts")
}

/// A Pi whose embedding goes to `remote` (with the token in its `embedding-remote-token` credential).
fn pi(db: &str, credentials: &Path, remote: &str, extra: &[(&str, &str)]) -> TestHearthd {
    let mut settings = vec![
        ("CREDENTIALS_DIRECTORY", path_str(credentials)),
        ("HEARTH_EMBEDDING__REMOTE__URL", remote),
        ("HEARTH_EMBEDDING__REMOTE__CHECK_SECONDS", "1"),
    ];
    settings.extend_from_slice(extra);
    TestHearthd::start(&hearthd_bin(), db, &settings).expect("the Pi's hearthd starts")
}

/// The value of the sample `name{labels…}` in Prometheus text.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{text}"))
}

/// `/metrics` of a hearthd, with the fleet token when it wants one.
async fn metrics(url: &str, token: Option<&str>) -> String {
    let request = reqwest::Client::new().get(format!("{url}/metrics"));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.expect("metrics answer");
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.expect("metrics text")
}

fn backend(text: &str, backend: &str, class: &str) -> f64 {
    metric(
        text,
        "hearth_embed_backend_inputs_total",
        &[("backend", backend), ("class", class)],
    )
}

/// Waits until the Pi's `/readyz` shows the remote embedder as `status`; returns that part of it.
async fn remote_state(hearthd: &TestHearthd, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = hearthd.api().get("/readyz").await;
        let remote = reply.body["remote_embedding"].clone();
        if remote["status"] == status {
            return remote;
        }
        assert!(
            Instant::now() < deadline,
            "the remote embedder never became {status}: {remote}\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn upload(hearthd: &TestHearthd, text: &str, title: &str) -> String {
    let reply = hearthd
        .api()
        .post_bytes(&format!("/v1/documents?title={title}"), "text/plain", text)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.body["id"].as_str().expect("an id").to_owned()
}

async fn document(hearthd: &TestHearthd, id: &str) -> Value {
    let reply = hearthd.api().get(&format!("/v1/documents/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn settled(hearthd: &TestHearthd, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let document = document(hearthd, id).await;
        if document["status"] == "ready" || document["status"] == "failed" {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {document}\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn top_hit(hearthd: &TestHearthd, query: &str) -> String {
    let reply = hearthd
        .api()
        .post_json("/v1/search", &json!({"query": query, "mode": "vector", "k": 1}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["hits"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_and_queries_go_to_the_remote_and_fall_back_at_once_when_it_is_gone() {
    let pg = TestPostgres::start().expect("postgres");
    let (db_pi, db_ws) = (
        pg.create_database().expect("db"),
        pg.create_database().expect("db"),
    );
    let ws_credentials = workstation_credentials();
    let pi_credentials = credentials("embedding-remote-token", TOKEN);
    let mut ws = workstation(&db_ws, ws_credentials.path(), &[]);
    ws.ready().await;
    let pi = pi(
        &db_pi,
        pi_credentials.path(),
        &ws.url,
        &[("HEARTH_EMBEDDING__REMOTE__QUERIES", "true")],
    );
    pi.ready().await;
    let remote = remote_state(&pi, "ready").await;
    assert_eq!(remote["url"], ws.url.as_str(), "{remote}");

    // The fleet token every box holds opens the embedding routes, and nothing else of the workstation.
    let fleet = hearth_testkit::Api::new(&ws.url).with_token(TOKEN);
    assert_eq!(fleet.get("/v1/capabilities").await.status, 200);
    let refused = fleet.get("/v1/documents").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("fleet token opens only"),
        "{}",
        refused.body
    );

    let before = metrics(&ws.url, Some(WS_API_TOKEN)).await;
    let id = upload(&pi, BREAD, "bread").await;
    let bread = settled(&pi, &id).await;
    assert_eq!(bread["status"], "ready", "{bread}");
    let pi_metrics = metrics(&pi.url, None).await;
    assert!(backend(&pi_metrics, "remote", "ingest") >= 1.0, "{pi_metrics}");
    assert_eq!(
        backend(&pi_metrics, "local", "ingest"),
        0.0,
        "nothing embedded on the Pi"
    );
    let after = metrics(&ws.url, Some(WS_API_TOKEN)).await;
    let api_inputs = |text: &str| metric(text, "hearth_embed_inputs_total", &[("class", "api")]);
    assert_eq!(
        api_inputs(&after) - api_inputs(&before),
        backend(&pi_metrics, "remote", "ingest"),
        "the workstation embedded exactly the Pi's chunks"
    );

    // A query embedded remotely finds the remotely embedded chunks.
    assert_eq!(top_hit(&pi, "how long to knead dough").await, "bread");
    let pi_metrics = metrics(&pi.url, None).await;
    assert_eq!(backend(&pi_metrics, "remote", "query"), 1.0, "{pi_metrics}");

    // The workstation goes away: the next query is answered locally at once, and it is the same space.
    assert!(ws.terminate(), "the workstation stops");
    assert_eq!(top_hit(&pi, "how long to knead dough").await, "bread");
    let pi_metrics = metrics(&pi.url, None).await;
    assert_eq!(backend(&pi_metrics, "local", "query"), 1.0, "{pi_metrics}");
    let down = remote_state(&pi, "unreachable").await;
    assert!(
        down["message"].as_str().is_some_and(|m| m.contains(&ws.url)),
        "{down}"
    );
    assert_eq!(
        pi.api().get("/readyz").await.status,
        200,
        "the Pi itself stays ready"
    );

    // Ingest falls back to the local model (the default) and is searchable with the earlier chunks.
    let id = upload(&pi, GARAGE, "garage").await;
    assert_eq!(settled(&pi, &id).await["status"], "ready");
    let pi_metrics = metrics(&pi.url, None).await;
    assert!(backend(&pi_metrics, "local", "ingest") >= 1.0, "{pi_metrics}");
    assert_eq!(top_hit(&pi, "an S3 object store").await, "garage");
    assert_eq!(top_hit(&pi, "baking a loaf").await, "bread");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_of_another_space_or_refusing_the_token_is_never_used() {
    let pg = TestPostgres::start().expect("postgres");
    let other_model = hearth_testkit::test_model_copy().expect("model copy");
    let manifest_path = other_model.path().join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("manifest")).expect("json");
    let local_id = manifest["id"].as_str().expect("id").to_owned();
    manifest["id"] = json!("someone/another-model");
    std::fs::write(&manifest_path, manifest.to_string()).expect("write manifest");

    let ws_credentials = workstation_credentials();
    let ws = workstation(
        &pg.create_database().expect("db"),
        ws_credentials.path(),
        &[("HEARTH_EMBEDDING__MODEL_DIR", path_str(other_model.path()))],
    );
    ws.ready().await;
    let pi_credentials = credentials("embedding-remote-token", TOKEN);
    let pi = pi(
        &pg.create_database().expect("db"),
        pi_credentials.path(),
        &ws.url,
        &[],
    );
    pi.ready().await;
    let mismatch = remote_state(&pi, "mismatch").await;
    let message = mismatch["message"].as_str().expect("a message");
    assert!(
        message.contains("someone/another-model") && message.contains(&local_id),
        "both spaces are named: {message}"
    );
    let id = upload(&pi, BREAD, "bread").await;
    assert_eq!(settled(&pi, &id).await["status"], "ready");
    let pi_metrics = metrics(&pi.url, None).await;
    assert_eq!(backend(&pi_metrics, "remote", "ingest"), 0.0, "{pi_metrics}");
    assert!(backend(&pi_metrics, "local", "ingest") >= 1.0, "{pi_metrics}");

    // The right space but a token the remote does not accept: refused, and the message says what to fix.
    let wrong = credentials("embedding-remote-token", &"x".repeat(43));
    let other_pi = self::pi(&pg.create_database().expect("db"), wrong.path(), &ws.url, &[]);
    other_pi.ready().await;
    let refused = remote_state(&other_pi, "unreachable").await;
    let message = refused["message"].as_str().expect("a message");
    assert!(message.contains("401") && message.contains("token"), "{message}");
    assert!(
        !message.contains(&"x".repeat(43)),
        "the token is never shown: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fallback_wait_ingest_waits_for_the_remote_instead_of_using_the_pis_cores() {
    let pg = TestPostgres::start().expect("postgres");
    let db_ws = pg.create_database().expect("db");
    let ws_credentials = workstation_credentials();
    let mut ws = workstation(&db_ws, ws_credentials.path(), &[]);
    ws.ready().await;
    let listen = ws.url.trim_start_matches("http://").to_owned();
    let pi_credentials = credentials("embedding-remote-token", TOKEN);
    let pi = pi(
        &pg.create_database().expect("db"),
        pi_credentials.path(),
        &ws.url,
        &[("HEARTH_EMBEDDING__REMOTE__INGEST_FALLBACK", "wait")],
    );
    pi.ready().await;
    remote_state(&pi, "ready").await;
    assert!(ws.terminate(), "the workstation stops");
    remote_state(&pi, "unreachable").await;

    let id = upload(&pi, BREAD, "bread").await;
    // Several back-off rounds pass; the document waits, and the Pi's model embeds nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waiting = document(&pi, &id).await;
    assert_ne!(waiting["status"], "ready", "{waiting}");
    assert_ne!(waiting["status"], "failed", "waiting is not failing: {waiting}");
    assert_eq!(backend(&metrics(&pi.url, None).await, "local", "ingest"), 0.0);

    // The workstation comes back on its address: the document is embedded there.
    let ws = workstation(
        &db_ws,
        ws_credentials.path(),
        &[("HEARTH_LISTEN", listen.as_str())],
    );
    ws.ready().await;
    assert_eq!(settled(&pi, &id).await["status"], "ready");
    let pi_metrics = metrics(&pi.url, None).await;
    assert!(backend(&pi_metrics, "remote", "ingest") >= 1.0, "{pi_metrics}");
    assert_eq!(backend(&pi_metrics, "local", "ingest"), 0.0, "{pi_metrics}");
}

/// What a hostile "remote" answers to `/v1/embeddings`, in turn.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// 8 MiB of JSON-looking bytes: more than any answer for a group could be.
    Huge,
    /// Vectors of the wrong size.
    WrongDimensions,
    /// A 200 that is not JSON.
    Garbage,
}

/// A server at the remote's address that claims the Pi's own space (its capabilities, copied from the Pi) and then
/// answers embeddings with `mode`.
async fn hostile_remote(
    capabilities: std::sync::Arc<tokio::sync::OnceCell<Value>>,
    mode: std::sync::Arc<std::sync::Mutex<Hostile>>,
) -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/v1/capabilities",
            get(move || {
                let capabilities = capabilities.clone();
                async move { axum::Json(capabilities.get().cloned().unwrap_or(Value::Null)) }
            }),
        )
        .route(
            "/v1/embeddings",
            post(move || {
                let mode = *mode.lock().expect("mode");
                async move {
                    match mode {
                        Hostile::Huge => format!("{{\"data\": \"{}\"}}", "A".repeat(8 << 20)),
                        Hostile::WrongDimensions => json!({
                            "object": "list",
                            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
                            "model": "x",
                            "usage": {"prompt_tokens": 1, "total_tokens": 1},
                        })
                        .to_string(),
                        Hostile::Garbage => "<html>a captive portal</html>\0\u{fffd}".to_owned(),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_that_answers_garbage_is_marked_unreachable_and_the_documents_are_embedded_locally() {
    let pg = TestPostgres::start().expect("postgres");
    let capabilities = std::sync::Arc::new(tokio::sync::OnceCell::new());
    let mode = std::sync::Arc::new(std::sync::Mutex::new(Hostile::Huge));
    let url = hostile_remote(capabilities.clone(), mode.clone()).await;
    let pi_credentials = credentials("embedding-remote-token", TOKEN);
    let pi = pi(
        &pg.create_database().expect("db"),
        pi_credentials.path(),
        &url,
        &[],
    );
    pi.ready().await;
    // The impostor claims exactly the Pi's space, so the Pi uses it: what it sends back must still be refused.
    let own = pi.api().get("/v1/capabilities").await;
    assert_eq!(own.status, 200);
    capabilities.set(own.body).expect("set once");
    for (round, hostile) in [Hostile::Huge, Hostile::WrongDimensions, Hostile::Garbage]
        .into_iter()
        .enumerate()
    {
        *mode.lock().expect("mode") = hostile;
        remote_state(&pi, "ready").await;
        let id = upload(&pi, &format!("{BREAD} ({hostile:?})"), &format!("round-{round}")).await;
        let document = settled(&pi, &id).await;
        assert_eq!(document["status"], "ready", "{hostile:?}: {document}");
        let down = remote_state(&pi, "unreachable").await;
        let message = down["message"].as_str().unwrap_or_default();
        assert!(message.contains("cannot be used"), "{hostile:?}: {message}");
        let pi_metrics = metrics(&pi.url, None).await;
        assert_eq!(
            backend(&pi_metrics, "local", "ingest"),
            (round + 1) as f64,
            "{hostile:?}: embedded here instead"
        );
        assert_eq!(backend(&pi_metrics, "remote", "ingest"), 0.0, "{hostile:?}");
    }
    assert_eq!(
        pi.api().get("/readyz").await.status,
        200,
        "the Pi stays up and ready"
    );
    assert!(!pi.log_text().contains("panicked"), "{}", pi.log_text());
}
