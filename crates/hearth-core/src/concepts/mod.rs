//! The concept graph. With the user's consent (a provider with `concepts: true`), every document's current version
//! is sent, a few chunks per request, to the provider with a JSON schema for the concepts and relations in them;
//! what comes back is merged into one graph (same name, an alias, or a name close in embedding space is the same
//! concept), mentions pointing at chunks and spans. Jobs are durable and fenced like ingest jobs, spend at most
//! `concepts.daily_token_budget` provider tokens a UTC day, and wait with back-off while the provider fails.
//!
//! `extraction` is one request (prompt, schema, reading the answer), `worker` runs the jobs, this module answers
//! the API's questions about the graph.

mod extraction;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Days, NaiveTime, Utc};
use hearth_api::concepts::{
    Concept, ConceptDetail, ConceptDocument, ConceptList, ConceptQuery, DEFAULT_CONCEPT_LIMIT, Direction,
    ExtractionStatus, MAX_CONCEPT_LIMIT, MAX_CONCEPT_QUERY_CHARS, Mention, Neighbour, TokenBudget,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

pub use extraction::{clean_name, estimate_tokens, messages, normalize, parse, schema};

use crate::embed::{EmbedRequest, InputKind, Priority};
use crate::library::{Library, LibraryError};
use crate::reasoning::{Reasoning, host_of};
use crate::store::{concepts as jobs, graph};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConceptsConfig {
    /// Provider tokens (prompt and answer) extraction may spend per UTC day; then it waits for the next day.
    pub daily_token_budget: u64,
    /// Chunks sent in one request.
    pub chunks_per_request: usize,
    /// The provider's `max_tokens` for one request's answer.
    pub max_output_tokens: u32,
    /// Cosine similarity of two names' embeddings at or above which they are one concept.
    pub merge_similarity: f64,
    /// Unusable answers (not JSON, not the schema) before a document's extraction is given up.
    pub max_attempts: u32,
}

impl Default for ConceptsConfig {
    fn default() -> Self {
        Self {
            daily_token_budget: 200_000,
            chunks_per_request: 8,
            max_output_tokens: 1024,
            merge_similarity: 0.92,
            max_attempts: 3,
        }
    }
}

impl ConceptsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.daily_token_budget < 1000 {
            return Err(format!(
                "concepts.daily_token_budget = {} is too small for one request: at least 1000 (to stop extraction, \
                 turn concepts off for the provider instead)",
                self.daily_token_budget
            ));
        }
        if !(1..=32).contains(&self.chunks_per_request) {
            return Err(format!(
                "concepts.chunks_per_request = {} is out of range: 1 to 32",
                self.chunks_per_request
            ));
        }
        if !(64..=32_768).contains(&self.max_output_tokens) {
            return Err(format!(
                "concepts.max_output_tokens = {} is out of range: 64 to 32768",
                self.max_output_tokens
            ));
        }
        if !(0.5..=1.0).contains(&self.merge_similarity) {
            return Err(format!(
                "concepts.merge_similarity = {} is out of range: 0.5 (merge loosely) to 1.0 (only identical \
                 embeddings)",
                self.merge_similarity
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(format!(
                "concepts.max_attempts = {} is out of range: 1 to 20",
                self.max_attempts
            ));
        }
        Ok(())
    }
}

/// Where extraction reads the time: the budget's day, back-off and leases. Tests move it forward.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The next UTC midnight after `now`: when the day's budget is new.
pub fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .unwrap_or(now.date_naive());
    tomorrow.and_time(NaiveTime::MIN).and_utc()
}

pub struct Concepts {
    config: ConceptsConfig,
    library: Arc<Library>,
    reasoning: Arc<Reasoning>,
    clock: Arc<dyn Clock>,
    /// The provider refused OpenAI's `json_schema`: send `json_object` with a schema instead, from then on.
    json_object_only: AtomicBool,
    /// Whether the jobs left waiting or failed by an earlier run were made due (once the schema is there).
    requeued: AtomicBool,
    wake: Notify,
}

impl std::fmt::Debug for Concepts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Concepts").field("config", &self.config).finish()
    }
}

impl Concepts {
    pub fn new(
        config: ConceptsConfig,
        library: Arc<Library>,
        reasoning: Arc<Reasoning>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            library,
            reasoning,
            clock,
            json_object_only: AtomicBool::new(false),
            requeued: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    pub fn config(&self) -> &ConceptsConfig {
        &self.config
    }

    /// The provider's settings changed: documents waiting on the old one's failures are due at once, and those
    /// that failed are tried again (the new settings may do better).
    pub async fn provider_changed(&self) -> Result<(), LibraryError> {
        self.requeue().await?;
        // A new provider may take json_schema.
        self.json_object_only
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// Makes waiting and failed extractions due now: at start (a raised budget or attempts may let them through)
    /// and when the provider changes.
    pub(super) async fn requeue(&self) -> Result<(), LibraryError> {
        jobs::requeue(self.library.pool()?).await?;
        Ok(())
    }

    /// `GET /v1/concepts/extraction`.
    pub async fn status(&self) -> Result<ExtractionStatus, crate::reasoning::ReasoningError> {
        let pool = self.library.pool()?;
        let provider = self.reasoning.provider().await?;
        let now = self.clock.now();
        let counts = jobs::counts(pool).await.map_err(LibraryError::from)?;
        let count = |state: &str| counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        let used_today = jobs::tokens_spent(pool, now.date_naive())
            .await
            .map_err(LibraryError::from)?;
        let first_waiting = jobs::first_waiting(pool).await.map_err(LibraryError::from)?;
        let enabled = provider.as_ref().is_some_and(|p| p.concepts);
        let waiting = match (&provider, enabled, &first_waiting) {
            (None, _, _) => Some("no reasoning provider is set, so nothing is extracted".to_owned()),
            (Some(_), false, _) => Some(
                "concept extraction is off: turn on concepts for the provider in Settings (concepts: true)"
                    .to_owned(),
            ),
            (Some(_), true, Some((reason, until))) if *until > now => Some(reason.clone()),
            _ => None,
        };
        let sends = match &provider {
            Some(p) if p.concepts => format!(
                "the text of every document's chunks, a few at a time, to {} (model {}); never chunks of \
                 documents with \"private\": true",
                host_of(&p.base_url),
                p.model
            ),
            _ => "nothing".to_owned(),
        };
        Ok(ExtractionStatus {
            enabled,
            next_attempt_at: first_waiting.map(|(_, until)| until).filter(|until| *until > now),
            waiting,
            pending: count("pending"),
            done: count("done"),
            failed: count("failed"),
            private: count("private"),
            concepts: jobs::concept_count(pool).await.map_err(LibraryError::from)?,
            budget: TokenBudget {
                daily_tokens: self.config.daily_token_budget,
                used_today,
                resets_at: next_midnight(now),
            },
            sends,
        })
    }

    /// `GET /v1/concepts`: by name or alias, then by meaning; without a query the most mentioned.
    pub async fn list(&self, query: &ConceptQuery) -> Result<ConceptList, LibraryError> {
        let pool = self.library.pool()?;
        let limit = query.limit.unwrap_or(DEFAULT_CONCEPT_LIMIT);
        if limit == 0 || limit > MAX_CONCEPT_LIMIT {
            return Err(LibraryError::InvalidRequest(format!(
                "limit must be between 1 and {MAX_CONCEPT_LIMIT}"
            )));
        }
        let text = query.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if let Some(text) = text {
            crate::library::storable("query", Some(text))?;
            if text.chars().count() > MAX_CONCEPT_QUERY_CHARS {
                return Err(LibraryError::InvalidQuery(format!(
                    "query is longer than {MAX_CONCEPT_QUERY_CHARS} characters: a concept's name is shorter"
                )));
            }
        }
        let key = text.map(normalize);
        let mut found = graph::matching(pool, key.as_deref(), limit as i64).await?;
        if let (Some(text), Some(models)) = (text, self.library.models())
            && found.len() < limit
        {
            let vector = embed_name(&models, text).await?;
            let skip: Vec<Uuid> = found.iter().map(|c| c.id).collect();
            let rest = (limit - found.len()) as i64;
            found.extend(graph::similar(pool, models.spaces.active.id, &vector, &skip, rest).await?);
        }
        Ok(ConceptList {
            concepts: found.into_iter().map(Concept::from).collect(),
        })
    }

    /// `GET /v1/concepts/{id}`.
    pub async fn detail(&self, id: Uuid) -> Result<ConceptDetail, LibraryError> {
        let pool = self.library.pool()?;
        let concept = graph::get(pool, id)
            .await?
            .ok_or(LibraryError::ConceptNotFound(id))?;
        let documents = graph::documents(pool, id)
            .await?
            .into_iter()
            .map(|(id, title, mentions)| ConceptDocument { id, title, mentions })
            .collect();
        let mentions = graph::mentions(pool, id)
            .await?
            .into_iter()
            .map(mention)
            .collect();
        let neighbours = graph::neighbours(pool, id)
            .await?
            .into_iter()
            .map(|n| Neighbour {
                id: n.id,
                name: n.name,
                relation: n.relation,
                direction: match n.direction.as_str() {
                    "out" => Direction::Out,
                    "in" => Direction::In,
                    _ => Direction::Both,
                },
                weight: n.weight,
            })
            .collect();
        Ok(ConceptDetail {
            concept: concept.into(),
            documents,
            mentions,
            neighbours,
        })
    }
}

/// A mention with a snippet of up to 240 characters around it.
fn mention(row: graph::MentionRow) -> Mention {
    let chars: Vec<char> = row.chunk_text.chars().collect();
    let start = (row.char_start - row.chunk_start).clamp(0, chars.len() as i32) as usize;
    let end = (row.char_end - row.chunk_start).clamp(start as i32, chars.len() as i32) as usize;
    let from = start.saturating_sub(100);
    let to = (end + 100).min(chars.len()).max((from + 240).min(chars.len()));
    let to = to.min(from + 240);
    Mention {
        document_id: row.document_id,
        chunk_id: row.chunk_id,
        ordinal: row.ordinal,
        span: [row.char_start, row.char_end],
        exact: row.exact,
        snippet: chars[from..to].iter().collect(),
    }
}

/// A concept name's vector in the searched space, embedded like a query so names and queries compare.
async fn embed_name(models: &crate::library::Models, name: &str) -> Result<Vec<f32>, LibraryError> {
    let mut request = EmbedRequest::new(vec![name.to_owned()], InputKind::Query, Priority::Query);
    request.truncate = true;
    let embedded = models.query_model().embed(request).await?;
    Ok(embedded.vectors.into_iter().next().unwrap_or_default())
}
