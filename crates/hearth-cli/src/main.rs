//! `hearth`: the command-line client of hearthd.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = cli.url.trim_end_matches('/').to_owned();
    let result = match client(cli.token_file.as_deref()) {
        Ok(client) => match cli.command {
            Command::Status => status(&client, &base).await,
            Command::Embed { texts, query, json } => embed(&client, &base, texts, query, json).await,
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
