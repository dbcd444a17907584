//! hearthd: serves hearth's HTTP API.

mod auth;
mod browser;
mod capabilities;
mod documents;
mod error;
mod http;
mod input;
mod malloc;
mod observe;
mod openai;
mod systemd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hearth_core::auth::Tokens;
use hearth_core::blob::BlobStore;
use hearth_core::config::Config;
use hearth_core::embed::{EmbedMetrics, Embedder};
use hearth_core::library::Library;
use prometheus_client::registry::Registry;
use sqlx::postgres::PgPoolOptions;

use crate::auth::Auth;
use crate::http::{AppState, ModelSlot, ModelState};
use crate::systemd::Notifier;

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
                let served = runtime.block_on(serve(config));
                // Dropping a runtime waits for every blocking task without limit; the stop is bounded instead.
                runtime.shutdown_timeout(Duration::from_secs(1));
                served
            }
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

async fn serve(config: Config) -> Result<()> {
    let notifier = Arc::new(Notifier::from_env());
    if let Some(interval) = systemd::watchdog_interval() {
        // Pinged from the async runtime, so a wedged runtime stops the pings and systemd restarts hearthd.
        let notifier = Arc::clone(&notifier);
        tokio::spawn(async move {
            loop {
                notifier.notify("WATCHDOG=1");
                tokio::time::sleep(interval).await;
            }
        });
    }
    let outcome = run(config, &notifier).await;
    match &outcome {
        Ok(()) => notifier.status("stopped"),
        Err(error) => notifier.status(&format!("failed: {error:#}")),
    }
    notifier.flush().await;
    outcome
}

async fn run(config: Config, notifier: &Arc<Notifier>) -> Result<()> {
    let listen = config.listen;
    let auth = Arc::new(load_auth(&config)?);
    hearth_core::auth::check_bind_policy(&config.listen_addresses(), &auth.tokens)?;
    if !auth.tokens.is_empty() {
        tracing::info!(tokens = ?auth.tokens.fingerprints(), "bearer tokens loaded");
    }
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let blobs =
        BlobStore::open(&config.blobs, credentials.as_deref()).context("cannot open the blob store")?;
    tracing::info!(store = blobs.describe(), "originals go to the blob store");
    // Lazy: hearthd starts while PostgreSQL is still coming up and /readyz says what it waits for.
    let pool_max = 8 + config.ingest.workers as u32;
    let database = hearth_core::database::connect_options(&config.database, credentials.as_deref())?;
    let pool = PgPoolOptions::new()
        .max_connections(pool_max)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(database);
    let sandbox = hearth_core::extract::Sandbox::new(
        std::env::current_exe().context("cannot find hearthd's own executable for the extraction sandbox")?,
        vec!["extract".into()],
        config.ingest.extraction,
    );
    let library = Library::new(pool.clone(), blobs, config.ingest.clone(), sandbox);

    let mut registry = Registry::default();
    let metrics = EmbedMetrics::default();
    metrics.register(&mut registry);
    library.metrics().register(&mut registry);
    let http_metrics = observe::HttpMetrics::register(&mut registry, pool_max);
    let state = AppState::new(
        pool.clone(),
        Arc::clone(&library),
        Arc::new(config.clone()),
        registry,
        http_metrics,
    );

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another process using it?"))?;
    tracing::info!(%listen, "hearthd listening");
    let metrics_listener = match config.metrics.listen {
        Some(address) => Some(tokio::net::TcpListener::bind(address).await.with_context(|| {
            format!("cannot listen on {address} (metrics.listen): is another process using it?")
        })?),
        None => None,
    };

    let (stop_workers, workers_stop) = tokio::sync::watch::channel(false);
    let mut workers: Vec<_> = (0..config.ingest.workers)
        .map(|_| tokio::spawn(Arc::clone(&library).run_worker(workers_stop.clone())))
        .collect();
    if config.blobs.sweep_interval_seconds > 0 {
        workers.push(tokio::spawn(Arc::clone(&library).run_sweeper(
            Duration::from_secs(config.blobs.sweep_interval_seconds),
            Duration::from_secs(config.blobs.sweep_grace_seconds),
            workers_stop.clone(),
        )));
    }

    let model_state = state.model.clone();
    model_state.set(ModelState::Loading {
        since: Instant::now(),
        model: model_label(&config.embedding.model_dir),
    });
    // The first report goes out before anything else can happen, so systemd always sees what hearthd waits for.
    if let Some(status) = startup_status(&model_state, &library) {
        notifier.status(&status);
    }
    let reporter = tokio::spawn(report_startup(
        Arc::clone(notifier),
        model_state.clone(),
        Arc::clone(&library),
    ));
    let ready_notifier = Arc::clone(notifier);
    let startup = async move {
        let embedder_config = config.embedding.clone();
        let loading = tokio::task::spawn_blocking({
            let metrics = metrics.clone();
            move || Embedder::load(&embedder_config, metrics)
        });
        let model_label = model_label(&config.embedding.model_dir);
        // A model that cannot be loaded does not stop hearthd: documents and keyword search still work, and
        // /readyz and systemd's STATUS= say what is wrong until an operator fixes it and restarts.
        let loaded = async {
            let failure = match loading.await {
                Ok(Ok(embedder)) => {
                    // /v1/embeddings serves from here on, with or without a database.
                    model_state.set(ModelState::Loaded(embedder.clone()));
                    return Ok::<_, anyhow::Error>(Some(embedder));
                }
                Ok(Err(error)) => format!("{:#}", anyhow::Error::from(error)),
                Err(join) => format!("model loading panicked: {join}"),
            };
            tracing::error!(reason = %failure, "cannot load the embedding model: serving documents and keyword \
                search only; /readyz stays 503 until the model is fixed and hearthd restarted");
            model_state.set(ModelState::Failed {
                model: model_label.clone(),
                reason: failure,
            });
            Ok(None)
        };
        // A failed migration stops hearthd at once; a database that is merely not up yet is waited for.
        let migrated = async {
            migrate_when_reachable(&pool).await?;
            // Documents and keyword search work from here on; vector search once the model is in.
            library.set_schema_ready();
            Ok(())
        };
        let ((), embedder) = tokio::try_join!(migrated, loaded)?;
        let Some(embedder) = embedder else {
            // Started, but degraded: READY=1 so that systemd does not kill and restart it over a model that a
            // restart cannot fix; the STATUS line and /readyz carry the failure.
            if let ModelState::Failed { reason, .. } = model_state.get() {
                ready_notifier.notify(&format!(
                    "READY=1\nSTATUS=degraded: the embedding model failed to load ({reason}); documents and \
                     keyword search work"
                ));
            }
            return std::future::pending::<Result<()>>().await;
        };
        tracing::info!(
            model = %embedder.manifest().id,
            dir = %embedder.model_dir().display(),
            "model loaded and verified"
        );
        let previous = previous_model(&library, &embedder, &config, metrics).await;
        let spaces = library.set_models(embedder.clone(), previous).await?;
        if spaces.switching() {
            tracing::info!(
                from = %spaces.active.model_id,
                to = %spaces.target.model_id,
                "new model configured: re-embedding every document in the background; search stays on the old \
                 space until done"
            );
        }
        let model_id = embedder.manifest().id.clone();
        model_state.set(ModelState::Ready(embedder));
        ready_notifier.notify(&format!("READY=1\nSTATUS=serving on {listen} with {model_id}"));
        tracing::info!("ready");
        std::future::pending::<Result<()>>().await
    };

    if let Some(listener) = metrics_listener {
        let address = listener.local_addr()?;
        let metrics_app = http::metrics_router(state.clone(), Arc::clone(&auth))
            .into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(%address, "metrics listening");
        // Ends with the process; a scrape in flight at shutdown is simply cut.
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, metrics_app).await {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
    }
    let app = http::router(state, auth).into_make_service_with_connect_info::<SocketAddr>();
    let stopping = Arc::clone(notifier);
    // At the signal the workers stop at once, releasing their jobs, while requests in flight are finished.
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        stopping.notify("STOPPING=1\nSTATUS=stopping: finishing requests, returning jobs to the queue");
        let _ = stop_workers.send(true);
    });
    let mut signalled = workers_stop.clone();
    let drain_cut = async move {
        let _ = signalled.wait_for(|stop| *stop).await;
        tokio::time::sleep(HTTP_DRAIN).await;
    };
    let outcome = tokio::select! {
        served = server => served.context("HTTP server failed"),
        failed = startup => failed,
        () = drain_cut => {
            // A slow upload or a client that never finishes its body must not hold the stop up; an upload cut
            // here was never acknowledged, and what it wrote is swept.
            tracing::warn!(seconds = HTTP_DRAIN.as_secs(), "requests still open after the drain; cutting them");
            Ok(())
        }
    };
    reporter.abort();
    // Jobs in progress are released to the queue, not lost; bounded so a stuck worker cannot hold up the stop.
    let stopped = tokio::time::timeout(WORKER_STOP, futures_join(workers)).await;
    if stopped.is_err() {
        tracing::warn!(
            seconds = WORKER_STOP.as_secs(),
            "workers did not stop in time; their jobs return to the queue when their leases end"
        );
    }
    outcome?;
    tracing::info!("hearthd stopped");
    Ok(())
}

/// A name for the model being loaded: its manifest id, else the directory (a broken manifest is reported by the
/// load itself).
fn model_label(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(hearth_core::model::MANIFEST_FILE))
        .ok()
        .and_then(|text| hearth_core::model::ModelManifest::from_json(dir, &text).ok())
        .map_or_else(|| dir.display().to_string(), |manifest| manifest.id)
}

/// What startup is waiting for, for systemd's `STATUS=`; `None` once the model is ready.
fn startup_status(model: &ModelSlot, library: &Library) -> Option<String> {
    let mut status = match model.get() {
        ModelState::Loading { since, model } => {
            format!("loading model {model} ({} s)", since.elapsed().as_secs())
        }
        ModelState::Loaded(embedder) => {
            format!("model {} loaded, serving embeddings", embedder.manifest().id)
        }
        ModelState::Ready(_) | ModelState::Failed { .. } => return None,
    };
    if library.pool().is_err() {
        status.push_str("; waiting for the database");
    }
    Some(status)
}

/// Repeats [`startup_status`] every second until the model is ready. While the database is not reachable it
/// also extends systemd's start timeout: a server on another machine that is down, or that does not know the
/// role's password yet, is waited for visibly for as long as it takes, instead of the timeout killing hearthd
/// into a restart loop that ends `failed`. A failing migration still stops hearthd.
async fn report_startup(notifier: Arc<Notifier>, model: ModelSlot, library: Arc<Library>) {
    while let Some(status) = startup_status(&model, &library) {
        if library.pool().is_err() {
            notifier.notify(&format!("STATUS={status}\nEXTEND_TIMEOUT_USEC=30000000"));
        } else {
            notifier.status(&status);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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
    let checks = runtime.block_on(hearth_core::doctor::run(config, credentials.as_deref()));
    if json {
        let passed = hearth_core::doctor::passed(&checks);
        println!("{}", serde_json::json!({ "passed": passed, "checks": checks }));
    } else {
        print!("{}", hearth_core::doctor::render(&checks));
    }
    if hearth_core::doctor::passed(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// How long requests in flight at a stop may take to finish. With [`WORKER_STOP`] and the runtime's last second a
/// stop takes under 10 s, well inside the NixOS unit's `TimeoutStopSec` of 30 s.
const HTTP_DRAIN: Duration = Duration::from_secs(6);
/// How long the workers may take to release their jobs once the HTTP side is done (they started at the signal).
const WORKER_STOP: Duration = Duration::from_secs(2);

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// Runs the migrations as soon as PostgreSQL answers. A migration that fails (rather than a database that is not
/// up yet) stops hearthd: its transaction rolled back, so the data is as it was.
async fn migrate_when_reachable(pool: &sqlx::PgPool) -> Result<()> {
    let mut waited = Duration::ZERO;
    loop {
        match hearth_core::store::migrate(pool).await {
            Ok(()) => {
                let (applied, _) = hearth_core::store::schema_version(pool).await?;
                tracing::info!(version = ?applied, "database schema is current");
                return Ok(());
            }
            Err(error) if error.is_transient() => {
                if waited.as_secs().is_multiple_of(10) {
                    tracing::warn!(%error, "waiting for the database to run migrations");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                waited += Duration::from_secs(1);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// During a model switch, the active space's model embeds queries until the new space is complete.
async fn previous_model(
    library: &Library,
    target: &Embedder,
    config: &Config,
    metrics: EmbedMetrics,
) -> Option<Embedder> {
    let active = library.active_space().await.ok().flatten()?;
    if active.model_dir == target.model_dir().display().to_string() && active.model_id == target.manifest().id
    {
        return None;
    }
    let mut previous_config = config.embedding.clone();
    previous_config.model_dir = PathBuf::from(&active.model_dir);
    match tokio::task::spawn_blocking(move || Embedder::load(&previous_config, metrics)).await {
        Ok(Ok(embedder)) => Some(embedder),
        Ok(Err(error)) => {
            tracing::warn!(%error, dir = %active.model_dir,
                "the previous model cannot be loaded: vector search is unavailable until re-embedding completes");
            None
        }
        Err(join) => {
            tracing::warn!(%join, "loading the previous model panicked");
            None
        }
    }
}

fn load_auth(config: &Config) -> Result<Auth> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let tokens = Tokens::load(&config.auth, credentials.as_deref().map(Path::new))?;
    Ok(Auth {
        tokens,
        config: config.auth.clone(),
    })
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
