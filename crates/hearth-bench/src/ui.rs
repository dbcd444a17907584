//! `hearth-bench ui`: the web UI's Home page in Debian's Chromium — its weight, and its time to first render from
//! a release hearthd with a library in it, against the same bytes from a static file server in the same run. The
//! ratio is what rendering Home on the box (readiness probes, counts, disk usage, the template) costs over
//! sending a file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hearth_testkit::{TestPostgres, chromium, node_modules};
use serde_json::Value;

use crate::common::{self, Common};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Documents in the library while Home is measured.
    #[arg(long, default_value_t = 60)]
    documents: usize,
    /// Loads of each arm, interleaved.
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let modules = node_modules()?;
    let chromium = chromium()?;
    let secrets = tempfile::tempdir()?;
    let token_file = secrets.path().join("api-token");
    std::fs::write(&token_file, "bench-ui-token-0123456789abcdefghijklmnopqrstuvwxyz")?;
    std::fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o400))?;
    let postgres = TestPostgres::start()?;
    let url = postgres.create_database()?;
    let token_files = format!("[\"{}\"]", token_file.display());
    let hearthd = args
        .common
        .start_hearthd(&url, &[("HEARTH_AUTH__TOKEN_FILES", &token_files)])?;
    let fortunes = common::fortunes()?;
    let texts: Vec<String> = fortunes
        .chunks(20)
        .take(args.documents)
        .map(|g| g.join("\n\n"))
        .collect();
    let runtime = common::runtime()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        common::wait_ready(&client, &hearthd).await?;
        common::upload_all(&client, &hearthd, &texts, "fortunes", 4).await?;
        common::wait_for_empty_queue(&client, &hearthd, Duration::from_secs(600)).await
    })?;
    println!(
        "bench ui: {} documents ingested; {} loads of each arm",
        texts.len(),
        args.runs
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hearthd/tests/browser/bench.cjs");
    let output = Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("HEARTH_URL", &hearthd.url)
        .env("HEARTH_TOKEN_FILE", &token_file)
        .env("HEARTH_CHROMIUM", &chromium)
        .env("HEARTH_RUNS", args.runs.to_string())
        .output()
        .context("running node")?;
    if !output.status.success() {
        bail!(
            "the browser half failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    Ok(report(&result, texts.len(), args.runs))
}

fn median_ms(samples: &Value, field: &str) -> f64 {
    let mut values: Vec<f64> = samples
        .as_array()
        .map(|runs| runs.iter().filter_map(|run| run[field].as_f64()).collect())
        .unwrap_or_default();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(result: &Value, documents: usize, runs: usize) -> String {
    let weights = result["weights"].as_object().cloned().unwrap_or_default();
    let total: u64 = weights.values().filter_map(Value::as_u64).sum();
    let mut rows = String::new();
    for (path, bytes) in &weights {
        rows.push_str(&format!("| `{path}` | {} |\n", bytes.as_u64().unwrap_or(0)));
    }
    let (hearth_fcp, baseline_fcp) = (
        median_ms(&result["hearth"], "fcp"),
        median_ms(&result["baseline"], "fcp"),
    );
    let (hearth_ttfb, baseline_ttfb) = (
        median_ms(&result["hearth"], "ttfb"),
        median_ms(&result["baseline"], "ttfb"),
    );
    format!(
        "## Web UI: Home\n\n\
         {cpu}, {cores} cores; Debian Chromium, headless, 1280×800; a release hearthd with {documents} documents; \
         medians of {runs} loads of each arm, interleaved, assets cached as for a returning visitor.\n\n\
         | file | bytes |\n|---|---|\n{rows}| **total** | **{total}** |\n\n\
         | | hearthd | static copy (baseline) | hearthd / baseline |\n|---|---|---|---|\n\
         | first contentful paint | {hearth_fcp:.1} ms | {baseline_fcp:.1} ms | {:.2} |\n\
         | first byte | {hearth_ttfb:.1} ms | {baseline_ttfb:.1} ms | {:.2} |\n",
        hearth_fcp / baseline_fcp,
        hearth_ttfb / baseline_ttfb,
        cpu = common::cpu_name(),
        cores = common::cores(),
    )
}
