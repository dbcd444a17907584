//! `POST /v1/search`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most hits one search returns.
pub const MAX_K: usize = 100;
/// Hits returned when `k` is not given.
pub const DEFAULT_K: usize = 10;
/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 4096;

/// How to rank: by meaning (`vector`), by words (`keyword`, BM25), or both fused (`hybrid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Hybrid,
    Vector,
    Keyword,
}

impl SearchMode {
    pub const ALL: [SearchMode; 3] = [SearchMode::Hybrid, SearchMode::Vector, SearchMode::Keyword];

    pub fn label(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Vector => "vector",
            SearchMode::Keyword => "keyword",
        }
    }
}

/// Which retriever found a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Retriever {
    Vector,
    Keyword,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Up to 4096 characters. In keyword mode `"a phrase"`, `-word` and `OR` mean what they do in a web search.
    #[schema(max_length = 4096)]
    pub query: String,
    /// How many hits, 1 to 100.
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub k: usize,
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default)]
    pub filter: Option<SearchFilter>,
}

fn default_k() -> usize {
    DEFAULT_K
}

/// Restricts a search to some documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilter {
    /// Only documents whose metadata contains this JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Only these documents.
    #[serde(default)]
    pub document_ids: Option<Vec<Uuid>>,
    /// Only documents that mention this concept (`GET /v1/concepts`).
    #[serde(default)]
    pub concept: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    pub mode: SearchMode,
    pub hits: Vec<Hit>,
}

/// One chunk found, with its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hit {
    pub chunk_id: i64,
    pub document_id: Uuid,
    pub title: Option<String>,
    pub external_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub text: String,
    /// Character offsets `[start, end)` of the chunk in the document's extracted text.
    pub span: [i32; 2],
    /// Cosine similarity (vector), BM25 (keyword) or the fused score (hybrid).
    pub score: f64,
    pub retrievers: Vec<Retriever>,
    /// Concepts this chunk mentions (empty until concepts are extracted).
    #[serde(default)]
    pub concepts: Vec<crate::concepts::ConceptChip>,
}
