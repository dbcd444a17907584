//! `/v1/documents` and `/v1/search`: upload (raw body, multipart or JSON), list, read, delete, and search. Each
//! handler reads its input, calls one verb of the [`Library`](hearth_core::library::Library) and answers its type.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_api::documents::{
    DeleteResponse, DocumentDetail, DocumentList, ListParams, MultipartUpload, Outcome, TextFormat,
    TextUpload, UploadParams, UploadResponse,
};
use hearth_api::search::{SearchRequest, SearchResponse};
use hearth_api::{ContentType, ErrorBody};
use hearth_core::extract::ContentTypeExt as _;
use hearth_core::library::{LibraryError, Upload, parse_metadata};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::AppState;
use crate::input::{Path, Query, parse_json};

/// Upload a document: its bytes with their own `Content-Type`, a multipart form, or JSON text.
#[utoipa::path(
    post, path = "/v1/documents", tag = "documents",
    params(UploadParams),
    request_body(
        description = "The document's bytes (text/plain, text/markdown, text/html, application/pdf), a form with \
                       `file`, or JSON text",
        content(
            (TextUpload = "application/json"),
            (MultipartUpload = "multipart/form-data"),
            (String = "text/plain"),
            (String = "text/markdown"),
            (String = "text/html"),
            (Vec<u8> = "application/pdf"),
        ),
    ),
    responses(
        (status = 202, description = "Stored; processing is queued", body = UploadResponse),
        (status = 200, description = "These bytes were already stored: nothing to do", body = UploadResponse),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
)]
pub async fn upload(
    State(state): State<AppState>,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let upload = read_upload(&state, params, &content_type, request).await?;
    if upload.external_id.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::BadRequest("external_id must not be empty".into()));
    }
    let uploaded = state.library.upload(upload).await?;
    let status = match uploaded.outcome {
        Outcome::Unchanged => StatusCode::OK,
        Outcome::Created | Outcome::NewVersion | Outcome::Retried => StatusCode::ACCEPTED,
    };
    Ok((status, Json(uploaded)).into_response())
}

/// The upload in whichever of the three forms it came.
async fn read_upload(
    state: &AppState,
    params: UploadParams,
    content_type: &str,
    request: Request,
) -> Result<Upload, ApiError> {
    let limit = state.config.ingest.max_document_bytes;
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "multipart/form-data" => {
            let multipart = Multipart::from_request(request, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
            from_multipart(multipart, params, limit).await
        }
        "application/json" => from_json(read_body(request, limit).await?).await,
        "" => Err(ApiError::BadRequest(
            "send a Content-Type: the document's type, multipart/form-data, or application/json".into(),
        )),
        _ => Ok(Upload {
            content_type: ContentType::parse(content_type).map_err(LibraryError::from)?,
            bytes: read_body(request, limit).await?,
            title: params.title,
            external_id: params.external_id,
            metadata: metadata(params.metadata.as_deref())?,
        }),
    }
}

async fn from_json(body: Bytes) -> Result<Upload, ApiError> {
    let upload: TextUpload = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!(
            "the JSON body must be {{\"text\", \"title\"?, \"external_id\"?, \"metadata\"?, \"format\"?: \
             plain|markdown}}: {e}"
        ))
    })?;
    let content_type = match upload.format.unwrap_or_default() {
        TextFormat::Plain => ContentType::Plain,
        TextFormat::Markdown => ContentType::Markdown,
    };
    Ok(Upload {
        bytes: Bytes::from(upload.text.into_bytes()),
        content_type,
        title: upload.title,
        external_id: upload.external_id,
        metadata: upload.metadata.unwrap_or_else(|| json!({})),
    })
}

async fn from_multipart(
    mut multipart: Multipart,
    params: UploadParams,
    limit: usize,
) -> Result<Upload, ApiError> {
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest(e.body_text())
        }
    };
    let mut file: Option<(Bytes, String, Option<String>)> = None;
    let (mut title, mut external_id, mut metadata_text) = (params.title, params.external_id, params.metadata);
    while let Some(field) = multipart.next_field().await.map_err(too_large)? {
        match field.name().unwrap_or_default() {
            "file" => {
                let content_type = field
                    .content_type()
                    .map(str::to_owned)
                    .or_else(|| {
                        field
                            .file_name()
                            .and_then(|name| name.rsplit_once('.'))
                            .and_then(|(_, ext)| ContentType::from_extension(ext))
                            .map(|t| t.mime().to_owned())
                    })
                    .unwrap_or_default();
                let name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(too_large)?;
                file = Some((bytes, content_type, name));
            }
            "title" => title = Some(field.text().await.map_err(too_large)?),
            "external_id" => external_id = Some(field.text().await.map_err(too_large)?),
            "metadata" => metadata_text = Some(field.text().await.map_err(too_large)?),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown form field '{other}': send file, and optionally title, external_id, metadata"
                )));
            }
        }
    }
    let (bytes, content_type, file_name) =
        file.ok_or_else(|| ApiError::BadRequest("the form has no 'file' field".into()))?;
    Ok(Upload {
        bytes,
        content_type: ContentType::parse(&content_type).map_err(LibraryError::from)?,
        title: title.or(file_name),
        external_id,
        metadata: metadata(metadata_text.as_deref())?,
    })
}

async fn read_body(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })
}

/// Metadata sent as text; `{}` when absent.
fn metadata(text: Option<&str>) -> Result<Value, ApiError> {
    Ok(text.map(parse_metadata).transpose()?.unwrap_or_else(|| json!({})))
}

/// Documents, oldest first, a page at a time.
#[utoipa::path(
    get, path = "/v1/documents", tag = "documents",
    params(ListParams),
    responses(
        (status = 200, body = DocumentList),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<DocumentList>, ApiError> {
    Ok(Json(state.library.list(&params).await?))
}

/// One document: its status, chunks, error and pending job.
#[utoipa::path(
    get, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, body = DocumentDetail),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<DocumentDetail>, ApiError> {
    Ok(Json(state.library.document(id).await?))
}

/// The original, always as a download: an uploaded HTML page is never shown as one of hearth's own pages.
#[utoipa::path(
    get, path = "/v1/documents/{id}/content", tag = "documents",
    params(("id" = Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, description = "The original bytes, as an attachment, with the type they were uploaded as",
         content(
             (String = "text/plain"), (String = "text/markdown"), (String = "text/html"),
             (Vec<u8> = "application/pdf"),
         )),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
)]
pub async fn content(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let original = state.library.content(id).await?;
    let mut response = original.bytes.into_response();
    if let Ok(value) = HeaderValue::from_str(&original.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    let extension = ContentType::parse(&original.content_type).map_or("bin", ContentType::extension);
    // The id, not the title: a title is the uploader's text and has no business in a header.
    let disposition = format!("attachment; filename=\"{id}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Deletes a document, its chunks, vectors and (unless another document has the same bytes) its original.
#[utoipa::path(
    delete, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = Uuid, Path, description = "The document's id")),
    responses(
        (status = 200, body = DeleteResponse),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let deleted = state.library.delete(id).await?;
    Ok(Json(DeleteResponse { id, deleted }))
}

/// Search the library by meaning, by words, or both.
#[utoipa::path(
    post, path = "/v1/search", tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, body = SearchResponse),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`filter.concept` names no concept"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
)]
pub async fn search(State(state): State<AppState>, body: Bytes) -> Result<Json<SearchResponse>, ApiError> {
    let request: SearchRequest = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"query\", \"k\"?, \"mode\"?: hybrid|vector|keyword, \"filter\"?: \
             {{\"metadata\"?, \"document_ids\"?}}}}: {e}"
        ))
    })?;
    let hits = state.library.search(&request).await?;
    Ok(Json(SearchResponse {
        mode: request.mode,
        hits,
    }))
}
