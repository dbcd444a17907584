//! `/healthz`, `/readyz` and `/v1/capabilities`: whether hearthd is up, what it can serve now, and what it is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::search::SearchMode;

/// `GET /healthz`: the process is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub version: String,
}

/// `GET /readyz`, 200 when `status` is `ready`, 503 otherwise with the same body naming what is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub database: DatabaseState,
    pub schema: SchemaState,
    pub blobs: BlobsState,
    pub model: ModelState,
    /// The job queue, or null while the database does not answer.
    pub queue: Option<QueueState>,
    pub serving: Serving,
    /// The remote embedder of `embedding.remote`; absent when none is configured. It does not change `status`:
    /// without it the local model embeds (or, with `ingest_fallback = "wait"`, ingest waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_embedding: Option<RemoteEmbeddingState>,
}

/// Another hearthd that embeds for this one, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RemoteEmbeddingState {
    pub url: String,
    pub status: RemoteEmbeddingStatus,
    /// Why it is not used (`mismatch` names both spaces; `unreachable` what failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds since a check or request last set `status`; null before the first check.
    pub seen_seconds_ago: Option<f64>,
    /// Search queries go to it too (else only ingest).
    pub queries: bool,
    /// `local` (embed here meanwhile) or `wait` (ingest waits for it).
    pub ingest_fallback: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemoteEmbeddingStatus {
    /// Not checked yet.
    Checking,
    /// Answering, in the same embedding space as the local model: ingest goes there.
    Ready,
    /// Answering, but another model, dimensions or files (or none loaded): never used.
    Mismatch,
    /// Not answering, failing, or refusing the token: the local model embeds meanwhile.
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// The database: its versions when it answers, else what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct DatabaseState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgvector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaStatus {
    Current,
    Migrating,
    /// Writing the backup taken before every migration.
    BackingUp,
    /// Not migrating: the backup before it cannot be made (`reason` says why and what to change).
    Blocked,
    /// The database is newer than this hearthd and declared that it cannot run on it (`reason` names the restore).
    Incompatible,
    Unknown,
}

/// The schema: `current` at the newest migration, `migrating` (or `backing_up`) until then, `blocked` or
/// `incompatible` with a reason, `unknown` without a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SchemaState {
    pub status: SchemaStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// While migrating: the version this hearthd needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    /// Why the schema is held: `blocked` and `incompatible` say what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Ready,
    Failed,
}

/// The blob store that keeps originals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobsState {
    pub status: ComponentStatus,
    /// Where originals go (a directory, or an S3 bucket and endpoint).
    pub store: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The embedding model's state, by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModelState {
    /// Loaded, verified and with a database: everything is served.
    Ready { id: String, dims: usize },
    /// Verifying and loading since `elapsed_seconds`.
    Loading { model: String, elapsed_seconds: u64 },
    /// Loaded and verified; embeddings are served, search waits for `waiting_for`.
    Loaded {
        id: String,
        dims: usize,
        waiting_for: String,
    },
    /// Could not be loaded; `error` says why.
    Failed { model: String, error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueState {
    /// Jobs waiting or running.
    pub depth: i64,
    /// Age of the oldest job, in seconds; null when there is none.
    pub oldest_seconds: Option<f64>,
}

/// Which parts of the API work now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Serving {
    /// As soon as the model is loaded, with or without a database.
    pub embeddings: bool,
    /// Once the database, schema and blob store are ready.
    pub documents: bool,
    pub keyword_search: bool,
    /// When everything is ready.
    pub search: bool,
}

/// `GET /v1/capabilities`: exactly which build, model files and limits answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Capabilities {
    pub hearth: BuildInfo,
    pub system: SystemInfo,
    pub model: ModelInfo,
    /// The active embedding space and, during a switch, its target; null until the model is loaded.
    pub embedding_space: Option<EmbeddingSpaces>,
    pub ingest: IngestInfo,
    pub search: SearchInfo,
    pub limits: Limits,
    pub schema: SchemaInfo,
    /// The database dumps in `backup.dir`, newest first.
    pub backups: Vec<BackupInfo>,
    /// What the last `hearth upgrade` did, if one ran on this box.
    pub last_upgrade: Option<UpgradeRecord>,
}

/// The database's schema next to this hearthd's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SchemaInfo {
    /// The newest migration applied; null until the database answers.
    pub version: Option<i64>,
    /// The newest migration this hearthd carries.
    pub newest_known: i64,
    /// The oldest schema version whose hearthd can still run on this database (a rollback to an older one must
    /// restore a backup); null until the schema is current.
    pub oldest_compatible: Option<i64>,
}

/// One dump, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupInfo {
    pub path: String,
    /// `before-migrate`, `manual` or `before-restore`.
    pub reason: String,
    /// The schema version it holds.
    pub schema: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating_to: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub bytes: u64,
    pub sha256: String,
}

/// The record's file name in `backup.dir`.
pub const LAST_UPGRADE_FILE: &str = "last-upgrade.json";

/// What `hearth upgrade` (or `hearth rollback`) did: written by it to `<backup.dir>/last-upgrade.json` as it
/// goes, so a run cut short still says how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpgradeRecord {
    pub started_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub outcome: UpgradeOutcome,
    /// The system it started from and the one it switched to (store paths).
    pub from_system: String,
    #[serde(default)]
    pub to_system: Option<String>,
    #[serde(default)]
    pub schema_before: Option<i64>,
    #[serde(default)]
    pub schema_after: Option<i64>,
    /// The dump the new generation took before migrating, if it migrated.
    #[serde(default)]
    pub backup: Option<String>,
    pub steps: Vec<UpgradeStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeOutcome {
    InProgress,
    /// The new generation is serving.
    Upgraded,
    /// The flake built the system already running.
    Unchanged,
    /// The new generation did not become ready; the previous one serves again (its data restored if migrated).
    RolledBack,
    /// `hearth rollback` went back to the previous generation by request.
    RolledBackByRequest,
    /// Going back failed too: the step says where; the box needs a person.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpgradeStep {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `preflight`, `build`, `switch`, `wait-ready`, `stop`, `restore`, `switch-back`, `done`, …
    pub step: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildInfo {
    pub version: String,
    /// The source revision hearthd was built from.
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// On NixOS, the running generation's store path name; null elsewhere.
    pub nixos_generation: Option<String>,
}

/// The model, by `status`; all of its details once ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModelInfo {
    Ready(Box<LoadedModel>),
    Loading { id: String },
    Loaded { id: String },
    Failed { id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoadedModel {
    pub id: String,
    pub variant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub dims: usize,
    pub matryoshka_dims: Vec<usize>,
    pub max_tokens: usize,
    /// `none` or `dynamic-int8`.
    pub quantization: String,
    pub files: Vec<ModelFile>,
    pub dir: String,
    /// The onnxruntime library loaded.
    pub onnxruntime: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelFile {
    pub path: String,
    /// Verified at load.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingSpaces {
    pub active: EmbeddingSpace,
    /// The space being built during a model switch; null otherwise.
    pub target: Option<EmbeddingSpace>,
}

/// A set of vectors from one model: its id, dimensions and file digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingSpace {
    pub id: i64,
    pub model_id: String,
    pub dims: i32,
    pub digest: String,
    pub model_dir: String,
    /// `active`, `building`, or `retired`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IngestInfo {
    pub content_types: Vec<String>,
    pub max_document_bytes: usize,
    pub chunking: Chunking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Chunking {
    pub max_tokens: usize,
    pub overlap_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchInfo {
    pub modes: Vec<SearchMode>,
    pub max_k: usize,
    pub max_query_chars: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_inputs_per_request: usize,
    pub request_timeout_seconds: u64,
    pub max_concurrent_requests: usize,
    pub embedding_queue_capacity: usize,
    pub max_batch_tokens: usize,
}
