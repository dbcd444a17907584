//! One job in two steps: prepare (extract, chunk, embed: slow, writes nothing that matters, may be abandoned),
//! then commit (one transaction, only while the job is still this worker's).

use super::embedding::Backends;
use super::{Library, Models};
use crate::blob::BlobError;
use crate::chunk::{self, ChunkingConfig};
use crate::embed::Embedder;
use crate::extract::{ContentType, ContentTypeExt as _, ExtractError, ExtractFailure};
use crate::store::chunks::SpaceVectors;
use crate::store::documents;
use crate::store::jobs::{self, Job};
use crate::store::{self, StoreError};

impl Library {
    /// The slow part of a job (extract, chunk, embed), which writes nothing that matters and may be abandoned.
    pub(super) async fn prepare(&self, job: &Job, models: &Models) -> Result<Prepared, JobError> {
        match job.kind.as_str() {
            "ingest" => self.prepare_ingest(job, models).await,
            "embed" => self.prepare_embedding(job, models).await,
            other => Err(JobError::Permanent(format!("unknown job kind '{other}'"))),
        }
    }

    /// Writes a prepared result and deletes the job in one transaction, if the job is still this worker's.
    pub(super) async fn commit(&self, job: &Job, prepared: Prepared) -> Result<(), JobError> {
        match prepared {
            Prepared::Nothing => Ok(()),
            Prepared::Obsolete => {
                let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
                if !jobs::finish(&mut tx, job).await? {
                    return Err(JobError::LostClaim);
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(())
            }
            Prepared::Ingest {
                content_sha256,
                chunks,
                token_counts,
                spaces,
                notes,
            } => {
                let ingested = Ingested {
                    content_sha256: &content_sha256,
                    chunks: &chunks,
                    token_counts: &token_counts,
                    spaces: &spaces,
                    notes: &notes,
                };
                self.commit_ingest(job, ingested).await
            }
            Prepared::Embedding(space) => self.commit_embedding(job, &space).await,
        }
    }

    async fn prepare_ingest(&self, job: &Job, models: &Models) -> Result<Prepared, JobError> {
        let Some(document) = documents::get(&self.pool, job.document_id).await? else {
            return Ok(Prepared::Nothing); // deleted meanwhile; its job went with it
        };
        documents::mark_processing(&self.pool, document.id).await?;
        let content_type =
            ContentType::parse(&document.content_type).map_err(|e| JobError::Permanent(e.to_string()))?;
        let bytes = match self.blobs.get(&document.content_sha256).await {
            Ok(bytes) => bytes,
            Err(BlobError::Store(object_store::Error::NotFound { .. })) => {
                return Err(JobError::Permanent(
                    "the original is missing from the blob store".into(),
                ));
            }
            Err(error) => return Err(JobError::Transient(error.to_string())),
        };
        let text = self
            .sandbox
            .extract(content_type, bytes)
            .await
            .map_err(|failure| extraction_failed(job, failure))?;
        let (text, notes) = storable_text(text);
        let target = models.target.clone();
        let chunking = self.config.chunking;
        let (chunks, token_counts) = tokio::task::spawn_blocking(move || {
            let capacity = chunk_capacity(&target, &chunking);
            let chunks = chunk::split(
                &text,
                content_type == ContentType::Markdown,
                target.tokenizer(),
                capacity,
                chunking.overlap_tokens,
            )
            .map_err(|e| JobError::Permanent(e.to_string()))?;
            let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
            let counts = target
                .count_tokens(&texts)
                .map_err(|e| JobError::Permanent(e.to_string()))?;
            Ok::<_, JobError>((chunks, counts))
        })
        .await
        .map_err(|e| JobError::Permanent(format!("chunking crashed: {e}")))??;
        if chunks.is_empty() {
            return Err(JobError::Permanent(ExtractError::NoText.to_string()));
        }
        let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
        let mut spaces = vec![SpaceVectors {
            space_id: models.spaces.target.id,
            vectors: self
                .embed_documents(&models.target, &texts, Backends::RemoteFirst)
                .await?,
        }];
        if let Some(previous) = &models.previous {
            spaces.push(SpaceVectors {
                space_id: models.spaces.active.id,
                vectors: self
                    .embed_documents(previous, &texts, Backends::LocalOnly)
                    .await?,
            });
        }
        Ok(Prepared::Ingest {
            content_sha256: document.content_sha256,
            chunks,
            token_counts,
            spaces,
            notes,
        })
    }

    async fn commit_ingest(&self, job: &Job, ingested: Ingested<'_>) -> Result<(), JobError> {
        let Ingested {
            content_sha256,
            chunks,
            token_counts,
            spaces,
            notes,
        } = ingested;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let current = documents::lock_for_job(&mut tx, job.document_id).await?;
        if !jobs::finish(&mut tx, job).await? {
            return Err(JobError::LostClaim);
        }
        if current.as_deref() != Some(content_sha256) {
            // Replaced or deleted while we worked: the newer version's job does the work.
            return Err(JobError::LostClaim);
        }
        store::chunks::replace(&mut tx, job.document_id, chunks, token_counts, spaces).await?;
        documents::mark_ready(&mut tx, job.document_id, chunks.len(), notes).await?;
        // The old chunks' mentions went with them; the new version waits for extraction.
        store::concepts::enqueue(&mut tx, job.document_id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.metrics.chunks_total.inc_by(chunks.len() as u64);
        Ok(())
    }

    async fn prepare_embedding(&self, job: &Job, models: &Models) -> Result<Prepared, JobError> {
        if job.space_id != Some(models.spaces.target.id) {
            // Queued for a model that is no longer configured: the document itself is fine.
            return Ok(Prepared::Obsolete);
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let texts = store::chunks::texts(&mut tx, job.document_id).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Prepared::Embedding(SpaceVectors {
            space_id: models.spaces.target.id,
            vectors: self
                .embed_documents(&models.target, &texts, Backends::RemoteFirst)
                .await?,
        }))
    }

    async fn commit_embedding(&self, job: &Job, space: &SpaceVectors) -> Result<(), JobError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        documents::lock_for_job(&mut tx, job.document_id).await?;
        if !jobs::finish(&mut tx, job).await? {
            return Err(JobError::LostClaim);
        }
        match store::chunks::add_space(&mut tx, job.document_id, space).await {
            Ok(()) => {}
            // Re-chunked meanwhile (a new version was ingested into both spaces): nothing left to do here.
            Err(StoreError::Database(sqlx::Error::Protocol(_))) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}

/// A job's result, computed but not yet written.
pub(super) enum Prepared {
    /// The document was deleted meanwhile: only the job row is left to remove (it went with the document).
    Nothing,
    /// An embed job for a space no longer configured (a switch reverted or replaced): the job goes, nothing else.
    Obsolete,
    Ingest {
        content_sha256: String,
        chunks: Vec<chunk::Chunk>,
        token_counts: Vec<usize>,
        spaces: Vec<SpaceVectors>,
        notes: Vec<String>,
    },
    Embedding(SpaceVectors),
}

/// A prepared ingest, borrowed for its commit.
struct Ingested<'a> {
    content_sha256: &'a str,
    chunks: &'a [chunk::Chunk],
    token_counts: &'a [usize],
    spaces: &'a [SpaceVectors],
    notes: &'a [String],
}

#[derive(Debug)]
pub(super) enum JobError {
    /// Will fail the same way again: the document is marked failed with this reason.
    Permanent(String),
    /// Worth retrying later (database restarting, embedding queue full).
    Transient(String),
    /// Another worker or a newer version owns the job now; do nothing.
    LostClaim,
}

/// A job's reasons are shown to the user (the document's `error`, the job's `last_error`): the database's own words
/// go to the log, the reason says what happened.
impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            tracing::warn!(%error, "a job met a database error; it will be retried");
            JobError::Transient("the database was not reachable; retrying".into())
        } else {
            tracing::error!(%error, "a job met a database error");
            JobError::Permanent(
                "the database refused to store the result (the details are in hearthd's log)".into(),
            )
        }
    }
}

/// A document's text as PostgreSQL can store it: NUL characters (which some files carry, and text columns cannot
/// hold) removed, with a note saying how many.
fn storable_text(text: String) -> (String, Vec<String>) {
    let nuls = text.matches('\0').count();
    if nuls == 0 {
        return (text, Vec::new());
    }
    let note = format!(
        "{nuls} NUL character{} (U+0000) removed from the text: PostgreSQL cannot store them",
        if nuls == 1 { "" } else { "s" }
    );
    (text.replace('\0', ""), vec![note])
}

/// A sandboxed extraction that failed: the document's own fault fails it now; the sandbox stopping the parser in a
/// way the machine may have caused (a crash, a timeout) is retried once, then fails it. The reason is the plain
/// one the user sees.
fn extraction_failed(job: &Job, failure: ExtractFailure) -> JobError {
    if failure.may_pass_on_retry() && job.attempts <= 1 {
        JobError::Transient(failure.to_string())
    } else {
        JobError::Permanent(failure.to_string())
    }
}

/// Tokens a chunk may have so that, with the document prefix and the special tokens, it fits the model.
fn chunk_capacity(embedder: &Embedder, chunking: &ChunkingConfig) -> usize {
    let manifest = embedder.manifest();
    let prefix = embedder
        .count_tokens(std::slice::from_ref(&manifest.document_prefix))
        .ok()
        .and_then(|counts| counts.first().copied())
        .unwrap_or(2);
    // count_tokens includes the special tokens, which the prefix's count already holds.
    chunking
        .max_tokens
        .min(manifest.max_tokens.saturating_sub(prefix))
        .max(1)
}
