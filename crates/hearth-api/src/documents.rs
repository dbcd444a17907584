//! `/v1/documents`: upload, list, read and delete.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Where a document stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentStatus {
    Pending,
    Processing,
    Ready,
    Failed,
}

impl DocumentStatus {
    pub const ALL: [DocumentStatus; 4] = [
        DocumentStatus::Pending,
        DocumentStatus::Processing,
        DocumentStatus::Ready,
        DocumentStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Pending => "pending",
            DocumentStatus::Processing => "processing",
            DocumentStatus::Ready => "ready",
            DocumentStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// A document as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub title: Option<String>,
    /// The JSON object given at upload.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Lower-case hex sha256 of the original's bytes.
    pub content_sha256: String,
    pub content_type: String,
    pub byte_size: i64,
    /// 1 for the first upload under an `external_id`, then one more for each new version.
    pub version: i32,
    pub status: DocumentStatus,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// What processing changed in the text without failing the document (e.g. NUL characters removed).
    pub notes: Vec<String>,
    pub chunk_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/documents/{id}`: the document and its pending job, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DocumentDetail {
    #[serde(flatten)]
    pub document: Document,
    pub job: Option<JobProgress>,
}

/// Where a document's job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobProgress {
    /// `ingest`, or `embed` during an embedding-space switch.
    pub kind: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new document; its ingest job is queued.
    Created,
    /// The same bytes (under the same external id) were already here: nothing to do.
    Unchanged,
    /// New bytes for a known external id: a new version is queued and replaces the old chunks when done.
    NewVersion,
    /// The same bytes as a document that failed: it is queued again (after a fix, uploading again is the retry).
    Retried,
}

impl Outcome {
    /// What the outcome means, in words for the person who uploaded.
    pub fn message(self) -> &'static str {
        match self {
            Outcome::Created => "stored; it will be searchable once processed",
            Outcome::NewVersion => "a new version is stored; it replaces the previous one once processed",
            Outcome::Unchanged => "already stored with the same content: nothing to do",
            Outcome::Retried => "this content had failed before; it is queued to be processed again",
        }
    }
}

/// The answer to an upload: 202 when there is work to do, 200 when the bytes were already stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadResponse {
    pub id: Uuid,
    pub status: DocumentStatus,
    pub version: i32,
    pub outcome: Outcome,
    pub content_sha256: String,
    pub message: String,
}

/// A raw-body upload's optional fields, as query parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    pub title: Option<String>,
    pub external_id: Option<String>,
    /// A JSON object, URL-encoded.
    pub metadata: Option<String>,
}

/// The format of a JSON upload's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TextFormat {
    #[default]
    Plain,
    Markdown,
}

/// A JSON upload: text typed or pasted rather than a file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextUpload {
    pub text: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// A JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub format: Option<TextFormat>,
}

/// A multipart upload's fields (for the OpenAPI document; hearthd reads the parts as they stream).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct MultipartUpload {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub title: Option<String>,
    pub external_id: Option<String>,
    /// A JSON object, as text.
    pub metadata: Option<String>,
}

/// The most documents one page lists.
pub const MAX_PAGE: i64 = 500;
/// How many one page lists when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 50;

/// `GET /v1/documents`'s query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only documents in this state.
    #[param(value_type = Option<DocumentStatus>)]
    pub status: Option<String>,
    /// A JSON object the documents' metadata must contain.
    pub metadata: Option<String>,
    /// Documents per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only documents with exactly these bytes (lower-case hex sha256).
    pub content_sha256: Option<String>,
}

/// One page of documents, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<Document>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `DELETE /v1/documents/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteResponse {
    pub id: Uuid,
    /// Whether there was a document to delete; deleting again answers `false`.
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_parses_from_the_name_it_serializes_as() {
        for status in DocumentStatus::ALL {
            let json = serde_json::to_value(status).expect("serializes");
            assert_eq!(json.as_str(), Some(status.as_str()));
            assert_eq!(DocumentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(DocumentStatus::parse("done"), None);
    }
}
