//! `hearth`: the command-line client of hearthd.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod client;
mod ingest;
mod upgrade;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearth_api::documents::ListParams;
use hearth_api::openai::{EmbeddingInput, EmbeddingVector, EmbeddingsRequest, InputType};
use hearth_api::search::{SearchFilter, SearchMode, SearchRequest};
use serde_json::Value;

use crate::client::Hearth;

#[derive(Debug, Parser)]
#[command(version, about = "hearth's command-line client")]
struct Cli {
    /// Base URL of hearthd.
    #[arg(
        long,
        env = "HEARTH_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// File holding the bearer token (the appliance's api-token); needed from another machine.
    #[arg(long, env = "HEARTH_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Where the box keeps what an upgrade needs.
#[derive(Debug, Clone, clap::Args)]
struct UpgradeArgs {
    /// hearthd's backup.dir: its dumps and the upgrade record.
    #[arg(long, default_value = "/var/lib/hearth/backups")]
    backups: PathBuf,
    /// The system profile a switch sets.
    #[arg(long, default_value = "/nix/var/nix/profiles/system")]
    profile: PathBuf,
    /// Run `hearthd restore` as this user (hearthd's, whose role owns the database).
    #[arg(long)]
    restore_as: Option<String>,
    /// hearthd's configuration file, for `hearthd restore`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seconds the new generation may take to be ready.
    #[arg(long, default_value_t = 600)]
    ready_timeout: u64,
}

impl UpgradeArgs {
    fn settings(self) -> upgrade::UpgradeSettings {
        upgrade::UpgradeSettings {
            backups: self.backups,
            profile: self.profile,
            restore_as: self.restore_as,
            config: self.config,
            ready_timeout: Duration::from_secs(self.ready_timeout),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show whether hearthd is ready and what it runs on (exit 3 when not ready).
    Status {
        /// Wait up to this many seconds for it to be ready, saying every 10 s what it waits for.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// On the box, as root: switch to a new system, wait for hearthd to be ready, and go back by itself (restoring
    /// the database from the dump hearthd took before migrating) when it is not. Exit 1 after a rollback.
    Upgrade {
        /// Build this flake's host and switch to it: <flake>#<host>.
        #[arg(long, conflicts_with = "to")]
        flake: Option<String>,
        /// Switch to this built system (a store path) instead of building.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Show the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        settings: UpgradeArgs,
    },
    /// On the box, as root: go back to the system the last upgrade came from, restoring the dump taken before its
    /// migration when the older hearthd cannot run on the schema (or always, with --restore).
    Rollback {
        #[arg(long)]
        restore: bool,
        #[command(flatten)]
        settings: UpgradeArgs,
    },
    /// On the box: restore a dump of hearthd's (see /v1/capabilities' backups) into its database, in one
    /// transaction; refuses while hearthd runs (systemctl stop hearthd first). Runs `hearthd restore`.
    Restore {
        dump: PathBuf,
        #[command(flatten)]
        settings: UpgradeArgs,
    },
    /// Embed texts on the box and show how similar they are to each other.
    Embed {
        /// Texts to embed.
        #[arg(required = true)]
        texts: Vec<String>,
        /// Embed as search queries (the model's query prefix) rather than documents.
        #[arg(long)]
        query: bool,
        /// Print the raw JSON response.
        #[arg(long)]
        json: bool,
    },
    /// Upload files and directories (recursively); files the server already has are skipped by their sha256.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only files matching this glob (repeatable), e.g. '**/*.md'.
        #[arg(long)]
        include: Vec<String>,
        /// Skip files matching this glob (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// Uploads in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Wait until every uploaded document is processed; exit 1 if any failed.
        #[arg(long)]
        wait: bool,
    },
    /// Search the library: by meaning and by words (hybrid), or --mode vector|keyword.
    Search {
        query: String,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
        mode: SearchMode,
        /// Only documents whose metadata contains this JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// Print the raw JSON response.
        #[arg(long)]
        json: bool,
    },
    /// List, show or remove documents.
    Docs {
        #[command(subcommand)]
        command: DocsCommand,
    },
    /// On the box: check everything hearthd needs (config, tokens, model files, onnxruntime, database + pgvector,
    /// blob store, data directory permissions, the listen address), one line each with a fix for each failure.
    /// Exits 1 unless all pass. Runs `hearthd doctor` (next to this program, else on PATH, or $HEARTH_HEARTHD).
    Doctor {
        /// hearthd's config file (default /etc/hearth/hearth.toml when it exists); `HEARTH_*` variables apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// On the box, as root: print the setup code that signs a browser in to the web UI (first boot minted it;
    /// the console's login prompt shows it too).
    SetupCode {
        /// Where first boot keeps the secrets.
        #[arg(long, env = "HEARTH_SECRETS_DIR", default_value = "/var/lib/hearth/secrets")]
        secrets_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DocsCommand {
    /// Documents, oldest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One document: status, chunks, error, job progress.
    Show { id: String },
    /// Delete documents (their chunks, vectors and originals).
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor { config, json } => doctor(config.as_deref(), json),
        Command::SetupCode { secrets_dir } => setup_code(&secrets_dir),
        command => match Hearth::new(&cli.url, cli.token_file.as_deref()) {
            Ok(client) => run(&client, command).await,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            #[allow(clippy::print_stderr)] // the CLI's error channel is the terminal
            {
                eprintln!("hearth: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(client: &Hearth, command: Command) -> Result<ExitCode> {
    match command {
        Command::Status { wait } => status(client, wait).await,
        Command::Upgrade {
            flake,
            to,
            dry_run,
            settings,
        } => {
            let upgraded = upgrade::upgrade(
                client,
                &settings.settings(),
                flake.as_deref(),
                to.as_deref(),
                dry_run,
            )
            .await?;
            Ok(if upgraded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Rollback { restore, settings } => {
            let back = upgrade::rollback(client, &settings.settings(), restore).await?;
            Ok(if back {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Restore { dump, settings } => {
            upgrade::restore(&settings.settings(), &dump)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Embed { texts, query, json } => embed(client, texts, query, json).await,
        Command::Ingest {
            paths,
            include,
            exclude,
            concurrency,
            wait,
        } => {
            let options = ingest::IngestOptions {
                paths,
                include,
                exclude,
                concurrency,
                wait,
            };
            let ok = ingest::run(client, options).await?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Search {
            query,
            k,
            mode,
            metadata,
            json,
        } => search(client, query, k, mode, metadata.as_deref(), json).await,
        Command::Docs { command } => docs(client, command).await,
        Command::Doctor { config, json } => doctor(config.as_deref(), json),
        Command::SetupCode { secrets_dir } => setup_code(&secrets_dir),
    }
}

/// The setup code, for the person at the box; nothing else is printed, so it can be piped.
fn setup_code(secrets_dir: &Path) -> Result<ExitCode> {
    let path = secrets_dir.join("setup-code");
    let code = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run as root on the appliance; first boot writes it)",
            path.display()
        )
    })?;
    println!("{}", code.trim());
    Ok(ExitCode::SUCCESS)
}

fn parse_mode(text: &str) -> Result<SearchMode, String> {
    SearchMode::ALL
        .into_iter()
        .find(|mode| mode.label() == text)
        .ok_or_else(|| format!("'{text}' is not a search mode: use hybrid, vector or keyword"))
}

async fn status(client: &Hearth, wait: Option<u64>) -> Result<ExitCode> {
    if let Some(seconds) = wait {
        return match upgrade::wait_ready(client, Duration::from_secs(seconds)).await {
            Ok(readiness) => {
                println!("{}", serde_json::to_string_pretty(&readiness)?);
                Ok(ExitCode::SUCCESS)
            }
            Err(reason) => {
                println!("not ready after {seconds} s: {reason}");
                Ok(ExitCode::from(3))
            }
        };
    }
    let (ready, readiness) = client.readiness().await?;
    println!("{}", serde_json::to_string_pretty(&readiness)?);
    Ok(if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

async fn embed(client: &Hearth, texts: Vec<String>, query: bool, raw: bool) -> Result<ExitCode> {
    let request = EmbeddingsRequest {
        input: EmbeddingInput::Many(texts.clone()),
        model: None,
        encoding_format: Default::default(),
        dimensions: None,
        user: None,
        truncate: false,
        input_type: if query {
            InputType::Query
        } else {
            InputType::Document
        },
    };
    let answer = client.embed(&request).await?;
    if raw {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let vectors: Vec<&[f64]> = answer
        .data
        .iter()
        .map(|item| match &item.embedding {
            EmbeddingVector::Float(values) => values.as_slice(),
            EmbeddingVector::Base64(_) => &[],
        })
        .collect();
    println!(
        "{} vectors of {} dimensions from {} ({} tokens)",
        vectors.len(),
        vectors.first().map_or(0, |v| v.len()),
        answer.model,
        answer.usage.prompt_tokens
    );
    if vectors.len() > 1 {
        println!("cosine similarity:");
        for (i, a) in vectors.iter().enumerate() {
            let row: Vec<String> = vectors
                .iter()
                .map(|b| format!("{:5.2}", a.iter().zip(b.iter()).map(|(x, y)| x * y).sum::<f64>()))
                .collect();
            println!("  [{i}] {}  {}", row.join(" "), preview_n(&texts[i], 60));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn search(
    client: &Hearth,
    query: String,
    k: usize,
    mode: SearchMode,
    metadata: Option<&str>,
    raw: bool,
) -> Result<ExitCode> {
    let filter = metadata
        .map(|metadata| {
            let metadata: Value =
                serde_json::from_str(metadata).context("--metadata must be a JSON object")?;
            Ok::<_, anyhow::Error>(SearchFilter {
                metadata: Some(metadata),
                document_ids: None,
                concept: None,
            })
        })
        .transpose()?;
    let request = SearchRequest {
        query,
        k,
        mode,
        filter,
    };
    let answer = client.search(&request).await?;
    if raw {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    if answer.hits.is_empty() {
        println!("no matches for \"{}\"", request.query);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>3}  {:>7}  {:<16}  {:<24}  text",
        "#", "score", "found by", "document"
    );
    for (rank, hit) in answer.hits.iter().enumerate() {
        let by: Vec<&str> = hit
            .retrievers
            .iter()
            .map(|retriever| match retriever {
                hearth_api::search::Retriever::Vector => "vector",
                hearth_api::search::Retriever::Keyword => "keyword",
            })
            .collect();
        let text = hit.text.split_whitespace().collect::<Vec<_>>().join(" ");
        println!(
            "{:>3}  {:>7.4}  {:<16}  {:<24}  {}",
            rank + 1,
            hit.score,
            by.join("+"),
            preview_n(hit.title.as_deref().unwrap_or("(untitled)"), 24),
            preview_n(&text, 70)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn docs(client: &Hearth, command: DocsCommand) -> Result<ExitCode> {
    match command {
        DocsCommand::List { status, limit } => {
            list_documents(client, status, limit).await?;
        }
        DocsCommand::Show { id } => {
            let detail = client.document(&id).await?;
            println!("{}", serde_json::to_string_pretty(&detail)?);
        }
        DocsCommand::Rm { ids } => {
            for id in ids {
                let answer = client.delete(&id).await?;
                let what = if answer.deleted {
                    "deleted"
                } else {
                    "was not there"
                };
                println!("{id}: {what}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_documents(client: &Hearth, status: Option<String>, limit: usize) -> Result<()> {
    let mut cursor: Option<String> = None;
    let mut shown = 0;
    println!("{:<36}  {:<10}  {:>6}  title", "id", "status", "chunks");
    while shown < limit {
        let params = ListParams {
            status: status.clone(),
            limit: Some((limit - shown).min(500) as i64),
            cursor: cursor.take(),
            ..ListParams::default()
        };
        let page = client.list(&params).await?;
        for document in &page.documents {
            shown += 1;
            println!(
                "{:<36}  {:<10}  {:>6}  {}",
                document.id,
                document.status.as_str(),
                document.chunk_count,
                document.title.as_deref().unwrap_or("(untitled)")
            );
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

fn preview_n(text: &str, width: usize) -> String {
    let mut short: String = text.chars().take(width).collect();
    if text.chars().count() > width {
        short.pop();
        short.push('…');
    }
    short
}

/// `hearthd doctor`, which owns the checks: they need the domain library (model files, onnxruntime, the
/// database), which this client does not link. Its output and exit status are this command's.
fn doctor(config: Option<&Path>, json: bool) -> Result<ExitCode> {
    let hearthd = hearthd_program();
    let mut command = std::process::Command::new(&hearthd);
    command.arg("doctor");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    if json {
        command.arg("--json");
    }
    let status = command.status().with_context(|| {
        format!(
            "cannot run {} doctor: hearth doctor runs on the box, where hearthd is installed (set HEARTH_HEARTHD \
             to its path)",
            hearthd.display()
        )
    })?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => bail!("hearthd doctor was killed by a signal"),
    })
}

/// `$HEARTH_HEARTHD`, else `hearthd` on PATH (on NixOS the wrapped one, which finds onnxruntime), else next to
/// this program (a build directory).
pub(crate) fn hearthd_program() -> PathBuf {
    if let Some(path) = std::env::var_os("HEARTH_HEARTHD") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("hearthd"))
            .find(|candidate| candidate.is_file())
    });
    let beside = || {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("hearthd")))
            .filter(|path| path.is_file())
    };
    on_path
        .or_else(beside)
        .unwrap_or_else(|| PathBuf::from("hearthd"))
}
