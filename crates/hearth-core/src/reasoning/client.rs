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
        let bytes = response.bytes_stream();
        Ok(futures_util::stream::unfold(
            (bytes.boxed(), String::new(), false),
            move |(mut bytes, mut buffer, done)| async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(event) = take_event(&mut buffer) {
                        match parse_event(&event) {
                            Ok(Some(Delta::Text(text))) => return Some((Ok(text), (bytes, buffer, false))),
                            Ok(Some(Delta::Done)) => return None,
                            Ok(None) => continue,
                            Err(error) => return Some((Err(error), (bytes, buffer, true))),
                        }
                    }
                    match tokio::time::timeout(idle, bytes.next()).await {
                        Err(_) => {
                            let error = ProviderError::Timeout {
                                seconds: idle.as_secs(),
                            };
                            return Some((Err(error), (bytes, buffer, true)));
                        }
                        Ok(Some(Ok(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
                        Ok(Some(Err(error))) => {
                            let error = stream_error(&error, idle);
                            return Some((Err(error), (bytes, buffer, true)));
                        }
                        // The provider closed the stream without `[DONE]`: what came is the answer.
                        Ok(None) if buffer.trim().is_empty() => return None,
                        Ok(None) => buffer.push_str("\n\n"),
                    }
                }
            },
        ))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
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
                Ok(response) => refused(response).await,
                Err(error) => send_error(&error, self.idle_timeout),
            };
            if attempt >= self.max_retries || !error.is_retryable() {
                return Err(error);
            }
            tracing::warn!(attempt, %error, "the reasoning provider failed; trying again");
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            attempt += 1;
        }
    }
}

/// A provider's non-2xx answer, with its own message (OpenAI's `{error: {message}}`, or the body's start).
async fn refused(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
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
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROVIDER_MESSAGE_CHARS)
        .collect();
    ProviderError::Refused { status, message }
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

/// The next complete server-sent event in `buffer`, removed from it.
fn take_event(buffer: &mut String) -> Option<String> {
    let normalized = buffer.contains('\r');
    if normalized {
        *buffer = buffer.replace("\r\n", "\n");
    }
    let end = buffer.find("\n\n")?;
    let event = buffer[..end].to_owned();
    buffer.drain(..end + 2);
    Some(event)
}

/// One event of an OpenAI chat stream: its `data:` lines are a chunk, `[DONE]`, or an error object.
fn parse_event(event: &str) -> Result<Option<Delta>, ProviderError> {
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
            message: message.chars().take(MAX_PROVIDER_MESSAGE_CHARS).collect(),
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
        let mut buffer = String::from(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\ndata: {\"choices\":[{\"delta\":\
             {\"content\":\"Hi\"}}]}\n\n: keep-alive\n\ndata: [DONE]\n\npartial",
        );
        let mut texts = Vec::new();
        let mut done = false;
        while let Some(event) = take_event(&mut buffer) {
            match parse_event(&event).expect("parses") {
                Some(Delta::Text(text)) => texts.push(text),
                Some(Delta::Done) => done = true,
                None => {}
            }
        }
        assert_eq!(texts, ["Hi"]);
        assert!(done);
        assert_eq!(buffer, "partial", "an incomplete event waits for more bytes");
        let error =
            parse_event("data: {\"error\":{\"message\":\"out of credit\"}}").expect_err("error object");
        assert!(error.to_string().contains("out of credit"), "{error}");
        assert!(parse_event("data: {not json").is_err());
    }
}
