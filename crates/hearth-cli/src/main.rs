//! `hearth`: the command-line client of hearthd.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod ingest;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Show whether hearthd is ready and what it runs on (exit 3 when not ready).
    Status,
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
        #[arg(long, default_value = "hybrid")]
        mode: String,
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
    /// Exits 1 unless all pass. The same checks as `hearthd doctor`.
    Doctor {
        /// hearthd's config file (default /etc/hearth/hearth.toml when it exists); `HEARTH_*` variables apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
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
    if let Command::Doctor { config, json } = &cli.command {
        return doctor(config.as_deref(), *json).await;
    }
    let base = cli.url.trim_end_matches('/').to_owned();
    let result = match client(cli.token_file.as_deref()) {
        Ok(client) => match cli.command {
            Command::Status => status(&client, &base).await,
            Command::Embed { texts, query, json } => embed(&client, &base, texts, query, json).await,
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
                ingest::run(&client, &base, options)
                    .await
                    .map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Command::Search {
                query,
                k,
                mode,
                metadata,
                json,
            } => search(&client, &base, &query, k, &mode, metadata.as_deref(), json).await,
            Command::Docs { command } => docs(&client, &base, command).await,
            Command::Doctor { .. } => unreachable!("handled above"),
        },
        Err(error) => Err(error),
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

fn unreachable(base: &str) -> String {
    format!("cannot reach hearthd at {base}: is it running? (set --url or HEARTH_URL)")
}

/// An HTTP client that sends the bearer token, when one is configured, with every request.
fn client(token_file: Option<&Path>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim_end()))
            .with_context(|| format!("{} does not hold a valid token", path.display()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .context("cannot build the HTTP client")
}

/// hearthd's explanation of a 401, which says how to get a token.
async fn refused(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let message = body["message"]
        .as_str()
        .or(body["error"]["message"].as_str())
        .unwrap_or("no message");
    anyhow::anyhow!("hearthd refused ({status}): {message}; pass --token-file or set HEARTH_TOKEN_FILE")
}

async fn status(client: &reqwest::Client, base: &str) -> Result<ExitCode> {
    let endpoint = format!("{base}/readyz");
    let response = client
        .get(&endpoint)
        .send()
        .await
        .with_context(|| unreachable(base))?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Err(refused(response).await);
    }
    let ready = response.status().is_success();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{endpoint} did not answer with JSON"))?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

async fn embed(
    client: &reqwest::Client,
    base: &str,
    texts: Vec<String>,
    query: bool,
    raw: bool,
) -> Result<ExitCode> {
    let body = json!({
        "input": texts,
        "input_type": if query { "query" } else { "document" },
    });
    let response = client
        .post(format!("{base}/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .with_context(|| unreachable(base))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(refused(response).await);
    }
    let answer: Value = response
        .json()
        .await
        .context("hearthd did not answer with JSON")?;
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or("no message");
        bail!("hearthd refused ({status}): {message}");
    }
    if raw {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let vectors: Vec<Vec<f64>> = answer["data"]
        .as_array()
        .context("no data in the response")?
        .iter()
        .map(|item| {
            item["embedding"]
                .as_array()
                .map(|values| values.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        })
        .collect();
    println!(
        "{} vectors of {} dimensions from {} ({} tokens)",
        vectors.len(),
        vectors.first().map_or(0, Vec::len),
        answer["model"].as_str().unwrap_or("?"),
        answer["usage"]["prompt_tokens"]
    );
    if vectors.len() > 1 {
        println!("cosine similarity:");
        for (i, a) in vectors.iter().enumerate() {
            let row: Vec<String> = vectors
                .iter()
                .map(|b| format!("{:5.2}", a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>()))
                .collect();
            println!("  [{i}] {}  {}", row.join(" "), preview(&texts[i]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn preview(text: &str) -> String {
    let mut short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Sends a request and returns its JSON, turning an error answer into hearthd's own message.
async fn call(request: reqwest::RequestBuilder, base: &str) -> Result<Value> {
    let response = request.send().await.with_context(|| unreachable(base))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(refused(response).await);
    }
    let body: Value = response
        .json()
        .await
        .context("hearthd did not answer with JSON")?;
    if !status.is_success() {
        bail!(
            "hearthd refused ({status}): {}",
            body["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}

async fn search(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    k: usize,
    mode: &str,
    metadata: Option<&str>,
    raw: bool,
) -> Result<ExitCode> {
    let mut body = json!({ "query": query, "k": k, "mode": mode });
    if let Some(metadata) = metadata {
        let metadata: Value = serde_json::from_str(metadata).context("--metadata must be a JSON object")?;
        body["filter"] = json!({ "metadata": metadata });
    }
    let answer = call(client.post(format!("{base}/v1/search")).json(&body), base).await?;
    if raw {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let hits = answer["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no matches for \"{query}\"");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>3}  {:>7}  {:<16}  {:<24}  text",
        "#", "score", "found by", "document"
    );
    for (rank, hit) in hits.iter().enumerate() {
        let by: Vec<&str> = hit["retrievers"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let title = hit["title"].as_str().unwrap_or("(untitled)");
        let text = hit["text"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:>3}  {:>7.4}  {:<16}  {:<24}  {}",
            rank + 1,
            hit["score"].as_f64().unwrap_or_default(),
            by.join("+"),
            preview_n(title, 24),
            preview_n(&text, 70)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn docs(client: &reqwest::Client, base: &str, command: DocsCommand) -> Result<ExitCode> {
    match command {
        DocsCommand::List { status, limit } => {
            let mut cursor: Option<String> = None;
            let mut shown = 0;
            println!("{:<36}  {:<10}  {:>6}  title", "id", "status", "chunks");
            while shown < limit {
                let page = (limit - shown).min(500).to_string();
                let mut query = vec![("limit", page)];
                if let Some(status) = &status {
                    query.push(("status", status.clone()));
                }
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.clone()));
                }
                let answer = call(client.get(format!("{base}/v1/documents")).query(&query), base).await?;
                for document in answer["documents"].as_array().cloned().unwrap_or_default() {
                    shown += 1;
                    println!(
                        "{:<36}  {:<10}  {:>6}  {}",
                        document["id"].as_str().unwrap_or_default(),
                        document["status"].as_str().unwrap_or_default(),
                        document["chunk_count"],
                        document["title"].as_str().unwrap_or("(untitled)")
                    );
                }
                match answer["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DocsCommand::Show { id } => {
            let answer = call(client.get(format!("{base}/v1/documents/{id}")), base).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
        DocsCommand::Rm { ids } => {
            for id in ids {
                let answer = call(client.delete(format!("{base}/v1/documents/{id}")), base).await?;
                let what = if answer["deleted"] == true {
                    "deleted"
                } else {
                    "was not there"
                };
                println!("{id}: {what}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn preview_n(text: &str, width: usize) -> String {
    let mut short: String = text.chars().take(width).collect();
    if text.chars().count() > width {
        short.pop();
        short.push('…');
    }
    short
}

async fn doctor(config: Option<&Path>, json: bool) -> ExitCode {
    use hearth_core::doctor;
    let config = hearth_core::config::Config::load(config).map_err(|e| e.to_string());
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let checks = doctor::run(config, credentials.as_deref()).await;
    if json {
        println!(
            "{}",
            json!({ "passed": doctor::passed(&checks), "checks": checks })
        );
    } else {
        print!("{}", doctor::render(&checks));
    }
    if doctor::passed(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
