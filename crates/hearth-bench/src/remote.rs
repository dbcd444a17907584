//! `hearth-bench remote`: ingest throughput of a small box (one onnxruntime thread, a stand-in for a Pi) that
//! embeds on its own model, against the same box sending its ingest to a second hearthd with more threads (the
//! stand-in for the workstation) through `embedding.remote`. Both arms in each run, back to back, on the same
//! documents; the ratio is what lending the bigger machine's embedder is worth, HTTP between them included.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hearth_testkit::{TestHearthd, TestPostgres};

use crate::common::{self, Common, median};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 60)]
    documents: usize,
    #[arg(long, default_value_t = 30)]
    fortunes_per_document: usize,
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// onnxruntime threads of the small box.
    #[arg(long, default_value_t = 1)]
    small_threads: usize,
    /// onnxruntime threads of the remote (0: one per core).
    #[arg(long, default_value_t = 0)]
    remote_threads: usize,
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
        bail!("the fortunes make only {} documents", documents.len());
    }
    println!(
        "bench remote: {} documents, the small box on {} thread(s), the remote on {}, {} runs",
        documents.len(),
        args.small_threads,
        threads_label(args.remote_threads),
        args.runs
    );
    let postgres = TestPostgres::start()?;
    let runtime = common::runtime()?;
    let remote_threads = args.remote_threads.to_string();
    let remote = args.common.start_hearthd(
        &postgres.create_database()?,
        &[
            ("HEARTH_EMBEDDING__INTRA_THREADS", remote_threads.as_str()),
            // The small box's requests are all this one serves.
            ("HEARTH_INGEST__WORKERS", "0"),
        ],
    )?;
    runtime.block_on(common::wait_ready(&reqwest::Client::new(), &remote))?;
    let (mut local_times, mut remote_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunks = 0.0;
    for run in 1..=args.runs {
        let (local, local_chunks) = runtime.block_on(ingest_once(args, &postgres, &documents, None))?;
        let (remoted, remote_chunks) =
            runtime.block_on(ingest_once(args, &postgres, &documents, Some(&remote)))?;
        if local_chunks != remote_chunks {
            bail!("the arms embedded {local_chunks} and {remote_chunks} chunks");
        }
        chunks = local_chunks;
        let ratio = local.as_secs_f64() / remoted.as_secs_f64();
        println!(
            "bench remote: run {run}: {chunks} chunks in {:.2}s locally, {:.2}s with the remote embedder: {ratio:.2}×",
            local.as_secs_f64(),
            remoted.as_secs_f64()
        );
        local_times.push(local);
        remote_times.push(remoted);
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(report(
        args,
        chunks,
        median(&local_times),
        median(&remote_times),
        &ratios,
    ))
}

fn threads_label(threads: usize) -> String {
    if threads == 0 {
        format!("{} (one per core)", common::cores())
    } else {
        threads.to_string()
    }
}

/// One arm on a fresh database: the small box ingests every document, embedding locally or on `remote`; returns
/// the time until the queue is empty and the chunks embedded (checked to have gone where the arm says).
async fn ingest_once(
    args: &Args,
    postgres: &TestPostgres,
    documents: &[String],
    remote: Option<&TestHearthd>,
) -> Result<(Duration, f64)> {
    let threads = args.small_threads.to_string();
    let mut settings = vec![("HEARTH_EMBEDDING__INTRA_THREADS", threads.as_str())];
    if let Some(remote) = remote {
        settings.push(("HEARTH_EMBEDDING__REMOTE__URL", remote.url.as_str()));
        settings.push(("HEARTH_EMBEDDING__REMOTE__CHECK_SECONDS", "1"));
    }
    let small = args
        .common
        .start_hearthd(&postgres.create_database()?, &settings)?;
    let client = reqwest::Client::new();
    common::wait_ready(&client, &small).await?;
    if remote.is_some() {
        wait_for_remote(&client, &small).await?;
    }
    let started = Instant::now();
    common::upload_all(&client, &small, documents, "fortunes", args.in_flight).await?;
    common::wait_for_empty_queue(&client, &small, Duration::from_secs(1800)).await?;
    let elapsed = started.elapsed();
    let metrics = client
        .get(format!("{}/metrics", small.url))
        .send()
        .await?
        .text()
        .await?;
    let (local, remoted) = (backend(&metrics, "local"), backend(&metrics, "remote"));
    let (expected, other) = if remote.is_some() {
        (remoted, local)
    } else {
        (local, remoted)
    };
    if expected == 0.0 || other != 0.0 {
        bail!("the arm embedded {local} chunks locally and {remoted} remotely");
    }
    Ok((elapsed, expected))
}

/// Waits until the small box reports the remote embedder ready (same space, answering).
async fn wait_for_remote(client: &reqwest::Client, small: &TestHearthd) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let readiness: serde_json::Value = client
            .get(format!("{}/readyz", small.url))
            .send()
            .await?
            .json()
            .await?;
        if readiness["remote_embedding"]["status"] == "ready" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the remote embedder never became ready: {}",
                readiness["remote_embedding"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn backend(metrics: &str, backend: &str) -> f64 {
    let labels = format!("backend=\"{backend}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with("hearth_embed_backend_inputs_total{"))
        .filter(|line| line.contains(&labels) && line.contains("class=\"ingest\""))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn report(args: &Args, chunks: f64, local: Duration, remote: Duration, ratios: &[f64]) -> String {
    let per_second = |time: Duration| chunks / time.as_secs_f64();
    let mut out = String::from("## Remote embedding\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench remote` on {} cores ({}), model `{}`: a small box (hearthd with {} \
         onnxruntime thread(s), standing in for a Pi) ingests {} documents of {} fortunes ({chunks} chunks) with \
         {} uploads in flight, once embedding on its own model and once with `embedding.remote` pointing at a \
         second hearthd on the same machine with {} threads (standing in for the workstation); {} runs, each \
         measuring both arms back to back on fresh databases; medians. Both processes share this machine's \
         cores, so the figure understates a real workstation's GPU: it measures the path (batches over HTTP, \
         base64 vectors, the same-space check), not the hardware.\n\n",
        common::cores(),
        common::cpu_name(),
        common::model_name(&args.common.model_dir),
        args.small_threads,
        args.documents,
        args.fortunes_per_document,
        args.in_flight,
        threads_label(args.remote_threads),
        args.runs,
    ));
    out.push_str("| arm | chunks/s | seconds |\n|---|---:|---:|\n");
    out.push_str(&format!(
        "| the small box's own model | {:.1} | {:.2} |\n| the remote hearthd's model, over HTTP | {:.1} | {:.2} |\n",
        per_second(local),
        local.as_secs_f64(),
        per_second(remote),
        remote.as_secs_f64()
    ));
    out.push_str(&format!(
        "\n| ratio | value | goal |\n|---|---:|---:|\n| remote ÷ local throughput (median of the runs' ratios; range \
         {:.2}–{:.2}) | {:.2} | > 1 |\n",
        ratios[0],
        ratios[ratios.len() - 1],
        ratios[ratios.len() / 2],
    ));
    out
}
