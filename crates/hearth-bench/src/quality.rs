//! `hearth-bench quality`: retrieval quality of hearth's three search modes on known-item corpora, against a plain
//! BM25 over whole documents (Okapi BM25 as the `rank_bm25` package computes it) on the same corpora, and the
//! choice of hybrid fusion. The fusion was chosen on the development corpus only; the test corpora show what it
//! does on text it was not chosen on.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hearth_core::fusion::{self, Fusion};
use hearth_core::store::search::Ranked;
use hearth_testkit::TestPostgres;
use hearth_testkit::corpus::{Corpus, KnownItem, known_item_scores};
use serde_json::{Value, json};

use crate::common::{self, Common};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Items per corpus.
    #[arg(long, default_value_t = 100)]
    documents: usize,
}

const K: usize = 10;
/// hearthd's retriever depth for hybrid search with k = 10.
const DEPTH: usize = 40;
const DEVELOPMENT: Corpus = Corpus::ManPages { section: 3 };
const TEST: [Corpus; 2] = [Corpus::PythonStdlib, Corpus::ManPages { section: 2 }];

/// (recall@10, MRR)
type Scores = (f64, f64);

struct CorpusResult {
    corpus: Corpus,
    vector: Scores,
    keyword: Scores,
    hybrid: Scores,
    bm25_documents: Scores,
    /// Every fusion tried, on this corpus's retriever lists.
    fusions: Vec<(Fusion, Scores)>,
}

pub fn run(args: &Args) -> Result<String> {
    let postgres = TestPostgres::start()?;
    let runtime = common::runtime()?;
    let mut results = Vec::new();
    for corpus in std::iter::once(DEVELOPMENT).chain(TEST) {
        let items = corpus.load(args.documents)?;
        if items.len() < args.documents {
            bail!(
                "{} has {} items, fewer than the {} asked for",
                corpus.name(),
                items.len(),
                args.documents
            );
        }
        println!("bench quality: {} ({} items)", corpus.name(), items.len());
        let url = postgres.create_database()?;
        results.push(runtime.block_on(evaluate(args, &url, corpus, &items))?);
    }
    Ok(report(args, &results))
}

/// The fusions compared: rank fusion as hearth had it (equal weights) and weighted, and relative-score fusion.
fn candidates() -> Vec<Fusion> {
    let weights = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let mut all: Vec<Fusion> = weights
        .iter()
        .map(|&vector_weight| Fusion::ReciprocalRank {
            k: 60.0,
            vector_weight,
        })
        .collect();
    all.extend(
        weights
            .iter()
            .map(|&vector_weight| Fusion::RelativeScore { vector_weight }),
    );
    all
}

async fn evaluate(args: &Args, url: &str, corpus: Corpus, items: &[KnownItem]) -> Result<CorpusResult> {
    let hearthd = args.common.start_hearthd(url, &[])?;
    let client = reqwest::Client::new();
    common::wait_ready(&client, &hearthd).await?;
    for item in items {
        let response = client
            .post(format!("{}/v1/documents", hearthd.url))
            .json(&json!({ "title": item.title, "text": item.text }))
            .send()
            .await?;
        if response.status() != 202 {
            bail!("upload of {} answered {}", item.title, response.status());
        }
    }
    common::wait_for_empty_queue(&client, &hearthd, Duration::from_secs(900)).await?;
    let mut titles: HashMap<i64, String> = HashMap::new();
    let (mut vector, mut keyword, mut hybrid) = (Vec::new(), Vec::new(), Vec::new());
    let mut lists = Vec::new();
    for item in items {
        vector.push(search(&client, &hearthd.url, &item.query, "vector", K, &mut titles).await?);
        keyword.push(search(&client, &hearthd.url, &item.query, "keyword", K, &mut titles).await?);
        hybrid.push(search(&client, &hearthd.url, &item.query, "hybrid", K, &mut titles).await?);
        let deep_vector = search(&client, &hearthd.url, &item.query, "vector", DEPTH, &mut titles).await?;
        let deep_keyword = search(&client, &hearthd.url, &item.query, "keyword", DEPTH, &mut titles).await?;
        lists.push((deep_vector, deep_keyword));
    }
    let named = |ranked: &[Vec<Ranked>]| -> Vec<Vec<String>> {
        ranked
            .iter()
            .map(|hits| hits.iter().map(|hit| titles[&hit.chunk_id].clone()).collect())
            .collect()
    };
    let fusions = candidates()
        .into_iter()
        .map(|candidate| {
            let fused: Vec<Vec<String>> = lists
                .iter()
                .map(|(v, k)| {
                    fusion::fuse(candidate, v, k, K)
                        .iter()
                        .map(|hit| titles[&hit.chunk_id].clone())
                        .collect()
                })
                .collect();
            (candidate, known_item_scores(items, &fused, K))
        })
        .collect();
    Ok(CorpusResult {
        corpus,
        vector: known_item_scores(items, &named(&vector), K),
        keyword: known_item_scores(items, &named(&keyword), K),
        hybrid: known_item_scores(items, &named(&hybrid), K),
        bm25_documents: known_item_scores(items, &bm25_over_documents(items), K),
        fusions,
    })
}

/// One search over HTTP; records each hit's document title.
async fn search(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    mode: &str,
    k: usize,
    titles: &mut HashMap<i64, String>,
) -> Result<Vec<Ranked>> {
    let answer: Value = client
        .post(format!("{base}/v1/search"))
        .json(&json!({ "query": query, "mode": mode, "k": k }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let hits = answer["hits"].as_array().context("no hits in the answer")?;
    let mut ranked = Vec::new();
    for hit in hits {
        let chunk_id = hit["chunk_id"].as_i64().context("chunk_id")?;
        titles.insert(chunk_id, hit["title"].as_str().unwrap_or_default().to_owned());
        ranked.push(Ranked {
            chunk_id,
            score: hit["score"].as_f64().context("score")?,
        });
    }
    Ok(ranked)
}

/// Lowercased runs of letters and digits: the whitespace-and-punctuation split BM25 baselines use.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Okapi BM25 over whole documents as `rank_bm25.BM25Okapi` computes it (k1 = 1.5, b = 0.75, a negative idf
/// replaced by 0.25 × the average idf): for each item, the titles of the top K documents.
fn bm25_over_documents(items: &[KnownItem]) -> Vec<Vec<String>> {
    let (k1, b, epsilon) = (1.5, 0.75, 0.25);
    let documents: Vec<HashMap<String, f64>> = items
        .iter()
        .map(|item| {
            let mut tf = HashMap::new();
            for word in words(&item.text) {
                *tf.entry(word).or_insert(0.0) += 1.0;
            }
            tf
        })
        .collect();
    let lengths: Vec<f64> = documents.iter().map(|d| d.values().sum()).collect();
    let average = lengths.iter().sum::<f64>() / lengths.len().max(1) as f64;
    let mut df: HashMap<&str, f64> = HashMap::new();
    for document in &documents {
        for word in document.keys() {
            *df.entry(word).or_insert(0.0) += 1.0;
        }
    }
    let n = documents.len() as f64;
    let mut idf: HashMap<&str, f64> = df
        .iter()
        .map(|(word, df)| (*word, ((n - df + 0.5) / (df + 0.5)).ln()))
        .collect();
    let floor = epsilon * idf.values().sum::<f64>() / idf.len().max(1) as f64;
    for value in idf.values_mut() {
        if *value < 0.0 {
            *value = floor;
        }
    }
    items
        .iter()
        .map(|item| {
            let query = words(&item.query);
            let mut scored: Vec<(f64, usize)> = documents
                .iter()
                .enumerate()
                .map(|(i, tf)| {
                    let score = query
                        .iter()
                        .map(|word| {
                            let f = tf.get(word).copied().unwrap_or(0.0);
                            idf.get(word.as_str()).copied().unwrap_or(0.0) * f * (k1 + 1.0)
                                / (f + k1 * (1.0 - b + b * lengths[i] / average))
                        })
                        .sum::<f64>();
                    (score, i)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored
                .iter()
                .take(K)
                .map(|(_, i)| items[*i].title.clone())
                .collect()
        })
        .collect()
}

fn describe(fusion: Fusion) -> String {
    match fusion {
        Fusion::ReciprocalRank { k, vector_weight } => {
            format!("rank fusion (k = {k}), vector weight {vector_weight:.1}")
        }
        Fusion::RelativeScore { vector_weight } => {
            format!("relative-score fusion, vector weight {vector_weight:.1}")
        }
    }
}

fn report(args: &Args, results: &[CorpusResult]) -> String {
    let mut out = String::from("## Retrieval quality\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench quality` on {} cores, model `{}`, {} known items per corpus, k = {K}; \
         recall@{K} / MRR, a document found by several chunks counted once. `(dev)` marks the development \
         corpus the fusion was chosen on.\n\n",
        common::cores(),
        common::model_name(&args.common.model_dir),
        args.documents,
    ));
    let label = |r: &CorpusResult| {
        if r.corpus == DEVELOPMENT {
            format!("{} (dev)", r.corpus.name())
        } else {
            r.corpus.name()
        }
    };
    out.push_str("| mode |");
    for r in results {
        out.push_str(&format!(" {} |", label(r)));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(results.len()));
    type Row = (&'static str, fn(&CorpusResult) -> Scores);
    let rows: [Row; 4] = [
        ("vector (hearth)", |r| r.vector),
        ("keyword, BM25 over chunks (hearth)", |r| r.keyword),
        ("hybrid (hearth)", |r| r.hybrid),
        ("BM25 over whole documents (reference)", |r| r.bm25_documents),
    ];
    for (name, scores) in rows {
        out.push_str(&format!("\n| {name} |"));
        for r in results {
            let (recall, mrr) = scores(r);
            out.push_str(&format!(" {recall:.3} / {mrr:.3} |"));
        }
    }
    out.push_str("\n| goal: hybrid ≥ the best of vector and BM25 (both figures) |");
    for r in results {
        let best_recall = r.vector.0.max(r.bm25_documents.0).max(r.keyword.0);
        let best_mrr = r.vector.1.max(r.bm25_documents.1).max(r.keyword.1);
        let met = r.hybrid.0 >= best_recall && r.hybrid.1 >= best_mrr;
        out.push_str(if met { " met |" } else { " missed |" });
    }
    out.push_str(&format!(
        "\n\nFusions tried on the retrievers' top {DEPTH} (hearthd's depth for k = {K}); hearthd ships the one \
         marked, chosen by MRR on the development corpus:\n\n| fusion |"
    ));
    for r in results {
        out.push_str(&format!(" {} |", label(r)));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(results.len()));
    for (i, (candidate, _)) in results[0].fusions.iter().enumerate() {
        let shipped = if *candidate == fusion::HYBRID {
            " **(hearthd)**"
        } else {
            ""
        };
        out.push_str(&format!("\n| {}{shipped} |", describe(*candidate)));
        for r in results {
            let (recall, mrr) = r.fusions[i].1;
            out.push_str(&format!(" {recall:.3} / {mrr:.3} |"));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, query: &str, text: &str) -> KnownItem {
        KnownItem {
            title: title.into(),
            query: query.into(),
            text: text.into(),
        }
    }

    #[test]
    fn bm25_ranks_the_document_with_the_rare_word_first() {
        let items = [
            item(
                "a",
                "priority heap",
                "a heap queue with priority order, the heap invariant",
            ),
            item(
                "b",
                "zip archives",
                "read and write zip archives; a zip file holds members",
            ),
            item("c", "other", "the the the a a a of of of"),
        ];
        let ranked = bm25_over_documents(&items);
        assert_eq!(ranked[0][0], "a");
        assert_eq!(ranked[1][0], "b");
    }
}
