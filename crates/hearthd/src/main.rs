//! hearthd: serves hearth's HTTP API.

mod http;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Parser)]
#[command(version, about = "hearth's daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on. Only loopback addresses are accepted until bearer tokens exist.
        #[arg(long, env = "HEARTH_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// PostgreSQL connection URL, e.g. `postgres://hearth@localhost/hearth?host=/run/postgresql`.
        #[arg(long, env = "HEARTH_DATABASE__URL")]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen, database_url } => serve(listen, &database_url).await,
    }
}

async fn serve(listen: SocketAddr, database_url: &str) -> Result<()> {
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
        .connect_lazy(database_url)
        .context("the database URL is not valid")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another process using it?"))?;
    tracing::info!(%listen, "hearthd listening");
    axum::serve(listener, http::router(pool))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
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
