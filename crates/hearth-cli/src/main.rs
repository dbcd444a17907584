//! `hearth`: the command-line client of hearthd.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show whether hearthd is ready and what it runs on.
    Status,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Status => status(&cli.url).await,
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

async fn status(url: &str) -> Result<ExitCode> {
    let endpoint = format!("{}/readyz", url.trim_end_matches('/'));
    let response = reqwest::get(&endpoint).await.with_context(|| {
        format!("cannot reach hearthd at {url}: is it running? (set --url or HEARTH_URL)")
    })?;
    let ready = response.status().is_success();
    let body: serde_json::Value = response
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
