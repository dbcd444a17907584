//! Every error hearthd returns, mapped to an HTTP status in one exhaustive match. Bodies are `{code, message}`;
//! the OpenAI-compatible routes wrap the same fields in OpenAI's envelope (see `openai.rs`). Internal details are
//! logged, never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_api::{ErrorBody, ErrorCode};
use hearth_core::embed::EmbedError;
use hearth_core::extract::ExtractError;
use hearth_core::library::LibraryError;
use hearth_core::reasoning::{ProviderError, ReasoningError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes: send less at once")]
    PayloadTooLarge { limit: usize },
    #[error(
        "the request headers take {size} bytes; at most {limit} are accepted: send fewer or shorter headers"
    )]
    HeadersTooLarge { size: usize, limit: usize },
    #[error("{count} inputs in one request; at most {max} are accepted: split the request")]
    TooManyInputs { count: usize, max: usize },
    #[error("model '{requested}' is not served here; this server has '{served}'")]
    ModelNotFound { requested: String, served: String },
    #[error("{0}")]
    NotReady(String),
    #[error(
        "the request did not complete within {seconds} s (api.request_timeout_seconds): send less at once, or raise \
         the limit"
    )]
    Timeout { seconds: u64 },
    #[error(
        "hearthd is already serving {limit} requests (api.max_concurrent_requests): retry shortly, or send fewer \
         at once"
    )]
    Overloaded { limit: usize },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    #[error("there is nothing at {path}: hearth's routes are listed in its README (HTTP API)")]
    NoRoute { path: String },
    #[error("{method} is not allowed on this route: the Allow header lists what is")]
    MethodNotAllowed { method: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Reasoning(#[from] ReasoningError),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Status, stable machine code, and the message shown to the client.
    pub fn parts(&self) -> (StatusCode, ErrorCode, String) {
        let message = self.to_string();
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, message)
            }
            ApiError::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::HeadersTooLarge,
                message,
            ),
            ApiError::TooManyInputs { .. } => (StatusCode::BAD_REQUEST, ErrorCode::TooManyInputs, message),
            ApiError::ModelNotFound { .. } => (StatusCode::NOT_FOUND, ErrorCode::ModelNotFound, message),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady, message),
            ApiError::Timeout { .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Timeout, message),
            ApiError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Overloaded, message),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, *code, message),
            ApiError::NoRoute { .. } => (StatusCode::NOT_FOUND, ErrorCode::NoRoute, message),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                message,
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, message),
            ApiError::Embed(error) => embed_parts(error, message),
            ApiError::Library(error) => library_parts(error, message),
            ApiError::Reasoning(ReasoningError::Library(error)) => library_parts(error, message),
            ApiError::Reasoning(error) => reasoning_parts(error, message),
        }
    }

    fn log(&self, status: StatusCode) {
        match self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            other if status == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %other, "request failed")
            }
            // Unavailable for now (starting, database or blob store away): worth a warning, not an alarm.
            other if status.is_server_error() => tracing::warn!(error = %other, "request refused for now"),
            _ => {}
        }
    }
}

fn embed_parts(error: &EmbedError, message: String) -> (StatusCode, ErrorCode, String) {
    use EmbedError as E;
    match error {
        E::NoInputs | E::EmptyInput { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, message),
        E::InputTooLong { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InputTooLong, message),
        E::DimensionsNotSupported { .. } => (
            StatusCode::BAD_REQUEST,
            ErrorCode::DimensionsNotSupported,
            message,
        ),
        E::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::QueueFull, message),
        E::RequestLargerThanQueue { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooManyInputs, message)
        }
        E::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ShuttingDown, message),
        E::Model(_)
        | E::OnnxRuntimeNotConfigured
        | E::OnnxRuntime { .. }
        | E::Session { .. }
        | E::CudaNotBuiltIn { .. }
        | E::Tokenizer(_)
        | E::Inference(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error".into(),
        ),
    }
}

fn reasoning_parts(error: &ReasoningError, message: String) -> (StatusCode, ErrorCode, String) {
    use ReasoningError as R;
    match error {
        R::NoProvider | R::AnswersOff => (StatusCode::CONFLICT, ErrorCode::ReasoningOff, message),
        R::Declared => (StatusCode::CONFLICT, ErrorCode::ProviderDeclared, message),
        R::NoEncryptionKey(_) | R::EncryptionKey(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EncryptionUnavailable,
            message,
        ),
        R::KeyUnreadable | R::KeyFile { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ProviderKeyUnreadable,
            message,
        ),
        R::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message),
        R::Provider { error, .. } => provider_parts(error, message),
        R::Library(error) => library_parts(error, message),
    }
}

/// The provider's own failure: 502 for what it answered, 503 when it cannot be reached, 504 when it went quiet.
fn provider_parts(error: &ProviderError, message: String) -> (StatusCode, ErrorCode, String) {
    match error {
        ProviderError::Refused { status, .. } => {
            let hint = match status {
                401 | 403 => ": check the provider's API key in Settings",
                404 => ": check the provider's base URL and model in Settings",
                429 => ": the provider is limiting requests; wait and ask again",
                _ => "",
            };
            (
                StatusCode::BAD_GATEWAY,
                ErrorCode::ProviderRefused,
                format!("{message}{hint}"),
            )
        }
        ProviderError::Interrupted(_) | ProviderError::Malformed(_) => {
            (StatusCode::BAD_GATEWAY, ErrorCode::ProviderRefused, message)
        }
        ProviderError::Unreachable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ProviderUnreachable,
            message,
        ),
        ProviderError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::ProviderTimeout, message),
    }
}

fn library_parts(error: &LibraryError, message: String) -> (StatusCode, ErrorCode, String) {
    use LibraryError as L;
    match error {
        L::Extract(extract) => match extract {
            ExtractError::Unsupported(_) | ExtractError::Charset(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                message,
            ),
            ExtractError::Empty => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::EmptyDocument,
                message,
            ),
            ExtractError::InvalidUtf8 { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidUtf8, message)
            }
            ExtractError::Pdf(_)
            | ExtractError::Html(_)
            | ExtractError::NoText
            | ExtractError::TooManyPages { .. }
            | ExtractError::Encrypted => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::UnreadableDocument,
                message,
            ),
        },
        L::MetadataNotObject => (StatusCode::BAD_REQUEST, ErrorCode::InvalidMetadata, message),
        L::UnstorableText { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidText, message),
        L::InvalidQuery(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, message),
        L::InvalidRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message),
        L::NotFound(_) | L::ConceptNotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, message),
        L::ModelNotReady | L::Starting => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady, message),
        L::Embed(error) => embed_parts(error, message),
        L::Store(error) if error.is_transient() => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseUnavailable,
            "the database is not reachable right now; try again shortly".into(),
        ),
        L::Store(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error".into(),
        ),
        L::Blob(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::BlobStoreUnavailable,
            "the blob store is not reachable right now; try again shortly".into(),
        ),
        L::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error".into(),
        ),
    }
}

impl ApiError {
    /// Renders with the given body builder, adding Retry-After where waiting helps.
    pub fn render<B: serde::Serialize>(
        &self,
        body: impl FnOnce(StatusCode, ErrorCode, String) -> B,
    ) -> Response {
        let (status, code, message) = self.parts();
        self.log(status);
        let mut response = (status, Json(body(status, code, message))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(|_, code, message| ErrorBody { code, message })
    }
}
