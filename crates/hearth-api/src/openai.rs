//! The OpenAI-compatible routes: `POST /v1/embeddings` and `GET /v1/models`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `input`: a string, an array of strings, or (refused with a message saying so) token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<i64>),
    TokenBatches(Vec<Vec<i64>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// Which task prefix the model gets: a search query, or text to be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Query,
    #[default]
    Document,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    pub input: EmbeddingInput,
    /// The served model's id or directory name; omitted means the served one.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Truncate vectors to this size (the model's Matryoshka sizes).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// Accepted for compatibility; hearth keeps no per-user state.
    #[serde(default)]
    pub user: Option<String>,
    /// hearth extension: cut over-long inputs instead of refusing them (reported in `truncated`).
    #[serde(default)]
    pub truncate: bool,
    /// hearth extension: which task prefix the model gets (`document` unless told otherwise).
    #[serde(default)]
    pub input_type: InputType,
}

/// A vector: floats, or with `encoding_format: base64` the little-endian f32 bytes in base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// The model's f32 values widened to f64, so the JSON number is the f32's exact value: a client parsing it as a
    /// double gets the same vector as from `base64` (an f32 written in its shortest form would differ by ~1e-9).
    Float(Vec<f64>),
    Base64(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
    /// With `truncate: true`: the indices of the inputs that were cut to fit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ModelObject>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}
