//! hearthd: serves hearth's HTTP API.

mod error;
mod http;
mod openai;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearth_core::config::Config;
use hearth_core::embed::{EmbedMetrics, Embedder};
use prometheus_client::registry::Registry;
use sqlx::postgres::PgPoolOptions;

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
    /// Validate the configuration (file + environment) and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = Config::load(cli.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|config| match cli.command {
            Command::CheckConfig => {
                tracing::info!("configuration is valid");
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
    if !listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {listen}: this hearthd has no bearer-token support yet, so it only binds to \
             loopback (e.g. 127.0.0.1:8080)"
        );
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

    let server = axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        served = server => served.context("HTTP server failed")?,
        failed = model_loaded => failed?,
    }
    tracing::info!("hearthd stopped");
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
