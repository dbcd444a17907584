//! The OpenAI-compatible surface: `POST /v1/embeddings` and `GET /v1/models`, with OpenAI's error envelope
//! `{error: {message, type, code}}` so existing clients understand the failures.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hearth_core::embed::{EmbedRequest, Embedder, InputKind, Priority};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::AppState;
use crate::input::parse_json;

/// The routes that answer in OpenAI's envelope.
pub const ROUTES: &[&str] = &["/v1/embeddings", "/v1/models"];

/// An [`ApiError`] rendered in OpenAI's envelope.
pub struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<hearth_core::embed::EmbedError> for OpenAiError {
    fn from(error: hearth_core::embed::EmbedError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        self.0.render(|status, code, message| {
            let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                "rate_limit_error"
            } else if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            };
            json!({ "error": { "message": message, "type": kind, "code": code } })
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<i64>),
    TokenBatches(Vec<Vec<i64>>),
}

#[derive(Debug, Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

#[derive(Debug, Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum InputType {
    Query,
    #[default]
    Document,
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    model: Option<String>,
    #[serde(default)]
    encoding_format: EncodingFormat,
    dimensions: Option<usize>,
    /// Accepted for compatibility; hearth keeps no per-user state.
    #[allow(dead_code)]
    user: Option<String>,
    /// hearth extension: cut over-long inputs instead of refusing them (reported in `truncated`).
    #[serde(default)]
    truncate: bool,
    /// hearth extension: which task prefix the model gets (`document` unless told otherwise).
    #[serde(default)]
    input_type: InputType,
}

pub async fn embeddings(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: state.config.api.max_body_bytes,
            }
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    let request: EmbeddingsRequest = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!("the request body is not a valid embeddings request: {e}"))
    })?;
    let embedder = state.model.embedder()?;
    check_model(&embedder, request.model.as_deref())?;
    let inputs = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
        Input::Tokens(tokens) => return Err(token_arrays_unsupported(tokens.len()).into()),
        Input::TokenBatches(batches) => {
            return Err(token_arrays_unsupported(batches.iter().map(Vec::len).sum()).into());
        }
    };
    let max = state.config.api.max_inputs_per_request;
    if inputs.len() > max {
        return Err(ApiError::TooManyInputs {
            count: inputs.len(),
            max,
        }
        .into());
    }
    let kind = match request.input_type {
        InputType::Query => InputKind::Query,
        InputType::Document => InputKind::Document,
    };
    let mut embed_request = EmbedRequest::new(inputs, kind, Priority::Api);
    embed_request.truncate = request.truncate;
    embed_request.dimensions = request.dimensions;
    // Tokenizing a large request is CPU work: keep it off the async workers.
    let submitter = embedder.clone();
    let pending = tokio::task::spawn_blocking(move || submitter.submit(embed_request))
        .await
        .map_err(|e| ApiError::Internal(format!("submit task: {e}")))??;
    let embedded = pending.wait().await?;

    let prompt_tokens: usize = embedded.tokens.iter().sum();
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match request.encoding_format {
                EncodingFormat::Float => json!(vector),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let mut response = json!({
        "object": "list",
        "data": data,
        "model": embedder.manifest().id,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    });
    if !embedded.truncated.is_empty() {
        response["truncated"] = json!(embedded.truncated);
    }
    Ok(Json(response))
}

pub async fn models(State(state): State<AppState>) -> Result<Json<Value>, OpenAiError> {
    let embedder = state.model.embedder()?;
    Ok(Json(json!({
        "object": "list",
        "data": [{
            "id": embedder.manifest().id,
            "object": "model",
            "created": 0,
            "owned_by": "hearth",
        }],
    })))
}

fn token_arrays_unsupported(tokens: usize) -> ApiError {
    ApiError::BadRequest(format!(
        "token arrays are not supported (got {tokens} token ids): send the text itself as a string or an array of \
         strings"
    ))
}

/// The served model answers to its upstream id and to its directory name; no model named means the served one.
fn check_model(embedder: &Embedder, requested: Option<&str>) -> Result<(), ApiError> {
    let Some(requested) = requested else {
        return Ok(());
    };
    let id = &embedder.manifest().id;
    let dir_name = embedder
        .model_dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if requested == id || requested == dir_name {
        return Ok(());
    }
    Err(ApiError::ModelNotFound {
        requested: requested.to_owned(),
        served: id.clone(),
    })
}
