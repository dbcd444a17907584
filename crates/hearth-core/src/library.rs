//! The library: what hearthd does with documents. Uploads are stored durably and acknowledged; workers turn them
//! into searchable chunks; search ranks chunks by meaning, by words, or both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::blob::{BlobError, BlobStore};
use crate::chunk::{self, ChunkingConfig};
use crate::digest::sha256_hex;
use crate::embed::{EmbedError, EmbedRequest, Embedder, InputKind, Priority};
use crate::extract::{ContentType, ExtractError, ExtractFailure, ExtractionLimits, Sandbox};
use crate::fusion;
use crate::metrics::{JobOutcome, KindLabel, LibraryMetrics, ModeLabel};
use crate::store::chunks::SpaceVectors;
use crate::store::documents::{self, Document, NewDocument, Outcome};
use crate::store::jobs::{self, Job};
use crate::store::search::{self as retrieval, SearchFilter};
use crate::store::spaces::{self, Space, Spaces};
use crate::store::{self, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Documents processed at once; 0 makes this hearthd serve only (another one processes the queue).
    pub workers: usize,
    /// Largest document accepted, in bytes (413 beyond).
    pub max_document_bytes: usize,
    /// Tries before a document is marked failed.
    pub max_attempts: i32,
    /// How long a claimed job stays claimed without a sign of life from its worker.
    pub lease_seconds: u64,
    pub chunking: ChunkingConfig,
    /// What parsing one PDF or HTML document may use (in its own process).
    #[serde(default)]
    pub extraction: ExtractionLimits,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_document_bytes: 64 * 1024 * 1024,
            max_attempts: 5,
            lease_seconds: 30,
            chunking: ChunkingConfig::default(),
            extraction: ExtractionLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error("metadata must be a JSON object, like {{\"project\": \"x\"}}")]
    MetadataNotObject,
    #[error("{field} contains a NUL character (U+0000), which cannot be stored: remove it")]
    UnstorableText { field: &'static str },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("no document {0}")]
    NotFound(Uuid),
    #[error("the embedding model is still loading; keyword search works meanwhile")]
    ModelNotReady,
    #[error("hearthd is starting: the database schema is not ready yet")]
    Starting,
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The loaded models and the spaces they embed into.
#[derive(Debug, Clone)]
pub struct Models {
    /// The configured model; every new chunk is embedded into `spaces.target` with it.
    pub target: Embedder,
    /// While a switch is under way: the active space's model, which embeds queries (and new chunks, so they are
    /// searchable before the switch completes).
    pub previous: Option<Embedder>,
    pub spaces: Spaces,
}

impl Models {
    /// The model that embeds queries for the space that is searched.
    pub fn query_model(&self) -> &Embedder {
        self.previous.as_ref().unwrap_or(&self.target)
    }
}

/// An upload as received.
#[derive(Debug, Clone)]
pub struct Upload {
    pub bytes: Bytes,
    pub content_type: ContentType,
    pub title: Option<String>,
    pub external_id: Option<String>,
    pub metadata: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Hybrid,
    Vector,
    Keyword,
}

impl SearchMode {
    pub fn label(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Vector => "vector",
            SearchMode::Keyword => "keyword",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub k: usize,
    pub mode: SearchMode,
    pub filter: SearchFilter,
}

/// Most hits one search returns.
pub const MAX_K: usize = 100;
/// The longest query accepted, in characters. A query is a question, not a document: past this, keyword parsing
/// and tokenizing cost grows with the input while the embedding model would see only its first tokens anyway.
pub const MAX_QUERY_CHARS: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub chunk_id: i64,
    pub document_id: Uuid,
    pub title: Option<String>,
    pub external_id: Option<String>,
    pub metadata: Value,
    pub text: String,
    /// Character offsets of the chunk in the document's extracted text.
    pub span: [i32; 2],
    pub score: f64,
    /// Which retrievers found this chunk: "vector", "keyword".
    pub retrievers: Vec<&'static str>,
}

#[derive(Debug)]
pub struct Library {
    pool: PgPool,
    blobs: BlobStore,
    config: IngestConfig,
    sandbox: Sandbox,
    models: watch::Sender<Option<Models>>,
    work: Notify,
    schema_ready: std::sync::atomic::AtomicBool,
    metrics: LibraryMetrics,
}

impl Library {
    /// `sandbox` runs every PDF and HTML parser in a child process: a hostile file can kill the child, not this
    /// process.
    pub fn new(pool: PgPool, blobs: BlobStore, config: IngestConfig, sandbox: Sandbox) -> Arc<Self> {
        Arc::new(Self {
            pool,
            blobs,
            config,
            sandbox,
            models: watch::Sender::new(None),
            work: Notify::new(),
            schema_ready: std::sync::atomic::AtomicBool::new(false),
            metrics: LibraryMetrics::default(),
        })
    }

    /// Job and search series, for the caller to register.
    pub fn metrics(&self) -> &LibraryMetrics {
        &self.metrics
    }

    /// The pool, once the schema is migrated; before that, every query would fail on missing tables.
    pub fn pool(&self) -> Result<&PgPool, LibraryError> {
        if self.schema_ready.load(std::sync::atomic::Ordering::Acquire) {
            Ok(&self.pool)
        } else {
            Err(LibraryError::Starting)
        }
    }

    pub fn set_schema_ready(&self) {
        self.schema_ready
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn models(&self) -> Option<Models> {
        self.models.borrow().clone()
    }

    /// Registers the loaded model(s): records the configured model's space and, when it is not the active one,
    /// queues the re-embedding of every document into it.
    pub async fn set_models(
        &self,
        target: Embedder,
        previous: Option<Embedder>,
    ) -> Result<Spaces, LibraryError> {
        let mut spaces = spaces::ensure(&self.pool, &space_key(&target)).await?;
        // With nothing to re-embed (an empty library) no job would ever complete the switch: do it now.
        if spaces.switching() && spaces::activate_if_complete(&self.pool, &spaces.target).await? {
            spaces.active = spaces.target.clone();
        }
        let previous = previous.filter(|_| spaces.switching());
        self.models.send_replace(Some(Models {
            target,
            previous,
            spaces: spaces.clone(),
        }));
        self.work.notify_waiters();
        Ok(spaces)
    }

    /// Stores the original durably and records the document; returns once both are committed. The original is
    /// written before the transaction that records it, so no database connection or lock waits on the write; an
    /// announcement keeps a concurrent delete or sweep of the same bytes from removing it in between.
    pub async fn upload(&self, upload: Upload) -> Result<(Document, Outcome), LibraryError> {
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
        Ok((accepted.document, accepted.outcome))
    }

    /// The original bytes and their type.
    pub async fn content(&self, id: Uuid) -> Result<(Document, Bytes), LibraryError> {
        self.pool()?;
        let document = documents::get(&self.pool, id)
            .await?
            .ok_or(LibraryError::NotFound(id))?;
        let bytes = self.blobs.get(&document.content_sha256).await?;
        Ok((document, bytes))
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

    /// Completes a model switch once nothing is left to embed into the new space, whatever removed the last job:
    /// its completion, a document given up, a delete.
    async fn finish_switch_if_complete(&self) {
        let Some(models) = self.models() else { return };
        if !models.spaces.switching() {
            return;
        }
        let target = &models.spaces.target;
        match spaces::activate_if_complete(&self.pool, target).await {
            Ok(true) => {
                tracing::info!(space = target.id, model = %target.model_id,
                    "every document is embedded in the new space: search switched to it");
                self.models.send_modify(|current| {
                    if let Some(current) = current
                        && current.spaces.target.id == target.id
                    {
                        current.previous = None;
                        current.spaces.active = current.spaces.target.clone();
                    }
                });
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot check whether the model switch is complete"),
        }
    }

    /// Removes the original with these bytes if nothing needs it any more (no document, no upload in progress),
    /// deciding and deleting under the content's lock. A failure is left to the next sweep.
    async fn collect(&self, sha256: &str) -> bool {
        let collected = async {
            let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
            documents::lock_content(&mut tx, sha256).await?;
            let collectable = documents::collectable(&mut tx, sha256).await?;
            if collectable {
                self.blobs.delete(sha256).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            Ok::<_, LibraryError>(collectable)
        }
        .await;
        match collected {
            Ok(collected) => collected,
            Err(error) => {
                tracing::warn!(%error, sha256, "could not remove an unreferenced original; the next sweep will");
                false
            }
        }
    }

    /// One sweep of the blob store: expired upload announcements, then every original nothing refers to that is
    /// older than `grace`, then staging files and probes. Returns how many originals and leftovers went.
    pub async fn sweep(&self, grace: Duration) -> Result<(u64, u64), LibraryError> {
        self.pool()?;
        documents::expire_uploads(&self.pool, grace).await?;
        let cutoff = chrono::Utc::now() - grace;
        let old: Vec<String> = self
            .blobs
            .list()
            .await?
            .into_iter()
            .filter(|(_, written)| *written < cutoff)
            .map(|(sha256, _)| sha256)
            .collect();
        let mut originals = 0;
        for sha256 in documents::unreferenced(&self.pool, &old).await? {
            if self.collect(&sha256).await {
                originals += 1;
            }
        }
        let leftovers = self.blobs.sweep_leftovers(grace).await?;
        self.metrics.swept(originals, leftovers);
        Ok((originals, leftovers))
    }

    /// Keeps keyword search's statistics compact: after each job, and with the sweep for deletions.
    async fn fold_lexicon(&self) {
        if let Err(error) = retrieval::fold_lexicon(&self.pool).await {
            tracing::warn!(%error, "could not fold the keyword statistics; search stays exact, the fold runs again later");
        }
    }

    /// Sweeps every `interval` until `shutdown` turns true.
    pub async fn run_sweeper(
        self: Arc<Self>,
        interval: Duration,
        grace: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if self.schema_ready.load(std::sync::atomic::Ordering::Acquire) {
                self.fold_lexicon().await;
            }
            match self.sweep(grace).await {
                Ok((0, 0)) => {}
                Ok((originals, leftovers)) => {
                    tracing::info!(
                        originals,
                        leftovers,
                        "removed originals nothing refers to and leftovers"
                    )
                }
                Err(LibraryError::Starting) => {}
                Err(error) => tracing::warn!(%error, "the blob sweep failed; it runs again later"),
            }
        }
    }

    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<Hit>, LibraryError> {
        let started = std::time::Instant::now();
        let hits = self.search_unmeasured(request).await?;
        self.metrics
            .search_seconds
            .get_or_create(&ModeLabel {
                mode: request.mode.label(),
            })
            .observe(started.elapsed().as_secs_f64());
        Ok(hits)
    }

    async fn search_unmeasured(&self, request: &SearchRequest) -> Result<Vec<Hit>, LibraryError> {
        self.pool()?;
        validate_search(request)?;
        // Fusion needs more than k from each retriever to re-rank well.
        let depth = match request.mode {
            SearchMode::Hybrid => (request.k * 4).max(40),
            _ => request.k,
        } as i64;
        // The query is embedded before the snapshot opens, so no transaction waits on the model.
        let query_vector = match request.mode {
            SearchMode::Keyword => None,
            SearchMode::Vector | SearchMode::Hybrid => Some(self.embed_query(&request.query).await?),
        };
        let mut snapshot = retrieval::snapshot(&self.pool).await?;
        let (vector, keyword) = match (&query_vector, request.mode) {
            (Some((space, query)), SearchMode::Hybrid) => {
                retrieval::both(
                    &self.pool,
                    &mut snapshot,
                    space,
                    query,
                    &request.query,
                    &request.filter,
                    depth,
                )
                .await?
            }
            (Some((space, query)), _) => (
                retrieval::vector(&mut snapshot, space, query, &request.filter, depth).await?,
                Vec::new(),
            ),
            (None, _) => (
                Vec::new(),
                retrieval::keyword(
                    &mut snapshot,
                    &request.query,
                    &request.filter,
                    depth,
                    retrieval::KEYWORD_CANDIDATES,
                )
                .await?,
            ),
        };
        let order: Vec<fusion::Fused> = match request.mode {
            SearchMode::Hybrid => fusion::fuse(fusion::HYBRID, &vector, &keyword, request.k),
            // One retriever: its own order and score.
            SearchMode::Vector | SearchMode::Keyword => {
                let (name, ranked) = if request.mode == SearchMode::Vector {
                    ("vector", vector)
                } else {
                    ("keyword", keyword)
                };
                ranked
                    .into_iter()
                    .take(request.k)
                    .map(|r| fusion::Fused {
                        chunk_id: r.chunk_id,
                        score: r.score,
                        retrievers: vec![name],
                    })
                    .collect()
            }
        };
        let ids: Vec<i64> = order.iter().map(|hit| hit.chunk_id).collect();
        let details = retrieval::details(&mut snapshot, &ids).await?;
        snapshot.commit().await.map_err(StoreError::from)?;
        Ok(with_details(order, details))
    }

    /// The query's vector in the space that is searched.
    async fn embed_query(&self, query: &str) -> Result<(Space, Vec<f32>), LibraryError> {
        let models = self.models().ok_or(LibraryError::ModelNotReady)?;
        if models.spaces.switching() && models.previous.is_none() {
            // The searched space's model could not be loaded: its vectors cannot be queried.
            return Err(LibraryError::ModelNotReady);
        }
        let mut embed = EmbedRequest::new(vec![query.to_owned()], InputKind::Query, Priority::Query);
        embed.truncate = true;
        let embedded = models.query_model().embed(embed).await?;
        let vector = embedded.vectors.into_iter().next().unwrap_or_default();
        Ok((models.spaces.active.clone(), vector))
    }

    /// Runs one worker until `shutdown` turns true. A job in progress at shutdown is released for the next start.
    pub async fn run_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut models_changed = self.models.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some(models) = self.models() else {
                tokio::select! {
                    _ = models_changed.changed() => continue,
                    _ = shutdown.changed() => return,
                }
            };
            let lease = Duration::from_secs(self.config.lease_seconds.max(1));
            let job = match jobs::claim(&self.pool, lease).await {
                Ok(job) => job,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim a job; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            };
            let Some(job) = job else {
                // Nothing due: wait for an upload, or poll for retries that come due and jobs freed by leases.
                tokio::select! {
                    _ = self.work.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            };
            tokio::select! {
                () = self.run_job(&job, &models, lease) => {}
                _ = shutdown.changed() => {
                    self.metrics.job(&job.kind, JobOutcome::Interrupted, 1);
                    if let Err(error) = jobs::release(&self.pool, &job).await {
                        tracing::warn!(%error, job = job.id, "could not release the job; its lease will run out");
                    }
                    return;
                }
            }
        }
    }

    async fn run_job(&self, job: &Job, models: &Models, lease: Duration) {
        if job.attempts > self.config.max_attempts {
            let reason = format!(
                "gave up after {} attempts; last error: {}",
                self.config.max_attempts,
                job.last_error
                    .as_deref()
                    .unwrap_or("the worker stopped while processing it")
            );
            self.give_up(job, &reason).await;
            self.finish_switch_if_complete().await;
            return;
        }
        // Renew the lease while working; losing it means another worker owns the job now.
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                match jobs::renew(&self.pool, job, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => tracing::warn!(%error, job = job.id, "cannot renew the job's lease"),
                }
            }
        };
        let started = std::time::Instant::now();
        let prepared = tokio::select! {
            prepared = self.prepare(job, models) => prepared,
            () = heartbeat => Err(JobError::LostClaim),
        };
        // The commit is not raced against the heartbeat: a renewal blocked on the row the commit deletes would win
        // the race and report a finished job as lost. The claim token checked inside the transaction decides.
        let outcome = match prepared {
            Ok(prepared) => self.commit(job, prepared).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(job = job.id, kind = %job.kind, document = %job.document_id, "job done");
                self.metrics.job(&job.kind, JobOutcome::Done, 1);
                self.metrics
                    .job_seconds
                    .get_or_create(&KindLabel {
                        kind: job.kind.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                if job.kind == "embed" {
                    self.finish_switch_if_complete().await;
                }
                self.fold_lexicon().await;
            }
            Err(JobError::Permanent(reason)) => {
                self.give_up(job, &reason).await;
                self.finish_switch_if_complete().await;
            }
            Err(JobError::LostClaim) => {
                self.metrics.job(&job.kind, JobOutcome::Lost, 1);
                tracing::info!(
                    job = job.id,
                    "job claim lost (new version or lease expired); dropping this attempt"
                );
            }
            Err(JobError::Transient(reason)) => {
                self.metrics.job(&job.kind, JobOutcome::Retried, 1);
                let delay = Duration::from_secs(1 << job.attempts.clamp(0, 8));
                tracing::warn!(job = job.id, attempt = job.attempts, %reason, ?delay, "job failed; will retry");
                if let Err(error) = jobs::retry_later(&self.pool, job, delay, &reason).await {
                    tracing::warn!(%error, job = job.id, "could not schedule the retry; its lease will run out");
                }
            }
        }
    }

    async fn give_up(&self, job: &Job, reason: &str) {
        tracing::warn!(job = job.id, document = %job.document_id, %reason, "document failed");
        self.metrics.job(&job.kind, JobOutcome::Failed, 1);
        let result = async {
            let mut tx = self.pool.begin().await?;
            documents::lock_for_job(&mut tx, job.document_id).await?;
            if jobs::finish(&mut tx, job).await? {
                sqlx::query(
                    "UPDATE documents SET status = 'failed', error = $2, updated_at = now() WHERE id = $1",
                )
                .bind(job.document_id)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = job.id, "could not record the failure; the job will be retried");
        }
    }

    /// The slow part of a job (extract, chunk, embed), which writes nothing that matters and may be abandoned.
    async fn prepare(&self, job: &Job, models: &Models) -> Result<Prepared, JobError> {
        match job.kind.as_str() {
            "ingest" => self.prepare_ingest(job, models).await,
            "embed" => self.prepare_embedding(job, models).await,
            other => Err(JobError::Permanent(format!("unknown job kind '{other}'"))),
        }
    }

    /// Writes a prepared result and deletes the job in one transaction, if the job is still this worker's.
    async fn commit(&self, job: &Job, prepared: Prepared) -> Result<(), JobError> {
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
            vectors: embed_all(&models.target, &texts).await?,
        }];
        if let Some(previous) = &models.previous {
            spaces.push(SpaceVectors {
                space_id: models.spaces.active.id,
                vectors: embed_all(previous, &texts).await?,
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
        sqlx::query(
            "UPDATE documents SET status = 'ready', error = NULL, notes = $3, chunk_count = $2, updated_at = now() \
             WHERE id = $1",
        )
        .bind(job.document_id)
        .bind(chunks.len() as i32)
        .bind(notes)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
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
            vectors: embed_all(&models.target, &texts).await?,
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

    /// Number of queued jobs and the age of the oldest, in seconds.
    pub async fn queue_depth(&self) -> Result<(i64, Option<f64>), LibraryError> {
        Ok(jobs::depth(&self.pool).await?)
    }

    /// The active space, for capabilities and readiness.
    pub async fn active_space(&self) -> Result<Option<Space>, LibraryError> {
        Ok(spaces::active(&self.pool).await?)
    }
}

/// A job's result, computed but not yet written.
enum Prepared {
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
enum JobError {
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

/// Refuses a search that cannot be answered, saying what to change.
fn validate_search(request: &SearchRequest) -> Result<(), LibraryError> {
    if request.query.trim().is_empty() {
        return Err(LibraryError::InvalidQuery(
            "query is empty: say what to look for".into(),
        ));
    }
    let query_chars = request.query.chars().count();
    if query_chars > MAX_QUERY_CHARS {
        return Err(LibraryError::InvalidQuery(format!(
            "query is {query_chars} characters, more than the {MAX_QUERY_CHARS} accepted: search for a \
             shorter phrase"
        )));
    }
    if request.k == 0 || request.k > MAX_K {
        return Err(LibraryError::InvalidQuery(format!(
            "k must be between 1 and {MAX_K}"
        )));
    }
    if let Some(metadata) = &request.filter.metadata
        && !metadata.is_object()
    {
        return Err(LibraryError::MetadataNotObject);
    }
    storable("query", Some(&request.query))?;
    if let Some(metadata) = &request.filter.metadata {
        storable_json("filter.metadata", metadata)?;
    }
    Ok(())
}

/// The ranked chunks as hits, in rank order.
fn with_details(order: Vec<fusion::Fused>, details: Vec<retrieval::ChunkDetail>) -> Vec<Hit> {
    let mut details: HashMap<i64, retrieval::ChunkDetail> =
        details.into_iter().map(|d| (d.chunk_id, d)).collect();
    order
        .into_iter()
        .filter_map(|hit| {
            // Same snapshot as the ranking, so every ranked chunk has its details.
            let detail = details.remove(&hit.chunk_id)?;
            Some(Hit {
                chunk_id: hit.chunk_id,
                document_id: detail.document_id,
                title: detail.title,
                external_id: detail.external_id,
                metadata: detail.metadata,
                text: detail.text,
                span: [detail.char_start, detail.char_end],
                score: hit.score,
                retrievers: hit.retrievers,
            })
        })
        .collect()
}

/// PostgreSQL's text and jsonb cannot hold U+0000: a field that has one is refused at the edge (422), not at
/// the database (500).
fn storable(field: &'static str, text: Option<&str>) -> Result<(), LibraryError> {
    if text.is_some_and(|text| text.contains('\0')) {
        return Err(LibraryError::UnstorableText { field });
    }
    Ok(())
}

fn storable_json(field: &'static str, value: &Value) -> Result<(), LibraryError> {
    let fine = match value {
        Value::String(text) => !text.contains('\0'),
        Value::Array(items) => items.iter().all(|item| storable_json(field, item).is_ok()),
        Value::Object(entries) => entries
            .iter()
            .all(|(key, item)| !key.contains('\0') && storable_json(field, item).is_ok()),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    };
    if fine {
        Ok(())
    } else {
        Err(LibraryError::UnstorableText { field })
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

/// The embedding space a loaded model embeds into: its id, dimension and the digest of its files.
pub fn space_key(embedder: &Embedder) -> spaces::SpaceKey {
    let manifest = embedder.manifest();
    let files: Vec<String> = manifest
        .files
        .iter()
        .map(|f| format!("{}={}", f.path, f.sha256))
        .collect();
    spaces::SpaceKey {
        model_id: manifest.id.clone(),
        dims: manifest.dims as i32,
        digest: sha256_hex(files.join("\n").as_bytes()),
        model_dir: embedder.model_dir().display().to_string(),
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

/// Embeds texts as documents at ingest priority, in requests small enough to queue, waiting out a full queue.
async fn embed_all(embedder: &Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>, JobError> {
    const PER_REQUEST: usize = 32;
    let mut vectors = Vec::with_capacity(texts.len());
    for group in texts.chunks(PER_REQUEST) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let request = EmbedRequest::new(group.to_vec(), InputKind::Document, Priority::Ingest);
            match embedder.embed(request).await {
                Ok(embedded) => {
                    vectors.extend(embedded.vectors);
                    break;
                }
                Err(EmbedError::QueueFull { .. }) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(EmbedError::ShuttingDown) => return Err(JobError::Transient("shutting down".into())),
                Err(error) => return Err(JobError::Permanent(format!("embedding failed: {error}"))),
            }
        }
    }
    Ok(vectors)
}
