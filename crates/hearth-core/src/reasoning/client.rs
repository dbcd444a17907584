//! An OpenAI-compatible chat client for the remote provider: streamed completions, the model listing behind "test
//! connection", bounded retries before the first byte, and errors that name what the provider answered.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::ProviderError;

/// A chat message as OpenAI's API takes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// The most of a provider's error body repeated in hearth's message.
const MAX_PROVIDER_MESSAGE_CHARS: usize = 300;
/// The most of an error body read.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The longest server-sent event accepted from a provider.
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The longest non-streamed answer read (a JSON completion of `max_tokens` is far shorter).
const MAX_COMPLETION_BYTES: usize = 4 * 1024 * 1024;
/// Sent with every request to a provider; hearthd refuses to answer a request that carries it.
pub const HOP_HEADER: &str = "x-hearth-hop";

/// How a JSON schema is handed to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFormat {
    /// `{"type": "json_schema", "json_schema": {…}}`: OpenAI's structured outputs, vLLM, llama.cpp's server.
    JsonSchema,
    /// `{"type": "json_object", "schema": …}`: llama-cpp-python, Anyscale-style servers.
    JsonObject,
}

/// A non-streamed completion's text and what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    pub content: String,
    /// The provider's `usage.total_tokens`, when it reports one.
    pub total_tokens: Option<u64>,
    /// It stopped at `max_tokens` (`finish_reason: "length"`).
    pub truncated: bool,
}

pub struct ProviderClient {
    http: reqwest::Client,
    base_url: String,
    model: String,
    key: Option<Zeroizing<String>>,
    idle_timeout: Duration,
    max_retries: u32,
    max_tokens: u32,
}

impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClient")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<sealed>"))
            .finish()
    }
}

impl ProviderClient {
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<Zeroizing<String>>,
        idle_timeout: Duration,
        max_retries: u32,
        max_tokens: u32,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(idle_timeout.min(Duration::from_secs(10)))
            .read_timeout(idle_timeout)
            // A provider's address is what the user typed; never follow it somewhere else with the key.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ProviderError::Unreachable(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            key,
            idle_timeout,
            max_retries,
            max_tokens,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET {base}/models`: the provider's model ids.
    pub async fn models(&self) -> Result<Vec<String>, ProviderError> {
        let response = self
            .send_with_retries(|| self.authorized(self.http.get(format!("{}/models", self.base_url))))
            .await?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| ProviderError::Malformed(format!("its model list is not JSON: {e}")))?;
        Ok(body["data"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A streamed chat completion: the text pieces as they come. Dropping the stream closes the connection, so
    /// the provider stops generating when nobody is listening any more.
    pub async fn chat(
        &self,
        messages: &[Message],
    ) -> Result<impl Stream<Item = Result<String, ProviderError>> + Send + 'static, ProviderError> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "max_tokens": self.max_tokens,
        });
        let response = self
            .send_with_retries(|| {
                self.authorized(self.http.post(format!("{}/chat/completions", self.base_url)))
                    .json(&body)
            })
            .await?;
        let idle = self.idle_timeout;
        let key = self.key.clone();
        let bytes = response.bytes_stream().fuse();
        Ok(futures_util::stream::unfold(
            (bytes.boxed(), Vec::new(), false),
            move |(mut bytes, mut buffer, done)| {
                let key = key.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        if let Some(event) = take_event(&mut buffer) {
                            match parse_event(&event, key.as_deref().map(String::as_str)) {
                                Ok(Some(Delta::Text(text))) => {
                                    return Some((Ok(text), (bytes, buffer, false)));
                                }
                                Ok(Some(Delta::Done)) => return None,
                                Ok(None) => continue,
                                Err(error) => return Some((Err(error), (bytes, buffer, true))),
                            }
                        }
                        if buffer.len() > MAX_EVENT_BYTES {
                            let error = ProviderError::Malformed(format!(
                                "it sent more than {MAX_EVENT_BYTES} bytes without ending an event"
                            ));
                            return Some((Err(error), (bytes, buffer, true)));
                        }
                        match tokio::time::timeout(idle, bytes.next()).await {
                            Err(_) => {
                                let error = ProviderError::Timeout {
                                    seconds: idle.as_secs(),
                                };
                                return Some((Err(error), (bytes, buffer, true)));
                            }
                            Ok(Some(Ok(chunk))) => buffer.extend_from_slice(&chunk),
                            Ok(Some(Err(error))) => {
                                let error = stream_error(&error, idle);
                                return Some((Err(error), (bytes, buffer, true)));
                            }
                            // The provider closed the stream without `[DONE]`: what came is the answer.
                            Ok(None) if buffer.iter().all(u8::is_ascii_whitespace) => return None,
                            Ok(None) => buffer.extend_from_slice(b"\n\n"),
                        }
                    }
                }
            },
        ))
    }

    /// A non-streamed chat completion constrained to `schema` (structured output), for machine-read answers.
    /// `format` says how the schema is passed: OpenAI's `json_schema`, or `json_object` with a `schema` (what
    /// llama-cpp-python and some others take instead).
    pub async fn complete_json(
        &self,
        messages: &[Message],
        schema: &Value,
        format: SchemaFormat,
        max_tokens: u32,
    ) -> Result<Completion, ProviderError> {
        let response_format = match format {
            SchemaFormat::JsonSchema => serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": "hearth_concepts", "strict": true, "schema": schema},
            }),
            SchemaFormat::JsonObject => serde_json::json!({"type": "json_object", "schema": schema}),
        };
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "stream": false,
            "temperature": 0,
            "max_tokens": max_tokens,
            "response_format": response_format,
        });
        let response = self
            .send_with_retries(|| {
                self.authorized(self.http.post(format!("{}/chat/completions", self.base_url)))
                    .json(&body)
            })
            .await?;
        let bytes = self.read_bounded(response).await?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Malformed(format!("its completion is not JSON: {e}")))?;
        let content = body["choices"][0]["message"]["content"].as_str().ok_or_else(|| {
            ProviderError::Malformed("its completion has no choices[0].message.content".into())
        })?;
        let usage = &body["usage"];
        Ok(Completion {
            content: content.to_owned(),
            total_tokens: usage["total_tokens"].as_u64().or_else(|| {
                usage["prompt_tokens"]
                    .as_u64()?
                    .checked_add(usage["completion_tokens"].as_u64()?)
            }),
            truncated: body["choices"][0]["finish_reason"].as_str() == Some("length"),
        })
    }

    /// A whole (non-streamed) answer, at most [`MAX_COMPLETION_BYTES`], each piece within the idle timeout.
    async fn read_bounded(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let mut bytes = Vec::new();
        loop {
            let piece = tokio::time::timeout(self.idle_timeout, response.chunk())
                .await
                .map_err(|_| ProviderError::Timeout {
                    seconds: self.idle_timeout.as_secs(),
                })?
                .map_err(|e| stream_error(&e, self.idle_timeout))?;
            let Some(piece) = piece else {
                return Ok(bytes);
            };
            if bytes.len() + piece.len() > MAX_COMPLETION_BYTES {
                return Err(ProviderError::Malformed(format!(
                    "its answer is longer than {MAX_COMPLETION_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&piece);
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        // Marks the request as hearth's own, so a hearth set as its own provider refuses it instead of looping.
        let request = request.header(HOP_HEADER, "1");
        match &self.key {
            Some(key) => request.bearer_auth(key.as_str()),
            None => request,
        }
    }

    /// Sends, retrying connection failures and 429/502/503/504 a bounded number of times (0.5 s, 1 s, …); any
    /// other status is the provider's answer and is not retried.
    async fn send_with_retries(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut attempt = 0;
        loop {
            let error = match request().send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => refused(response, self.key.as_deref().map(String::as_str)).await,
                Err(error) => send_error(&error, self.idle_timeout),
            };
            if attempt >= self.max_retries || !error.is_retryable() {
                return Err(error);
            }
            tracing::warn!(attempt, %error, "the reasoning provider failed; trying again");
            tokio::time::sleep(Duration::from_millis(500 << attempt.min(4))).await;
            attempt += 1;
        }
    }
}

/// A provider's non-2xx answer, with its own message (OpenAI's `{error: {message}}`, or the body's start).
async fn refused(response: reqwest::Response, key: Option<&str>) -> ProviderError {
    let status = response.status().as_u16();
    let text = read_limited(response).await;
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|body| {
            body["error"]["message"]
                .as_str()
                .or_else(|| body["error"].as_str())
                .or_else(|| body["detail"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or(text);
    ProviderError::Refused {
        status,
        message: clean_message(&message, key),
    }
}

/// At most [`MAX_ERROR_BODY_BYTES`] of a body nobody needs whole.
async fn read_limited(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            body.truncate(MAX_ERROR_BODY_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// A provider's message as hearth repeats it: without control characters, short, and without the key (some
/// servers echo a rejected key back).
fn clean_message(message: &str, key: Option<&str>) -> String {
    let mut message: String = message.chars().filter(|c| !c.is_control()).collect();
    if let Some(key) = key.filter(|key| !key.is_empty()) {
        message = message.replace(key, "<key>");
    }
    message.chars().take(MAX_PROVIDER_MESSAGE_CHARS).collect()
}

fn send_error(error: &reqwest::Error, idle: Duration) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout {
            seconds: idle.as_secs(),
        }
    } else {
        // reqwest's Display names the URL but never the headers, so the key is not in it.
        ProviderError::Unreachable(error_chain(error))
    }
}

fn stream_error(error: &reqwest::Error, idle: Duration) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout {
            seconds: idle.as_secs(),
        }
    } else {
        ProviderError::Interrupted(error_chain(error))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug)]
enum Delta {
    Text(String),
    Done,
}

/// The next complete server-sent event in `buffer` (bytes, so a character split across reads stays whole),
/// removed from it. Events end with a blank line: `\n\n`, `\r\n\r\n` or `\r\r`.
fn take_event(buffer: &mut Vec<u8>) -> Option<String> {
    let (end, separator) = [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"]
        .iter()
        .filter_map(|separator| {
            buffer
                .windows(separator.len())
                .position(|window| window == *separator)
                .map(|at| (at, separator.len()))
        })
        .min()?;
    let event = String::from_utf8_lossy(&buffer[..end]).replace('\r', "");
    buffer.drain(..end + separator);
    Some(event)
}

/// One event of an OpenAI chat stream: its `data:` lines are a chunk, `[DONE]`, or an error object.
fn parse_event(event: &str, key: Option<&str>) -> Result<Option<Delta>, ProviderError> {
    let data: String = event
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() {
        return Ok(None);
    }
    if data.trim() == "[DONE]" {
        return Ok(Some(Delta::Done));
    }
    let chunk: Value = serde_json::from_str(&data)
        .map_err(|e| ProviderError::Malformed(format!("a streamed chunk is not JSON: {e}")))?;
    if let Some(error) = chunk.get("error") {
        let message = error["message"].as_str().unwrap_or("an error mid-stream");
        return Err(ProviderError::Refused {
            status: 200,
            message: clean_message(message, key),
        });
    }
    let text = chunk["choices"][0]["delta"]["content"]
        .as_str()
        .or_else(|| chunk["choices"][0]["message"]["content"].as_str())
        .unwrap_or_default();
    Ok((!text.is_empty()).then(|| Delta::Text(text.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_parsed_as_openai_streams_them() {
        let stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\ndata: {\"choices\":[{\"delta\":\
                      {\"content\":\"Hé\"}}]}\n\n: keep-alive\n\ndata: [DONE]\n\npartial";
        // Split inside the two bytes of "é": the character survives.
        let split = stream.find('é').expect("é") + 1;
        let mut buffer = stream.as_bytes()[..split].to_vec();
        let mut texts = Vec::new();
        let mut done = false;
        for tail in [&stream.as_bytes()[split..], b""] {
            while let Some(event) = take_event(&mut buffer) {
                match parse_event(&event, None).expect("parses") {
                    Some(Delta::Text(text)) => texts.push(text),
                    Some(Delta::Done) => done = true,
                    None => {}
                }
            }
            buffer.extend_from_slice(tail);
        }
        assert_eq!(texts, ["Hé"]);
        assert!(done);
        assert_eq!(buffer, b"partial", "an incomplete event waits for more bytes");
        let echoed = "data: {\"error\":{\"message\":\"bad key sk-abc123, out of credit\"}}";
        let error = parse_event(echoed, Some("sk-abc123")).expect_err("error object");
        assert!(error.to_string().contains("out of credit"), "{error}");
        assert!(
            !error.to_string().contains("sk-abc123"),
            "the key is redacted: {error}"
        );
        assert!(parse_event("data: {not json", None).is_err());
    }
}
