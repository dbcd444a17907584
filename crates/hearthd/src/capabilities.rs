//! `GET /v1/capabilities`: what this hearthd is, what it runs and what it accepts, so a client or an operator can
//! tell exactly which build, model files and limits answered them.

use std::path::Path;

use axum::Json;
use axum::extract::State;
use hearth_core::library::{MAX_K, MAX_QUERY_CHARS};
use serde_json::{Value, json};

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

pub async fn capabilities(State(state): State<AppState>) -> Json<Value> {
    let config = &state.config;
    let model = match state.model.get() {
        ModelState::Ready(embedder) => {
            let manifest = embedder.manifest();
            json!({
                "status": "ready",
                "id": manifest.id,
                "variant": manifest.variant,
                "revision": manifest.revision,
                "dims": manifest.dims,
                "matryoshka_dims": manifest.matryoshka_dims,
                "max_tokens": manifest.max_tokens,
                "quantization": manifest.quantization,
                "files": manifest.files,
                "dir": embedder.model_dir(),
                "onnxruntime": embedder.onnxruntime_path(),
            })
        }
        ModelState::Loading { model, .. } => json!({ "status": "loading", "id": model }),
        ModelState::Loaded(embedder) => json!({ "status": "loaded", "id": embedder.manifest().id }),
        ModelState::Failed { model, .. } => json!({ "status": "failed", "id": model }),
    };
    let space = state.library.models().map(|models| {
        json!({
            "active": models.spaces.active,
            "target": models.spaces.switching().then_some(&models.spaces.target),
        })
    });
    Json(json!({
        "hearth": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": git_revision(),
        },
        "system": { "nixos_generation": nixos_generation(Path::new(NIXOS_CURRENT_SYSTEM)) },
        "model": model,
        "embedding_space": space,
        "ingest": {
            "content_types": hearth_core::extract::SUPPORTED,
            "max_document_bytes": config.ingest.max_document_bytes,
            "chunking": config.ingest.chunking,
        },
        "search": { "modes": ["hybrid", "vector", "keyword"], "max_k": MAX_K, "max_query_chars": MAX_QUERY_CHARS },
        "limits": {
            "max_body_bytes": config.api.max_body_bytes,
            "max_inputs_per_request": config.api.max_inputs_per_request,
            "request_timeout_seconds": config.api.request_timeout_seconds,
            "max_concurrent_requests": config.api.max_concurrent_requests,
            "embedding_queue_capacity": config.embedding.queue_capacity,
            "max_batch_tokens": config.embedding.max_batch_tokens,
        },
    }))
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
