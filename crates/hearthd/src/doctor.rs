//! `hearthd doctor` / `hearth doctor`: a preflight of everything hearthd needs, one check per line, each failure
//! with what to do about it. Nothing here changes state except the blob store's probe object (written, read,
//! deleted).

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use hearth_core::auth::Tokens;
use hearth_core::blob::{Backend, BlobStore};
use hearth_core::config::{Config, redact_url_password};
use hearth_core::model::VerifiedModel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Not run, because a check it depends on failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn skipped(name: &'static str, because: &str) -> Self {
        Self {
            name,
            status: Status::Skipped,
            detail: format!("skipped: {because}"),
            fix: None,
        }
    }
}

/// Every check's name, in the order they run.
pub const CHECKS: [&str; 8] = [
    "config",
    "tokens",
    "model",
    "onnxruntime",
    "database",
    "blobs",
    "data-dirs",
    "listen",
];

/// Runs every check. `config` is the result of loading the configuration; when it failed, the rest are skipped.
pub async fn run(config: Result<Config, String>, credentials_dir: Option<&Path>) -> Vec<Check> {
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            let mut checks = vec![Check::fail(
                "config",
                error,
                "fix the key or value named above in the config file or the HEARTH_* environment",
            )];
            checks.extend(
                CHECKS[1..]
                    .iter()
                    .map(|name| Check::skipped(name, "the configuration is invalid")),
            );
            return checks;
        }
    };
    let mut checks = vec![Check::ok("config", "file and environment are valid")];
    checks.push(tokens(&config, credentials_dir));
    let model = model(&config.embedding.model_dir);
    let model_ok = model.status == Status::Ok;
    checks.push(model);
    checks.push(if model_ok {
        onnxruntime(&config)
    } else {
        Check::skipped("onnxruntime", "the model is not usable")
    });
    checks.push(database(&config.database, credentials_dir).await);
    checks.push(blobs(&config, credentials_dir).await);
    checks.push(data_dirs(&config));
    checks.push(listen(&config.listen_addresses()));
    checks
}

/// Whether every check passed.
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|check| check.status == Status::Ok)
}

/// One line per check: `ok   name  detail`, and for a failure an indented `fix:` line.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let status = match check.status {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        out.push_str(&format!("{status:<5} {:<12} {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("{:<18}fix: {fix}\n", ""));
        }
    }
    out
}

fn tokens(config: &Config, credentials_dir: Option<&Path>) -> Check {
    match Tokens::load(&config.auth, credentials_dir) {
        Err(error) => Check::fail(
            "tokens",
            error.to_string(),
            "give each token file mode 0400 or 0600 and one token of at least 32 characters",
        ),
        Ok(tokens) => match hearth_core::auth::check_bind_policy(&config.listen_addresses(), &tokens) {
            Err(error) => Check::fail(
                "tokens",
                error.to_string(),
                "add auth.token_files (or the api-token credential), or listen on loopback",
            ),
            Ok(()) if tokens.is_empty() => {
                Check::ok("tokens", "none needed: hearthd listens on loopback only")
            }
            Ok(()) => Check::ok(
                "tokens",
                format!("fingerprints {}", tokens.fingerprints().join(", ")),
            ),
        },
    }
}

fn model(dir: &Path) -> Check {
    match VerifiedModel::open(dir) {
        Ok(model) => Check::ok(
            "model",
            format!(
                "{} ({}) in {}: {} files match their sha256",
                model.manifest.id,
                model.manifest.variant,
                dir.display(),
                model.manifest.files.len()
            ),
        ),
        Err(error) => Check::fail(
            "model",
            error.to_string(),
            "restore the model directory from its package (on NixOS: nixos-rebuild switch), or point \
             embedding.model_dir at an intact one",
        ),
    }
}

fn onnxruntime(config: &Config) -> Check {
    let path = config
        .embedding
        .onnxruntime
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(Into::into));
    let Some(path) = path else {
        return Check::fail(
            "onnxruntime",
            "no library configured",
            "set embedding.onnxruntime (or ORT_DYLIB_PATH) to libonnxruntime.so, version 1.24 or newer",
        );
    };
    // Loading it checks the version: ort refuses anything older than the API hearth is built for.
    if let Err(error) = hearth_core::embed::onnxruntime_environment(&path) {
        return Check::fail(
            "onnxruntime",
            error.to_string(),
            "install onnxruntime 1.24 or newer and point embedding.onnxruntime at its libonnxruntime.so",
        );
    }
    if config.embedding.execution_provider == hearth_core::embed::ExecutionProvider::Cuda
        && !hearth_core::embed::cuda_available()
    {
        return Check::fail(
            "onnxruntime",
            format!("{} has no CUDA execution provider", path.display()),
            "use an onnxruntime built with CUDA, or set embedding.execution_provider = \"cpu\"",
        );
    }
    Check::ok(
        "onnxruntime",
        format!(
            "{} loads (execution provider: {})",
            path.display(),
            match config.embedding.execution_provider {
                hearth_core::embed::ExecutionProvider::Cpu => "cpu",
                hearth_core::embed::ExecutionProvider::Cuda => "cuda",
            }
        ),
    )
}

async fn database(config: &hearth_core::config::DatabaseConfig, credentials_dir: Option<&Path>) -> Check {
    let shown = redact_url_password(&config.url);
    let pool = match hearth_core::database::lazy_pool(config, credentials_dir, 1) {
        Ok(pool) => pool,
        Err(error) => {
            return Check::fail(
                "database",
                error.to_string(),
                "use a URL like postgres:///hearth?host=/run/postgresql, and a readable database.password_file \
                 when you set one",
            );
        }
    };
    let probe = hearth_core::store::probe(&pool);
    let result = tokio::time::timeout(Duration::from_secs(5), probe).await;
    pool.close().await;
    match result {
        Ok(Ok(probe)) => match probe.problem() {
            None => Check::ok(
                "database",
                format!(
                    "PostgreSQL {} with pgvector {}",
                    probe.postgres,
                    probe.pgvector.as_deref().unwrap_or_default()
                ),
            ),
            Some(problem) => {
                let fix = problem.to_string();
                Check::fail("database", format!("{shown}: {problem}"), fix)
            }
        },
        Ok(Err(error)) => unreachable_database(&shown, &error.to_string()),
        Err(_) => unreachable_database(&shown, "no answer within 5 s"),
    }
}

fn unreachable_database(shown: &str, reason: &str) -> Check {
    Check::fail(
        "database",
        format!("cannot query {shown}: {reason}"),
        "start PostgreSQL (systemctl status postgresql), and check that the database and role in database.url exist",
    )
}

async fn blobs(config: &Config, credentials_dir: Option<&Path>) -> Check {
    if config.blobs.backend == Backend::Local && !config.blobs.path.is_dir() {
        return Check::fail(
            "blobs",
            format!("{} does not exist", config.blobs.path.display()),
            "create it (mode 0700, owned by hearth's user), or start hearthd once: it creates it",
        );
    }
    let store = match BlobStore::open(&config.blobs, credentials_dir) {
        Ok(store) => store,
        Err(error) => {
            return Check::fail(
                "blobs",
                error.to_string(),
                "check the blobs.* settings and the S3 key files or credentials",
            );
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), store.probe()).await {
        Ok(Ok(())) => Check::ok(
            "blobs",
            format!("{}: write, read and delete work", store.describe()),
        ),
        Ok(Err(error)) => Check::fail(
            "blobs",
            format!("{}: {error}", store.describe()),
            match config.blobs.backend {
                Backend::Local => "make the directory writable by hearth's user",
                Backend::S3 => "start Garage and run `hearth-firstboot garage` to create the bucket and key",
            },
        ),
        Err(_) => Check::fail(
            "blobs",
            format!("{}: no answer within 10 s", store.describe()),
            "start the object store (systemctl status garage)",
        ),
    }
}

/// hearth's own directories must not be readable by other users: they hold the originals.
fn data_dirs(config: &Config) -> Check {
    let mut dirs = Vec::new();
    if config.blobs.backend == Backend::Local {
        dirs.push(config.blobs.path.as_path());
    }
    let mut unsafe_dirs = Vec::new();
    for dir in &dirs {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.permissions().mode() & 0o007 != 0 => unsafe_dirs.push(format!(
                "{} is mode {:04o}",
                dir.display(),
                meta.permissions().mode() & 0o7777
            )),
            Ok(_) => {}
            Err(error) => unsafe_dirs.push(format!("{}: {error}", dir.display())),
        }
    }
    if unsafe_dirs.is_empty() {
        let shown: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
        Check::ok(
            "data-dirs",
            if shown.is_empty() {
                "originals are in the object store".into()
            } else {
                format!("{} not accessible to others", shown.join(", "))
            },
        )
    } else {
        Check::fail(
            "data-dirs",
            unsafe_dirs.join("; "),
            "chmod 0700 the directory (others must not read the originals)",
        )
    }
}

fn listen(addresses: &[SocketAddr]) -> Check {
    let mut free = Vec::new();
    for address in addresses {
        if let Err(error) = TcpListener::bind(address) {
            return Check::fail(
                "listen",
                format!("cannot listen on {address}: {error}"),
                "stop what uses the port (a hearthd already running counts), or change `listen`/`metrics.listen`",
            );
        }
        free.push(address.to_string());
    }
    Check::ok("listen", format!("{} free", free.join(", ")))
}
