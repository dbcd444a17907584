//! axum's path and query extractors with hearth's error body: a malformed id or parameter is a 400 with
//! `{code, message}` saying what to change, like every other error, not axum's plain-text rejection. And JSON
//! bodies parsed where a large one cannot stall the async workers.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, rejection};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection::PathRejection::FailedToDeserializePathParams(error)) => {
                Err(ApiError::BadRequest(format!(
                    "the path parameter is not valid ({}): a document id is a UUID such as \
                 0192f4e8-6b1c-7c3a-9d2e-5f6a7b8c9d0e",
                    error.body_text()
                )))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| {
                ApiError::BadRequest(format!(
                    "the query string is not valid: {}",
                    rejection.body_text()
                ))
            })
    }
}

/// Bodies up to this size are parsed in place; larger ones (up to the body limits, megabytes) on a blocking thread.
const INLINE_JSON_BYTES: usize = 64 * 1024;

/// Parses a JSON body. Parsing is CPU work proportional to the body, so a large one runs on a blocking thread,
/// leaving the async workers to the requests that share them.
pub async fn parse_json<T>(body: Bytes) -> Result<T, String>
where
    T: DeserializeOwned + Send + 'static,
{
    if body.len() <= INLINE_JSON_BYTES {
        return serde_json::from_slice(&body).map_err(|e| e.to_string());
    }
    tokio::task::spawn_blocking(move || serde_json::from_slice(&body).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(format!("the parsing task failed: {e}")))
}
