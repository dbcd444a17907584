//! Router and shared state.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_core::config::Config;
use hearth_core::embed::Embedder;
use hearth_core::library::Library;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::auth::{self, Auth};
use crate::error::ApiError;
use crate::observe::{self, HttpMetrics};
use crate::{browser, capabilities, documents, openai};

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
    pub pool: PgPool,
    pub library: Arc<Library>,
    pub config: Arc<Config>,
    pub model: ModelSlot,
    pub registry: Arc<Registry>,
    pub http_metrics: Arc<HttpMetrics>,
}

impl AppState {
    pub fn new(
        pool: PgPool,
        library: Arc<Library>,
        config: Arc<Config>,
        registry: Registry,
        http_metrics: Arc<HttpMetrics>,
    ) -> Self {
        let loading = ModelState::Loading {
            since: Instant::now(),
            model: config.embedding.model_dir.display().to_string(),
        };
        Self {
            pool,
            library,
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
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // A declared length over the limit is refused before a byte of the body is read.
        .layer(axum::middleware::from_fn_with_state(
            (body_limit, document_limit),
            check_content_length,
        ))
        .layer(axum::middleware::from_fn_with_state(auth, auth::authenticate))
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
        .with_state(state)
}

/// `metrics.listen`: `/metrics` alone, behind the same authentication and request log as the API.
pub fn metrics_router(state: AppState, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(auth, auth::authenticate))
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

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Ready when the database answers with pgvector at the current schema, the blob store takes a write, read and
/// delete, and the model is loaded; otherwise 503 with the same JSON naming what is missing. `serving` says which
/// parts of the API work meanwhile (embeddings without a database, documents and keyword search without a model).
async fn readyz(State(state): State<AppState>) -> Response {
    let probe = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT current_setting('server_version'), \
                (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
    )
    .fetch_one(&state.pool)
    .await;
    let (database, database_ok) = match probe {
        Ok((postgres, Some(pgvector))) => (json!({ "postgres": postgres, "pgvector": pgvector }), true),
        Ok((postgres, None)) => (
            json!({ "postgres": postgres, "error": "pgvector is missing: run CREATE EXTENSION vector as superuser" }),
            false,
        ),
        Err(error) => {
            tracing::warn!(%error, "database not reachable");
            (json!({ "error": "waiting for the database" }), false)
        }
    };
    let (model, model_ok) = match state.model.get() {
        ModelState::Ready(embedder) => (
            json!({ "status": "ready", "id": embedder.manifest().id, "dims": embedder.manifest().dims }),
            true,
        ),
        ModelState::Loading { since, model } => (
            json!({ "status": "loading", "model": model, "elapsed_seconds": since.elapsed().as_secs() }),
            false,
        ),
        ModelState::Loaded(embedder) => (
            json!({ "status": "loaded", "id": embedder.manifest().id, "dims": embedder.manifest().dims,
                    "waiting_for": "the database" }),
            false,
        ),
        ModelState::Failed { model, reason } => (
            json!({ "status": "failed", "model": model, "error": reason }),
            false,
        ),
    };
    let (schema, schema_ok) = match hearth_core::store::schema_version(&state.pool).await {
        Ok((applied, newest)) if applied == Some(newest) && state.library.pool().is_ok() => {
            (json!({ "version": newest, "status": "current" }), true)
        }
        Ok((applied, newest)) => (
            json!({ "version": applied, "expected": newest, "status": "migrating" }),
            false,
        ),
        Err(_) => (json!({ "status": "unknown" }), false),
    };
    let store = state.library.blobs();
    let (blobs, blobs_ok) = match store.probe().await {
        Ok(()) => (json!({ "status": "ready", "store": store.describe() }), true),
        Err(error) => {
            tracing::warn!(%error, "the blob store probe failed");
            (
                json!({ "status": "failed", "store": store.describe(), "error": error.to_string() }),
                false,
            )
        }
    };
    let queue = match state.library.queue_depth().await {
        Ok((depth, oldest)) => json!({ "depth": depth, "oldest_seconds": oldest }),
        Err(_) => Value::Null,
    };
    let ready = database_ok && schema_ok && blobs_ok && model_ok;
    // Each part of the API serves as soon as what it needs is there: embeddings need only the model.
    let embeddings = state.model.embedder().is_ok();
    let documents_ok = database_ok && schema_ok && blobs_ok;
    let serving = json!({
        "embeddings": embeddings,
        "documents": documents_ok,
        "keyword_search": documents_ok,
        "search": ready,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "schema": schema,
        "blobs": blobs,
        "model": model,
        "queue": queue,
        "serving": serving,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    state
        .http_metrics
        .refresh(&state.pool, state.library.pool().is_ok())
        .await;
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
