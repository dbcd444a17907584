//! The error bodies: hearth's `{code, message}`, and OpenAI's envelope on the OpenAI-compatible routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong, as a stable machine-readable code; `message` says what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    PayloadTooLarge,
    HeadersTooLarge,
    TooManyInputs,
    ModelNotFound,
    NotReady,
    Timeout,
    Overloaded,
    Unauthorized,
    HostNotAllowed,
    CrossSite,
    NoRoute,
    MethodNotAllowed,
    Internal,
    InvalidInput,
    InputTooLong,
    DimensionsNotSupported,
    QueueFull,
    ShuttingDown,
    UnsupportedMediaType,
    EmptyDocument,
    InvalidUtf8,
    UnreadableDocument,
    InvalidMetadata,
    InvalidText,
    InvalidQuery,
    NotFound,
    DatabaseUnavailable,
    BlobStoreUnavailable,
    ReasoningOff,
    ProviderDeclared,
    EncryptionUnavailable,
    ProviderKeyUnreadable,
    ProviderRefused,
    ProviderUnreachable,
    ProviderTimeout,
}

impl ErrorCode {
    /// The code as it appears in a body.
    pub fn as_str(self) -> &'static str {
        use ErrorCode as C;
        match self {
            C::InvalidRequest => "invalid_request",
            C::PayloadTooLarge => "payload_too_large",
            C::HeadersTooLarge => "headers_too_large",
            C::TooManyInputs => "too_many_inputs",
            C::ModelNotFound => "model_not_found",
            C::NotReady => "not_ready",
            C::Timeout => "timeout",
            C::Overloaded => "overloaded",
            C::Unauthorized => "unauthorized",
            C::HostNotAllowed => "host_not_allowed",
            C::CrossSite => "cross_site",
            C::NoRoute => "no_route",
            C::MethodNotAllowed => "method_not_allowed",
            C::Internal => "internal",
            C::InvalidInput => "invalid_input",
            C::InputTooLong => "input_too_long",
            C::DimensionsNotSupported => "dimensions_not_supported",
            C::QueueFull => "queue_full",
            C::ShuttingDown => "shutting_down",
            C::UnsupportedMediaType => "unsupported_media_type",
            C::EmptyDocument => "empty_document",
            C::InvalidUtf8 => "invalid_utf8",
            C::UnreadableDocument => "unreadable_document",
            C::InvalidMetadata => "invalid_metadata",
            C::InvalidText => "invalid_text",
            C::InvalidQuery => "invalid_query",
            C::NotFound => "not_found",
            C::DatabaseUnavailable => "database_unavailable",
            C::BlobStoreUnavailable => "blob_store_unavailable",
            C::ReasoningOff => "reasoning_off",
            C::ProviderDeclared => "provider_declared",
            C::EncryptionUnavailable => "encryption_unavailable",
            C::ProviderKeyUnreadable => "provider_key_unreadable",
            C::ProviderRefused => "provider_refused",
            C::ProviderUnreachable => "provider_unreachable",
            C::ProviderTimeout => "provider_timeout",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error hearth's own routes return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// What went wrong and what to change; never internal detail.
    pub message: String,
}

/// The error envelope of the OpenAI-compatible routes (`/v1/embeddings`, `/v1/models`), which OpenAI's clients read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiError {
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub code: ErrorCode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_serializes_as_the_string_as_str_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidUtf8,
            ErrorCode::BlobStoreUnavailable,
            ErrorCode::CrossSite,
        ] {
            let json = serde_json::to_value(code).expect("serializes");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).expect("parses"), code);
        }
    }
}
