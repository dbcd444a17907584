//! The library: the one way into what hearthd does with documents. Uploads are stored durably and acknowledged;
//! workers turn them into searchable chunks; search ranks chunks by meaning, by words, or both. Handlers call its
//! verbs and get API types back; the SQL behind them lives in `store`.
//!
//! One file per verb: `documents` (upload, read, list, delete), `originals` (removing unreferenced bytes),
//! `search`, `worker` (the claim loop), `jobs` (a job's prepare and commit), `embedding` (which backend embeds:
//! the local model or a remote hearthd), `spaces` (models and switches),
//! `sessions` (browser sign-ins of the web UI).

mod documents;
mod embedding;
mod jobs;
mod originals;
mod schema;
mod search;
mod sessions;
mod spaces;
mod worker;

pub use schema::SchemaHold;

use std::sync::Arc;

use bytes::Bytes;
pub use hearth_api::search::{Hit, MAX_K, MAX_QUERY_CHARS, SearchMode, SearchRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::blob::{BlobError, BlobStore};
use crate::chunk::ChunkingConfig;
use crate::embed::{EmbedError, Embedder};
use crate::extract::{ContentType, ExtractError, ExtractionLimits, Sandbox};
use crate::metrics::LibraryMetrics;
use crate::store::jobs as job_store;
use crate::store::spaces::{Space, Spaces};
use crate::store::{StoreError, spaces as space_store};

pub use documents::{Original, parse_metadata};
pub use sessions::{NewSession, SessionRow};
pub use spaces::space_key;

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
    /// A parameter that cannot be answered (a status, limit or cursor): the message says what to change.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no document {0}")]
    NotFound(Uuid),
    #[error("no concept {0}: it may have gone with the last document that mentioned it")]
    ConceptNotFound(Uuid),
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

#[derive(Debug)]
pub struct Library {
    pool: PgPool,
    blobs: BlobStore,
    config: IngestConfig,
    sandbox: Sandbox,
    models: watch::Sender<Option<Models>>,
    work: Notify,
    schema_ready: std::sync::atomic::AtomicBool,
    schema_hold: std::sync::RwLock<Option<SchemaHold>>,
    metrics: LibraryMetrics,
    remote: std::sync::OnceLock<Arc<crate::embed::remote::RemoteEmbedder>>,
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
            schema_hold: std::sync::RwLock::new(None),
            metrics: LibraryMetrics::default(),
            remote: std::sync::OnceLock::new(),
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

    /// The database pool's open and idle connections.
    pub fn connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Documents by status (`pending`, `ready`, ...); a status with none is absent.
    pub async fn document_counts(&self) -> Result<Vec<(String, i64)>, LibraryError> {
        Ok(crate::store::documents_by_status(self.pool()?).await?)
    }

    /// What the database says about itself (versions), for readiness and the doctor.
    pub async fn probe_database(&self) -> Result<crate::store::DatabaseProbe, LibraryError> {
        Ok(crate::store::probe(&self.pool).await?)
    }

    /// The newest migration applied and the newest this binary knows.
    pub async fn schema_version(&self) -> Result<(Option<i64>, i64), LibraryError> {
        Ok(crate::store::schema_version(&self.pool).await?)
    }

    /// Number of queued jobs and the age of the oldest, in seconds.
    pub async fn queue_depth(&self) -> Result<(i64, Option<f64>), LibraryError> {
        Ok(job_store::depth(&self.pool).await?)
    }

    /// The active space, for capabilities and readiness.
    pub async fn active_space(&self) -> Result<Option<Space>, LibraryError> {
        Ok(space_store::active(&self.pool).await?)
    }
}

/// PostgreSQL's text and jsonb cannot hold U+0000: a field that has one is refused at the edge (422), not at
/// the database (500).
pub(crate) fn storable(field: &'static str, text: Option<&str>) -> Result<(), LibraryError> {
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
