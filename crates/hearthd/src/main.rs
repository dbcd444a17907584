//! hearthd: serves hearth's HTTP API.

mod auth;
mod error;
mod http;
mod openai;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearth_core::auth::Tokens;
use hearth_core::config::Config;
use hearth_core::embed::{EmbedMetrics, Embedder};
use prometheus_client::registry::Registry;
use sqlx::postgres::PgPoolOptions;

use crate::auth::Auth;
use crate::http::{AppState, ModelState};

#[derive(Debug, Parser)]
#[command(version, about = "hearth's daemon")]
struct Cli {
    /// TOML config file (default /etc/hearth/hearth.toml when it exists); `HEARTH_*` variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve,
    /// Validate the configuration (file + environment, token files included) without touching the network or the
    /// database, and exit non-zero with the reason.
    CheckConfig,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| "info".into()),
        )
        // Colour codes only for a person at a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cli = Cli::parse();
    let result = Config::load(cli.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|config| match cli.command {
            Command::CheckConfig => {
                let auth = load_auth(&config)?;
                check_bind_policy(&config, &auth.tokens)?;
                tracing::info!(tokens = ?auth.tokens.fingerprints(), "configuration is valid");
                Ok(())
            }
            Command::Serve => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(config)),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<()> {
    let listen = config.listen;
    let auth = Arc::new(load_auth(&config)?);
    check_bind_policy(&config, &auth.tokens)?;
    if !auth.tokens.is_empty() {
        tracing::info!(tokens = ?auth.tokens.fingerprints(), "bearer tokens loaded");
    }
    // Lazy: hearthd starts while PostgreSQL is still coming up and /readyz says what it waits for.
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(&config.database.url)
        .context("database.url is not a valid PostgreSQL URL")?;

    let mut registry = Registry::default();
    let metrics = EmbedMetrics::default();
    metrics.register(&mut registry);
    let state = AppState::new(pool, Arc::new(config.clone()), registry);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another process using it?"))?;
    tracing::info!(%listen, "hearthd listening");

    let embedder_config = config.embedding.clone();
    let loading = tokio::task::spawn_blocking(move || Embedder::load(&embedder_config, metrics));
    let model_state = state.model.clone();
    let model_loaded = async move {
        match loading.await {
            Ok(Ok(embedder)) => {
                tracing::info!(
                    model = %embedder.manifest().id,
                    dir = %embedder.model_dir().display(),
                    "model loaded and verified"
                );
                model_state.set(ModelState::Ready(embedder));
                std::future::pending::<Result<()>>().await
            }
            Ok(Err(error)) => Err(anyhow::Error::from(error).context("cannot load the embedding model")),
            Err(join) => Err(anyhow::anyhow!("model loading panicked: {join}")),
        }
    };

    let app = http::router(state, auth).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        served = server => served.context("HTTP server failed")?,
        failed = model_loaded => failed?,
    }
    tracing::info!("hearthd stopped");
    Ok(())
}

fn load_auth(config: &Config) -> Result<Auth> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let tokens = Tokens::load(&config.auth, credentials.as_deref().map(Path::new))?;
    Ok(Auth {
        tokens,
        config: config.auth.clone(),
    })
}

/// Loopback is always allowed; anything else only with at least one bearer token to protect it.
fn check_bind_policy(config: &Config, tokens: &Tokens) -> Result<()> {
    let listen = config.listen;
    if !listen.ip().is_loopback() && tokens.is_empty() {
        bail!(
            "refusing to listen on {listen} without a bearer token: anyone on the network could use this hearthd. \
             Give it a token (auth.token_files = [\"/path/to/api-token\"], or the `api-token` systemd credential \
             that hearth-firstboot mints), or listen on loopback (listen = \"127.0.0.1:8080\")"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stop hearthd with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
