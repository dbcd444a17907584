//! `hearth-bench search`: hearth's vector search (the HNSW index on the active space, through the same store
//! functions hearthd calls) against exact search on the same rows, at 100k chunks: latency and recall@k. Then
//! hybrid search over HTTP while a bulk ingest keeps the embedder busy, against the same searches idle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_core::chunk::{self, Chunk};
use hearth_core::digest::sha256_hex;
use hearth_core::embed::{EmbedMetrics, EmbedRequest, Embedder, InputKind, Priority};
use hearth_core::fusion;
use hearth_core::library::space_key;
use hearth_core::store::chunks::{self as stored_chunks, SpaceVectors};
use hearth_core::store::search::{self as retrieval, Ranked, SearchFilter};
use hearth_core::store::spaces::{self, Space};
use hearth_testkit::TestPostgres;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::common::{self, Common, percentile_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Chunks in the index.
    #[arg(long, default_value_t = 100_000)]
    chunks: usize,
    /// Largest chunk in tokens: short chunks keep the one-time embedding of the corpus to minutes.
    #[arg(long, default_value_t = 40)]
    chunk_tokens: usize,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Python whose standard library source is the corpus.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Where the corpus's vectors are kept between runs, keyed by model and corpus [default: the dependency
    /// cache's `bench/`].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Documents uploaded to keep the embedder busy while the loaded searches run.
    #[arg(long, default_value_t = 300)]
    ingest_documents: usize,
}

/// One source file: its chunks, and the first line of its docstring when it has one (a query about it).
struct SourceFile {
    path: String,
    bytes: usize,
    chunks: Vec<Chunk>,
    summary: Option<String>,
}

pub fn run(args: &Args) -> Result<String> {
    let embedder = Embedder::load(&args.common.engine_config(8192), EmbedMetrics::default())?;
    let files = corpus(args, &embedder)?;
    let texts: Vec<String> = files
        .iter()
        .flat_map(|file| file.chunks.iter().map(|c| c.text.clone()))
        .collect();
    let queries: Vec<String> = spread(
        files.iter().filter_map(|f| f.summary.clone()).collect(),
        args.queries,
    )?;
    println!(
        "bench search: {} chunks from {} files, {} queries",
        texts.len(),
        files.len(),
        queries.len()
    );
    let runtime = common::runtime()?;
    let (vectors, embedding) = runtime.block_on(corpus_vectors(args, &embedder, &texts))?;
    let mut query_request = EmbedRequest::new(queries.clone(), InputKind::Query, Priority::Query);
    query_request.truncate = true;
    let query_vectors = runtime.block_on(embedder.embed(query_request))?.vectors;
    let token_counts = embedder.count_tokens(&texts)?;

    let postgres = TestPostgres::start()?;
    let url = postgres.create_database()?;
    let (space, loading) = runtime.block_on(load(&url, &embedder, &files, &token_counts, vectors))?;
    drop(embedder);
    let direct = runtime.block_on(search_directly(args, &url, &space, &queries, &query_vectors))?;
    let http = runtime.block_on(search_under_ingest(args, &url, &queries))?;
    Ok(report(
        args,
        texts.len(),
        files.len(),
        &space,
        embedding,
        loading,
        &direct,
        &http,
    ))
}

/// The Python standard library's source, file by file in path order, cut by hearth's chunker (plain text, no
/// overlap) until there are `args.chunks` chunks. Real text of the kind people keep in a knowledge base, and
/// installed on every machine that runs the tests.
fn corpus(args: &Args, embedder: &Embedder) -> Result<Vec<SourceFile>> {
    let output = std::process::Command::new(&args.python)
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .with_context(|| format!("running {}", args.python.display()))?;
    let root = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let mut paths = Vec::new();
    collect_python_files(&root, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    let mut total = 0;
    for path in paths {
        if total >= args.chunks {
            break;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut chunks = chunk::split(&text, false, embedder.tokenizer(), args.chunk_tokens, 0)?;
        chunks.truncate(args.chunks - total);
        if chunks.is_empty() {
            continue;
        }
        total += chunks.len();
        files.push(SourceFile {
            path: path.strip_prefix(&root).unwrap_or(&path).display().to_string(),
            bytes: text.len(),
            summary: docstring_summary(&text),
            chunks,
        });
    }
    if total < args.chunks {
        bail!(
            "{} yields {total} chunks of at most {} tokens, fewer than the {} asked for",
            root.display(),
            args.chunk_tokens,
            args.chunks
        );
    }
    Ok(files)
}

fn collect_python_files(dir: &Path, into: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            // Third-party packages are not the standard library, and differ between machines.
            if name != "site-packages" && name != "dist-packages" && name != "__pycache__" {
                collect_python_files(&path, into)?;
            }
        } else if name.ends_with(".py") {
            into.push(path);
        }
    }
    Ok(())
}

/// The first line of a module docstring, when it is a sentence of at least four words.
fn docstring_summary(source: &str) -> Option<String> {
    let rest = source.trim_start();
    let rest = rest.strip_prefix('r').unwrap_or(rest);
    let body = rest.strip_prefix("\"\"\"").or_else(|| rest.strip_prefix("'''"))?;
    let line = body.trim_start().lines().next()?;
    let line = line
        .trim()
        .trim_end_matches("\"\"\"")
        .trim_end_matches("'''")
        .trim();
    (line.split_whitespace().count() >= 4).then(|| line.to_owned())
}

/// `wanted` items spread evenly over `items`.
fn spread(items: Vec<String>, wanted: usize) -> Result<Vec<String>> {
    if items.len() < wanted {
        bail!("only {} queries available, {wanted} asked for", items.len());
    }
    let step = items.len() / wanted;
    Ok(items.into_iter().step_by(step).take(wanted).collect())
}

/// The corpus's vectors, from the cache when this model already embedded exactly these chunks. Returns the
/// vectors and how long embedding took (None when cached).
async fn corpus_vectors(
    args: &Args,
    embedder: &Embedder,
    texts: &[String],
) -> Result<(Vec<Vec<f32>>, Option<Duration>)> {
    let dims = embedder.manifest().dims;
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => hearth_testkit::cache_dir()?.join("bench"),
    };
    let key = sha256_hex(format!("{}\n{}", space_key(embedder).digest, texts.join("\u{1e}")).as_bytes());
    let path = cache_dir.join(format!("search-corpus-{}.f32", &key[..16]));
    if let Ok(bytes) = std::fs::read(&path)
        && bytes.len() == texts.len() * dims * 4
    {
        println!("bench search: corpus vectors from {}", path.display());
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        return Ok((floats.chunks(dims).map(<[f32]>::to_vec).collect(), None));
    }
    println!(
        "bench search: embedding {} chunks once (cached in {} afterwards)",
        texts.len(),
        cache_dir.display()
    );
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(texts.len());
    for group in texts.chunks(4096) {
        let done = embedder
            .embed(EmbedRequest::new(
                group.to_vec(),
                InputKind::Document,
                Priority::Ingest,
            ))
            .await?;
        vectors.extend(done.vectors);
        println!(
            "bench search: {} of {} embedded ({:.0}s)",
            vectors.len(),
            texts.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let elapsed = started.elapsed();
    std::fs::create_dir_all(&cache_dir)?;
    let bytes: Vec<u8> = vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, &path)?;
    Ok((vectors, Some(elapsed)))
}

/// Fills a fresh hearth database the way ingest leaves it: one ready document per file, its chunks and their
/// vectors in the model's space (whose HNSW index exists from the start and is maintained on every insert).
async fn load(
    url: &str,
    embedder: &Embedder,
    files: &[SourceFile],
    token_counts: &[usize],
    vectors: Vec<Vec<f32>>,
) -> Result<(Space, Duration)> {
    let pool = PgPoolOptions::new().max_connections(2).connect(url).await?;
    hearth_core::store::migrate(&pool).await?;
    let space = spaces::ensure(&pool, &space_key(embedder)).await?.active;
    let started = Instant::now();
    let mut vectors = vectors.into_iter();
    let mut counts = token_counts.iter().copied();
    for (index, file) in files.iter().enumerate() {
        let n = file.chunks.len();
        let mut tx = pool.begin().await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO documents (id, title, content_sha256, content_type, byte_size, status, chunk_count) \
             VALUES ($1, $2, $3, 'text/plain', $4, 'ready', $5)",
        )
        .bind(id)
        .bind(&file.path)
        .bind(sha256_hex(file.path.as_bytes()))
        .bind(file.bytes.max(1) as i64)
        .bind(n as i32)
        .execute(&mut *tx)
        .await?;
        let spaces = [SpaceVectors {
            space_id: space.id,
            vectors: vectors.by_ref().take(n).collect(),
        }];
        let counts: Vec<usize> = counts.by_ref().take(n).collect();
        stored_chunks::replace(&mut tx, id, &file.chunks, &counts, &spaces).await?;
        tx.commit().await?;
        if index % 200 == 0 {
            println!(
                "bench search: loaded {index} of {} files ({:.0}s)",
                files.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    // hearthd folds the keyword statistics after every job; the loader writes chunks directly.
    retrieval::fold_lexicon(&pool).await?;
    let elapsed = started.elapsed();
    // VACUUM refuses to run in a transaction block: send it as a simple query.
    sqlx::raw_sql("VACUUM ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok((space, elapsed))
}

/// Latencies (without query embedding) and recall, searched through hearth's store functions.
struct Direct {
    hnsw: Vec<Duration>,
    exact: Vec<Duration>,
    keyword: Vec<Duration>,
    /// Keyword search scoring every matching chunk: the baseline of the bounded candidate set.
    keyword_every: Vec<Duration>,
    /// Both retrievers one after the other and the fusion, as hearthd searches once the query is embedded.
    hybrid: Vec<Duration>,
    recall: f64,
    /// The bounded keyword search's top k against scoring every match (ties counted).
    keyword_recall: f64,
    /// Other candidate budgets, measured the same way: the alternatives to hearth's.
    budgets: Vec<BudgetRun>,
}

/// Keyword search with one candidate budget over all queries.
struct BudgetRun {
    budget: i64,
    latencies: Vec<Duration>,
    recall: f64,
}

/// The budgets tried besides hearth's [`retrieval::KEYWORD_CANDIDATES`].
const BUDGETS_TRIED: [i64; 6] = [100, 250, 500, 1_000, 2_000, 5_000];

async fn search_directly(
    args: &Args,
    url: &str,
    space: &Space,
    queries: &[String],
    query_vectors: &[Vec<f32>],
) -> Result<Direct> {
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    check_plans(&pool, space, &query_vectors[0], args.k).await?;
    let k = args.k as i64;
    // Warm the caches the way a running appliance has them.
    for vector in query_vectors.iter().take(20) {
        vector_search(&pool, space, vector, k, false).await?;
        vector_search(&pool, space, vector, k, true).await?;
    }
    let mut direct = Direct {
        hnsw: Vec::new(),
        exact: Vec::new(),
        keyword: Vec::new(),
        keyword_every: Vec::new(),
        hybrid: Vec::new(),
        recall: 0.0,
        keyword_recall: 0.0,
        budgets: Vec::new(),
    };
    let (mut found, mut keyword_found, mut keyword_expected) = (0, 0, 0);
    let mut every_match = Vec::new();
    for (query, vector) in queries.iter().zip(query_vectors) {
        let (time, approximate) = vector_search(&pool, space, vector, k, false).await?;
        direct.hnsw.push(time);
        let (time, exact) = vector_search(&pool, space, vector, k, true).await?;
        direct.exact.push(time);
        // Ties: a hit as close as the exact k-th counts, whichever of equally distant chunks it is.
        let kth = exact.last().map_or(f64::NEG_INFINITY, |hit| hit.score);
        found += approximate
            .iter()
            .filter(|hit| hit.score >= kth - 1e-6)
            .count()
            .min(exact.len());
        let (time, bounded) = keyword_search(&pool, query, k, retrieval::KEYWORD_CANDIDATES).await?;
        direct.keyword.push(time);
        let (time, every) = keyword_search(&pool, query, k, i64::MAX).await?;
        direct.keyword_every.push(time);
        keyword_found += found_of(&bounded, &every);
        keyword_expected += every.len();
        every_match.push(every);
        direct
            .hybrid
            .push(hybrid_search(&pool, space, query, vector, k).await?);
    }
    direct.recall = found as f64 / (queries.len() * args.k) as f64;
    direct.keyword_recall = keyword_found as f64 / keyword_expected.max(1) as f64;
    for budget in BUDGETS_TRIED {
        let (mut latencies, mut found) = (Vec::new(), 0);
        for (query, every) in queries.iter().zip(&every_match) {
            let (time, bounded) = keyword_search(&pool, query, k, budget).await?;
            latencies.push(time);
            found += found_of(&bounded, every);
        }
        direct.budgets.push(BudgetRun {
            budget,
            latencies,
            recall: found as f64 / keyword_expected.max(1) as f64,
        });
    }
    pool.close().await;
    Ok(direct)
}

/// How many of `every`'s top k the bounded search found; ties with the k-th count, whichever chunk it is.
fn found_of(bounded: &[Ranked], every: &[Ranked]) -> usize {
    let kth = every.last().map_or(f64::NEG_INFINITY, |hit| hit.score);
    bounded
        .iter()
        .filter(|hit| hit.score >= kth - 1e-9)
        .count()
        .min(every.len())
}

/// One keyword search as hearthd runs it (snapshot, BM25 over at most `budget` candidates, chunk details).
async fn keyword_search(pool: &PgPool, query: &str, k: i64, budget: i64) -> Result<(Duration, Vec<Ranked>)> {
    let started = Instant::now();
    let mut snapshot = retrieval::snapshot(pool).await?;
    let ranked = retrieval::keyword(&mut snapshot, query, &SearchFilter::default(), k, budget).await?;
    let ids: Vec<i64> = ranked.iter().map(|hit| hit.chunk_id).collect();
    retrieval::details(&mut snapshot, &ids).await?;
    snapshot.commit().await?;
    Ok((started.elapsed(), ranked))
}

/// A hybrid search after the query is embedded: hearthd's two retrievers at once at its depth, fusion, details.
async fn hybrid_search(
    pool: &PgPool,
    space: &Space,
    query: &str,
    vector: &[f32],
    k: i64,
) -> Result<Duration> {
    let depth = (k * 4).max(40);
    let started = Instant::now();
    let mut snapshot = retrieval::snapshot(pool).await?;
    let filter = SearchFilter::default();
    let (by_vector, by_keyword) =
        retrieval::both(pool, &mut snapshot, space, vector, query, &filter, depth).await?;
    let fused = fusion::fuse(fusion::HYBRID, &by_vector, &by_keyword, k as usize);
    let ids: Vec<i64> = fused.iter().map(|hit| hit.chunk_id).collect();
    retrieval::details(&mut snapshot, &ids).await?;
    snapshot.commit().await?;
    Ok(started.elapsed())
}

/// One vector search as hearthd runs it (snapshot, kNN, chunk details); `exact` turns index scans off, so
/// PostgreSQL compares the query with every vector of the space.
async fn vector_search(
    pool: &PgPool,
    space: &Space,
    query: &[f32],
    k: i64,
    exact: bool,
) -> Result<(Duration, Vec<Ranked>)> {
    let started = Instant::now();
    let mut snapshot = retrieval::snapshot(pool).await?;
    if exact {
        sqlx::query("SET LOCAL enable_indexscan = off")
            .execute(&mut *snapshot)
            .await?;
    }
    let ranked = retrieval::vector(&mut snapshot, space, query, &SearchFilter::default(), k).await?;
    let ids: Vec<i64> = ranked.iter().map(|hit| hit.chunk_id).collect();
    retrieval::details(&mut snapshot, &ids).await?;
    snapshot.commit().await?;
    Ok((started.elapsed(), ranked))
}

/// The comparison means something only if hearth's query uses the HNSW index and the exact one does not.
async fn check_plans(pool: &PgPool, space: &Space, query: &[f32], k: usize) -> Result<()> {
    for exact in [false, true] {
        let mut tx = pool.begin().await?;
        if exact {
            sqlx::query("SET LOCAL enable_indexscan = off")
                .execute(&mut *tx)
                .await?;
        }
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            retrieval::vector_sql(space)
        )))
        .bind(pgvector::HalfVector::from_f32_slice(query))
        .bind(None::<Vec<Uuid>>)
        .bind(None::<Value>)
        .bind(k as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        let plan = plan.join("\n");
        let uses_index = plan.contains("Index Scan using chunk_vectors_hnsw_space_");
        if uses_index == exact {
            bail!(
                "the {} query's plan is not what the benchmark needs:\n{plan}",
                if exact { "exact" } else { "HNSW" }
            );
        }
    }
    Ok(())
}

/// Hybrid searches over HTTP (query embedding included), idle and while a bulk ingest fills the queue.
struct UnderIngest {
    idle: Vec<Duration>,
    loaded: Vec<Duration>,
    queue_at_end: i64,
    documents: usize,
}

async fn search_under_ingest(args: &Args, url: &str, queries: &[String]) -> Result<UnderIngest> {
    let hearthd = args.common.start_hearthd(url, &[])?;
    let client = reqwest::Client::new();
    common::wait_ready(&client, &hearthd).await?;
    let search = |query: String| {
        let client = client.clone();
        let url = format!("{}/v1/search", hearthd.url);
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .json(&json!({ "query": query, "mode": "hybrid", "k": 10 }))
                .send()
                .await?;
            if response.status() != 200 {
                bail!(
                    "search answered {}: {}",
                    response.status(),
                    response.text().await?
                );
            }
            response.bytes().await?;
            Ok(started.elapsed())
        }
    };
    for query in queries.iter().take(20) {
        search(query.clone()).await?;
    }
    let mut idle = Vec::new();
    for query in queries {
        idle.push(search(query.clone()).await?);
    }

    let documents: Vec<String> = common::fortunes()?
        .chunks(30)
        .take(args.ingest_documents)
        .map(|group| group.join("\n\n"))
        .collect();
    common::upload_all(&client, &hearthd, &documents, "load", 4).await?;
    // Let the workers get going: the embedder is saturated once both have a batch in flight.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut loaded = Vec::new();
    for query in queries {
        loaded.push(search(query.clone()).await?);
    }
    let ready: Value = client
        .get(format!("{}/readyz", hearthd.url))
        .send()
        .await?
        .json()
        .await?;
    let queue_at_end = ready["queue"]["depth"].as_i64().unwrap_or(0);
    if queue_at_end == 0 {
        bail!(
            "the bulk ingest finished before the searches did: raise --ingest-documents above {}",
            args.ingest_documents
        );
    }
    Ok(UnderIngest {
        idle,
        loaded,
        queue_at_end,
        documents: documents.len(),
    })
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    chunks: usize,
    files: usize,
    space: &Space,
    embedding: Option<Duration>,
    loading: Duration,
    direct: &Direct,
    http: &UnderIngest,
) -> String {
    let p = |times: &[Duration], q: f64| percentile_ms(times, q);
    let mut out = String::from("## Search latency and recall\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench search` on {} cores ({}), model `{}` ({} dims, halfvec), {chunks} chunks \
         (at most {} tokens each) from {files} files of the Python standard library's source, {} queries (module \
         docstrings' first lines), k = {}; every figure from one run.\n\n",
        common::cores(),
        common::cpu_name(),
        common::model_name(&args.common.model_dir),
        space.dims,
        args.chunk_tokens,
        direct.hnsw.len(),
        args.k,
    ));
    out.push_str(
        "Without query embedding, through the store functions hearthd calls (snapshot, kNN or full-text, chunk \
         details):\n\n| search | p50 ms | p99 ms | recall@k |\n|---|---:|---:|---:|\n",
    );
    out.push_str(&format!(
        "| vector, HNSW index (hearth) | {:.2} | {:.2} | {:.3} |\n",
        p(&direct.hnsw, 50.0),
        p(&direct.hnsw, 99.0),
        direct.recall
    ));
    out.push_str(&format!(
        "| vector, exact (index scans off: every vector compared) | {:.2} | {:.2} | 1.000 |\n",
        p(&direct.exact, 50.0),
        p(&direct.exact, 99.0)
    ));
    out.push_str(&format!(
        "| keyword, BM25 over at most {} candidates (hearth) | {:.2} | {:.2} | {:.3} |\n",
        retrieval::KEYWORD_CANDIDATES,
        p(&direct.keyword, 50.0),
        p(&direct.keyword, 99.0),
        direct.keyword_recall,
    ));
    out.push_str(&format!(
        "| keyword, BM25 over every matching chunk | {:.2} | {:.2} | 1.000 |\n",
        p(&direct.keyword_every, 50.0),
        p(&direct.keyword_every, 99.0),
    ));
    for run in &direct.budgets {
        out.push_str(&format!(
            "| keyword, BM25 over at most {} candidates (tried) | {:.2} | {:.2} | {:.3} |\n",
            run.budget,
            p(&run.latencies, 50.0),
            p(&run.latencies, 99.0),
            run.recall,
        ));
    }
    out.push_str(&format!(
        "| hybrid: both retrievers at once at depth {}, fusion, details (hearth) | {:.2} | {:.2} | |\n",
        (args.k * 4).max(40),
        p(&direct.hybrid, 50.0),
        p(&direct.hybrid, 99.0),
    ));
    out.push_str(&format!(
        "\nHybrid search over HTTP, query embedding included, idle and while {} uploaded documents keep both \
         ingest workers embedding ({} jobs still queued when the last search returned):\n\n\
         | hybrid over HTTP | p50 ms | p99 ms |\n|---|---:|---:|\n| idle | {:.1} | {:.1} |\n\
         | during a bulk ingest | {:.1} | {:.1} |\n",
        http.documents,
        http.queue_at_end,
        p(&http.idle, 50.0),
        p(&http.idle, 99.0),
        p(&http.loaded, 50.0),
        p(&http.loaded, 99.0),
    ));
    out.push_str(&format!(
        "\n| ratio | value | goal |\n|---|---:|---:|\n\
         | recall@{k} HNSW ÷ exact | {:.3} | ≥ 0.95 |\n\
         | exact p50 ÷ HNSW p50 (speed-up) | {:.1} | |\n\
         | HNSW p50 | {:.2} ms | ≤ 10 ms |\n\
         | keyword p50 / p99 | {:.2} / {:.2} ms | ≤ 5 / ≤ 20 ms |\n\
         | keyword recall@{k}, bounded ÷ every match | {:.3} | |\n\
         | hybrid without query embedding p50 / p99 | {:.2} / {:.2} ms | ≤ 8 / ≤ 25 ms |\n\
         | p99 during bulk ingest ÷ idle p99 | {:.2} | ≤ 2 |\n",
        direct.recall,
        p(&direct.exact, 50.0) / p(&direct.hnsw, 50.0),
        p(&direct.hnsw, 50.0),
        p(&direct.keyword, 50.0),
        p(&direct.keyword, 99.0),
        direct.keyword_recall,
        p(&direct.hybrid, 50.0),
        p(&direct.hybrid, 99.0),
        p(&http.loaded, 99.0) / p(&http.idle, 99.0),
        k = args.k,
    ));
    out.push_str(&format!(
        "\nLoading the {chunks} chunks with their vectors (one transaction per file, the HNSW index maintained on \
         insert) took {:.0} s{}.\n",
        loading.as_secs_f64(),
        embedding.map_or_else(
            || "; the corpus's vectors came from the benchmark's cache".to_owned(),
            |t| format!("; embedding them took {:.0} s", t.as_secs_f64())
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::docstring_summary;

    #[test]
    fn a_module_docstring_gives_its_first_line() {
        assert_eq!(
            docstring_summary("\"\"\"Heap queue algorithm (a.k.a. priority queue).\n\nMore.\"\"\"\n"),
            Some("Heap queue algorithm (a.k.a. priority queue).".to_owned())
        );
        assert_eq!(
            docstring_summary("r'''Read and write ZIP files.'''"),
            Some("Read and write ZIP files.".to_owned())
        );
        assert_eq!(
            docstring_summary("import os\n\"\"\"Not a module docstring at all.\"\"\""),
            None
        );
        assert_eq!(docstring_summary("\"\"\"Too short.\"\"\""), None);
    }
}
