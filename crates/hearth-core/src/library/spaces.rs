//! Embedding spaces: registering the loaded models, and completing a model switch once every document is in the
//! new space.

use super::{Library, LibraryError, Models};
use crate::digest::sha256_hex;
use crate::embed::Embedder;
use crate::store::spaces::{self, Spaces};

impl Library {
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

    /// Completes a model switch once nothing is left to embed into the new space, whatever removed the last job:
    /// its completion, a document given up, a delete.
    pub(super) async fn finish_switch_if_complete(&self) {
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
