//! hearthd: serves hearth's HTTP API.

mod auth;
mod browser;
mod capabilities;
mod concepts;
mod doctor;
mod documents;
mod error;
mod http;
mod input;
mod maintenance;
mod malloc;
mod mcp;
mod observe;
mod openai;
mod openapi;
mod reasoning;
mod startup;
mod systemd;
mod ui;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hearth_core::auth::Tokens;
use hearth_core::config::Config;

use crate::auth::Auth;

#[derive(Debug, Parser)]
#[command(version, about = "hearth's daemon")]
struct Cli {
    /// TOML config file (default /etc/hearth/hearth.toml when it exists); `HEARTH_*` variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log lines as human-readable text, or as one JSON object each (for log shippers).
    #[arg(long, global = true, env = "HEARTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve,
    /// Validate the configuration (file + environment, token files included) without touching the network or the
    /// database, and exit non-zero with the reason.
    CheckConfig,
    /// Print the effective configuration (defaults, file and environment merged) as TOML, a database password
    /// redacted.
    PrintConfig,
    /// Check everything hearthd needs (config, tokens, model files, onnxruntime, database + pgvector, blob store,
    /// data directory permissions, the listen address), one line each with a fix for each failure; exit 1 unless
    /// all pass.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a verified dump of hearth's database to `backup.dir` (as hearthd does before every migration) and
    /// print its path.
    Backup,
    /// Restore a dump made by hearthd into hearth's database, in one transaction; refuses while hearthd (or
    /// anything else) is connected, and first dumps what it replaces.
    Restore {
        /// The dump (`backup.dir/hearth-….dump`).
        dump: PathBuf,
    },
    /// The extraction sandbox's child (run by hearthd itself): reads a document on stdin, writes its text on
    /// stdout, confined and limited.
    #[command(hide = true)]
    Extract {
        #[arg(long)]
        content_type: String,
        #[arg(long)]
        max_pages: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything else (no logging, no configuration): the child of the extraction sandbox.
    if let Command::Extract {
        content_type,
        max_pages,
    } = &cli.command
    {
        return hearth_core::extract::run_child(content_type, *max_pages);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        // Colour codes only for a person at a terminal; journald and log files get plain text.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
    if let Command::Doctor { json } = cli.command {
        return doctor(cli.config.as_deref(), json);
    }
    if let Command::Serve = cli.command
        && let Some(failure) = malloc::tune()
    {
        tracing::warn!(%failure, tunables = malloc::TUNABLES, "could not re-execute hearthd with glibc's malloc \
            tunables; running without them, memory freed after large requests stays with the process");
    }
    let result = Config::load(cli.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|config| match cli.command {
            Command::CheckConfig => {
                let auth = load_auth(&config)?;
                hearth_core::auth::check_bind_policy(&config.listen_addresses(), &auth.tokens)?;
                if let Some(remote) = &config.embedding.remote {
                    hearth_core::embed::remote::check_config(remote)?;
                }
                tracing::info!(tokens = ?auth.tokens.fingerprints(), "configuration is valid");
                Ok(())
            }
            Command::PrintConfig => {
                print!("{}", config.to_redacted_toml()?);
                Ok(())
            }
            Command::Serve => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the async runtime")?;
                let served = runtime.block_on(startup::serve(config));
                // Dropping a runtime waits for every blocking task without limit; the stop is bounded instead.
                runtime.shutdown_timeout(Duration::from_secs(1));
                served
            }
            Command::Backup => maintenance::backup(&config),
            Command::Restore { dump } => maintenance::restore(&config, &dump),
            Command::Doctor { .. } | Command::Extract { .. } => unreachable!("handled above"),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `hearthd doctor`: the shared preflight, printed for a person or as JSON.
fn doctor(config_path: Option<&Path>, json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let config = Config::load(config_path).map_err(|e| e.to_string());
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let checks = runtime.block_on(doctor::run(config, credentials.as_deref()));
    if json {
        let passed = doctor::passed(&checks);
        println!("{}", serde_json::json!({ "passed": passed, "checks": checks }));
    } else {
        print!("{}", doctor::render(&checks));
    }
    if doctor::passed(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn load_auth(config: &Config) -> Result<Auth> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let tokens = Tokens::load(&config.auth, credentials.as_deref().map(Path::new))?;
    Ok(Auth {
        tokens,
        config: config.auth.clone(),
    })
}
