//! `hearth ingest`: upload files and directories, skipping what the server already has (by sha256), with a progress
//! bar. Interrupted runs resume by running them again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use globset::{Glob, GlobSet, GlobSetBuilder};
use hearth_api::ContentType;
use hearth_api::documents::{DocumentStatus, ListParams, UploadParams};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::client::Hearth;

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

pub async fn run(client: &Hearth, options: IngestOptions) -> Result<bool> {
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
        tasks.spawn(async move {
            let outcome = ingest_one(&client, &path).await;
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
        ok &= wait_processed(client, &tally.ids).await?;
    }
    Ok(ok)
}

enum One {
    Uploaded(String),
    Skipped,
    Unsupported,
}

async fn ingest_one(client: &Hearth, path: &Path) -> Result<One> {
    let Some(content_type) = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(ContentType::from_extension)
    else {
        return Ok(One::Unsupported);
    };
    let bytes = tokio::fs::read(path).await.context("cannot read the file")?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let existing = client
        .list(&ListParams {
            content_sha256: Some(sha256),
            limit: Some(1),
            ..ListParams::default()
        })
        .await?;
    if !existing.documents.is_empty() {
        return Ok(One::Skipped);
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let params = UploadParams {
        title: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        external_id: Some(format!("file:{}", absolute.display())),
        metadata: Some(json!({ "path": absolute.display().to_string() }).to_string()),
    };
    let uploaded = client.upload(bytes, content_type, &params).await?;
    Ok(One::Uploaded(uploaded.id.to_string()))
}

async fn wait_processed(client: &Hearth, ids: &[String]) -> Result<bool> {
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} processed {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut ok = true;
    for id in ids {
        loop {
            let detail = client.document(id).await?;
            let document = detail.document;
            match document.status {
                DocumentStatus::Ready => break,
                DocumentStatus::Failed => {
                    ok = false;
                    bar.println(format!(
                        "failed: {} ({})",
                        document.title.as_deref().unwrap_or(id),
                        document.error.as_deref().unwrap_or("no reason given")
                    ));
                    break;
                }
                DocumentStatus::Pending | DocumentStatus::Processing => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await
                }
            }
        }
        bar.inc(1);
    }
    bar.finish();
    Ok(ok)
}
