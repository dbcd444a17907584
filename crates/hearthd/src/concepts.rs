//! Concept graph routes: listing and searching concepts, one concept with its documents, mentions and
//! neighbours, and where extraction stands (consent, budget, the provider's failures).

use axum::Json;
use axum::extract::{Path, Query, State};
use hearth_api::ErrorBody;
use hearth_api::concepts::{ConceptDetail, ConceptList, ConceptQuery, ExtractionStatus};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::AppState;

/// Concepts whose name or alias contains the query's words, then those closest in meaning; without a query the
/// most mentioned.
#[utoipa::path(
    get, path = "/v1/concepts", operation_id = "list_concepts", tag = "concepts",
    params(ConceptQuery),
    responses(
        (status = 200, body = ConceptList), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a NUL character in the query"), (status = 503, body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ConceptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConceptList>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!(
            "the query string takes query (text) and limit (1 to 100): {}",
            e.body_text()
        ))
    })?;
    Ok(Json(state.concepts.list(&query).await?))
}

/// A concept: the documents and passages that mention it, and its neighbours (typed relations, then concepts
/// mentioned in the same passages).
#[utoipa::path(
    get, path = "/v1/concepts/{id}", operation_id = "get_concept", tag = "concepts",
    params(("id" = Uuid, Path, description = "The concept's id")),
    responses(
        (status = 200, body = ConceptDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
)]
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConceptDetail>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("'{id}' is not a concept id: concept ids are UUIDs")))?;
    Ok(Json(state.concepts.detail(id).await?))
}

/// Whether extraction runs, what it sends where, the day's token budget, and why it waits when it does.
#[utoipa::path(
    get, path = "/v1/concepts/extraction", operation_id = "concept_extraction", tag = "concepts",
    responses((status = 200, body = ExtractionStatus), (status = 503, body = ErrorBody)),
)]
pub async fn extraction(State(state): State<AppState>) -> Result<Json<ExtractionStatus>, ApiError> {
    Ok(Json(state.concepts.status().await?))
}
