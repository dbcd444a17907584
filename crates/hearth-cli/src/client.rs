//! A typed client of hearthd's API: each method is one route, taking and returning hearth-api's types, with an
//! error answer turned into hearthd's own message.

use anyhow::{Context, Result, anyhow};
use hearth_api::documents::{
    DeleteResponse, DocumentDetail, DocumentList, ListParams, UploadParams, UploadResponse,
};
use hearth_api::openai::{EmbeddingsRequest, EmbeddingsResponse};
use hearth_api::search::{SearchRequest, SearchResponse};
use hearth_api::status::{Capabilities, Readiness};
use hearth_api::{ContentType, ErrorBody, OpenAiErrorBody};
use serde::de::DeserializeOwned;

#[derive(Debug, Clone)]
pub struct Hearth {
    http: reqwest::Client,
    base: String,
}

impl Hearth {
    /// A client of the hearthd at `base`, sending the bearer token in `token_file` (when given) with every request.
    pub fn new(base: &str, token_file: Option<&std::path::Path>) -> Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(path) = token_file {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim_end()))
                .with_context(|| format!("{} does not hold a valid token", path.display()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET /readyz`: whether hearthd is ready, and what it says about each part.
    pub async fn readiness(&self) -> Result<(bool, Readiness)> {
        let response = self.send(self.http.get(self.url("/readyz"))).await?;
        let ready = response.status().is_success();
        if !ready && response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Err(refusal(response).await);
        }
        Ok((ready, decode(response).await?))
    }

    pub async fn capabilities(&self) -> Result<Capabilities> {
        self.call(self.http.get(self.url("/v1/capabilities"))).await
    }

    pub async fn embed(&self, request: &EmbeddingsRequest) -> Result<EmbeddingsResponse> {
        self.call(self.http.post(self.url("/v1/embeddings")).json(request))
            .await
    }

    pub async fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        self.call(self.http.post(self.url("/v1/search")).json(request))
            .await
    }

    pub async fn list(&self, params: &ListParams) -> Result<DocumentList> {
        self.call(self.http.get(self.url("/v1/documents")).query(params))
            .await
    }

    pub async fn document(&self, id: &str) -> Result<DocumentDetail> {
        self.call(self.http.get(self.url(&format!("/v1/documents/{id}"))))
            .await
    }

    pub async fn delete(&self, id: &str) -> Result<DeleteResponse> {
        self.call(self.http.delete(self.url(&format!("/v1/documents/{id}"))))
            .await
    }

    /// Uploads a document's bytes with their type; its fields go in the query.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        content_type: ContentType,
        params: &UploadParams,
    ) -> Result<UploadResponse> {
        let request = self
            .http
            .post(self.url("/v1/documents"))
            .query(params)
            .header(reqwest::header::CONTENT_TYPE, content_type.mime())
            .body(bytes);
        self.call(request).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        request.send().await.with_context(|| {
            format!(
                "cannot reach hearthd at {}: is it running? (set --url or HEARTH_URL)",
                self.base
            )
        })
    }

    /// Sends a request and decodes its answer, or turns an error answer into hearthd's message.
    async fn call<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        decode(response).await
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let url = response.url().path().to_owned();
    let bytes = response.bytes().await.context("the answer was cut off")?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{url} answered with a body this client does not understand"))
}

/// hearthd's explanation of a refusal, in either of its envelopes; a 401 also says how to send a token.
async fn refusal(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    let (code, message) = if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
        (body.code.as_str(), body.message)
    } else if let Ok(body) = serde_json::from_slice::<OpenAiErrorBody>(&bytes) {
        (body.error.code.as_str(), body.error.message)
    } else {
        ("?", "no message".to_owned())
    };
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return anyhow!("hearthd refused ({status}): {message}; pass --token-file or set HEARTH_TOKEN_FILE");
    }
    anyhow!("hearthd refused ({status}, {code}): {message}")
}
