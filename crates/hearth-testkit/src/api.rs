//! Typed HTTP helpers over a [`TestHearthd`]: wait until it serves, then call its routes and read the answers as
//! hearth-api's types. Every hearthd test starts and waits the same way, and reads errors by their exact code.

use std::time::{Duration, Instant};

use hearth_api::status::Readiness;
use hearth_api::{ErrorBody, ErrorCode, OpenAiErrorBody};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::TestHearthd;

/// How long a test waits for hearthd to become ready (the test model loads in about a second).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of one test hearthd.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// An answer: its status and JSON body (`null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The body as `T`; panics, showing the body, when it is not one.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone()).unwrap_or_else(|e| {
            panic!(
                "the answer ({}) is not the expected type: {e}\n{}",
                self.status, self.body
            )
        })
    }

    /// hearth's error body, asserting the status and the exact code.
    pub fn assert_error(&self, status: u16, code: ErrorCode) -> ErrorBody {
        assert_eq!(self.status, status, "{}", self.body);
        let error: ErrorBody = self.json();
        assert_eq!(error.code, code, "{}", self.body);
        error
    }

    /// OpenAI's error envelope, asserting the status and the exact code.
    pub fn assert_openai_error(&self, status: u16, code: ErrorCode) -> OpenAiErrorBody {
        assert_eq!(self.status, status, "{}", self.body);
        let error: OpenAiErrorBody = self.json();
        assert_eq!(error.error.code, code, "{}", self.body);
        error
    }
}

impl Api {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// Sends `token` as the bearer token with every request.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.at(path))).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.at(path))).await
    }

    pub async fn put_json(&self, path: &str, body: &impl Serialize) -> Reply {
        self.send(self.http.put(self.at(path)).json(body)).await
    }

    pub async fn post_json(&self, path: &str, body: &impl Serialize) -> Reply {
        self.send(self.http.post(self.at(path)).json(body)).await
    }

    /// A raw body with its `Content-Type`, as a document upload sends it.
    pub async fn post_bytes(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let request = self
            .http
            .post(self.at(path))
            .header("content-type", content_type)
            .body(body.into());
        self.send(request).await
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("hearthd answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("the body arrives");
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

impl TestHearthd {
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// Waits until `/readyz` answers 200 (schema migrated, blob store and model ready) and returns what it said;
    /// panics with the last answer and hearthd's log after [`READY_TIMEOUT`].
    pub async fn ready(&self) -> Readiness {
        self.serving("/readyz").await.json()
    }

    /// Waits until `path` answers 200 (`/v1/models` once the model is loaded, with or without a database).
    pub async fn serving(&self, path: &str) -> Reply {
        let api = self.api();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let reply = match api.http.get(api.at(path)).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.json().await.unwrap_or(Value::Null);
                    Reply { status, body }
                }
                Err(error) => Reply {
                    status: 0,
                    body: Value::String(error.to_string()),
                },
            };
            if reply.status == 200 {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never answered 200; last: {} {}\n{}",
                reply.status,
                reply.body,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
