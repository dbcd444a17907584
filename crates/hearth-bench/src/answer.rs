//! `hearth-bench answer`: what hearth adds to an answer beyond the provider's own time. A release hearthd with a
//! library answers questions through llama.cpp's server (the test kit's tiny model); each question's exact
//! provider request, taken from the server's request log, is then sent to the server directly. hearth's overhead
//! is the difference: retrieval (embedding the question, hybrid search), the prompt, the provider round trip's
//! plumbing and the JSON answer.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_testkit::{LLAMA_MODEL, TestLlama, TestPostgres};
use serde_json::{Value, json};

use crate::common::{self, Common};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Documents in the library.
    #[arg(long, default_value_t = 200)]
    documents: usize,
    /// Questions asked, each once through hearth and once directly.
    #[arg(long, default_value_t = 200)]
    questions: usize,
}

pub fn run(args: &Args) -> Result<String> {
    let llama = TestLlama::start()?;
    let postgres = TestPostgres::start()?;
    let url = postgres.create_database()?;
    let keys = tempfile::tempdir()?;
    let key = keys.path().join("encryption-key");
    std::fs::write(&key, [3u8; 32])?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o400))?;
    let key = key.display().to_string();
    let hearthd = args.common.start_hearthd(
        &url,
        &[
            ("HEARTH_REASONING__ENCRYPTION_KEY_FILE", &key),
            ("HEARTH_REASONING__MAX_ANSWER_TOKENS", "32"),
        ],
    )?;
    let fortunes = common::fortunes()?;
    let texts: Vec<String> = fortunes
        .chunks(10)
        .take(args.documents)
        .map(|group| group.join("\n\n"))
        .collect();
    // Questions from the corpus's own sentences, so each retrieves something.
    let questions: Vec<String> = fortunes
        .iter()
        .step_by(fortunes.len() / args.questions.max(1))
        .take(args.questions)
        .map(|f| f.chars().take(120).collect())
        .collect();
    let runtime = common::runtime()?;
    let (through_hearth, direct) = runtime.block_on(async {
        let client = reqwest::Client::new();
        common::wait_ready(&client, &hearthd).await?;
        common::upload_all(&client, &hearthd, &texts, "fortunes", 4).await?;
        common::wait_for_empty_queue(&client, &hearthd, Duration::from_secs(900)).await?;
        let provider = json!({"base_url": llama.base_url, "model": LLAMA_MODEL, "api_key": llama.api_key, "answers": true});
        let set = client
            .put(format!("{}/v1/settings/reasoning", hearthd.url))
            .json(&provider)
            .send()
            .await?;
        if !set.status().is_success() {
            bail!("setting the provider: {}", set.text().await?);
        }
        println!(
            "bench answer: {} documents ingested; {} questions, each through hearth and then directly",
            texts.len(),
            questions.len()
        );
        measure(&client, &hearthd.url, &llama, &questions).await
    })?;
    Ok(report(&through_hearth, &direct, texts.len()))
}

async fn measure(
    client: &reqwest::Client,
    hearthd: &str,
    llama: &TestLlama,
    questions: &[String],
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut through_hearth, mut direct) = (Vec::new(), Vec::new());
    for (i, question) in questions.iter().enumerate() {
        let started = Instant::now();
        let answer = client
            .post(format!("{hearthd}/v1/answer"))
            .json(&json!({"question": question}))
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        let elapsed = started.elapsed();
        if !status.is_success() || body["asked_provider"] != true {
            bail!("hearth's answer to {question:?}: {status} {body}");
        }
        // The request hearth just sent, sent again straight to the provider.
        let sent = llama
            .requests()
            .last()
            .and_then(|request| request["body"].as_str().map(str::to_owned))
            .context("the provider logged no request")?;
        // llama.cpp reuses the key-value cache of the previous prompt's common prefix: clear it before each arm,
        // so neither evaluates its prompt warm.
        flush(client, llama).await?;
        let started = Instant::now();
        let reply = client
            .post(format!("{}/chat/completions", llama.base_url))
            .bearer_auth(&llama.api_key)
            .header("content-type", "application/json")
            .body(sent)
            .send()
            .await?;
        if !reply.status().is_success() {
            bail!(
                "the provider refused the replayed request: {}",
                reply.text().await?
            );
        }
        reply.bytes().await?;
        direct.push(started.elapsed());
        flush(client, llama).await?;
        through_hearth.push(elapsed);
        if (i + 1) % 50 == 0 {
            println!("bench answer: {} of {} questions", i + 1, questions.len());
        }
    }
    Ok((through_hearth, direct))
}

/// A one-token request with nothing in common with hearth's prompts.
async fn flush(client: &reqwest::Client, llama: &TestLlama) -> Result<()> {
    let reply = client
        .post(format!("{}/chat/completions", llama.base_url))
        .bearer_auth(&llama.api_key)
        .json(&json!({"model": LLAMA_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}))
        .send()
        .await?;
    reply.error_for_status()?.bytes().await?;
    Ok(())
}

fn report(through_hearth: &[Duration], direct: &[Duration], documents: usize) -> String {
    let overhead: Vec<Duration> = through_hearth
        .iter()
        .zip(direct)
        .map(|(hearth, provider)| hearth.saturating_sub(*provider))
        .collect();
    let row = |name: &str, times: &[Duration]| {
        format!(
            "| {name} | {:.1} ms | {:.1} ms |\n",
            common::percentile_ms(times, 50.0),
            common::percentile_ms(times, 99.0)
        )
    };
    format!(
        "## Answers: hearth's overhead over the provider\n\n\
         {cpu}, {cores} cores; a release hearthd with {documents} documents (fortunes) and the test model; \
         llama.cpp's server (llama-cpp-python, the tests' tiny random-weight model, 32 tokens an answer) on \
         loopback. {n} questions, each asked through `POST /v1/answer` (not streamed), then the exact request \
         hearth sent (from the server's log) sent to the server directly; a one-token request to the server before \
         each arm clears llama.cpp's prompt cache, so neither arm evaluates its prompt warm. Overhead is the first minus the second \
         for each question: embedding the question, hybrid search, the prompt and hearth's HTTP on both sides.\n\n\
         | | p50 | p99 |\n|---|---|---|\n{}{}{}\n\
         A real provider takes seconds per answer, so what hearth adds is the overhead row, not a ratio of the \
         totals; its share of the tiny model's total here is {:.2} at the median.\n",
        row("through hearth", through_hearth),
        row("provider directly (baseline)", direct),
        row("**hearth's overhead**", &overhead),
        common::percentile_ms(&overhead, 50.0) / common::percentile_ms(through_hearth, 50.0),
        cpu = common::cpu_name(),
        cores = common::cores(),
        n = through_hearth.len(),
    )
}
