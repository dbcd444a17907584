//! Embedding on another hearthd (the LAN workstation's GPU) through its OpenAI-compatible `/v1/embeddings`.
//!
//! Vectors from two machines mix in one index only when they are the same space, so the remote is used only while
//! its `/v1/capabilities` names the same model id, dimensions and file digests as the local model; a mismatch is
//! refused with both named. The remote's state is re-checked every `check_seconds` and set to unreachable by the
//! first request that fails, so callers fall back at once instead of waiting on a timeout each time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hearth_api::openai::{
    EmbeddingInput, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, InputType,
};
use hearth_api::status::ModelInfo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::InputKind;
use crate::auth::{AuthError, Source, read_token};
use crate::model::ModelManifest;

/// The credential hearthd reads the remote's bearer token from when `token_file` is not set.
pub const REMOTE_TOKEN_CREDENTIAL: &str = "embedding-remote-token";

/// The most of a remote's error body repeated in a message.
const MAX_REMOTE_MESSAGE_CHARS: usize = 300;
/// The most of an error body read.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
/// The most of a `/v1/capabilities` answer read (a few KiB in practice).
const MAX_CAPABILITIES_BYTES: usize = 1024 * 1024;

/// `[embedding.remote]`: another hearthd that embeds for this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The other hearthd's base URL, e.g. `http://workstation.local:8080`.
    pub url: String,
    /// A file with the bearer token the remote accepts; unset: the `embedding-remote-token` credential, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The longest one ingest batch may take on the remote before it counts as down.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Embed search queries on the remote too (else only ingest goes there).
    #[serde(default)]
    pub queries: bool,
    /// The longest a query may take on the remote before the local model answers it instead.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// What ingest does while the remote is down or not the same space.
    #[serde(default)]
    pub ingest_fallback: IngestFallback,
    /// How often the remote's capabilities are checked (and a down remote retried).
    #[serde(default = "default_check_seconds")]
    pub check_seconds: u64,
}

fn default_timeout_seconds() -> u64 {
    30
}

fn default_query_timeout_ms() -> u64 {
    2000
}

fn default_check_seconds() -> u64 {
    15
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestFallback {
    /// Embed on this box's own model meanwhile (same vectors, slower).
    #[default]
    Local,
    /// Keep the documents queued, retrying with back-off until the remote is back (this box's cores stay free).
    Wait,
}

/// What both ends state about an embedding space: vectors mix only when these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceIdentity {
    pub model_id: String,
    /// Which export of the model (precision, format).
    pub variant: String,
    pub dims: usize,
    pub max_tokens: usize,
    /// Model file path to sha256.
    pub files: BTreeMap<String, String>,
}

impl SpaceIdentity {
    pub fn of(manifest: &ModelManifest) -> Self {
        Self {
            model_id: manifest.id.clone(),
            variant: manifest.variant.clone(),
            dims: manifest.dims,
            max_tokens: manifest.max_tokens,
            files: manifest
                .files
                .iter()
                .map(|file| (file.path.clone(), file.sha256.clone()))
                .collect(),
        }
    }

    /// `id (768 dims; model.onnx 147d5aa88c21…, tokenizer.json d241a60d5e8f…)`
    fn describe(&self) -> String {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|(path, sha256)| format!("{path} {}…", sha256.get(..12).unwrap_or(sha256)))
            .collect();
        format!(
            "{} {} ({} dims, {} tokens; {})",
            self.model_id,
            self.variant,
            self.dims,
            self.max_tokens,
            files.join(", ")
        )
    }
}

/// The remote as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    /// Not checked yet.
    Checking,
    /// Answering, and the same space as the local model.
    Ready,
    /// Answering, but another space: never used; the message names both.
    Mismatch(String),
    /// Not answering, answering with an error or an unusable answer, refusing the token, or without a loaded model.
    Unreachable(String),
}

impl RemoteStatus {
    pub fn label(&self) -> &'static str {
        match self {
            RemoteStatus::Checking => "checking",
            RemoteStatus::Ready => "ready",
            RemoteStatus::Mismatch(_) => "mismatch",
            RemoteStatus::Unreachable(_) => "unreachable",
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            RemoteStatus::Checking | RemoteStatus::Ready => None,
            RemoteStatus::Mismatch(message) | RemoteStatus::Unreachable(message) => Some(message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("embedding.remote (url = {url:?}) is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("embedding.remote: {0}")]
    BadSetting(String),
    #[error("embedding.remote: {0}")]
    Token(#[from] AuthError),
    #[error("cannot set up the HTTP client for the remote embedder: {0}")]
    Client(String),
    #[error("the remote embedder {url} is {status}")]
    NotUsable { url: String, status: &'static str },
    #[error("the remote embedder {url} did not answer: {message}")]
    Unreachable {
        url: String,
        message: String,
        timed_out: bool,
    },
    #[error("the remote embedder {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the remote embedder {url} sent an answer that cannot be used: {message}")]
    Invalid { url: String, message: String },
}

impl RemoteError {
    /// The remote refused this request itself (a 4xx other than for the token, a timeout or backpressure): trying
    /// it again there cannot help, so it is embedded locally whatever `ingest_fallback` says.
    pub fn refused_this_request(&self) -> bool {
        matches!(self, RemoteError::Refused { status, .. }
            if (400..500).contains(status) && ![401, 403, 408, 429].contains(status))
    }

    fn reason(&self) -> &'static str {
        match self {
            RemoteError::BadUrl { .. }
            | RemoteError::BadSetting(_)
            | RemoteError::Token(_)
            | RemoteError::Client(_) => "config",
            RemoteError::NotUsable { .. } => "not_usable",
            RemoteError::Unreachable { .. } => "unreachable",
            RemoteError::Refused { .. } => "refused",
            RemoteError::Invalid { .. } => "invalid",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// `local` or `remote`.
    pub backend: &'static str,
    /// `ingest` or `query`.
    pub class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    pub backend: &'static str,
}

/// Where hearthd's own embeddings (ingest and search, not `/v1/embeddings`) were computed.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    pub inputs_total: Family<BackendLabels, Counter>,
    pub request_seconds: Family<BackendLabel, Histogram>,
    pub remote_failures_total: Family<FailureLabel, Counter>,
    /// 1 while the remote is ready (same space, answering), else 0.
    pub remote_ready: Gauge,
}

impl Default for BackendMetrics {
    fn default() -> Self {
        Self {
            inputs_total: Family::default(),
            request_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            remote_failures_total: Family::default(),
            remote_ready: Gauge::default(),
        }
    }
}

impl BackendMetrics {
    pub fn register(&self, registry: &mut Registry) {
        for backend in ["local", "remote"] {
            for class in ["ingest", "query"] {
                drop(self.inputs_total.get_or_create(&BackendLabels { backend, class }));
            }
            drop(self.request_seconds.get_or_create(&BackendLabel { backend }));
        }
        for reason in ["unreachable", "refused", "invalid", "not_usable"] {
            drop(self.remote_failures_total.get_or_create(&FailureLabel { reason }));
        }
        let registry = registry.sub_registry_with_prefix("hearth_embed_backend");
        registry.register(
            "inputs",
            "Inputs of ingest and search embedded, by backend (local model or remote hearthd) and class",
            self.inputs_total.clone(),
        );
        registry.register(
            "request_seconds",
            "Time per embedding request (a group of up to 32 inputs, or one query), by backend",
            self.request_seconds.clone(),
        );
        registry.register(
            "remote_failures",
            "Requests to the remote embedder that failed, by reason (each fell back or waited)",
            self.remote_failures_total.clone(),
        );
        registry.register(
            "remote_ready",
            "1 while the remote embedder answers in the same embedding space as the local model",
            self.remote_ready.clone(),
        );
    }

    pub fn count(&self, backend: &'static str, class: &'static str, inputs: usize, started: Instant) {
        self.inputs_total
            .get_or_create(&BackendLabels { backend, class })
            .inc_by(inputs as u64);
        self.request_seconds
            .get_or_create(&BackendLabel { backend })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The remote's state for `/readyz`.
#[derive(Debug, Clone)]
pub struct RemoteReport {
    pub url: String,
    pub status: RemoteStatus,
    /// Seconds since the last check or request that set the status.
    pub seen_seconds_ago: Option<f64>,
}

#[derive(Debug)]
struct Seen {
    status: RemoteStatus,
    identity: Option<SpaceIdentity>,
    at: Option<Instant>,
}

pub struct RemoteEmbedder {
    config: RemoteConfig,
    base: reqwest::Url,
    http: reqwest::Client,
    token: Option<Zeroizing<String>>,
    seen: Mutex<Seen>,
    metrics: BackendMetrics,
}

impl std::fmt::Debug for RemoteEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEmbedder")
            .field("url", &self.config.url)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// The part of a remote's `/v1/capabilities` this needs; the rest may differ between versions.
#[derive(Deserialize)]
struct RemoteCapabilities {
    model: ModelInfo,
}

impl RemoteEmbedder {
    /// Checks the URL and reads the token; connects to nothing yet.
    pub fn new(
        config: RemoteConfig,
        credentials_dir: Option<&Path>,
        metrics: BackendMetrics,
    ) -> Result<Self, RemoteError> {
        check_config(&config)?;
        let base = parse_base_url(&config.url)?;
        let token = match (&config.token_file, credentials_dir) {
            (Some(path), _) => Some(read_token(path, Source::TokenFile)?),
            (None, Some(dir)) if dir.join(REMOTE_TOKEN_CREDENTIAL).exists() => Some(read_token(
                &dir.join(REMOTE_TOKEN_CREDENTIAL),
                Source::Credential,
            )?),
            (None, _) => None,
        };
        let loopback = base.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if token.is_some() && base.scheme() == "http" && !loopback {
            tracing::warn!(
                url = %config.url,
                "the remote embedder's token crosses the LAN in plain HTTP: whoever can read the LAN can use it;                  give it a token that opens only the embedding routes (a fleet-token) and keep the boxes on a                  trusted network, or put the remote behind https"
            );
        }
        // No redirects: the token goes to the configured remote and nowhere else.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 5)))
            .build()
            .map_err(|error| RemoteError::Client(error.to_string()))?;
        Ok(Self {
            config,
            base,
            http,
            token,
            seen: Mutex::new(Seen {
                status: RemoteStatus::Checking,
                identity: None,
                at: None,
            }),
            metrics,
        })
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    pub fn report(&self) -> RemoteReport {
        let seen = self.lock();
        RemoteReport {
            url: self.config.url.clone(),
            status: seen.status.clone(),
            seen_seconds_ago: seen.at.map(|at| at.elapsed().as_secs_f64()),
        }
    }

    /// Whether vectors from the remote may go into `local`'s space now.
    pub fn usable_for(&self, local: &SpaceIdentity) -> bool {
        let seen = self.lock();
        seen.status == RemoteStatus::Ready && seen.identity.as_ref() == Some(local)
    }

    /// Reads the remote's capabilities and compares its model with `local`; records and returns the outcome.
    pub async fn check(&self, local: &SpaceIdentity) -> RemoteStatus {
        let (status, identity) = match self.remote_identity().await {
            Err(error) => (RemoteStatus::Unreachable(error.to_string()), None),
            Ok(Err(not_ready)) => (RemoteStatus::Unreachable(not_ready), None),
            Ok(Ok(remote)) if remote == *local => (RemoteStatus::Ready, Some(remote)),
            Ok(Ok(remote)) => (
                RemoteStatus::Mismatch(format!(
                    "the remote embedder {} embeds with {}, but this hearth's model is {}: vectors of two spaces \
                     cannot be searched together; give both the same model (embedding.model_dir) or remove \
                     embedding.remote",
                    self.config.url,
                    remote.describe(),
                    local.describe()
                )),
                Some(remote),
            ),
        };
        self.record(status.clone(), identity);
        status
    }

    /// Embeds `texts` on the remote into `local`'s space (refused unless the last check found that space).
    pub async fn embed(
        &self,
        texts: &[String],
        kind: InputKind,
        local: &SpaceIdentity,
    ) -> Result<Vec<Vec<f32>>, RemoteError> {
        let outcome = self.embed_unchecked(texts, kind, local).await;
        if let Err(error) = &outcome {
            self.metrics
                .remote_failures_total
                .get_or_create(&FailureLabel {
                    reason: error.reason(),
                })
                .inc();
            // A query's short timeout or a busy remote (429) fails that request only: ingest keeps using it.
            let remote_is_down = match error {
                RemoteError::Unreachable { timed_out, .. } => !(*timed_out && kind == InputKind::Query),
                RemoteError::Refused { status, .. } => *status != 429 && !error.refused_this_request(),
                RemoteError::Invalid { .. } => true,
                RemoteError::BadUrl { .. }
                | RemoteError::BadSetting(_)
                | RemoteError::Token(_)
                | RemoteError::Client(_)
                | RemoteError::NotUsable { .. } => false,
            };
            if remote_is_down {
                self.record(RemoteStatus::Unreachable(error.to_string()), None);
            }
        }
        outcome
    }

    async fn embed_unchecked(
        &self,
        texts: &[String],
        kind: InputKind,
        local: &SpaceIdentity,
    ) -> Result<Vec<Vec<f32>>, RemoteError> {
        if !self.usable_for(local) {
            return Err(RemoteError::NotUsable {
                url: self.config.url.clone(),
                status: self.lock().status.label(),
            });
        }
        let (input_type, timeout, truncate) = match kind {
            InputKind::Document => (
                InputType::Document,
                Duration::from_secs(self.config.timeout_seconds.max(1)),
                false,
            ),
            // Queries are cut to the model's limit locally too (search.rs): the same request either way.
            InputKind::Query => (
                InputType::Query,
                Duration::from_millis(self.config.query_timeout_ms.max(1)),
                true,
            ),
        };
        let request = EmbeddingsRequest {
            input: EmbeddingInput::Many(texts.to_vec()),
            model: Some(local.model_id.clone()),
            encoding_format: EncodingFormat::Base64,
            dimensions: None,
            user: None,
            truncate,
            input_type,
        };
        let response = self
            .authorized(self.http.post(self.endpoint("v1/embeddings")))
            .timeout(timeout)
            .json(&request)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let response = self.success(response).await?;
        // Base64 float32s are 4/3 of 4 bytes a dimension; the envelope and indices add a little per input.
        let limit = texts.len() * (local.dims * 6 + 256) + 64 * 1024;
        let body = self.read_capped(response, limit).await?;
        let body: EmbeddingsResponse = serde_json::from_slice(&body).map_err(|error| self.invalid(error))?;
        decode_vectors(body, texts.len(), local.dims).map_err(|message| self.invalid(message))
    }

    /// The remote's space, or why it has none (`Ok(Err)`: it answered, but no model is ready).
    async fn remote_identity(&self) -> Result<Result<SpaceIdentity, String>, RemoteError> {
        let timeout = Duration::from_secs(self.config.timeout_seconds.clamp(1, 10));
        let response = self
            .authorized(self.http.get(self.endpoint("v1/capabilities")))
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let response = self.success(response).await?;
        let body = self.read_capped(response, MAX_CAPABILITIES_BYTES).await?;
        let capabilities: RemoteCapabilities =
            serde_json::from_slice(&body).map_err(|error| self.invalid(error))?;
        Ok(match capabilities.model {
            ModelInfo::Ready(model) => Ok(SpaceIdentity {
                model_id: model.id,
                variant: model.variant,
                dims: model.dims,
                max_tokens: model.max_tokens,
                files: model.files.into_iter().map(|f| (f.path, f.sha256)).collect(),
            }),
            ModelInfo::Loading { id } | ModelInfo::Loaded { id } => Err(format!(
                "the remote embedder {} is still loading its model ({id})",
                self.config.url
            )),
            ModelInfo::Failed { id } => Err(format!(
                "the remote embedder {} failed to load its model ({id}): see its /readyz",
                self.config.url
            )),
        })
    }

    fn endpoint(&self, path: &str) -> reqwest::Url {
        // parse_base_url guarantees a trailing slash, so this appends.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token.as_str()),
            None => request,
        }
    }

    async fn success(&self, response: reqwest::Response) -> Result<reqwest::Response, RemoteError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = self
            .read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let mut message: String = remote_message(&String::from_utf8_lossy(&body))
            .chars()
            .take(MAX_REMOTE_MESSAGE_CHARS)
            .collect();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            message = format!(
                "{message} (the token in embedding.remote.token_file or the `{REMOTE_TOKEN_CREDENTIAL}` \
                 credential must be one the remote accepts)"
            );
        }
        Err(RemoteError::Refused {
            url: self.config.url.clone(),
            status: status.as_u16(),
            message,
        })
    }

    /// The body, refused once it passes `limit` bytes: a remote (or whatever answers at its address) cannot make
    /// this box hold more.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| self.unreachable(&error))? {
            if body.len() + chunk.len() > limit {
                return Err(self.invalid(format!("an answer larger than the {limit} bytes expected")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn unreachable(&self, error: &reqwest::Error) -> RemoteError {
        let message = if error.is_timeout() {
            "timed out".to_owned()
        } else if error.is_connect() {
            "cannot connect".to_owned()
        } else {
            // reqwest's Display names the URL, never the Authorization header.
            error.to_string()
        };
        RemoteError::Unreachable {
            url: self.config.url.clone(),
            message,
            timed_out: error.is_timeout(),
        }
    }

    fn invalid(&self, error: impl std::fmt::Display) -> RemoteError {
        RemoteError::Invalid {
            url: self.config.url.clone(),
            message: error.to_string(),
        }
    }

    fn record(&self, status: RemoteStatus, identity: Option<SpaceIdentity>) {
        let mut seen = self.lock();
        if seen.status != status {
            match &status {
                RemoteStatus::Ready => tracing::info!(url = %self.config.url, "the remote embedder is ready"),
                other => tracing::warn!(
                    url = %self.config.url,
                    status = other.label(),
                    reason = other.message().unwrap_or_default(),
                    "the remote embedder is not used"
                ),
            }
        }
        self.metrics
            .remote_ready
            .set(i64::from(status == RemoteStatus::Ready));
        seen.status = status;
        seen.identity = identity;
        seen.at = Some(Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What `hearthd check-config` can judge without reaching the remote: the URL and the timeouts.
pub fn check_config(config: &RemoteConfig) -> Result<(), RemoteError> {
    parse_base_url(&config.url)?;
    if config.timeout_seconds == 0 || config.query_timeout_ms == 0 || config.check_seconds == 0 {
        return Err(RemoteError::BadSetting(
            "timeout_seconds, query_timeout_ms and check_seconds must be at least 1".into(),
        ));
    }
    Ok(())
}

fn parse_base_url(url: &str) -> Result<reqwest::Url, RemoteError> {
    let bad = |reason: &str| RemoteError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parsed = reqwest::Url::parse(url).map_err(|error| {
        bad(&format!(
            "{error}; give the other hearthd's whole base URL, like http://workstation.local:8080"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("give an http:// or https:// URL of another hearthd"));
    }
    if parsed.host_str().is_none() {
        return Err(bad("it names no host"));
    }
    if parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "give the base URL only, without a query or credentials (the token goes in token_file)",
        ));
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

/// The `message` of an OpenAI or hearth error envelope, else the body itself.
fn remote_message(body: &str) -> String {
    let value: Option<serde_json::Value> = serde_json::from_str(body).ok();
    value
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")))
        .and_then(serde_json::Value::as_str)
        .map_or_else(|| body.trim().to_owned(), str::to_owned)
}

/// One vector per input, of the space's size, finite: anything else is refused rather than stored.
fn decode_vectors(body: EmbeddingsResponse, inputs: usize, dims: usize) -> Result<Vec<Vec<f32>>, String> {
    if body.data.len() != inputs {
        return Err(format!("{} vectors for {inputs} inputs", body.data.len()));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for item in body.data {
        let vector = match item.embedding {
            EmbeddingVector::Float(values) => values.into_iter().map(|x| x as f32).collect(),
            EmbeddingVector::Base64(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|error| format!("a vector is not base64: {error}"))?;
                if bytes.len() % 4 != 0 {
                    return Err("a base64 vector is not a whole number of float32s".into());
                }
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect::<Vec<f32>>()
            }
        };
        if vector.len() != dims {
            return Err(format!("a vector of {} dimensions, not {dims}", vector.len()));
        }
        if !vector.iter().all(|x| x.is_finite()) {
            return Err("a vector holds NaN or infinity".into());
        }
        let slot = vectors
            .get_mut(item.index)
            .ok_or_else(|| format!("a vector for input {} of {inputs}", item.index))?;
        if slot.replace(vector).is_some() {
            return Err(format!("two vectors for input {}", item.index));
        }
    }
    Ok(vectors.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_gets_a_trailing_slash_and_refuses_what_it_cannot_use() {
        let url = parse_base_url("http://workstation.local:8080").expect("base");
        assert_eq!(
            url.join("v1/embeddings").expect("join").as_str(),
            "http://workstation.local:8080/v1/embeddings"
        );
        let url = parse_base_url("https://lan/hearth").expect("base with a path");
        assert_eq!(
            url.join("v1/capabilities").expect("join").as_str(),
            "https://lan/hearth/v1/capabilities"
        );
        for bad in ["workstation:8080", "ftp://x/", "http://u:p@x/", "http://x/?a=1"] {
            assert!(parse_base_url(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn base64_vectors_decode_as_little_endian_float32_and_odd_lengths_are_refused() {
        let encode = |values: &[f32]| {
            let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        let response = |vector: String| EmbeddingsResponse {
            object: "list".into(),
            data: vec![hearth_api::openai::Embedding {
                object: "embedding".into(),
                index: 0,
                embedding: EmbeddingVector::Base64(vector),
            }],
            model: "m".into(),
            usage: hearth_api::openai::Usage {
                prompt_tokens: 0,
                total_tokens: 0,
            },
            truncated: Vec::new(),
        };
        let decoded = decode_vectors(response(encode(&[0.6, -0.8])), 1, 2).expect("decodes");
        assert_eq!(decoded, vec![vec![0.6_f32, -0.8]]);
        let odd = base64::engine::general_purpose::STANDARD.encode([0u8; 7]);
        assert!(decode_vectors(response(odd), 1, 2).is_err(), "not whole float32s");
        assert!(
            decode_vectors(response("%%%".into()), 1, 2).is_err(),
            "not base64"
        );
    }

    #[test]
    fn vectors_of_the_wrong_count_size_or_value_are_refused() {
        let item = |index: usize, values: Vec<f64>| hearth_api::openai::Embedding {
            object: "embedding".into(),
            index,
            embedding: EmbeddingVector::Float(values),
        };
        let response = |data| EmbeddingsResponse {
            object: "list".into(),
            data,
            model: "m".into(),
            usage: hearth_api::openai::Usage {
                prompt_tokens: 0,
                total_tokens: 0,
            },
            truncated: Vec::new(),
        };
        let ok = decode_vectors(
            response(vec![item(1, vec![0.0, 1.0]), item(0, vec![1.0, 0.0])]),
            2,
            2,
        )
        .expect("two vectors");
        assert_eq!(ok, vec![vec![1.0, 0.0], vec![0.0, 1.0]], "ordered by index");
        assert!(
            decode_vectors(response(vec![item(0, vec![1.0])]), 2, 1).is_err(),
            "too few"
        );
        assert!(
            decode_vectors(response(vec![item(0, vec![1.0, 0.0, 0.0])]), 1, 2).is_err(),
            "wrong size"
        );
        assert!(
            decode_vectors(response(vec![item(0, vec![f64::NAN, 0.0])]), 1, 2).is_err(),
            "NaN"
        );
        assert!(
            decode_vectors(
                response(vec![item(0, vec![1.0, 0.0]), item(0, vec![1.0, 0.0])]),
                2,
                2
            )
            .is_err(),
            "one index twice"
        );
    }
}
