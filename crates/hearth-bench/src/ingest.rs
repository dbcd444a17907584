//! `hearth-bench ingest`: documents uploaded to a release hearthd until every chunk is embedded and committed,
//! against hearth's embedder alone on exactly the chunks that ingest produced. The ratio is what everything
//! around the model (HTTP, durable blobs, the job queue, extraction, chunking, PostgreSQL with its HNSW and
//! full-text indexes) costs.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hearth_core::embed::{EmbedMetrics, EmbedRequest, Embedder, InputKind, Priority};
use hearth_testkit::TestPostgres;
use sqlx::PgPool;

use crate::common::{self, Common, median};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Documents uploaded per run, each made of consecutive fortunes.
    #[arg(long, default_value_t = 120)]
    documents: usize,
    #[arg(long, default_value_t = 30)]
    fortunes_per_document: usize,
    /// Uploads in flight (`hearth ingest`'s default concurrency).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// hearthd's `ingest.workers`; unset keeps hearthd's default.
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let fortunes = common::fortunes()?;
    let documents: Vec<String> = fortunes
        .chunks(args.fortunes_per_document)
        .take(args.documents)
        .map(|group| group.join("\n\n"))
        .collect();
    if documents.len() < args.documents {
        bail!(
            "the fortunes make {} documents, fewer than the {} asked for",
            documents.len(),
            args.documents
        );
    }
    let bytes: usize = documents.iter().map(String::len).sum();
    println!(
        "bench ingest: {} documents ({bytes} bytes), {} runs",
        documents.len(),
        args.runs
    );
    let postgres = TestPostgres::start()?;
    let runtime = common::runtime()?;

    // Loaded once; it idles while hearthd runs. Each run measures both arms back to back, so a slow spell of a
    // shared machine lands on both.
    let embedder = Embedder::load(&args.common.engine_config(8192), EmbedMetrics::default())?;
    let mut end_to_end = Vec::new();
    let mut alone = Vec::new();
    let mut ratios = Vec::new();
    let mut chunks: Option<Vec<String>> = None;
    for run in 1..=args.runs {
        let url = postgres.create_database()?;
        let (elapsed, texts) = runtime.block_on(ingest_once(args, &url, &documents))?;
        if let Some(previous) = &chunks
            && previous.len() != texts.len()
        {
            bail!(
                "runs chunked differently: {} then {} chunks",
                previous.len(),
                texts.len()
            );
        }
        let embedded = runtime.block_on(embed_once(&embedder, &texts))?;
        println!(
            "bench ingest: run {run}: {} chunks in {:.2}s end to end, {:.2}s for the embedder alone: {:.3}",
            texts.len(),
            elapsed.as_secs_f64(),
            embedded.as_secs_f64(),
            embedded.as_secs_f64() / elapsed.as_secs_f64()
        );
        end_to_end.push(elapsed);
        alone.push(embedded);
        ratios.push(embedded.as_secs_f64() / elapsed.as_secs_f64());
        chunks = Some(texts);
    }
    let chunks = chunks.unwrap_or_default();
    let tokens: usize = embedder.count_tokens(&chunks)?.iter().sum();
    ratios.sort_by(f64::total_cmp);
    Ok(report(
        args,
        &embedder,
        bytes,
        chunks.len(),
        tokens,
        median(&end_to_end),
        median(&alone),
        &ratios,
    ))
}

/// One run on a fresh database: upload everything, wait for an empty queue, then check that every document is
/// ready with one vector per chunk, and return the time and the chunk texts.
async fn ingest_once(args: &Args, url: &str, documents: &[String]) -> Result<(Duration, Vec<String>)> {
    let workers = args.workers.map(|n| n.to_string());
    let settings: Vec<(&str, &str)> = workers
        .as_deref()
        .map(|n| ("HEARTH_INGEST__WORKERS", n))
        .into_iter()
        .collect();
    let hearthd = args.common.start_hearthd(url, &settings)?;
    let client = reqwest::Client::new();
    common::wait_ready(&client, &hearthd).await?;

    let started = Instant::now();
    common::upload_all(&client, &hearthd, documents, "fortunes", args.in_flight).await?;
    common::wait_for_empty_queue(&client, &hearthd, Duration::from_secs(1800)).await?;
    let elapsed = started.elapsed();
    let metrics = client
        .get(format!("{}/metrics", hearthd.url))
        .send()
        .await?
        .text()
        .await?;
    let busy = metric(&metrics, "hearth_embed_inference_seconds_sum");
    let batches = metric(&metrics, "hearth_embed_batch_inputs_count");
    let inputs = metric(&metrics, "hearth_embed_batch_inputs_sum");
    println!(
        "bench ingest: the embedder was busy {:.0}% of the time, {batches} batches of {:.1} inputs on average",
        100.0 * busy / elapsed.as_secs_f64(),
        inputs / batches.max(1.0)
    );

    let pool = PgPool::connect(url).await?;
    let ready: i64 = sqlx::query_scalar("SELECT count(*) FROM documents WHERE status = 'ready'")
        .fetch_one(&pool)
        .await?;
    let vectors: i64 = sqlx::query_scalar("SELECT count(*) FROM chunk_vectors")
        .fetch_one(&pool)
        .await?;
    let texts: Vec<String> = sqlx::query_scalar("SELECT text FROM chunks ORDER BY document_id, ordinal")
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    if ready != documents.len() as i64 || vectors != texts.len() as i64 {
        bail!(
            "after the queue drained: {ready} of {} documents ready, {vectors} vectors for {} chunks",
            documents.len(),
            texts.len()
        );
    }
    Ok((elapsed, texts))
}

/// The value of an unlabelled sample in Prometheus text, 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The embedder alone: every chunk as one ingest-priority request, model loading outside the timing.
async fn embed_once(embedder: &Embedder, chunks: &[String]) -> Result<Duration> {
    let started = Instant::now();
    let done = embedder
        .embed(EmbedRequest::new(
            chunks.to_vec(),
            InputKind::Document,
            Priority::Ingest,
        ))
        .await?;
    let elapsed = started.elapsed();
    if done.vectors.len() != chunks.len() {
        bail!(
            "the embedder returned {} vectors for {} chunks",
            done.vectors.len(),
            chunks.len()
        );
    }
    Ok(elapsed)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    embedder: &Embedder,
    bytes: usize,
    chunks: usize,
    tokens: usize,
    end_to_end: Duration,
    alone: Duration,
    ratios: &[f64],
) -> String {
    let per_second = |time: Duration| chunks as f64 / time.as_secs_f64();
    let manifest = embedder.manifest();
    let mut out = String::from("## Ingest throughput\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench ingest` on {} cores ({}), model `{}` ({} dims), {} documents of {} \
         fortunes ({bytes} bytes of text/plain) chunked by hearth's defaults into {chunks} chunks ({tokens} tokens), \
         {} uploads in flight, {} ingest workers; {} runs, each measuring both arms back to back; medians.\n\n",
        common::cores(),
        common::cpu_name(),
        common::model_name(&args.common.model_dir),
        manifest.dims,
        args.documents,
        args.fortunes_per_document,
        args.in_flight,
        args.workers
            .map_or_else(|| "hearthd's default number of".to_owned(), |n| n.to_string()),
        args.runs,
    ));
    out.push_str("| arm | chunks/s | seconds |\n|---|---:|---:|\n");
    out.push_str(&format!(
        "| end to end: HTTP upload → blob → queue → extract → chunk → embed → PostgreSQL | {:.1} | {:.2} |\n",
        per_second(end_to_end),
        end_to_end.as_secs_f64()
    ));
    out.push_str(&format!(
        "| embedder alone, the same chunks as one request | {:.1} | {:.2} |\n",
        per_second(alone),
        alone.as_secs_f64()
    ));
    out.push_str(&format!(
        "\n| ratio | value | goal |\n|---|---:|---:|\n| end to end ÷ embedder alone (median of the runs' ratios; \
         range {:.3}–{:.3}) | {:.3} | ≥ 0.9 |\n",
        ratios[0],
        ratios[ratios.len() - 1],
        ratios[ratios.len() / 2],
    ));
    out
}
