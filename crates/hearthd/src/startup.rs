//! hearthd's life as named phases: **wire** (configuration into a library, state and router, nothing started),
//! **load model** and **migrate** (at once; either may wait), **activate** (register the model's embedding
//! spaces, then ready), **serve** (until a signal), and **drain** (finish requests, return jobs to the queue).
//! A model that cannot load leaves hearthd serving degraded; a migration that fails stops it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hearth_core::blob::BlobStore;
use hearth_core::concepts::Concepts;
use hearth_core::config::Config;
use hearth_core::embed::remote::RemoteEmbedder;
use hearth_core::embed::{EmbedMetrics, Embedder};
use hearth_core::library::{Library, SchemaHold};
use hearth_core::schema::SchemaPlan;
use hearth_core::schema::backup::Backups;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::http::{self, AppState, ModelSlot, ModelState};
use crate::systemd::{self, Notifier};
use crate::{load_auth, observe};

/// How long requests in flight at a stop may take to finish. With [`WORKER_STOP`] and the runtime's last second a
/// stop takes under 10 s, well inside the NixOS unit's `TimeoutStopSec` of 30 s.
const HTTP_DRAIN: Duration = Duration::from_secs(6);
/// How long the workers may take to release their jobs once the HTTP side is done (they started at the signal).
const WORKER_STOP: Duration = Duration::from_secs(2);

/// `hearthd serve`: every phase, with systemd told of each (and pinged by the watchdog while the runtime runs).
pub async fn serve(config: Config) -> Result<()> {
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
    let outcome = match Startup::wire(config, Arc::clone(&notifier)) {
        Ok(startup) => startup.run().await,
        Err(error) => Err(error),
    };
    match &outcome {
        Ok(()) => notifier.status("stopped"),
        Err(error) => notifier.status(&format!("failed: {error:#}")),
    }
    notifier.flush().await;
    outcome
}

/// hearthd wired from its configuration: nothing listens, loads or migrates yet.
struct Startup {
    config: Config,
    notifier: Arc<Notifier>,
    auth: Arc<Auth>,
    library: Arc<Library>,
    state: AppState,
    embed_metrics: EmbedMetrics,
}

impl Startup {
    /// Phase *wire*: tokens checked against the listen addresses, the blob store opened, a lazy database pool,
    /// the library and the metrics registry.
    fn wire(config: Config, notifier: Arc<Notifier>) -> Result<Self> {
        let auth = Arc::new(load_auth(&config)?);
        hearth_core::auth::check_bind_policy(&config.listen_addresses(), &auth.tokens)?;
        if !auth.tokens.is_empty() {
            tracing::info!(tokens = ?auth.tokens.fingerprints(), "bearer tokens loaded");
        }
        if let Some(fleet) = auth.tokens.fleet_fingerprint() {
            tracing::info!(
                fleet_token = %fleet,
                routes = ?hearth_core::auth::FLEET_ROUTES,
                "the fleet token is accepted on the embedding routes only"
            );
        }
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let blobs =
            BlobStore::open(&config.blobs, credentials.as_deref()).context("cannot open the blob store")?;
        tracing::info!(store = blobs.describe(), "originals go to the blob store");
        let pool_max = 8 + config.ingest.workers as u32;
        let pool = hearth_core::database::lazy_pool(&config.database, credentials.as_deref(), pool_max)?;
        let sandbox = hearth_core::extract::Sandbox::new(
            std::env::current_exe()
                .context("cannot find hearthd's own executable for the extraction sandbox")?,
            vec!["extract".into()],
            config.ingest.extraction,
        );
        let library = Library::new(pool, blobs, config.ingest.clone(), sandbox);
        if let Some(remote) = &config.embedding.remote {
            let remote = RemoteEmbedder::new(
                remote.clone(),
                credentials.as_deref(),
                library.metrics().embed_backends.clone(),
            )?;
            tracing::info!(
                url = %remote.config().url,
                queries = remote.config().queries,
                "ingest is embedded on the remote hearthd while it serves the same model"
            );
            library.set_remote_embedder(Arc::new(remote));
        }
        let mut registry = Registry::default();
        let embed_metrics = EmbedMetrics::default();
        embed_metrics.register(&mut registry);
        library.metrics().register(&mut registry);
        let http_metrics = observe::HttpMetrics::register(&mut registry, pool_max);
        let reasoning = hearth_core::reasoning::Reasoning::new(
            config.reasoning.clone(),
            credentials.as_deref(),
            Arc::clone(&library),
        )
        .context("reasoning settings")?;
        let reasoning = Arc::new(reasoning);
        let concepts = hearth_core::concepts::Concepts::new(
            config.concepts.clone(),
            Arc::clone(&library),
            Arc::clone(&reasoning),
            Arc::new(hearth_core::concepts::SystemClock),
        );
        let state = AppState::new(
            Arc::clone(&library),
            reasoning,
            concepts,
            Arc::new(config.clone()),
            registry,
            http_metrics,
        );
        Ok(Self {
            config,
            notifier,
            auth,
            library,
            state,
            embed_metrics,
        })
    }

    /// Phases *serve* and *drain*: listen, start the workers, become ready in the background, and at a signal
    /// finish what is in flight within bounds.
    async fn run(self) -> Result<()> {
        let listeners = Listeners::bind(&self.config).await?;
        let background = Background::spawn(&self.library, &self.state.concepts, &self.config);
        self.state.model.set(ModelState::Loading {
            since: Instant::now(),
            model: model_label(&self.config.embedding.model_dir),
        });
        // The first report goes out before anything else can happen, so systemd always sees what hearthd waits for.
        if let Some(status) = startup_status(&self.state.model, &self.library) {
            self.notifier.status(&status);
        }
        let reporter = tokio::spawn(report_startup(
            Arc::clone(&self.notifier),
            self.state.model.clone(),
            Arc::clone(&self.library),
        ));
        let outcome = self.serve_until_stopped(listeners, &background).await;
        reporter.abort();
        background.drain().await;
        outcome?;
        tracing::info!("hearthd stopped");
        Ok(())
    }

    async fn serve_until_stopped(&self, listeners: Listeners, background: &Background) -> Result<()> {
        if let Some(listener) = listeners.metrics {
            serve_metrics(listener, self.state.clone(), Arc::clone(&self.auth))?;
        }
        let app = http::router(self.state.clone(), Arc::clone(&self.auth))
            .into_make_service_with_connect_info::<SocketAddr>();
        let stopping = Arc::clone(&self.notifier);
        let stop = background.stop.clone();
        // At the signal the workers stop at once, releasing their jobs, while requests in flight are finished.
        let server = axum::serve(listeners.api, app).with_graceful_shutdown(async move {
            shutdown_signal().await;
            stopping.notify("STOPPING=1\nSTATUS=stopping: finishing requests, returning jobs to the queue");
            let _ = stop.send(true);
        });
        let mut signalled = background.stop.subscribe();
        let drain_cut = async move {
            let _ = signalled.wait_for(|stop| *stop).await;
            tokio::time::sleep(HTTP_DRAIN).await;
        };
        tokio::select! {
            served = server => served.context("HTTP server failed"),
            failed = self.become_ready() => failed,
            () = drain_cut => {
                // A slow upload or a client that never finishes its body must not hold the stop up; an upload cut
                // here was never acknowledged, and what it wrote is swept.
                tracing::warn!(seconds = HTTP_DRAIN.as_secs(), "requests still open after the drain; cutting them");
                Ok(())
            }
        }
    }

    /// Phases *load model* and *migrate* at once, then *activate*. Returns only with an error (a failed
    /// migration); otherwise it stays pending, ready or degraded, until the server stops.
    async fn become_ready(&self) -> Result<()> {
        let ((), embedder) = tokio::try_join!(self.migrate(), async { Ok(self.load_model().await) })?;
        match embedder {
            Some(embedder) => self.activate(embedder).await?,
            // Started, but degraded: READY=1 so that systemd does not kill and restart it over a model that a
            // restart cannot fix; the STATUS line and /readyz carry the failure.
            None => {
                if let ModelState::Failed { reason, .. } = self.state.model.get() {
                    self.notifier.notify(&format!(
                        "READY=1\nSTATUS=degraded: the embedding model failed to load ({reason}); documents and \
                         keyword search work"
                    ));
                }
            }
        }
        std::future::pending::<Result<()>>().await
    }

    /// Phase *load model*: verify and load it off the async runtime. A model that cannot be loaded does not stop
    /// hearthd: documents and keyword search still work, and /readyz and systemd's STATUS= say what is wrong.
    async fn load_model(&self) -> Option<Embedder> {
        let config = self.config.embedding.clone();
        let metrics = self.embed_metrics.clone();
        let failure = match tokio::task::spawn_blocking(move || Embedder::load(&config, metrics)).await {
            Ok(Ok(embedder)) => {
                // /v1/embeddings serves from here on, with or without a database.
                self.state.model.set(ModelState::Loaded(embedder.clone()));
                return Some(embedder);
            }
            Ok(Err(error)) => format!("{:#}", anyhow::Error::from(error)),
            Err(join) => format!("model loading panicked: {join}"),
        };
        tracing::error!(reason = %failure, "cannot load the embedding model: serving documents and keyword \
            search only; /readyz stays 503 until the model is fixed and hearthd restarted");
        self.state.model.set(ModelState::Failed {
            model: model_label(&self.config.embedding.model_dir),
            reason: failure,
        });
        None
    }

    /// Phase *migrate*: as soon as PostgreSQL answers. Pending migrations run only after a verified backup; a
    /// newer schema is run on only when it declared this release compatible. Short of either, hearthd stays up
    /// without the schema (`/readyz` says why) rather than risk the data. A migration that fails stops hearthd: its
    /// transaction rolled back, so the data is as it was.
    async fn migrate(&self) -> Result<()> {
        let plan = self.library.schema_plan_when_reachable().await?;
        let newer_allowed = match plan {
            SchemaPlan::Fresh | SchemaPlan::Current { .. } => false,
            SchemaPlan::Pending { from, to } => {
                self.back_up_before_migrating(from, to).await;
                false
            }
            SchemaPlan::Newer { version, known, .. } if plan.blocking().is_empty() => {
                tracing::info!(
                    version,
                    known,
                    "the database's schema is newer than this hearthd and declared \
                    compatible with it: running on it"
                );
                true
            }
            SchemaPlan::Newer { version, known, .. } => {
                return self.refuse_newer(&plan, version, known).await;
            }
        };
        let version = self.library.apply_migrations(newer_allowed).await?;
        self.library.set_schema_hold(None);
        tracing::info!(version = ?version, "database schema is current");
        // Documents and keyword search work from here on; vector search once the model is in.
        self.library.set_schema_ready();
        Ok(())
    }

    /// The dump before migrating, retried every 15 s while it cannot be made (a full disk, no pg_dump).
    async fn back_up_before_migrating(&self, from: i64, to: i64) {
        let backups = self.backups();
        let mut last_reason = String::new();
        loop {
            self.library
                .set_schema_hold(Some(SchemaHold::BackingUp { from, to }));
            self.notifier.status(&format!(
                "backing up the database (schema {from}) before migrating to {to}"
            ));
            match self.library.backup_before_migrate(&backups, from, to).await {
                Ok(manifest) => {
                    tracing::info!(file = %manifest.path(backups.dir()).display(), bytes = manifest.bytes,
                        sha256 = %manifest.sha256, from, to, "database backed up before migrating");
                    // Migrating now: /readyz says so.
                    self.library.set_schema_hold(None);
                    return;
                }
                Err(error) => {
                    let reason = error.to_string();
                    if reason != last_reason {
                        tracing::error!(%reason, from, to, "not migrating: the backup before it cannot be made; \
                            serving nothing that needs the database until it can");
                        last_reason.clone_from(&reason);
                    }
                    self.library.set_schema_hold(Some(SchemaHold::Blocked {
                        from,
                        to,
                        reason: reason.clone(),
                    }));
                    // READY=1: the start job must end (a switch waits on it, and `hearth upgrade` after it), and a
                    // restart cannot make room; the STATUS line and /readyz say what is wrong.
                    self.notifier.notify(&format!(
                        "READY=1\nSTATUS=degraded: not migrating {from} → {to}: {reason}"
                    ));
                }
            }
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
    }

    /// A newer schema that this release may not run on: stay up, say what to do, touch nothing.
    async fn refuse_newer(&self, plan: &SchemaPlan, version: i64, known: i64) -> Result<()> {
        let blocking = plan
            .blocking()
            .iter()
            .map(|m| match m.breaking {
                Some(_) => format!("{} ({}) is declared breaking", m.version, m.description),
                None => format!("{} ({}) declares nothing", m.version, m.description),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let backups = self.backups();
        let restore = match backups.list().into_iter().find(|b| b.schema <= known) {
            Some(backup) => format!(
                "restore the backup taken before it: `hearth restore {}` (after systemctl stop hearthd)",
                backup.path(backups.dir()).display()
            ),
            None => format!(
                "no backup of schema {known} or older is in {}; restore one with `hearth restore <file>`",
                backups.dir().display()
            ),
        };
        let reason = format!(
            "the database's schema ({version}) is newer than this hearthd knows ({known}) and it cannot run on \
             it: migration {blocking}. Switch back to the newer hearth, or {restore}"
        );
        tracing::error!(%reason, "refusing to run on the database");
        self.notifier
            .notify(&format!("READY=1\nSTATUS=degraded: refusing to run: {reason}"));
        self.library.set_schema_hold(Some(SchemaHold::Incompatible {
            version,
            known,
            reason,
        }));
        std::future::pending::<Result<()>>().await
    }

    fn backups(&self) -> Backups {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let env = hearth_core::database::libpq_env(&self.config.database, credentials.as_deref())
            .unwrap_or_default();
        Backups::new(self.config.backup.clone(), env)
    }

    /// Phase *activate*: the model's embedding space registered (a new model starts a background re-embedding),
    /// then ready.
    async fn activate(&self, embedder: Embedder) -> Result<()> {
        tracing::info!(
            model = %embedder.manifest().id,
            dir = %embedder.model_dir().display(),
            "model loaded and verified"
        );
        let previous =
            previous_model(&self.library, &embedder, &self.config, self.embed_metrics.clone()).await;
        let spaces = self.library.set_models(embedder.clone(), previous).await?;
        if spaces.switching() {
            tracing::info!(
                from = %spaces.active.model_id,
                to = %spaces.target.model_id,
                "new model configured: re-embedding every document in the background; search stays on the old \
                 space until done"
            );
        }
        let model_id = embedder.manifest().id.clone();
        self.state.model.set(ModelState::Ready(embedder));
        let listen = self.config.listen;
        self.notifier
            .notify(&format!("READY=1\nSTATUS=serving on {listen} with {model_id}"));
        tracing::info!("ready");
        Ok(())
    }
}

/// The API's socket and, with `metrics.listen`, the metrics socket: bound before anything else starts, so a port
/// in use stops hearthd at once.
struct Listeners {
    api: TcpListener,
    metrics: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self> {
        let listen = config.listen;
        let api = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}: is another process using it?"))?;
        tracing::info!(%listen, "hearthd listening");
        let metrics = match config.metrics.listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (metrics.listen): is another process using it?")
            })?),
            None => None,
        };
        Ok(Self { api, metrics })
    }
}

/// `/metrics` on its own socket; ends with the process (a scrape in flight at shutdown is simply cut).
fn serve_metrics(listener: TcpListener, state: AppState, auth: Arc<Auth>) -> Result<()> {
    let address = listener.local_addr()?;
    let app = http::metrics_router(state, auth).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(%address, "metrics listening");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(())
}

/// The ingest workers, the concept extraction worker and the blob sweeper, stopped together.
struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    fn spawn(library: &Arc<Library>, concepts: &Arc<Concepts>, config: &Config) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks: Vec<_> = (0..config.ingest.workers)
            .map(|_| tokio::spawn(Arc::clone(library).run_worker(stopped.clone())))
            .collect();
        tasks.push(tokio::spawn(Arc::clone(concepts).run_worker(stopped.clone())));
        if library.remote_embedder().is_some() {
            tasks.push(tokio::spawn(
                Arc::clone(library).watch_remote_embedder(stopped.clone()),
            ));
        }
        if config.blobs.sweep_interval_seconds > 0 {
            tasks.push(tokio::spawn(Arc::clone(library).run_sweeper(
                Duration::from_secs(config.blobs.sweep_interval_seconds),
                Duration::from_secs(config.blobs.sweep_grace_seconds),
                stopped,
            )));
        }
        Self { stop, tasks }
    }

    /// Phase *drain*: jobs in progress are released to the queue, not lost; bounded so a stuck worker cannot hold
    /// up the stop.
    async fn drain(self) {
        let _ = self.stop.send(true);
        let joined = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(WORKER_STOP, joined).await.is_err() {
            tracing::warn!(
                seconds = WORKER_STOP.as_secs(),
                "workers did not stop in time; their jobs return to the queue when their leases end"
            );
        }
    }
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
    // A held schema has said READY=1 with its own STATUS line: nothing is starting any more.
    if matches!(
        library.schema_hold(),
        Some(SchemaHold::Blocked { .. } | SchemaHold::Incompatible { .. })
    ) {
        return None;
    }
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
