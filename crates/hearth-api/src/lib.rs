//! hearth's HTTP contract. hearthd serves these types, the `hearth` CLI (and any other Rust client) reads them, and
//! their `utoipa` derives make the OpenAPI document hearthd serves at `/openapi.json`: one definition of every body,
//! so server and clients cannot drift apart.
//!
//! Serde types only: this crate must stay light enough for any client to link (no tokio, database or model runtime).

pub mod concepts;
pub mod content_type;
pub mod documents;
pub mod error;
pub mod openai;
pub mod reasoning;
pub mod search;
pub mod status;

pub use content_type::ContentType;
pub use error::{ErrorBody, ErrorCode, OpenAiErrorBody};
