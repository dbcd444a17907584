//! Uploading, reading, listing and deleting documents.

use base64::Engine as _;
use bytes::Bytes;
use hearth_api::documents::{
    DEFAULT_PAGE, DocumentDetail, DocumentList, DocumentStatus, ListParams, MAX_PAGE, Outcome, UploadResponse,
};
use serde_json::Value;
use uuid::Uuid;

use super::{Library, LibraryError, Upload, storable, storable_json};
use crate::digest::sha256_hex;
use crate::extract::ContentTypeExt as _;
use crate::store::StoreError;
use crate::store::documents::{self, Document, ListFilter, NewDocument};
use crate::store::jobs;

impl Library {
    /// Stores the original durably and records the document; returns once both are committed. The original is
    /// written before the transaction that records it, so no database connection or lock waits on the write; an
    /// announcement keeps a concurrent delete or sweep of the same bytes from removing it in between.
    pub async fn upload(&self, upload: Upload) -> Result<UploadResponse, LibraryError> {
        self.pool()?;
        if !upload.metadata.is_object() {
            return Err(LibraryError::MetadataNotObject);
        }
        storable("title", upload.title.as_deref())?;
        storable("external_id", upload.external_id.as_deref())?;
        storable_json("metadata", &upload.metadata)?;
        // Validating and hashing up to max_document_bytes is CPU work: off the async runtime.
        let (bytes, sha256) = {
            let (content_type, bytes) = (upload.content_type, upload.bytes.clone());
            tokio::task::spawn_blocking(move || {
                content_type.validate(&bytes)?;
                let sha256 = sha256_hex(&bytes);
                Ok::<_, LibraryError>((bytes, sha256))
            })
            .await
            .map_err(|e| LibraryError::Internal(format!("hashing task failed: {e}")))??
        };
        let new = NewDocument {
            content_sha256: sha256.clone(),
            content_type: upload.content_type.mime().to_owned(),
            byte_size: bytes.len() as i64,
            title: upload.title,
            external_id: upload.external_id,
            metadata: upload.metadata,
        };
        let announcement = documents::announce_upload(&self.pool, &sha256).await?;
        let recorded = async {
            self.blobs.put(&sha256, bytes).await?;
            let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
            // The external id's lock first, then the content's: the order every path takes.
            if let Some(external_id) = &new.external_id {
                documents::lock_external_id(&mut tx, external_id).await?;
            }
            documents::lock_content(&mut tx, &sha256).await?;
            let accepted = documents::accept(&mut tx, &new).await?;
            documents::withdraw_upload(&mut *tx, announcement).await?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok::<_, LibraryError>(accepted)
        }
        .await;
        let accepted = match recorded {
            Ok(accepted) => accepted,
            Err(error) => {
                // The blob, if written, is an orphan now: the sweep removes it after its grace period.
                if let Err(withdraw) = documents::withdraw_upload(&self.pool, announcement).await {
                    tracing::warn!(error = %withdraw, "could not withdraw an upload's announcement; it expires");
                }
                return Err(error);
            }
        };
        if accepted.outcome != Outcome::Unchanged {
            self.work.notify_one();
        }
        if let Some(replaced) = &accepted.replaced_sha256 {
            self.collect(replaced).await;
        }
        let document = accepted.document;
        Ok(UploadResponse {
            id: document.id,
            status: document.status(),
            version: document.version,
            outcome: accepted.outcome,
            content_sha256: document.content_sha256,
            message: accepted.outcome.message().to_owned(),
        })
    }

    /// The original bytes and their type.
    pub async fn content(&self, id: Uuid) -> Result<Original, LibraryError> {
        self.pool()?;
        let document = documents::get(&self.pool, id)
            .await?
            .ok_or(LibraryError::NotFound(id))?;
        let bytes = self.blobs.get(&document.content_sha256).await?;
        Ok(Original {
            content_type: document.content_type,
            bytes,
        })
    }

    /// One document and its pending job.
    pub async fn document(&self, id: Uuid) -> Result<DocumentDetail, LibraryError> {
        let pool = self.pool()?;
        let document = documents::get(pool, id)
            .await?
            .ok_or(LibraryError::NotFound(id))?;
        let job = jobs::progress(pool, id).await?;
        Ok(DocumentDetail {
            document: document.into(),
            job: job.map(Into::into),
        })
    }

    /// A page of documents, oldest first, with the cursor of the next page.
    pub async fn list(&self, params: &ListParams) -> Result<DocumentList, LibraryError> {
        let pool = self.pool()?;
        let filter = list_filter(params)?;
        let limit = filter.limit - 1;
        let mut found = documents::list(pool, &filter).await?;
        let next_cursor = if found.len() as i64 > limit {
            found.truncate(limit as usize);
            found.last().map(encode_cursor)
        } else {
            None
        };
        Ok(DocumentList {
            documents: found.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }

    /// Deletes the document, its chunks, vectors and (unless another document has the same bytes) its original.
    /// The rows go first, in their transaction; the original only once that is committed, so a failed commit
    /// never leaves a document without its bytes. Returns whether there was such a document.
    pub async fn delete(&self, id: Uuid) -> Result<bool, LibraryError> {
        self.pool()?;
        let Some(document) = documents::get(&self.pool, id).await? else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        if let Some(external_id) = &document.external_id {
            documents::lock_external_id(&mut tx, external_id).await?;
        }
        documents::lock_content(&mut tx, &document.content_sha256).await?;
        let Some(deleted) = documents::delete(&mut tx, id).await? else {
            return Ok(false);
        };
        tx.commit().await.map_err(StoreError::from)?;
        self.collect(&deleted.content_sha256).await;
        // Its embed job went with it: if that was the last one, the switch is complete now.
        self.finish_switch_if_complete().await;
        Ok(true)
    }
}

/// An original's bytes and the type it was uploaded as.
#[derive(Debug)]
pub struct Original {
    pub content_type: String,
    pub bytes: Bytes,
}

/// The store's filter for a list query, refusing parameters that cannot be answered with what to change.
fn list_filter(params: &ListParams) -> Result<ListFilter, LibraryError> {
    if let Some(status) = &params.status
        && DocumentStatus::parse(status).is_none()
    {
        let known: Vec<&str> = DocumentStatus::ALL.iter().map(|s| s.as_str()).collect();
        return Err(LibraryError::InvalidRequest(format!(
            "status '{status}' is not one of {}",
            known.join(", ")
        )));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(LibraryError::InvalidRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let metadata = params.metadata.as_deref().map(parse_metadata).transpose()?;
    if let Some(metadata) = &metadata {
        if !metadata.is_object() {
            return Err(LibraryError::MetadataNotObject);
        }
        storable_json("metadata", metadata)?;
    }
    if let Some(sha256) = &params.content_sha256
        && !(sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(LibraryError::InvalidRequest(
            "content_sha256 must be 64 lower-case hex digits (a sha256 of the document's bytes)".into(),
        ));
    }
    Ok(ListFilter {
        status: params.status.clone(),
        metadata,
        after: params.cursor.as_deref().map(decode_cursor).transpose()?,
        content_sha256: params.content_sha256.clone(),
        // One more than asked, to know whether there is a next page.
        limit: limit + 1,
    })
}

/// Metadata sent as text (a query parameter, a form field): a JSON object, `{}` when absent.
pub fn parse_metadata(text: &str) -> Result<Value, LibraryError> {
    serde_json::from_str(text)
        .map_err(|e| LibraryError::InvalidRequest(format!("metadata is not valid JSON: {e}")))
}

fn encode_cursor(document: &Document) -> String {
    let raw = format!("{}|{}", document.created_at.to_rfc3339(), document.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<(chrono::DateTime<chrono::Utc>, Uuid), LibraryError> {
    let bad = || {
        LibraryError::InvalidRequest(
            "cursor is not one this server handed out: start again without it".into(),
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (time, id) = raw.split_once('|').ok_or_else(bad)?;
    let time = chrono::DateTime::parse_from_rfc3339(time).map_err(|_| bad())?;
    Ok((time.with_timezone(&chrono::Utc), id.parse().map_err(|_| bad())?))
}
