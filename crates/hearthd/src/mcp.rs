//! MCP at `/mcp` (the official Rust SDK, streamable HTTP transport): the library as tools for agents — `search`,
//! `list_documents`, `get_document` and `answer`. It sits behind the same Host/Origin guard and bearer
//! authentication as the rest of the API (the SDK's own loopback-only Host check is off for that reason: hearth's
//! guard already allows exactly the appliance's names).
//!
//! An agent sends what its tools return to its own model, wherever that runs, so documents marked
//! `"private": true` are not shown here at all: not found, not listed, not read.

use std::sync::Arc;

use hearth_api::documents::ListParams;
use hearth_api::search::{SearchMode, SearchRequest};
use hearth_core::library::{Library, LibraryError};
use hearth_core::reasoning::{Reasoning, is_private};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use uuid::Uuid;

/// Most characters of a document's text `get_document` returns.
const MAX_DOCUMENT_CHARS: usize = 100_000;

#[derive(Clone)]
pub struct HearthTools {
    library: Arc<Library>,
    reasoning: Arc<Reasoning>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// What to look for: words, a phrase in quotes, or a question.
    pub query: String,
    /// How many passages, 1 to 100 (default 10).
    pub k: Option<usize>,
    /// `hybrid` (default), `vector` (by meaning) or `keyword` (by words).
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListArgs {
    /// `pending`, `processing`, `ready` or `failed`.
    pub status: Option<String>,
    /// Documents per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DocumentArgs {
    /// The document's id (a UUID, as `search` and `list_documents` give it).
    pub id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AnswerArgs {
    /// The question.
    pub question: String,
    /// Passages to answer from, 1 to 20 (default 6).
    pub k: Option<usize>,
}

/// A tool's answer: the value as JSON text, or the error's message (the agent reads it and can change course).
fn reply<T: serde::Serialize, E: std::fmt::Display>(result: Result<T, E>) -> CallToolResult {
    match result {
        Ok(value) => CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&value).unwrap_or_default(),
        )]),
        Err(error) => CallToolResult::error(vec![ContentBlock::text(error.to_string())]),
    }
}

#[tool_router]
impl HearthTools {
    pub fn new(library: Arc<Library>, reasoning: Arc<Reasoning>) -> Self {
        Self {
            library,
            reasoning,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Search the library's documents by meaning and by words; returns the best passages with \
                          their document ids, titles and character spans"
    )]
    async fn search(&self, Parameters(args): Parameters<SearchArgs>) -> Result<CallToolResult, ErrorData> {
        let mode = match args.mode.as_deref() {
            None => SearchMode::Hybrid,
            Some(name) => match SearchMode::ALL.into_iter().find(|mode| mode.label() == name) {
                Some(mode) => mode,
                None => {
                    return Ok(reply::<(), _>(Err(format!(
                        "mode '{}' is not one of hybrid, vector, keyword",
                        name.chars().take(30).collect::<String>()
                    ))));
                }
            },
        };
        let request = SearchRequest {
            query: args.query,
            k: args.k.unwrap_or(hearth_api::search::DEFAULT_K),
            mode,
            filter: None,
        };
        let k = request.k;
        if k == 0 || k > hearth_api::search::MAX_K {
            return Ok(reply::<(), _>(Err(format!(
                "k must be between 1 and {}",
                hearth_api::search::MAX_K
            ))));
        }
        let request = SearchRequest {
            k: (k * 2).min(hearth_api::search::MAX_K),
            ..request
        };
        Ok(reply(self.library.search(&request).await.map(|mut hits| {
            hits.retain(|hit| !is_private(&hit.metadata));
            hits.truncate(k);
            hits
        })))
    }

    #[tool(description = "List the library's documents, oldest first, 50 a page; pass next_cursor for more")]
    async fn list_documents(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let params = ListParams {
            status: args.status,
            metadata: None,
            limit: args.limit,
            cursor: args.cursor,
            content_sha256: None,
        };
        Ok(reply(self.library.list(&params).await.map(|mut page| {
            page.documents.retain(|document| !is_private(&document.metadata));
            page
        })))
    }

    #[tool(description = "One document: its title, status and metadata, and its text passage by passage")]
    async fn get_document(
        &self,
        Parameters(args): Parameters<DocumentArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let Ok(id) = Uuid::parse_str(args.id.trim()) else {
            return Ok(reply::<(), _>(Err(format!(
                "'{}' is not a document id: ids are UUIDs, as search and list_documents give them",
                args.id.chars().take(60).collect::<String>()
            ))));
        };
        let document = match self.library.document(id).await {
            Ok(document) if is_private(&document.document.metadata) => {
                return Ok(reply::<(), _>(Err(LibraryError::NotFound(id))));
            }
            Ok(document) => document,
            Err(error) => return Ok(reply::<(), _>(Err(error))),
        };
        let chunks = match self.library.chunks(id).await {
            Ok(chunks) => chunks,
            Err(error) => return Ok(reply::<(), _>(Err(error))),
        };
        let mut chars = 0;
        let passages: Vec<serde_json::Value> = chunks
            .into_iter()
            .take_while(|chunk| {
                chars += chunk.text.len();
                chars <= MAX_DOCUMENT_CHARS
            })
            .map(|chunk| {
                serde_json::json!({
                    "chunk_id": chunk.id, "span": [chunk.char_start, chunk.char_end], "text": chunk.text,
                })
            })
            .collect();
        Ok(reply::<_, String>(Ok(
            serde_json::json!({"document": document, "passages": passages}),
        )))
    }

    #[tool(
        description = "Answer a question from the library with the configured reasoning provider, citing the \
                          passages used as [n]; only non-private passages are sent, and only when answers are \
                          turned on in hearth's Settings"
    )]
    async fn answer(&self, Parameters(args): Parameters<AnswerArgs>) -> Result<CallToolResult, ErrorData> {
        let k = args.k.unwrap_or(hearth_api::reasoning::DEFAULT_ANSWER_K);
        Ok(reply(self.reasoning.answer(&args.question, k, None).await))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HearthTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "hearth is a private knowledge library. Use `search` to find passages, `get_document` to read one, \
             `list_documents` to browse, and `answer` for a cited answer from the library.",
        )
    }
}

/// The `/mcp` service. Sessions live in this process.
pub fn service(
    library: Arc<Library>,
    reasoning: Arc<Reasoning>,
    max_body_bytes: usize,
) -> StreamableHttpService<HearthTools, LocalSessionManager> {
    StreamableHttpService::new(
        move || Ok(HearthTools::new(Arc::clone(&library), Arc::clone(&reasoning))),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_max_request_body_bytes(max_body_bytes),
    )
}
