//! hearth's benchmarks. Each measures hearth against a baseline taken in the same run on the same machine and
//! prints a markdown section; run them through `cargo xtask bench embed|ingest|search|memory|quality|ui|answer|remote|all`, which builds this in
//! release mode, installs what they need and writes the section into docs/benchmarks.md.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod answer;
mod common;
mod embed;
mod ingest;
mod memory;
mod quality;
mod remote;
mod search;
mod ui;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
    /// Markdown file the results are written to.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Embedding throughput: raw onnxruntime, the engine, hearthd over HTTP, Python fastembed.
    Embed(embed::Args),
    /// End-to-end ingest (HTTP upload to searchable chunks) against the embedder alone.
    Ingest(ingest::Args),
    /// hearthd's resident memory at rest before and after a hostile sweep.
    Memory(memory::Args),
    /// Vector search latency and recall against exact search, and search latency under a bulk ingest.
    Search(search::Args),
    /// Recall and MRR of every search mode on known-item corpora, against BM25 over whole documents.
    Quality(quality::Args),
    /// The web UI's Home in a real browser: weight and first render, against the same bytes served statically.
    Ui(ui::Args),
    /// What hearth adds to an answer over the reasoning provider's own time.
    Answer(answer::Args),
    /// Ingest of a small box embedding on its own model against the same box embedding on a remote hearthd.
    Remote(remote::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let report = match &cli.bench {
        Bench::Embed(args) => embed::run(args)?,
        Bench::Ingest(args) => Some(ingest::run(args)?),
        Bench::Search(args) => Some(search::run(args)?),
        Bench::Memory(args) => Some(memory::run(args)?),
        Bench::Quality(args) => Some(quality::run(args)?),
        Bench::Ui(args) => Some(ui::run(args)?),
        Bench::Answer(args) => Some(answer::run(args)?),
        Bench::Remote(args) => Some(remote::run(args)?),
    };
    if let Some(report) = report {
        println!("\n{report}");
        if let Some(out) = &cli.out {
            std::fs::write(out, report).with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}
