//! Reasoning: the remote provider (`/v1/settings/reasoning`), answers with citations (`POST /v1/answer`) and the
//! OpenAI chat surface (`POST /v1/chat/completions`, model `hearth`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::search::SearchFilter;

/// The model name under which `/v1/chat/completions` answers from the library.
pub const CHAT_MODEL: &str = "hearth";
/// Chunks an answer is built from when `k` is not given.
pub const DEFAULT_ANSWER_K: usize = 6;
/// Most chunks one answer may be built from.
pub const MAX_ANSWER_K: usize = 20;
/// The longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// `PUT /v1/settings/reasoning`: an OpenAI-compatible provider. Only chunk text of non-private documents is sent
/// to it, and only for the features turned on here. `Debug` never shows the key.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The provider's OpenAI-compatible base URL, up to and including `/v1` (for example
    /// `https://api.openai.com/v1`, or `http://workstation.local:8000/v1` for the LAN engine).
    pub base_url: String,
    /// The provider's model name.
    pub model: String,
    /// The API key: stored encrypted, never returned. Omitted: the stored key is kept when `base_url` is
    /// unchanged (and dropped when it changes, so a key never follows a new address); none for a LAN engine.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Remove the stored key.
    #[serde(default)]
    pub remove_key: bool,
    /// Send retrieved chunks to the provider to answer questions (`/v1/answer`, chat model `hearth`, MCP
    /// `answer`). Off: nothing is sent.
    #[serde(default)]
    pub answers: bool,
    /// Send the chunks of every document (never one with `"private": true`) to the provider to extract concepts,
    /// within `concepts.daily_token_budget`. Off: nothing is sent for concepts.
    #[serde(default)]
    pub concepts: bool,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("remove_key", &self.remove_key)
            .field("answers", &self.answers)
            .field("concepts", &self.concepts)
            .finish()
    }
}

/// Where the provider's settings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderSource {
    /// Set through the API or the web UI, stored in the database.
    Settings,
    /// Declared in hearth's configuration (`reasoning.provider`, the NixOS module): the API cannot change it.
    Config,
}

/// The provider as hearth has it; the key appears only as its fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Provider {
    pub id: Uuid,
    pub base_url: String,
    pub model: String,
    /// sha256 of the key, first 6 bytes in hex; absent when no key is set.
    pub key_fingerprint: Option<String>,
    pub answers: bool,
    /// Whether chunks are sent to extract concepts.
    #[serde(default)]
    pub concepts: bool,
    pub source: ProviderSource,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/settings/reasoning`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningSettings {
    /// None: nothing ever leaves the box.
    pub provider: Option<Provider>,
    /// Whether hearthd has its `encryption-key` credential (without it no key can be stored).
    pub can_store_keys: bool,
    /// What leaves the box, in words.
    pub sends: String,
}

/// `POST /v1/settings/reasoning/test`: what the provider answered to a listing of its models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderTest {
    pub ok: bool,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    pub message: String,
    /// The models it lists.
    pub models: Vec<String>,
    /// Whether the configured model is among them.
    pub model_listed: bool,
}

/// `POST /v1/answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Up to 2000 characters.
    #[schema(max_length = 2000)]
    pub question: String,
    /// Chunks retrieved (hybrid search) to answer from, 1 to 20.
    #[serde(default = "default_answer_k")]
    #[schema(minimum = 1, maximum = 20, default = 6)]
    pub k: usize,
    #[serde(default)]
    pub filter: Option<SearchFilter>,
    /// Answer as server-sent events: `delta` events with text, then one `citations` event, then `done`.
    #[serde(default)]
    pub stream: bool,
}

fn default_answer_k() -> usize {
    DEFAULT_ANSWER_K
}

/// A numbered source the answer may cite as `[n]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    /// The number the prompt gave the chunk, `[n]` in the answer.
    pub n: usize,
    pub document_id: Uuid,
    pub title: Option<String>,
    pub chunk_id: i64,
    /// Character offsets `[start, end)` of the chunk in the document's extracted text.
    pub span: [i32; 2],
    /// Whether the answer's text cites it.
    pub cited: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Answer {
    /// The provider's text; empty when nothing in the library matched.
    pub answer: String,
    /// The chunks sent to the provider, numbered as in the prompt.
    pub citations: Vec<Citation>,
    /// Whether the provider was asked (false when nothing matched).
    pub asked_provider: bool,
    pub model: Option<String>,
}

/// `POST /v1/chat/completions`: the parts of OpenAI's request hearth reads; other fields are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// `hearth`.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub role: String,
    /// A string, or OpenAI's array of content parts (their `text` parts are read).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    /// hearth extension: the chunks the answer was built from.
    pub citations: Vec<Citation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: ChatReply,
    pub finish_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatReply {
    pub role: String,
    pub content: String,
}
