//! The originals' lifecycle: removing the bytes nothing refers to any more, at once or by the periodic sweep.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Library, LibraryError};
use crate::store::StoreError;
use crate::store::documents;
use crate::store::search as retrieval;

impl Library {
    /// Removes the original with these bytes if nothing needs it any more (no document, no upload in progress),
    /// deciding and deleting under the content's lock. A failure is left to the next sweep.
    pub(super) async fn collect(&self, sha256: &str) -> bool {
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
    pub(super) async fn fold_lexicon(&self) {
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
}
