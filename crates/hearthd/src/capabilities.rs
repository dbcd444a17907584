//! `GET /v1/capabilities`: what this hearthd is, what it runs and what it accepts, so a client or an operator can
//! tell exactly which build, model files and limits answered them.

use std::path::Path;

use axum::Json;
use axum::extract::State;
use hearth_api::content_type::SUPPORTED;
use hearth_api::search::{MAX_K, MAX_QUERY_CHARS, SearchMode};
use hearth_api::status::{
    BackupInfo, BuildInfo, Capabilities, Chunking, EmbeddingSpace, EmbeddingSpaces, IngestInfo,
    LAST_UPGRADE_FILE, Limits, LoadedModel, ModelFile, ModelInfo, SchemaInfo, SearchInfo, SystemInfo,
    UpgradeRecord,
};

use crate::http::{AppState, ModelState};

/// The source revision hearthd was built from: `HEARTH_BUILD_REVISION` when its package sets it at run time (the
/// Nix wrapper does, so that a new commit does not recompile the workspace), else what build.rs recorded
/// (`HEARTH_GIT_REVISION`, or git).
pub fn git_revision() -> &'static str {
    static REVISION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("HEARTH_BUILD_REVISION")
            .ok()
            .filter(|revision| !revision.is_empty())
            .unwrap_or_else(|| env!("HEARTH_GIT_REVISION").to_owned())
    });
    &REVISION
}

/// Where NixOS links the running system; its target's name is the generation's store path name.
const NIXOS_CURRENT_SYSTEM: &str = "/run/current-system";

/// What this hearthd is, runs and accepts.
#[utoipa::path(get, path = "/v1/capabilities", tag = "status", responses((status = 200, body = Capabilities)))]
pub async fn capabilities(State(state): State<AppState>) -> Json<Capabilities> {
    let config = &state.config;
    let embedding_space = state.library.models().map(|models| EmbeddingSpaces {
        active: EmbeddingSpace::from(&models.spaces.active),
        target: models
            .spaces
            .switching()
            .then(|| EmbeddingSpace::from(&models.spaces.target)),
    });
    Json(Capabilities {
        hearth: BuildInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: git_revision().into(),
        },
        system: SystemInfo {
            nixos_generation: nixos_generation(Path::new(NIXOS_CURRENT_SYSTEM)),
        },
        model: model_info(state.model.get()),
        embedding_space,
        ingest: IngestInfo {
            content_types: SUPPORTED.iter().map(|&kind| kind.to_owned()).collect(),
            max_document_bytes: config.ingest.max_document_bytes,
            chunking: Chunking {
                max_tokens: config.ingest.chunking.max_tokens,
                overlap_tokens: config.ingest.chunking.overlap_tokens,
            },
        },
        search: SearchInfo {
            modes: SearchMode::ALL.to_vec(),
            max_k: MAX_K,
            max_query_chars: MAX_QUERY_CHARS,
        },
        limits: Limits {
            max_body_bytes: config.api.max_body_bytes,
            max_inputs_per_request: config.api.max_inputs_per_request,
            request_timeout_seconds: config.api.request_timeout_seconds,
            max_concurrent_requests: config.api.max_concurrent_requests,
            embedding_queue_capacity: config.embedding.queue_capacity,
            max_batch_tokens: config.embedding.max_batch_tokens,
        },
        schema: schema_info(&state).await,
        backups: backups(&config.backup.dir),
        last_upgrade: last_upgrade(&config.backup.dir),
    })
}

async fn schema_info(state: &AppState) -> SchemaInfo {
    let (version, newest_known) = match state.library.schema_version().await {
        Ok((applied, newest)) => (applied, newest),
        Err(_) => (None, hearth_core::schema::newest_known()),
    };
    SchemaInfo {
        version,
        newest_known,
        oldest_compatible: state.library.oldest_compatible_schema().await.ok(),
    }
}

fn backups(dir: &Path) -> Vec<BackupInfo> {
    hearth_core::schema::backup::list(dir)
        .into_iter()
        .map(|manifest| BackupInfo {
            path: manifest.path(dir).display().to_string(),
            reason: serde_json::to_value(manifest.reason)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default(),
            schema: manifest.schema,
            migrating_to: manifest.migrating_to,
            created_at: manifest.created_at,
            bytes: manifest.bytes,
            sha256: manifest.sha256,
        })
        .collect()
}

/// The record `hearth upgrade` keeps; one that cannot be read is logged and left out.
fn last_upgrade(dir: &Path) -> Option<UpgradeRecord> {
    let path = dir.join(LAST_UPGRADE_FILE);
    let text = std::fs::read(&path).ok()?;
    serde_json::from_slice(&text)
        .inspect_err(|error| tracing::warn!(%error, path = %path.display(), "cannot read the upgrade record"))
        .ok()
}

fn model_info(state: ModelState) -> ModelInfo {
    match state {
        ModelState::Ready(embedder) => {
            let manifest = embedder.manifest();
            ModelInfo::Ready(Box::new(LoadedModel {
                id: manifest.id.clone(),
                variant: manifest.variant.clone(),
                revision: manifest.revision.clone(),
                dims: manifest.dims,
                matryoshka_dims: manifest.matryoshka_dims.clone(),
                max_tokens: manifest.max_tokens,
                quantization: manifest.quantization.label().into(),
                files: manifest
                    .files
                    .iter()
                    .map(|file| ModelFile {
                        path: file.path.clone(),
                        sha256: file.sha256.clone(),
                    })
                    .collect(),
                dir: embedder.model_dir().display().to_string(),
                onnxruntime: embedder.onnxruntime_path().display().to_string(),
            }))
        }
        ModelState::Loading { model, .. } => ModelInfo::Loading { id: model },
        ModelState::Loaded(embedder) => ModelInfo::Loaded {
            id: embedder.manifest().id.clone(),
        },
        ModelState::Failed { model, .. } => ModelInfo::Failed { id: model },
    }
}

/// The store path name of the running NixOS generation (`…-nixos-system-hearth-26.05…`), or `None` off NixOS.
fn nixos_generation(current_system: &Path) -> Option<String> {
    let target = std::fs::read_link(current_system).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_is_the_link_targets_name_and_absent_off_nixos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("current-system");
        assert_eq!(nixos_generation(&link), None);
        std::os::unix::fs::symlink("/nix/store/abc123-nixos-system-hearth-26.05", &link).expect("link");
        assert_eq!(
            nixos_generation(&link).as_deref(),
            Some("abc123-nixos-system-hearth-26.05")
        );
    }
}
