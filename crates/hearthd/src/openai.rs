//! The OpenAI-compatible surface: `POST /v1/embeddings`, `GET /v1/models` (and model `hearth`'s chat completions
//! in `reasoning.rs`), with OpenAI's error envelope
//! `{error: {message, type, code}}` so existing clients understand the failures.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hearth_api::openai::{
    Embedding, EmbeddingInput, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat,
    InputType, ModelList, ModelObject, Usage,
};
use hearth_api::{OpenAiErrorBody, error::OpenAiError as OpenAiErrorDetail};
use hearth_core::embed::{EmbedRequest, Embedder, InputKind, Priority};

use crate::error::ApiError;
use crate::http::AppState;
use crate::input::parse_json;

/// The routes that answer in OpenAI's envelope.
pub const ROUTES: &[&str] = &["/v1/embeddings", "/v1/models", "/v1/chat/completions"];

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
            OpenAiErrorBody {
                error: OpenAiErrorDetail {
                    message,
                    kind: kind.to_owned(),
                    code,
                },
            }
        })
    }
}

/// OpenAI-compatible embeddings from the model on the box.
#[utoipa::path(
    post, path = "/v1/embeddings", tag = "openai",
    request_body = EmbeddingsRequest,
    responses(
        (status = 200, body = EmbeddingsResponse),
        (status = 400, body = OpenAiErrorBody), (status = 404, body = OpenAiErrorBody),
        (status = 413, body = OpenAiErrorBody), (status = 429, body = OpenAiErrorBody),
        (status = 503, body = OpenAiErrorBody),
    ),
)]
pub async fn embeddings(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EmbeddingsResponse>, OpenAiError> {
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
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
        EmbeddingInput::Tokens(tokens) => return Err(token_arrays_unsupported(tokens.len()).into()),
        EmbeddingInput::TokenBatches(batches) => {
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
    let data = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| Embedding {
            object: "embedding".into(),
            index,
            embedding: encode(vector, request.encoding_format),
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list".into(),
        data,
        model: embedder.manifest().id.clone(),
        usage: Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
        truncated: embedded.truncated,
    }))
}

fn encode(vector: Vec<f32>, format: EncodingFormat) -> EmbeddingVector {
    match format {
        EncodingFormat::Float => EmbeddingVector::Float(vector.into_iter().map(f64::from).collect()),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// The model this hearthd serves.
#[utoipa::path(
    get, path = "/v1/models", tag = "openai",
    responses((status = 200, body = ModelList), (status = 503, body = OpenAiErrorBody)),
)]
pub async fn models(State(state): State<AppState>) -> Result<Json<ModelList>, OpenAiError> {
    let embedder = state.model.embedder()?;
    Ok(Json(ModelList {
        object: "list".into(),
        data: vec![
            ModelObject {
                id: embedder.manifest().id.clone(),
                object: "model".into(),
                created: 0,
                owned_by: "hearth".into(),
            },
            // Chat completions answer from the library under this name (see reasoning.rs).
            ModelObject {
                id: hearth_api::reasoning::CHAT_MODEL.into(),
                object: "model".into(),
                created: 0,
                owned_by: "hearth".into(),
            },
        ],
    }))
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
