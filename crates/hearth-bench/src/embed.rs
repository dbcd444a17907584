//! `hearth-bench embed`: throughput of hearth's embedding paths against the best raw onnxruntime loop, measured in
//! one run on the same model file, threads and inputs.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_core::embed::{
    EmbedMetrics, EmbedRequest, Embedder, EmbedderConfig, InputKind, Priority, onnxruntime_environment,
};
use hearth_testkit::TestHearthd;
use ndarray::Array2;
use ort::session::Session;
use ort::value::Tensor;
use serde_json::json;

use crate::common::{self, Common, median, token_count};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// A Python with fastembed and onnxruntime (the bench requirements).
    #[arg(long)]
    python: PathBuf,
    #[arg(long, default_value_t = 2000)]
    sentences: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// onnxruntime intra-op threads for every arm.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Inputs per HTTP request for the hearthd arm.
    #[arg(long, default_value_t = 128)]
    request_inputs: usize,
    /// HTTP requests in flight for the hearthd arm: a bulk client keeps several going.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Which arms to run (a raw, b engine, c HTTP, d Python); the report needs all four.
    #[arg(long, default_value = "abcd")]
    arms: String,
}

/// The same token budget the engine uses by default, so the raw loop batches like the engine can.
const MAX_BATCH_TOKENS: usize = 8192;
const MAX_BATCH_INPUTS: usize = 64;
const MAX_TOKENS: usize = 256;

pub fn run(args: &Args) -> Result<Option<String>> {
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let tokenizer = common::tokenizer(&args.common.model_dir)?;
    let sentences = corpus(&tokenizer, args.sentences)?;
    let tokens: usize = sentences.iter().map(|s| token_count(&tokenizer, s)).sum();
    println!(
        "bench: {} sentences, {tokens} tokens (mean {:.1}), {threads} threads, {} runs per arm",
        sentences.len(),
        tokens as f64 / sentences.len() as f64,
        args.runs
    );

    let arm = |name: char| args.arms.contains(name);
    let zero = Duration::ZERO;
    let raw = if arm('a') {
        median(&common::measure(args.runs, || {
            raw_onnxruntime(args, &tokenizer, &sentences, threads)
        })?)
    } else {
        zero
    };
    println!(
        "bench: (a) raw onnxruntime {}",
        rate(tokens, sentences.len(), raw)
    );
    let engine = if arm('b') {
        median(&common::measure(args.runs, || {
            in_process(args, &sentences, threads)
        })?)
    } else {
        zero
    };
    println!(
        "bench: (b) engine in-process {}",
        rate(tokens, sentences.len(), engine)
    );
    let http = if arm('c') {
        median(&over_http(args, &sentences, threads)?)
    } else {
        zero
    };
    println!(
        "bench: (c) hearthd over HTTP {}",
        rate(tokens, sentences.len(), http)
    );
    let python = if arm('d') {
        median(&python_fastembed(args, &sentences, threads)?)
    } else {
        zero
    };
    println!(
        "bench: (d) Python fastembed {}",
        rate(tokens, sentences.len(), python)
    );
    if args.arms != "abcd" {
        return Ok(None);
    }

    let report = report(
        args,
        threads,
        sentences.len(),
        tokens,
        [raw, engine, http, python],
    );
    Ok(Some(report))
}

/// Real English texts of varied length, one to a few sentences each: the prose files of Debian's `fortunes`
/// package (quotations, jokes, definitions), deduplicated, at most 256 tokens each, in a fixed order.
fn corpus(tokenizer: &tokenizers::Tokenizer, wanted: usize) -> Result<Vec<String>> {
    let texts: Vec<String> = common::fortunes()?
        .into_iter()
        .filter(|text| token_count(tokenizer, text) <= MAX_TOKENS)
        .collect();
    if texts.len() < wanted {
        bail!(
            "the corpus has {} texts, fewer than the {wanted} asked for",
            texts.len()
        );
    }
    // Spread the pick over every file, so length and topic vary along the list.
    let step = texts.len() / wanted;
    Ok(texts.into_iter().step_by(step.max(1)).take(wanted).collect())
}

fn rate(tokens: usize, texts: usize, time: Duration) -> String {
    format!(
        "{:.0} tokens/s, {:.1} texts/s ({:.2}s)",
        tokens as f64 / time.as_secs_f64(),
        texts as f64 / time.as_secs_f64(),
        time.as_secs_f64()
    )
}

/// (a) The practical limit: one session, inputs sorted by length, batches filled to the same token budget,
/// padded to the batch's longest, mean pooling and normalization. Session creation is outside the timing.
fn raw_onnxruntime(
    args: &Args,
    tokenizer: &tokenizers::Tokenizer,
    sentences: &[String],
    threads: usize,
) -> Result<Duration> {
    let environment = onnxruntime_environment(&args.common.onnxruntime)?;
    // The same session options as hearth's engine: idle workers do not spin (measured no slower here).
    let mut session = Session::builder(&environment)?
        .with_intra_threads(threads)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_config_entry("session.intra_op.allow_spinning", "0")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .commit_from_file(args.common.model_dir.join("model.onnx"))?;
    let started = Instant::now();
    let mut encodings: Vec<tokenizers::Encoding> = tokenizer
        .encode_batch(sentences.to_vec(), true)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    encodings.sort_by_key(tokenizers::Encoding::len);
    let mut start = 0;
    let mut vectors = 0;
    while start < encodings.len() {
        let mut end = start + 1;
        while end < encodings.len()
            && end - start < MAX_BATCH_INPUTS
            && encodings[end].len() * (end - start + 1) <= MAX_BATCH_TOKENS
        {
            end += 1;
        }
        let batch = &encodings[start..end];
        let longest = batch.iter().map(tokenizers::Encoding::len).max().unwrap_or(0);
        let mut ids = Array2::<i64>::zeros((batch.len(), longest));
        let mut mask = Array2::<i64>::zeros((batch.len(), longest));
        let types = Array2::<i64>::zeros((batch.len(), longest));
        for (row, encoding) in batch.iter().enumerate() {
            for (col, &id) in encoding.get_ids().iter().enumerate() {
                ids[[row, col]] = i64::from(id);
                mask[[row, col]] = 1;
            }
        }
        let outputs = session.run(ort::inputs![
            "input_ids" => Tensor::from_array(ids)?,
            "attention_mask" => Tensor::from_array(mask.clone())?,
            "token_type_ids" => Tensor::from_array(types)?,
        ])?;
        let (shape, hidden) = outputs[0].try_extract_tensor::<f32>()?;
        let (sequence, dims) = (usize::try_from(shape[1])?, usize::try_from(shape[2])?);
        for (row, encoding) in batch.iter().enumerate() {
            let mut pooled = vec![0f32; dims];
            for t in 0..encoding.len() {
                let token = &hidden[(row * sequence + t) * dims..][..dims];
                pooled.iter_mut().zip(token).for_each(|(sum, x)| *sum += x);
            }
            let norm = pooled.iter().map(|x| x * x).sum::<f32>().sqrt();
            std::hint::black_box(pooled.iter().map(|x| x / norm).sum::<f32>());
            vectors += 1;
        }
        start = end;
    }
    let elapsed = started.elapsed();
    if vectors != sentences.len() {
        bail!(
            "raw loop produced {vectors} vectors for {} inputs",
            sentences.len()
        );
    }
    Ok(elapsed)
}

fn engine_config(args: &Args, threads: usize) -> EmbedderConfig {
    let mut config = EmbedderConfig::new(args.common.model_dir.clone());
    config.onnxruntime = Some(args.common.onnxruntime.clone());
    config.intra_threads = threads;
    config.max_batch_tokens = MAX_BATCH_TOKENS;
    config.max_batch_inputs = MAX_BATCH_INPUTS;
    config.queue_capacity = sentences_capacity(args);
    config
}

fn sentences_capacity(args: &Args) -> usize {
    args.sentences.max(4096)
}

/// (b) hearth's engine in-process: the whole list as one ingest request, model loading outside the timing.
fn in_process(args: &Args, sentences: &[String], threads: usize) -> Result<Duration> {
    let embedder = Embedder::load(&engine_config(args, threads), EmbedMetrics::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let done = embedder
            .embed(EmbedRequest::new(
                sentences.to_vec(),
                InputKind::Document,
                Priority::Ingest,
            ))
            .await?;
        let elapsed = started.elapsed();
        if done.vectors.len() != sentences.len() {
            bail!("engine produced {} vectors", done.vectors.len());
        }
        Ok(elapsed)
    })
}

/// (c) hearthd over HTTP: `/v1/embeddings` with base64 output (what the official client asks for), several
/// requests in flight so the queue never runs dry.
fn over_http(args: &Args, sentences: &[String], threads: usize) -> Result<Vec<Duration>> {
    let threads_setting = threads.to_string();
    let capacity = sentences_capacity(args).to_string();
    let max_inputs = args.request_inputs.to_string();
    let hearthd = TestHearthd::start(
        &args.common.hearthd,
        "postgres:///unused?host=/nonexistent",
        &[
            (
                "HEARTH_EMBEDDING__MODEL_DIR",
                &args.common.model_dir.display().to_string(),
            ),
            (
                "HEARTH_EMBEDDING__ONNXRUNTIME",
                &args.common.onnxruntime.display().to_string(),
            ),
            ("HEARTH_EMBEDDING__INTRA_THREADS", &threads_setting),
            ("HEARTH_EMBEDDING__QUEUE_CAPACITY", &capacity),
            ("HEARTH_API__MAX_INPUTS_PER_REQUEST", &max_inputs),
            ("HEARTH_LOG", "warn"),
        ],
    )?;
    let runtime = common::runtime()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/v1/embeddings", hearthd.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let response = client.get(format!("{}/v1/models", hearthd.url)).send().await?;
            if response.status() == 200 {
                break;
            }
            if Instant::now() > deadline {
                bail!("hearthd never loaded the model:\n{}", hearthd.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let send = |chunk: Vec<String>| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let response = client
                    .post(url)
                    .json(&json!({ "input": chunk, "encoding_format": "base64" }))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!(
                        "hearthd answered {}: {}",
                        response.status(),
                        response.text().await?
                    );
                }
                let body: serde_json::Value = response.json().await?;
                Ok(body["data"].as_array().map_or(0, Vec::len))
            }
        };
        send(sentences[..64].to_vec()).await?;
        let mut times = Vec::new();
        for _ in 0..args.runs {
            let gate = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for chunk in sentences.chunks(args.request_inputs) {
                let permit = Arc::clone(&gate).acquire_owned().await?;
                let request = send(chunk.to_vec());
                tasks.push(tokio::spawn(async move {
                    let result = request.await;
                    drop(permit);
                    result
                }));
            }
            let mut vectors = 0;
            for task in tasks {
                vectors += task.await??;
            }
            times.push(started.elapsed());
            if vectors != sentences.len() {
                bail!(
                    "hearthd returned {vectors} vectors for {} inputs",
                    sentences.len()
                );
            }
        }
        Ok(times)
    })
}

const FASTEMBED_SCRIPT: &str = r#"
import json, sys, time
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType

model_dir, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
texts = json.load(sys.stdin)
TextEmbedding.add_custom_model(
    model="hearth/bench-model", pooling=PoolingType.MEAN, normalization=True,
    sources=ModelSource(hf="hearth/bench-model"), dim=384, model_file="model.onnx")
model = TextEmbedding(model_name="hearth/bench-model", specific_model_path=model_dir, threads=threads)
assert len(list(model.embed(texts[:64]))) == 64
times = []
for _ in range(runs):
    started = time.perf_counter()
    vectors = list(model.embed(texts))
    times.append(time.perf_counter() - started)
    assert len(vectors) == len(texts)
print(json.dumps(times))
"#;

/// (d) Python fastembed on the same ONNX file, with its defaults (batch size 256, inputs in the given order).
fn python_fastembed(args: &Args, sentences: &[String], threads: usize) -> Result<Vec<Duration>> {
    use std::io::Write;
    let mut child = Command::new(&args.python)
        .args(["-c", FASTEMBED_SCRIPT])
        .arg(&args.common.model_dir)
        .args([threads.to_string(), args.runs.to_string()])
        .env("HF_HUB_OFFLINE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting Python")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(serde_json::to_string(sentences)?.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("Python fastembed failed ({})", output.status);
    }
    let times: Vec<f64> = serde_json::from_slice(&output.stdout).context("Python printed no timings")?;
    Ok(times.into_iter().map(Duration::from_secs_f64).collect())
}

fn report(args: &Args, threads: usize, texts: usize, tokens: usize, times: [Duration; 4]) -> String {
    let [raw, engine, http, python] = times;
    let tps = |t: Duration| tokens as f64 / t.as_secs_f64();
    let xps = |t: Duration| texts as f64 / t.as_secs_f64();
    let cpu = common::cpu_name();
    let row = |name: &str, t: Duration| {
        format!(
            "| {name} | {:.0} | {:.1} | {:.2} |\n",
            tps(t),
            xps(t),
            t.as_secs_f64()
        )
    };
    let mut out = String::new();
    out.push_str("## Embedding throughput\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench embed` on {} cores ({cpu}), {threads} onnxruntime intra-op threads, model \
         `{}`, {texts} texts ({tokens} tokens) from Debian's `fortunes`, median of {} runs per arm, \
         all arms in one run.\n\n",
        std::thread::available_parallelism().map_or(1, usize::from),
        args.common.model_dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        args.runs
    ));
    out.push_str("| arm | tokens/s | texts/s | seconds |\n|---|---:|---:|---:|\n");
    out.push_str(&row(
        "(a) raw onnxruntime loop, length-sorted, same token budget",
        raw,
    ));
    out.push_str(&row("(b) hearth engine in-process", engine));
    out.push_str(&row(
        &format!(
            "(c) hearthd `/v1/embeddings`, {} inputs/request, {} in flight",
            args.request_inputs, args.in_flight
        ),
        http,
    ));
    out.push_str(&row("(d) Python fastembed 0.9.1, defaults", python));
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    out.push_str(&format!(
        "\n| ratio | value | goal |\n|---|---:|---:|\n| b/a | {:.3} | |\n| c/a | {:.3} | ≥ 0.95 |\n| c/d | {:.3} | ≥ 1.0 \
         |\n",
        ratio(engine, raw),
        ratio(http, raw),
        ratio(http, python)
    ));
    out
}
