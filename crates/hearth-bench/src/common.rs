//! What every benchmark shares: the model and binaries it runs, the fortunes corpus, statistics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_core::embed::EmbedderConfig;
use hearth_testkit::TestHearthd;

/// Debian's `fortunes`: thousands of real English texts (quotations, jokes, definitions).
pub const FORTUNES_DIR: &str = "/usr/share/games/fortunes";

#[derive(Debug, clap::Args)]
pub struct Common {
    #[arg(long)]
    pub model_dir: PathBuf,
    #[arg(long)]
    pub onnxruntime: PathBuf,
    /// A release build of hearthd.
    #[arg(long)]
    pub hearthd: PathBuf,
}

impl Common {
    /// The engine as hearthd configures it by default, with a queue that holds a whole corpus.
    pub fn engine_config(&self, queue_capacity: usize) -> EmbedderConfig {
        let mut config = EmbedderConfig::new(self.model_dir.clone());
        config.onnxruntime = Some(self.onnxruntime.clone());
        config.queue_capacity = queue_capacity;
        config
    }

    /// hearthd on `database_url` with this model, quiet logs, and `extra` settings.
    pub fn start_hearthd(&self, database_url: &str, extra: &[(&str, &str)]) -> Result<TestHearthd> {
        let model_dir = self.model_dir.display().to_string();
        let onnxruntime = self.onnxruntime.display().to_string();
        let mut settings = vec![
            ("HEARTH_EMBEDDING__MODEL_DIR", model_dir.as_str()),
            ("HEARTH_EMBEDDING__ONNXRUNTIME", onnxruntime.as_str()),
            ("HEARTH_LOG", "warn"),
        ];
        settings.extend_from_slice(extra);
        Ok(TestHearthd::start(&self.hearthd, database_url, &settings)?)
    }
}

/// The benchmark client's own async runtime: two workers, like the machines the figures are for.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Waits until hearthd's `/readyz` answers 200 (database, schema and model ready).
pub async fn wait_ready(client: &reqwest::Client, hearthd: &TestHearthd) -> Result<()> {
    wait_for_ok(client, hearthd, "/readyz").await
}

/// Waits until `path` on hearthd answers 200, polling every 10 ms for at most two minutes.
pub async fn wait_for_ok(client: &reqwest::Client, hearthd: &TestHearthd, path: &str) -> Result<()> {
    let url = format!("{}{path}", hearthd.url);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status() == 200
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} never answered 200:\n{}", hearthd.log_text());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until hearthd's job queue is empty, at most `limit`.
pub async fn wait_for_empty_queue(
    client: &reqwest::Client,
    hearthd: &TestHearthd,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let ready: serde_json::Value = client
            .get(format!("{}/readyz", hearthd.url))
            .send()
            .await?
            .json()
            .await?;
        if ready["queue"]["depth"] == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the queue did not drain in {} s: {ready}", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Uploads every text as a `text/plain` document titled `{title}-{index}`, `in_flight` at a time, and fails unless
/// each one is accepted (202).
pub async fn upload_all(
    client: &reqwest::Client,
    hearthd: &TestHearthd,
    texts: &[String],
    title: &str,
    in_flight: usize,
) -> Result<()> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut uploads = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        let permit = std::sync::Arc::clone(&gate).acquire_owned().await?;
        let request = client
            .post(format!("{}/v1/documents?title={title}-{index}", hearthd.url))
            .header("content-type", "text/plain")
            .body(text.clone())
            .send();
        uploads.push(tokio::spawn(async move {
            let response = request.await;
            drop(permit);
            response
        }));
    }
    for upload in uploads {
        let response = upload.await??;
        if response.status() != 202 {
            bail!(
                "upload answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
    }
    Ok(())
}

pub fn tokenizer(model_dir: &Path) -> Result<tokenizers::Tokenizer> {
    let mut tokenizer = tokenizers::Tokenizer::from_file(model_dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("tokenizer.json: {e}"))?;
    // No truncation (the corpus holds only inputs that fit) and no padding: the raw loop pads each batch itself.
    tokenizer
        .with_truncation(None)
        .map_err(|e| anyhow::anyhow!("truncation: {e}"))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

pub fn token_count(tokenizer: &tokenizers::Tokenizer, text: &str) -> usize {
    tokenizer.encode(text, true).map(|e| e.len()).unwrap_or(0)
}

/// Every fortune of the prose files, whitespace flattened, deduplicated, in a fixed order.
pub fn fortunes() -> Result<Vec<String>> {
    let dir = Path::new(FORTUNES_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "{} is missing: `cargo xtask bench` installs Debian's fortunes",
                dir.display()
            )
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        // The plain files: `.dat` are indexes, `.u8` UTF-8 duplicates; the art files are pictures, not prose.
        .filter(|path| path.extension().is_none())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("art"))
        })
        .collect();
    files.sort();
    let mut seen = std::collections::HashSet::new();
    let mut texts = Vec::new();
    for file in files {
        let raw = std::fs::read(&file).unwrap_or_default();
        for entry in String::from_utf8_lossy(&raw).split("\n%\n") {
            let flat = entry.split_whitespace().collect::<Vec<_>>().join(" ");
            if flat.split_whitespace().count() >= 3 && seen.insert(flat.clone()) {
                texts.push(flat);
            }
        }
    }
    Ok(texts)
}

pub fn measure(runs: usize, mut run: impl FnMut() -> Result<Duration>) -> Result<Vec<Duration>> {
    (0..runs).map(|_| run()).collect()
}

pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// The nearest-rank percentile (`p` in 0..=100) of `times`, in milliseconds.
pub fn percentile_ms(times: &[Duration], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The model directory's name, which names the model in reports.
pub fn model_name(model_dir: &Path) -> String {
    model_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::percentile_ms;
    use std::time::Duration;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&times, 50.0), 50.0);
        assert_eq!(percentile_ms(&times, 99.0), 99.0);
        assert_eq!(percentile_ms(&times[..1], 99.0), 1.0);
    }
}
