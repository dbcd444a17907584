//! Router and shared state.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_api::status::{
    self as api, BlobsState, ComponentStatus, DatabaseState, Health, QueueState, Readiness, ReadyStatus,
    RemoteEmbeddingState, RemoteEmbeddingStatus, SchemaState, SchemaStatus, Serving,
};
use hearth_core::concepts::Concepts;
use hearth_core::config::Config;
use hearth_core::embed::Embedder;
use hearth_core::embed::remote::{IngestFallback, RemoteEmbedder, RemoteStatus};
use hearth_core::library::{Library, SchemaHold};
use hearth_core::reasoning::Reasoning;
use prometheus_client::registry::Registry;

use crate::auth::{self, Auth};
use crate::error::ApiError;
use crate::observe::{self, HttpMetrics};
use crate::{browser, capabilities, concepts, documents, mcp, openai, openapi, reasoning, ui};

#[derive(Clone)]
pub enum ModelState {
    /// Verifying and loading `model` (its manifest id, or the directory) since `since`.
    Loading {
        since: Instant,
        model: String,
    },
    /// Loaded and verified: it serves `/v1/embeddings` and `/v1/models`, which need no database, while documents
    /// and search wait for the database.
    Loaded(Embedder),
    Ready(Embedder),
    /// Could not be loaded (a file missing or damaged, onnxruntime or CUDA unusable); hearthd serves the rest.
    Failed {
        model: String,
        reason: String,
    },
}

/// The model slot: `Loading` until the background load finishes.
#[derive(Clone)]
pub struct ModelSlot(Arc<RwLock<ModelState>>);

impl ModelSlot {
    pub fn set(&self, state: ModelState) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = state;
    }

    pub fn get(&self) -> ModelState {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The embedder, once loaded (with or without a database), or 503 while the model is still loading.
    pub fn embedder(&self) -> Result<Embedder, ApiError> {
        match self.get() {
            ModelState::Ready(embedder) | ModelState::Loaded(embedder) => Ok(embedder),
            ModelState::Loading { .. } => {
                Err(ApiError::NotReady("the embedding model is still loading".into()))
            }
            // The reason (paths, library errors) is for the operator: /readyz and the log carry it.
            ModelState::Failed { .. } => Err(ApiError::NotReady(
                "the embedding model failed to load; an operator must fix it (see /readyz)".into(),
            )),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub library: Arc<Library>,
    pub reasoning: Arc<Reasoning>,
    pub concepts: Arc<Concepts>,
    pub config: Arc<Config>,
    pub model: ModelSlot,
    pub registry: Arc<Registry>,
    pub http_metrics: Arc<HttpMetrics>,
}

impl AppState {
    pub fn new(
        library: Arc<Library>,
        reasoning: Arc<Reasoning>,
        concepts: Arc<Concepts>,
        config: Arc<Config>,
        registry: Registry,
        http_metrics: Arc<HttpMetrics>,
    ) -> Self {
        let loading = ModelState::Loading {
            since: Instant::now(),
            model: config.embedding.model_dir.display().to_string(),
        };
        Self {
            library,
            reasoning,
            concepts,
            config,
            model: ModelSlot(Arc::new(RwLock::new(loading))),
            registry: Arc::new(registry),
            http_metrics,
        }
    }
}

pub fn router(state: AppState, auth: Arc<Auth>) -> Router {
    let body_limit = state.config.api.max_body_bytes;
    let document_limit = state.config.ingest.max_document_bytes;
    let limits = Arc::clone(&state.config);
    let authentication = (Arc::clone(&auth), Some(Arc::clone(&state.library)));
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/capabilities", get(capabilities::capabilities))
        .route(
            "/v1/documents",
            post(documents::upload)
                .layer(DefaultBodyLimit::max(document_limit))
                .get(documents::list),
        )
        .route(
            "/v1/documents/{id}",
            get(documents::get_one).delete(documents::delete),
        )
        .route("/v1/documents/{id}/content", get(documents::content))
        .route("/v1/search", post(documents::search))
        .route("/v1/concepts", get(concepts::list))
        .route("/v1/concepts/extraction", get(concepts::extraction))
        .route("/v1/concepts/{id}", get(concepts::detail))
        .merge(reasoning_routes(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // A declared length over the limit is refused before a byte of the body is read.
        .layer(axum::middleware::from_fn_with_state(
            (body_limit, document_limit),
            check_content_length,
        ))
        .layer(axum::middleware::from_fn_with_state(
            authentication,
            auth::authenticate,
        ))
        .with_state(state.clone());
    // The pages check their session themselves: a browser that is not signed in is sent to sign in, not refused.
    api.merge(ui::router(state.clone(), auth))
        // tower's layers, so that one handler turns both limits into hearth's JSON errors.
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    move |error: tower::BoxError| async move { limit_error(&error, &limits) },
                ))
                .load_shed()
                // Global: axum gives each route its own copy of a layer, and the limit is for all of them.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    state.config.api.max_concurrent_requests,
                ))
                .timeout(Duration::from_secs(state.config.api.request_timeout_seconds)),
        )
        // Before authentication: the Host allowlist and cross-site refusals apply to every caller, loopback too.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(browser::AllowedHosts::new(&state.config.api.allowed_hosts)),
            browser::guard,
        ))
        // Outermost: malformed or oversized headers are refused before authentication looks at them.
        .layer(axum::middleware::from_fn(check_headers))
        // Around everything, so requests refused by a limit or the header check are logged and counted too.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.http_metrics),
            observe::observe,
        ))
}

/// The provider's settings, answers, model `hearth`'s chat completions and MCP.
fn reasoning_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/settings/reasoning",
            get(reasoning::get_settings)
                .put(reasoning::put_settings)
                .delete(reasoning::delete_settings),
        )
        .route("/v1/settings/reasoning/test", post(reasoning::test_settings))
        .route("/v1/answer", post(reasoning::answer))
        .route("/v1/chat/completions", post(reasoning::chat_completions))
        .nest_service(
            "/mcp",
            mcp::service(
                Arc::clone(&state.library),
                Arc::clone(&state.reasoning),
                state.config.api.max_body_bytes,
            ),
        )
}

/// `metrics.listen`: `/metrics` alone, behind the same authentication and request log as the API.
pub fn metrics_router(state: AppState, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            (auth, None),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(check_headers))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.http_metrics),
            observe::observe,
        ))
        .with_state(state)
}

/// The answer when a request meets `api.max_concurrent_requests` (shed at once, not queued) or
/// `api.request_timeout_seconds`.
fn limit_error(error: &tower::BoxError, config: &Config) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout {
            seconds: config.api.request_timeout_seconds,
        }
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded {
            limit: config.api.max_concurrent_requests,
        }
    } else {
        ApiError::Internal(format!("request limits: {error}"))
    }
}

/// The answer for a path no route has, in hearth's error body.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::NoRoute { path }
}

/// The answer for a route that exists, with a method it does not take; axum adds the `Allow` header.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let error = ApiError::MethodNotAllowed {
        method: method.as_str().chars().take(20).collect(),
    };
    respond(uri.path(), error)
}

/// An error in the envelope its route speaks: OpenAI's on the OpenAI-compatible routes, hearth's elsewhere.
fn respond(path: &str, error: ApiError) -> Response {
    if openai::ROUTES.contains(&path) {
        openai::OpenAiError::from(error).into_response()
    } else {
        error.into_response()
    }
}

/// 413 at once for a `Content-Length` over the route's limit (`ingest.max_document_bytes` for uploads,
/// `api.max_body_bytes` for the rest), instead of waiting for a body that may never come.
async fn check_content_length(
    State((body_limit, document_limit)): State<(usize, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let limit = if request.method() == axum::http::Method::POST && request.uri().path() == "/v1/documents" {
        document_limit
    } else {
        body_limit
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return respond(request.uri().path(), ApiError::PayloadTooLarge { limit });
    }
    next.run(request).await
}

/// Largest total size of a request's headers: names, values and their separators.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Refuses headers over [`MAX_HEADER_BYTES`] together (431) and header values with control characters (400).
/// hyper already rejects most control characters while parsing; this also covers what its parser lets through.
async fn check_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        tracing::warn!(size, "refused a request with oversized headers");
        return ApiError::HeadersTooLarge {
            size,
            limit: MAX_HEADER_BYTES,
        }
        .into_response();
    }
    let control = |byte: &u8| (*byte < 0x20 && *byte != b'\t') || *byte == 0x7f;
    if let Some((name, _)) = headers
        .iter()
        .find(|(_, value)| value.as_bytes().iter().any(control))
    {
        return ApiError::BadRequest(format!("header '{name}' contains a control character: remove it"))
            .into_response();
    }
    next.run(request).await
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "status", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Ready when the database answers with pgvector at the current schema, the blob store takes a write, read and
/// delete, and the model is loaded; otherwise 503 with the same JSON naming what is missing. `serving` says which
/// parts of the API work meanwhile (embeddings without a database, documents and keyword search without a model).
#[utoipa::path(
    get, path = "/readyz", tag = "status",
    responses(
        (status = 200, description = "Everything is ready", body = Readiness),
        (status = 503, description = "Something is missing: the body says what", body = Readiness),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = readiness(&state).await;
    let status = match readiness.status {
        ReadyStatus::Ready => StatusCode::OK,
        ReadyStatus::NotReady => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(readiness)).into_response()
}

pub(crate) async fn readiness(state: &AppState) -> Readiness {
    let library = &state.library;
    let (database, database_ok) = database_state(library).await;
    let (schema, schema_ok) = schema_state(library).await;
    let (blobs, blobs_ok) = blobs_state(library).await;
    let (model, model_ok) = model_state(state.model.get());
    let queue = library
        .queue_depth()
        .await
        .ok()
        .map(|(depth, oldest_seconds)| QueueState {
            depth,
            oldest_seconds,
        });
    let ready = database_ok && schema_ok && blobs_ok && model_ok;
    // Each part of the API serves as soon as what it needs is there: embeddings need only the model.
    let documents = database_ok && schema_ok && blobs_ok;
    Readiness {
        status: if ready {
            ReadyStatus::Ready
        } else {
            ReadyStatus::NotReady
        },
        database,
        schema,
        blobs,
        model,
        queue,
        serving: Serving {
            embeddings: state.model.embedder().is_ok(),
            documents,
            keyword_search: documents,
            search: ready,
        },
        remote_embedding: library
            .remote_embedder()
            .map(|remote| remote_embedding_state(remote)),
    }
}

fn remote_embedding_state(remote: &RemoteEmbedder) -> RemoteEmbeddingState {
    let report = remote.report();
    let config = remote.config();
    RemoteEmbeddingState {
        url: report.url,
        status: match report.status {
            RemoteStatus::Checking => RemoteEmbeddingStatus::Checking,
            RemoteStatus::Ready => RemoteEmbeddingStatus::Ready,
            RemoteStatus::Mismatch(_) => RemoteEmbeddingStatus::Mismatch,
            RemoteStatus::Unreachable(_) => RemoteEmbeddingStatus::Unreachable,
        },
        message: report.status.message().map(str::to_owned),
        seen_seconds_ago: report.seen_seconds_ago,
        queries: config.queries,
        ingest_fallback: match config.ingest_fallback {
            IngestFallback::Local => "local",
            IngestFallback::Wait => "wait",
        }
        .into(),
    }
}

async fn database_state(library: &Library) -> (DatabaseState, bool) {
    match library.probe_database().await {
        Ok(probe) => {
            let problem = probe.problem();
            let ok = problem.is_none();
            let state = DatabaseState {
                postgres: Some(probe.postgres),
                pgvector: probe.pgvector,
                error: problem.map(|problem| problem.to_string()),
            };
            (state, ok)
        }
        Err(error) => {
            tracing::warn!(%error, "database not reachable");
            let state = DatabaseState {
                error: Some("waiting for the database".into()),
                ..DatabaseState::default()
            };
            (state, false)
        }
    }
}

async fn schema_state(library: &Library) -> (SchemaState, bool) {
    let state = |status, version, expected, reason| SchemaState {
        status,
        version,
        expected,
        reason,
    };
    match library.schema_hold() {
        Some(SchemaHold::BackingUp { from, to }) => {
            return (state(SchemaStatus::BackingUp, Some(from), Some(to), None), false);
        }
        Some(SchemaHold::Blocked { from, to, reason }) => {
            return (
                state(SchemaStatus::Blocked, Some(from), Some(to), Some(reason)),
                false,
            );
        }
        Some(SchemaHold::Incompatible {
            version,
            known,
            reason,
        }) => {
            return (
                state(
                    SchemaStatus::Incompatible,
                    Some(version),
                    Some(known),
                    Some(reason),
                ),
                false,
            );
        }
        None => {}
    }
    match library.schema_version().await {
        Ok((applied, newest)) if library.pool().is_ok() && applied.is_some_and(|v| v >= newest) => {
            (state(SchemaStatus::Current, applied, None, None), true)
        }
        Ok((applied, newest)) => (state(SchemaStatus::Migrating, applied, Some(newest), None), false),
        Err(_) => (state(SchemaStatus::Unknown, None, None, None), false),
    }
}

async fn blobs_state(library: &Library) -> (BlobsState, bool) {
    let store = library.blobs();
    match store.probe().await {
        Ok(()) => {
            let state = BlobsState {
                status: ComponentStatus::Ready,
                store: store.describe().to_owned(),
                error: None,
            };
            (state, true)
        }
        Err(error) => {
            tracing::warn!(%error, "the blob store probe failed");
            let state = BlobsState {
                status: ComponentStatus::Failed,
                store: store.describe().to_owned(),
                error: Some(error.to_string()),
            };
            (state, false)
        }
    }
}

fn model_state(model: ModelState) -> (api::ModelState, bool) {
    match model {
        ModelState::Ready(embedder) => {
            let manifest = embedder.manifest();
            let state = api::ModelState::Ready {
                id: manifest.id.clone(),
                dims: manifest.dims,
            };
            (state, true)
        }
        ModelState::Loading { since, model } => {
            let state = api::ModelState::Loading {
                model,
                elapsed_seconds: since.elapsed().as_secs(),
            };
            (state, false)
        }
        ModelState::Loaded(embedder) => {
            let manifest = embedder.manifest();
            let state = api::ModelState::Loaded {
                id: manifest.id.clone(),
                dims: manifest.dims,
                waiting_for: "the database".into(),
            };
            (state, false)
        }
        ModelState::Failed { model, reason } => (api::ModelState::Failed { model, error: reason }, false),
    }
}

/// Prometheus series, in OpenMetrics text.
#[utoipa::path(
    get, path = "/metrics", tag = "status",
    responses(
        (status = 200, description = "OpenMetrics text exposition",
         content((String = "application/openmetrics-text; version=1.0.0; charset=utf-8"))),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.http_metrics.refresh(&state.library).await;
    let mut body = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        return ApiError::Internal(format!("encoding metrics: {error}")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
