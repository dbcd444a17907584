//! `hearth ingest`: upload files and directories, skipping what the server already has (by sha256), with a progress
//! bar. Interrupted runs resume by running them again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use globset::{Glob, GlobSet, GlobSetBuilder};
use hearth_core::extract::ContentType;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct IngestOptions {
    pub paths: Vec<PathBuf>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub concurrency: usize,
    /// Wait until every uploaded document is processed, and report failures.
    pub wait: bool,
}

#[derive(Debug, Default)]
struct Tally {
    uploaded: usize,
    skipped: usize,
    unsupported: usize,
    failed: Vec<String>,
    ids: Vec<String>,
}

fn globs(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern).with_context(|| format!("invalid glob '{pattern}'"))?);
    }
    Ok(Some(builder.build()?))
}

/// Every file under the given paths that passes the globs, in a stable order.
fn collect(options: &IngestOptions) -> Result<Vec<PathBuf>> {
    let include = globs(&options.include)?;
    let exclude = globs(&options.exclude)?;
    let mut files = Vec::new();
    for root in &options.paths {
        if !root.exists() {
            bail!("{} does not exist", root.display());
        }
        for entry in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.with_context(|| format!("walking {}", root.display()))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap_or(path);
            if include
                .as_ref()
                .is_some_and(|set| !set.is_match(name) && !set.is_match(path))
            {
                continue;
            }
            if exclude
                .as_ref()
                .is_some_and(|set| set.is_match(name) || set.is_match(path))
            {
                continue;
            }
            files.push(path.to_owned());
        }
    }
    Ok(files)
}

pub async fn run(client: &reqwest::Client, base: &str, options: IngestOptions) -> Result<bool> {
    let files = collect(&options)?;
    if files.is_empty() {
        bail!("no files to ingest under the given paths (check --include/--exclude)");
    }
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for path in files {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let client = client.clone();
        let base = base.to_owned();
        tasks.spawn(async move {
            let outcome = ingest_one(&client, &base, &path).await;
            drop(permit);
            (path, outcome)
        });
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let (path, outcome) = joined.context("an upload task crashed")?;
        match outcome {
            Ok(One::Uploaded(id)) => {
                tally.uploaded += 1;
                tally.ids.push(id);
            }
            Ok(One::Skipped) => tally.skipped += 1,
            Ok(One::Unsupported) => tally.unsupported += 1,
            Err(error) => tally.failed.push(format!("{}: {error:#}", path.display())),
        }
        bar.inc(1);
        bar.set_message(format!("{} new, {} already there", tally.uploaded, tally.skipped));
    }
    bar.finish();
    println!(
        "{} uploaded, {} already ingested (skipped), {} of an unsupported type, {} failed",
        tally.uploaded,
        tally.skipped,
        tally.unsupported,
        tally.failed.len()
    );
    for failure in &tally.failed {
        println!("  failed: {failure}");
    }
    let mut ok = tally.failed.is_empty();
    if options.wait && !tally.ids.is_empty() {
        ok &= wait_processed(client, base, &tally.ids).await?;
    }
    Ok(ok)
}

enum One {
    Uploaded(String),
    Skipped,
    Unsupported,
}

async fn ingest_one(client: &reqwest::Client, base: &str, path: &Path) -> Result<One> {
    let Some(content_type) = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(ContentType::from_extension)
    else {
        return Ok(One::Unsupported);
    };
    let bytes = tokio::fs::read(path).await.context("cannot read the file")?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let existing: Value = client
        .get(format!("{base}/v1/documents"))
        .query(&[("content_sha256", sha256.as_str()), ("limit", "1")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if existing["documents"]
        .as_array()
        .is_some_and(|docs| !docs.is_empty())
    {
        return Ok(One::Skipped);
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let title = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let metadata = json!({ "path": absolute.display().to_string() }).to_string();
    let external_id = format!("file:{}", absolute.display());
    let response = client
        .post(format!("{base}/v1/documents"))
        .query(&[
            ("title", title.as_str()),
            ("external_id", external_id.as_str()),
            ("metadata", metadata.as_str()),
        ])
        .header("content-type", content_type.mime())
        .body(bytes)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {}", body["message"].as_str().unwrap_or("no message"));
    }
    Ok(One::Uploaded(body["id"].as_str().unwrap_or_default().to_owned()))
}

async fn wait_processed(client: &reqwest::Client, base: &str, ids: &[String]) -> Result<bool> {
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} processed {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut ok = true;
    for id in ids {
        loop {
            let document: Value = client
                .get(format!("{base}/v1/documents/{id}"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            match document["status"].as_str() {
                Some("ready") => break,
                Some("failed") => {
                    ok = false;
                    bar.println(format!(
                        "failed: {} ({})",
                        document["title"].as_str().unwrap_or(id),
                        document["error"].as_str().unwrap_or("no reason given")
                    ));
                    break;
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        bar.inc(1);
    }
    bar.finish();
    Ok(ok)
}
