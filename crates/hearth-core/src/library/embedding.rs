//! Which backend embeds ingest and search: the local model, or a remote hearthd (`embedding.remote`) while it is
//! the same space. A query never waits on a remote that is down or slow (the local model answers at once); an
//! ingest group falls back to the local model or waits for the remote, as `ingest_fallback` says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Library;
use super::jobs::JobError;
use crate::embed::remote::{IngestFallback, RemoteEmbedder, SpaceIdentity};
use crate::embed::{EmbedError, EmbedRequest, Embedder, InputKind, Priority};

/// Inputs per request, local or remote: small enough to queue, large enough to batch well.
const PER_REQUEST: usize = 32;
/// The longest wait between tries while ingest waits for the remote.
const MAX_REMOTE_BACKOFF: Duration = Duration::from_secs(30);

/// Which backends may embed a job's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backends {
    /// The configured model's space: the remote (checked against exactly this space) first.
    RemoteFirst,
    /// The previous space during a model switch: the remote is checked against the new one, so never there.
    LocalOnly,
}

impl Library {
    /// Embeds ingest (and, by its setting, queries) on `remote` from now on, while it is the same space.
    pub fn set_remote_embedder(&self, remote: Arc<RemoteEmbedder>) {
        if self.remote.set(remote).is_err() {
            tracing::warn!("a remote embedder was already set; the first one stays");
        }
    }

    pub fn remote_embedder(&self) -> Option<&Arc<RemoteEmbedder>> {
        self.remote.get()
    }

    /// Checks the remote against the configured model every `check_seconds` until `shutdown` turns true.
    pub async fn watch_remote_embedder(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(remote) = self.remote.get().cloned() else {
            return;
        };
        let interval = Duration::from_secs(remote.config().check_seconds.max(1));
        let mut models = self.models.subscribe();
        while !*shutdown.borrow() {
            let target = models.borrow_and_update().as_ref().map(|m| m.target.clone());
            if let Some(target) = target {
                remote.check(&SpaceIdentity::of(target.manifest())).await;
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = models.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Embeds texts as documents into `embedder`'s space, in requests small enough to queue; on the remote first
    /// when `backends` allows it.
    pub(super) async fn embed_documents(
        &self,
        embedder: &Embedder,
        texts: &[String],
        backends: Backends,
    ) -> Result<Vec<Vec<f32>>, JobError> {
        let identity = self
            .remote
            .get()
            .filter(|_| backends == Backends::RemoteFirst)
            .map(|_| SpaceIdentity::of(embedder.manifest()));
        let mut vectors = Vec::with_capacity(texts.len());
        for group in texts.chunks(PER_REQUEST) {
            if let (Some(remote), Some(identity)) = (self.remote.get(), &identity)
                && let Some(embedded) = self.embed_group_remotely(remote, group, identity).await
            {
                vectors.extend(embedded);
                continue;
            }
            vectors.extend(self.embed_group_locally(embedder, group).await?);
        }
        Ok(vectors)
    }

    /// The group's vectors from the remote; `None` when the local model should embed it (fallback `local`). With
    /// fallback `wait` it retries with back-off until the remote answers in the same space.
    async fn embed_group_remotely(
        &self,
        remote: &RemoteEmbedder,
        group: &[String],
        identity: &SpaceIdentity,
    ) -> Option<Vec<Vec<f32>>> {
        let metrics = &self.metrics.embed_backends;
        let mut backoff = Duration::from_millis(500);
        loop {
            if remote.usable_for(identity) {
                let started = Instant::now();
                match remote.embed(group, InputKind::Document, identity).await {
                    Ok(vectors) => {
                        metrics.count("remote", "ingest", group.len(), started);
                        return Some(vectors);
                    }
                    Err(error) if error.refused_this_request() => {
                        tracing::warn!(%error, "the remote refused an ingest group; it is embedded locally");
                        return None;
                    }
                    Err(error) => tracing::warn!(%error, "an ingest group could not be embedded remotely"),
                }
            }
            if remote.config().ingest_fallback == IngestFallback::Local {
                return None;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_REMOTE_BACKOFF);
            // The periodic check may take a while: look again now rather than wait for it.
            remote.check(identity).await;
        }
    }

    async fn embed_group_locally(
        &self,
        embedder: &Embedder,
        group: &[String],
    ) -> Result<Vec<Vec<f32>>, JobError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let request = EmbedRequest::new(group.to_vec(), InputKind::Document, Priority::Ingest);
            match embedder.embed(request).await {
                Ok(embedded) => {
                    self.metrics
                        .embed_backends
                        .count("local", "ingest", group.len(), started);
                    return Ok(embedded.vectors);
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

    /// A search query's vector in `embedder`'s space: on the remote when `queries` is set and it is ready, else
    /// (or when it fails or is slow) on the local model at once.
    pub(super) async fn embed_query_text(
        &self,
        embedder: &Embedder,
        query: &str,
    ) -> Result<Vec<f32>, EmbedError> {
        let metrics = &self.metrics.embed_backends;
        let texts = [query.to_owned()];
        if let Some(remote) = self.remote.get().filter(|remote| remote.config().queries) {
            let identity = SpaceIdentity::of(embedder.manifest());
            if remote.usable_for(&identity) {
                let started = Instant::now();
                match remote.embed(&texts, InputKind::Query, &identity).await {
                    Ok(mut vectors) if vectors.len() == 1 => {
                        metrics.count("remote", "query", 1, started);
                        return Ok(vectors.remove(0));
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "the query is embedded locally instead"),
                }
            }
        }
        let started = Instant::now();
        let mut request = EmbedRequest::new(texts.to_vec(), InputKind::Query, Priority::Query);
        request.truncate = true;
        let embedded = embedder.embed(request).await?;
        metrics.count("local", "query", 1, started);
        Ok(embedded.vectors.into_iter().next().unwrap_or_default())
    }
}
