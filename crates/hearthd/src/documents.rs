//! `/v1/documents` and `/v1/search`: upload (raw body, multipart or JSON), list, read, delete, and search.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hearth_core::extract::ContentType;
use hearth_core::library::{Hit, SearchMode, SearchRequest, Upload};
use hearth_core::store::documents::{self, Document, ListFilter, Outcome};
use hearth_core::store::search::SearchFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::AppState;
use crate::input::{Path, Query, parse_json};

/// Optional fields of a raw-body upload, as query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    title: Option<String>,
    external_id: Option<String>,
    /// A JSON object, URL-encoded.
    metadata: Option<String>,
}

/// A JSON upload: text typed or pasted rather than a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonUpload {
    text: String,
    title: Option<String>,
    external_id: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    /// `plain` (default) or `markdown`.
    #[serde(default)]
    format: Option<String>,
}

pub async fn upload(
    State(state): State<AppState>,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let limit = state.config.ingest.max_document_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let upload = match essence.as_str() {
        "multipart/form-data" => {
            let multipart = Multipart::from_request(request, &state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
            from_multipart(multipart, params, limit).await?
        }
        "application/json" => {
            let body = read_body(request, limit).await?;
            let json: JsonUpload = parse_json(body).await.map_err(|e| {
                ApiError::BadRequest(format!(
                    "the JSON body must be {{\"text\", \"title\"?, \"external_id\"?, \"metadata\"?, \"format\"?}}: {e}"
                ))
            })?;
            let content_type = match json.format.as_deref() {
                None | Some("plain") => ContentType::Plain,
                Some("markdown") => ContentType::Markdown,
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "format '{other}' is not known: use \"plain\" or \"markdown\""
                    )));
                }
            };
            Upload {
                bytes: Bytes::from(json.text.into_bytes()),
                content_type,
                title: json.title,
                external_id: json.external_id,
                metadata: json.metadata.unwrap_or_else(|| json!({})),
            }
        }
        "" => {
            return Err(ApiError::BadRequest(
                "send a Content-Type: the document's type, multipart/form-data, or application/json".into(),
            ));
        }
        _ => {
            let content_type =
                ContentType::parse(&content_type).map_err(hearth_core::library::LibraryError::from)?;
            Upload {
                bytes: read_body(request, limit).await?,
                content_type,
                title: params.title,
                external_id: params.external_id,
                metadata: parse_metadata(params.metadata.as_deref())?,
            }
        }
    };
    if upload.external_id.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::BadRequest("external_id must not be empty".into()));
    }
    let (document, outcome) = state.library.upload(upload).await?;
    let (status, message) = match outcome {
        Outcome::Created => (
            StatusCode::ACCEPTED,
            "stored; it will be searchable once processed",
        ),
        Outcome::NewVersion => (
            StatusCode::ACCEPTED,
            "a new version is stored; it replaces the previous one once processed",
        ),
        Outcome::Unchanged => (
            StatusCode::OK,
            "already stored with the same content: nothing to do",
        ),
        Outcome::Retried => (
            StatusCode::ACCEPTED,
            "this content had failed before; it is queued to be processed again",
        ),
    };
    let body = json!({
        "id": document.id,
        "status": document.status,
        "version": document.version,
        "outcome": outcome,
        "content_sha256": document.content_sha256,
        "message": message,
    });
    Ok((status, Json(body)).into_response())
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
    let (mut title, mut external_id, mut metadata) = (params.title, params.external_id, params.metadata);
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
            "metadata" => metadata = Some(field.text().await.map_err(too_large)?),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown form field '{other}': send file, and optionally title, external_id, metadata"
                )));
            }
        }
    }
    let (bytes, content_type, file_name) =
        file.ok_or_else(|| ApiError::BadRequest("the form has no 'file' field".into()))?;
    let content_type = ContentType::parse(&content_type).map_err(hearth_core::library::LibraryError::from)?;
    Ok(Upload {
        bytes,
        content_type,
        title: title.or(file_name),
        external_id,
        metadata: parse_metadata(metadata.as_deref())?,
    })
}

async fn read_body(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })
}

fn parse_metadata(text: Option<&str>) -> Result<Value, ApiError> {
    match text {
        None => Ok(json!({})),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("metadata is not valid JSON: {e}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    /// A JSON object the documents' metadata must contain.
    metadata: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only documents with exactly these bytes (lower-case hex sha256).
    content_sha256: Option<String>,
}

const STATUSES: [&str; 4] = ["pending", "processing", "ready", "failed"];

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(status) = &params.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::BadRequest(format!(
            "status '{status}' is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 500".into()));
    }
    let metadata = params
        .metadata
        .as_deref()
        .map(|m| parse_metadata(Some(m)))
        .transpose()?;
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = ListFilter {
        status: params.status,
        metadata,
        after,
        content_sha256: params.content_sha256,
        limit: limit + 1,
    };
    let mut found = documents::list(state.library.pool()?, &filter)
        .await
        .map_err(hearth_core::library::LibraryError::from)?;
    let next = (found.len() as i64 > limit).then(|| {
        found.truncate(limit as usize);
        found.last().map(encode_cursor)
    });
    Ok(Json(json!({ "documents": found, "next_cursor": next.flatten() })))
}

fn encode_cursor(document: &Document) -> String {
    let raw = format!("{}|{}", document.created_at.to_rfc3339(), document.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<(chrono::DateTime<chrono::Utc>, Uuid), ApiError> {
    let bad =
        || ApiError::BadRequest("cursor is not one this server handed out: start again without it".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (time, id) = raw.split_once('|').ok_or_else(bad)?;
    let time = chrono::DateTime::parse_from_rfc3339(time).map_err(|_| bad())?;
    Ok((time.with_timezone(&chrono::Utc), id.parse().map_err(|_| bad())?))
}

pub async fn get_one(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<Value>, ApiError> {
    let pool = state.library.pool()?;
    let document = documents::get(pool, id)
        .await
        .map_err(hearth_core::library::LibraryError::from)?
        .ok_or(hearth_core::library::LibraryError::NotFound(id))?;
    let job = hearth_core::store::jobs::progress(pool, id)
        .await
        .map_err(hearth_core::library::LibraryError::from)?;
    let mut body = serde_json::to_value(&document).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["job"] = serde_json::to_value(job).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(body))
}

/// The original, always as a download: an uploaded HTML page is never shown as one of hearth's own pages.
pub async fn content(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let (document, bytes) = state.library.content(id).await?;
    let mut response = bytes.into_response();
    if let Ok(value) = HeaderValue::from_str(&document.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    let extension = ContentType::parse(&document.content_type).map_or("bin", |kind| match kind {
        ContentType::Plain => "txt",
        ContentType::Markdown => "md",
        ContentType::Html => "html",
        ContentType::Pdf => "pdf",
    });
    // The id, not the title: a title is the uploader's text and has no business in a header.
    let disposition = format!("attachment; filename=\"{id}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<Value>, ApiError> {
    let deleted = state.library.delete(id).await?;
    Ok(Json(json!({ "id": id, "deleted": deleted })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    query: String,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    mode: SearchMode,
    #[serde(default)]
    filter: Option<FilterBody>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    metadata: Option<Value>,
    document_ids: Option<Vec<Uuid>>,
}

fn default_k() -> usize {
    10
}

pub async fn search(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: SearchBody = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"query\", \"k\"?, \"mode\"?: hybrid|vector|keyword, \"filter\"?: \
             {{\"metadata\"?, \"document_ids\"?}}}}: {e}"
        ))
    })?;
    let filter = body.filter.unwrap_or_default();
    let request = SearchRequest {
        query: body.query,
        k: body.k,
        mode: body.mode,
        filter: SearchFilter {
            metadata: filter.metadata,
            document_ids: filter.document_ids,
        },
    };
    let hits: Vec<Hit> = state.library.search(&request).await?;
    Ok(Json(json!({ "mode": request.mode, "hits": hits })))
}
