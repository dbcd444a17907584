//! The concept graph: `GET /v1/concepts`, `GET /v1/concepts/{id}` and `GET /v1/concepts/extraction`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Concepts listed when `limit` is not given.
pub const DEFAULT_CONCEPT_LIMIT: usize = 20;
/// Most concepts one listing returns.
pub const MAX_CONCEPT_LIMIT: usize = 100;
/// The longest concept query accepted, in characters.
pub const MAX_CONCEPT_QUERY_CHARS: usize = 200;
/// The relations a provider may name; anything else is not stored.
pub const RELATIONS: [&str; 6] = [
    "is_a",
    "part_of",
    "uses",
    "causes",
    "contrasts_with",
    "related_to",
];
/// The relation shown between two concepts mentioned in the same chunk.
pub const MENTIONED_TOGETHER: &str = "mentioned_together";

/// `GET /v1/concepts?query=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConceptQuery {
    /// Words of a concept's name or alias (up to 200 characters); concepts close in meaning follow the ones
    /// that contain them. Absent: the most mentioned concepts.
    #[serde(default)]
    pub query: Option<String>,
    /// 1 to 100 (20).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A concept with how much the library talks about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Concept {
    pub id: Uuid,
    pub name: String,
    /// Other names it goes by (merged concepts' names among them).
    pub aliases: Vec<String>,
    /// Chunks that mention it.
    pub mentions: i64,
    /// Documents that mention it.
    pub documents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConceptList {
    pub concepts: Vec<Concept>,
}

/// A document that mentions the concept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConceptDocument {
    pub id: Uuid,
    pub title: Option<String>,
    pub mentions: i64,
}

/// Where a chunk mentions the concept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Mention {
    pub document_id: Uuid,
    pub chunk_id: i64,
    /// The chunk's position in its document.
    pub ordinal: i32,
    /// Character offsets `[start, end)` in the document's extracted text: the name itself when the chunk says it
    /// (`exact`), else the whole chunk the provider named.
    pub span: [i32; 2],
    pub exact: bool,
    /// Up to 240 characters around the mention.
    pub snippet: String,
}

/// Which way a relation points, seen from the concept asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// This concept is the relation's source (`this is_a neighbour`).
    Out,
    /// The neighbour is the source.
    In,
    /// Mentioned together; no direction.
    Both,
}

/// A concept related to this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Neighbour {
    pub id: Uuid,
    pub name: String,
    /// One of `is_a`, `part_of`, `uses`, `causes`, `contrasts_with`, `related_to`, or `mentioned_together`.
    pub relation: String,
    pub direction: Direction,
    /// Chunks the relation was read from (or that mention both).
    pub weight: i64,
}

/// `GET /v1/concepts/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConceptDetail {
    pub concept: Concept,
    /// Most mentions first, up to 50.
    pub documents: Vec<ConceptDocument>,
    /// In document and chunk order, up to 100.
    pub mentions: Vec<Mention>,
    /// Up to 20, typed relations before co-mentions, heaviest first.
    pub neighbours: Vec<Neighbour>,
}

/// A concept a search hit's chunk mentions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConceptChip {
    pub id: Uuid,
    pub name: String,
}

/// Provider tokens extraction may spend per UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenBudget {
    /// `concepts.daily_token_budget`.
    pub daily_tokens: u64,
    pub used_today: u64,
    /// The next UTC midnight.
    pub resets_at: DateTime<Utc>,
}

/// `GET /v1/concepts/extraction`: whether extraction runs, and why not when it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExtractionStatus {
    /// A provider is set with `concepts: true`.
    pub enabled: bool,
    /// Why nothing is being extracted now, in words (off, budget spent, provider failing); absent while it runs
    /// or has nothing to do.
    pub waiting: Option<String>,
    /// When the next waiting document is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Documents by extraction state.
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    /// Documents with `"private": true`: never sent, so never extracted.
    pub private: i64,
    pub concepts: i64,
    pub budget: TokenBudget,
    /// What leaves the box for extraction, in words.
    pub sends: String,
}
