//! Reasoning is remote by design: answers come from an OpenAI-compatible provider the user chose (a cloud key
//! pasted after boot, or the LAN workstation's engine). The box sends it only the text of retrieved chunks, only
//! for the features turned on, and never a chunk of a document whose metadata says `"private": true`.
//!
//! `vault` seals stored keys, `client` talks to the provider, `answer` builds the prompt and its citations.

mod answer;
mod client;
mod vault;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hearth_api::reasoning::{
    Answer, Citation, MAX_ANSWER_K, MAX_QUESTION_CHARS, Provider, ProviderSettings, ProviderSource,
    ProviderTest, ReasoningSettings,
};
use hearth_api::search::{MAX_K, SearchFilter, SearchMode, SearchRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

pub use answer::{Prepared, cited_numbers, is_private, prepare};
pub use client::{Completion, HOP_HEADER, Message, ProviderClient, SchemaFormat};
pub use vault::{ENCRYPTION_KEY_CREDENTIAL, KeyVault};

use crate::auth::{Source, read_secret_file};
use crate::library::{Library, LibraryError};
use crate::store::providers::{self as provider_store, ProviderRow};

/// The credential a declared provider's key comes in (the NixOS module's `reasoning.provider.apiKeyFile`).
pub const API_KEY_CREDENTIAL: &str = "reasoning-api-key";
const MAX_BASE_URL_CHARS: usize = 2048;
const MAX_MODEL_CHARS: usize = 200;
const MAX_KEY_CHARS: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReasoningConfig {
    /// The 32-byte key that seals stored provider keys; unset: the `encryption-key` systemd credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_file: Option<PathBuf>,
    /// Seconds the provider may stay silent (connecting, before its first token, between tokens) before the
    /// request fails with 504.
    pub timeout_seconds: u64,
    /// Retries of a connection failure or a 429/502/503/504 before the first byte.
    pub max_retries: u32,
    /// Most tokens one answer may take (the provider's `max_tokens`).
    pub max_answer_tokens: u32,
    /// A provider declared here (a fleet's NixOS configuration) instead of through the API, which cannot change
    /// it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DeclaredProvider>,
}

impl Default for ReasoningConfig {
    fn default() -> Self {
        Self {
            encryption_key_file: None,
            timeout_seconds: 60,
            max_retries: 2,
            max_answer_tokens: 1024,
            provider: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredProvider {
    pub base_url: String,
    pub model: String,
    /// A file holding the API key (0400/0600); unset: the `reasoning-api-key` systemd credential when present,
    /// else none (a LAN engine without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    #[serde(default)]
    pub answers: bool,
    #[serde(default)]
    pub concepts: bool,
}

/// The provider's failures, each naming what it answered.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider answered HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the provider sent nothing for {seconds} s (reasoning.timeout_seconds)")]
    Timeout { seconds: u64 },
    #[error("the provider's stream broke off mid-answer: {0}")]
    Interrupted(String),
    #[error("the provider's answer is not what an OpenAI-compatible API sends: {0}")]
    Malformed(String),
}

impl ProviderError {
    fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Refused { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            ProviderError::Unreachable(_) => true,
            ProviderError::Timeout { .. } | ProviderError::Interrupted(_) | ProviderError::Malformed(_) => {
                false
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReasoningError {
    #[error(
        "no reasoning provider is set, so nothing leaves this box: set one in Settings or with PUT \
         /v1/settings/reasoning"
    )]
    NoProvider,
    #[error(
        "answers are turned off for the reasoning provider, so no document text is sent: turn them on in Settings \
         (answers: true)"
    )]
    AnswersOff,
    #[error(
        "the reasoning provider is declared in hearth's configuration (reasoning.provider): change it there, not \
         through the API"
    )]
    Declared,
    #[error(
        "hearthd has no encryption key ({0}), so it cannot store a provider key without keeping it in plain text: \
         give it the `encryption-key` credential (hearth-firstboot mints it) or reasoning.encryption_key_file"
    )]
    NoEncryptionKey(String),
    #[error("the encryption key cannot be used: {0}")]
    EncryptionKey(String),
    #[error(
        "the stored provider key cannot be opened with this box's encryption key (was the key replaced?): enter \
         the provider's key again in Settings"
    )]
    KeyUnreadable,
    #[error("the provider key file {path}: {problem}")]
    KeyFile { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{provider}: {error}")]
    Provider { provider: String, error: ProviderError },
    #[error(transparent)]
    Library(#[from] LibraryError),
}

/// The provider as resolved for one request: where, which model, its key (opened), and what it may be sent.
struct Resolved {
    base_url: String,
    model: String,
    key: Option<Zeroizing<String>>,
    answers: bool,
    concepts: bool,
}

/// Provider settings and the calls that send text out.
pub struct Reasoning {
    config: ReasoningConfig,
    vault: Result<KeyVault, String>,
    declared_key: Option<Zeroizing<String>>,
    library: Arc<Library>,
}

impl std::fmt::Debug for Reasoning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reasoning")
            .field("declared", &self.config.provider.as_ref().map(|p| &p.base_url))
            .field("can_store_keys", &self.vault.is_ok())
            .finish()
    }
}

impl Reasoning {
    /// Reads the encryption key (its absence is not an error: no key can be stored then) and a declared
    /// provider's key file (whose problems are: the configuration names it).
    pub fn new(
        config: ReasoningConfig,
        credentials_dir: Option<&Path>,
        library: Arc<Library>,
    ) -> Result<Self, ReasoningError> {
        let vault = match (&config.encryption_key_file, credentials_dir) {
            (Some(path), _) => KeyVault::load(path, false).map_err(|e| e.to_string()),
            (None, Some(dir)) if dir.join(ENCRYPTION_KEY_CREDENTIAL).exists() => {
                KeyVault::load(&dir.join(ENCRYPTION_KEY_CREDENTIAL), true).map_err(|e| e.to_string())
            }
            _ => Err("no `encryption-key` credential and no reasoning.encryption_key_file".to_owned()),
        };
        if let Err(problem) = &vault {
            tracing::info!(%problem, "provider keys cannot be stored");
        }
        let mut declared_key = None;
        if let Some(declared) = &config.provider {
            validate_provider(&declared.base_url, &declared.model)?;
            let credential = credentials_dir
                .map(|dir| dir.join(API_KEY_CREDENTIAL))
                .filter(|path| path.exists());
            if let Some(path) = declared.api_key_file.clone().or(credential) {
                declared_key = Some(read_key_file(&path, credentials_dir)?);
            }
        }
        Ok(Self {
            config,
            vault,
            declared_key,
            library,
        })
    }

    pub fn config(&self) -> &ReasoningConfig {
        &self.config
    }

    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// `GET /v1/settings/reasoning`.
    pub async fn settings(&self) -> Result<ReasoningSettings, ReasoningError> {
        let provider = self.provider().await?;
        let sends = match &provider {
            None => "nothing: no provider is set".to_owned(),
            Some(p) if !p.answers && !p.concepts => format!(
                "nothing: {} is set, with answers and concepts turned off",
                host_of(&p.base_url)
            ),
            Some(p) if !p.answers => format!(
                "the text of every document's chunks, to {} (model {}), to extract concepts within the daily token \
                 budget; never chunks of documents with \"private\": true",
                host_of(&p.base_url),
                p.model
            ),
            Some(p) => format!(
                "the question and the text of the chunks retrieved for it, to {} (model {}), when you ask{}; never \
                 chunks of documents with \"private\": true",
                host_of(&p.base_url),
                p.model,
                if p.concepts {
                    ", and every document's chunks to extract concepts within the daily token budget"
                } else {
                    ""
                }
            ),
        };
        Ok(ReasoningSettings {
            provider,
            can_store_keys: self.vault.is_ok(),
            sends,
        })
    }

    /// The provider without its key.
    pub async fn provider(&self) -> Result<Option<Provider>, ReasoningError> {
        if let Some(declared) = &self.config.provider {
            return Ok(Some(Provider {
                id: Uuid::nil(),
                base_url: declared.base_url.clone(),
                model: declared.model.clone(),
                key_fingerprint: self
                    .declared_key
                    .as_ref()
                    .map(|k| crate::digest::fingerprint(k.as_bytes())),
                answers: declared.answers,
                concepts: declared.concepts,
                source: ProviderSource::Config,
                updated_at: chrono::DateTime::UNIX_EPOCH,
            }));
        }
        let row = provider_store::get(self.library.pool()?)
            .await
            .map_err(LibraryError::from)?;
        Ok(row.map(|row| Provider {
            id: row.id,
            base_url: row.base_url,
            model: row.model,
            key_fingerprint: row.key_fingerprint,
            answers: row.answers,
            concepts: row.concepts,
            source: ProviderSource::Settings,
            updated_at: row.updated_at,
        }))
    }

    /// `PUT /v1/settings/reasoning`: `updated_by` is the caller's identity, for the log and the row.
    pub async fn put(
        &self,
        settings: ProviderSettings,
        updated_by: &str,
    ) -> Result<Provider, ReasoningError> {
        if self.config.provider.is_some() {
            return Err(ReasoningError::Declared);
        }
        let base_url = settings.base_url.trim().trim_end_matches('/').to_owned();
        let model = settings.model.trim().to_owned();
        validate_provider(&base_url, &model)?;
        let pool = self.library.pool()?;
        let current = provider_store::get(pool).await.map_err(LibraryError::from)?;
        let id = current.as_ref().map_or_else(Uuid::new_v4, |row| row.id);
        let new_key = settings
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|key| !key.is_empty());
        if new_key.is_some() && settings.remove_key {
            return Err(ReasoningError::Invalid(
                "api_key and remove_key contradict each other: send one of them".into(),
            ));
        }
        let (key_sealed, key_fingerprint) = match (new_key, &current) {
            (Some(key), _) => {
                validate_key(key)?;
                let vault = self
                    .vault
                    .as_ref()
                    .map_err(|p| ReasoningError::NoEncryptionKey(p.clone()))?;
                (
                    Some(vault.seal(id, key)),
                    Some(crate::digest::fingerprint(key.as_bytes())),
                )
            }
            _ if settings.remove_key => (None, None),
            // The stored key stays only with the address it was given for.
            (_, Some(row)) if row.base_url == base_url => {
                (row.key_sealed.clone(), row.key_fingerprint.clone())
            }
            _ => (None, None),
        };
        if key_sealed.is_some() {
            check_key_transport(&base_url)?;
        }
        let row = ProviderRow {
            id,
            base_url,
            model,
            key_sealed,
            key_fingerprint,
            answers: settings.answers,
            concepts: settings.concepts,
            updated_by: updated_by.to_owned(),
            updated_at: chrono::Utc::now(),
        };
        provider_store::put(pool, &row)
            .await
            .map_err(LibraryError::from)?;
        tracing::info!(
            provider = %host_of(&row.base_url),
            model = %row.model,
            key = row.key_fingerprint.as_deref().unwrap_or("none"),
            answers = row.answers,
            concepts = row.concepts,
            by = updated_by,
            "reasoning provider set"
        );
        Ok(self
            .provider()
            .await?
            .unwrap_or_else(|| unreachable_provider(&row)))
    }

    /// `DELETE /v1/settings/reasoning`: whether one was set.
    pub async fn delete(&self, by: &str) -> Result<bool, ReasoningError> {
        if self.config.provider.is_some() {
            return Err(ReasoningError::Declared);
        }
        let deleted = provider_store::delete(self.library.pool()?)
            .await
            .map_err(LibraryError::from)?;
        if deleted {
            tracing::info!(by, "reasoning provider removed: nothing leaves the box");
        }
        Ok(deleted)
    }

    /// "Test connection": lists the provider's models with the stored key and reports what it answered.
    pub async fn test(&self) -> Result<ProviderTest, ReasoningError> {
        let resolved = self.resolve().await?.ok_or(ReasoningError::NoProvider)?;
        let client = self.client(&resolved)?;
        Ok(match client.models().await {
            Ok(models) => ProviderTest {
                ok: true,
                status: Some(200),
                model_listed: models.iter().any(|m| m == &resolved.model),
                message: format!(
                    "{} answered with {} model(s)",
                    host_of(&resolved.base_url),
                    models.len()
                ),
                models,
            },
            Err(error) => ProviderTest {
                ok: false,
                status: match &error {
                    ProviderError::Refused { status, .. } => Some(*status),
                    _ => None,
                },
                message: format!("{}: {error}", host_of(&resolved.base_url)),
                models: Vec::new(),
                model_listed: false,
            },
        })
    }

    /// The client for answering questions; an error when no provider is set or answers are off.
    pub async fn answering_client(&self) -> Result<ProviderClient, ReasoningError> {
        let resolved = self.resolve().await?.ok_or(ReasoningError::NoProvider)?;
        if !resolved.answers {
            return Err(ReasoningError::AnswersOff);
        }
        self.client(&resolved)
    }

    /// The client for concept extraction; `None` when no provider is set or concepts are off (nothing is sent).
    pub async fn concepts_client(&self) -> Result<Option<ProviderClient>, ReasoningError> {
        match self.resolve().await? {
            Some(resolved) if resolved.concepts => self.client(&resolved).map(Some),
            _ => Ok(None),
        }
    }

    fn client(&self, resolved: &Resolved) -> Result<ProviderClient, ReasoningError> {
        ProviderClient::new(
            &resolved.base_url,
            &resolved.model,
            resolved.key.clone(),
            Duration::from_secs(self.config.timeout_seconds.max(1)),
            self.config.max_retries,
            self.config.max_answer_tokens,
        )
        .map_err(|error| provider_error(&resolved.base_url, error))
    }

    async fn resolve(&self) -> Result<Option<Resolved>, ReasoningError> {
        if let Some(declared) = &self.config.provider {
            return Ok(Some(Resolved {
                base_url: declared.base_url.clone(),
                model: declared.model.clone(),
                key: self.declared_key.clone(),
                answers: declared.answers,
                concepts: declared.concepts,
            }));
        }
        let Some(row) = provider_store::get(self.library.pool()?)
            .await
            .map_err(LibraryError::from)?
        else {
            return Ok(None);
        };
        let key = match &row.key_sealed {
            None => None,
            Some(sealed) => {
                let vault = self
                    .vault
                    .as_ref()
                    .map_err(|p| ReasoningError::NoEncryptionKey(p.clone()))?;
                Some(vault.open(row.id, sealed)?)
            }
        };
        Ok(Some(Resolved {
            base_url: row.base_url,
            model: row.model,
            key,
            answers: row.answers,
            concepts: row.concepts,
        }))
    }
}

/// What an answer says when nothing in the library matched (the provider is not asked).
pub const NO_MATCH: &str = "Nothing in the library matches this question, so no provider was asked.";

/// An answer under way: the sources sent, and the provider's text as it comes (`None` when nothing matched).
pub struct AnswerStream {
    pub citations: Vec<Citation>,
    pub model: String,
    pub text: Option<BoxStream<'static, Result<String, ReasoningError>>>,
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("citations", &self.citations.len())
            .field("asked_provider", &self.text.is_some())
            .finish()
    }
}

impl Reasoning {
    /// Retrieves chunks for `question` (hybrid search; private documents left out) and starts the provider's
    /// answer. Errors before the provider's first byte (refused, unreachable, silent) come back here, so a caller
    /// can still answer with an HTTP status.
    pub async fn start_answer(
        &self,
        question: &str,
        k: usize,
        filter: Option<SearchFilter>,
        history: &[Message],
    ) -> Result<AnswerStream, ReasoningError> {
        validate_question(question, k)?;
        let client = self.answering_client().await?;
        let hits = self.retrieve(question, k, filter).await?;
        let model = client.model().to_owned();
        if hits.is_empty() {
            return Ok(AnswerStream {
                citations: Vec::new(),
                model,
                text: None,
            });
        }
        let prepared = prepare(question, &hits, history);
        let base_url = client.base_url().to_owned();
        let stream = client
            .chat(&prepared.messages)
            .await
            .map_err(|error| provider_error(&base_url, error))?;
        tracing::info!(
            provider = %host_of(&base_url),
            chunks = prepared.citations.len(),
            "asked the reasoning provider"
        );
        Ok(AnswerStream {
            citations: prepared.citations,
            model,
            text: Some(
                stream
                    .map(move |piece| piece.map_err(|error| provider_error(&base_url, error)))
                    .boxed(),
            ),
        })
    }

    /// A whole answer (the stream, collected).
    pub async fn answer(
        &self,
        question: &str,
        k: usize,
        filter: Option<SearchFilter>,
    ) -> Result<Answer, ReasoningError> {
        let started = self.start_answer(question, k, filter, &[]).await?;
        let mut citations = started.citations;
        let Some(mut pieces) = started.text else {
            return Ok(Answer {
                answer: NO_MATCH.to_owned(),
                citations,
                asked_provider: false,
                model: Some(started.model),
            });
        };
        let mut text = String::new();
        while let Some(piece) = pieces.next().await {
            text.push_str(&piece?);
        }
        mark_cited(&mut citations, &text);
        Ok(Answer {
            answer: text,
            citations,
            asked_provider: true,
            model: Some(started.model),
        })
    }

    /// The chunks an answer is built from: hybrid search, more than `k` asked for so that leaving out private
    /// documents still leaves `k`.
    async fn retrieve(
        &self,
        question: &str,
        k: usize,
        filter: Option<SearchFilter>,
    ) -> Result<Vec<hearth_api::search::Hit>, ReasoningError> {
        let request = SearchRequest {
            query: question.to_owned(),
            k: (k * 3).min(MAX_K),
            mode: SearchMode::Hybrid,
            filter,
        };
        let mut hits = self.library.search(&request).await?;
        hits.retain(|hit| !is_private(&hit.metadata));
        hits.truncate(k);
        Ok(hits)
    }
}

/// Sets `cited` on the sources the answer's text cites.
pub fn mark_cited(citations: &mut [Citation], text: &str) {
    let cited = cited_numbers(text, citations.len());
    for citation in citations {
        citation.cited = cited.contains(&citation.n);
    }
}

fn validate_question(question: &str, k: usize) -> Result<(), ReasoningError> {
    if question.trim().is_empty() {
        return Err(ReasoningError::Invalid("question is empty: ask something".into()));
    }
    let chars = question.chars().count();
    if chars > MAX_QUESTION_CHARS {
        return Err(ReasoningError::Invalid(format!(
            "question is {chars} characters, more than the {MAX_QUESTION_CHARS} accepted: ask a shorter one"
        )));
    }
    if k == 0 || k > MAX_ANSWER_K {
        return Err(ReasoningError::Invalid(format!(
            "k must be between 1 and {MAX_ANSWER_K}"
        )));
    }
    Ok(())
}

/// A provider failure, named by the provider's host.
pub fn provider_error(base_url: &str, error: ProviderError) -> ReasoningError {
    ReasoningError::Provider {
        provider: host_of(base_url),
        error,
    }
}

/// `scheme://host[:port]` of a base URL: how the provider is named in messages and logs.
pub fn host_of(base_url: &str) -> String {
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("", base_url));
    let host = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

fn unreachable_provider(row: &ProviderRow) -> Provider {
    Provider {
        id: row.id,
        base_url: row.base_url.clone(),
        model: row.model.clone(),
        key_fingerprint: row.key_fingerprint.clone(),
        answers: row.answers,
        concepts: row.concepts,
        source: ProviderSource::Settings,
        updated_at: row.updated_at,
    }
}

pub fn validate_provider(base_url: &str, model: &str) -> Result<(), ReasoningError> {
    let invalid = |message: String| Err(ReasoningError::Invalid(message));
    let Some((scheme, rest)) = base_url.split_once("://") else {
        return invalid(format!(
            "base_url '{}' is not a URL: give the provider's OpenAI-compatible address, like \
             https://api.openai.com/v1",
            base_url.chars().take(100).collect::<String>()
        ));
    };
    if !matches!(scheme, "http" | "https") {
        return invalid(format!(
            "base_url must start with http:// or https://, not {scheme}://"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return invalid("base_url has no host: give one, like http://workstation.local:8000/v1".into());
    }
    if authority.contains('@') {
        return invalid("base_url must not carry a user or password: put the key in api_key".into());
    }
    if rest.contains(['?', '#']) || base_url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("base_url must be a plain address without a query, fragment or spaces".into());
    }
    if base_url.len() > MAX_BASE_URL_CHARS {
        return invalid(format!("base_url is longer than {MAX_BASE_URL_CHARS} characters"));
    }
    if model.is_empty() || model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
        return invalid(format!(
            "model must be the provider's model name, 1 to {MAX_MODEL_CHARS} characters"
        ));
    }
    Ok(())
}

/// A key goes over the network encrypted: `https://`, or plain `http://` only to this box, a `.local` name, a
/// single-label LAN name or a private address (the workstation's engine on the LAN).
fn check_key_transport(base_url: &str) -> Result<(), ReasoningError> {
    let Some(rest) = base_url.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    let local = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local()
        }
        Err(_) => host == "localhost" || host.ends_with(".local") || !host.contains('.'),
    };
    if local {
        return Ok(());
    }
    Err(ReasoningError::Invalid(format!(
        "an API key would cross the network unencrypted to {host}: use https:// (plain http:// is for an engine \
         on this box or the LAN)"
    )))
}

fn validate_key(key: &str) -> Result<(), ReasoningError> {
    if key.len() > MAX_KEY_CHARS || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ReasoningError::Invalid(format!(
            "api_key must be the provider's key as it gave it: up to {MAX_KEY_CHARS} characters, no spaces or \
             control characters"
        )));
    }
    Ok(())
}

fn read_key_file(path: &Path, credentials_dir: Option<&Path>) -> Result<Zeroizing<String>, ReasoningError> {
    let problem = |problem: String| ReasoningError::KeyFile {
        path: path.to_owned(),
        problem,
    };
    let source = if credentials_dir.is_some_and(|dir| path.starts_with(dir)) {
        Source::Credential
    } else {
        Source::TokenFile
    };
    let bytes = read_secret_file(path, source).map_err(|e| problem(e.to_string()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| problem("is not UTF-8 text".into()))?;
    let key = text.trim();
    validate_key(key).map_err(|e| problem(e.to_string()))?;
    if key.is_empty() {
        return Err(problem("is empty".into()));
    }
    Ok(Zeroizing::new(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_address_must_be_plain_http() {
        assert!(validate_provider("https://api.openai.com/v1", "gpt-4o-mini").is_ok());
        assert!(validate_provider("http://workstation.local:8000/v1", "m").is_ok());
        for bad in [
            "api.openai.com/v1",
            "file:///etc/passwd",
            "https://user:pw@host/v1",
            "https:///v1",
            "https://host/v1?x=1",
            "https://host/v 1",
        ] {
            let error = validate_provider(bad, "m").expect_err(bad);
            assert!(error.to_string().contains("base_url"), "{bad}: {error}");
        }
        assert!(validate_provider("https://host/v1", "").is_err());
        assert_eq!(
            host_of("https://api.example.com:8443/v1/x"),
            "https://api.example.com:8443"
        );
        for lan in [
            "http://127.0.0.1:8000/v1",
            "http://workstation.local:8000/v1",
            "http://workstation:8000/v1",
            "http://192.168.1.20/v1",
            "http://[::1]:8000/v1",
            "https://api.openai.com/v1",
        ] {
            assert!(check_key_transport(lan).is_ok(), "{lan}");
        }
        for wan in ["http://api.openai.com/v1", "http://8.8.8.8/v1"] {
            assert!(check_key_transport(wan).is_err(), "{wan}");
        }
    }
}
