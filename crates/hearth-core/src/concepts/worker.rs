//! The extraction worker: claim a due document, check consent, privacy and budget, ask the provider a few chunks
//! at a time, and merge what it found into the graph in one transaction fenced by the claim.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::extraction::{self, Extracted};
use super::{Concepts, next_midnight};
use crate::embed::{EmbedError, EmbedRequest, InputKind, Priority};
use crate::library::Models;
use sqlx::PgPool;

use crate::reasoning::{Message, ProviderClient, ProviderError, SchemaFormat, host_of, is_private};
use crate::store::StoreError;
use crate::store::concepts::{self as jobs, ConceptJob, Handback, SourceChunk};

/// The longest a document waits for a failing provider before it is asked again.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The most one request's tokens are booked as.
const MAX_BOOKED_TOKENS: u64 = 10_000_000;
/// Concept names embedded per pass after a model switch.
const REEMBED_BATCH: i64 = 32;

/// Why a job stopped short.
#[derive(Debug)]
enum JobStop {
    /// Handed back to the queue with this reason, due at `until`.
    Back(Handback, DateTime<Utc>, String),
    /// Ended for good.
    Close(&'static str, String),
    Store(StoreError),
}

impl From<StoreError> for JobStop {
    fn from(error: StoreError) -> Self {
        JobStop::Store(error)
    }
}

impl Concepts {
    /// Runs until `shutdown` turns true. A job in flight then is taken up again when its lease runs out: nothing
    /// of it was written but the tokens it spent.
    pub async fn run_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let worked = tokio::select! {
                worked = self.step() => worked,
                _ = shutdown.changed() => return,
            };
            let pause = match worked {
                Ok(true) => continue,
                Ok(false) => Duration::from_secs(1),
                Err(error) => {
                    tracing::warn!(%error, "concept extraction cannot proceed; trying again");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Wakes the worker (a document committed, settings changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: re-embed names a model switch left behind, then one job. `true` when it did something.
    async fn step(&self) -> Result<bool, crate::reasoning::ReasoningError> {
        let Some(models) = self.library.models() else {
            return Ok(false);
        };
        let pool = self.library.pool()?;
        if !self.requeued.load(Ordering::Relaxed) {
            self.requeue().await?;
            self.requeued.store(true, Ordering::Relaxed);
        }
        if self.reembed_names(&models).await? {
            return Ok(true);
        }
        let Some(client) = self.reasoning.concepts_client().await? else {
            return Ok(false);
        };
        let lease = self.lease();
        let Some(job) = jobs::claim(pool, self.clock.now(), lease)
            .await
            .map_err(crate::library::LibraryError::from)?
        else {
            return Ok(false);
        };
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                match jobs::renew(pool, &job, self.clock.now(), lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => tracing::warn!(%error, "cannot renew a concept job's lease"),
                }
            }
        };
        let outcome = tokio::select! {
            outcome = self.extract(pool, &job, &client, &models) => outcome,
            () = heartbeat => {
                tracing::info!(document = %job.document_id, "concept job taken over (new version or lease lost)");
                return Ok(true);
            }
        };
        self.record(&job, &client, outcome).await;
        Ok(true)
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.library.config().lease_seconds.max(1))
    }

    /// Logs and stores how the job ended.
    async fn record(
        &self,
        job: &ConceptJob,
        client: &ProviderClient,
        outcome: Result<Option<usize>, JobStop>,
    ) {
        let Ok(pool) = self.library.pool() else {
            return;
        };
        let document = job.document_id;
        let stored = match outcome {
            Ok(Some(concepts)) => {
                tracing::info!(%document, concepts, model = client.model(), "concepts extracted");
                Ok(())
            }
            Ok(None) => {
                tracing::info!(%document, "concept job taken over (new version or lease lost): nothing written");
                Ok(())
            }
            Err(JobStop::Back(how, until, reason)) => {
                tracing::warn!(%document, %reason, %until, "concept extraction waits");
                jobs::hand_back(pool, job, how, until, &reason).await
            }
            Err(JobStop::Close(state, reason)) => {
                tracing::info!(%document, state, %reason, "concept extraction ended");
                jobs::close(pool, job, state, &reason).await
            }
            Err(JobStop::Store(error)) => {
                tracing::warn!(%error, %document, "concept job failed on the database; trying again");
                let until = self.clock.now() + chrono::Duration::seconds(5);
                jobs::hand_back(
                    pool,
                    job,
                    Handback::Release,
                    until,
                    "the database failed; trying again",
                )
                .await
            }
        };
        if let Err(error) = stored {
            tracing::warn!(%error, %document, "cannot record the concept job; its lease will run out");
        }
    }

    /// The job's work up to and including its commit.
    async fn extract(
        &self,
        pool: &PgPool,
        job: &ConceptJob,
        client: &ProviderClient,
        models: &Models,
    ) -> Result<Option<usize>, JobStop> {
        let now = self.clock.now();
        let Some((metadata, chunks)) = jobs::source(pool, job.document_id, job.version).await? else {
            // Deleted (the job went with it) or a new version on its way, whose commit queues the job again.
            let until = now + chrono::Duration::seconds(30);
            let reason = "waiting for the document's new version to be ingested".to_owned();
            return Err(JobStop::Back(Handback::Release, until, reason));
        };
        if is_private(&metadata) {
            let reason = "the document is private (\"private\": true): never sent to a provider".to_owned();
            return Err(JobStop::Close("private", reason));
        }
        let batches: Vec<&[SourceChunk]> = chunks.chunks(self.config.chunks_per_request).collect();
        let prompts: Vec<_> = batches.iter().map(|batch| extraction::messages(batch)).collect();
        self.check_budget(pool, &prompts, now).await?;
        let mut found = Vec::new();
        let mut tokens = 0;
        for (batch, prompt) in batches.iter().zip(&prompts) {
            if !found.is_empty() {
                self.still_allowed(pool, client, prompt).await?;
            }
            let (extracted, spent) = self.ask(pool, job, client, batch, prompt).await?;
            tokens += spent;
            found.push((*batch, extracted));
        }
        self.commit(pool, job, client.model(), tokens, &found, models)
            .await
    }

    /// Refuses a document that can never fit the budget, and waits for tomorrow when today's is spent.
    async fn check_budget(
        &self,
        pool: &PgPool,
        prompts: &[Vec<Message>],
        now: DateTime<Utc>,
    ) -> Result<(), JobStop> {
        let budget = self.config.daily_token_budget;
        let needed: u64 = prompts
            .iter()
            .map(|p| extraction::estimate_tokens(p, self.config.max_output_tokens))
            .sum();
        if needed > budget {
            return Err(JobStop::Close(
                "failed",
                format!(
                    "the document needs about {needed} provider tokens, more than concepts.daily_token_budget \
                     ({budget}) allows in a day: raise it (failed documents are tried again when hearthd starts)"
                ),
            ));
        }
        let spent = jobs::tokens_spent(pool, now.date_naive()).await?;
        if spent + needed > budget {
            let resumes = next_midnight(now);
            return Err(JobStop::Back(
                Handback::Wait,
                resumes,
                format!(
                    "today's token budget is spent ({spent} of {budget} tokens, concepts.daily_token_budget; this \
                     document needs about {needed}): extraction resumes at {} UTC",
                    resumes.format("%Y-%m-%d %H:%M")
                ),
            ));
        }
        Ok(())
    }

    /// Between a document's requests: consent may have been withdrawn (or the provider changed), and the estimate
    /// may have been short of what the provider counted, so neither is taken from the job's start.
    async fn still_allowed(
        &self,
        pool: &PgPool,
        client: &ProviderClient,
        prompt: &[Message],
    ) -> Result<(), JobStop> {
        let now = self.clock.now();
        let current = self.reasoning.concepts_client().await.ok().flatten();
        if current
            .as_ref()
            .is_none_or(|c| c.base_url() != client.base_url() || c.model() != client.model())
        {
            let reason = "the provider or its consent to concepts changed mid-document".to_owned();
            return Err(JobStop::Back(Handback::Release, now, reason));
        }
        let budget = self.config.daily_token_budget;
        let spent = jobs::tokens_spent(pool, now.date_naive()).await?;
        let needed = extraction::estimate_tokens(prompt, self.config.max_output_tokens);
        if spent.saturating_add(needed) > budget {
            let resumes = next_midnight(now);
            return Err(JobStop::Back(
                Handback::Wait,
                resumes,
                format!(
                    "today's token budget ran out mid-document ({spent} of {budget} tokens, \
                     concepts.daily_token_budget): extraction resumes at {} UTC",
                    resumes.format("%Y-%m-%d %H:%M")
                ),
            ));
        }
        Ok(())
    }

    /// One request; its tokens are booked at once, whatever happens to the job.
    async fn ask(
        &self,
        pool: &PgPool,
        job: &ConceptJob,
        client: &ProviderClient,
        batch: &[SourceChunk],
        prompt: &[Message],
    ) -> Result<(Extracted, u64), JobStop> {
        let schema = extraction::schema(batch.len());
        let max_tokens = self.config.max_output_tokens;
        let format = self.format();
        let completion = match client.complete_json(prompt, &schema, format, max_tokens).await {
            Ok(completion) => completion,
            // A server that does not know OpenAI's json_schema refuses it (llama.cpp's Python server with 500):
            // ask once more with json_object and the schema, and keep to that when it works.
            Err(ProviderError::Refused {
                status: 400 | 422 | 500,
                ..
            }) if format == SchemaFormat::JsonSchema => {
                let completion = client
                    .complete_json(prompt, &schema, SchemaFormat::JsonObject, max_tokens)
                    .await
                    .map_err(|error| self.provider_failed(job, client, &error))?;
                tracing::info!(provider = %host_of(client.base_url()), "the provider refused response_format \
                    json_schema and took json_object with the schema: sending that from now on");
                self.json_object_only.store(true, Ordering::Relaxed);
                completion
            }
            Err(error) => return Err(self.provider_failed(job, client, &error)),
        };
        let now = self.clock.now();
        // Without a count from the provider, the most the request could have cost; a count past any real request's
        // (a broken or hostile provider) is capped so the day's sum stays a number.
        let spent = completion
            .total_tokens
            .unwrap_or_else(|| extraction::estimate_tokens(prompt, max_tokens))
            .min(MAX_BOOKED_TOKENS);
        jobs::spend(pool, now.date_naive(), spent).await?;
        let unusable = |reason: String| self.unusable(job, reason);
        if completion.truncated {
            return Err(unusable(format!(
                "the provider's answer was cut off at concepts.max_output_tokens ({max_tokens}): raise it, or lower \
                 concepts.chunks_per_request"
            )));
        }
        let extracted = extraction::parse(&completion.content, batch.len()).map_err(unusable)?;
        Ok((extracted, spent))
    }

    fn format(&self) -> SchemaFormat {
        if self.json_object_only.load(Ordering::Relaxed) {
            SchemaFormat::JsonObject
        } else {
            SchemaFormat::JsonSchema
        }
    }

    /// The provider could not answer: the job waits, longer each time, and never fails for it.
    /// A refusal of this very request (too long for its context, say) or a garbled answer would come again the same
    /// way: those count as attempts, so such a document fails after `concepts.max_attempts` instead of being sent
    /// for ever.
    fn provider_failed(&self, job: &ConceptJob, client: &ProviderClient, error: &ProviderError) -> JobStop {
        if matches!(
            error,
            ProviderError::Refused {
                status: 400 | 413 | 422,
                ..
            } | ProviderError::Malformed(_)
        ) {
            return self.unusable(job, format!("{}: {error}", host_of(client.base_url())));
        }
        let delay = backoff(job.waits);
        let until = self.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let hint = match error {
            ProviderError::Refused {
                status: 401 | 403, ..
            } => ": check the provider's API key in Settings",
            ProviderError::Refused { status: 404, .. } => {
                ": check the provider's base URL and model in Settings"
            }
            _ => "",
        };
        JobStop::Back(
            Handback::Wait,
            until,
            format!(
                "{}: {error}{hint}; asking again at {} UTC",
                host_of(client.base_url()),
                until.format("%H:%M:%S")
            ),
        )
    }

    /// An answer that could not be used counts as an attempt; after `concepts.max_attempts` the job fails.
    fn unusable(&self, job: &ConceptJob, reason: String) -> JobStop {
        if job.attempts + 1 >= self.config.max_attempts as i32 {
            JobStop::Close(
                "failed",
                format!(
                    "gave up after {} unusable answers; the last: {reason}",
                    job.attempts + 1
                ),
            )
        } else {
            let until = self.clock.now() + chrono::Duration::seconds(10);
            JobStop::Back(Handback::Attempt, until, reason)
        }
    }

    /// Embeds the names, then writes the graph and closes the job in one transaction, if the claim still holds.
    async fn commit(
        &self,
        pool: &PgPool,
        job: &ConceptJob,
        model: &str,
        tokens: u64,
        found: &[(&[SourceChunk], Extracted)],
        models: &Models,
    ) -> Result<Option<usize>, JobStop> {
        let names: Vec<String> = found
            .iter()
            .flat_map(|(_, extracted)| extracted.concepts.iter().map(|c| c.name.clone()))
            .collect();
        let vectors = embed_names(models, &names).await.map_err(|error| {
            let until = self.clock.now() + chrono::Duration::seconds(10);
            JobStop::Back(
                Handback::Release,
                until,
                format!("embedding concept names failed: {error}"),
            )
        })?;
        let space = models.spaces.active.id;
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        if !jobs::fence(&mut tx, job).await? {
            return Ok(None); // a new version or another worker owns the job now
        }
        jobs::lock_graph(&mut tx).await?;
        jobs::delete_document_graph(&mut tx, job.document_id).await?;
        let mut vectors = vectors.into_iter();
        let mut distinct = std::collections::HashSet::new();
        for (batch, extracted) in found {
            let mut ids = Vec::with_capacity(extracted.concepts.len());
            for concept in &extracted.concepts {
                let vector = vectors.next().unwrap_or_default();
                let id = self.resolve(&mut tx, concept, &vector, space).await?;
                let names: Vec<&str> = std::iter::once(concept.name.as_str())
                    .chain(concept.aliases.iter().map(String::as_str))
                    .collect();
                for &index in &concept.chunks {
                    let chunk = &batch[index];
                    let (span, exact) = extraction::locate(chunk, &names);
                    jobs::add_mention(&mut tx, id, job.document_id, chunk.id, span, exact).await?;
                }
                distinct.insert(id);
                ids.push(id);
            }
            for relation in &extracted.relations {
                let (source, target) = (ids[relation.source], ids[relation.target]);
                if source == target {
                    continue; // two names the merge found to be one concept
                }
                let chunk = evidence(batch, extracted, relation.source, relation.target);
                jobs::add_relation(&mut tx, source, target, relation.relation, chunk).await?;
            }
        }
        jobs::finish(&mut tx, job, model, tokens, distinct.len()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(distinct.len()))
    }

    /// The concept this name is: the same name or alias, else the nearest name above `concepts.merge_similarity`,
    /// else a new one.
    async fn resolve(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        concept: &extraction::Found,
        vector: &[f32],
        space: i64,
    ) -> Result<Uuid, StoreError> {
        let key = extraction::normalize(&concept.name);
        let mut existing = jobs::by_key(tx, &key).await?;
        for alias in &concept.aliases {
            if existing.is_some() {
                break;
            }
            existing = jobs::by_key(tx, &extraction::normalize(alias)).await?;
        }
        if existing.is_none() && !vector.is_empty() {
            existing = jobs::nearest(tx, space, vector)
                .await?
                .filter(|(_, similarity)| *similarity >= self.config.merge_similarity)
                .map(|(id, _)| id);
        }
        let id = match existing {
            Some(id) => {
                jobs::add_alias(tx, id, &concept.name, &key).await?;
                id
            }
            None => jobs::insert(tx, &concept.name, &key, space, vector).await?,
        };
        for alias in &concept.aliases {
            jobs::add_alias(tx, id, alias, &extraction::normalize(alias)).await?;
        }
        Ok(id)
    }

    /// After a model switch: the names without a vector in the searched space get one. `true` when it did some.
    async fn reembed_names(&self, models: &Models) -> Result<bool, crate::library::LibraryError> {
        let pool = self.library.pool()?;
        let space = models.spaces.active.id;
        let missing = jobs::unembedded(pool, space, REEMBED_BATCH).await?;
        if missing.is_empty() {
            return Ok(false);
        }
        let names: Vec<String> = missing.iter().map(|(_, name)| name.clone()).collect();
        let vectors = embed_names(models, &names).await?;
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        for ((id, _), vector) in missing.iter().zip(&vectors) {
            jobs::add_vector(&mut tx, *id, space, vector).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        tracing::info!(
            concepts = missing.len(),
            space,
            "concept names embedded into the searched space"
        );
        Ok(true)
    }
}

/// 15 s, 30 s, 1 min, … up to an hour.
pub(super) fn backoff(waits: i32) -> Duration {
    (Duration::from_secs(15) * 2u32.pow(waits.clamp(0, 12) as u32)).min(MAX_BACKOFF)
}

/// The chunk a relation is read from: one that mentions both concepts, else the first that mentions its source.
fn evidence(batch: &[SourceChunk], extracted: &Extracted, source: usize, target: usize) -> i64 {
    let source_chunks = &extracted.concepts[source].chunks;
    let target_chunks = &extracted.concepts[target].chunks;
    let index = source_chunks
        .iter()
        .find(|c| target_chunks.contains(c))
        .or_else(|| source_chunks.first())
        .copied()
        .unwrap_or(0);
    batch[index].id
}

/// The names' vectors, embedded like queries; waits while the embedding queue is full.
async fn embed_names(models: &Models, names: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut vectors = Vec::with_capacity(names.len());
    for group in names.chunks(32) {
        let mut backoff = Duration::from_millis(50);
        let embedded = loop {
            let mut request = EmbedRequest::new(group.to_vec(), InputKind::Query, Priority::Ingest);
            request.truncate = true;
            match models.query_model().embed(request).await {
                Ok(embedded) => break embedded,
                Err(EmbedError::QueueFull { .. }) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(error),
            }
        };
        vectors.extend(embedded.vectors);
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(15));
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(20), MAX_BACKOFF);
        assert_eq!(backoff(-1), Duration::from_secs(15));
    }
}
