//! Reasoning routes: the provider's settings, answers with citations (JSON or server-sent events), and model
//! `hearth` on OpenAI's chat completions route.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, BoxStream, StreamExt};
use hearth_api::ErrorBody;
use hearth_api::reasoning::{
    Answer, AnswerRequest, CHAT_MODEL, ChatChoice, ChatCompletion, ChatMessage, ChatReply, ChatRequest,
    Citation, Provider, ProviderSettings, ProviderTest, ReasoningSettings,
};
use hearth_core::auth::Identity;
use hearth_core::reasoning::{self, Message, NO_MATCH, ReasoningError};

use crate::error::ApiError;
use crate::http::AppState;
use crate::input::parse_json;
use crate::openai::OpenAiError;

/// Most earlier chat turns passed on to the provider with a question.
const MAX_HISTORY: usize = 10;
/// Most characters of those turns together.
const MAX_HISTORY_CHARS: usize = 32_000;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The reasoning provider and what leaves the box; never the key.
#[utoipa::path(
    get, path = "/v1/settings/reasoning", tag = "reasoning",
    responses((status = 200, body = ReasoningSettings), (status = 503, body = ErrorBody)),
)]
pub async fn get_settings(State(state): State<AppState>) -> Result<Json<ReasoningSettings>, ApiError> {
    Ok(Json(state.reasoning.settings().await?))
}

/// Sets the provider. The key is sealed with the box's encryption key; without one, a key is refused (503).
#[utoipa::path(
    put, path = "/v1/settings/reasoning", tag = "reasoning",
    request_body = ProviderSettings,
    responses(
        (status = 200, body = Provider), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
)]
pub async fn put_settings(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> Result<Json<Provider>, ApiError> {
    let settings: ProviderSettings = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"base_url\", \"model\", \"api_key\"?, \"remove_key\"?, \"answers\"?, \"concepts\"?}}: {e}"
        ))
    })?;
    let provider = state.reasoning.put(settings, &identity.to_string()).await?;
    state.concepts.provider_changed().await?;
    Ok(Json(provider))
}

/// Removes the provider: from then on nothing leaves the box.
#[utoipa::path(
    delete, path = "/v1/settings/reasoning", tag = "reasoning",
    responses(
        (status = 204, description = "Removed, or there was none"), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
)]
pub async fn delete_settings(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Result<StatusCode, ApiError> {
    state.reasoning.delete(&identity.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks the provider for its models with the stored key, and says what it answered.
#[utoipa::path(
    post, path = "/v1/settings/reasoning/test", tag = "reasoning",
    responses((status = 200, body = ProviderTest), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
)]
pub async fn test_settings(State(state): State<AppState>) -> Result<Json<ProviderTest>, ApiError> {
    Ok(Json(state.reasoning.test().await?))
}

/// An answer from the library: hybrid search, the chunks numbered in the prompt, the provider's text, and the
/// sources. With `stream`, server-sent events: `delta` (`{"text"}`) as the text comes, then `citations` (the
/// sources), then `done`; a failure after the first byte is an `error` event (`{code, message}`).
#[utoipa::path(
    post, path = "/v1/answer", tag = "reasoning",
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "The answer; with `stream: true`, server-sent events",
         content((Answer = "application/json"), (String = "text/event-stream"))),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ),
)]
pub async fn answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_own_request(&headers)?;
    let request: AnswerRequest = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"question\", \"k\"?, \"filter\"?, \"stream\"?}}: {e}"
        ))
    })?;
    if !request.stream {
        let answer = state
            .reasoning
            .answer(&request.question, request.k, request.filter)
            .await?;
        return Ok(Json(answer).into_response());
    }
    let started = state
        .reasoning
        .start_answer(&request.question, request.k, request.filter, &[])
        .await?;
    let events = answer_events(started.text, started.citations);
    Ok(event_stream(events))
}

/// A request from a hearth's own provider client: this hearth is set as its own provider, which would loop.
fn refuse_own_request(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(reasoning::HOP_HEADER) {
        return Err(ApiError::BadRequest(
            "this request comes from a hearth's reasoning provider client: a hearth cannot be its own (or another \
             hearth's) reasoning provider; set an OpenAI-compatible engine instead"
                .into(),
        ));
    }
    Ok(())
}

/// Server-sent events with a keep-alive comment every [`KEEP_ALIVE`], so proxies keep a slow answer open.
fn event_stream(events: BoxStream<'static, Event>) -> Response {
    Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// A piece of an answer under way.
enum Piece {
    Text(String),
    /// The whole text, once the provider finished.
    End(String),
    Failed(ReasoningError),
}

/// The provider's text as pieces, ending with the whole of it or the failure. Dropping this drops the provider's
/// stream, which closes its connection: a client that goes away stops the generation upstream.
fn pieces(text: Option<BoxStream<'static, Result<String, ReasoningError>>>) -> BoxStream<'static, Piece> {
    let Some(text) = text else {
        return stream::iter([Piece::End(NO_MATCH.to_owned())]).boxed();
    };
    stream::unfold(Some((text, String::new())), |state| async move {
        let (mut text, mut whole) = state?;
        match text.next().await {
            Some(Ok(delta)) => {
                whole.push_str(&delta);
                Some((Piece::Text(delta), Some((text, whole))))
            }
            Some(Err(error)) => Some((Piece::Failed(error), None)),
            None => Some((Piece::End(whole), None)),
        }
    })
    .boxed()
}

fn answer_events(
    text: Option<BoxStream<'static, Result<String, ReasoningError>>>,
    citations: Vec<Citation>,
) -> BoxStream<'static, Event> {
    let asked = text.is_some();
    pieces(text)
        .flat_map(move |piece| {
            let events = match piece {
                Piece::Text(delta) => vec![json_event("delta", &serde_json::json!({ "text": delta }))],
                Piece::End(whole) => {
                    let mut citations = citations.clone();
                    reasoning::mark_cited(&mut citations, &whole);
                    let mut events = Vec::new();
                    if !asked {
                        events.push(json_event("delta", &serde_json::json!({ "text": whole })));
                    }
                    events.push(json_event("citations", &citations));
                    events.push(json_event(
                        "done",
                        &serde_json::json!({ "asked_provider": asked }),
                    ));
                    events
                }
                Piece::Failed(error) => vec![error_event(error)],
            };
            stream::iter(events)
        })
        .boxed()
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

/// A failure after the stream started, in hearth's `{code, message}`, logged like any other.
fn error_event(error: ReasoningError) -> Event {
    let error = ApiError::from(error);
    let (status, code, message) = error.parts();
    tracing::warn!(%status, error = %error, "an answer failed mid-stream");
    json_event("error", &ErrorBody { code, message })
}

/// OpenAI's chat completions with model `hearth`: the last user message is the question, answered from the
/// library; the sources follow the answer's text. Open WebUI, LibreChat or any OpenAI client can use hearth as a
/// model this way.
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, OpenAI's chunk stream",
         content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, body = hearth_api::OpenAiErrorBody), (status = 404, body = hearth_api::OpenAiErrorBody),
        (status = 409, body = hearth_api::OpenAiErrorBody), (status = 502, body = hearth_api::OpenAiErrorBody),
        (status = 503, body = hearth_api::OpenAiErrorBody), (status = 504, body = hearth_api::OpenAiErrorBody),
    ),
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    refuse_own_request(&headers)?;
    let request: ChatRequest = parse_json(body).await.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be an OpenAI chat request {{\"model\": \"hearth\", \"messages\": [...]}}: {e}"
        ))
    })?;
    if request.model != CHAT_MODEL {
        return Err(ApiError::ModelNotFound {
            requested: request.model.chars().take(100).collect(),
            served: CHAT_MODEL.to_owned(),
        }
        .into());
    }
    let (question, history) = question_and_history(&request.messages)?;
    let started = state
        .reasoning
        .start_answer(&question, hearth_api::reasoning::DEFAULT_ANSWER_K, None, &history)
        .await
        .map_err(ApiError::from)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if request.stream {
        let chunks = chat_chunks(started.text, started.citations, id, created);
        return Ok(event_stream(chunks));
    }
    let mut whole = String::new();
    let asked = started.text.is_some();
    let mut citations = started.citations;
    if let Some(mut text) = started.text {
        while let Some(delta) = text.next().await {
            whole.push_str(&delta.map_err(ApiError::from)?);
        }
    } else {
        whole.push_str(NO_MATCH);
    }
    reasoning::mark_cited(&mut citations, &whole);
    let content = if asked {
        format!("{whole}{}", sources_footer(&citations))
    } else {
        whole
    };
    Ok(Json(ChatCompletion {
        id,
        object: "chat.completion".into(),
        created,
        model: CHAT_MODEL.into(),
        choices: vec![ChatChoice {
            index: 0,
            message: ChatReply {
                role: "assistant".into(),
                content,
            },
            finish_reason: "stop".into(),
        }],
        citations,
    })
    .into_response())
}

/// OpenAI's `chat.completion.chunk` events, the sources as the last text, then `[DONE]`.
fn chat_chunks(
    text: Option<BoxStream<'static, Result<String, ReasoningError>>>,
    citations: Vec<Citation>,
    id: String,
    created: i64,
) -> BoxStream<'static, Event> {
    let asked = text.is_some();
    let chunk = move |delta: serde_json::Value, finish: Option<&str>| {
        Event::default().data(
            serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": CHAT_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
            .to_string(),
        )
    };
    let first = chunk(serde_json::json!({"role": "assistant", "content": ""}), None);
    let rest = pieces(text).flat_map(move |piece| {
        let events = match piece {
            Piece::Text(delta) => vec![chunk(serde_json::json!({ "content": delta }), None)],
            Piece::End(whole) => {
                let mut citations = citations.clone();
                reasoning::mark_cited(&mut citations, &whole);
                let tail = if asked { sources_footer(&citations) } else { whole };
                vec![
                    chunk(serde_json::json!({ "content": tail }), None),
                    chunk(serde_json::json!({}), Some("stop")),
                    Event::default().data("[DONE]"),
                ]
            }
            Piece::Failed(error) => {
                let error = ApiError::from(error);
                let (_, code, message) = error.parts();
                tracing::warn!(error = %error, "a chat completion failed mid-stream");
                vec![Event::default().data(
                    serde_json::json!({"error": {"message": message, "type": "server_error", "code": code}})
                        .to_string(),
                )]
            }
        };
        stream::iter(events)
    });
    stream::once(async move { first }).chain(rest).boxed()
}

/// The sources as text after a chat answer (chat clients show only the message).
fn sources_footer(citations: &[Citation]) -> String {
    if citations.is_empty() {
        return String::new();
    }
    let mut footer = String::from("\n\nSources:");
    for citation in citations {
        let title = citation.title.as_deref().unwrap_or("untitled");
        footer.push_str(&format!(
            "\n[{}] {title} (document {}, characters {}-{})",
            citation.n, citation.document_id, citation.span[0], citation.span[1]
        ));
    }
    footer
}

/// The last user message is the question; earlier user and assistant turns go along as context.
fn question_and_history(messages: &[ChatMessage]) -> Result<(String, Vec<Message>), ApiError> {
    let last_user = messages
        .iter()
        .rposition(|m| m.role == "user")
        .ok_or_else(|| ApiError::BadRequest("messages has no user message: ask something".into()))?;
    let question = message_text(&messages[last_user].content);
    let history = messages[..last_user]
        .iter()
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => "user",
                "assistant" => "assistant",
                _ => return None,
            };
            Some(Message {
                role,
                content: message_text(&m.content),
            })
        })
        .collect::<Vec<_>>();
    let skip = history.len().saturating_sub(MAX_HISTORY);
    let history: Vec<Message> = history.into_iter().skip(skip).collect();
    let chars: usize = history.iter().map(|m| m.content.chars().count()).sum();
    if chars > MAX_HISTORY_CHARS {
        return Err(ApiError::BadRequest(format!(
            "the earlier messages hold {chars} characters; at most {MAX_HISTORY_CHARS} go along with a question: \
             start a new conversation"
        )));
    }
    Ok((question, history))
}

/// A message's text: the string, or the `text` parts of OpenAI's content array.
fn message_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
