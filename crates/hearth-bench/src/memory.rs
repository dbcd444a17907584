//! `hearth-bench memory`: hearthd's resident memory through a day's work (loaded, ingesting, 32 searches at once,
//! at rest again) with the default and the Pi profile's settings, then at rest before and after a hostile sweep
//! (large and refused uploads, large documents, embedding batches at the token limit, floods of bad requests).
//! The sweep's baseline is the same process at rest before it, so the ratio is what the sweep leaves behind.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_testkit::{TestHearthd, TestPostgres};
use reqwest::{Client, Method, StatusCode};
use serde_json::json;

use crate::common::{self, Common};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Bytes of each large upload (hearthd's default `ingest.max_document_bytes` is 64 MiB).
    #[arg(long, default_value_t = 48 * 1024 * 1024)]
    large_upload_bytes: usize,
    /// Large uploads refused per round (two rounds); half as many PDFs are accepted alongside.
    #[arg(long, default_value_t = 6)]
    in_flight: usize,
    /// Documents of about 1 MiB of prose each, extracted, chunked and embedded (about 1,300 chunks each).
    #[arg(long, default_value_t = 1)]
    large_documents: usize,
    /// How long hearthd rests before each reading.
    #[arg(long, default_value_t = 15)]
    rest_seconds: u64,
}

/// A reading of /proc/PID/status.
#[derive(Debug, Clone, Copy)]
struct Memory {
    resident_mib: f64,
    peak_mib: f64,
}

fn read_memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("hearthd (pid {pid}) is gone"))?;
    let kib = |field: &str| -> Result<f64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))
    };
    Ok(Memory {
        resident_mib: kib("VmRSS:")? / 1024.0,
        peak_mib: kib("VmHWM:")? / 1024.0,
    })
}

/// The Pi profile's embedding and ingest settings (modules/profiles/pi.nix), on this machine's cores.
const PI_SETTINGS: [(&str, &str); 4] = [
    ("HEARTH_EMBEDDING__KEEP_QUANTIZED_WEIGHTS", "true"),
    ("HEARTH_EMBEDDING__QUERY_LANE_THREADS", "1"),
    ("HEARTH_EMBEDDING__MAX_BATCH_TOKENS", "2048"),
    ("HEARTH_INGEST__WORKERS", "1"),
];

/// Resident memory through a day's work: loaded, ingesting, serving many searches, and at rest again.
#[derive(Debug, Clone, Copy)]
struct Workload {
    startup: Startup,
    loaded: Memory,
    /// VmHWM while 120 documents are ingested.
    ingest_peak_mib: f64,
    /// VmHWM while 32 searches run at once, repeatedly.
    search_peak_mib: f64,
    after: Memory,
}

pub fn run(args: &Args) -> Result<String> {
    let postgres = TestPostgres::start()?;
    let runtime = common::runtime()?;
    let client = Client::new();
    let rest = Duration::from_secs(args.rest_seconds);

    println!("bench memory: the Pi profile's settings, through an ingest and concurrent searches");
    let pi_url = postgres.create_database()?;
    let started = Instant::now();
    let pi = args.common.start_hearthd(&pi_url, &PI_SETTINGS)?;
    let pi_workload = runtime.block_on(workload(&client, &pi, rest, started))?;
    drop(pi);

    println!("bench memory: the default settings, through an ingest and concurrent searches");
    let url = postgres.create_database()?;
    let started = Instant::now();
    let hearthd = args.common.start_hearthd(&url, &[])?;
    let pid = hearthd.pid();
    let default_workload = runtime.block_on(workload(&client, &hearthd, rest, started))?;
    let before = default_workload.after;

    let started = Instant::now();
    let phases = runtime.block_on(sweep(args, &client, &hearthd))?;
    let sweep_time = started.elapsed();
    let during = read_memory(pid)?;
    std::thread::sleep(rest);
    let after = read_memory(pid)?;
    if hearthd.pid() != pid || read_memory(pid).is_err() {
        bail!("hearthd did not survive the sweep:\n{}", hearthd.log_text());
    }
    println!(
        "bench memory: at rest after the sweep: {:.0} MiB (peak {:.0} MiB)",
        after.resident_mib, during.peak_mib
    );
    let mut out = report_workloads(args, &default_workload, &pi_workload);
    out.push_str(&report(args, before, &phases, during, after, sweep_time));
    Ok(out)
}

/// Forgets the process's peak resident set, so the next VmHWM is the peak of what follows.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").with_context(|| {
        format!("resetting the peak resident set of pid {pid} (needs the same user or root)")
    })
}

/// From spawning hearthd on a fresh database to its first `/healthz` 200 (it serves) and `/readyz` 200
/// (migrated, model loaded).
#[derive(Debug, Clone, Copy)]
struct Startup {
    healthz: Duration,
    ready: Duration,
}

async fn measure_startup(client: &Client, hearthd: &TestHearthd, started: Instant) -> Result<Startup> {
    common::wait_for_ok(client, hearthd, "/healthz").await?;
    let healthz = started.elapsed();
    common::wait_for_ok(client, hearthd, "/readyz").await?;
    let ready = started.elapsed();
    println!(
        "bench memory:   /healthz after {:.2} s, ready after {:.2} s",
        healthz.as_secs_f64(),
        ready.as_secs_f64()
    );
    Ok(Startup { healthz, ready })
}

async fn workload(
    client: &Client,
    hearthd: &TestHearthd,
    rest: Duration,
    started: Instant,
) -> Result<Workload> {
    let startup = measure_startup(client, hearthd, started).await?;
    let pid = hearthd.pid();
    tokio::time::sleep(rest).await;
    let loaded = read_memory(pid)?;
    println!("bench memory:   loaded, at rest: {:.0} MiB", loaded.resident_mib);
    let fortunes = common::fortunes()?;
    let documents: Vec<String> = fortunes
        .chunks(30)
        .take(120)
        .map(|group| group.join("\n\n"))
        .collect();
    reset_peak(pid)?;
    common::upload_all(client, hearthd, &documents, "ingest", 4).await?;
    drain(client, hearthd).await?;
    let ingest_peak_mib = read_memory(pid)?.peak_mib;
    println!(
        "bench memory:   peak during the ingest of {} documents: {ingest_peak_mib:.0} MiB",
        documents.len()
    );
    reset_peak(pid)?;
    for round in 0..5 {
        let mut searches = tokio::task::JoinSet::new();
        for i in 0..32 {
            let (client, url) = (client.clone(), hearthd.url.clone());
            let query = fortunes[(round * 32 + i) * 7 % fortunes.len()].clone();
            searches.spawn(async move {
                let response = client
                    .post(format!("{url}/v1/search"))
                    .json(&json!({ "query": query }))
                    .send()
                    .await?;
                expect(response, StatusCode::OK).await
            });
        }
        while let Some(done) = searches.join_next().await {
            done??;
        }
    }
    let search_peak_mib = read_memory(pid)?.peak_mib;
    println!("bench memory:   peak during 32 concurrent searches: {search_peak_mib:.0} MiB");
    tokio::time::sleep(rest).await;
    let after = read_memory(pid)?;
    println!("bench memory:   at rest again: {:.0} MiB", after.resident_mib);
    Ok(Workload {
        startup,
        loaded,
        ingest_peak_mib,
        search_peak_mib,
        after,
    })
}

/// The workload table, and nomic-embed-text-v1.5 quantized projected from the Pi profile's figures.
fn report_workloads(args: &Args, default: &Workload, pi: &Workload) -> String {
    let mut out = String::from("## Memory through ingest and search\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench memory` on {} cores ({}), model `{}`: hearthd's resident set (`VmRSS`, \
         and `VmHWM` reset before each phase for its peak) with its default settings and with the Pi profile's \
         (`keep_quantized_weights`, query lane of 1 thread, batches of 2,048 tokens, 1 ingest worker), each on a \
         fresh database: loaded and at rest for {} s, while 120 documents of 30 fortunes are ingested (4 uploads \
         in flight), while 5 rounds of 32 hybrid searches run at once, and at rest again.\n\n",
        common::cores(),
        common::cpu_name(),
        common::model_name(&args.common.model_dir),
        args.rest_seconds,
    ));
    out.push_str("| reading | defaults, MiB | Pi profile, MiB |\n|---|---:|---:|\n");
    for (name, d, p) in [
        (
            "loaded, at rest",
            default.loaded.resident_mib,
            pi.loaded.resident_mib,
        ),
        (
            "peak during the ingest",
            default.ingest_peak_mib,
            pi.ingest_peak_mib,
        ),
        (
            "peak during 32 concurrent searches",
            default.search_peak_mib,
            pi.search_peak_mib,
        ),
        (
            "at rest after both",
            default.after.resident_mib,
            pi.after.resident_mib,
        ),
    ] {
        out.push_str(&format!("| {name} | {d:.0} | {p:.0} |\n"));
    }
    let peak = |w: &Workload| w.ingest_peak_mib.max(w.search_peak_mib);
    // Two sessions keep int8 weights; the model file is the weights. The activations scale with the hidden size
    // (768 against 384) at the same batch shape.
    let projected = peak(pi)
        + 2.0 * (NOMIC_QUANTIZED_MIB - TEST_MODEL_MIB)
        + (peak(pi) - pi.loaded.resident_mib) * (768.0 / 384.0 - 1.0);
    out.push_str(&format!(
        "\n| goal | value | target |\n|---|---:|---:|\n\
         | peak, test model, Pi profile | {:.0} MiB | ≤ 400 MiB |\n\
         | peak, test model, defaults | {:.0} MiB | |\n\
         | at rest after ÷ loaded (Pi profile / defaults) | {:.2} / {:.2} | ≤ 1.10 |\n\
         | peak projected for nomic-embed-text-v1.5 quantized, Pi profile | {projected:.0} MiB | ≤ 700 MiB |\n\
         | start to `/healthz` 200 (Pi profile / defaults) | {:.2} / {:.2} s | < 1 s |\n\
         | start to ready, fresh database (Pi profile / defaults) | {:.2} / {:.2} s | < 15 s |\n\n\
         The projection adds to the Pi profile's measured peak what the larger model changes: two sessions' int8 \
         weights ({NOMIC_QUANTIZED_MIB:.0} MiB of model file each instead of {TEST_MODEL_MIB:.0}) and the \
         activations above rest scaled by the hidden size (768 against 384).\n\n",
        peak(pi),
        peak(default),
        pi.after.resident_mib / pi.loaded.resident_mib,
        default.after.resident_mib / default.loaded.resident_mib,
        pi.startup.healthz.as_secs_f64(),
        default.startup.healthz.as_secs_f64(),
        pi.startup.ready.as_secs_f64(),
        default.startup.ready.as_secs_f64(),
    ));
    out
}

/// nomic-embed-text-v1.5's `onnx/model_quantized.onnx` (137 M parameters, one byte each) and the test model's file.
const NOMIC_QUANTIZED_MIB: f64 = 131.0;
const TEST_MODEL_MIB: f64 = 21.9;

/// Every phase of the sweep, each announced; fails on any 5xx or unexpected answer. Returns the resident set
/// right after each phase, to tell which one leaves memory behind.
async fn sweep(args: &Args, client: &Client, hearthd: &TestHearthd) -> Result<Vec<(&'static str, f64)>> {
    let mut after = Vec::new();
    let mut note = |phase: &'static str| -> Result<()> {
        let memory = read_memory(hearthd.pid())?;
        println!("bench memory:   {phase}: {:.0} MiB", memory.resident_mib);
        after.push((phase, memory.resident_mib));
        Ok(())
    };
    println!(
        "bench memory: sweep 1/4: {} refused and {} accepted uploads of {} MiB",
        args.in_flight * 2,
        args.in_flight,
        args.large_upload_bytes >> 20,
    );
    large_uploads(args, client, hearthd).await?;
    drain(client, hearthd).await?;
    note("large uploads")?;
    println!(
        "bench memory: sweep 2/4: {} documents of 1 MiB of prose, extracted, chunked and embedded",
        args.large_documents
    );
    large_documents(args, client, hearthd).await?;
    note("large documents")?;
    println!("bench memory: sweep 3/4: embedding batches at the token limit and long searches");
    embedding_batches(client, hearthd).await?;
    note("embedding batches and searches")?;
    println!("bench memory: sweep 4/4: a flood of unknown methods, paths, hosts and oversized queries");
    bad_requests(client, hearthd).await?;
    drain(client, hearthd).await?;
    note("bad requests")?;
    Ok(after)
}

/// Invalid UTF-8 at the very end (read, then refused with 422) and unreadable PDFs (stored, then failed by the
/// extraction sandbox): both hold the whole body in hearthd.
async fn large_uploads(args: &Args, client: &Client, hearthd: &TestHearthd) -> Result<()> {
    let mut refused = vec![b'a'; args.large_upload_bytes];
    if let Some(last) = refused.last_mut() {
        *last = 0xff;
    }
    let refused = bytes::Bytes::from(refused);
    for round in 0..2 {
        let mut uploads = tokio::task::JoinSet::new();
        for _ in 0..args.in_flight {
            let (client, url, body) = (client.clone(), hearthd.url.clone(), refused.clone());
            uploads.spawn(async move {
                upload(
                    &client,
                    &url,
                    "text/plain",
                    body,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            });
        }
        for i in 0..args.in_flight / 2 {
            let mut pdf = format!("%PDF-1.7\n% round {round} upload {i}\n").into_bytes();
            pdf.resize(args.large_upload_bytes, b'x');
            let (client, url) = (client.clone(), hearthd.url.clone());
            uploads.spawn(async move {
                upload(&client, &url, "application/pdf", pdf.into(), StatusCode::ACCEPTED).await
            });
        }
        while let Some(done) = uploads.join_next().await {
            done??;
        }
    }
    Ok(())
}

async fn large_documents(args: &Args, client: &Client, hearthd: &TestHearthd) -> Result<()> {
    let fortunes = common::fortunes()?;
    let mut documents = Vec::new();
    let mut next = fortunes.iter().cycle();
    for _ in 0..args.large_documents {
        let mut text = String::new();
        while text.len() < 1 << 20 {
            text.push_str(next.next().map_or("", String::as_str));
            text.push_str("\n\n");
        }
        documents.push(text);
    }
    common::upload_all(client, hearthd, &documents, "large", 2).await?;
    drain(client, hearthd).await
}

async fn embedding_batches(client: &Client, hearthd: &TestHearthd) -> Result<()> {
    let long = "the harbour wall holds against the winter tide ".repeat(60);
    for _ in 0..12 {
        let response = client
            .post(format!("{}/v1/embeddings", hearthd.url))
            .json(&json!({ "input": vec![long.as_str(); 32], "truncate": true }))
            .send()
            .await?;
        expect(response, StatusCode::OK).await?;
    }
    let query = "tide ".repeat(800);
    for _ in 0..50 {
        search(client, hearthd, &query).await?;
    }
    Ok(())
}

async fn bad_requests(client: &Client, hearthd: &TestHearthd) -> Result<()> {
    for i in 0..500 {
        let method = Method::from_bytes(format!("FROB{i}").as_bytes())?;
        let response = client
            .request(method, format!("{}/v1/no/such/route/{i}", hearthd.url))
            .send()
            .await?;
        if response.status().is_server_error() {
            bail!("request {i} answered {}", response.status());
        }
        let foreign = client
            .get(format!("{}/v1/documents", hearthd.url))
            .header("host", format!("rebind-{i}.example"))
            .send()
            .await?;
        expect(foreign, StatusCode::FORBIDDEN).await?;
    }
    let huge = "x".repeat(1 << 20);
    for _ in 0..20 {
        let response = client
            .post(format!("{}/v1/search", hearthd.url))
            .json(&json!({ "query": huge }))
            .send()
            .await?;
        expect(response, StatusCode::BAD_REQUEST).await?;
    }
    Ok(())
}

async fn upload(
    client: &Client,
    url: &str,
    content_type: &str,
    body: bytes::Bytes,
    expected: StatusCode,
) -> Result<()> {
    let response = client
        .post(format!("{url}/v1/documents"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    expect(response, expected).await
}

async fn search(client: &Client, hearthd: &TestHearthd, query: &str) -> Result<()> {
    let response = client
        .post(format!("{}/v1/search", hearthd.url))
        .json(&json!({ "query": query }))
        .send()
        .await?;
    expect(response, StatusCode::OK).await
}

async fn expect(response: reqwest::Response, expected: StatusCode) -> Result<()> {
    let status = response.status();
    if status != expected {
        bail!("expected {expected}, got {status}: {}", response.text().await?);
    }
    Ok(())
}

async fn drain(client: &Client, hearthd: &TestHearthd) -> Result<()> {
    common::wait_for_empty_queue(client, hearthd, Duration::from_secs(1800)).await
}

fn report(
    args: &Args,
    before: Memory,
    phases: &[(&str, f64)],
    during: Memory,
    after: Memory,
    sweep: Duration,
) -> String {
    let mut out = String::from("### At rest after a hostile sweep\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench memory` on {} cores ({}), model `{}`: hearthd's resident set \
         (`VmRSS`) after {} s at rest, first after the default settings' ingest and searches above, then after a \
         sweep of {:.0} s: {} uploads of {} MiB, up to {} at once ({} refused with 422, {} unreadable PDFs failed by the \
         extraction sandbox), {} documents of 1 MiB of prose ingested, 12 embedding batches of 32 inputs at the \
         token limit, 50 searches of 4,000 characters, 500 unknown methods and 500 foreign hosts, 20 queries \
         of 1 MiB. The baseline is the same process before the sweep.\n\n",
        common::cores(),
        common::cpu_name(),
        common::model_name(&args.common.model_dir),
        args.rest_seconds,
        sweep.as_secs_f64(),
        args.in_flight * 3,
        args.large_upload_bytes >> 20,
        args.in_flight + args.in_flight / 2,
        args.in_flight * 2,
        args.in_flight,
        args.large_documents,
    ));
    out.push_str("| reading | MiB |\n|---|---:|\n");
    out.push_str(&format!(
        "| at rest after the ingest and searches (baseline) | {:.0} |\n",
        before.resident_mib
    ));
    for (phase, resident) in phases {
        out.push_str(&format!("| right after the sweep's {phase} | {resident:.0} |\n"));
    }
    out.push_str(&format!(
        "| peak during the sweep (`VmHWM`) | {:.0} |\n| at rest after the sweep | {:.0} |\n",
        during.peak_mib, after.resident_mib
    ));
    out.push_str(&format!(
        "\n| ratio | value | goal |\n|---|---:|---:|\n| at rest after the sweep ÷ at rest before | {:.2} | ≤ 1.5 |\n",
        after.resident_mib / before.resident_mib
    ));
    out
}
