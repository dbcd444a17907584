//! The worker loop: claim a due job, run it under a renewed lease, record what came of it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::jobs::JobError;
use super::{Library, Models};
use crate::metrics::{JobOutcome, KindLabel};
use crate::store::StoreError;
use crate::store::documents;
use crate::store::jobs::{self, Job};

impl Library {
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
                documents::mark_failed(&mut tx, job.document_id, reason).await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = job.id, "could not record the failure; the job will be retried");
        }
    }
}
