//! hearth's configuration: built-in defaults < TOML file < `HEARTH_*` environment (`__` nests, so
//! `HEARTH_EMBEDDING__MODEL_DIR` sets `embedding.model_dir`). The NixOS module's `settings` is this TOML.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::blob::BlobConfig;
use crate::concepts::ConceptsConfig;
use crate::embed::EmbedderConfig;
use crate::library::IngestConfig;
use crate::reasoning::ReasoningConfig;
use crate::schema::backup::BackupConfig;

/// Where hearthd looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hearth/hearth.toml";

/// The top-level sections; environment variables outside them (`HEARTH_LOG`, `HEARTH_URL`, …) are not config.
const SECTIONS: &[&str] = &[
    "listen",
    "database",
    "embedding",
    "api",
    "auth",
    "blobs",
    "ingest",
    "metrics",
    "reasoning",
    "concepts",
    "backup",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address hearthd listens on.
    pub listen: SocketAddr,
    pub database: DatabaseConfig,
    pub embedding: EmbedderConfig,
    pub api: ApiConfig,
    pub auth: AuthConfig,
    pub blobs: BlobConfig,
    pub ingest: IngestConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub reasoning: ReasoningConfig,
    #[serde(default)]
    pub concepts: ConceptsConfig,
    #[serde(default)]
    pub backup: BackupConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A second address serving only `/metrics` (same bind policy and tokens as `listen`), for a scraper that
    /// should not reach the API; unset: `/metrics` is on `listen` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL; the default is the local socket with peer authentication.
    pub url: String,
    /// A file holding the password, for a server reached over TCP (else the `postgres-password` credential, else
    /// the URL's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Most inputs in one `/v1/embeddings` request.
    pub max_inputs_per_request: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// A request still unanswered after this many seconds (body upload included) gets 503 `timeout`.
    pub request_timeout_seconds: u64,
    /// Requests served at once; more get 503 `overloaded` at once rather than queueing without bound.
    pub max_concurrent_requests: usize,
    /// Host names this hearth answers to besides loopback, its host name, `<hostname>.local`, `hearth.local` and
    /// any IP address (a page on another name reaching it through DNS rebinding is refused).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: DatabaseConfig {
                url: "postgres:///hearth?host=/run/postgresql".into(),
                password_file: None,
            },
            embedding: EmbedderConfig::default(),
            api: ApiConfig {
                max_inputs_per_request: 2048,
                max_body_bytes: 16 * 1024 * 1024,
                request_timeout_seconds: 300,
                max_concurrent_requests: 256,
                allowed_hosts: Vec::new(),
            },
            auth: AuthConfig::default(),
            blobs: BlobConfig::default(),
            ingest: IngestConfig::default(),
            metrics: MetricsConfig::default(),
            reasoning: ReasoningConfig::default(),
            concepts: ConceptsConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults < `file` < environment. An explicitly named file must exist; the default path may be absent.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match file {
            Some(path) if !path.is_file() => return Err(ConfigError::Missing(path.to_owned())),
            Some(path) => Some(path.to_owned()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.is_file()),
        };
        Self::figment(path.as_deref(), Env::prefixed("HEARTH_"))
    }

    fn figment(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = env.split("__").filter(|key| {
            let first = key.as_str().split('.').next().unwrap_or_default();
            SECTIONS.iter().any(|section| section.eq_ignore_ascii_case(first))
        });
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, for `hearthd print-config`. The file holds no secrets (they are files),
    /// except a password someone put in `database.url`: that is replaced.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        shown.database.url = redact_url_password(&shown.database.url);
        toml::to_string(&shown).map_err(|e| ConfigError::Invalid(format!("rendering the configuration: {e}")))
    }

    /// Every address hearthd listens on: `listen`, and `metrics.listen` when set.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        std::iter::once(self.listen).chain(self.metrics.listen).collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.embedding;
        let positive = [
            ("embedding.max_batch_tokens", e.max_batch_tokens),
            ("embedding.max_batch_inputs", e.max_batch_inputs),
            ("embedding.queue_capacity", e.queue_capacity),
            ("api.max_inputs_per_request", self.api.max_inputs_per_request),
            ("api.max_body_bytes", self.api.max_body_bytes),
            (
                "api.request_timeout_seconds",
                self.api.request_timeout_seconds as usize,
            ),
            ("api.max_concurrent_requests", self.api.max_concurrent_requests),
            ("ingest.max_document_bytes", self.ingest.max_document_bytes),
            ("ingest.chunking.max_tokens", self.ingest.chunking.max_tokens),
            ("backup.keep", self.backup.keep),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{key} must be at least 1")));
            }
        }
        if self.api.max_inputs_per_request > e.queue_capacity {
            return Err(ConfigError::Invalid(format!(
                "api.max_inputs_per_request ({}) exceeds embedding.queue_capacity ({}): such a request could never \
                 be queued",
                self.api.max_inputs_per_request, e.queue_capacity
            )));
        }
        if self.ingest.chunking.overlap_tokens >= self.ingest.chunking.max_tokens {
            return Err(ConfigError::Invalid(format!(
                "ingest.chunking.overlap_tokens ({}) must be smaller than ingest.chunking.max_tokens ({})",
                self.ingest.chunking.overlap_tokens, self.ingest.chunking.max_tokens
            )));
        }
        if self.blobs.backend == crate::blob::Backend::S3 && self.blobs.endpoint.is_none() {
            return Err(ConfigError::Invalid(
                "blobs.backend = \"s3\" needs blobs.endpoint, e.g. \"http://127.0.0.1:3900\"".into(),
            ));
        }
        if !(1..=8760).contains(&self.auth.session_hours) {
            return Err(ConfigError::Invalid(format!(
                "auth.session_hours = {} is out of range: a browser session lasts 1 to 8760 hours (a year)",
                self.auth.session_hours
            )));
        }
        if self.reasoning.max_retries > 10 {
            return Err(ConfigError::Invalid(format!(
                "reasoning.max_retries = {} is too many: at most 10 (each waits up to 8 s)",
                self.reasoning.max_retries
            )));
        }
        if !(1..=3600).contains(&self.reasoning.timeout_seconds) {
            return Err(ConfigError::Invalid(format!(
                "reasoning.timeout_seconds = {} is out of range: 1 to 3600",
                self.reasoning.timeout_seconds
            )));
        }
        if let Some(provider) = &self.reasoning.provider {
            crate::reasoning::validate_provider(&provider.base_url, &provider.model)
                .map_err(|e| ConfigError::Invalid(format!("reasoning.provider: {e}")))?;
        }
        self.concepts.validate().map_err(ConfigError::Invalid)?;
        for route in &self.auth.open_routes {
            if !route.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "auth.open_routes entry '{route}' must be a path starting with '/', like \"/healthz\""
                )));
            }
        }
        Ok(())
    }
}

/// figment's errors, except that an unknown key is named in full with where it came from and the nearest known key
/// (or, when nothing is near, every key allowed there).
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|error| match &error.kind {
            figment::error::Kind::UnknownField(field, expected) => {
                let mut parent = error.path.clone();
                if parent.last() == Some(field) {
                    parent.pop();
                }
                let full = |key: &str| {
                    parent
                        .iter()
                        .map(String::as_str)
                        .chain([key])
                        .collect::<Vec<_>>()
                        .join(".")
                };
                let origin = error
                    .metadata
                    .as_ref()
                    .map(|m| match &m.source {
                        Some(source) => format!(" (from {source}, {})", m.name),
                        None => format!(" (from {})", m.name),
                    })
                    .unwrap_or_default();
                let hint = match nearest(field, expected) {
                    Some(known) => format!("did you mean `{}`?", full(known)),
                    None => format!(
                        "the keys here are {}",
                        expected
                            .iter()
                            .map(|k| format!("`{}`", full(k)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                format!("unknown key `{}`{origin}: {hint}", full(field))
            }
            _ => error.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The known key closest to a mistyped one, if it is close enough to be the likely intent.
fn nearest<'a>(typed: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|key| (strsim::levenshtein(typed, key), *key))
        .filter(|(distance, key)| *distance <= (key.len() / 3).max(2))
        .min()
        .map(|(_, key)| key)
}

/// `scheme://user:password@host/…` with the password replaced; anything else unchanged.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}:REDACTED@{host}")
        }
        _ => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query_passwords(tail))
}

/// libpq takes a password as a query parameter too (`?password=…`, and `sslpassword` for the client key).
fn redact_query_passwords(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((key, _)) if SECRET_PARAMETERS.contains(&key.to_ascii_lowercase().as_str()) => {
                format!("{key}=REDACTED")
            }
            _ => parameter.to_owned(),
        })
        .collect();
    format!("{path}?{}", parameters.join("&"))
}

const SECRET_PARAMETERS: [&str; 2] = ["password", "sslpassword"];

#[cfg(test)]
mod tests {
    use super::*;

    // figment's own test helper returns its large error type; not ours to shrink.
    #[allow(clippy::result_large_err)]
    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut loaded = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("hearth.toml", toml)?;
            for (key, value) in env {
                jail.set_env(key, value);
            }
            loaded = Some(Config::figment(
                Some(Path::new("hearth.toml")),
                Env::prefixed("HEARTH_"),
            ));
            Ok(())
        });
        loaded.unwrap_or_else(|| Err(ConfigError::Invalid("the jail did not run".into())))
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let config = load(
            "listen = \"127.0.0.1:9000\"\n[embedding]\nmodel_dir = \"/models/a\"\nmax_batch_tokens = 4096\n",
            &[
                ("HEARTH_EMBEDDING__MODEL_DIR", "/models/b"),
                ("HEARTH_LOG", "debug"),
                ("HEARTH_URL", "x"),
            ],
        )
        .expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.embedding.model_dir, PathBuf::from("/models/b"));
        assert_eq!(config.embedding.max_batch_tokens, 4096);
        assert_eq!(config.api.max_inputs_per_request, 2048);
    }

    #[test]
    fn unknown_keys_and_impossible_limits_are_refused() {
        let err = load("[embedding]\nmodel_dri = \"/x\"\n", &[]).expect_err("typo");
        let message = err.to_string();
        assert!(
            message.contains("unknown key `embedding.model_dri`")
                && message.contains("hearth.toml")
                && message.contains("did you mean `embedding.model_dir`?"),
            "{message}"
        );
        let err = load("", &[("HEARTH_INGEST__WORKRES", "3")]).expect_err("typo in the environment");
        let message = err.to_string();
        assert!(
            message.contains("unknown key `ingest.workres`")
                && message.contains("did you mean `ingest.workers`?"),
            "{message}"
        );
        let err = load("colour = \"blue\"\n", &[]).expect_err("nothing near");
        let message = err.to_string();
        assert!(
            message.contains("unknown key `colour`")
                && message.contains("the keys here are `listen`, `database`"),
            "{message}"
        );
        let err = load("[embedding]\nqueue_capacity = 10\n", &[]).expect_err("limits");
        assert!(err.to_string().contains("queue_capacity"), "{err}");
    }

    #[test]
    fn the_printed_config_hides_a_database_password_and_reads_back() {
        let config = load(
            "[database]\nurl = \"postgres://hearth:s3cret@db.lan:5432/hearth?sslmode=require\"\n",
            &[],
        )
        .expect("valid");
        let printed = config.to_redacted_toml().expect("renders");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("postgres://hearth:REDACTED@db.lan:5432/hearth?sslmode=require"),
            "{printed}"
        );
        let reread = load(&printed, &[]).expect("the printed config is valid input");
        assert_eq!(
            reread.embedding.max_batch_tokens,
            config.embedding.max_batch_tokens
        );
        assert_eq!(
            redact_url_password("postgres:///hearth?host=/run/postgresql"),
            "postgres:///hearth?host=/run/postgresql"
        );
    }

    #[test]
    fn a_password_given_as_a_query_parameter_is_hidden_too() {
        assert_eq!(
            redact_url_password(
                "postgres://hearth@db.lan/hearth?sslmode=require&password=s3cret&Password=again&sslpassword=k3y"
            ),
            "postgres://hearth@db.lan/hearth?sslmode=require&password=REDACTED&Password=REDACTED&sslpassword=REDACTED"
        );
        let config = load(
            "[database]\nurl = \"postgres:///hearth?host=/run/postgresql&password=s3cret\"\n",
            &[],
        )
        .expect("valid");
        let printed = config.to_redacted_toml().expect("renders");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("host=/run/postgresql&password=REDACTED"),
            "{printed}"
        );
    }
}
